"""Linear flow with an LU-parametrised weight matrix (Glow's invertible 1x1 conv)."""

import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows._variables import make_variable
from tfp_flows.bijectors._base import FlowBijector


class LULinear(FlowBijector):
    """``y = W x + bias`` with ``W = P · L · (U + diag(s))``.

    ``P`` is a fixed permutation, ``L`` unit lower triangular, ``U`` strictly upper
    triangular and ``s = sign · exp(log_abs_s)`` (a fixed sign and a learnable
    log-magnitude, so no diagonal entry can reach zero).

    ``log|det W| = Σ_i log|s_i|`` in O(D). The inverse is two triangular solves,
    ``x = (U + diag(s))⁻¹ L⁻¹ Pᵀ (y − bias)``; no matrix is ever inverted.
    ``init="rotation"`` starts from the LU factors of a random rotation (QR of a
    Gaussian matrix); ``init="identity"`` starts from ``W = I``, or, with ``permutation``
    ``[D]``, from ``W = P`` for that fixed ``P`` (``y[..., i] = x[..., permutation[i]]`` at
    initialisation, as ``tfb.Permute(permutation)``).

    Shapes: ``event_ndims = 1``; inputs ``[..., D]``; the batch axes are flattened
    so each product is one 2-D ``tf.matmul``.
    """

    def __init__(self, event_size: int, init: str = "rotation", bias: bool = True,
                 seed: int | None = None, permutation=None, dtype: tf.DType = tf.float32,
                 validate_args: bool = False, name: str = "lu_linear"):
        parameters = dict(locals())
        d = self._event_size = _checks.positive_int(event_size, "event_size")
        dtype = _checks.float_dtype(dtype)
        _checks.one_of(init, ("rotation", "identity"), "init")
        if init == "rotation":
            if permutation is not None:
                raise ValueError("`permutation` sets the start of init='identity'; "
                                 "init='rotation' takes its P from the rotation.")
            q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=[d, d]))
            lu, perm = tf.linalg.lu(tf.constant(q, tf.float64))
            # tf.linalg.lu: L·U = q[perm], so q = (L·U)[argsort(perm)]: W = P·L·V starts at q.
            lu, permutation = lu.numpy(), np.argsort(perm.numpy())
        else:
            lu = np.eye(d)
            permutation = np.arange(d) if permutation is None else np.asarray(permutation)
            if permutation.shape != (d,) or not np.array_equal(np.sort(permutation),
                                                              np.arange(d)):
                raise ValueError(f"`permutation` must be a permutation of range({d}), got "
                                 f"{permutation!r}.")
        perm = np.argsort(permutation)
        diag = np.diag(lu)
        with tf.name_scope(name) as scope:
            self._permutation = tf.constant(permutation, tf.int32)
            self._inverse_permutation = tf.constant(perm, tf.int32)
            self.lower = make_variable(np.tril(lu, -1), "lower", dtype)
            self.upper = make_variable(np.triu(lu, 1), "upper", dtype)
            self.log_abs_s = make_variable(np.log(np.abs(diag)), "log_abs_s", dtype)
            self._sign_s = tf.constant(np.sign(diag), dtype)
            self.bias = make_variable(np.zeros(d), "bias", dtype) if bias else None
            super().__init__(forward_min_event_ndims=1, dtype=dtype, is_constant_jacobian=True,
                             validate_args=validate_args, parameters=parameters, name=scope)

    @property
    def event_size(self):
        return self._event_size

    def _factors(self):
        """Returns ``(L, V)``: unit lower ``L`` and upper ``V = U + diag(s)``."""
        d = self._event_size
        lower = tf.linalg.band_part(self.lower, -1, 0) - tf.linalg.band_part(self.lower, 0, 0)
        lower += tf.eye(d, dtype=self.dtype)
        upper = tf.linalg.band_part(self.upper, 0, -1) - tf.linalg.band_part(self.upper, 0, 0)
        upper += tf.linalg.diag(self._sign_s * tf.exp(self.log_abs_s))
        return lower, upper

    def weight(self):
        """Returns the ``[D, D]`` matrix ``W = P L V``."""
        lower, upper = self._factors()
        return tf.gather(tf.matmul(lower, upper), self._permutation)

    def _flat(self, x):
        _checks.event_shape(x, self._event_size, self.name)
        return tf.reshape(x, [-1, self._event_size])

    def _forward(self, x):
        lower, upper = self._factors()
        # Row vectors: (P L V x)ᵀ = xᵀ Vᵀ Lᵀ Pᵀ; two D×D products, no D³ term.
        h = tf.matmul(tf.matmul(self._flat(x), upper, transpose_b=True), lower, transpose_b=True)
        y = tf.gather(h, self._permutation, axis=-1)
        if self.bias is not None:
            y += self.bias
        return tf.reshape(y, tf.shape(x))

    def _inverse(self, y):
        lower, upper = self._factors()
        flat = self._flat(y)
        if self.bias is not None:
            flat -= self.bias
        rhs = tf.transpose(tf.gather(flat, self._inverse_permutation, axis=-1))
        z = tf.linalg.triangular_solve(lower, rhs, lower=True)
        x = tf.linalg.triangular_solve(upper, z, lower=False)
        return tf.reshape(tf.transpose(x), tf.shape(y))

    def _forward_log_det_jacobian(self, x):
        return tf.reduce_sum(self.log_abs_s)
