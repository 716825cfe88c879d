"""Image helpers for multi-scale couplings (Dinh et al., 2017): squeeze and the two masks.

Images are channels-last, ``[..., H, W, C]``. The helpers accept NumPy arrays or tensors;
``squeeze``/``unsqueeze`` return tensors, the masks return NumPy bool arrays.
"""

import numpy as np
import tensorflow as tf


def _image_shape(x, op):
    shape = tuple(x.shape)
    if len(shape) < 3 or any(s is None for s in shape[-3:]):
        raise ValueError(f"{op}: expected images [..., height, width, channels] with a static "
                         f"image shape, got shape {shape}.")
    return shape[:-3], shape[-3:]


def squeeze(x: tf.Tensor) -> tf.Tensor:
    """Space-to-depth by 2: ``[..., H, W, C] -> [..., H/2, W/2, 4C]``.

    Each 2×2 block becomes 4 channel groups, ordered (row offset, column offset, channel):
    ``out[..., i, j, (2a + b)·C + c] = x[..., 2i + a, 2j + b, c]``. A permutation (log-det 0).

    Raises:
      ValueError: if H or W is odd or the input is not image-shaped.
    """
    x = tf.convert_to_tensor(x)
    batch, (h, w, c) = _image_shape(x, "squeeze")
    if h % 2 or w % 2:
        raise ValueError(f"squeeze: height and width must be even, got image shape {(h, w, c)}.")
    nb = len(batch)
    x = tf.reshape(x, tf.concat([tf.shape(x)[:nb], [h // 2, 2, w // 2, 2, c]], axis=0))
    perm = list(range(nb)) + [nb + i for i in (0, 2, 1, 3, 4)]
    x = tf.transpose(x, perm)
    return tf.reshape(x, tf.concat([tf.shape(x)[:nb], [h // 2, w // 2, 4 * c]], axis=0))


def unsqueeze(x: tf.Tensor) -> tf.Tensor:
    """Inverse of ``squeeze``: ``[..., H, W, 4C] -> [..., 2H, 2W, C]``.

    Raises:
      ValueError: if the channel count is not a multiple of 4.
    """
    x = tf.convert_to_tensor(x)
    batch, (h, w, c4) = _image_shape(x, "unsqueeze")
    if c4 % 4:
        raise ValueError(f"unsqueeze: channels must be a multiple of 4, got image shape "
                         f"{(h, w, c4)}.")
    nb, c = len(batch), c4 // 4
    x = tf.reshape(x, tf.concat([tf.shape(x)[:nb], [h, w, 2, 2, c]], axis=0))
    perm = list(range(nb)) + [nb + i for i in (0, 2, 1, 3, 4)]
    x = tf.transpose(x, perm)
    return tf.reshape(x, tf.concat([tf.shape(x)[:nb], [2 * h, 2 * w, c]], axis=0))


def checkerboard_mask(image_shape: tuple[int, int, int], parity: int = 0) -> np.ndarray:
    """``mask[i, j, c] = ((i + j) % 2 == parity)`` for ``image_shape = (H, W, C)``; bool."""
    h, w, c = _check_shape(image_shape)
    ij = np.add.outer(np.arange(h), np.arange(w)) % 2 == _parity(parity)
    return np.broadcast_to(ij[:, :, None], (h, w, c)).copy()


def channel_mask(image_shape: tuple[int, int, int], parity: int = 0) -> np.ndarray:
    """``mask[i, j, c] = (c < C/2)`` for parity 0 and its complement for parity 1; bool.

    Raises:
      ValueError: if C is odd (the channels cannot be halved).
    """
    h, w, c = _check_shape(image_shape)
    if c % 2:
        raise ValueError(f"channel_mask: channels must be even, got image shape {(h, w, c)}.")
    first = np.arange(c) < c // 2
    m = first if _parity(parity) == 0 else ~first
    return np.broadcast_to(m, (h, w, c)).copy()


def _check_shape(image_shape):
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(f"`image_shape` must be (height, width, channels) of positive ints, "
                         f"got {image_shape!r}.")
    return tuple(int(s) for s in shape)


def _parity(parity):
    if parity not in (0, 1):
        raise ValueError(f"`parity` must be 0 or 1, got {parity!r}.")
    return int(parity)


__all__ = ["channel_mask", "checkerboard_mask", "squeeze", "unsqueeze"]
