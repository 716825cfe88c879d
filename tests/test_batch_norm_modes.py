"""BatchNorm's two modes: batch statistics and one moving-average update per training step."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows import bijectors as fb
from tfp_flows import flows


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=[256, 3]) * [1.0, 3.0, 0.5] + [2.0, -1.0, 0.0]).astype("float32")


def test_training_inverse_normalises_with_batch_statistics():
    bn = fb.BatchNorm(3, epsilon=1e-6)
    y = _batch()
    with tfp_flows.training_mode(True):
        x = bn.inverse(tf.constant(y)).numpy()
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-4)
    with tfp_flows.training_mode(False):  # moving statistics: still mostly unnormalised
        x_eval = bn.inverse(tf.constant(y)).numpy()
    assert np.abs(x_eval.mean(0) - y.mean(0) * np.sqrt(1 / 1.0)).max() < 0.1


def test_one_moving_average_update_per_log_prob_in_training():
    dist = flows.realnvp(3, 1, [4], batch_norm=True, seed=0)
    bn = [b for b in flows.layers_of(dist) if isinstance(b, fb.BatchNorm)][0]
    y = _batch()
    log_prob = tf.function(dist.log_prob)
    with tfp_flows.training_mode(True):
        log_prob(tf.constant(y))
    assert dist.bijector.bijectors[0] is bn  # batch norm is the data-side layer: it sees y
    expected = 0.99 * 0.0 + 0.01 * y.mean(0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected, rtol=1e-4, atol=1e-6)
    with tfp_flows.training_mode(False):
        tf.function(dist.log_prob)(tf.constant(y))
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_training_log_det_uses_batch_variance():
    bn = fb.BatchNorm(3, epsilon=1e-3, training=True)
    bn.log_gamma.assign([0.1, -0.2, 0.3])
    y = _batch()
    ildj = bn.inverse_log_det_jacobian(tf.constant(y), event_ndims=1).numpy()
    expected = np.sum(np.log(np.exp([0.1, -0.2, 0.3]) / np.sqrt(y.var(0) + 1e-3)))
    np.testing.assert_allclose(ildj, expected, rtol=1e-5)


def test_explicit_training_flag_overrides_the_context():
    bn = fb.BatchNorm(2, training=False)
    with tfp_flows.training_mode(True):
        assert not bn.training
        bn.inverse(tf.constant(_batch()[:, :2]))
    np.testing.assert_array_equal(bn.moving_mean.numpy(), [0.0, 0.0])


def test_training_log_prob_uses_batch_statistics_throughout():
    # TransformedDistribution takes the log-det as -fldj(inverse(y)): in training mode that
    # must be the batch variance the inverse normalised with, not the moving one.
    bn = fb.BatchNorm(2, epsilon=1e-3, training=True)
    dist = tfp_flows.flows.standard_normal(2)
    dist = tfp.distributions.TransformedDistribution(dist, tfp.bijectors.Chain([bn]))
    y = _batch()[:, :2]
    z = (y - y.mean(0)) / np.sqrt(y.var(0) + 1e-3)
    expected = -0.5 * np.sum(z**2, 1) - np.log(2 * np.pi) - 0.5 * np.sum(np.log(y.var(0) + 1e-3))
    for _ in range(2):  # the moving averages move between calls; the density must not
        np.testing.assert_allclose(dist.log_prob(tf.constant(y)).numpy(), expected, rtol=1e-5)
