"""One coupling bijector: a split, a conditioner network and an elementwise transformer.

For an event ``x [..., D]`` split into conditioning entries ``K`` and transformed entries ``T``
(the rest pass through unchanged) and an optional context ``c [..., C]``:

    θ = NN(concat(x_K, c))  reshaped to [..., |T|, P],
    forward:  y_T = τ(x_T; θ),      y_{¬T} = x_{¬T},
    inverse:  x_T = τ⁻¹(y_T; θ)     (θ from y_K = x_K: the conditioning entries are unchanged),
    log|det ∂y/∂x| = Σ_{i ∈ T} log|∂τ/∂x_i|.

``τ`` is a transformer from ``tfp_flows.bijectors.transformers`` (affine with a bounded
log-scale: RealNVP, Dinh et al. 2017; rational-quadratic spline: Durkan et al. 2019;
piecewise-linear: Müller et al. 2019). The network runs once per direction: ``forward`` and
``inverse`` also compute the log-det and hand it to TFP's bijector cache, so the log-det methods
on the same tensor read it back.
"""

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows.bijectors import transformers as transformers_lib
from tfp_flows.bijectors._base import FlowBijector, LogDetWithMap
from tfp_flows.bijectors.masks import channel_mask, checkerboard_mask
from tfp_flows.nn import MLP, network_init_kwargs


