"""Digits benchmark (issue 6): test bits/dim of four density models on 8×8 digits.

All models see the same data transform (uniform dequantisation to logit space, see
``tfp_flows.dequantization``), the same step budget and batch size (512), are trained by
``FlowModel.fit`` on ``objectives.DequantizedBound`` (model c, TFP's own MAF with tf-keras
variables, by a plain reference loop), and are selected on
a validation split carved from the training images: every ``--eval-every`` steps the
validation bound is computed with fixed noise, and the best weights are restored at the end.
Test bits/dim is the bound on the discrete test pixels averaged over ``--test-samples``
noise draws.

Models:
  a  multi-scale RealNVP, conv couplings (``tfp_flows.multiscale``), uniform dequantisation
  a_var  the same flow trained jointly with a variational dequantiser ``q(v|p)``
  a_spline  model a with rational-quadratic spline couplings (8 bins on [-5, 5], identity
         tails) in place of the affine ones (issue 10's spline multi-scale)
  a_spline_*  regularised variants of a_spline for the small data set (``VARIANTS``):
         ``_var`` variational dequantisation, ``_f16`` 16 conv filters instead of 32,
         ``_wd`` ``keras.optimizers.AdamW`` weight decay, ``_sched`` ``flow_optimizer``'s
         warm-up + cosine schedule; the same split, steps, batch and test samples as model a
  b  plain 8-coupling RealNVP on the flat 64-D vector (``tfp_flows.flows.realnvp``)
  c  TFP ``tfb.MaskedAutoregressiveFlow`` (MADE networks; tf-keras variables, custom loop)
  d  diagonal Gaussian in logit space
  nsf  ``tfp_flows.flows.nsf`` on the flat 64-D vector, 8 layers of 2×128 (its defaults
       otherwise: 8 bins on [-5, 5], marginal splines, data-side affine)
  maf  ``tfp_flows.flows.maf`` on the flat vector, 5 MADE layers of 2×128 (model c's sizes),
       trained by ``FlowModel.fit``
  zuko_nsf, zuko_maf  the PyTorch peers at the sizes of nsf and maf (``zuko.flows.NSF``:
       autoregressive splines, 8 bins on [-5, 5]; ``zuko.flows.MAF``), trained by a plain
       torch loop with ``torch.optim.Adam(1e-3, eps=1e-7)`` on the same pipeline's batches,
       each dequantised by ``dequantization.uniform_dequantize``; only where the ``peers``
       extra is installed (otherwise skipped with a note)

Usage: ``python benchmarks/digits.py [--steps 1000] [--models a,nsf] [--merge] [--smoke]
[--out benchmarks/results]`` (``--merge`` keeps the other models' results in the JSON).
"""

import argparse
import functools
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tfp_flows  # noqa: E402, F401, I001  (first: imports TensorFlow without start-up noise)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from tfp_flows import dequantization as dq  # noqa: E402
from tfp_flows import digits, flows, make_variable, multiscale  # noqa: E402
from tfp_flows.training import FlowModel, flow_optimizer  # noqa: E402
from tfp_flows.training.objectives import DequantizedBound  # noqa: E402

from benchmarks import peers  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions
D, L = digits.EVENT_SIZE, digits.LEVELS


def multiscale_flow(smoke, seed, transformer="affine", filters=32):
    if smoke:
        return multiscale.multiscale_realnvp(couplings_per_scale=2, final_couplings=2,
                                             hidden_layers=(1,), network="conv", filters=8,
                                             transformer=transformer, seed=seed)
    return multiscale.multiscale_realnvp(hidden_layers=(1, 1), network="conv", filters=filters,
                                         transformer=transformer, seed=seed)


# Multi-scale variants: what differs from model a (affine couplings, 32 filters, uniform
# dequantisation, constant Adam 1e-3). ``optimizer``: "adam", "adamw" (decoupled weight decay
# WEIGHT_DECAY: each step w -= lr·WEIGHT_DECAY·w) or "schedule" (``flow_optimizer(steps)`` with
# the library's defaults: warm-up to 4e-3, cosine decay to 0, global-norm clipping 5).
VARIANTS = {
    "a": dict(),
    "a_var": dict(variational=True),
    "a_spline": dict(transformer="spline"),
    "a_spline_var": dict(transformer="spline", variational=True),
    "a_spline_f16": dict(transformer="spline", filters=16),
    "a_spline_wd": dict(transformer="spline", optimizer="adamw"),
    "a_spline_sched": dict(transformer="spline", optimizer="schedule"),
}
WEIGHT_DECAY = 0.5
# Spline multi-scale flows train in graph mode (``compile(jit_compile=False)``), as
# FlowModel.compile's default now does for every conv flow on CPU (training.slow_xla). On
# 2026-12-03, with TFP's knot search, the XLA step of a_spline had not finished its first 50
# steps after 35 min (load ≈ 6); on 2026-12-08, with ``_compat.spline_search``, XLA compiled
# in ≈ 30 s and its step was 1.3× graph mode's (benchmarks/README.md, Digits). Models a,
# a_var and b keep XLA, as their recorded runs did. Both modes compute the same bound.


