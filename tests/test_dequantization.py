"""Dequantisation and the bits/dim bookkeeping, checked against closed-form answers."""

import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows import dequantization as dq

LEVELS, ALPHA, D = 17, 0.05, 64


def _pixels(n, seed=0):
    return np.random.default_rng(seed).integers(0, LEVELS, size=[n, D]).astype(np.int32)


def _u_from_y(y):
    """u from y, written independently of the package: w = sigmoid(y), u = (w − α)/(1 − 2α)."""
    w = 1.0 / (1.0 + np.exp(-np.asarray(y, np.float64)))
    return (w - ALPHA) / (1.0 - 2.0 * ALPHA)


def _log_dy_du(y):
    """log|dy/du| per image from y: dy/du = (1 − 2α) / (w(1 − w))."""
    w = 1.0 / (1.0 + np.exp(-np.asarray(y, np.float64)))
    return np.sum(np.log(1.0 - 2.0 * ALPHA) - np.log(w) - np.log1p(-w), axis=-1)


def _np_log_prob(fn):
    """Wraps a NumPy ``log p_Y`` as a TF callable."""
    return lambda y: tf.numpy_function(lambda a: fn(a).astype(a.dtype), [y], y.dtype)


def test_uniform_density_on_the_cube_gives_log2_levels():
    # p_U = 1 on [0, 1]^D, so p_Y(y) = |du/dy|: the discrete model is uniform over L levels.
    def log_p_y(y):
        return -_log_dy_du(y)

    bpd = dq.evaluate_bits_per_dim(_np_log_prob(log_p_y), _pixels(100), LEVELS, ALPHA,
                                   num_samples=2, dtype=tf.float64)
    assert bpd == pytest.approx(np.log2(LEVELS), abs=1e-9)


def test_piecewise_constant_density_gives_exact_discrete_likelihood():
    # p_U(u) = Π_d L·π[floor(L u_d)] makes P(p) = Π_d π[p_d] exactly, and the uniform
    # dequantisation bound is tight for it, so bits/dim = −mean Σ_d log2 π[p_d] / D.
    pi = np.random.default_rng(1).dirichlet(np.ones(LEVELS))
    pixels = _pixels(60, seed=2)

    def log_p_y(y):
        cell = np.clip(np.floor(LEVELS * _u_from_y(y)), 0, LEVELS - 1).astype(int)
        return np.sum(np.log(LEVELS * pi[cell]), axis=-1) - _log_dy_du(y)

    exact = -np.mean(np.sum(np.log2(pi[pixels]), axis=-1)) / D
    bpd = dq.evaluate_bits_per_dim(_np_log_prob(log_p_y), pixels, LEVELS, ALPHA, num_samples=2,
                                   dtype=tf.float64)
    assert bpd == pytest.approx(exact, abs=1e-9)
    assert abs(exact - np.log2(LEVELS)) > 0.1  # the check can tell the two apart


def test_variational_bound_adds_log_q_of_the_fresh_dequantiser():
    # A fresh dequantiser is the logistic-normal v = sigmoid(ε), ε ~ N(0, I):
    # log q(v) = Σ [log N(logit v) − log v − log(1 − v)]. Under the piecewise-constant model
    # the per-image bound is −log P(p) + log q(v | p).
    pi = np.random.default_rng(3).dirichlet(np.ones(LEVELS))
    pixels = _pixels(8, seed=4)
    vd = dq.VariationalDequantizer(D, LEVELS, num_couplings=1, hidden_layers=(8,), seed=0,
                                   dtype=tf.float64)

    def log_p_y(y):
        cell = np.clip(np.floor(LEVELS * _u_from_y(y)), 0, LEVELS - 1).astype(int)
        return np.sum(np.log(LEVELS * pi[cell]), axis=-1) - _log_dy_du(y)

    seed = [5, 6]
    v, log_q = vd.sample_and_log_prob(pixels, seed=seed)
    v = v.numpy()
    eps = np.log(v) - np.log1p(-v)
    expected_log_q = np.sum(-0.5 * eps ** 2 - 0.5 * np.log(2 * np.pi) - np.log(v) - np.log1p(-v),
                            axis=-1)
    np.testing.assert_allclose(log_q.numpy(), expected_log_q, rtol=1e-6)
    nats = dq.negative_bound(_np_log_prob(log_p_y), pixels, LEVELS, ALPHA, dequantizer=vd,
                             seed=seed, dtype=tf.float64).numpy()
    log_p_exact = np.sum(np.log(pi[pixels]), axis=-1)
    np.testing.assert_allclose(nats, -log_p_exact + expected_log_q, rtol=1e-6)


def test_uniform_dequantize_maps_into_the_pixel_cell_with_its_log_det():
    pixels = _pixels(32)
    y, log_det = dq.uniform_dequantize(pixels, LEVELS, ALPHA, seed=[1, 2], dtype=tf.float64)
    u = _u_from_y(y.numpy())
    assert np.all(u >= pixels / LEVELS - 1e-12) and np.all(u < (pixels + 1) / LEVELS + 1e-12)
    np.testing.assert_allclose(log_det.numpy(), _log_dy_du(y.numpy()), rtol=1e-10)
    y2, _ = dq.uniform_dequantize(pixels, LEVELS, ALPHA, seed=[1, 2], dtype=tf.float64)
    np.testing.assert_array_equal(y.numpy(), y2.numpy())
    np.testing.assert_allclose(dq.from_logit(dq.to_logit(u, ALPHA), ALPHA).numpy(), u, rtol=1e-9)


def test_variational_dequantiser_is_trainable_through_the_bound():
    pixels = _pixels(16)
    vd = dq.VariationalDequantizer(D, LEVELS, num_couplings=1, hidden_layers=(8,), seed=0)
    v, _ = vd.sample_and_log_prob(pixels, seed=[0, 1])
    assert v.shape == (16, D) and np.all((v.numpy() > 0) & (v.numpy() < 1))
    variables = vd.trainable_variables
    assert variables and all(tfp_flows.keras_variable_of(t) is not None for t in variables)
    base = tfp_flows.flows.standard_normal(D)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(dq.negative_bound(base.log_prob, pixels, LEVELS, dequantizer=vd,
                                                seed=[2, 3]))
    grads = tape.gradient(loss, variables)
    assert all(g is not None for g in grads)
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize("bad, message", [
    (np.full([2, D], 17), r"lie in \{0, …, 16\}"),
    (np.full([2, D], -1), r"lie in \{0, …, 16\}"),
    (np.full([2, D], 2.5), "must be integers"),
    (np.full([2, D], np.nan), "finite"),
    (np.array([["a"] * D]), "numeric"),
])
def test_bad_discrete_input_is_rejected_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        dq.check_discrete(bad, LEVELS)
    with pytest.raises(ValueError, match=message):
        dq.evaluate_bits_per_dim(lambda y: tf.zeros(tf.shape(y)[:-1]), bad, LEVELS)
    if bad.dtype.kind in "if":
        with pytest.raises(ValueError, match=message):
            dq.uniform_dequantize(tf.constant(bad), LEVELS)


def test_integer_valued_floats_pass_and_bad_levels_fail():
    out = dq.check_discrete(np.full([2, 3], 16.0), LEVELS)
    assert out.dtype == np.int32 and out.max() == 16
    with pytest.raises(ValueError, match="levels"):
        dq.check_discrete(np.zeros([2, 3], np.int32), 1)
    with pytest.raises(ValueError, match=r"shape \[N, D\]"):
        dq.evaluate_bits_per_dim(lambda y: y, np.zeros([3], np.int32), LEVELS)
