"""Batch normalisation as a bijector (Dinh et al., 2017, RealNVP), Keras-3-safe."""

import numpy as np
import tensorflow as tf

from tfp_flows import _checks, _compat
from tfp_flows._mode import is_training
from tfp_flows._variables import make_variable
from tfp_flows.bijectors._base import FlowBijector


class BatchNorm(FlowBijector):
    """Batch normalisation in the data direction, TFP's convention.

    ``inverse`` (data ``y`` -> latent ``x``) normalises,
    ``x = (y − μ) / sqrt(σ² + ε) · exp(log_gamma) + beta``,
    and ``forward`` undoes it, ``y = (x − beta) · exp(−log_gamma) · sqrt(σ² + ε) + μ``.
    ``log|det ∂y/∂x| = Σ_d [½ log(σ_d² + ε) − log_gamma_d]``.

    Statistics: in inference mode ``(μ, σ²)`` are the moving averages, and forward,
    inverse and both log-dets are one exact bijection. In training mode (``training=True``,
    or ``training=None`` inside ``tfp_flows.training_mode(True)``, which ``FlowModel.fit``
    enters) ``inverse`` and ``inverse_log_det_jacobian`` use the statistics of the batch
    ``y`` (over all batch axes), and each ``inverse`` call moves the averages once:
    ``moving ← momentum · moving + (1 − momentum) · batch``. ``forward`` (the sampling
    direction, which has no data batch) always uses the moving averages, as in TFP.

    ``TransformedDistribution.log_prob`` takes its log-det as ``−fldj(inverse(y))``; so that
    this uses the batch statistics too, a training-mode ``inverse`` hands its log-det to TFP's
    bijector cache for the pair ``(x, y)`` (the mechanism ``tfb.FFJORD`` uses).

    Unlike ``tfb.BatchNormalization`` it wraps no tf-keras layer, so it works under Keras 3.
    Under ``tf.distribute`` the batch statistics are those of the global batch (all replicas),
    so training on N replicas equals training on one device with the same global batches.

    Shapes: ``event_ndims = 1``; inputs ``[..., D]``.
    """

    #: Training mode all-reduces over replicas (read by ``training.distributed``).
    all_reduces_in_training = True

    def __init__(self, event_size: int, momentum: float = 0.99, epsilon: float = 1e-3,
                 training: bool | None = None, dtype: tf.DType = tf.float32,
                 validate_args: bool = False, name: str = "batch_norm"):
        parameters = dict(locals())
        d = self._event_size = _checks.positive_int(event_size, "event_size")
        self._momentum = _checks.in_open_interval(momentum, 0.0, 1.0, "momentum")
        self._epsilon = _checks.positive_float(epsilon, "epsilon")
        if training not in (None, True, False):
            raise ValueError(f"`training` must be None, True or False, got {training!r}.")
        self._training = training
        dtype = _checks.float_dtype(dtype)
        with tf.name_scope(name) as scope:
            self.log_gamma = make_variable(np.zeros(d), "log_gamma", dtype)
            self.beta = make_variable(np.zeros(d), "beta", dtype)
            self.moving_mean = make_variable(np.zeros(d), "moving_mean", dtype, trainable=False,
                                             aggregation="mean")
            self.moving_variance = make_variable(np.ones(d), "moving_variance", dtype,
                                                 trainable=False, aggregation="mean")
            super().__init__(forward_min_event_ndims=1, dtype=dtype, validate_args=validate_args,
                             parameters=parameters, name=scope)

    @property
    def training(self):
        """Whether batch statistics are used now (the constructor's flag, else the context)."""
        return is_training() if self._training is None else self._training

    def _batch_moments(self, y):
        """Mean and variance over the batch axes; under ``tf.distribute``, over the global batch.

        Each replica all-reduces sums (two passes, like ``tf.nn.moments``), so N replicas with
        B/N points each get the statistics of the B points (the all-reduce is differentiable).
        """
        axes = list(range(y.shape.rank - 1))
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return tf.nn.moments(y, axes=axes)
        count = ctx.all_reduce("sum", tf.cast(tf.reduce_prod(tf.shape(y)[:-1]), y.dtype))
        mean = ctx.all_reduce("sum", tf.reduce_sum(y, axes)) / count
        variance = ctx.all_reduce("sum", tf.reduce_sum(tf.square(y - mean), axes)) / count
        return mean, variance

    def _stats(self, y=None):
        if y is not None and self.training:
            return self._batch_moments(y)
        return tf.convert_to_tensor(self.moving_mean), tf.convert_to_tensor(self.moving_variance)

    _cache = _compat.greedy_attrs_cache()

    def _augmented_forward(self, x):
        return self._forward(x), None

    def _augmented_inverse(self, y):
        x, variance = self._normalize(y)
        return x, ({"ildj": -self._log_det(variance)} if self.training else None)

    def _forward(self, x):
        _checks.event_shape(x, self._event_size, self.name)
        mean, variance = self._stats()
        return (x - self.beta) * tf.exp(-self.log_gamma) * tf.sqrt(variance + self._epsilon) + mean

    def _normalize(self, y):
        """Returns ``(x, variance)``: the inverse and the variance it used."""
        _checks.event_shape(y, self._event_size, self.name)
        mean, variance = self._stats(y)
        updates = []
        if self.training:
            m = self._momentum
            batch_mean, batch_variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
            updates = [
                self.moving_mean.assign(m * self.moving_mean + (1 - m) * batch_mean),
                self.moving_variance.assign(m * self.moving_variance + (1 - m) * batch_variance)]
        with tf.control_dependencies(updates):
            scale = tf.math.rsqrt(variance + self._epsilon) * tf.exp(self.log_gamma)
            return (y - mean) * scale + self.beta, variance

    def _inverse(self, y):
        return self._normalize(y)[0]

    def _log_det(self, variance):
        return tf.reduce_sum(0.5 * tf.math.log(variance + self._epsilon) - self.log_gamma)

    def _forward_log_det_jacobian(self, x):
        return self._log_det(self._stats()[1])

    def _inverse_log_det_jacobian(self, y):
        return -self._log_det(self._stats(y)[1])
