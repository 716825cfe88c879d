"""Keras callbacks and the progress bar work with FlowModel."""

import csv
import os

import keras
import numpy as np
import pytest

import tfp_flows
from tfp_flows.training import FlowModel


def gaussian_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 2)) * [0.5, 2.0] + [1.0, -1.0]).astype("float32")


def model_of(lr=1e-2, **kwargs):
    model = FlowModel(tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0),
                      **kwargs)
    model.compile(keras.optimizers.Adam(lr), jit_compile=False)
    return model


def test_early_stopping_restores_best_weights_and_checkpoint_saves_best(tmp_path):
    x, val = gaussian_data(), gaussian_data(128, seed=1)
    model = model_of(lr=0.05)
    path = str(tmp_path / "best.keras")
    best, per_epoch = {}, []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            per_epoch.append([v.numpy().copy() for v in self.model.trainable_weights])
            best["val_loss"] = min(logs["val_loss"], best.get("val_loss", np.inf))

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=1e9,
                                         restore_best_weights=True)
    ckpt = keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    hist = model.fit(x, batch_size=64, epochs=6, verbose=0, validation_data=val,
                     callbacks=[Record(), stop, ckpt]).history
    # min_delta so large that only the first epoch counts as an improvement
    assert len(hist["loss"]) == 2
    assert not all(np.array_equal(a, b) for a, b in zip(per_epoch[0], per_epoch[1]))
    for w, b in zip(model.trainable_weights, per_epoch[0]):
        np.testing.assert_array_equal(w.numpy(), b)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.evaluate(val, verbose=0)[0], best["val_loss"], rtol=1e-5)


def test_reduce_lr_on_plateau_csv_logger_tensorboard_and_progress_bar(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="keras.callbacks.TensorBoard needs tensorboard")
    x = gaussian_data()
    model = model_of(lr=1e-2)
    csv_path = tmp_path / "log.csv"
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                          min_delta=1e9),
        keras.callbacks.CSVLogger(str(csv_path)),
        keras.callbacks.TensorBoard(str(tmp_path / "tb")),
    ]
    model.fit(x, batch_size=64, epochs=3, verbose=1, callbacks=callbacks)
    # epoch 1 improves on inf; epochs 2 and 3 halve the rate
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 1e-2 * 0.5**2, rtol=1e-6)
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert {"loss", "bits_per_dim", "skipped_steps", "learning_rate"} <= set(rows[0])
    events = [f for _, _, fs in os.walk(tmp_path / "tb") for f in fs if "tfevents" in f]
    assert events
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "4/4" in out and "bits_per_dim" in out


@pytest.mark.parametrize("nan_guard", [False, True])
def test_terminate_on_nan(nan_guard):
    x = gaussian_data()
    x[128:] = 1e30  # finite data, infinite loss from batch 2 on
    model = model_of(nan_guard=nan_guard)
    hist = model.fit(x, batch_size=64, epochs=3, verbose=0, shuffle=False,
                     callbacks=[keras.callbacks.TerminateOnNaN()]).history
    if nan_guard:  # bad steps are skipped and kept out of the loss: nothing to terminate
        assert len(hist["loss"]) == 3 and np.isfinite(hist["loss"]).all()
        assert hist["skipped_steps"] == [2, 4, 6]  # counted over the whole fit
    else:
        assert len(hist["loss"]) == 1 and not np.isfinite(hist["loss"][0])
