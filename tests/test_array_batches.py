"""``fit`` on arrays trains its batches inside the compiled steps (``execution.ArrayBatches``):
the same batches, sizes, order and updates as Keras's own array pipeline for the same order
of the rows, which is drawn once per epoch (``shuffle=True``) or ``range(N)``."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import flows
from tfp_flows.training import FlowModel, execution

N, B, K = 1000, 64, 5   # 16 batches, the last one of 40 rows; executions of 5 steps
RNG = np.random.default_rng(0)
X = RNG.normal(size=[N, 2]).astype(np.float32)
C = RNG.normal(size=[N, 3]).astype(np.float32)
W = RNG.uniform(0.5, 1.5, size=[N]).astype(np.float32)
VAL = (X[:100], C[:100], W[:100])


def model():
    m = FlowModel(flows.realnvp(2, 2, [8], context_size=3, seed=1))
    m.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=K)
    return m


class Orders:
    """Records every epoch's order that ``ArrayBatches`` draws, and the batch sizes."""

    def __init__(self, monkeypatch):
        self.orders, self.runs = [], []
        new_epoch, runs = execution.ArrayBatches.new_epoch, execution.ArrayBatches.runs

        def recording_new_epoch(arrays):
            new_epoch(arrays)
            self.orders.append(arrays.order.numpy())

        def recording_runs(arrays, begin, size):
            out = runs(arrays, begin, size)
            self.runs += out
            return out

        monkeypatch.setattr(execution.ArrayBatches, "new_epoch", recording_new_epoch)
        monkeypatch.setattr(execution.ArrayBatches, "runs", recording_runs)


def keras_array_path(monkeypatch):
    """Makes ``fit`` use Keras's array pipeline (the path before ``ArrayBatches``)."""
    monkeypatch.setattr(FlowModel, "_array_batches", lambda self, *args: None)


def assert_same_training(a, b, history_a, history_b):
    assert int(a.optimizer.iterations) == int(b.optimizer.iterations)
    for va, vb in zip(a.trainable_variables, b.trainable_variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    assert history_a == history_b


def test_unshuffled_array_fit_trains_what_keras_array_pipeline_trains(monkeypatch):
    orders = Orders(monkeypatch)
    a = model()
    ha = a.fit(X, C, batch_size=B, epochs=2, shuffle=False, sample_weight=W,
               validation_data=VAL, verbose=0)
    # Two epochs of range(N); per epoch executions of 5, 5, 5 batches, then 1 + the short one.
    assert [o.tolist() for o in orders.orders] == [list(range(N))] * 2
    assert orders.runs == [(0, 5, B), (5, 5, B), (10, 5, B), (15, 1, 40)] * 2
    monkeypatch.undo()
    keras_array_path(monkeypatch)
    b = model()
    hb = b.fit(X, C, batch_size=B, epochs=2, shuffle=False, sample_weight=W,
               validation_data=VAL, verbose=0)
    assert int(a.optimizer.iterations) == 2 * 16
    assert_same_training(a, b, ha.history, hb.history)


def test_shuffled_array_fit_trains_the_drawn_orders_as_keras_would(monkeypatch):
    orders = Orders(monkeypatch)
    keras.utils.set_random_seed(3)
    a = model()
    ha = a.fit(X, C, batch_size=B, epochs=2, sample_weight=W, verbose=0)
    first, second = orders.orders
    assert sorted(first) == sorted(second) == list(range(N))
    assert not np.array_equal(first, second) and not np.array_equal(first, np.arange(N))
    # The same seed draws the same orders.
    keras.utils.set_random_seed(3)
    again = model()
    again.fit(X, C, batch_size=B, epochs=2, sample_weight=W, verbose=0)
    np.testing.assert_array_equal(orders.orders[2], first)
    np.testing.assert_array_equal(orders.orders[3], second)
    monkeypatch.undo()
    # Keras's pipeline fed each epoch's rows in the drawn order trains the same steps.
    keras_array_path(monkeypatch)
    b = model()
    history = {}
    for epoch, order in enumerate((first, second)):
        h = b.fit(X[order], C[order], batch_size=B, epochs=epoch + 1, initial_epoch=epoch,
                  shuffle=False, sample_weight=W[order], verbose=0)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(v)
    assert_same_training(a, b, ha.history, history)


@pytest.mark.parametrize("kwargs", [dict(steps_per_epoch=3), dict(validation_split=0.1),
                                    dict(shuffle="batch"), dict(steps_per_execution=1),
                                    dict(jit_compile=False)])
def test_other_array_fits_keep_keras_pipeline(monkeypatch, kwargs):
    orders = Orders(monkeypatch)
    m = FlowModel(flows.realnvp(2, 2, [8], seed=1))
    compile_kwargs = {k: kwargs.pop(k) for k in ("steps_per_execution", "jit_compile")
                      if k in kwargs}
    m.compile(optimizer=keras.optimizers.Adam(1e-2), **compile_kwargs)
    m.fit(X, batch_size=B, epochs=1, verbose=0, **kwargs)
    assert orders.orders == []
    assert int(m.optimizer.iterations) == kwargs.get("steps_per_epoch",
                                                     15 if "validation_split" in kwargs else 16)


def test_a_dataset_is_read_as_before(monkeypatch):
    orders = Orders(monkeypatch)
    m = model()
    m.fit(tf.data.Dataset.from_tensor_slices((X, C)).batch(B), epochs=1, verbose=0)
    assert orders.orders == [] and int(m.optimizer.iterations) == 16


def test_a_float64_flow_trains_on_its_float64_rows():
    """Keras's array path casts float64 arrays to float32 (``floatx``) before a float64 flow
    sees them; the rows gathered in the compiled steps keep the flow's dtype, as a float64
    dataset does."""
    x = X.astype(np.float64) + 1e-9  # not representable in float32

    def model64():
        m = FlowModel(flows.realnvp(2, 2, [8], seed=1, dtype=tf.float64))
        m.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=K)
        return m

    a, b = model64(), model64()
    ha = a.fit(x, batch_size=B, epochs=1, shuffle=False, verbose=0)
    hb = b.fit(tf.data.Dataset.from_tensor_slices(x).batch(B), epochs=1, verbose=0)
    assert_same_training(a, b, ha.history, hb.history)
