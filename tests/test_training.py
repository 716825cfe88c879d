"""FlowModel: weights, fit/evaluate/predict, training flag, clipping, schedules, NaN guards,
input checks, and the custom loop ``train``."""

import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows import _compat
from tfp_flows.training import FlowModel, flow_optimizer, objectives, train

tfb, tfd = tfp.bijectors, tfp.distributions


def moons(n=512, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper[:, None], np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    return (x + 0.05 * rng.normal(size=x.shape)).astype("float32")


def small_flow(kind="realnvp", seed=0, **kwargs):
    if kind == "realnvp":
        return tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[16, 16], seed=seed,
                                       **kwargs)
    return tfp_flows.flows.planar(2, num_layers=3, seed=seed)


def weights(model):
    return [v.numpy().copy() for v in model.trainable_weights]


class Snapshots(keras.callbacks.Callback):
    """Records the weights and the guard counters after every batch."""

    def __init__(self):
        super().__init__()
        self.weights, self.consecutive = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append(weights(self.model))
        self.consecutive.append(int(logs["consecutive_bad_steps"]))


# ------------------------------------------------------------------ weights
def test_trainable_weights_are_the_flow_variables():
    dist = small_flow(batch_norm=True)
    model = FlowModel(dist)
    flow_ids = {id(v) for v in dist.trainable_variables}
    assert {id(v.value) for v in model.trainable_weights} == flow_ids
    assert len(model.trainable_weights) == len(flow_ids)
    moving = {id(v) for v in dist.variables if not v.trainable}
    # the guard's state (so that resume is exact) and the structure fingerprint
    state = {id(v.value) for v in model.guard.variables + [model.structure]}
    assert moving and {id(v.value) for v in model.non_trainable_weights} == moving | state
    lines = []
    model.summary(print_fn=lambda s, **kw: lines.append(s))
    text = "\n".join(lines)
    n = sum(int(np.prod(v.shape)) for v in dist.trainable_variables)
    assert re.search(rf"Trainable params: {n:,}\b", text), text


def test_foreign_variable_is_refused():
    dist = tfd.TransformedDistribution(tfp_flows.flows.standard_normal(2),
                                       tfb.Shift(tf.Variable([0.0, 0.0])))
    with pytest.raises(TypeError, match="not created by tfp_flows"):
        FlowModel(dist)


# ------------------------------------------------------------------ fit / evaluate / predict
def test_fit_numpy_and_dataset_reduce_nll_and_report_bits_per_dim():
    x = moons()
    model = FlowModel(small_flow())
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    before = -float(np.mean(model.log_prob(x)))
    hist = model.fit(x, batch_size=128, epochs=4, verbose=0, validation_data=x[:128]).history
    ds = tf.data.Dataset.from_tensor_slices(x).batch(128)
    hist2 = model.fit(ds, epochs=4, verbose=0).history
    after = -float(np.mean(model.log_prob(x)))
    assert after < before - 0.3
    assert hist2["loss"][-1] < hist["loss"][0]
    np.testing.assert_allclose(hist["bits_per_dim"], np.array(hist["loss"]) / (2 * np.log(2)),
                               rtol=1e-5)
    assert len(hist["val_loss"]) == 4 and np.all(np.isfinite(hist["val_loss"]))
    logs = model.evaluate(x, verbose=0, batch_size=512, return_dict=True)
    np.testing.assert_allclose(logs["loss"], after, rtol=1e-4)
    np.testing.assert_allclose(model.predict(x[:50], verbose=0), model.log_prob(x[:50]),
                               rtol=1e-5, atol=1e-5)
    samples = model.sample(7, seed=3).numpy()
    assert samples.shape == (7, 2)
    np.testing.assert_array_equal(samples, model.sample(7, seed=3).numpy())


