"""Quality: test NLL (nats) after ``quality_steps`` steps on every 2-D data set.

Models (8 layers, hidden ``[64, 64]`` unless the config says otherwise), one data pipeline:

* ``tfp_flows_fit``: ``tfp_flows.flows.realnvp`` trained by ``FlowModel.fit`` with tfp_flows'
  defaults: XLA train step, 32 steps per execution, and ``training.flow_optimizer`` (Adam,
  100-step warm-up to 4e-3, cosine decay to 0 at the last step, the same clipping);
* ``tfp_flows_fit_adam``: the same with the protocol's constant Adam 1e-3 (what the
  schedule is worth);
* ``tfp_flows_nsf``, ``tfp_flows_maf``, ``tfp_flows_iaf``: ``flows.nsf`` (spline couplings),
  ``flows.maf`` and ``flows.iaf`` (MADE, affine) with their defaults and ``num_layers`` /
  ``hidden_layers``, trained as ``tfp_flows_fit`` (``fit`` with ``flow_optimizer``); IAF's
  ``log_prob`` costs D network passes, which is cheap at D = 2;
* ``VARIANTS`` (``tfp_flows_nsf_bound10``: ``bound=10``; ``tfp_flows_nsf_bins16``:
  ``num_bins=16``; ``tfp_flows_nsf_marginal``: ``marginal_splines=True``;
  ``tfp_flows_nsf_affine``: ``data_affine=True``, the default since 2026-12-03;
  ``tfp_flows_nsf_no_affine``: ``data_affine=False``, the default before;
  ``tfp_flows_nsf_marginal_affine``: both; ``tfp_flows_nsf_inverted``:
  ``invert_splines=True``; 2026-12-07: ``_lu`` (``mixing="lu"``), ``_softclip``
  (``softclip_knots``), ``_biases`` (``hidden_bias_init="uniform"``) and combinations;
  ``tfp_flows_nsf_inverted_marginal_biases``: the defaults since 2026-12-07, spelled out;
  ``tfp_flows_nsf_default_dec3``: the defaults before, spelled out; ``tfp_flows_maf_biases``:
  ``flows.maf(network_init="identity", hidden_bias_init="uniform")``; the defaults of
  ``flows.realnvp`` and ``flows.maf`` before 2026-12-07's ``network_init="uniform"``,
  ``hidden_bias_init="uniform"``: ``tfp_flows_realnvp_identity``, ``tfp_flows_maf_identity``;
  ``tfp_flows_nsf_uniform``: ``flows.nsf(network_init="uniform")``):
  a builder with some options set, trained the same way (tuning runs);
* ``tfp_flows_loop``: the same flow in the hand-written ``tf.function`` loop (no XLA), which
  separates the flow's defaults from the trainer's speed (not in the default list: time);
* ``tfp_realnvp``: the TFP reference (``reference.realnvp``, unbounded log-scale) in that loop;
* ``tfp_realnvp_tanh``: the same reference with ``log_scale = tanh(raw)``, in that loop;
* ``tfp_realnvp_tanh_sched``: that reference trained with ``flow_optimizer`` too (what the
  rest of tfp_flows is worth);
* ``tfp_maf``: ``tfb.MaskedAutoregressiveFlow`` in that loop.
"""

import numpy as np

from benchmarks import protocol, reference, trainers

# Choose with config["quality_models"] (or run.py --models).
MODELS = ["tfp_flows_fit", "tfp_flows_fit_adam", "tfp_flows_nsf", "tfp_flows_maf",
          "tfp_flows_iaf", "tfp_flows_loop", "tfp_realnvp", "tfp_realnvp_tanh",
          "tfp_realnvp_tanh_sched", "tfp_maf"]
BUILDERS = {"tfp_flows_nsf": "nsf", "tfp_flows_maf": "maf", "tfp_flows_iaf": "iaf"}
# Variants of a builder's defaults tried while tuning them (run.py --models NAME); not in MODELS.
VARIANTS = {"tfp_flows_nsf_bound10": ("nsf", dict(bound=10.0)),
            "tfp_flows_maf_biases": ("maf", dict(network_init="identity",
                                                 hidden_bias_init="uniform")),
            "tfp_flows_realnvp_identity": ("realnvp", dict(network_init="identity",
                                                           hidden_bias_init="zeros")),
            "tfp_flows_maf_identity": ("maf", dict(network_init="identity",
                                                   hidden_bias_init="zeros")),
            "tfp_flows_nsf_uniform": ("nsf", dict(network_init="uniform")),
            "tfp_flows_nsf_bins16": ("nsf", dict(num_bins=16)),
            "tfp_flows_nsf_marginal": ("nsf", dict(marginal_splines=True)),
            "tfp_flows_nsf_affine": ("nsf", dict(data_affine=True)),
            "tfp_flows_nsf_no_affine": ("nsf", dict(data_affine=False)),
            "tfp_flows_nsf_marginal_affine": ("nsf", dict(marginal_splines=True,
                                                          data_affine=True)),
            "tfp_flows_nsf_inverted": ("nsf", dict(invert_splines=True)),
            "tfp_flows_nsf_lu": ("nsf", dict(mixing="lu")),
            "tfp_flows_nsf_biases": ("nsf", dict(hidden_bias_init="uniform")),
            "tfp_flows_nsf_inverted_biases": ("nsf", dict(hidden_bias_init="uniform",
                                                          invert_splines=True)),
            "tfp_flows_nsf_inverted_softclip_biases": ("nsf", dict(
                hidden_bias_init="uniform", invert_splines=True, softclip_knots=True)),
            "tfp_flows_nsf_inverted_marginal_biases": ("nsf", dict(
                hidden_bias_init="uniform", invert_splines=True, marginal_splines=True)),
            # flows.nsf's default from 2026-12-03 to 2026-12-07, spelled out
            "tfp_flows_nsf_default_dec3": ("nsf", dict(
                data_affine=True, invert_splines=False, marginal_splines=False,
                hidden_bias_init="zeros")),
            "tfp_flows_nsf_softclip": ("nsf", dict(softclip_knots=True)),
            "tfp_flows_nsf_inverted_softclip": ("nsf", dict(invert_splines=True,
                                                            softclip_knots=True)),
            "tfp_flows_nsf_lu_inverted": ("nsf", dict(mixing="lu", invert_splines=True)),
            "tfp_flows_nsf_lu_inverted_softclip": ("nsf", dict(mixing="lu", invert_splines=True,
                                                               softclip_knots=True))}