def make_optimizer(kind, lr, steps):
    if kind == "adam":
        return keras.optimizers.Adam(lr)
    if kind == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=WEIGHT_DECAY)
    if kind == "schedule":
        return flow_optimizer(steps)
    raise ValueError(f"Unknown optimizer {kind!r}.")


def maf(smoke, seed, num_layers=5, hidden=(128, 128)):
    if smoke:
        num_layers, hidden = 2, (16,)
    layers = []
    for i in range(num_layers):
        made = tfb.AutoregressiveNetwork(params=2, hidden_units=list(hidden), activation="relu",
                                         kernel_initializer=tf.keras.initializers.GlorotUniform(
                                             seed + i))
        layers.append(tfb.MaskedAutoregressiveFlow(made, name=f"maf_{i}"))
        if i < num_layers - 1:
            layers.append(tfb.Permute(np.arange(D)[::-1].copy(), name=f"reverse_{i}"))
    return tfd.TransformedDistribution(flows.standard_normal(D), tfb.Chain(layers[::-1]))


def gaussian():
    loc = make_variable(np.zeros(D), "loc")
    log_scale = make_variable(np.zeros(D), "log_scale")
    return tfd.MultivariateNormalDiag(loc, tfp.util.DeferredTensor(log_scale, tf.exp))


def build(name, smoke, seed):
    """Returns ``(distribution, dequantizer or None, learning rate, optimizer kind)``."""
    if name in VARIANTS:
        v = VARIANTS[name]
        vd = None
        if v.get("variational"):
            vd = dq.VariationalDequantizer(D, L, num_couplings=1 if smoke else 2,
                                           hidden_layers=(16,) if smoke else (128,), seed=seed)
        flow = multiscale_flow(smoke, seed, v.get("transformer", "affine"),
                               v.get("filters", 32))
        return flow, vd, 1e-3, v.get("optimizer", "adam")
    if name == "b":
        hidden = (16,) if smoke else (128, 128)
        return (flows.realnvp(D, 2 if smoke else 8, hidden_layers=hidden, seed=seed), None,
                1e-3, "adam")
    if name == "c":
        return maf(smoke, seed), None, 1e-3, "adam"
    if name == "d":
        return gaussian(), None, 1e-2, "adam"
    if name == "nsf":
        layers, hidden = (2, (16,)) if smoke else (8, (128, 128))
        return flows.nsf(D, layers, hidden_layers=hidden, seed=seed), None, 1e-3, "adam"
    if name == "maf":
        layers, hidden = (2, (16,)) if smoke else (5, (128, 128))
        return flows.maf(D, layers, hidden_layers=hidden, seed=seed), None, 1e-3, "adam"
    raise ValueError(f"Unknown model {name!r}.")


def parameter_count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


class ValidationTracker:
    """The validation bound (fixed noise) at each ``record(step, train_bpd)``, its history, and
    ``best = (bound, step, snapshot())`` of the lowest bound so far; prints each step after 0."""

    def __init__(self, log_prob, dequantizer, split, snapshot):
        self.log_prob, self.dequantizer, self.split = log_prob, dequantizer, split
        self.snapshot = snapshot
        self.history = {"step": [], "val_bits_per_dim": [], "train_bits_per_dim": []}
        self.best = None
        self.start = time.time()

    def record(self, step, train_bpd=None):
        v = dq.evaluate_bits_per_dim(self.log_prob, self.split.validation, L,
                                     dequantizer=self.dequantizer, num_samples=1, seed=123)
        self.history["step"].append(step)
        self.history["val_bits_per_dim"].append(v)
        self.history["train_bits_per_dim"].append(train_bpd)
        if self.best is None or v < self.best[0]:
            self.best = (v, step, self.snapshot())
        if step:
            print(f"    step {step:5d}  train {train_bpd:.3f}  val {v:.3f} bits/dim  "
                  f"({time.time() - self.start:.0f}s)", flush=True)

    def results(self):
        """The history with ``best_step`` and ``best_val_bits_per_dim``."""
        return dict(self.history, best_step=self.best[1], best_val_bits_per_dim=self.best[0])


