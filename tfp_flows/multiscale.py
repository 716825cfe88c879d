"""Multi-scale RealNVP (Dinh et al., 2017) as one TFP bijector over flattened images.

Data -> latent (TFP's ``inverse``), for ``image_shape = (H, W, C)`` and ``S = num_scales``:

    for each scale: K checkerboard-masked couplings, squeeze (H, W, C) -> (H/2, W/2, 4C),
                    K channel-masked couplings, factor out half of the channels;
    then: ``final_couplings`` checkerboard-masked couplings on what remains.

Everything acts on the flattened event ``[..., H·W·C]`` in its original order: squeeze is a
relabelling of indices (a permutation, log-det 0), so it is applied to an index *layout*
``[h, w, c] -> position in the event`` rather than to the data, and factoring out means that
later couplings never touch those positions again. The factored-out entries are therefore
latent coordinates scored under the standard-normal base of the ``TransformedDistribution``,
exactly as in the paper. ``log_prob`` and ``sample`` are plain TFP calls.

Each coupling (``IndexCoupling``) is RealNVP's affine coupling on index sets: the entries
``T`` are transformed given the entries ``K`` (conditioning), others pass through,

    forward (latent -> data):  y_T = x_T · exp(s(x_K)) + t(x_K),   y_{¬T} = x_{¬T},
    log|det ∂y/∂x| = Σ_T s(x_K).

``s, t`` come from ``tfp_flows.bijectors.real_nvp_template`` (an MLP on the gathered
conditioning entries) or from ``ConvTemplate`` (3×3 convolutions on the masked image at the
coupling's scale); every parameter is made by ``tfp_flows.make_variable``.
"""

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks
from tfp_flows._namespace import public_dir
from tfp_flows._variables import make_variable
from tfp_flows.bijectors._base import FlowBijector
from tfp_flows.bijectors.masks import channel_mask, checkerboard_mask, squeeze
from tfp_flows.bijectors.real_nvp_template import real_nvp_template
from tfp_flows.flows import standard_normal

tfb, tfd = tfp.bijectors, tfp.distributions


class IndexCoupling(FlowBijector):
    """Affine coupling of the entries ``transformed`` given the entries ``conditioning``.

    Args:
      event_size: ``D``; inputs are ``[..., D]``.
      conditioning: int indices ``K`` fed to the network (non-empty).
      transformed: int indices ``T`` scaled and shifted (non-empty, disjoint from ``K``).
      shift_and_log_scale_fn: ``(x_K [..., |K|], |T|) -> (shift, log_scale)``, each
        ``[..., |T|]`` (``log_scale`` may be None: additive coupling).
    """

    def __init__(self, event_size: int, conditioning: Sequence[int], transformed: Sequence[int],
                 shift_and_log_scale_fn: Callable, validate_args: bool = False,
                 name: str = "index_coupling"):
        parameters = dict(locals())
        d = self._event_size = _checks.positive_int(event_size, "event_size")
        cond = np.asarray(conditioning, np.int64).ravel()
        trans = np.asarray(transformed, np.int64).ravel()
        for label, idx in (("conditioning", cond), ("transformed", trans)):
            if idx.size == 0:
                raise ValueError(f"IndexCoupling: `{label}` indices must be non-empty.")
            if idx.min() < 0 or idx.max() >= d or np.unique(idx).size != idx.size:
                raise ValueError(f"IndexCoupling: `{label}` must be distinct indices in "
                                 f"[0, {d}), got {idx.tolist()}.")
        if np.intersect1d(cond, trans).size:
            raise ValueError("IndexCoupling: `conditioning` and `transformed` overlap.")
        keep = np.setdiff1d(np.arange(d), trans)
        # out = concat([x_keep, y_T])[..., position]: puts every entry back at its index.
        position = np.argsort(np.concatenate([keep, trans]))
        self._cond = tf.constant(cond, tf.int32)
        self._trans = tf.constant(trans, tf.int32)
        self._keep = tf.constant(keep, tf.int32)
        self._position = tf.constant(position, tf.int32)
        self._num_trans = int(trans.size)
        self._fn = shift_and_log_scale_fn
        with tf.name_scope(name) as scope:
            super().__init__(forward_min_event_ndims=1, is_constant_jacobian=False,
                             validate_args=validate_args, parameters=parameters, name=scope)

    @property
    def shift_and_log_scale_fn(self):
        return self._fn

    def _params(self, x):
        _checks.event_shape(x, self._event_size, self.name)
        return self._fn(tf.gather(x, self._cond, axis=-1), self._num_trans)

    def _assemble(self, x, new_trans):
        both = tf.concat([tf.gather(x, self._keep, axis=-1), new_trans], axis=-1)
        return tf.gather(both, self._position, axis=-1)

    def _forward(self, x):
        shift, log_scale = self._params(x)
        y_t = tf.gather(x, self._trans, axis=-1)
        if log_scale is not None:
            y_t = y_t * tf.exp(log_scale)
        return self._assemble(x, y_t + shift)

    def _inverse(self, y):
        shift, log_scale = self._params(y)
        x_t = tf.gather(y, self._trans, axis=-1) - shift
        if log_scale is not None:
            x_t = x_t * tf.exp(-log_scale)
        return self._assemble(y, x_t)

    def _forward_log_det_jacobian(self, x):
        _, log_scale = self._params(x)
        if log_scale is None:
            return tf.zeros(tf.shape(x)[:-1], x.dtype)
        return tf.reduce_sum(log_scale, axis=-1)

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(y)  # the conditioning entries are unchanged


