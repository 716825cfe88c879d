"""Scaling with dimension, LU layers at D=512, and the planar flow's computed inverse.

* ``dimension``: training steps/s and peak memory for D in ``scaling_dims`` on a correlated
  Gaussian (``x = A z``, fixed seeded ``A``), all in the hand-written ``tf.function`` loop:
  coupling flows (``tfp_flows.flows.realnvp`` vs the TFP reference RealNVP) and linear LU
  flows (``lu_layers`` × our ``LULinear`` vs ``tfb.ScaleMatvecLU`` + ``tfb.Shift``), plus
  ``log_prob`` points/s of the LU flows on one batch. Timed steps: ``scaling_steps`` or
  ``scaling_max_seconds``, whichever ends first, after ``warmup_steps`` untimed steps.
* ``planar``: an ``planar_layers``-layer planar flow with random parameters
  (``w, u ~ N(0, 1)``, ``b ~ N(0, 1)``): forward vs inverse points/s on ``speed_points``
  points in ``tf.function`` (graph) and ``tf.function(jit_compile=True)`` (XLA, as
  ``FlowModel`` runs), and the round-trip error ``max |f⁻¹(f(z)) − z|`` in float32, next to
  float32's resolution ``eps32 · max|z|``.
"""

import time

import numpy as np
import tensorflow as tf

from benchmarks import protocol, reference, trainers

PLANAR_REPEATS = 21  # planar calls take milliseconds: a median over more calls