class BestValidation(keras.callbacks.Callback):
    """Every epoch (``eval_every`` steps): the validation bound with fixed noise; keeps the
    best weights (of the flow and the dequantiser) and restores them at the end."""

    def __init__(self, dist, dequantizer, split, eval_every):
        super().__init__()
        self.eval_every = eval_every
        self.tracker = ValidationTracker(dist.log_prob, dequantizer, split, self._weights)

    def _weights(self):
        return [w.numpy() for w in self.model.trainable_weights]

    def on_train_begin(self, logs=None):
        self.tracker.record(0)

    def on_epoch_end(self, epoch, logs=None):
        self.tracker.record((epoch + 1) * self.eval_every, float(logs["bits_per_dim"]))

    def on_train_end(self, logs=None):
        for w, value in zip(self.model.trainable_weights, self.tracker.best[2]):
            w.assign(value)


def reference_loop(dist, lr, split, steps, batch_size, seed):
    """Model c only: TFP's MAF holds tf-keras variables, which a Keras 3 model cannot train,
    so this TFP reference keeps a plain loop (maximum likelihood on uniform noise)."""
    dist.log_prob(tf.zeros([1, D]))
    variables = list(dist.trainable_variables)
    optimizer = keras.optimizers.Adam(lr)
    pixels = tf.constant(split.train)
    n = int(pixels.shape[0])

    @tf.function
    def step(i):
        s = tf.stack([tf.constant(seed, tf.int32), i])
        idx = tf.random.stateless_uniform([batch_size], s, 0, n, dtype=tf.int32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(dq.negative_bound(dist.log_prob, tf.gather(pixels, idx), L,
                                                    seed=s + 7))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    start = time.time()
    for i in range(1, steps + 1):
        step(tf.constant(i, tf.int32))
    val = dq.evaluate_bits_per_dim(dist.log_prob, split.validation, L, num_samples=1, seed=123)
    return {"step": [steps], "val_bits_per_dim": [val], "train_bits_per_dim": [None],
            "best_step": steps, "best_val_bits_per_dim": val, "seconds": time.time() - start,
            "parameters": parameter_count(variables)}


PEERS = {"zuko_nsf": ("NSF", 8), "zuko_maf": ("MAF", 5)}  # zuko family, transforms


def pipeline(split, batch_size, seed):
    """The training images, reshuffled every pass, in batches of ``batch_size`` (every model)."""
    return (tf.data.Dataset.from_tensor_slices(split.train)
            .shuffle(len(split.train), seed=seed).repeat().batch(batch_size, drop_remainder=True))


def peer_train(name, split, steps, batch_size, eval_every, seed, smoke):
    """A zuko flow (``PEERS``) under this script's protocol: each batch dequantised as
    ``DequantizedBound`` does (uniform noise, logit space), Adam 1e-3 on ``−mean log p(y)``,
    the validation bound every ``eval_every`` steps with the best state restored. Returns
    ``(log_prob_fn, sample_fn, history)``, or ``(None, None, skip note)`` without torch and
    zuko."""
    torch, zuko, reason = peers._import_peers()
    if torch is None:
        return None, None, peers.skip_message(reason)
    torch.manual_seed(seed)
    family, transforms = PEERS[name]
    hidden = [16] if smoke else [128, 128]
    flow = getattr(zuko.flows, family)(D, transforms=2 if smoke else transforms,
                                       hidden_features=hidden, activation=torch.nn.ReLU)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3, eps=1e-7)

    def log_prob(y):
        with torch.no_grad():
            return tf.constant(flow().log_prob(torch.tensor(np.asarray(y))).numpy())

    def sample(n):
        with torch.no_grad():
            return tf.constant(flow().sample((n,)).numpy())

    def state():
        return {k: t.clone() for k, t in flow.state_dict().items()}

    tracker = ValidationTracker(log_prob, None, split, state)
    tracker.record(0)
    batches, start, train_bpd = iter(pipeline(split, batch_size, seed)), time.time(), []
    for step in range(1, steps + 1):
        y, _ = dq.uniform_dequantize(next(batches), L, seed=[seed, step])
        loss = -flow().log_prob(torch.tensor(y.numpy())).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        train_bpd.append(loss.item() / (D * np.log(2.0)))  # as fit's logged bits_per_dim
        if step % eval_every == 0 or step == steps:
            tracker.record(step, float(np.mean(train_bpd)))
            train_bpd = []
    flow.load_state_dict(tracker.best[2])
    history = tracker.results()
    history.update(seconds=time.time() - start,
                   parameters=int(sum(p.numel() for p in flow.parameters())),
                   versions={"torch": torch.__version__, "zuko": zuko.__version__})
    return log_prob, sample, history