class ConvTemplate(tf.Module):
    """A small conv net ``(x_K, |T|) -> (shift, log_scale)`` for one ``IndexCoupling``.

    The conditioning entries are scattered back into the coupling's image ``[h, w, c]``
    (zeros elsewhere) and the binary mask is appended as ``c`` extra channels, as in
    Dinh et al. (2017); ``num_layers`` 3×3 ``SAME`` convolutions with ReLU and ``filters``
    channels, then a zero-initialised 3×3 convolution to ``2c`` channels (shift, raw
    log-scale), read off at the transformed cells. The log-scale is bounded as in
    ``RealNVPTemplate``: ``log_scale = b · tanh(raw / b)``, ``b = softplus(ρ)`` per unit.

    Args:
      layout: int array ``[h, w, c]``, the event position of each cell.
      conditioning, transformed: the coupling's sorted event index arrays.
    """

    def __init__(self, layout: np.ndarray, conditioning: Sequence[int], transformed: Sequence[int],
                 filters: int = 32, num_layers: int = 2, log_scale_bound: float = 2.0,
                 seed: int | None = None, name: str = "conv_template"):
        super().__init__(name=name)
        layout = np.asarray(layout)
        self._shape = tuple(layout.shape)
        flat = layout.ravel()
        cond_pos = {int(e): k for k, e in enumerate(np.asarray(conditioning))}
        # Cell -> position in x_K, or len(x_K) (a zero appended at the end).
        self._gather = tf.constant([cond_pos.get(int(e), len(cond_pos)) for e in flat], tf.int32)
        self._mask = np.isin(flat, conditioning).reshape(self._shape).astype(np.float32)
        cell_of = {int(e): k for k, e in enumerate(flat)}
        self._read = tf.constant([cell_of[int(e)] for e in np.asarray(transformed)], tf.int32)
        self._filters = _checks.positive_int(filters, "filters")
        self._num_layers = _checks.positive_int(num_layers, "num_layers")
        self._bound0 = _checks.positive_float(log_scale_bound, "log_scale_bound")
        self._seed = seed
        self.kernels, self.biases, self.log_scale_bound_param = [], [], None

    def _build(self, num_trans, dtype):
        rng = np.random.default_rng(self._seed)
        c = self._shape[-1]
        widths = [2 * c] + [self._filters] * self._num_layers + [2 * c]
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            if i == len(widths) - 2:
                kernel = np.zeros([3, 3, cin, cout])
            else:
                limit = np.sqrt(6.0 / (9 * (cin + cout)))
                kernel = rng.uniform(-limit, limit, size=[3, 3, cin, cout])
            self.kernels.append(make_variable(kernel, f"kernel_{i}", dtype))
            self.biases.append(make_variable(np.zeros([cout]), f"bias_{i}", dtype))
        rho = np.log(np.expm1(self._bound0))
        self.log_scale_bound_param = make_variable(np.full([num_trans], rho), "log_scale_bound",
                                                   dtype)

    def __call__(self, x_cond, output_units):
        x_cond = tf.convert_to_tensor(x_cond)
        if not self.kernels:
            self._build(int(output_units), x_cond.dtype)
        if int(output_units) != int(self._read.shape[0]):
            raise ValueError(f"{self.name}: made for {int(self._read.shape[0])} transformed "
                             f"entries, got output_units={output_units}.")
        batch = tf.shape(x_cond)[:-1]
        h, w, c = self._shape
        x = tf.reshape(x_cond, [-1, x_cond.shape[-1]])
        x = tf.concat([x, tf.zeros_like(x[:, :1])], axis=-1)
        img = tf.reshape(tf.gather(x, self._gather, axis=-1), [-1, h, w, c])
        mask = tf.broadcast_to(tf.constant(self._mask, x.dtype), tf.shape(img))
        out = tf.concat([img, mask], axis=-1)
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            out = tf.nn.conv2d(out, kernel, 1, "SAME") + bias
            if i < len(self.kernels) - 1:
                out = tf.nn.relu(out)
        shift, raw = tf.split(out, 2, axis=-1)
        shift = tf.gather(tf.reshape(shift, [-1, h * w * c]), self._read, axis=-1)
        raw = tf.gather(tf.reshape(raw, [-1, h * w * c]), self._read, axis=-1)
        bound = tf.nn.softplus(self.log_scale_bound_param)
        log_scale = bound * tf.tanh(raw / bound)
        shape = tf.concat([batch, [output_units]], axis=0)
        return tf.reshape(shift, shape), tf.reshape(log_scale, shape)


