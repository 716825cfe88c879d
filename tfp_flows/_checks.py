"""Argument checks shared by the bijectors: clear errors that name the argument."""

import numbers

import numpy as np
import tensorflow as tf


def positive_int(value, name):
    """Returns ``value`` as an int, or raises ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def non_negative_int(value, name):
    """Returns ``value`` as an int >= 0 (NumPy ints too), or raises ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")
    return int(value)


def hidden_layers(value, name="hidden_layers"):
    """Returns ``value`` as a non-empty list of positive ints, or raises naming ``name``."""
    if isinstance(value, numbers.Number | str) or not hasattr(value, "__iter__"):
        raise TypeError(f"`{name}` must be a list of hidden widths, e.g. [64, 64], got "
                        f"{value!r}.")
    value = list(value)
    if not value:
        raise ValueError(f"`{name}` must list at least one hidden width, got [].")
    return [positive_int(h, f"{name}[i]") for h in value]


def float_dtype(dtype, name="dtype"):
    """Returns ``dtype`` as a floating ``tf.DType``, or raises ``TypeError``."""
    try:
        dtype = tf.as_dtype(dtype)
    except TypeError as e:
        raise TypeError(f"`{name}` must be a floating dtype, got {dtype!r}.") from e
    if not dtype.is_floating:
        raise TypeError(
            f"`{name}` must be a floating dtype (float32 or float64), got {dtype.name}.")
    return dtype


def one_of(value, choices, name):
    """Returns ``value`` if it is one of ``choices``, else raises ``ValueError`` naming them."""
    if value not in choices:
        allowed = " or ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}.")
    return value


def in_open_interval(value, low, high, name):
    """Returns ``float(value)`` if ``low < value < high``, else raises ``ValueError``."""
    if not isinstance(value, numbers.Real) or not low < value < high:
        raise ValueError(f"`{name}` must lie in ({low}, {high}), got {value!r}.")
    return float(value)


def positive_float(value, name):
    """Returns ``float(value)`` if it is a finite number > 0, else raises ``ValueError``."""
    if not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
        raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
    return float(value)


def event_shape(x, event_size, owner):
    """Checks statically that ``x`` has rank >= 1 and last axis ``event_size``.

    Args:
      x: tensor with shape ``[..., event_size]``.
      event_size: the expected size of the last axis.
      owner: name of the bijector, used in the message.

    Raises:
      ValueError: naming the expected and received shapes.
    """
    rank = x.shape.rank
    if rank is not None and rank < 1:
        raise ValueError(
            f"{owner}: input must have rank >= 1 with event size {event_size} on its last axis, "
            f"got a scalar (shape {x.shape}).")
    if rank is not None and x.shape[-1] is not None and x.shape[-1] != event_size:
        raise ValueError(
            f"{owner}: expected event size {event_size} on the last axis of the input, "
            f"got {x.shape[-1]} (input shape {x.shape}).")


def vector_event_size(distribution, owner):
    """Returns ``D`` for a distribution with event shape ``[D]``, else raises ``ValueError``."""
    event_shape = distribution.event_shape
    if event_shape.rank != 1 or event_shape[0] is None:
        raise ValueError(f"{owner} needs a distribution over vectors (event shape [D]), got "
                         f"event shape {event_shape}.")
    return int(event_shape[0])


def stateless_seed(seed, name="seed"):
    """An int seed as the stateless seed ``[0, seed]``; None and ``[2]`` integer seeds pass
    unchanged; anything else raises ``TypeError`` naming ``name``."""
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return tf.constant([0, int(seed)], tf.int32)
    if seed is None:
        return seed
    shape = getattr(seed, "shape", None) if hasattr(seed, "dtype") else np.shape(seed)
    dtype = tf.as_dtype(seed.dtype) if hasattr(seed, "dtype") else None
    if dtype is None and isinstance(seed, list | tuple) and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in seed):
        dtype = tf.int32
    if dtype is None or not dtype.is_integer or tuple(shape) != (2,):
        raise TypeError(f"`{name}` must be None, an int or a stateless seed of two ints, got "
                        f"{seed!r}.")
    return seed
