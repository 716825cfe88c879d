"""Two ways to train a flow under the protocol, both timed the same way.

* ``train_loop``: the hand-written ``tf.function`` step a TFP user writes (GradientTape,
  Keras Adam with global-norm clipping), fed by ``protocol.train_dataset``.
* ``train_fit``: ``tfp_flows.training.FlowModel(...).fit`` on the same dataset.
* ``make_sampled_step`` / ``make_loop`` (speed only): the strongest loops a careful TFP user
  writes (issue 14): batches drawn in the graph, and many steps in one ``tf.function`` call.

Both train ``steps`` steps; the first ``warmup_steps`` are untimed, and the test NLL
(mean ``-log q(x)`` in nats over the test set) is evaluated every ``eval_every`` steps with the
clock stopped. Returned dict: ``steps_per_s``, ``curve`` (list of ``[step, nll]``), ``test_nll``,
``peak_mem_mib``.
"""

import contextlib
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import protocol


def _nll_fn(eval_dist):
    return tf.function(lambda x: -tf.reduce_mean(eval_dist.log_prob(x)))


def _finish(curve, seconds, timed_steps, memory):
    nll = curve[-1][1] if curve else float("nan")
    return {"steps_per_s": timed_steps / seconds if seconds > 0 else float("nan"),
            "curve": [[int(s), protocol.finite_or_none(v)] for s, v in curve],
            "test_nll": protocol.finite_or_none(nll), "peak_mem_mib": memory.mib}


def make_step(train_dist, optimizer, jit=False, training_context=None):
    """Returns ``step(batch) -> loss``: one Adam step on the mean negative log-likelihood."""
    variables = list(train_dist.trainable_variables)
    context = training_context or contextlib.nullcontext

    @tf.function(jit_compile=jit)
    def step(batch):
        with context():  # read while tracing: tfp_flows.BatchNorm uses batch statistics
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(train_dist.log_prob(batch))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return step


def make_sampled_step(train_dist, optimizer, x_train, batch_size, jit=False, seed=0):
    """``(step, body)``: ``step() -> loss`` is one Adam step on a batch drawn in the graph
    (``tf.random.Generator`` indices into the training set, ``tf.gather``), no input pipeline;
    ``body`` is the same step as a plain Python function, for ``make_loop``."""
    variables = list(train_dist.trainable_variables)
    data = tf.constant(np.asarray(x_train, np.float32))
    generator = tf.random.Generator.from_seed(seed)
    optimizer.build(variables)  # slots exist before any loop body is traced

    def body():
        batch = tf.gather(data, generator.uniform([batch_size], 0, data.shape[0], tf.int32))
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(train_dist.log_prob(batch))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return tf.function(body, jit_compile=jit), body


def make_loop(body, jit=False):
    """``loop(steps) -> last loss``: ``steps`` calls of ``body`` in one ``tf.function``
    (a ``tf.while_loop``; under ``jit`` one XLA computation for the whole loop)."""

    @tf.function(jit_compile=jit)
    def loop(steps):
        loss = tf.constant(0.0)
        for _ in tf.range(steps):
            loss = body()
        return loss

    return loop


def build_variables(train_dist, eval_dist, event_size):
    """Creates lazily built variables (first call) in both modes."""
    zeros = tf.zeros([2, event_size])
    eval_dist.log_prob(zeros)
    train_dist.log_prob(zeros)


def train_loop(train_dist, eval_dist, dataset, test_x, config, steps, jit=False,
               training_context=None, optimizer=None):
    """Trains with the hand-written loop; see the module docstring for the protocol.
    ``optimizer`` defaults to ``protocol.make_optimizer(config)``."""
    warmup, eval_every = config["warmup_steps"], config["eval_every"]
    test_x = tf.constant(test_x)
    with protocol.PeakMemory() as memory:
        build_variables(train_dist, eval_dist, int(test_x.shape[-1]))
        step = make_step(train_dist, optimizer or protocol.make_optimizer(config), jit,
                         training_context)
        nll = _nll_fn(eval_dist)
        watch, curve = protocol.Stopwatch(), []
        iterator = iter(dataset)
        t0 = None
        for s in range(1, steps + 1):
            loss = step(next(iterator))
            if s == warmup:
                loss.numpy()
                t0 = time.perf_counter()
            if s % eval_every == 0 or s == steps:
                loss.numpy()
                if t0 is not None:
                    watch.seconds += time.perf_counter() - t0
                curve.append((s, float(nll(test_x))))
                t0 = time.perf_counter() if s >= warmup else None
    return _finish(curve, watch.seconds, steps - warmup, memory)


class _EpochClock(keras.callbacks.Callback):
    """Times epochs only and evaluates the test NLL after each, with the clock stopped."""

    def __init__(self, nll, test_x, first_step, steps_per_epoch):
        super().__init__()
        self.nll, self.test_x = nll, test_x
        self.step, self.steps_per_epoch = first_step, steps_per_epoch
        self.watch, self.curve = protocol.Stopwatch(), []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.watch.seconds += time.perf_counter() - self._t0
        self.step += self.steps_per_epoch
        self.curve.append((self.step, float(self.nll(self.test_x))))


def train_fit(dist, dataset, test_x, config, steps, optimizer=None, **compile_kwargs):
    """Trains with ``FlowModel.fit``: an untimed ``warmup_steps`` fit, then timed epochs of
    ``eval_every`` steps (``steps - warmup_steps`` must be a multiple of ``eval_every``).
    ``optimizer`` defaults to ``protocol.make_optimizer(config)``."""
    from tfp_flows.training import FlowModel

    warmup, eval_every = config["warmup_steps"], config["eval_every"]
    test_x = tf.constant(test_x)
    with protocol.PeakMemory() as memory:
        model = FlowModel(dist)
        model.compile(optimizer=optimizer or protocol.make_optimizer(config), **compile_kwargs)
        nll = _nll_fn(dist)
        model.fit(dataset, epochs=1, steps_per_epoch=warmup, verbose=0)
        curve = [(warmup, float(nll(test_x)))]
        clock = _EpochClock(nll, test_x, warmup, eval_every)
        epochs = (steps - warmup) // eval_every
        model.fit(dataset.skip(warmup), epochs=epochs, steps_per_epoch=eval_every, verbose=0,
                  callbacks=[clock])
    return _finish(curve + clock.curve, clock.watch.seconds, epochs * eval_every, memory)


def curve_at(result, step):
    """The test NLL recorded at ``step`` (None if absent)."""
    return next((v for s, v in result["curve"] if s == step), None)


def rounds_rate(run_round, rounds):
    """Median steps/s over ``rounds`` calls of ``run_round() -> (steps, seconds)``."""
    rates = []
    for _ in range(rounds):
        n, seconds = run_round()
        rates.append(n / seconds)
    return float(np.median(rates)), rates
