"""Piecewise-linear CDF flow (Müller et al., 2019, "Neural importance sampling")."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks
from tfp_flows._variables import make_variable
from tfp_flows.bijectors._base import FlowBijector

tfb = tfp.bijectors


def check_min_bin_mass(min_bin_mass, num_bins):
    """Returns ``float(min_bin_mass)`` if it lies in ``[0, 1/num_bins)``, else raises."""
    value = float(min_bin_mass)
    if not 0 <= value < 1.0 / num_bins:
        raise ValueError(f"`min_bin_mass` must lie in [0, 1/num_bins) = [0, "
                         f"{1.0 / num_bins}), got {min_bin_mass!r}.")
    return value


def bin_masses(logits, min_bin_mass):
    """``m = ε + (1 − Kε) · softmax(logits)`` over the last axis ``[..., K]``; sums to 1."""
    k = logits.shape[-1]
    return min_bin_mass + (1.0 - k * min_bin_mass) * tf.nn.softmax(logits, axis=-1)


def _take(params, index, num_bins):
    """Picks ``params[..., index[...]]`` -> ``[...]`` (one-hot: XLA-friendly)."""
    return tf.reduce_sum(params * tf.one_hot(index, num_bins, dtype=params.dtype), -1)


def cdf_forward(x, masses):
    """The CDF map elementwise: ``(y, log|∂y/∂x|)``, both ``[...]``, for ``x [...]`` and
    bin masses ``[..., K]`` (broadcast). Identity (log-det 0) outside ``[0, 1]``."""
    k = masses.shape[-1]
    cdf = tf.math.cumsum(masses, axis=-1, exclusive=True)
    inside = (x >= 0) & (x <= 1)
    index = tf.clip_by_value(tf.cast(tf.floor(x * k), tf.int32), 0, k - 1)
    mass = _take(masses, index, k)
    y = _take(cdf, index, k) + (x * k - tf.cast(index, x.dtype)) * mass
    zero = tf.zeros([], x.dtype)
    return tf.where(inside, y, x), tf.where(inside, tf.math.log(mass * k), zero)


def cdf_inverse(y, masses):
    """Inverse of ``cdf_forward``: ``(x, log|∂x/∂y|)``. The bin holding ``y`` is
    ``#{k ≥ 1 : C_k ≤ y}`` with ``C`` the exclusive cumulative masses."""
    k = masses.shape[-1]
    cdf = tf.math.cumsum(masses, axis=-1, exclusive=True)
    inside = (y >= 0) & (y <= 1)
    count = tf.reduce_sum(tf.cast(cdf[..., 1:] <= y[..., tf.newaxis], tf.int32), axis=-1)
    index = tf.clip_by_value(count, 0, k - 1)
    mass = _take(masses, index, k)
    x = (tf.cast(index, y.dtype) + (y - _take(cdf, index, k)) / mass) / k
    zero = tf.zeros([], y.dtype)
    return tf.where(inside, x, y), tf.where(inside, -tf.math.log(mass * k), zero)


def logit_cdf_forward(x, masses):
    """``logit ∘ cdf_forward ∘ sigmoid`` elementwise on the real line, without saturating.

    Composing ``tfb.Sigmoid`` with the CDF in float32 rounds ``sigmoid(x)`` to 1 for
    ``x ≳ 17`` (and a CDF value to 1 where a bin is light), and ``logit(1) = inf`` turns
    ``log_prob`` into NaN far from the training data. Here ``log v`` and ``log(1 − v)`` are
    formed from ``log σ(±x)`` in the outer bins and from exact sums of masses inside, so the
    map and ``log|∂y/∂x| = log(K m_k) + log σ(x) + log σ(−x) − log v − log(1 − v)`` stay finite.
    Returns ``(y, log_det)`` for ``x [...]`` and masses ``[..., K]``.
    """
    k = masses.shape[-1]
    cdf = tf.math.cumsum(masses, axis=-1, exclusive=True)  # C_j = Σ_{i<j} m_i
    above = tf.math.cumsum(masses, axis=-1, exclusive=True, reverse=True)  # Σ_{i>j} m_i
    u = tf.sigmoid(x)
    index = tf.clip_by_value(tf.cast(tf.floor(u * k), tf.int32), 0, k - 1)
    mass, low, high = (_take(p, index, k) for p in (masses, cdf, above))
    first, last = tf.equal(index, 0), tf.equal(index, k - 1)
    kf = tf.cast(index, x.dtype)
    t = u * k - kf  # position in the bin, [0, 1]
    one_minus_t = tf.where(last, k * tf.sigmoid(-x), kf + 1 - u * k)
    log_km = tf.math.log(mass * k)
    log_v = tf.where(first, log_km + tf.math.log_sigmoid(x),
                     tf.math.log(tf.where(first, tf.ones_like(x), low + t * mass)))
    log_1mv = tf.where(last, log_km + tf.math.log_sigmoid(-x),
                       tf.math.log(tf.where(last, tf.ones_like(x), high + one_minus_t * mass)))
    log_det = log_km + tf.math.log_sigmoid(x) + tf.math.log_sigmoid(-x) - log_v - log_1mv
    return log_v - log_1mv, log_det