def multiscale_layout(image_shape: tuple[int, int, int], num_scales: int = 2,
                      couplings_per_scale: int = 3, final_couplings: int = 4) -> tuple[list, list]:
    """The coupling plan of a multi-scale flow, in the data -> latent order.

    Returns:
      A list of ``(kind, conditioning, transformed, layout)`` with ``kind`` in
      ``{"checkerboard", "channel"}``, int index arrays into the flattened event and the
      coupling's index ``layout [h, w, c]`` (event position of each cell at that scale), and
      the list of index arrays factored out at each scale.

    Raises:
      ValueError: if the image cannot be squeezed ``num_scales`` times (odd height or width
        along the way) or a mask would leave one side empty.
    """
    try:
        shape = tuple(int(s) for s in image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"`image_shape` must be (height, width, channels), got {image_shape!r}.")
    h, w, c = shape
    num_scales = int(num_scales)
    if num_scales < 0:
        raise ValueError(f"`num_scales` must be >= 0, got {num_scales}.")
    if h % 2 ** num_scales or w % 2 ** num_scales:
        raise ValueError(
            f"image shape {shape}: height and width must be divisible by 2**num_scales = "
            f"{2 ** num_scales} to squeeze {num_scales} times.")
    if (h // 2 ** num_scales) * (w // 2 ** num_scales) < 2:
        raise ValueError(
            f"image shape {shape} is too small for {num_scales} scales: the final checkerboard "
            f"couplings need at least 2 pixels, got {h // 2 ** num_scales}×{w // 2 ** num_scales}.")
    layout = np.arange(h * w * c).reshape(shape)
    plan, factored = [], []

    def couple(kind, count):
        for k in range(count):
            mask = (checkerboard_mask if kind == "checkerboard" else channel_mask)(
                layout.shape, parity=k % 2)
            plan.append((kind, np.sort(layout[mask]), np.sort(layout[~mask]), layout))

    for _ in range(num_scales):
        couple("checkerboard", couplings_per_scale)
        layout = squeeze(layout).numpy()
        couple("channel", couplings_per_scale)
        half = layout.shape[-1] // 2
        factored.append(np.sort(layout[..., :half].ravel()))
        layout = layout[..., half:]
    couple("checkerboard", final_couplings)
    return plan, factored


class MultiScaleRealNVP(FlowBijector):
    """Multi-scale RealNVP on flattened images ``[..., H·W·C]`` (see the module docstring).

    ``inverse`` maps data to latent, ``forward`` latent to data; both log-dets are exact.

    Args:
      image_shape: ``(H, W, C)``.
      num_scales: number of squeeze + factor-out stages.
      couplings_per_scale: couplings before and after each squeeze (alternating parity).
      final_couplings: checkerboard couplings after the last factor-out.
      hidden_layers: widths of each coupling MLP (``network="mlp"``); for ``"conv"`` its
        length is the number of hidden 3×3 convolutions.
      log_scale_bound: initial soft bound of ``|log_scale|`` (see ``RealNVPTemplate``).
      seed: int seed of the network initialisations (None: random).
      network: ``"mlp"`` (``real_nvp_template`` on the gathered conditioning entries) or
        ``"conv"`` (``ConvTemplate`` on the coupling's image at its scale).
      filters: channels of the hidden convolutions (``network="conv"``).
    """

    def __init__(self, image_shape: tuple[int, int, int] = (8, 8, 1), num_scales: int = 2,
                 couplings_per_scale: int = 3, final_couplings: int = 4,
                 hidden_layers: Sequence[int] = (128, 128), log_scale_bound: float = 2.0,
                 seed: int | None = None, network: str = "mlp", filters: int = 32,
                 dtype: tf.DType = tf.float32, validate_args: bool = False,
                 name: str = "multiscale_realnvp"):
        parameters = dict(locals())
        if network not in ("mlp", "conv"):
            raise ValueError(f"`network` must be 'mlp' or 'conv', got {network!r}.")
        plan, self._factored = multiscale_layout(image_shape, num_scales, couplings_per_scale,
                                                 final_couplings)
        self._image_shape = tuple(int(s) for s in image_shape)
        self._event_size = int(np.prod(self._image_shape))
        dtype = _checks.float_dtype(dtype)
        with tf.name_scope(name) as scope:
            layers = []  # data -> latent order
            for i, (kind, cond, trans, layout) in enumerate(plan):
                layer_seed = None if seed is None else [int(seed), i]
                if network == "mlp":
                    template = real_nvp_template(hidden_layers, log_scale_bound=log_scale_bound,
                                                 seed=layer_seed, name=f"template_{i}")
                else:
                    template = ConvTemplate(layout, cond, trans, filters=filters,
                                            num_layers=len(hidden_layers),
                                            log_scale_bound=log_scale_bound, seed=layer_seed,
                                            name=f"conv_template_{i}")
                layers.append(IndexCoupling(self._event_size, cond, trans, template,
                                            validate_args=validate_args,
                                            name=f"{kind}_coupling_{i}"))
            self.couplings = layers
            # Chain(list).inverse applies list[0]'s inverse first: the data-side layer.
            self._chain = tfb.Chain(layers, validate_args=validate_args)
            super().__init__(forward_min_event_ndims=1, dtype=dtype, validate_args=validate_args,
                             parameters=parameters, name=scope)

    @property
    def image_shape(self):
        return self._image_shape

    @property
    def event_size(self):
        """``H·W·C``, the size of the flattened event."""
        return self._event_size

    @property
    def factored_out(self):
        """Index arrays of the event entries factored out at each scale (data -> latent)."""
        return list(self._factored)

    def _check(self, x):
        _checks.event_shape(x, self._event_size, f"{self.name} (image shape {self.image_shape})")

    def _forward(self, x):
        self._check(x)
        return self._chain.forward(x)

    def _inverse(self, y):
        self._check(y)
        return self._chain.inverse(y)

    def _forward_log_det_jacobian(self, x):
        self._check(x)
        return self._chain.forward_log_det_jacobian(x, event_ndims=1)

    def _inverse_log_det_jacobian(self, y):
        self._check(y)
        return self._chain.inverse_log_det_jacobian(y, event_ndims=1)


def multiscale_realnvp(image_shape: tuple[int, int, int] = (8, 8, 1), num_scales: int = 2,
                       couplings_per_scale: int = 3, final_couplings: int = 4,
                       hidden_layers: Sequence[int] = (128, 128), log_scale_bound: float = 2.0,
                       seed: int | None = None, network: str = "mlp", filters: int = 32,
                       dtype: tf.DType = tf.float32,
                       name: str = "multiscale_realnvp") -> tfd.TransformedDistribution:
    """``TransformedDistribution`` of ``MultiScaleRealNVP`` over ``N(0, I_{H·W·C})``.

    Records its arguments as ``dist.flow_config`` (``builder="multiscale_realnvp"``).
    """
    dtype = _checks.float_dtype(dtype)
    bijector = MultiScaleRealNVP(image_shape, num_scales, couplings_per_scale, final_couplings,
                                 hidden_layers, log_scale_bound, seed, network, filters, dtype,
                                 name=name)
    config = dict(builder="multiscale_realnvp", image_shape=list(bijector.image_shape),
                  num_scales=num_scales, couplings_per_scale=couplings_per_scale,
                  final_couplings=final_couplings, hidden_layers=list(hidden_layers),
                  log_scale_bound=log_scale_bound, seed=seed, network=network, filters=filters,
                  dtype=dtype.name, name=name)
    dist = tfd.TransformedDistribution(standard_normal(bijector.event_size, dtype), bijector,
                                       name=name)
    dist.flow_config = config
    return dist


__all__ = ["ConvTemplate", "IndexCoupling", "MultiScaleRealNVP", "multiscale_layout",
           "multiscale_realnvp"]
__dir__ = public_dir(__all__)
