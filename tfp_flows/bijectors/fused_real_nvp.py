"""``tfb.RealNVP`` that evaluates its network once per direction (output and log-det together)."""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _compat

tfb = tfp.bijectors


class FusedRealNVP(tfb.RealNVP):
    """Drop-in ``tfb.RealNVP`` (same constructor, same maps) with a fused log-det.

    With ``(shift, log_scale) = f(x0)`` on the masked half ``x0``:
    forward ``y1 = x1 · exp(log_scale) + shift``, inverse ``x1 = (y1 − shift) · exp(−log_scale)``,
    ``log|det ∂y/∂x| = Σ log_scale`` (0 when ``log_scale`` is None: NICE's additive coupling).

    ``tfb.RealNVP`` calls ``f`` separately in ``inverse`` and in ``inverse_log_det_jacobian``,
    and neither Grappler nor XLA merges the two network evaluations: ``log_prob`` and its
    gradient pay for every coupling network twice. Here ``forward``/``inverse`` also return
    the log-det, which TFP's bijector cache stores as the input's attributes (the mechanism
    ``tfb.FFJORD`` uses), so the log-det methods read it back instead of re-running ``f``.

    With ``bijector_fn`` instead of ``shift_and_log_scale_fn`` it behaves exactly like
    ``tfb.RealNVP``. Shapes: ``event_ndims = 1``; inputs ``[..., D]``.
    """

    _cache = _compat.greedy_attrs_cache()

    def _halves(self, v):
        k = _compat.real_nvp_masked_size(self, v)
        a, b = v[..., :k], v[..., k:]
        return (b, a) if _compat.real_nvp_reverse_mask(self) else (a, b)

    def _join(self, kept, moved):
        parts = [moved, kept] if _compat.real_nvp_reverse_mask(self) else [kept, moved]
        return tf.concat(parts, axis=-1)

    def _shift_and_log_scale(self, v0, moved, **condition_kwargs):
        shift, log_scale = _compat.real_nvp_shift_and_log_scale_fn(self)(
            v0, _compat.real_nvp_input_units(self), **condition_kwargs)
        if log_scale is None:
            log_det = tf.zeros(tf.shape(moved)[:-1], moved.dtype)
        else:
            log_det = tf.reduce_sum(log_scale, axis=-1)
        return shift, log_scale, log_det

    def _augmented_forward(self, x, **condition_kwargs):
        if _compat.real_nvp_shift_and_log_scale_fn(self) is None:
            return super()._forward(x, **condition_kwargs), None
        x0, x1 = self._halves(x)
        shift, log_scale, fldj = self._shift_and_log_scale(x0, x1, **condition_kwargs)
        y1 = x1 if log_scale is None else x1 * tf.exp(log_scale)
        y1 = y1 if shift is None else y1 + shift
        return self._join(x0, y1), {"fldj": fldj, "ildj": -fldj}

    def _augmented_inverse(self, y, **condition_kwargs):
        if _compat.real_nvp_shift_and_log_scale_fn(self) is None:
            return super()._inverse(y, **condition_kwargs), None
        y0, y1 = self._halves(y)
        shift, log_scale, fldj = self._shift_and_log_scale(y0, y1, **condition_kwargs)
        x1 = y1 if shift is None else y1 - shift
        x1 = x1 if log_scale is None else x1 * tf.exp(-log_scale)
        return self._join(y0, x1), {"ildj": -fldj, "fldj": fldj}

    def _forward(self, x, **condition_kwargs):
        return self._augmented_forward(x, **condition_kwargs)[0]

    def _inverse(self, y, **condition_kwargs):
        return self._augmented_inverse(y, **condition_kwargs)[0]

    def _forward_log_det_jacobian(self, x, **condition_kwargs):
        if _compat.real_nvp_shift_and_log_scale_fn(self) is None:
            return super()._forward_log_det_jacobian(x, **condition_kwargs)
        attrs = _compat.forward_attributes(self, x, **condition_kwargs)
        if "fldj" not in attrs:
            attrs.update(self._augmented_forward(x, **condition_kwargs)[1])
        return attrs["fldj"]

    def _inverse_log_det_jacobian(self, y, **condition_kwargs):
        if _compat.real_nvp_shift_and_log_scale_fn(self) is None:
            return super()._inverse_log_det_jacobian(y, **condition_kwargs)
        attrs = _compat.inverse_attributes(self, y, **condition_kwargs)
        if "ildj" not in attrs:
            attrs.update(self._augmented_inverse(y, **condition_kwargs)[1])
        return attrs["ildj"]
