"""Sample weights weight the NLL exactly as Keras weights a loss, and evaluation names the
batches it leaves out.

Keras's reduction of a weighted loss (``"sum_over_batch_size"``) is ``Σ_b w_b ℓ_b / B`` per
batch, and the epoch's loss averages batches with weight ``B``; the reported loss and the SGD
step are compared with that hand computation for every input form that carries weights.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows.training import FlowModel

LR = 0.1
rng = np.random.default_rng(0)
X = rng.normal(size=(8, 2)).astype("float32")
C = rng.normal(size=(8, 1)).astype("float32")
W = np.array([1.0, 2.0, 0.0, 1.0, 3.0, 1.0, 0.5, 1.0], "float32")  # row 2 has weight 0


def model(context_size=None):
    m = FlowModel(tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0,
                                          context_size=context_size))
    m.compile(keras.optimizers.SGD(LR))
    return m


class _Identity(keras.losses.Loss):
    def call(self, y_true, y_pred):
        return y_pred


def keras_reduction(values, w):
    """What Keras's own loss reduction makes of per-example losses ``values`` and weights."""
    return float(_Identity()(tf.zeros_like(values), values, sample_weight=w))


def hand_step(m, x, c, w):
    """The weighted loss ``Σ w (−log q) / B`` and the SGD update it gives, by hand."""
    variables = [v.value for v in m.trainable_variables]
    with tf.GradientTape() as tape:
        nll = -m.log_prob(tf.constant(x), None if c is None else tf.constant(c))
        loss = tf.reduce_sum(tf.constant(w) * nll) / len(x)
    grads = tape.gradient(loss, variables)
    np.testing.assert_allclose(float(loss), keras_reduction(nll, w), rtol=1e-6)
    return float(loss), [v.numpy() - LR * g.numpy() for v, g in zip(variables, grads)]


def fit_one_step(m, form, x=X):
    conditional = m.context_size is not None
    if form == "array":
        args = (x, C) if conditional else (x,)
        return m.fit(*args, sample_weight=W, batch_size=8, shuffle=False, verbose=0)
    y = C if conditional else np.zeros((len(x), 3), "float32")  # y of an unconditional flow
    ds = tf.data.Dataset.from_tensor_slices((x, y, W)).batch(8)  # is ignored
    return m.fit(ds, verbose=0)


@pytest.mark.parametrize("conditional", [False, True], ids=["p(x)", "p(x|c)"])
@pytest.mark.parametrize("form", ["array", "dataset"])
def test_weighted_loss_and_step_are_keras_reduction(form, conditional):
    m = model(1 if conditional else None)
    loss, expected = hand_step(m, X, C if conditional else None, W)
    unweighted = float(-tf.reduce_mean(m.log_prob(tf.constant(X),
                                                  tf.constant(C) if conditional else None)))
    assert abs(loss - unweighted) > 0.05  # the weights matter here
    hist = fit_one_step(m, form)
    np.testing.assert_allclose(hist.history["loss"], [loss], rtol=1e-5)
    for got, want in zip(m.trainable_variables, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_a_zero_weight_row_has_no_effect_on_the_update():
    moved = X.copy()
    moved[2] = [4.0, -3.0]  # the weight-0 row, far from where it was
    a, b = model(), model()
    fit_one_step(a, "array")
    fit_one_step(b, "array", x=moved)
    for u, v in zip(a.trainable_variables, b.trainable_variables):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-6, atol=1e-7)


def test_evaluate_and_validation_weight_the_loss():
    m = model()
    nll = -m.log_prob(tf.constant(X))
    want = keras_reduction(nll, W)
    got = m.evaluate(X, sample_weight=W, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(got["loss"], want, rtol=1e-5)
    assert "skipped_batches" not in got
    m.compile(keras.optimizers.SGD(0.0))
    hist = m.fit(X, batch_size=8, validation_data=(X, None, W), verbose=0)
    np.testing.assert_allclose(hist.history["val_loss"], [want], rtol=1e-5)
    assert "val_skipped_batches" not in hist.history


@pytest.mark.parametrize("bad, message", [
    (W[:5], r"shape \[8\]"),
    (np.where(W == 0, -1.0, W), ">= 0"),
    (np.where(W == 0, np.nan, W), "finite"),
    (W.astype(str), "real numbers"),
])
def test_bad_sample_weights_are_refused_before_training(bad, message):
    m = model()
    with pytest.raises((ValueError, TypeError), match=message):
        m.fit(X, sample_weight=bad, verbose=0)
    assert int(m.optimizer.iterations) == 0


def test_class_weight_is_refused():
    with pytest.raises(ValueError, match="class_weight"):
        model().fit(X, class_weight={0: 1.0}, verbose=0)


# ------------------------------------------------------------ evaluation's skipped batches
def far(n_bad, n=16):
    """``n`` points in batches of 4, the first ``n_bad`` batches finite but with log q = −inf
    in float32 (they pass the input checks)."""
    x = np.random.default_rng(1).normal(size=(n, 2)).astype("float32")
    x[: 4 * n_bad] = 1e30
    return x


def test_evaluate_reports_nan_and_names_the_skipped_batches_when_all_are_skipped():
    m = model()
    with pytest.warns(RuntimeWarning, match="left out 4 batch"):
        logs = m.evaluate(far(4), batch_size=4, verbose=0, return_dict=True)
    assert np.isnan(logs["loss"]) and np.isnan(logs["bits_per_dim"])
    assert logs["skipped_batches"] == 4
    with pytest.warns(RuntimeWarning):
        values = m.evaluate(far(4), batch_size=4, verbose=0)
    assert np.isnan(values[0]) and values[-1] == 4


def test_evaluate_names_one_skipped_batch_and_averages_the_others():
    m = model()
    x = far(1)
    with pytest.warns(RuntimeWarning, match="left out 1 batch"):
        logs = m.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    assert logs["skipped_batches"] == 1
    np.testing.assert_allclose(logs["loss"], -np.mean(m.log_prob(x[4:]).numpy()), rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logs = m.evaluate(x[4:], batch_size=4, verbose=0, return_dict=True)
    assert "skipped_batches" not in logs


def test_reverse_kl_evaluate_of_a_nan_target_is_nan_not_zero():
    m = FlowModel.for_target(lambda z: tf.fill(tf.shape(z)[:-1], np.nan),
                             tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0),
                             num_samples=16)
    m.compile(keras.optimizers.Adam(1e-3))
    with pytest.warns(RuntimeWarning, match="left out 3 batch"):
        logs = m.evaluate(steps=3, verbose=0, return_dict=True)
    assert np.isnan(logs["loss"]) and np.isnan(logs["kl"])
    assert logs["skipped_batches"] == 3
