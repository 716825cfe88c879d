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
from tfp_flows import flows, make_variable
from tfp_flows.bijectors import transformers
from tfp_flows.bijectors._base import FlowBijector

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
    # Grid points per axis of that check: more where the perturbed flow has features narrower
    # than the default grid's cells (the sum then misses mass it would count at a finer grid).
    density_resolution: int = 600
    # Does autodiff of the mean NLL over many points match its finite differences?
    # "unbiased"; "biased" (the check must fail): a piecewise-linear CDF has a log-density
    # that jumps at its bin edges, so wherever learnable maps move data points across edges
    # (the CDF's own inverse, or layers on the data side of a CDF) per-point gradients miss
    # the jumps; "ill-conditioned": central differences do not converge, check skipped.
    mle_gradient: str = "unbiased"
    finalize: Callable | None = None  # bijector -> None, run after the variables are perturbed
    # C > 0: the case is conditional; make_bijector binds a trainable context [C] (a
    # make_variable) through flows.context_kwargs, so every check also covers the context path
    # (gradients reach the context variable like any weight).
    context_size: int = 0
    # (bijector, x [N, D]) -> (piece ids, number of pieces): which piece of a piecewise map each
    # transformed entry of the `edges` points falls on; test_every_branch asserts all are hit.
    pieces: Callable | None = None
    # Why a wrong event size is not refused, if it cannot be (test_refuses_wrong_event_size).
    accepts_wrong_event_size: str = ""
    # Autoregressive cases: event_size -> the degree of each element. Both Jacobians must
    # vanish where degree_j >= degree_i (i != j), and only there.
    degrees: Callable | None = None
    # Why the log-det runs the conditioner network again, if it does (test_compiled).
    reruns_network: str = ""

    def __str__(self):
        return self.name


def realnvp(template_kwargs, num_masked=1):
    def make(dtype, d):
        return tfb.RealNVP(num_masked=min(num_masked, d - 1),
                           shift_and_log_scale_fn=fb.real_nvp_template([16, 16], seed=3,
                                                                       **template_kwargs))
    return make


def coupling(transformer, split=None, context_size=None):
    def make(dtype, d):
        return fb.Coupling(d, transformer, split=split(d) if callable(split) else split,
                           hidden_layers=[16], context_size=context_size, seed=4, dtype=dtype)
    return make


def spline_edges(event_size, bound=2.0):
    """A grid over [-1.5B, 1.5B] (every bin, both tails) and the end knots ±B exactly."""
    points = np.concatenate([np.linspace(-1.5 * bound, 1.5 * bound, 81), [-bound, bound]])
    return np.stack([np.roll(points, 7 * i) for i in range(event_size)], axis=-1)


def spline_pieces(bijector, x):
    """Piece of each transformed entry: 0 left tail, 1..K the bins, K + 1 right tail."""
    x = tf.constant(x, bijector.dtype)
    v_cond, v_trans, _ = bijector._split(x)
    widths, heights, _ = bijector.transformer.knots(bijector._params(v_cond, None))
    # An inverted spline's forward input is the rational-quadratic map's output: bins of heights.
    bins = heights if bijector.transformer.invert else widths
    knots = -bijector.transformer.bound + tf.math.cumsum(bins, axis=-1, exclusive=True)
    inside = tf.reduce_sum(tf.cast(knots <= v_trans[..., None], tf.int32), axis=-1)
    right = v_trans >= bijector.transformer.bound
    k = bijector.transformer.num_bins
    return np.where(right.numpy(), k + 1, inside.numpy()), k + 2


def near_singular(planar):
    """Sets ``u`` so that ``wᵀû = m(wᵀu)`` is within 1.3e-4 of −1: nearly non-invertible."""
    w = planar.w.numpy()
    planar.u.assign(-9.0 * w / np.sum(w * w))  # wᵀu = −9, m(−9) = −1 + 1.2e-4


def multiscale_case(network, transformer="affine"):
    """A 2×4×1 image (event size 8): one scale, one coupling each side of the squeeze."""
    def make(dtype, d):
        return fb.MultiScaleRealNVP(
            (2, 4, 1), num_scales=1, couplings_per_scale=1, final_couplings=1,
            hidden_layers=(8,) if network == "mlp" else (1,), network=network, filters=4,
            transformer=transformer, seed=0, dtype=dtype)
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