def test_training_flag_reaches_batch_norm_only_in_fit():
    x = moons(256) * 3.0 + 1.0  # far from the initial moving stats (0, 1)
    dist = small_flow(batch_norm=True)
    model = FlowModel(dist)
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
    bn = [b for b in tfp_flows.flows.layers_of(dist)
          if isinstance(b, tfp_flows.bijectors.BatchNorm)]
    moving = lambda: [b.moving_mean.numpy().copy() for b in bn]  # noqa: E731
    start = moving()
    model.evaluate(x, verbose=0)
    model.predict(x, verbose=0)
    model.sample(10, seed=1)
    model.log_prob(x)
    for a, b in zip(start, moving()):
        np.testing.assert_array_equal(a, b)
    model.fit(x, batch_size=64, epochs=1, verbose=0)
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(start, moving()))
    # evaluate used the moving statistics: it equals the inference-mode log-density
    np.testing.assert_allclose(model.evaluate(x, verbose=0, batch_size=256)[0],
                               -np.mean(model.log_prob(x)), rtol=1e-5)


def one_step_update(optimizer, x):
    model = FlowModel(small_flow(seed=1))
    model.compile(optimizer, jit_compile=False)
    w0 = weights(model)
    model.fit(x, batch_size=len(x), epochs=1, verbose=0)
    return np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(weights(model), w0)))


@pytest.mark.parametrize("clip", [dict(global_clipnorm=1e-3), dict(clipnorm=1e-3),
                                  dict(clipvalue=1e-4)])
def test_clipping_is_honoured(clip):
    x = moons(128) * 4.0  # large gradients at initialisation
    free = one_step_update(keras.optimizers.SGD(0.1), x)
    clipped = one_step_update(keras.optimizers.SGD(0.1, **clip), x)
    assert 0 < clipped < 0.1 * free
    if "global_clipnorm" in clip:
        np.testing.assert_allclose(clipped, 0.1 * 1e-3, rtol=1e-3)


def test_learning_rate_schedule_and_default_jit_with_steps_per_execution():
    x = moons(512)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=5, decay_rate=0.5)
    model = FlowModel(small_flow())
    model.compile(keras.optimizers.Adam(schedule), steps_per_execution=4)
    assert model.jit_compile is True
    hist = model.fit(x, batch_size=64, epochs=2, verbose=0).history
    assert int(model.optimizer.iterations) == 16
    np.testing.assert_allclose(float(model.optimizer.learning_rate), float(schedule(16)),
                               rtol=1e-6)
    assert hist["loss"][1] < hist["loss"][0]


@pytest.mark.parametrize("source", ["arrays", "dataset"])
def test_fused_fit_traces_the_step_once_for_every_batch_shape(monkeypatch, source):
    """The fused XLA steps call the step's one trace (tracing a spline flow's gradient takes
    tens of seconds): an epoch with a short last batch and a second epoch trace it once; on
    arrays the execution around it too (fresh models traced per batch size, as before, made
    TensorFlow warn of "frequent retracing" after a few short fits)."""
    model = FlowModel(small_flow())
    model.compile(keras.optimizers.Adam(1e-3), steps_per_execution=4)
    traces = []
    step = model.train_step
    monkeypatch.setattr(model, "train_step", lambda data: traces.append(1) or step(data))
    x = moons(200)  # 3 batches of 64, one of 8
    if source == "arrays":
        model.fit(x, batch_size=64, epochs=2, verbose=0)
    else:
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(64), epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 8
    assert len(traces) == 1
    if source == "arrays":
        assert model.train_function.array_steps.experimental_get_tracing_count() == 1


_COLLECTED = """
import gc, sys, weakref
import keras, numpy as np, tensorflow as tf
import tfp_flows
from tfp_flows.training import FlowModel, step, train

x = np.random.default_rng(0).normal(size=[256, 2]).astype("float32")
dist = tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[16, 16], seed=0)
graphs, original = [], step.loss_and_gradients

def recording(*args, **kwargs):  # the graph of the traced train step
    graphs.append(weakref.ref(tf.compat.v1.get_default_graph()))
    return original(*args, **kwargs)

step.loss_and_gradients = recording
if sys.argv[1] == "fit":
    model = FlowModel(dist)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, batch_size=64, epochs=1, verbose=0, validation_data=x[:64])
    model.evaluate(x[:64], verbose=0)
    model.predict(x[:64], verbose=0)
    del model
else:
    train(dist, x, keras.optimizers.Adam(1e-3), steps=4, batch_size=64, progress=False)
step.loss_and_gradients = original
refs = [weakref.ref(b) for b in dist.bijector.bijectors] + [
    weakref.ref(v) for v in dist.trainable_variables]
del dist
gc.collect()
print(len(graphs), sum(g() is not None for g in graphs), sum(r() is not None for r in refs))
"""


