"""Elementwise monotone maps that a coupling or an autoregressive conditioner parametrises.

A transformer is the math only; the parameters come from a network. Every transformer has

- ``num_params``: the number of unconstrained parameters per transformed element ``P``;
- ``forward_and_log_det(x, params) -> (y, log_det)`` and
  ``inverse_and_log_det(y, params) -> (x, log_det)``: ``x, y [..., n]``,
  ``params [..., n, P]`` (broadcast against each other), ``log_det [..., n]`` the
  *elementwise* ``log|∂y/∂x|`` (forward) or ``log|∂x/∂y|`` (inverse); sum it over ``n``.

Identity at initialisation: ``params = 0`` is the identity map for every transformer here, so a
conditioner whose last layer is zero-initialised makes a fresh layer the identity.

``get(name_or_transformer)`` accepts ``"affine"``, ``"spline"`` (``"rational_quadratic_spline"``),
``"piecewise_linear"`` or an object with the three members above.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks, _compat
from tfp_flows.bijectors import piecewise_linear_cdf

tfb = tfp.bijectors


class Affine:
    """``y = x · exp(s) + t`` with a softly bounded log-scale ``s = c · tanh(r / c)``.

    Parameters per element: ``(t, r)`` (``P = 2``; ``P = 1``, ``s = 0`` with ``shift_only``:
    NICE's additive coupling). ``c = log_scale_bound`` keeps ``exp(s)`` in
    ``[e^{-c}, e^{c}]`` however large ``r`` grows during training.
    ``log|∂y/∂x| = s``; inverse ``x = (y − t) · exp(−s)``.
    """

    def __init__(self, log_scale_bound: float = 2.0, shift_only: bool = False):
        self.log_scale_bound = _checks.positive_float(log_scale_bound, "log_scale_bound")
        self.shift_only = bool(shift_only)
        self.num_params = 1 if self.shift_only else 2

    def _shift_and_log_scale(self, params):
        shift = params[..., 0]
        if self.shift_only:
            return shift, tf.zeros_like(shift)
        c = tf.constant(self.log_scale_bound, params.dtype)
        return shift, c * tf.tanh(params[..., 1] / c)

    def forward_and_log_det(self, x, params):
        shift, log_scale = self._shift_and_log_scale(params)
        return x * tf.exp(log_scale) + shift, log_scale + tf.zeros_like(x)

    def inverse_and_log_det(self, y, params):
        shift, log_scale = self._shift_and_log_scale(params)
        return (y - shift) * tf.exp(-log_scale), -log_scale + tf.zeros_like(y)

    def __repr__(self):
        return f"Affine(log_scale_bound={self.log_scale_bound}, shift_only={self.shift_only})"


@_compat.shared_search_spline
class _Spline(tfb.RationalQuadraticSpline):
    """``tfb.RationalQuadraticSpline`` whose map and log-det of one tensor search its knots
    once, without gathers (``_compat.shared_search_spline``, ``_compat.spline_search``)."""


class RationalQuadraticSpline:
    """Monotone rational-quadratic spline on ``[-B, B]`` with linear (identity) tails
    (Durkan et al., 2019, "Neural spline flows"), evaluated by ``tfb.RationalQuadraticSpline``.

    Parameters per element: ``K`` raw widths, ``K`` raw heights and ``K − 1`` raw interior
    derivatives (``P = 3K − 1``). Knots: widths ``w = m_w + (2B − K m_w) · softmax(raw)`` (heights
    likewise), interior derivatives ``d = m_d + softplus(raw + softplus⁻¹(1 − m_d))``; the
    boundary derivatives are 1, matching the identity tails, so the map is C¹ everywhere. With
    ``params = 0`` every bin has width and height ``2B/K`` and every derivative is 1: the identity.

    Outside ``[-B, B]`` ``y = x`` (log-det 0). Shapes as in the module docstring.

    ``softclip=True`` parametrises the knots as zuko's ``MonotonicRQSTransform`` does
    (``m = min_derivative``, ``clip_c(r) = r / (1 + |r| / c)``, a soft clip into ``(−c, c)``):
    widths ``w = 2B · softmax(clip_{c/2}(raw))`` (heights likewise, no minimum width: the soft
    clip keeps any two bins within a factor ``1/m`` of each other), derivatives
    ``d = exp(clip_c(raw))`` with ``c = ln(1/m)``, so ``d ∈ (m, 1/m)``. Also the identity at
    ``params = 0``; ``min_width`` and ``min_height`` are then unused.

    ``invert=True`` swaps the two directions: ``forward_and_log_det`` solves the spline's
    quadratic and ``inverse_and_log_det`` evaluates the rational-quadratic map, so on the data
    side of a flow (``log_prob``) the spline itself is evaluated, with its knots fixed in the
    data's coordinates (the direction of autoregressive NSFs, which map data to base).
    """

    def __init__(self, num_bins: int = 8, bound: float = 5.0, min_width: float = 1e-3,
                 min_height: float = 1e-3, min_derivative: float = 1e-3, invert: bool = False,
                 softclip: bool = False):
        self.num_bins = _checks.positive_int(num_bins, "num_bins")
        self.bound = _checks.positive_float(bound, "bound")
        self.min_width = float(min_width)
        self.min_height = float(min_height)
        for name, value in (("min_width", self.min_width), ("min_height", self.min_height)):
            if not 0 <= value < 2 * self.bound / self.num_bins:
                raise ValueError(f"`{name}` must lie in [0, 2·bound/num_bins) = [0, "
                                 f"{2 * self.bound / self.num_bins}), got {value!r}.")
        self.min_derivative = _checks.in_open_interval(min_derivative, 0.0, 1.0,
                                                       "min_derivative") if min_derivative else 0.0
        self.invert = bool(invert)
        self.softclip = bool(softclip)
        if self.softclip and not self.min_derivative:
            raise ValueError("`softclip=True` bounds the derivatives in (m, 1/m) with "
                             "m = `min_derivative`, which must then be in (0, 1).")
        self.num_params = 3 * self.num_bins - 1

    def knots(self, params):
        """``(bin_widths [..., K], bin_heights [..., K], knot_slopes [..., K − 1])``."""
        k, b = self.num_bins, self.bound
        params = tf.convert_to_tensor(params)
        raw_w, raw_h, raw_d = tf.split(params, [k, k, k - 1], axis=-1)
        if self.softclip:
            c = -np.log(self.min_derivative)
            widths = 2 * b * tf.nn.softmax(_soft_clip(raw_w, c / 2), axis=-1)
            heights = 2 * b * tf.nn.softmax(_soft_clip(raw_h, c / 2), axis=-1)
            return widths, heights, tf.exp(_soft_clip(raw_d, c))
        widths = self.min_width + (2 * b - k * self.min_width) * tf.nn.softmax(raw_w, axis=-1)
        heights = self.min_height + (2 * b - k * self.min_height) * tf.nn.softmax(raw_h, axis=-1)
        offset = np.log(np.expm1(1.0 - self.min_derivative))  # softplus(offset) = 1 − m_d
        slopes = self.min_derivative + tf.nn.softplus(raw_d + tf.constant(offset, params.dtype))
        return widths, heights, slopes

    def bijector(self, params):
        """The ``tfb.RationalQuadraticSpline`` (batch shape ``params.shape[:-1]``)."""
        widths, heights, slopes = self.knots(params)
        return _Spline(widths, heights, slopes, range_min=-self.bound)

    def forward_and_log_det(self, x, params):
        return self._spline_inverse(x, params) if self.invert else self._spline_forward(x, params)

    def inverse_and_log_det(self, y, params):
        return self._spline_forward(y, params) if self.invert else self._spline_inverse(y, params)

    def _spline_forward(self, x, params):
        spline = self.bijector(params)
        return spline.forward(x), spline.forward_log_det_jacobian(x, event_ndims=0)

    def _spline_inverse(self, y, params):
        spline = self.bijector(params)
        return spline.inverse(y), spline.inverse_log_det_jacobian(y, event_ndims=0)

    def __repr__(self):
        return (f"RationalQuadraticSpline(num_bins={self.num_bins}, bound={self.bound}, "
                f"invert={self.invert}, softclip={self.softclip})")


def _soft_clip(r, c):
    """``r / (1 + |r| / c)``: odd, slope 1 at 0, into ``(−c, c)``."""
    return r / (1 + tf.abs(r) / c)


class PiecewiseLinear:
    """K-bin monotone piecewise-linear map of ``[0, 1]`` (identity outside), the math of
    ``PiecewiseLinearCDF`` (Müller et al., 2019); ``P = K`` logits per element.

    ``invert=True`` (the default) swaps the two directions, so that the *inverse* (the data
    side of a flow: ``log_prob``) runs the CDF's forward map, whose bins are fixed in its input;
    see ``PiecewiseLinearCDF`` for why that keeps the maximum-likelihood gradient unbiased. Use
    ``invert=False`` for flows trained by sampling (reverse KL).
    """

    def __init__(self, num_bins: int = 8, min_bin_mass: float = 1e-3, invert: bool = True):
        self.num_bins = _checks.positive_int(num_bins, "num_bins")
        self.min_bin_mass = piecewise_linear_cdf.check_min_bin_mass(min_bin_mass, self.num_bins)
        self.invert = bool(invert)
        self.num_params = self.num_bins

    def _masses(self, params):
        return piecewise_linear_cdf.bin_masses(params, self.min_bin_mass)

    def forward_and_log_det(self, x, params):
        fn = piecewise_linear_cdf.cdf_inverse if self.invert else piecewise_linear_cdf.cdf_forward
        return fn(x, self._masses(params))

    def inverse_and_log_det(self, y, params):
        fn = piecewise_linear_cdf.cdf_forward if self.invert else piecewise_linear_cdf.cdf_inverse
        return fn(y, self._masses(params))

    def __repr__(self):
        return f"PiecewiseLinear(num_bins={self.num_bins}, invert={self.invert})"


_BY_NAME = {"affine": Affine, "spline": RationalQuadraticSpline,
            "rational_quadratic_spline": RationalQuadraticSpline,
            "piecewise_linear": PiecewiseLinear}


def get(transformer):
    """A transformer from its name (default settings) or the transformer itself."""
    if isinstance(transformer, str):
        if transformer not in _BY_NAME:
            raise ValueError(f"Unknown transformer {transformer!r}; expected one of "
                             f"{sorted(_BY_NAME)} or a transformer object.")
        return _BY_NAME[transformer]()
    for member in ("num_params", "forward_and_log_det", "inverse_and_log_det"):
        if not hasattr(transformer, member):
            raise TypeError(f"A transformer needs `{member}` (see tfp_flows.bijectors."
                            f"transformers); got {transformer!r}.")
    return transformer


__all__ = ["Affine", "PiecewiseLinear", "RationalQuadraticSpline", "get"]