def ours(config, event_size, seed, batch_norm=False):
    import tfp_flows

    return tfp_flows.flows.realnvp(event_size, config["num_layers"], config["hidden_layers"],
                                   batch_norm=batch_norm, seed=seed)


def builder(name, config, event_size, seed, **overrides):
    """``tfp_flows.flows.<name>`` (``realnvp``, ``nsf``, ``maf``, ``iaf``) with its defaults (but
    ``overrides``) and the config's ``num_layers`` / ``hidden_layers``."""
    import tfp_flows

    return getattr(tfp_flows.flows, name)(event_size, num_layers=config["num_layers"],
                                          hidden_layers=config["hidden_layers"], seed=seed,
                                          **overrides)


def train_model(name, config, x_train, x_test, steps, seed):
    """Trains model ``name`` from scratch; returns the ``trainers`` result dict."""
    import tfp_flows

    d = x_train.shape[-1]
    dataset = protocol.train_dataset(x_train, config, seed)
    if name == "tfp_flows_fit":
        return trainers.train_fit(ours(config, d, seed), dataset, x_test, config, steps,
                                  optimizer=protocol.make_flow_optimizer(config, steps))
    if name in BUILDERS or name in VARIANTS:
        family, overrides = VARIANTS.get(name, (BUILDERS.get(name), {}))
        return trainers.train_fit(builder(family, config, d, seed, **overrides), dataset, x_test,
                                  config, steps,
                                  optimizer=protocol.make_flow_optimizer(config, steps))
    if name == "tfp_flows_fit_adam":
        return trainers.train_fit(ours(config, d, seed), dataset, x_test, config, steps)
    if name == "tfp_flows_loop":
        dist = ours(config, d, seed)
        return trainers.train_loop(dist, dist, dataset, x_test, config, steps,
                                   training_context=tfp_flows.training_mode)
    optimizer = None
    if name in ("tfp_realnvp", "tfp_realnvp_tanh", "tfp_realnvp_tanh_sched"):
        train, evaluate = reference.realnvp(d, config["num_layers"], config["hidden_layers"],
                                            seed=seed, tanh_log_scale="_tanh" in name)
        if name.endswith("_sched"):
            optimizer = protocol.make_flow_optimizer(config, steps)
    elif name == "tfp_maf":
        train, evaluate = reference.maf(d, config["num_layers"], config["hidden_layers"],
                                        seed=seed)
    else:
        raise ValueError(f"unknown model {name!r}")
    return trainers.train_loop(train, evaluate, dataset, x_test, config, steps,
                               optimizer=optimizer)


def run(config, log=print):
    """Returns ``{dataset: {"entropy_floor": f, "models": {model: result}}}``."""
    from tfp_flows import datasets

    out = {}
    seed = config["seed"]
    for name in config["datasets"]:
        x_train, x_test = datasets.train_test(name, config["n_train"], config["n_test"], seed=seed)
        x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
        results = {}
        for model in config["quality_models"]:
            results[model] = train_model(model, config, x_train, x_test,
                                         config["quality_steps"], seed)
            r = results[model]
            log(f"quality {name:16s} {model:15s} nll={r['test_nll']} "
                f"steps/s={r['steps_per_s']:.1f}")
        out[name] = {"entropy_floor": protocol.ENTROPY_FLOORS.get(name), "models": results}
    return out


def batch_norm(config, log=print):
    """Our ``BatchNorm`` vs ``tfb.BatchNormalization``, each after every coupling of a RealNVP,
    both in the hand-written loop on ``bn_dataset``."""
    import tfp_flows
    from tfp_flows import datasets

    seed, name = config["seed"], config["bn_dataset"]
    x_train, x_test = datasets.train_test(name, config["n_train"], config["n_test"], seed=seed)
    x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    steps = config["quality_steps"]
    out = {"dataset": name}
    dist = ours(config, 2, seed, batch_norm=True)
    out["tfp_flows_batchnorm"] = trainers.train_loop(
        dist, dist, protocol.train_dataset(x_train, config, seed), x_test, config, steps,
        training_context=tfp_flows.training_mode)
    train, evaluate = reference.realnvp(2, config["num_layers"], config["hidden_layers"],
                                        batch_norm=True, seed=seed)
    out["tfp_batchnormalization"] = trainers.train_loop(
        train, evaluate, protocol.train_dataset(x_train, config, seed), x_test, config, steps)
    for k in ("tfp_flows_batchnorm", "tfp_batchnormalization"):
        log(f"batchnorm {k:24s} nll={out[k]['test_nll']} steps/s={out[k]['steps_per_s']:.1f}")
    return out
