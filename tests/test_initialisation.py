"""Initial states promised by the docstrings: identity couplings, rotations, identity bins."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb

tfb = tfp.bijectors


def test_fresh_couplings_are_the_identity():
    x = np.random.default_rng(0).uniform(size=[10, 4]).astype("float32")
    for bijector in [
        tfb.RealNVP(num_masked=2, shift_and_log_scale_fn=fb.real_nvp_template([8], seed=0)),
        fb.Coupling(4, "affine", hidden_layers=[8], seed=0),
        fb.Coupling(4, "spline", hidden_layers=[8], seed=0),
        fb.Coupling(4, "piecewise_linear", hidden_layers=[8], seed=0),
        fb.PiecewiseLinearCDF(4, num_bins=6),
    ]:
        np.testing.assert_allclose(bijector.forward(tf.constant(x)).numpy(), x, atol=1e-6)
        ldj = bijector.forward_log_det_jacobian(tf.constant(x), event_ndims=1).numpy()
        np.testing.assert_allclose(ldj, 0.0, atol=1e-5)


def test_lu_linear_starts_from_a_rotation_or_the_identity():
    w = fb.LULinear(6, seed=3, dtype=tf.float64).weight().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-10)
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=[6, 6]))
    np.testing.assert_allclose(w, q, atol=1e-10)  # exactly the QR rotation, re-factorised
    assert not np.allclose(w, np.eye(6))
    identity = fb.LULinear(6, init="identity", dtype=tf.float64).weight().numpy()
    np.testing.assert_array_equal(identity, np.eye(6))


def test_planar_constraint_holds_for_any_u():
    planar = fb.Planar(3, seed=0, dtype=tf.float64)
    for scale in [-100.0, -5.0, 0.0, 5.0]:
        planar.u.assign(scale * planar.w.numpy())
        assert float(tf.reduce_sum(planar.w * planar.u_hat())) > -1.0


def test_mlp_uniform_init_draws_every_weight_within_its_fan_in_bound():
    """``nn.MLP(kernel_init="uniform", zero_init_output=False)``: every kernel and bias in
    ``±1/√fan_in`` (PyTorch's ``nn.Linear`` default), none all zero; Glorot's hidden kernel
    (``±√(6 / (8 + 8))``) reaches past that bound."""
    from tfp_flows import nn

    def built(**kwargs):
        mlp = nn.MLP([8, 8], 3, seed=0, **kwargs)
        mlp(tf.zeros([1, 5]))
        return mlp.weights()

    for (kernel, bias), fan_in in zip(built(kernel_init="uniform", zero_init_output=False,
                                            bias_init="uniform"), [5, 8, 8]):
        bound = 1 / np.sqrt(fan_in)
        for w in (kernel.numpy(), bias.numpy()):
            assert np.all(np.abs(w) <= bound) and np.abs(w).max() > 0.5 * bound
    assert np.abs(built()[1][0].numpy()).max() > 1 / np.sqrt(8)


def test_builders_start_at_the_base_with_identity_networks_only():
    """``network_init="identity"``: a fresh flow is ``N(0, I)``; ``"uniform"``: it is not."""
    from tfp_flows import flows

    x = np.random.default_rng(0).normal(size=[7, 2]).astype("float32")
    base = flows.standard_normal(2).log_prob(tf.constant(x)).numpy()
    for builder in (flows.realnvp, flows.nsf, flows.maf, flows.iaf):
        for init in ("identity", "uniform"):
            dist = builder(2, num_layers=2, hidden_layers=[8], network_init=init, seed=0)
            log_p = dist.log_prob(tf.constant(x)).numpy()
            if init == "identity":
                np.testing.assert_allclose(log_p, base, atol=1e-5)
            else:
                assert np.abs(log_p - base).max() > 1e-2, builder.__name__