def train(dist, dequantizer, optimizer, split, steps, batch_size, eval_every, seed,
          jit_compile=True):
    """``FlowModel.fit`` on the dequantised bound (``objectives.DequantizedBound``: uniform, or
    jointly with the variational dequantiser); returns the history and restores the
    best-validation weights. With uniform noise the gradient is that of ``−log p_Y(y)``."""
    objective = DequantizedBound(L, dequantizer=dequantizer, seed=seed)
    model = FlowModel(dist, objective=objective)
    model.compile(optimizer, jit_compile=jit_compile)
    data = pipeline(split, batch_size, seed)
    best = BestValidation(dist, dequantizer, split, eval_every)
    start = time.time()
    epochs = max(1, steps // eval_every)
    model.fit(data, epochs=epochs, steps_per_epoch=min(eval_every, steps), verbose=0,
              callbacks=[best])
    history = best.tracker.results()
    history.update(seconds=time.time() - start,
                   parameters=parameter_count(model.trainable_weights))
    return history


def samples_figure(sample, test, name, test_bpd, path, n=32):
    """PNG of ``n`` test images (top rows) above ``n`` samples ``y = sample(n)`` mapped back to
    ``u = from_logit(y)`` clipped to ``[0, 1]`` (bottom rows): samples vs data."""
    from tfp_flows import plot

    samples = np.clip(dq.from_logit(sample(n)).numpy(), 0.0, 1.0)
    images = np.concatenate([test[:n] / (L - 1), samples]).reshape(-1, 8, 8)
    cols = 16
    fig = plot.new_figure(cols * 0.5 + 0.4, len(images) // cols * 0.5 + 0.6)
    axes = fig.subplots(len(images) // cols, cols, squeeze=False)
    for ax, image in zip(axes.ravel(), images):
        ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{name}: test images (top {n // cols} rows) vs samples (bottom); "
                 f"test {test_bpd:.3f} bits/dim", fontsize=9)
    fig.tight_layout()
    return plot.save(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--test-samples", type=int, default=4)
    parser.add_argument("--models", default="a,a_var,a_spline,b,c,d,nsf,maf,zuko_nsf,zuko_maf")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few steps")
    parser.add_argument("--figures", default=None,
                        help="folder for one samples-vs-data PNG per model (default: none)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other models' results of the existing JSON")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.eval_every, args.test_samples = 6, 3, 1
    tf.keras.utils.set_random_seed(args.seed)
    split = digits.load(seed=args.seed, validation_fraction=0.15)
    print(f"digits: train {len(split.train)}, validation {len(split.validation)}, "
          f"test {len(split.test)}; {args.steps} steps of batch {args.batch_size}")
    results = {}
    for name in args.models.split(","):
        print(f"[{name}]", flush=True)
        if name in PEERS:
            log_prob, sample, hist = peer_train(name, split, args.steps, args.batch_size,
                                                args.eval_every, args.seed, args.smoke)
            if log_prob is None:
                print(f"    {hist}", flush=True)
                continue
            vd, lr, opt = None, 1e-3, "adam"
        else:
            dist, vd, lr, opt = build(name, args.smoke, args.seed)
            if name == "c":
                hist = reference_loop(dist, lr, split, args.steps, args.batch_size, args.seed)
            else:
                jit = VARIANTS.get(name, {}).get("transformer") != "spline"
                hist = train(dist, vd, make_optimizer(opt, lr, args.steps), split, args.steps,
                             args.batch_size, args.eval_every, args.seed, jit_compile=jit)
                hist["jit_compile"] = jit
            log_prob, sample = dist.log_prob, functools.partial(dist.sample, seed=args.seed)
        test = dq.evaluate_bits_per_dim(log_prob, split.test, L, dequantizer=vd,
                                        num_samples=args.test_samples, seed=999)
        results[name] = dict(test_bits_per_dim=test, learning_rate=lr, optimizer=opt,
                             command=" ".join(sys.argv), **hist)
        if opt == "adamw":
            results[name]["weight_decay"] = WEIGHT_DECAY
        if opt == "schedule":
            results[name]["learning_rate"] = "flow_optimizer(steps) defaults (peak 4e-3)"
        print(f"    test {test:.4f} bits/dim (best validation step {hist['best_step']}, "
              f"{hist['parameters']} parameters)", flush=True)
        if args.figures:
            print("    wrote " + samples_figure(sample, split.test, name, test, os.path.join(
                args.figures, f"digits_{name}_samples.png")), flush=True)
    print("\nmodel            params   best step   val bits/dim   test bits/dim")
    for name, r in results.items():
        print(f"{name:15s} {r['parameters']:8d} {r['best_step']:10d} "
              f"{r['best_val_bits_per_dim']:13.4f} {r['test_bits_per_dim']:14.4f}")
    print(f"(uniform over {L} levels: {np.log2(L):.4f} bits/dim)")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "digits_smoke.json" if args.smoke else "digits.json")
    record = dict(config=vars(args), platform=platform.platform(), tensorflow=tf.__version__,
                  tfp=tfp.__version__, results=results)
    if args.merge and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        record["results"] = {**old["results"], **results}
        record["earlier_configs"] = old.get("earlier_configs", []) + [old["config"]]
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