ELEMENTWISE = "elementwise with a scalar parameter: it has no event size to check"


def autoregressive(kind, transformer, context_size=None, input_order=None, hidden=(8, 8)):
    """A MAF (``kind="maf"``) or IAF layer; ``input_order="reversed"`` gives degrees D..1."""
    make_layer = {"maf": fb.MaskedAutoregressiveFlow, "iaf": fb.inverse_autoregressive_flow}[kind]

    def make(dtype, d):
        order = None if input_order is None else np.arange(d, 0, -1)
        return make_layer(d, transformer=transformer, hidden_layers=hidden,
                          context_size=context_size, input_order=order, seed=8, name=kind)
    return make


def left_to_right(event_size):
    return np.arange(1, event_size + 1)


def right_to_left(event_size):
    return np.arange(event_size, 0, -1)


def small_spline():
    """4 bins on [-2, 2]: normal inputs fall in every bin and in both tails."""
    return transformers.RationalQuadraticSpline(num_bins=4, bound=2.0)


TFP_REAL_NVP = "tfb.RealNVP calls shift_and_log_scale_fn again for the log-det"

CASES = [
    Case("real_nvp_template", realnvp({}), 3, reruns_network=TFP_REAL_NVP),
    Case("real_nvp_template_shift_only", realnvp({"shift_only": True}), 3,
         reruns_network=TFP_REAL_NVP),
    Case("real_nvp_template_masked_2", realnvp({}, num_masked=2), 4,
         reruns_network=TFP_REAL_NVP),
    Case("coupling_affine", coupling("affine"), 3),
    Case("coupling_affine_index_split_context",
         coupling(fb.Affine(shift_only=True), split=lambda d: ([0], [d - 1]), context_size=2), 3,
         context_size=2),
    Case("coupling_spline", coupling(fb.RationalQuadraticSpline(4, bound=2.0)), 3,
         edges=spline_edges, pieces=spline_pieces),
    Case("coupling_spline_inverted",
         coupling(fb.RationalQuadraticSpline(4, bound=2.0, invert=True)), 3,
         edges=spline_edges, pieces=spline_pieces),
    Case("coupling_spline_softclip",
         coupling(fb.RationalQuadraticSpline(4, bound=2.0, softclip=True)), 3,
         edges=spline_edges, pieces=spline_pieces),
    Case("coupling_spline_mask_context",
         coupling(fb.RationalQuadraticSpline(4, bound=2.0), context_size=3,
                  split=lambda d: np.arange(d) % 2 == 1), 4, edges=spline_edges, context_size=3),
    Case("coupling_spline_checkerboard",
         lambda dtype, d: fb.Coupling(8, fb.RationalQuadraticSpline(3, bound=2.0),
                                      split=fb.checkerboard_split((2, 4, 1), parity=1),
                                      hidden_layers=[8], seed=2, dtype=dtype), 8,
         edges=spline_edges,
         no_density_check="an image split has no 2-D version"),
    Case("coupling_piecewise_linear", coupling(fb.PiecewiseLinear(5)), 3,
         sample=unit_interval_inputs, edges=piecewise_edges),
    Case("coupling_piecewise_linear_not_inverted", coupling(fb.PiecewiseLinear(5, invert=False)),
         3, sample=unit_interval_inputs, edges=piecewise_edges, mle_gradient="biased"),
    Case("elementwise_spline_indices",
         lambda dtype, d: fb.Elementwise(d, small_spline(), indices=[0, d - 1], dtype=dtype), 3,
         edges=spline_edges),
    Case("elementwise_affine", lambda dtype, d: fb.Elementwise(d, "affine", dtype=dtype), 2),
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
    Case("lu_linear_from_permutation",
         lambda dtype, d: fb.LULinear(d, init="identity", permutation=np.roll(np.arange(d), 1),
                                      dtype=dtype), 3),
    Case("piecewise_linear_cdf", lambda dtype, d: fb.PiecewiseLinearCDF(d, num_bins=5, dtype=dtype),
         3, sample=unit_interval_inputs, edges=piecewise_edges, mle_gradient="biased"),
    Case("batch_norm", lambda dtype, d: fb.BatchNorm(d, dtype=dtype), 3),
    Case("leaky_relu", lambda dtype, d: fb.LeakyReLU(0.3, dtype=dtype), 2, edges=sign_edges,
         accepts_wrong_event_size=ELEMENTWISE),
    Case("leaky_relu_trainable", lambda dtype, d: fb.LeakyReLU(0.2, trainable=True, dtype=dtype), 2,
         edges=sign_edges, accepts_wrong_event_size=ELEMENTWISE),
    Case("random_permute", lambda dtype, d: fb.random_permute(d, seed=7), 5),
    Case("multiscale_realnvp_mlp", multiscale_case("mlp"), 8,
         no_density_check="image flows have no 2-D version (squeeze needs even H and W)"),
    Case("multiscale_realnvp_conv", multiscale_case("conv"), 8,
         no_density_check="image flows have no 2-D version (squeeze needs even H and W)"),
    Case("multiscale_spline_conv",
         multiscale_case("conv", fb.RationalQuadraticSpline(3, bound=2.0)), 8,
         edges=spline_edges,
         no_density_check="image flows have no 2-D version (squeeze needs even H and W)"),
    Case("flow_realnvp_batch_norm_context",
         lambda dtype, d: flows.realnvp(d, 3, [8, 8], batch_norm=True, context_size=2, seed=1,
                                        dtype=dtype), 3, context_size=2),
    # realnvp, maf and iaf start their networks at network_init="uniform" by default; the
    # identity start (nsf's default) through their code paths:
    Case("flow_realnvp_network_init_identity_context",
         lambda dtype, d: flows.realnvp(d, 2, [8], network_init="identity",
                                        hidden_bias_init="zeros", context_size=2, seed=1,
                                        dtype=dtype), 3, context_size=2),
    Case("flow_nsf", lambda dtype, d: flows.nsf(d, 2, num_bins=4, hidden_layers=[8], bound=2.0,
                                                seed=1, dtype=dtype), 3, edges=spline_edges),
    Case("flow_nsf_inverted",
         lambda dtype, d: flows.nsf(d, 2, num_bins=4, hidden_layers=[8], bound=2.0,
                                    invert_splines=True, seed=1, dtype=dtype), 3,
         edges=spline_edges),
    Case("flow_nsf_marginal_data_affine",
         lambda dtype, d: flows.nsf(d, 2, num_bins=4, hidden_layers=[8], bound=2.0,
                                    marginal_splines=True, data_affine=True, seed=1,
                                    dtype=dtype), 3, edges=spline_edges),
    Case("flow_nsf_lu_mixing",
         lambda dtype, d: flows.nsf(d, 2, num_bins=4, hidden_layers=[8], bound=2.0, mixing="lu",
                                    seed=1, dtype=dtype), 3, edges=spline_edges),
    Case("flow_nsf_inverted_softclip",
         lambda dtype, d: flows.nsf(d, 2, num_bins=4, hidden_layers=[8], bound=2.0,
                                    invert_splines=True, softclip_knots=True, seed=1,
                                    dtype=dtype), 3, edges=spline_edges),
    Case("flow_nsf_hidden_bias_init_uniform",
         lambda dtype, d: flows.nsf(d, 2, num_bins=4, hidden_layers=[8], bound=2.0,
                                    hidden_bias_init="uniform", seed=1, dtype=dtype), 3,
         edges=spline_edges),
    Case("flow_nsf_context",
         lambda dtype, d: flows.nsf(d, 2, num_bins=3, hidden_layers=[8], bound=3.0,
                                    context_size=2, seed=1, dtype=dtype), 2, context_size=2),
    # The builder's default (affine) couplings; its spline couplings are multiscale_spline_conv.
    Case("flow_multiscale_realnvp",
         lambda dtype, d: flows.multiscale_realnvp((2, 4, 1), num_scales=1, couplings_per_scale=1,
                                                   final_couplings=1, hidden_layers=[8], seed=1,
                                                   dtype=dtype), 8,
         no_density_check="image flows have no 2-D version (squeeze needs even H and W)"),
    Case("flow_planar", lambda dtype, d: flows.planar(d, 3, seed=1, dtype=dtype), 2),
    Case("flow_lu_piecewise_linear",
         lambda dtype, d: flows.lu_piecewise_linear(d, 2, num_bins=4, seed=1, dtype=dtype), 2,
         mle_gradient="biased"),
    Case("flow_lu_piecewise_linear_one_layer",
         lambda dtype, d: flows.lu_piecewise_linear(d, 1, num_bins=4, seed=1, dtype=dtype), 2),
    Case("maf_affine_reversed_order", autoregressive("maf", "affine", input_order="reversed"), 3,
         degrees=right_to_left),
    # D = 2: the MADE's first layer is multiply-adds (nn._narrow_matmul), not a matmul.
    Case("maf_affine_2d", autoregressive("maf", "affine"), 2, degrees=left_to_right),
    Case("maf_spline_context", autoregressive("maf", small_spline(), context_size=2), 3,
         context_size=2, degrees=left_to_right),
    Case("iaf_affine", autoregressive("iaf", "affine"), 3, degrees=left_to_right),
    Case("flow_maf_spline_context",
         lambda dtype, d: flows.maf(d, 2, [8], transformer="spline", num_bins=4, bound=2.0,
                                    context_size=2, seed=1, dtype=dtype), 3, context_size=2),
    Case("flow_maf_spline_context_identity_uniform_biases",
         lambda dtype, d: flows.maf(d, 2, [8], transformer="spline", num_bins=4, bound=2.0,
                                    network_init="identity", hidden_bias_init="uniform",
                                    context_size=2, seed=1, dtype=dtype), 3, context_size=2,
         # its perturbed float64 density sums to 0.972 / 1.0031 / 1.00003 at 600 / 1200 /
         # 2400 grid points per axis
         density_resolution=1200),
    Case("flow_iaf_affine_identity_uniform_biases",
         lambda dtype, d: flows.iaf(d, 2, [8], network_init="identity", hidden_bias_init="uniform",
                                    seed=1, dtype=dtype), 3),
    Case("flow_maf_affine_network_init_identity_context",
         lambda dtype, d: flows.maf(d, 2, [8], network_init="identity", hidden_bias_init="zeros",
                                    context_size=2, seed=1, dtype=dtype), 3, context_size=2),
    Case("flow_iaf_affine_context",
         lambda dtype, d: flows.iaf(d, 2, [8], context_size=2, seed=1, dtype=dtype), 3,
         context_size=2),
]