@pytest.mark.parametrize("runner", ["fit", "train"])
def test_a_trained_flow_is_garbage_collected_with_its_traced_graphs(runner, tmp_path):
    """TFP's bijector cache and ``tf.custom_gradient`` (the MLP's output layer) hold every
    traced graph; ``fit`` / ``evaluate`` / ``predict`` and ``train`` let their traces go, so
    the flow's bijectors, variables and graphs go with the last reference to them. In a fresh
    interpreter: pytest's own machinery keeps objects of a test alive."""
    script = tmp_path / "collected.py"
    script.write_text(_COLLECTED)
    out = subprocess.run([sys.executable, str(script), runner], capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    traced, graphs_alive, objects_alive = (int(v) for v in out[-3:])
    assert traced >= 1
    assert (graphs_alive, objects_alive) == (0, 0)


def test_flow_optimizer_schedule_values():
    opt = flow_optimizer(1100, learning_rate=4e-3, warmup_steps=100, global_clipnorm=2.0)
    assert isinstance(opt, keras.optimizers.Adam) and opt.global_clipnorm == 2.0
    lr = _compat.learning_rate_object(opt)  # the schedule (learning_rate reads it at `iterations`)
    expected = {0: 0.0, 50: 2e-3, 100: 4e-3, 600: 2e-3, 1100: 0.0, 5000: 0.0}
    for step, value in expected.items():
        np.testing.assert_allclose(float(lr(step)), value, atol=1e-9)
    no_warmup = _compat.learning_rate_object(
        flow_optimizer(10, learning_rate=1e-3, warmup_steps=0))
    np.testing.assert_allclose([float(no_warmup(t)) for t in (0, 5, 10)], [1e-3, 5e-4, 0.0],
                               atol=1e-9)
    # default warm-up: T // 10
    short = _compat.learning_rate_object(flow_optimizer(50, learning_rate=1e-3))
    np.testing.assert_allclose([float(short(t)) for t in (0, 5, 50)], [0.0, 1e-3, 0.0],
                               atol=1e-9)


def test_flow_optimizer_trains_backs_off_and_saves(tmp_path):
    x = moons(512)
    model = FlowModel(small_flow(), backoff_after=1)
    model.compile(flow_optimizer(16, learning_rate=1e-2, warmup_steps=2), jit_compile=False)
    hist = model.fit(x, batch_size=64, epochs=2, verbose=0).history
    assert int(model.optimizer.iterations) == 16 and hist["loss"][1] < hist["loss"][0]
    assert float(model.optimizer.learning_rate) == 0.0  # decayed to zero at total_steps
    model.guard.lr_scale.assign(0.5)  # what a back-off does to a schedule
    reference = _compat.learning_rate_object(flow_optimizer(16, 1e-2, 2))
    np.testing.assert_allclose(float(_compat.learning_rate_object(model.optimizer)(6)),
                               0.5 * float(reference(6)))
    path = str(tmp_path / "scheduled.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.log_prob(x[:8]), model.log_prob(x[:8]), rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(total_steps=0), r"`total_steps` must be a positive integer, got 0"),
    (dict(total_steps=100, warmup_steps=100), r"`warmup_steps` must be an integer in \[0, "),
    (dict(total_steps=100, warmup_steps=-1), r"`warmup_steps`.*got -1"),
    (dict(total_steps=100, learning_rate=0.0), r"`learning_rate` must be a positive number"),
    (dict(total_steps=100, global_clipnorm=-5.0), r"`global_clipnorm` must be a positive"),
    (dict(total_steps=100, warmup_steps=2.5), r"`warmup_steps`.*got 2.5"),
])
def test_flow_optimizer_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flow_optimizer(**kwargs)


# ------------------------------------------------------------------ NaN guards
def test_guard_too_large_learning_rate_stops_with_last_good_weights():
    x = moons(512)
    model = FlowModel(small_flow(), backoff_after=2, stop_after=5)
    model.compile(keras.optimizers.SGD(1e7), jit_compile=False, steps_per_execution=1)
    snaps = Snapshots()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        hist = model.fit(x, batch_size=32, epochs=3, verbose=0, callbacks=[snaps]).history
    assert len(snaps.weights) < 3 * 16, "training should have stopped early"
    assert snaps.consecutive[-1] == 5
    assert "non-finite" in model.stop_reason
    assert hist["skipped_steps"][-1] >= 5 and hist["lr_backoffs"][-1] == 2
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 1e7 * 0.25, rtol=1e-6)
    last_good = snaps.weights[len(snaps.consecutive) - 1 - snaps.consecutive[::-1].index(0)]
    for w, g in zip(weights(model), last_good):
        assert np.all(np.isfinite(w))
        np.testing.assert_array_equal(w, g)
    assert int(model.optimizer.iterations) == snaps.consecutive.index(5) - 4


