"""Leaky ReLU bijector with an optionally learnable negative slope."""

import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows._variables import make_variable
from tfp_flows.bijectors._base import FlowBijector


class LeakyReLU(FlowBijector):
    """``y = x`` for ``x ≥ 0``, ``y = α x`` for ``x < 0``, with ``α > 0``.

    Inverse: ``x = y`` for ``y ≥ 0``, ``x = y / α`` for ``y < 0``.
    Log-det: ``log|∂y/∂x| = log α`` where ``x < 0``, else 0 (elementwise).
    With ``trainable=True`` the slope is ``α = exp(log_alpha)`` with a learnable
    ``log_alpha``, so it stays positive.

    Shapes: elementwise, ``forward_min_event_ndims = 0``; a scalar parameter.
    """

    def __init__(self, alpha: float = 0.1, trainable: bool = False, dtype: tf.DType = tf.float32,
                 validate_args: bool = False, name: str = "leaky_relu"):
        parameters = dict(locals())
        alpha = _checks.positive_float(alpha, "alpha")
        dtype = _checks.float_dtype(dtype)
        with tf.name_scope(name) as scope:
            if trainable:
                self.log_alpha = make_variable(np.log(alpha), "log_alpha", dtype)
            else:
                self.log_alpha = tf.constant(np.log(alpha), dtype)
            super().__init__(forward_min_event_ndims=0, dtype=dtype, validate_args=validate_args,
                             parameters=parameters, name=scope)

    @property
    def alpha(self):
        return tf.exp(self.log_alpha)

    def _is_increasing(self):
        return True

    def _forward(self, x):
        return tf.where(x >= 0, x, self.alpha * x)

    def _inverse(self, y):
        return tf.where(y >= 0, y, y / self.alpha)

    def _forward_log_det_jacobian(self, x):
        return tf.where(x >= 0, tf.zeros([], x.dtype), self.log_alpha)

    def _inverse_log_det_jacobian(self, y):
        return tf.where(y >= 0, tf.zeros([], y.dtype), -self.log_alpha)