class WithContext(FlowBijector):
    """``bijector`` with ``bijector_kwargs`` bound: a conditional case seen as a plain bijector."""

    def __init__(self, bijector, context, kwargs):
        self.bijector, self.context, self._kwargs = bijector, context, kwargs
        super().__init__(forward_min_event_ndims=1, dtype=bijector.dtype,
                         is_constant_jacobian=False, name="with_context")

    def _forward(self, x):
        return self.bijector.forward(x, **self._kwargs)

    def _inverse(self, y):
        return self.bijector.inverse(y, **self._kwargs)

    def _forward_log_det_jacobian(self, x):
        return self.bijector.forward_log_det_jacobian(x, event_ndims=1, **self._kwargs)

    def _inverse_log_det_jacobian(self, y):
        return self.bijector.inverse_log_det_jacobian(y, event_ndims=1, **self._kwargs)


def build(case, dtype, event_size=None):
    """``(bijector, distribution)`` for a case as built (a conditional case with its context
    bound, see ``Case.context_size``)."""
    event_size = event_size or case.event_size
    obj = case.make(dtype, event_size)
    if isinstance(obj, tfd.Distribution):
        base, bijector = obj.distribution, obj.bijector
    else:
        base, bijector = flows.standard_normal(event_size, dtype), obj
    if case.context_size:
        value = np.random.default_rng(8).normal(size=[case.context_size])
        context = make_variable(value, "context", dtype)
        kwargs = flows._route(bijector, {"conditional_input": context})
        bijector = WithContext(bijector, context, kwargs)
    return bijector, tfd.TransformedDistribution(base, bijector)


def make_bijector(case, dtype, event_size=None):
    """Returns ``(bijector, distribution)`` for a case, built and with perturbed variables.

    Bijectors are wrapped over ``N(0, I)``. ``event_size`` overrides the case's (the 2-D
    density check uses 2).
    """
    event_size = event_size or case.event_size
    _, dist = build(case, dtype, event_size)
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