def gaussian_data(d, n, seed):
    """``[n, d]`` float32 draws of ``N(0, A Aᵀ)`` with a fixed random ``A``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=[d, d]) / np.sqrt(d) + np.eye(d)
    return (rng.normal(size=[n, d]) @ a.T).astype(np.float32)


def _ours_lu(d, layers, seed):
    import tensorflow_probability as tfp

    import tfp_flows

    tfb, tfd = tfp.bijectors, tfp.distributions
    bijectors = [tfp_flows.bijectors.LULinear(d, seed=[seed, i], name=f"lu_{i}")
                 for i in range(layers)]
    dist = tfd.TransformedDistribution(tfp_flows.flows.standard_normal(d),
                                       tfb.Chain(list(reversed(bijectors))))
    return dist, dist


def _models(config, d):
    import tfp_flows

    seed, layers, hidden = config["seed"], config["num_layers"], config["hidden_layers"]

    def ours_coupling():
        dist = tfp_flows.flows.realnvp(d, layers, hidden, seed=seed)
        return dist, dist

    return {
        "coupling/tfp_flows": ours_coupling,
        "coupling/tfp_realnvp": lambda: reference.realnvp(d, layers, hidden, seed=seed),
        "lu/tfp_flows_LULinear": lambda: _ours_lu(d, config["lu_layers"], seed),
        "lu/tfp_ScaleMatvecLU": lambda: reference.lu_flow(d, config["lu_layers"], seed),
    }


def _timed_training(pair, x, config):
    train, evaluate = pair
    trainers.build_variables(train, evaluate, x.shape[-1])
    step = trainers.make_step(train, protocol.make_optimizer(config))
    iterator = iter(protocol.train_dataset(x, config, config["seed"]))
    # Warm-up: `warmup_steps` steps, cut short after `scaling_max_seconds` (at least 2 steps:
    # tracing) for layers that take seconds per step (tfb.ScaleMatvecLU at large D).
    t0 = time.perf_counter()
    for i in range(config["warmup_steps"]):
        loss = step(next(iterator))
        if i >= 1 and time.perf_counter() - t0 > config["scaling_max_seconds"]:
            break
    loss.numpy()
    t0, steps = time.perf_counter(), 0
    while steps < config["scaling_steps"]:
        loss = step(next(iterator))
        steps += 1
        if time.perf_counter() - t0 > config["scaling_max_seconds"]:
            break
    loss.numpy()
    return steps / (time.perf_counter() - t0), evaluate, float(loss)


def dimension(config, log=print):
    """Returns ``{model: {D: {"steps_per_s", "peak_mem_mib", ["log_prob_points_per_s"]}}}``."""
    out = {}
    for d in config["scaling_dims"]:
        x = gaussian_data(d, 16 * config["batch_size"], config["seed"])
        for name, build in _models(config, d).items():
            with protocol.PeakMemory() as memory:
                rate, dist, loss = _timed_training(build(), x, config)
            r = {"steps_per_s": rate, "peak_mem_mib": memory.mib, "final_loss": loss}
            if name.startswith("lu/"):
                log_prob = tf.function(dist.log_prob)
                points = tf.constant(x[:config["batch_size"]])
                r["log_prob_points_per_s"] = protocol.points_per_second(log_prob, points, 3)
            out.setdefault(name, {})[str(d)] = r
            log(f"scaling D={d:4d} {name:24s} {rate:8.1f} steps/s  mem {memory.mib:7.1f} MiB"
                + (f"  log_prob {r['log_prob_points_per_s'] / 1e6:.2f} M/s"
                   if "log_prob_points_per_s" in r else ""))
    return out


def planar(config, log=print):
    """Returns ``{D: {"forward_points_per_s", "inverse_points_per_s", "inverse_over_forward",
    "max_roundtrip_error", "float32_resolution"}}``, the timed keys in ``tf.function`` (graph)
    and again with an ``_xla`` suffix under ``tf.function(jit_compile=True)``."""
    import tfp_flows

    out = {}
    for d in config["planar_dims"]:
        rng = np.random.default_rng(config["seed"])
        dist = tfp_flows.flows.planar(d, config["planar_layers"], seed=config["seed"])
        for layer in tfp_flows.flows.layers_of(dist):
            layer.w.assign(rng.normal(size=[d]).astype(np.float32))
            layer.u.assign(rng.normal(size=[d]).astype(np.float32))
            layer.b.assign(np.float32(rng.normal()))
        bijector = dist.bijector
        z = rng.normal(size=[config["speed_points"], d]).astype(np.float32)
        resolution = float(np.finfo(np.float32).eps * np.max(np.abs(z)))
        r = {"float32_resolution": resolution}
        for mode, jit in (("graph", False), ("xla", True)):
            forward = tf.function(bijector.forward, jit_compile=jit)
            inverse = tf.function(bijector.inverse, jit_compile=jit)
            fwd = protocol.points_per_second(forward, tf.constant(z), PLANAR_REPEATS)
            y = forward(tf.constant(z)).numpy()
            inv = protocol.points_per_second(inverse, tf.constant(y), PLANAR_REPEATS)
            z_back = inverse(tf.constant(y)).numpy()  # fresh tensor: no bijector-cache hit
            err = float(np.max(np.abs(z_back - z)))
            suffix = "" if mode == "graph" else "_xla"
            r.update({f"forward_points_per_s{suffix}": fwd, f"inverse_points_per_s{suffix}": inv,
                      f"inverse_over_forward{suffix}": fwd / inv,
                      f"max_roundtrip_error{suffix}": err})
            log(f"planar D={d:3d} {mode:5s} forward {fwd / 1e6:.2f} M/s inverse "
                f"{inv / 1e6:.2f} M/s (inverse {fwd / inv:.1f}x slower)  "
                f"max |f^-1(f(z)) - z| = {err:.2e} (eps32·max|z| = {resolution:.1e})")
        r.update(_planar_layer_residuals(tfp_flows.flows.layers_of(dist), z))
        log(f"planar D={d:3d} per layer: max |f(f^-1(y)) - y| = "
            f"{r['max_layer_residual_eps']:.1f} eps32·max|y|, min log|det J| "
            f"{r['min_layer_log_det']:.2f}")
        out[str(d)] = r
    return out


def _planar_layer_residuals(layers, z):
    """Backward error of each layer's inverse, which no float32 solver can beat by much:
    ``max_k max|f_k(f_k⁻¹(y_k)) − y_k| / (eps32 · max|y_k|)`` with ``y_k`` layer k's output on
    ``z``, and ``min_k min log|det ∂f_k/∂x|`` (how strongly a layer contracts: the composed
    round trip's forward error grows with the product of these contractions)."""
    eps = float(np.finfo(np.float32).eps)
    worst, min_log_det, x = 0.0, np.inf, z
    for layer in layers:
        y = layer.forward(tf.constant(x)).numpy()
        x_back = layer.inverse(tf.constant(y.copy())).numpy()  # fresh tensors: no cache hits
        residual = np.max(np.abs(layer.forward(tf.constant(x_back)).numpy() - y))
        worst = max(worst, float(residual / (eps * np.max(np.abs(y)))))
        log_det = layer.forward_log_det_jacobian(tf.constant(x.copy()), event_ndims=1)
        min_log_det = min(min_log_det, float(np.min(log_det)))
        x = y
    return {"max_layer_residual_eps": worst, "min_layer_log_det": min_log_det}
