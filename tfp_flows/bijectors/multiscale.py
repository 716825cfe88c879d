"""Multi-scale RealNVP (Dinh et al., 2017) as one TFP bijector over flattened images.

Data -> latent (TFP's ``inverse``), for ``image_shape = (H, W, C)`` and ``S = num_scales``:

    for each scale: K checkerboard-split couplings, squeeze (H, W, C) -> (H/2, W/2, 4C),
                    K channel-split couplings, factor out half of the channels;
    then: ``final_couplings`` checkerboard-split couplings on what remains.

Everything acts on the flattened event ``[..., H·W·C]`` in its original order: squeeze is a
relabelling of indices (a permutation, log-det 0), so it is applied to an index *layout*
``[h, w, c] -> position in the event`` rather than to the data, and factoring out means that
later couplings never touch those positions again. The factored-out entries are therefore
latent coordinates scored under the standard-normal base of the ``TransformedDistribution``,
exactly as in the paper.

Each layer is a ``Coupling`` on index sets (conditioning ``K``, transformed ``T``, the rest
pass through) with an affine or spline transformer; its conditioner is an ``nn.MLP`` of the
gathered conditioning entries or an ``ImageConditioner`` (3×3 convolutions on the masked image
at the coupling's scale).
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks
from tfp_flows.bijectors import transformers as transformers_lib
from tfp_flows.bijectors._base import FlowBijector
from tfp_flows.bijectors.coupling import Coupling
from tfp_flows.bijectors.masks import channel_mask, checkerboard_mask, squeeze
from tfp_flows.nn import ConvNet

tfb = tfp.bijectors


class ImageConditioner(tf.Module):
    """Conditioner ``h [..., |K| (+ C)] -> [..., |T|·P]`` of one image coupling.

    The conditioning entries are scattered back into the coupling's image ``[h, w, c]`` (zeros
    elsewhere), the binary mask is appended as ``c`` channels (Dinh et al., 2017) and a context
    ``[..., C]`` (the rest of ``h``) as ``C`` constant channels; an ``nn.ConvNet`` maps that to
    ``c·P`` channels, read off at the transformed cells.

    Args:
      layout: int array ``[h, w, c]``, the event position of each cell.
      conditioning, transformed: the coupling's sorted event index arrays.
      num_params: ``P``, the transformer's parameters per element.
    """

    def __init__(self, layout: np.ndarray, conditioning: Sequence[int],
                 transformed: Sequence[int], num_params: int, filters: int = 32,
                 num_layers: int = 2, context_size: int | None = None, seed=None,
                 name: str = "image_conditioner"):
        super().__init__(name=name)
        layout = np.asarray(layout)
        self._shape = tuple(layout.shape)
        flat = layout.ravel()
        cond_pos = {int(e): k for k, e in enumerate(np.asarray(conditioning))}
        self._num_cond = len(cond_pos)
        # Cell -> position in x_K, or |K| (a zero appended at the end).
        self._gather = np.array([cond_pos.get(int(e), len(cond_pos)) for e in flat], np.int32)
        self._mask = np.isin(flat, conditioning).reshape(self._shape).astype(np.float32)
        cell_of = {int(e): k for k, e in enumerate(flat)}
        self._read = np.array([cell_of[int(e)] for e in np.asarray(transformed)], np.int32)
        self._num_params = _checks.positive_int(num_params, "num_params")
        self._context_size = context_size or 0
        self.network = ConvNet(filters, num_layers, self._shape[-1] * self._num_params,
                               zero_init_output=True, seed=seed, name="network")

    def __call__(self, h_in):
        h_in = tf.convert_to_tensor(h_in)
        batch = tf.shape(h_in)[:-1]
        hh, ww, c = self._shape
        v = tf.reshape(h_in, [-1, self._num_cond + self._context_size])
        x_cond, context = v[:, :self._num_cond], v[:, self._num_cond:]
        x_cond = tf.concat([x_cond, tf.zeros_like(x_cond[:, :1])], axis=-1)
        img = tf.reshape(tf.gather(x_cond, self._gather, axis=-1), [-1, hh, ww, c])
        parts = [img, tf.broadcast_to(tf.constant(self._mask, img.dtype), tf.shape(img))]
        if self._context_size:
            parts.append(tf.broadcast_to(context[:, None, None, :],
                                         [tf.shape(img)[0], hh, ww, self._context_size]))
        out = self.network(tf.concat(parts, axis=-1))  # [n, h, w, c·P]
        out = tf.reshape(out, [-1, hh * ww * c, self._num_params])
        out = tf.gather(out, self._read, axis=1)  # [n, |T|, P]
        return tf.reshape(out, tf.concat([batch, [self._read.size * self._num_params]], axis=0))


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
        # As float64 (exact for any index): TensorFlow's oneDNN transpose prints an error
        # line for integer dtypes ("oneDNN supports DT_INT64 only on ... AVX-512").
        layout = squeeze(layout.astype(np.float64)).numpy().astype(np.int64)
        couple("channel", couplings_per_scale)
        half = layout.shape[-1] // 2
        factored.append(np.sort(layout[..., :half].ravel()))
        layout = layout[..., half:]
    couple("checkerboard", final_couplings)
    return plan, factored


class MultiScaleRealNVP(FlowBijector):
    """Multi-scale coupling flow on flattened images ``[..., H·W·C]`` (module docstring).

    ``inverse`` maps data to latent, ``forward`` latent to data; both log-dets are exact.

    Args:
      image_shape: ``(H, W, C)``.
      num_scales: number of squeeze + factor-out stages.
      couplings_per_scale: couplings before and after each squeeze (alternating parity).
      final_couplings: checkerboard couplings after the last factor-out.
      hidden_layers: widths of each coupling MLP (``network="mlp"``); for ``"conv"`` its
        length is the number of hidden 3×3 convolutions.
      log_scale_bound: bound ``c`` of the affine log-scale ``c·tanh(r/c)`` (``transformer``
        ``"affine"``).
      seed: int seed of the network initialisations (None: random).
      network: ``"mlp"`` (``nn.MLP`` on the gathered conditioning entries) or ``"conv"``
        (``ImageConditioner`` on the coupling's image at its scale).
      filters: channels of the hidden convolutions (``network="conv"``).
      transformer: ``"affine"`` (RealNVP), ``"spline"`` or any transformer object.
    """

    def __init__(self, image_shape: tuple[int, int, int] = (8, 8, 1), num_scales: int = 2,
                 couplings_per_scale: int = 3, final_couplings: int = 4,
                 hidden_layers: Sequence[int] = (128, 128), log_scale_bound: float = 2.0,
                 seed: int | None = None, network: str = "mlp", filters: int = 32,
                 transformer="affine", dtype: tf.DType = tf.float32,
                 validate_args: bool = False, name: str = "multiscale_realnvp"):
        parameters = dict(locals())
        _checks.one_of(network, ("mlp", "conv"), "network")
        if transformer == "affine":
            transformer = transformers_lib.Affine(log_scale_bound)
        transformer = transformers_lib.get(transformer)
        plan, self._factored = multiscale_layout(image_shape, num_scales, couplings_per_scale,
                                                 final_couplings)
        self._image_shape = tuple(int(s) for s in image_shape)
        self._event_size = int(np.prod(self._image_shape))
        dtype = _checks.float_dtype(dtype)
        with tf.name_scope(name) as scope:
            layers = []  # data -> latent order
            for i, (kind, cond, trans, layout) in enumerate(plan):
                layer_seed = None if seed is None else [int(seed), i]
                conditioner = None
                if network == "conv":
                    conditioner = ImageConditioner(
                        layout, cond, trans, transformer.num_params, filters=filters,
                        num_layers=len(hidden_layers), seed=layer_seed,
                        name=f"conditioner_{i}")
                layers.append(Coupling(self._event_size, transformer, split=(cond, trans),
                                       conditioner=conditioner, hidden_layers=hidden_layers,
                                       seed=layer_seed, dtype=dtype, validate_args=validate_args,
                                       name=f"{kind}_coupling_{i}"))
            self.couplings = layers
            # Chain(list).inverse applies list[0]'s inverse first: the data-side layer.
            self._chain = tfb.Chain(layers, validate_args=validate_args)
            super().__init__(forward_min_event_ndims=1, dtype=dtype, validate_args=validate_args,
                             parameters=parameters, name=scope)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._image_shape

    @property
    def event_size(self) -> int:
        """``H·W·C``, the size of the flattened event."""
        return self._event_size

    @property
    def factored_out(self) -> list[np.ndarray]:
        """Index arrays of the event entries factored out at each scale (data -> latent)."""
        return list(self._factored)

    @property
    def bijectors(self) -> list[Coupling]:
        """The couplings in ``tfb.Chain`` order (the last one acts first in ``forward``)."""
        return list(self.couplings)

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


__all__ = ["ImageConditioner", "MultiScaleRealNVP", "multiscale_layout"]
