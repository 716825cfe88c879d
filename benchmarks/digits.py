"""Digits benchmark (issue 6): test bits/dim of four density models on 8×8 digits.

All models see the same data transform (uniform dequantisation to logit space, see
``tfp_flows.dequantization``), the same step budget and batch size (512), and are selected on
a validation split carved from the training images: every ``--eval-every`` steps the
validation bound is computed with fixed noise, and the best weights are restored at the end.
Test bits/dim is the bound on the discrete test pixels averaged over ``--test-samples``
noise draws.

Models:
  a  multi-scale RealNVP, conv couplings (``tfp_flows.multiscale``), uniform dequantisation
  a_var  the same flow trained jointly with a variational dequantiser ``q(v|p)``
  b  plain 8-coupling RealNVP on the flat 64-D vector (``tfp_flows.flows.realnvp``)
  c  TFP ``tfb.MaskedAutoregressiveFlow`` (MADE networks; tf-keras variables, custom loop)
  d  diagonal Gaussian in logit space

Usage: ``python benchmarks/digits.py [--steps 1000] [--smoke] [--out benchmarks/results]``.
"""

import argparse
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

tfb, tfd = tfp.bijectors, tfp.distributions
D, L = digits.EVENT_SIZE, digits.LEVELS


def multiscale_flow(smoke, seed):
    if smoke:
        return multiscale.multiscale_realnvp(couplings_per_scale=2, final_couplings=2,
                                             hidden_layers=(1,), network="conv", filters=8,
                                             seed=seed)
    return multiscale.multiscale_realnvp(hidden_layers=(1, 1), network="conv", filters=32,
                                         seed=seed)


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
    """Returns ``(distribution, dequantizer or None, learning rate)``."""
    if name in ("a", "a_var"):
        vd = None
        if name == "a_var":
            vd = dq.VariationalDequantizer(D, L, num_couplings=1 if smoke else 2,
                                           hidden_layers=(16,) if smoke else (128,), seed=seed)
        return multiscale_flow(smoke, seed), vd, 1e-3
    if name == "b":
        hidden = (16,) if smoke else (128, 128)
        return flows.realnvp(D, 2 if smoke else 8, hidden_layers=hidden, seed=seed), None, 1e-3
    if name == "c":
        return maf(smoke, seed), None, 1e-3
    if name == "d":
        return gaussian(), None, 1e-2
    raise ValueError(f"Unknown model {name!r}.")


def parameter_count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def train(dist, dequantizer, lr, split, steps, batch_size, eval_every, seed):
    """Adam on the negative bound; returns the history and restores the best-validation weights.

    The loss is the per-image negative bound (nats); with uniform noise its gradient is that
    of ``−log p_Y(y)``, the ``log|dy/du|`` and ``D·log L`` terms being parameter-free.
    """
    dist.log_prob(tf.zeros([1, D]))  # create lazily-built variables
    variables = list(dist.trainable_variables)
    if dequantizer is not None:
        dequantizer.sample_and_log_prob(split.train[:1], seed=[0, 0])
        variables += list(dequantizer.trainable_variables)
    optimizer = keras.optimizers.Adam(lr)
    train_pixels = tf.constant(split.train)
    n = int(train_pixels.shape[0])

    @tf.function
    def step(i):
        s = tf.stack([tf.constant(seed, tf.int32), i])
        idx = tf.random.stateless_uniform([batch_size], s, 0, n, dtype=tf.int32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(dq.negative_bound(dist.log_prob, tf.gather(train_pixels, idx),
                                                    L, dequantizer=dequantizer, seed=s + 7))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    def val_bpd():
        return dq.evaluate_bits_per_dim(dist.log_prob, split.validation, L,
                                        dequantizer=dequantizer, num_samples=1, seed=123)

    best = (val_bpd(), 0, [v.numpy() for v in variables])
    history = {"step": [0], "val_bits_per_dim": [best[0]], "train_bits_per_dim": [None]}
    start = time.time()
    for i in range(1, steps + 1):
        loss = float(step(tf.constant(i, tf.int32)))
        if i % eval_every == 0 or i == steps:
            v = val_bpd()
            history["step"].append(i)
            history["val_bits_per_dim"].append(v)
            history["train_bits_per_dim"].append(loss / (D * np.log(2.0)))
            if v < best[0]:
                best = (v, i, [x.numpy() for x in variables])
            print(f"    step {i:5d}  train {loss / (D * np.log(2.0)):.3f}  val {v:.3f} "
                  f"bits/dim  ({time.time() - start:.0f}s)", flush=True)
    for var, value in zip(variables, best[2]):
        var.assign(value)
    history.update(best_step=best[1], best_val_bits_per_dim=best[0],
                   seconds=time.time() - start, parameters=parameter_count(variables))
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--test-samples", type=int, default=4)
    parser.add_argument("--models", default="a,a_var,b,c,d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few steps")
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
        dist, vd, lr = build(name, args.smoke, args.seed)
        hist = train(dist, vd, lr, split, args.steps, args.batch_size, args.eval_every,
                     args.seed)
        test = dq.evaluate_bits_per_dim(dist.log_prob, split.test, L, dequantizer=vd,
                                        num_samples=args.test_samples, seed=999)
        results[name] = dict(test_bits_per_dim=test, learning_rate=lr, **hist)
        print(f"    test {test:.4f} bits/dim (best validation step {hist['best_step']}, "
              f"{hist['parameters']} parameters)", flush=True)
    print("\nmodel   params   best step   val bits/dim   test bits/dim")
    for name, r in results.items():
        print(f"{name:6s} {r['parameters']:8d} {r['best_step']:10d} "
              f"{r['best_val_bits_per_dim']:13.4f} {r['test_bits_per_dim']:14.4f}")
    print(f"(uniform over {L} levels: {np.log2(L):.4f} bits/dim)")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "digits_smoke.json" if args.smoke else "digits.json")
    with open(path, "w") as f:
        json.dump(dict(config=vars(args), platform=platform.platform(),
                       tensorflow=tf.__version__, tfp=tfp.__version__, results=results),
                  f, indent=1)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
