"""Fault injection with the default settings (steps_per_execution 32, XLA): a poisoned tf.data
batch, a huge learning rate and a NaN target leave the weights at the last good values in
``fit``, in ``train`` and after a resume; the NaN guard also holds in evaluation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows.training import FlowModel, train

POISON = 120  # a repeated dataset is scanned for its first 100 batches only


def flow():
    return tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0)


def batches(n, poison=None, seed=0):
    """``n`` distinct batches of 4 points; batch ``poison`` is NaN."""
    x = np.random.default_rng(seed).normal(size=(n, 4, 2)).astype("float32")
    if poison is not None:
        x[poison, 1, 0] = np.nan
    return tf.data.Dataset.from_tensor_slices(x).repeat()


def compiled(model, optimizer=None):
    model.compile(optimizer or keras.optimizers.Adam(1e-2))
    return model


def weights(model):
    return [v.numpy().copy() for v in model.trainable_weights]


def assert_same(a, b):
    for u, v in zip(a, b):
        assert np.all(np.isfinite(u))
        np.testing.assert_array_equal(u, v)


def optimizer_slots_finite(optimizer):
    return all(np.all(np.isfinite(v.numpy())) for v in optimizer.variables)


def test_poisoned_batch_in_fit_leaves_the_last_good_weights():
    poisoned = compiled(FlowModel(flow()))
    hist = poisoned.fit(batches(200, POISON), epochs=1, steps_per_epoch=POISON + 1, verbose=0)
    clean = compiled(FlowModel(flow()))
    clean.fit(batches(200), epochs=1, steps_per_epoch=POISON, verbose=0)
    assert hist.history["skipped_steps"] == [1]
    assert int(poisoned.optimizer.iterations) == POISON
    assert_same(weights(poisoned), weights(clean))
    assert optimizer_slots_finite(poisoned.optimizer)
    assert np.isfinite(hist.history["loss"][0])


def test_poisoned_batch_in_train_leaves_the_last_good_weights():
    out = []
    for data, steps in ((batches(200, POISON), POISON + 1), (batches(200), POISON)):
        dist, opt = flow(), keras.optimizers.Adam(1e-2)
        hist = train(dist, data, opt, steps, progress=False)
        out.append((FlowModel(dist).trainable_weights, hist, opt))
    (w_bad, hist, opt), (w_good, _, _) = out
    assert hist["skipped_steps"] == 1 and np.isnan(hist["loss"][POISON])
    assert int(opt.iterations) == POISON
    assert_same([w.numpy() for w in w_bad], [w.numpy() for w in w_good])
    assert optimizer_slots_finite(opt)


def test_poisoned_batch_after_a_resume(tmp_path):
    # Uninterrupted: 2 epochs of 110 steps, the poisoned batch in the second one (beyond the
    # 100 batches the check scans of the resumed run's stream).
    data = batches(300, 215)
    straight = compiled(FlowModel(flow()))
    straight.fit(data, epochs=2, steps_per_epoch=110, verbose=0)
    # Interrupted after epoch 1, saved, loaded, resumed on the rest of the same stream.
    first = compiled(FlowModel(flow()))
    first.fit(data.take(110), epochs=1, verbose=0)
    first.save(tmp_path / "flow.keras")
    resumed = keras.models.load_model(tmp_path / "flow.keras")
    resumed.fit(data.skip(110), epochs=2, initial_epoch=1, steps_per_epoch=110, verbose=0)
    assert int(resumed.guard.skipped_steps.numpy()) == 1
    assert int(resumed.optimizer.iterations) == int(straight.optimizer.iterations) == 219
    assert_same(weights(resumed), weights(straight))


def test_huge_learning_rate_in_train_stops_at_the_last_good_weights():
    x = np.random.default_rng(0).normal(size=(512, 2)).astype("float32")
    dist, opt = flow(), keras.optimizers.SGD(1e7)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        hist = train(dist, x, opt, 100, batch_size=32, seed=0, stop_after=5, progress=False)
    assert hist["steps"] < 100 and "non-finite" in hist["stop_reason"]
    last_good = int(np.flatnonzero(np.isfinite(hist["loss"]))[-1])
    # Replaying up to the last good step (same batches, same back-offs) gives the same weights.
    replay, opt2 = flow(), keras.optimizers.SGD(1e7)
    train(replay, x, opt2, last_good + 1, batch_size=32, seed=0, stop_after=5, progress=False)
    assert_same([w.numpy() for w in FlowModel(dist).trainable_weights],
                [w.numpy() for w in FlowModel(replay).trainable_weights])
    assert optimizer_slots_finite(opt)


def test_nan_target_never_reaches_the_weights():
    model = FlowModel.for_target(lambda z: tf.fill(tf.shape(z)[:-1], np.nan), flow(),
                                 num_samples=16, seed=0, stop_after=5)
    compiled(model)
    before = weights(model)
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        hist = model.fit(epochs=1, steps_per_epoch=40, verbose=0)
    assert_same(weights(model), before)
    assert int(model.optimizer.iterations) == 0
    assert hist.history["skipped_steps"] == [5]
    assert optimizer_slots_finite(model.optimizer)


def test_evaluation_leaves_out_a_non_finite_batch():
    x = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    x[40:44] = 1e30  # finite data (passes the checks), log q = -inf in float32
    model = compiled(FlowModel(flow()))
    with pytest.warns(RuntimeWarning, match="left out 1 batch"):
        logs = model.evaluate(tf.data.Dataset.from_tensor_slices(x).batch(4), verbose=0,
                              return_dict=True)
    assert logs["skipped_batches"] == 1
    got = logs["loss"]
    good = np.concatenate([x[:40], x[44:]])
    np.testing.assert_allclose(got, -np.mean(model.log_prob(good).numpy()), rtol=1e-5)
