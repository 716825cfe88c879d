"""Planar flow (Rezende & Mohamed, 2015) with a computed inverse."""

import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows._variables import make_variable
from tfp_flows.bijectors._base import FlowBijector


class Planar(FlowBijector):
    """``y = f(z) = z + û · tanh(wᵀz + b)``, invertible by construction.

    Parameters ``w, u ∈ R^D`` and a scalar ``b``. To keep ``f`` invertible ``u`` is
    replaced by ``û = u + (m(wᵀu) − wᵀu) · w / ‖w‖²`` with ``m(a) = −1 + softplus(a)``,
    so that ``wᵀû = m(wᵀu) > −1``.

    Log-det (O(D)): ``log|det ∂f/∂z| = log|1 + (1 − tanh²(wᵀz + b)) · wᵀû|``.

    Inverse: with ``α = wᵀz`` and ``c = wᵀû``, ``α`` solves the monotone scalar equation
    ``g(α) = α + c · tanh(α + b) − wᵀy = 0``, whose root lies in
    ``[wᵀy − |c|, wᵀy + |c|]``. It is found by Newton steps safeguarded by bisection
    (vectorised, a ``tf.while_loop`` that stops when every point has converged; bisection
    whenever a Newton step would leave the bracket or shrink it slower than halving), then
    ``z = y − û · tanh(α + b)``. Gradients of the inverse come from one extra Newton step
    on the converged root (the implicit-function theorem), not from the loop.

    Shapes: ``event_ndims = 1``; inputs ``[..., D]``.
    """

    def __init__(self, event_size: int, seed: int | None = None, dtype: tf.DType = tf.float32,
                 max_iterations: int = 100, validate_args: bool = False, name: str = "planar"):
        parameters = dict(locals())
        self._event_size = _checks.positive_int(event_size, "event_size")
        self._max_iterations = _checks.positive_int(max_iterations, "max_iterations")
        dtype = _checks.float_dtype(dtype)
        with tf.name_scope(name) as scope:
            rng = np.random.default_rng(seed)
            scale = 1.0 / np.sqrt(self._event_size)
            self.w = make_variable(rng.normal(0.0, scale, self._event_size), "w", dtype)
            self.u = make_variable(rng.normal(0.0, scale, self._event_size), "u", dtype)
            self.b = make_variable(0.0, "b", dtype)
            super().__init__(forward_min_event_ndims=1, dtype=dtype, validate_args=validate_args,
                             parameters=parameters, name=scope)

    @property
    def event_size(self):
        return self._event_size

    def u_hat(self):
        """Returns ``û`` (shape ``[D]``), the constrained ``u`` with ``wᵀû > −1``."""
        wtu = tf.reduce_sum(self.w * self.u)
        m = -1.0 + tf.nn.softplus(wtu)
        return self.u + (m - wtu) * self.w / tf.reduce_sum(tf.square(self.w))

    def _project(self, x):
        """``[..., D] -> [...]``: ``wᵀx`` as one 2-D matmul."""
        flat = tf.reshape(x, [-1, self._event_size])
        out = tf.matmul(flat, self.w[:, tf.newaxis])
        return tf.reshape(out, tf.shape(x)[:-1])

    def _forward(self, x):
        _checks.event_shape(x, self._event_size, self.name)
        act = tf.tanh(self._project(x) + self.b)
        return x + act[..., tf.newaxis] * self.u_hat()

    def _forward_log_det_jacobian(self, x):
        _checks.event_shape(x, self._event_size, self.name)
        u_hat = self.u_hat()
        c = tf.reduce_sum(self.w * u_hat)
        act = tf.tanh(self._project(x) + self.b)
        return tf.math.log(tf.abs(1.0 + (1.0 - tf.square(act)) * c))

    def _solve_alpha(self, wty, c):
        """Root of ``α + c·tanh(α + b) = wᵀy`` for every entry of ``wty``."""
        b = self.b
        tol = tf.constant(np.finfo(wty.dtype.as_numpy_dtype).eps * 4, wty.dtype)

        def g_and_dg(a):
            t = tf.tanh(a + b)
            return a + c * t - wty, 1.0 + c * (1.0 - tf.square(t))

        def body(i, a, lo, hi, dx_old, done):
            g, dg = g_and_dg(a)
            lo = tf.where(g < 0, a, lo)
            hi = tf.where(g > 0, a, hi)
            newton_step = g / tf.maximum(dg, tf.constant(1e-30, wty.dtype))
            newton = a - newton_step
            # Newton only while it stays in the bracket and converges at least as fast as
            # bisection would (|step| < |previous step| / 2); else bisect. Plain Newton can
            # cycle on this equation when |c| is large.
            use_newton = (newton > lo) & (newton < hi) & (
                2.0 * tf.abs(newton_step) < tf.abs(dx_old))
            candidate = tf.where(use_newton, newton, 0.5 * (lo + hi))
            scale = tol * (1.0 + tf.abs(a))
            at_root = (tf.abs(newton_step) <= scale) | tf.equal(g, 0)
            candidate = tf.where(at_root, newton, candidate)
            # Converged points stay put: at rounding-level residuals the step test would
            # otherwise send them back to bisection on a still-wide bracket.
            a_new = tf.where(done, a, candidate)
            dx_old = tf.where(done, dx_old, tf.abs(a_new - a))
            return i + 1, a_new, lo, hi, dx_old, done | at_root | (hi - lo <= scale)

        def cond(i, a, lo, hi, dx_old, done):
            return (i < self._max_iterations) & tf.logical_not(tf.reduce_all(done))

        radius = tf.abs(c)
        lo, hi = wty - radius, wty + radius
        _, alpha, _, _, _, _ = tf.while_loop(
            cond, body, (tf.constant(0), wty, lo, hi, tf.ones_like(wty) * (4.0 * radius + 1.0),
                         tf.zeros_like(wty, dtype=tf.bool)))
        return alpha

    def _inverse(self, y):
        _checks.event_shape(y, self._event_size, self.name)
        u_hat = self.u_hat()
        c = tf.reduce_sum(self.w * u_hat)
        wty = self._project(y)
        alpha = tf.stop_gradient(self._solve_alpha(tf.stop_gradient(wty), tf.stop_gradient(c)))
        # One Newton step on the converged root: same value, implicit-function-theorem gradients.
        t = tf.tanh(alpha + self.b)
        alpha = alpha - (alpha + c * t - wty) / (1.0 + c * (1.0 - tf.square(t)))
        return y - tf.tanh(alpha + self.b)[..., tf.newaxis] * u_hat
