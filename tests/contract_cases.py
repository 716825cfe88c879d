"""The registry every bijector and builder is run through by ``test_contract.py``.

A case is ``Case(name, make, event_size, ...)`` where ``make(dtype)`` returns a fresh
bijector (or, for builders, a ``TransformedDistribution``). Add every new bijector here.
"""

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb
from tfp_flows import flows, multiscale

tfb, tfd = tfp.bijectors, tfp.distributions


def normal_inputs(rng, shape):
    return rng.normal(size=shape)


def unit_interval_inputs(rng, shape):
    return rng.uniform(0.02, 0.98, size=shape)


@dataclasses.dataclass
class Case:
    name: str
    make: Callable  # (dtype, event_size) -> Bijector or TransformedDistribution
    event_size: int
    sample: Callable = normal_inputs  # (rng, shape) -> inputs in the forward domain
    edges: Callable | None = None  # event_size -> [N, event_size] points on every branch
    rtol: dict = dataclasses.field(default_factory=lambda: {"float32": 2e-4, "float64": 1e-9})
    ldj_atol: dict = dataclasses.field(default_factory=lambda: {"float32": 2e-3, "float64": 1e-8})
    no_density_check: str = ""  # why the 2-D grid-integration check cannot apply, if it cannot
    # Does autodiff of the mean NLL over many points match its finite differences?
    # "unbiased"; "biased" (the check must fail): a piecewise-linear CDF has a log-density
    # that jumps at its bin edges, so wherever learnable maps move data points across edges
    # (the CDF's own inverse, or layers on the data side of a CDF) per-point gradients miss
    # the jumps; "ill-conditioned": central differences do not converge, check skipped.
    mle_gradient: str = "unbiased"
    finalize: Callable | None = None  # bijector -> None, run after the variables are perturbed

    def __str__(self):
        return self.name


def realnvp(template_kwargs, num_masked=1):
    def make(dtype, d):
        return tfb.RealNVP(num_masked=min(num_masked, d - 1),
                           shift_and_log_scale_fn=fb.real_nvp_template([16, 16], seed=3,
                                                                       **template_kwargs))
    return make


def fused_realnvp(template_kwargs, num_masked=1):
    def make(dtype, d):
        return fb.FusedRealNVP(num_masked=min(num_masked, d - 1),
                               shift_and_log_scale_fn=fb.real_nvp_template([16, 16], seed=3,
                                                                           **template_kwargs))
    return make


def coupled_piecewise(invert):
    def make(dtype, d):
        return tfb.RealNVP(num_masked=1, bijector_fn=fb.PiecewiseLinearCoupling(
            [16], num_bins=5, invert=invert, seed=4))
    return make


def near_singular(planar):
    """Sets ``u`` so that ``wᵀû = m(wᵀu)`` is within 1.3e-4 of −1: nearly non-invertible."""
    w = planar.w.numpy()
    planar.u.assign(-9.0 * w / np.sum(w * w))  # wᵀu = −9, m(−9) = −1 + 1.2e-4


def multiscale_case(network):
    """A 2×4×1 image (event size 8): one scale, one coupling each side of the squeeze."""
    def make(dtype, d):
        return multiscale.MultiScaleRealNVP(
            (2, 4, 1), num_scales=1, couplings_per_scale=1, final_couplings=1,
            hidden_layers=(8,) if network == "mlp" else (1,), network=network, filters=4,
            seed=0, dtype=dtype)
    return make


def piecewise_edges(event_size, num_bins=5):
    """Every bin's midpoint, every bin edge including 0 and 1, and points outside [0, 1]."""
    k = np.arange(num_bins)
    points = np.concatenate([(k + 0.5) / num_bins, k / num_bins, [1.0, -0.7, 1.3, 2.5]])
    return np.stack([np.roll(points, i) for i in range(event_size)], axis=-1)


def sign_edges(event_size):
    """Both sides of zero, and zero itself."""
    points = np.array([-2.0, -0.3, -1e-3, 0.0, 1e-3, 0.4, 3.0])
    return np.stack([np.roll(points, i) for i in range(event_size)], axis=-1)


def large_gain(planar):
    """Sets ``u`` so that ``wᵀû = m(9) ≈ 8``: plain Newton cycles on the inverse's equation."""
    w = planar.w.numpy()
    planar.u.assign(9.0 * w / np.sum(w * w))


def planar_edges(event_size):
    """Points where wᵀz + b is large (saturated tanh) as well as near zero."""
    return np.concatenate([np.linspace(-30, 30, 9)[:, None] * np.ones([1, event_size]),
                           np.zeros([1, event_size])])


