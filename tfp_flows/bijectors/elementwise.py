"""An elementwise transformer with learned constant parameters: ``y_i = τ(x_i; θ_i)``.

For an event ``x [..., D]``, the entries ``S`` (``indices``; all ``D`` by default) and a
transformer ``τ`` from ``tfp_flows.bijectors.transformers`` with ``P`` parameters per element:

    y_i = τ(x_i; θ_i)   for i ∈ S,      y_i = x_i otherwise,
    log|det ∂y/∂x| = Σ_{i ∈ S} log|∂τ/∂x_i (x_i; θ_i)|,

``θ [|S|, P]`` one trainable variable, zero at initialisation (the identity for every
transformer). This is a coupling with nothing to condition on: one unconditional spline per
entry (the first coordinate of an autoregressive flow, Durkan et al. 2019), or with
``transformers.Affine`` a learned per-entry scale and shift ``y = x · exp(s) + t`` (the
"actnorm" of Kingma & Dhariwal 2018 without its data-dependent initialisation).
"""

import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows._variables import make_variable
from tfp_flows.bijectors import transformers as transformers_lib
from tfp_flows.bijectors._base import FlowBijector, LogDetWithMap


class Elementwise(LogDetWithMap, FlowBijector):
    """``y_S = τ(x_S; θ)``, ``θ [|S|, P]`` learned, identity at initialisation.

    Args:
      event_size: ``D``; inputs are ``[..., D]``.
      transformer: ``"spline"``, ``"affine"``, ``"piecewise_linear"`` or a transformer object.
      indices: None (every entry) or distinct indices in ``[0, D)`` of the entries to map; the
        others pass through.

    Raises ``ValueError`` for an input whose last axis is not ``D``. As ``Coupling``, each
    direction computes its log-det with the map and hands it to TFP's bijector cache.
    """

    def __init__(self, event_size: int, transformer="spline", indices=None,
                 dtype: tf.DType = tf.float32, validate_args: bool = False,
                 name: str = "elementwise"):
        parameters = dict(locals())
        d = self._event_size = _checks.positive_int(event_size, "event_size")
        self._transformer = transformers_lib.get(transformer)
        if indices is None:
            idx = np.arange(d)
        else:
            idx = np.sort(np.asarray(indices, np.int64).ravel())
            if idx.size == 0 or idx.min() < 0 or idx.max() >= d or np.unique(idx).size != idx.size:
                raise ValueError(f"Elementwise: `indices` must be distinct indices in [0, {d}) "
                                 f"(at least one), got {indices!r}.")
        self._indices = idx
        self._all = idx.size == d
        keep = np.setdiff1d(np.arange(d), idx)
        self._keep = keep
        self._position = np.argsort(np.concatenate([keep, idx])).astype(np.int32)
        dtype = _checks.float_dtype(dtype)
        with tf.name_scope(name) as scope:
            self.params = make_variable(np.zeros([idx.size, self._transformer.num_params]),
                                        "params", dtype)
            super().__init__(forward_min_event_ndims=1, is_constant_jacobian=False, dtype=dtype,
                             validate_args=validate_args, parameters=parameters, name=scope)

    @property
    def event_size(self):
        return self._event_size

    @property
    def transformer(self):
        return self._transformer

    @property
    def indices(self):
        """Indices ``S`` of the entries the transformer maps."""
        return self._indices.copy()

    def _apply(self, v, method):
        _checks.event_shape(v, self._event_size, self.name)
        if self._all:
            out, log_det = getattr(self._transformer, method)(v, self.params)
            return out, tf.reduce_sum(log_det, axis=-1)
        mapped, log_det = getattr(self._transformer, method)(
            tf.gather(v, self._indices, axis=-1), self.params)
        kept = tf.gather(v, self._keep, axis=-1)
        out = tf.gather(tf.concat([kept, mapped], axis=-1), self._position, axis=-1)
        return out, tf.reduce_sum(log_det, axis=-1)

    def _augmented_forward(self, x):
        y, fldj = self._apply(x, "forward_and_log_det")
        return y, {"ildj": -fldj}

    def _augmented_inverse(self, y):
        x, ildj = self._apply(y, "inverse_and_log_det")
        return x, {"ildj": ildj}


__all__ = ["Elementwise"]