def half_split(event_size: int, reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(conditioning, transformed)``: the first ``D // 2`` entries condition the rest
    (``reverse=True``: the last ``D // 2`` condition the first ``D − D // 2``)."""
    d = _checks.positive_int(event_size, "event_size")
    if d < 2:
        raise ValueError(f"A coupling needs `event_size` >= 2 to split the event, got {d}.")
    first, second = np.arange(d // 2), np.arange(d // 2, d)
    if reverse:
        first, second = np.arange(d - d // 2, d), np.arange(d - d // 2)
    return first, second


def checkerboard_split(image_shape: tuple[int, int, int],
                       parity: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(conditioning, transformed)`` indices into a flattened ``[H, W, C]`` image: the
    checkerboard cells of ``masks.checkerboard_mask(image_shape, parity)`` condition."""
    mask = checkerboard_mask(image_shape, parity).ravel()
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def channel_split(image_shape: tuple[int, int, int],
                  parity: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(conditioning, transformed)`` indices into a flattened ``[H, W, C]`` image: the
    channels of ``masks.channel_mask(image_shape, parity)`` condition."""
    mask = channel_mask(image_shape, parity).ravel()
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def _resolve_split(split, d, conditional):
    """``split`` -> sorted, validated ``(conditioning, transformed)`` index arrays."""
    if split is None:
        return half_split(d)
    if isinstance(split, (int, np.integer)) and not isinstance(split, bool):
        if not 0 < split < d:
            raise ValueError(f"Coupling: an int `split` is the number of conditioning entries "
                             f"and must lie in [1, {d - 1}], got {split}.")
        return np.arange(split), np.arange(split, d)
    arr = np.asarray(split) if not isinstance(split, tuple) else None
    if arr is not None and arr.dtype == bool:
        if arr.shape != (d,):
            raise ValueError(f"Coupling: a boolean `split` mask must have shape [{d}], got "
                             f"{arr.shape}.")
        return np.flatnonzero(arr), np.flatnonzero(~arr)
    try:
        cond, trans = (np.asarray(s, np.int64).ravel() for s in split)
    except (TypeError, ValueError) as e:
        raise ValueError("Coupling: `split` must be None, an int, a boolean mask [D] or a pair "
                         f"(conditioning, transformed) of index arrays, got {split!r}.") from e
    for label, idx in (("conditioning", cond), ("transformed", trans)):
        if idx.size == 0 and (label == "transformed" or not conditional):
            raise ValueError(f"Coupling: the `{label}` indices must be non-empty"
                             + ("." if label == "transformed" else
                                " (empty is allowed with a context: a map of x_T given c)."))
        if idx.size and (idx.min() < 0 or idx.max() >= d or np.unique(idx).size != idx.size):
            raise ValueError(f"Coupling: `{label}` must be distinct indices in [0, {d}), got "
                             f"{idx.tolist()}.")
    if np.intersect1d(cond, trans).size:
        raise ValueError("Coupling: the `conditioning` and `transformed` indices overlap.")
    return np.sort(cond), np.sort(trans)


class Coupling(LogDetWithMap, FlowBijector):
    """Coupling layer ``y_T = τ(x_T; NN(x_K, c))`` (see the module docstring).

    Args:
      event_size: ``D``; inputs are ``[..., D]``.
      transformer: ``"affine"``, ``"spline"``, ``"piecewise_linear"`` or a transformer object
        (``transformers.Affine(...)``, ``transformers.RationalQuadraticSpline(...)``, ...).
      split: None (first ``D // 2`` condition the rest), an int (that many leading entries
        condition the rest), a boolean mask ``[D]`` (True: conditioning, False: transformed)
        or a pair ``(conditioning, transformed)`` of index arrays (entries in neither pass
        through; see ``half_split``, ``checkerboard_split``, ``channel_split``). With a
        context the conditioning set may be empty: ``y = τ(x; NN(c))`` elementwise.
      conditioner: None for ``nn.MLP(hidden_layers, |T|·P)`` (initialised as
        ``network_init`` says), or a callable ``h [..., |K| + C] -> [..., |T|·P]`` where
        ``h = concat(x_K, c)``.
      hidden_layers: hidden widths of the default MLP.
      context_size: None (unconditional) or ``C``: the forward, inverse and log-det methods
        then require ``conditional_input`` ``[..., C]`` (broadcast against the batch axes).
      activation: hidden activation of the default MLP.
      seed: int seed of the default MLP's initialisation.
      bias_init: hidden biases of the default MLP, ``"zeros"`` or ``"uniform"``
        (``nn.MLP``'s ``bias_init``).
      network_init: the default MLP's other weights: ``"identity"`` (Glorot-uniform kernels,
        a zero last layer: a fresh coupling is the identity) or ``"uniform"`` (every kernel
        and the output bias from ``U(±1/√fan_in)``, PyTorch's ``nn.Linear`` default: a fresh
        coupling is near, not at, the identity).

    Raises ``ValueError`` for an input whose last axis is not ``D`` or a context whose last
    axis is not ``C``, and when the context is missing or unexpected.
    """

    def __init__(self, event_size: int, transformer="affine", split=None, conditioner=None,
                 hidden_layers: Sequence[int] = (64, 64), context_size: int | None = None,
                 activation: Callable[[tf.Tensor], tf.Tensor] = tf.nn.relu,
                 seed: int | None = None, bias_init: str = "zeros",
                 network_init: str = "identity", dtype: tf.DType = tf.float32,
                 validate_args: bool = False, name: str = "coupling"):
        parameters = dict(locals())
        d = self._event_size = _checks.positive_int(event_size, "event_size")
        self._transformer = transformers_lib.get(transformer)
        cond, trans = _resolve_split(split, d, context_size is not None)
        self._context_size = (None if context_size is None
                              else _checks.positive_int(context_size, "context_size"))
        dtype = _checks.float_dtype(dtype)
        keep = np.setdiff1d(np.arange(d), trans)
        self._num_trans = int(trans.size)
        self._output_units = self._num_trans * self._transformer.num_params
        # A leading block conditioning a trailing block (or the reverse) is two slices;
        # any other split gathers and scatters by index.
        if np.array_equal(keep, np.arange(keep.size)) and np.array_equal(cond, keep):
            self._slices = ("first", keep.size)
        elif np.array_equal(trans, np.arange(trans.size)) and np.array_equal(cond, keep):
            self._slices = ("last", trans.size)
        else:
            self._slices = None
        self._cond, self._trans, self._keep = cond, trans, keep
        # y = concat([x_keep, y_T])[..., position] puts every entry back at its index.
        self._position = np.argsort(np.concatenate([keep, trans])).astype(np.int32)
        network_kwargs = network_init_kwargs(network_init)
        with tf.name_scope(name) as scope:
            if conditioner is None:
                conditioner = MLP(hidden_layers, self._output_units, activation=activation,
                                  seed=seed, bias_init=bias_init, **network_kwargs,
                                  name="conditioner")
                width = cond.size + (self._context_size or 0)
                with tf.init_scope():  # build now: the variables exist before the first call
                    conditioner(tf.zeros([1, width], dtype))
            self.conditioner = conditioner
            super().__init__(forward_min_event_ndims=1, is_constant_jacobian=False, dtype=dtype,
                             validate_args=validate_args, parameters=parameters, name=scope)

    @property
    def event_size(self):
        return self._event_size

    @property
    def context_size(self):
        """``C``, or None for an unconditional coupling (``flows.context_kwargs`` uses it)."""
        return self._context_size

    @property
    def transformer(self):
        return self._transformer

    @property
    def conditioning(self):
        """Indices ``K`` of the entries fed to the conditioner."""
        return self._cond.copy()

    @property
    def transformed(self):
        """Indices ``T`` of the entries the transformer maps."""
        return self._trans.copy()

    def _context(self, x, conditional_input):
        if self._context_size is None:
            if conditional_input is not None:
                raise ValueError(f"{self.name}: got `conditional_input`, but the coupling is "
                                 "unconditional (build it with `context_size=C`).")
            return x, None
        if conditional_input is None:
            raise ValueError(f"{self.name}: this coupling is conditional (context_size="
                             f"{self._context_size}); pass `conditional_input` [..., "
                             f"{self._context_size}] (flows.context_kwargs builds it for a flow).")
        c = tf.convert_to_tensor(conditional_input, dtype=x.dtype)
        if c.shape.rank == 0 or (c.shape.rank is not None and c.shape[-1] is not None
                                 and c.shape[-1] != self._context_size):
            raise ValueError(f"{self.name}: expected a context [..., {self._context_size}], got "
                             f"shape {c.shape}.")
        batch = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], tf.shape(c)[:-1])
        x = tf.broadcast_to(x, tf.concat([batch, [self._event_size]], axis=0))
        c = tf.broadcast_to(c, tf.concat([batch, [self._context_size]], axis=0))
        return x, c

    def _split(self, v):
        """``(v_K, v_T, v_keep)``."""
        if self._slices is not None:
            side, k = self._slices
            a, b = (v[..., :k], v[..., k:]) if side == "first" else (v[..., k:], v[..., :k])
            return a, b, a
        cond = tf.gather(v, self._cond, axis=-1)
        keep = cond if np.array_equal(self._cond, self._keep) else tf.gather(v, self._keep, axis=-1)
        return cond, tf.gather(v, self._trans, axis=-1), keep

    def _join(self, keep, new_trans):
        if self._slices is not None:
            parts = [keep, new_trans] if self._slices[0] == "first" else [new_trans, keep]
            return tf.concat(parts, axis=-1)
        return tf.gather(tf.concat([keep, new_trans], axis=-1), self._position, axis=-1)

    def _params(self, v_cond, context):
        h = v_cond if context is None else tf.concat([v_cond, context], axis=-1)
        out = self.conditioner(h)
        if out.shape[-1] is not None and out.shape[-1] != self._output_units:
            raise ValueError(f"{self.name}: the conditioner returned {out.shape[-1]} numbers "
                             f"per event, expected |T|·P = {self._num_trans}·"
                             f"{self._transformer.num_params} = {self._output_units}.")
        shape = tf.concat([tf.shape(out)[:-1], [self._num_trans, self._transformer.num_params]],
                          axis=0)
        return tf.reshape(out, shape)

    def _apply(self, v, conditional_input, method):
        _checks.event_shape(v, self._event_size, self.name)
        v, context = self._context(v, conditional_input)
        v_cond, v_trans, v_keep = self._split(v)
        params = self._params(v_cond, context)
        new_trans, log_det = getattr(self._transformer, method)(v_trans, params)
        return self._join(v_keep, new_trans), tf.reduce_sum(log_det, axis=-1)

    def _augmented_forward(self, x, conditional_input=None):
        y, fldj = self._apply(x, conditional_input, "forward_and_log_det")
        return y, {"ildj": -fldj}

    def _augmented_inverse(self, y, conditional_input=None):
        x, ildj = self._apply(y, conditional_input, "inverse_and_log_det")
        return x, {"ildj": ildj}


__all__ = ["Coupling", "channel_split", "checkerboard_split", "half_split"]