def logit_cdf_inverse(y, masses):
    """Inverse of ``logit_cdf_forward``: ``(x, log|∂x/∂y|)``, as stable as the forward map."""
    k = masses.shape[-1]
    cdf = tf.math.cumsum(masses, axis=-1, exclusive=True)
    v = tf.sigmoid(y)
    count = tf.reduce_sum(tf.cast(cdf[..., 1:] <= v[..., tf.newaxis], tf.int32), axis=-1)
    index = tf.clip_by_value(count, 0, k - 1)
    mass, low = _take(masses, index, k), _take(cdf, index, k)
    first, last = tf.equal(index, 0), tf.equal(index, k - 1)
    kf = tf.cast(index, y.dtype)
    log_km = tf.math.log(mass * k)
    t = (v - low) / mass
    one_minus_t = (low + mass - v) / mass
    log_u = tf.where(first, tf.math.log_sigmoid(y) - log_km,
                     tf.math.log(tf.where(first, tf.ones_like(y), (kf + t) / k)))
    log_1mu = tf.where(last, tf.math.log_sigmoid(-y) - log_km,
                       tf.math.log(tf.where(last, tf.ones_like(y),
                                            (k - kf - 1 + one_minus_t) / k)))
    log_det = tf.math.log_sigmoid(y) + tf.math.log_sigmoid(-y) - log_km - log_u - log_1mu
    return log_u - log_1mu, log_det


class PiecewiseLinearCDF(FlowBijector):
    """Monotone K-bin piecewise-linear map of ``[0, 1]`` onto itself, per dimension.

    Bin ``k`` covers ``[k/K, (k+1)/K)`` and carries mass
    ``m_k = ε + (1 − Kε) · softmax(θ)_k`` (``ε = min_bin_mass``, which keeps every
    slope positive). With ``C_k = Σ_{j<k} m_j`` and ``k = ⌊K x⌋``:

      ``y = C_k + (K x − k) · m_k``,   ``∂y/∂x = K · m_k``,
      ``log|det J| = Σ_d log(K · m_{k_d, d})``.

    Outside ``[0, 1]`` the map is the identity (``y = x``, log-det 0), so it is a
    bijection of the whole real line and continuous at 0 and 1; with
    ``validate_args=True`` an input outside ``[0, 1]`` raises instead.

    ``real_line=True`` gives ``logit ∘ CDF ∘ sigmoid`` instead, a bijection of the real line
    computed without float32 saturation (``logit_cdf_forward``; ``flows.lu_piecewise_linear``).

    Parameters: either owned logits ``θ`` of shape ``[D, K]`` (``event_size`` given,
    initialised to zero: the identity), or a ``logits`` tensor ``[..., D, K]`` produced
    elsewhere. In a coupling use ``Coupling(transformer="piecewise_linear")`` (the same map).

    Shapes: ``event_ndims = 1``; inputs ``[..., D]``.
    """

    def __init__(self, event_size: int | None = None, num_bins: int = 8,
                 logits: tf.Tensor | None = None, min_bin_mass: float = 1e-3,
                 real_line: bool = False, dtype: tf.DType = tf.float32,
                 validate_args: bool = False, name: str = "piecewise_linear_cdf"):
        parameters = dict(locals())
        self._real_line = bool(real_line)
        self._fns = ((logit_cdf_forward, logit_cdf_inverse) if self._real_line
                     else (cdf_forward, cdf_inverse))
        self._num_bins = _checks.positive_int(num_bins, "num_bins")
        self._min_bin_mass = check_min_bin_mass(min_bin_mass, self._num_bins)
        with tf.name_scope(name) as scope:
            if logits is None:
                if event_size is None:
                    raise ValueError("PiecewiseLinearCDF needs `event_size` (or `logits`).")
                self._event_size = _checks.positive_int(event_size, "event_size")
                dtype = _checks.float_dtype(dtype)
                self.logits = make_variable(np.zeros([self._event_size, self._num_bins]),
                                            "logits", dtype)
            else:
                logits = tf.convert_to_tensor(logits)
                dtype = _checks.float_dtype(logits.dtype, "logits.dtype")
                if logits.shape.rank is not None and logits.shape.rank < 2:
                    raise ValueError(
                        f"`logits` must have shape [..., D, num_bins], got {logits.shape}.")
                if logits.shape[-1] is not None and logits.shape[-1] != self._num_bins:
                    raise ValueError(f"`logits` last axis must equal num_bins={self._num_bins}, "
                                     f"got {logits.shape[-1]}.")
                self._event_size = logits.shape[-2]
                if event_size is not None and event_size != self._event_size:
                    raise ValueError(f"`event_size`={event_size} disagrees with logits "
                                     f"shape {logits.shape}.")
                self.logits = logits
            super().__init__(forward_min_event_ndims=1, dtype=dtype, validate_args=validate_args,
                             parameters=parameters, name=scope)

    @property
    def num_bins(self) -> int:
        return self._num_bins

    def bin_masses(self) -> tf.Tensor:
        """Returns the masses ``m`` of shape ``[..., D, K]``; they sum to 1 over ``K``."""
        return bin_masses(tf.convert_to_tensor(self.logits), self._min_bin_mass)

    def _check_domain(self, x):
        if not self.validate_args or self._real_line:
            return []
        domain = f"{self.name}: input outside [0, 1], where the map is defined"
        return [tf.debugging.assert_greater_equal(x, tf.zeros([], x.dtype), message=domain),
                tf.debugging.assert_less_equal(x, tf.ones([], x.dtype), message=domain)]

    def _map(self, fn, v):
        _checks.event_shape(v, self._event_size, self.name)
        with tf.control_dependencies(self._check_domain(v)):
            out, log_det = fn(v, self.bin_masses())
            return out, tf.reduce_sum(log_det, axis=-1)

    def _forward(self, x):
        return self._map(self._fns[0], x)[0]

    def _inverse(self, y):
        return self._map(self._fns[1], y)[0]

    def _forward_log_det_jacobian(self, x):
        return self._map(self._fns[0], x)[1]

    def _inverse_log_det_jacobian(self, y):
        return self._map(self._fns[1], y)[1]
