"""Piecewise-linear CDF flow (Müller et al., 2019, "Neural importance sampling")."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks
from tfp_flows._variables import make_variable
from tfp_flows.bijectors._base import FlowBijector
from tfp_flows.nn import MLP, concat_conditions

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

    Parameters: either owned logits ``θ`` of shape ``[D, K]`` (``event_size`` given,
    initialised to zero: the identity), or a ``logits`` tensor ``[..., D, K]`` produced
    elsewhere, e.g. by the network of a coupling layer (see
    ``piecewise_linear_coupling``).

    Shapes: ``event_ndims = 1``; inputs ``[..., D]``.
    """

    def __init__(self, event_size=None, num_bins=8, logits=None, min_bin_mass=1e-3,
                 dtype=tf.float32, validate_args=False, name="piecewise_linear_cdf"):
        parameters = dict(locals())
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
    def num_bins(self):
        return self._num_bins

    def bin_masses(self):
        """Returns the masses ``m`` of shape ``[..., D, K]``; they sum to 1 over ``K``."""
        return bin_masses(tf.convert_to_tensor(self.logits), self._min_bin_mass)

    def _check_domain(self, x):
        if not self.validate_args:
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
        return self._map(cdf_forward, x)[0]

    def _inverse(self, y):
        return self._map(cdf_inverse, y)[0]

    def _forward_log_det_jacobian(self, x):
        return self._map(cdf_forward, x)[1]

    def _inverse_log_det_jacobian(self, y):
        return self._map(cdf_inverse, y)[1]


class PiecewiseLinearCoupling(tf.Module):
    """``bijector_fn`` for ``tfb.RealNVP``: a ``PiecewiseLinearCDF`` whose logits come
    from an MLP of the conditioning half.

    ``(x0 [..., d], output_units) -> PiecewiseLinearCDF(logits [..., output_units, K])``,
    wrapped in ``tfb.Invert`` when ``invert=True`` (the default). The network's last layer is
    zero-initialised, so a fresh coupling is the identity.

    Direction: the CDF's bins are fixed in its *input*. ``invert=True`` puts that side on the
    data, so ``log_prob`` (which runs the flow's inverse) has a log-det that is smooth in the
    parameters; with ``invert=False`` bin edges sweep across data points during maximum
    likelihood and autodiff misses the jumps. Use ``invert=False`` when the flow is trained by
    sampling (reverse KL), where the forward direction is the one differentiated.

    Example:
      ``tfb.RealNVP(num_masked=1, bijector_fn=PiecewiseLinearCoupling([32, 32], num_bins=8))``
    """

    def __init__(self, hidden_layers, num_bins=8, invert=True, activation=tf.nn.relu, seed=None,
                 name=None):
        super().__init__(name=name or "piecewise_linear_coupling")
        self._invert = bool(invert)
        self._hidden_layers = list(hidden_layers)
        if not self._hidden_layers:
            raise ValueError("`hidden_layers` must list at least one hidden width, got [].")
        self._num_bins = _checks.positive_int(num_bins, "num_bins")
        self._activation = activation
        self._seed = seed
        self.network = None

    def __call__(self, x0, output_units, **condition_kwargs):
        x0 = tf.convert_to_tensor(x0)
        if self.network is None:
            self.network = MLP(self._hidden_layers, output_units * self._num_bins,
                               activation=self._activation, seed=self._seed, name="network")
        out = self.network(concat_conditions(x0, condition_kwargs))
        logits = tf.reshape(out, tf.concat([tf.shape(out)[:-1], [output_units, self._num_bins]], 0))
        logits.set_shape(x0.shape[:-1].concatenate([output_units, self._num_bins]))
        cdf = PiecewiseLinearCDF(num_bins=self._num_bins, logits=logits)
        return tfb.Invert(cdf) if self._invert else cdf
