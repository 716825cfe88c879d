"""The base class of tfp_flows' bijectors: TFP's ``Bijector`` plus a strict dtype check;
``LogDetWithMap``: a mixin whose log-det is computed with the map and read back from TFP's
cache."""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _compat


class FlowBijector(tfp.bijectors.Bijector):
    """``tfb.Bijector`` whose public methods refuse inputs of another dtype.

    TFP raises ``ValueError`` for a tensor of the wrong dtype but silently casts a NumPy
    array (an integer image becomes float32 without a word). Here both raise ``TypeError``
    naming the received and the expected dtype. Python scalars and lists still convert.
    Parameters are held as variables owned by the bijector, not batch parameters, so
    ``_parameter_properties`` is empty (batch shape ``[]``).
    """

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    def _check_input_dtype(self, value, what):
        dtype = getattr(value, "dtype", None)
        if dtype is None or self.dtype is None:
            return
        dtype = tf.as_dtype(dtype)
        if dtype != self.dtype:
            raise TypeError(f"{self.name}: {what} has dtype {dtype.name}, but the bijector's "
                            f"dtype is {tf.as_dtype(self.dtype).name}; cast the input or build "
                            f"the bijector with dtype={dtype.name}.")

    def forward(self, x, name="forward", **kwargs):
        self._check_input_dtype(x, "x")
        return super().forward(x, name=name, **kwargs)

    def inverse(self, y, name="inverse", **kwargs):
        self._check_input_dtype(y, "y")
        return super().inverse(y, name=name, **kwargs)

    def forward_log_det_jacobian(self, x, event_ndims=None, name="forward_log_det_jacobian",
                                 **kwargs):
        self._check_input_dtype(x, "x")
        return super().forward_log_det_jacobian(x, event_ndims=event_ndims, name=name, **kwargs)

    def inverse_log_det_jacobian(self, y, event_ndims=None, name="inverse_log_det_jacobian",
                                 **kwargs):
        self._check_input_dtype(y, "y")
        return super().inverse_log_det_jacobian(y, event_ndims=event_ndims, name=name, **kwargs)


class LogDetWithMap:
    """Mixin for a bijector that computes each direction's log-det with its map, in one pass:
    ``_augmented_forward(x, **kw) -> (y, {"ildj": log|det ∂x/∂y|})`` and
    ``_augmented_inverse(y, **kw) -> (x, {"ildj": ...})``.

    Its ``_cache`` (TFP's greedy-attrs cache) stores the ``ildj`` with the map's output, and
    TFP's public log-det methods read it from there (they look up ``ildj`` before calling
    ``_forward_log_det_jacobian`` / ``_inverse_log_det_jacobian``): ``log_prob`` = ``inverse`` +
    ``inverse_log_det_jacobian`` of the same tensor runs the map (and its network) once. The
    private log-det methods below run the map only for a tensor the map has not seen.

    List it before the ``tfb.Bijector`` base: ``class C(LogDetWithMap, FlowBijector)``, or over a
    TFP bijector whose methods it replaces: ``class C(LogDetWithMap, tfb.SomeBijector)``.
    """

    _cache = _compat.greedy_attrs_cache()

    def _forward(self, x, **kwargs):
        return self._augmented_forward(x, **kwargs)[0]

    def _inverse(self, y, **kwargs):
        return self._augmented_inverse(y, **kwargs)[0]

    def _forward_log_det_jacobian(self, x, **kwargs):
        return -self._augmented_forward(x, **kwargs)[1]["ildj"]

    def _inverse_log_det_jacobian(self, y, **kwargs):
        return self._augmented_inverse(y, **kwargs)[1]["ildj"]


def nested_bijectors(bijector):
    """``bijector`` and every bijector inside it (``tfb.Chain``'s ``bijectors``, ``tfb.Invert``'s
    ``bijector``, multi-scale flows), depth first."""
    yield bijector
    for child in getattr(bijector, "bijectors", None) or [getattr(bijector, "bijector", None)]:
        if isinstance(child, tfp.bijectors.Bijector):
            yield from nested_bijectors(child)