def test_guard_stop_is_the_same_with_the_default_steps_per_execution():
    # fit sees the stop only at the end of an execution (32 steps by default); the steps
    # after the stop must change nothing, so weights and counters match per-batch stepping.
    x = moons(512)
    out = []
    for spe in (1, None):
        model = FlowModel(small_flow(), backoff_after=2, stop_after=5)
        model.compile(keras.optimizers.SGD(1e7), jit_compile=False, steps_per_execution=spe)
        with pytest.warns(RuntimeWarning, match="non-finite"):
            hist = model.fit(x, batch_size=32, epochs=3, verbose=0, shuffle=False).history
        out.append((weights(model), hist["skipped_steps"][-1], int(model.optimizer.iterations),
                    float(model.optimizer.learning_rate), model.stop_reason))
    assert model.steps_per_execution == 32
    (w1, *rest1), (w32, *rest32) = out
    assert rest1 == rest32 and rest1[0] >= 5
    for a, b in zip(w1, w32):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)


def test_guard_skips_a_batch_that_drives_the_loss_to_inf():
    x = moons(256)
    x[64:96] = 1e30  # finite data (passes the checks) but log q = -inf in float32
    ds = tf.data.Dataset.from_tensor_slices(x).batch(32)
    model = FlowModel(small_flow())
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False, steps_per_execution=1)
    snaps = Snapshots()
    hist = model.fit(ds, epochs=1, verbose=0, callbacks=[snaps]).history
    assert snaps.consecutive == [0, 0, 1, 0, 0, 0, 0, 0]
    for a, b in zip(snaps.weights[1], snaps.weights[2]):
        np.testing.assert_array_equal(a, b)
    assert hist["skipped_steps"] == [1]
    assert int(model.optimizer.iterations) == 7
    assert np.isfinite(hist["loss"][0])  # the skipped step does not enter the mean
    assert int(model.guard.last_cause.numpy()) == 1


class NaNGradientAt(objectives.MaximumLikelihood):
    """Maximum likelihood whose gradient is NaN (the loss stays finite) on the batches in
    ``bad`` (counted from 0 over every call, skipped or not)."""

    def __init__(self, bad):
        self.bad = list(bad) or [-1]
        self.batches = tf.Variable(0, dtype=tf.int32, trainable=False)

    def loss(self, distribution, x, context=None, sample_weight=None, step=None):
        loss, weight, metrics = super().loss(distribution, x, context, sample_weight, step)
        hit = tf.reduce_any(tf.equal(self.batches, self.bad))
        self.batches.assign_add(1)
        return _nan_gradient_if(loss, hit), weight, metrics


@tf.custom_gradient
def _nan_gradient_if(x, hit):
    def grad(dy):
        return tf.where(hit, tf.constant(np.nan, dy.dtype), dy), None
    return tf.identity(x), grad


def test_guard_nan_gradient_skipped_then_stop_names_the_cause():
    x = moons(320)
    model = FlowModel(small_flow(), objective=NaNGradientAt([2]), stop_after=3)
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False, steps_per_execution=1)
    snaps = Snapshots()
    model.fit(x, batch_size=32, epochs=1, verbose=0, shuffle=False, callbacks=[snaps])
    assert snaps.consecutive == [0, 0, 1] + [0] * 7
    for a, b in zip(snaps.weights[1], snaps.weights[2]):
        np.testing.assert_array_equal(a, b)
    assert int(model.guard.last_cause.numpy()) == 2

    model = FlowModel(small_flow(), objective=NaNGradientAt(range(4, 100)), stop_after=3)
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=True, steps_per_execution=1)
    snaps = Snapshots()
    with pytest.warns(RuntimeWarning, match="non-finite gradient"):
        model.fit(x, batch_size=32, epochs=2, verbose=0, callbacks=[snaps])
    assert snaps.consecutive == [0, 0, 0, 0, 1, 2, 3]
    for w, g in zip(weights(model), snaps.weights[3]):
        np.testing.assert_array_equal(w, g)
    assert "non-finite gradient" in model.stop_reason


