"""Resume equals the uninterrupted run: BackupAndRestore and ModelCheckpoint + load_model keep
the NaN guard's counters, its learning-rate back-off scale and the optimizer state."""

import keras
import numpy as np
import tensorflow as tf

import tfp_flows
from tfp_flows.training import FlowModel, flow_optimizer

EPOCHS, BATCHES = 3, 6


def dataset():
    """Batches 1, 2, 3 of each epoch overflow (finite data, non-finite loss): the guard skips
    them and backs the scheduled learning rate off once per epoch."""
    x = tfp_flows.datasets.two_moons(32 * BATCHES, seed=0)
    x[32:4 * 32] = 1e30
    return tf.data.Dataset.from_tensor_slices(x).batch(32)


def model():
    m = FlowModel(tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0))
    m.compile(flow_optimizer(EPOCHS * BATCHES, learning_rate=1e-2, warmup_steps=2),
              jit_compile=False)
    return m


def state(m):
    return ([v.numpy() for v in m.trainable_weights],
            {k: float(getattr(m.guard, k).numpy()) for k in
             ("skipped_steps", "consecutive_bad_steps", "lr_backoffs", "lr_scale")},
            int(m.optimizer.iterations))


def assert_same(a, b):
    for x, y in zip(a[0], b[0]):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert a[1] == b[1] and a[2] == b[2]


def uninterrupted():
    m = model()
    m.fit(dataset(), epochs=EPOCHS, verbose=0)
    s = state(m)
    assert s[1]["skipped_steps"] == 3 * EPOCHS and s[1]["lr_backoffs"] == EPOCHS
    assert s[1]["lr_scale"] == 0.5 ** EPOCHS
    return s


class Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == EPOCHS - 1:
            raise KeyboardInterrupt("simulated preemption")


def test_model_checkpoint_and_load_model_resume_equals_the_uninterrupted_run(tmp_path):
    reference = uninterrupted()
    path = str(tmp_path / "ckpt.keras")
    m = model()
    m.fit(dataset(), epochs=EPOCHS - 1, verbose=0,
          callbacks=[keras.callbacks.ModelCheckpoint(path)])
    resumed = keras.models.load_model(path)
    assert float(resumed.guard.lr_scale.numpy()) == 0.5 ** (EPOCHS - 1)
    resumed.fit(dataset(), epochs=EPOCHS, initial_epoch=EPOCHS - 1, verbose=0)
    assert_same(state(resumed), reference)


def test_backup_and_restore_resume_equals_the_uninterrupted_run(tmp_path):
    reference = uninterrupted()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    m = model()
    try:
        m.fit(dataset(), epochs=EPOCHS, verbose=0, callbacks=[backup, Interrupt()])
    except KeyboardInterrupt:
        pass
    fresh = model()  # a new process would rebuild the model the same way
    fresh.fit(dataset(), epochs=EPOCHS, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    assert_same(state(fresh), reference)