CASES = [
    Case("real_nvp_template", realnvp({}), 3),
    Case("real_nvp_template_shift_only", realnvp({"shift_only": True}), 3),
    Case("real_nvp_template_masked_2", realnvp({}, num_masked=2), 4),
    Case("fused_real_nvp", fused_realnvp({}), 3),
    Case("fused_real_nvp_shift_only", fused_realnvp({"shift_only": True}), 3),
    Case("fused_real_nvp_masked_2", fused_realnvp({}, num_masked=2), 4),
    Case("piecewise_linear_coupling", coupled_piecewise(True), 3, sample=unit_interval_inputs,
         edges=piecewise_edges),
    Case("piecewise_linear_coupling_not_inverted", coupled_piecewise(False), 3,
         sample=unit_interval_inputs, edges=piecewise_edges, mle_gradient="biased"),
    Case("planar", lambda dtype, d: fb.Planar(d, seed=1, dtype=dtype), 3, edges=planar_edges),
    Case("planar_near_singular", lambda dtype, d: fb.Planar(d, seed=5, dtype=dtype), 2,
         edges=planar_edges, finalize=near_singular,
         rtol={"float32": 2e-2, "float64": 1e-7}, ldj_atol={"float32": 2e-2, "float64": 1e-6},
         no_density_check="density too peaked for a grid sum near the singular corner",
         mle_gradient="ill-conditioned"),
    Case("planar_large_gain", lambda dtype, d: fb.Planar(d, seed=6, dtype=dtype), 3,
         edges=planar_edges, finalize=large_gain),
    Case("lu_linear_rotation", lambda dtype, d: fb.LULinear(d, seed=2, dtype=dtype), 4),
    Case("lu_linear_identity",
         lambda dtype, d: fb.LULinear(d, init="identity", bias=False, dtype=dtype), 3),
    Case("piecewise_linear_cdf", lambda dtype, d: fb.PiecewiseLinearCDF(d, num_bins=5, dtype=dtype),
         3, sample=unit_interval_inputs, edges=piecewise_edges, mle_gradient="biased"),
    Case("batch_norm", lambda dtype, d: fb.BatchNorm(d, dtype=dtype), 3),
    Case("leaky_relu", lambda dtype, d: fb.LeakyReLU(0.3, dtype=dtype), 2, edges=sign_edges),
    Case("leaky_relu_trainable", lambda dtype, d: fb.LeakyReLU(0.2, trainable=True, dtype=dtype), 2,
         edges=sign_edges),
    Case("random_permute", lambda dtype, d: fb.random_permute(d, seed=7), 5),
    Case("multiscale_realnvp_mlp", multiscale_case("mlp"), 8,
         no_density_check="image flows have no 2-D version (squeeze needs even H and W)"),
    Case("multiscale_realnvp_conv", multiscale_case("conv"), 8,
         no_density_check="image flows have no 2-D version (squeeze needs even H and W)"),
    Case("flow_realnvp_batch_norm",
         lambda dtype, d: flows.realnvp(d, 3, [8, 8], batch_norm=True, seed=1, dtype=dtype), 3),
    Case("flow_planar", lambda dtype, d: flows.planar(d, 3, seed=1, dtype=dtype), 2),
    Case("flow_lu_piecewise_linear",
         lambda dtype, d: flows.lu_piecewise_linear(d, 2, num_bins=4, seed=1, dtype=dtype), 2,
         mle_gradient="biased"),
    Case("flow_lu_piecewise_linear_one_layer",
         lambda dtype, d: flows.lu_piecewise_linear(d, 1, num_bins=4, seed=1, dtype=dtype), 2),
]


def make_bijector(case, dtype, event_size=None):
    """Returns ``(bijector, distribution)`` for a case, built and with perturbed variables.

    Builders return the distribution; bijectors are wrapped over ``N(0, I)``.
    ``event_size`` overrides the case's (the 2-D density check uses 2).
    """
    event_size = event_size or case.event_size
    obj = case.make(dtype, event_size)
    if isinstance(obj, tfd.Distribution):
        dist = obj
    else:
        dist = tfd.TransformedDistribution(flows.standard_normal(event_size, dtype), obj)
    # Build lazy variables, then move every variable off its (often identity) initial value,
    # so that no check passes because a layer is still the identity.
    dist.log_prob(tf.zeros([event_size], dtype))
    rng = np.random.default_rng(11)
    for v in dist.variables:
        noise = rng.normal(size=v.shape).astype(v.dtype.as_numpy_dtype)
        if v.trainable:
            v.assign(v + 0.3 * noise)
        else:  # BatchNorm moving statistics: keep the variance positive
            v.assign(v + 0.3 * np.abs(noise))
    if case.finalize is not None:
        case.finalize(dist.bijector)
    return dist.bijector, dist