# ------------------------------------------------------------------ input checks
def bad_inputs():
    x = moons(64)
    nan = x.copy()
    nan[5, 1] = np.nan
    inf = x.copy()
    inf[7, 0] = np.inf
    return [
        (nan, ValueError, "non-finite values \\(NaN\\).*index 5"),
        (inf, ValueError, "non-finite values \\(inf\\).*index 7"),
        (moons(64)[:, :1], ValueError, "event size 1"),
        (np.ones((64, 2), np.int64), TypeError, "floating-point"),
        (np.zeros((0, 2), np.float32), ValueError, "empty"),
        (tf.data.Dataset.from_tensor_slices(x).batch(8).take(0), ValueError, "empty"),
        (tf.data.Dataset.from_tensor_slices(nan).batch(8), ValueError, "non-finite.*batch 0"),
        (tf.data.Dataset.from_tensor_slices(np.ones((8, 3), np.float32)).batch(4), ValueError,
         "event size 3"),
        (tf.data.Dataset.from_tensor_slices(np.ones((8, 2), np.int32)).batch(4), TypeError,
         "floating-point"),
    ]


def test_bad_inputs_are_refused_before_any_step():
    model = FlowModel(small_flow())
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    w0 = weights(model)
    for data, error, message in bad_inputs():
        with pytest.raises(error, match=message):
            model.fit(data, epochs=1, verbose=0)
        with pytest.raises(error, match=message):
            train(model.distribution, data, keras.optimizers.Adam(1e-2), 5, progress=False)
    with pytest.raises(ValueError, match="validation_data.*non-finite"):
        model.fit(moons(64), validation_data=bad_inputs()[0][0], verbose=0)
    assert int(model.optimizer.iterations) == 0
    for a, b in zip(weights(model), w0):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ custom loop
def test_train_reads_the_losses_once_per_execution(monkeypatch):
    """``train()`` pulls an execution's losses to the host in one read, not one per step: its
    host loop (one ``.numpy()`` of the stacked losses, one progress-bar update) runs once per
    ``steps_per_execution`` steps."""
    updates = []

    class Bar:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, k):
            updates.append(k)

        def set_postfix(self, **kwargs):
            pass

    monkeypatch.setattr(tfp_flows.training.loop, "tqdm", Bar)
    hist = train(small_flow(), moons(256), keras.optimizers.Adam(1e-2), 70, batch_size=32,
                 steps_per_execution=32, jit_compile=False)
    assert updates == [32, 32, 6] and hist["steps"] == 70


def test_train_loop_reduces_nll_clips_and_guards():
    x = moons(512)
    dist = small_flow()
    before = -float(np.mean(dist.log_prob(x)))
    hist = train(dist, x, keras.optimizers.Adam(1e-2, global_clipnorm=1.0), 150, batch_size=64,
                 validation_data=x[:128], validation_every=50, progress=False)
    assert hist["steps"] == 150 and hist["skipped_steps"] == 0
    assert hist["val_step"] == [50, 100, 150]
    assert -float(np.mean(dist.log_prob(x))) < before - 0.3

    bad = moons(64)
    bad[32:] = 1e30
    ds = tf.data.Dataset.from_tensor_slices(bad).batch(32)  # good, bad, good, bad, ...
    dist = small_flow()
    hist = train(dist, ds, keras.optimizers.Adam(1e-2), 6, progress=False, jit_compile=False)
    assert hist["skipped_steps"] == 3 and np.isnan(hist["loss"][1::2]).all()
    assert np.isfinite(hist["loss"][0::2]).all()

    dist = small_flow()
    w0 = [v.numpy() for v in dist.trainable_variables]
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        hist = train(dist, np.full((64, 2), 1e30, np.float32), keras.optimizers.Adam(1e-2), 50,
                     batch_size=32, stop_after=5, progress=False, jit_compile=False)
    assert hist["steps"] == 5 and "non-finite loss" in hist["stop_reason"]
    for a, v in zip(w0, dist.trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())
