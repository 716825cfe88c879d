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
from tfp_flows.training import FlowModel  # noqa: E402
from tfp_flows.training.objectives import DequantizedBound  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions
D, L = digits.EVENT_SIZE, digits.LEVELS


def multiscale_flow(smoke, seed, transformer="affine"):
    if smoke:
        return multiscale.multiscale_realnvp(couplings_per_scale=2, final_couplings=2,
                                             hidden_layers=(1,), network="conv", filters=8,
                                             transformer=transformer, seed=seed)
    return multiscale.multiscale_realnvp(hidden_layers=(1, 1), network="conv", filters=32,
                                         transformer=transformer, seed=seed)


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
    if name == "a_spline":
        return multiscale_flow(smoke, seed, transformer="spline"), None, 1e-3
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


class BestValidation(keras.callbacks.Callback):
    """Every epoch (``eval_every`` steps): the validation bound with fixed noise; keeps the
    best weights (of the flow and the dequantiser) and restores them at the end."""

    def __init__(self, dist, dequantizer, split, eval_every):
        super().__init__()
        self.dist, self.dequantizer, self.split = dist, dequantizer, split
        self.eval_every = eval_every
        self.history = {"step": [], "val_bits_per_dim": [], "train_bits_per_dim": []}
        self.start = time.time()

    def val_bpd(self):
        return dq.evaluate_bits_per_dim(self.dist.log_prob, self.split.validation, L,
                                        dequantizer=self.dequantizer, num_samples=1, seed=123)

    def record(self, step, train_bpd):
        v = self.val_bpd()
        self.history["step"].append(step)
        self.history["val_bits_per_dim"].append(v)
        self.history["train_bits_per_dim"].append(train_bpd)
        if not self.history["val_bits_per_dim"][:-1] or v < self.best[0]:
            self.best = (v, step, [w.numpy() for w in self.model.trainable_weights])
        return v

    def on_train_begin(self, logs=None):
        self.record(0, None)

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.eval_every
        v = self.record(step, float(logs["bits_per_dim"]))
        print(f"    step {step:5d}  train {logs['bits_per_dim']:.3f}  val {v:.3f} bits/dim  "
              f"({time.time() - self.start:.0f}s)", flush=True)

    def on_train_end(self, logs=None):
        for w, value in zip(self.model.trainable_weights, self.best[2]):
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


def train(dist, dequantizer, lr, split, steps, batch_size, eval_every, seed):
    """``FlowModel.fit`` on the dequantised bound (``objectives.DequantizedBound``: uniform, or
    jointly with the variational dequantiser); returns the history and restores the
    best-validation weights. With uniform noise the gradient is that of ``−log p_Y(y)``."""
    objective = DequantizedBound(L, dequantizer=dequantizer, seed=seed)
    model = FlowModel(dist, objective=objective)
    model.compile(keras.optimizers.Adam(lr))
    data = (tf.data.Dataset.from_tensor_slices(split.train)
            .shuffle(len(split.train), seed=seed).repeat().batch(batch_size, drop_remainder=True))
    best = BestValidation(dist, dequantizer, split, eval_every)
    start = time.time()
    epochs = max(1, steps // eval_every)
    model.fit(data, epochs=epochs, steps_per_epoch=min(eval_every, steps), verbose=0,
              callbacks=[best])
    history = dict(best.history)
    history.update(best_step=best.best[1], best_val_bits_per_dim=best.best[0],
                   seconds=time.time() - start,
                   parameters=parameter_count(model.trainable_weights))
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--test-samples", type=int, default=4)
    parser.add_argument("--models", default="a,a_var,a_spline,b,c,d")
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
        if name == "c":
            hist = reference_loop(dist, lr, split, args.steps, args.batch_size, args.seed)
        else:
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
