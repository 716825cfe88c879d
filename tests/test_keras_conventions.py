"""Keras conventions with FlowModel's defaults (``steps_per_execution=32``, XLA): exactly the
steps asked for, a progress bar that counts what ran, and every documented input form."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows.training import FlowModel, train


def flow(seed=0):
    return tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=seed)


def model(**compile_kwargs):
    m = FlowModel(flow())
    m.compile(keras.optimizers.Adam(1e-3), **compile_kwargs)
    return m


def data(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 2)).astype("float32")


def steps(m):
    return int(m.optimizer.iterations)


# ------------------------------------------------------------------ step counts
def test_default_is_32_steps_per_execution():
    assert model().steps_per_execution == 32


def test_fit_steps_per_epoch_over_repeated_data_runs_exactly_what_was_asked():
    ds = tf.data.Dataset.from_tensor_slices(data(64)).batch(8).repeat()
    m = model()
    m.fit(ds, epochs=2, steps_per_epoch=100, verbose=0)
    assert steps(m) == 200
    m = model()
    hist = m.fit(ds, epochs=1, steps_per_epoch=10, verbose=0)
    assert steps(m) == 10
    assert len(hist.history["loss"]) == 1


@pytest.mark.parametrize("kind", ["array", "dataset"])
def test_epoch_length_not_a_multiple_of_32_runs_its_length(kind):
    x = data(118 * 4)
    inputs = (dict(x=x, batch_size=4, shuffle=False) if kind == "array"
              else dict(x=tf.data.Dataset.from_tensor_slices(x).batch(4)))
    m = model()
    m.fit(epochs=2, verbose=0, **inputs)
    assert steps(m) == 2 * 118


def test_the_last_short_execution_uses_the_right_batches():
    # 40 distinct batches, steps_per_epoch=20 twice: the same weights as one step per call.
    ds = tf.data.Dataset.from_tensor_slices(data(40 * 8)).batch(8)
    out = []
    for spe in (1, None):
        m = model(steps_per_execution=spe, jit_compile=False)
        m.fit(ds.repeat(), epochs=2, steps_per_epoch=20, verbose=0)
        out.append([w.numpy() for w in m.trainable_weights])
    assert steps(m) == 40
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("end", batch, {k: float(v) for k, v in logs.items()}))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch", epoch, {k: float(v) for k, v in logs.items()}))


@pytest.mark.parametrize("k, steps_per_epoch", [(32, 10), (8, 20)])
def test_batch_callbacks_get_the_last_step_that_ran(k, steps_per_epoch):
    # Keras calls batch hooks once per execution, with its first and last index: the short
    # last execution ends at steps_per_epoch - 1 (Keras passes begin + k - 1), and the logs
    # there and at the epoch's end are those of a run with one step per execution.
    ds = tf.data.Dataset.from_tensor_slices(data(40 * 8)).batch(8).repeat()
    calls = {}
    for spe in (1, k):
        recorder = Recorder()
        model(steps_per_execution=spe, jit_compile=False).fit(
            ds, epochs=2, steps_per_epoch=steps_per_epoch, verbose=0, callbacks=[recorder])
        calls[spe] = recorder.calls
    begins = list(range(0, steps_per_epoch, k))
    one_epoch = [c for b in begins
                 for c in (("begin", b), ("end", min(b + k, steps_per_epoch) - 1))]
    assert [c[:2] for c in calls[k]] == one_epoch + [("epoch", 0)] + one_epoch + [("epoch", 1)]
    assert [c[:2] for c in calls[1]] == [
        c for e in (0, 1) for c in [x for b in range(steps_per_epoch)
                                    for x in (("begin", b), ("end", b))] + [("epoch", e)]]

    def logs_by_call(seq):
        epoch, out = 0, {}
        for c in seq:
            if len(c) == 3:
                out[(epoch, c[0], c[1])] = c[2]
                epoch += c[0] == "epoch"
        return out

    one, many = logs_by_call(calls[1]), logs_by_call(calls[k])
    for key, logs in many.items():
        assert logs.keys() == one[key].keys()
        for name in logs:
            np.testing.assert_allclose(logs[name], one[key][name], rtol=1e-5, err_msg=str(key))


def test_evaluate_steps_runs_that_many_batches():
    x = data(40 * 8)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(8).repeat()
    m = model()
    got = m.evaluate(ds, steps=10, verbose=0, return_dict=True)["loss"]
    expected = -np.mean(m.log_prob(x[:80]).numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_reverse_kl_fit_and_evaluate_call_the_target_exactly_as_asked():
    calls = tf.Variable(0)

    def target(z):
        calls.assign_add(1)
        return -0.5 * tf.reduce_sum(z ** 2, -1)

    m = FlowModel.for_target(target, flow(), num_samples=16, seed=0)
    m.compile(keras.optimizers.Adam(1e-3))
    m.fit(epochs=2, steps_per_epoch=10, verbose=0)
    assert steps(m) == 20 and int(calls.numpy()) == 20
    m.fit(verbose=0)  # steps_per_epoch defaults to 100
    assert steps(m) == 120 and int(calls.numpy()) == 120
    m.evaluate(steps=10, verbose=0)
    assert int(calls.numpy()) == 130


def test_predict_of_ten_points_is_one_batch_with_a_short_bar(capsys):
    m = model()
    out = m.predict(data(10), verbose=1)
    assert out.shape == (10,)
    text = capsys.readouterr().out
    assert "1/1" in text and "32/1" not in text
    assert max(len(line) for line in re.split(r"[\r\n\b]", text)) < 200


def test_predict_steps_on_a_repeated_dataset():
    ds = tf.data.Dataset.from_tensor_slices(data(64)).batch(8).repeat()
    assert model().predict(ds, steps=3, verbose=0).shape == (24,)


# ------------------------------------------------------------------ progress bar
def bar_text(capsys):
    return capsys.readouterr().out


def test_progress_bar_counts_what_ran_and_hides_idle_guard_counters(capsys):
    m = model()
    hist = m.fit(data(118 * 4), batch_size=4, epochs=2, verbose=1)
    text = bar_text(capsys)
    assert "118/118" in text
    assert not re.search(r"\b(1[2-9]\d|[2-9]\d\d)/118", text), text[-400:]
    assert not re.search(r"\s-\d+(ms|s|m)\b", text), "negative ETA"
    for key in ("skipped_steps", "consecutive_bad_steps", "lr_backoffs"):
        assert key not in text
        assert hist.history[key] == [0, 0]


def test_evaluate_bar_counts_the_steps(capsys):
    ds = tf.data.Dataset.from_tensor_slices(data(64)).batch(8).repeat()
    model().evaluate(ds, steps=10, verbose=1)
    text = bar_text(capsys)
    assert "10/10" in text and "32/10" not in text


def test_guard_counters_appear_once_the_guard_acted(capsys):
    x = data(64 * 4)
    x[40:44] = 1e30  # finite data, log q = -inf: the step is skipped
    m = model()
    hist = m.fit(x, batch_size=4, shuffle=False, verbose=1)
    text = bar_text(capsys)
    assert "skipped_steps: 1" in text
    assert hist.history["skipped_steps"] == [1]


def test_reverse_kl_bar_does_not_repeat_the_loss_as_kl(capsys):
    m = FlowModel.for_target("ring", flow(), num_samples=16, seed=0)
    m.compile(keras.optimizers.Adam(1e-3))
    m.fit(epochs=1, steps_per_epoch=10, verbose=1)
    text = bar_text(capsys)
    assert "loss:" in text and "ess:" in text and "kl:" not in text


def test_train_loop_runs_exactly_steps():
    opt = keras.optimizers.Adam(1e-3)
    hist = train(flow(), data(256), opt, 37, batch_size=32, progress=False)
    assert hist["steps"] == 37 and int(opt.iterations) == 37


# ------------------------------------------------------------------ input forms
def test_dataset_of_x_y_pairs_trains_with_y_ignored():
    x = data(64)
    pairs = tf.data.Dataset.from_tensor_slices((x, np.zeros(64, "float32"))).batch(8)
    plain = tf.data.Dataset.from_tensor_slices(x).batch(8)
    out = []
    for ds in (pairs, plain):
        m = model()
        m.fit(ds, epochs=1, verbose=0)
        out.append([w.numpy() for w in m.trainable_weights])
    assert steps(m) == 8
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
    hist = train(flow(), pairs, keras.optimizers.Adam(1e-3), 5, progress=False)
    assert hist["steps"] == 5 and np.all(np.isfinite(hist["loss"]))


def test_fused_xla_executions_train_the_batches_of_one_step_per_call():
    # XLA runs an execution's steps as one computation; 37 full batches and a short one per
    # epoch make it start a second run at the shape change: same weights as one step per call.
    ds = tf.data.Dataset.from_tensor_slices(data(37 * 8 + 4)).batch(8)
    out = []
    for spe in (1, None):
        m = model(steps_per_execution=spe)
        m.fit(ds, epochs=2, verbose=0)
        out.append([w.numpy() for w in m.trainable_weights])
    assert steps(m) == 2 * 38
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
