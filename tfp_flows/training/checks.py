"""Input checks run before the first training step: bad data never reaches the weights.

``check_data`` accepts a NumPy array / tensor / nested list of shape ``[N, D]`` (or
``[N, ..., D]``), or a ``tf.data.Dataset`` whose elements are ``x`` or ``(x, ...)`` batches.
It raises ``TypeError`` for a non-floating dtype and ``ValueError`` for an empty input, a wrong
event size (last axis != ``D``) or NaN/inf values, naming the problem and where it is.

A dataset with a known finite cardinality is scanned completely (one pass, in a
``tf.function``); an infinite or unknown-length one has its first ``scan_batches`` elements
scanned and is otherwise covered by the NaN guard of the train step.
"""

import numpy as np
import tensorflow as tf


def _first(element):
    """``x`` of an element that is ``x`` or a tuple ``(x, y, ...)``."""
    return element[0] if isinstance(element, tuple | list) else element


def _check_dtype(dtype, expected, what):
    dtype = tf.as_dtype(dtype)
    if not dtype.is_floating:
        raise TypeError(f"{what} must hold floating-point values ({expected.name}), got dtype "
                        f"{dtype.name}; convert it first, e.g. x.astype('{expected.name}').")


def _check_event_size(shape, event_size, what):
    shape = tf.TensorShape(shape)
    if shape.rank is not None and shape.rank < 1:
        raise ValueError(f"{what} must have shape [..., {event_size}], got a scalar.")
    if shape.rank is not None and shape[-1] is not None and shape[-1] != event_size:
        raise ValueError(f"{what} has event size {shape[-1]} (shape {shape}), but the flow "
                         f"models events of size {event_size}.")


def check_array(x, event_size, dtype, what="x"):
    """Checks an in-memory array; returns it as a NumPy array of ``dtype``."""
    arr = np.asarray(x.numpy() if isinstance(x, tf.Tensor) else x)
    if arr.dtype == object:
        raise TypeError(f"{what} could not be converted to a numeric array (dtype object).")
    _check_dtype(arr.dtype, dtype, what)
    if arr.ndim < 2:
        raise ValueError(f"{what} must have shape [num_examples, {event_size}], got shape "
                         f"{arr.shape}.")
    _check_event_size(arr.shape, event_size, what)
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape}): nothing to train on.")
    finite = np.isfinite(arr)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.reshape(arr.shape[0], -1).all(axis=1))
        kind = "NaN" if np.isnan(arr).any() else "inf"
        raise ValueError(f"{what} contains non-finite values ({kind}) in {bad_rows.size} "
                         f"example(s), first at index {int(bad_rows[0])}; remove or impute them.")
    return arr.astype(dtype.as_numpy_dtype, copy=False)


def check_dataset(dataset, event_size, dtype=tf.float32, what="dataset", scan_batches=100):
    """Checks a ``tf.data.Dataset`` of batches ``x`` or ``(x, ...)``; returns it unchanged."""
    spec = _first(dataset.element_spec)
    if not isinstance(spec, tf.TensorSpec):
        raise TypeError(f"{what} elements must be tensors x or tuples (x, ...), got {spec}.")
    _check_dtype(spec.dtype, tf.as_dtype(dtype), what)
    _check_event_size(spec.shape, event_size, what)
    cardinality = int(dataset.cardinality())
    if cardinality == 0:
        raise ValueError(f"{what} is empty: nothing to train on.")
    finite_length = cardinality > 0
    scanned = dataset if finite_length else dataset.take(scan_batches)
    count, examples, bad, first_bad = _scan(scanned.map(_first))
    if int(count) == 0 or int(examples) == 0:
        raise ValueError(f"{what} is empty: nothing to train on.")
    if int(bad) > 0:
        raise ValueError(f"{what} contains non-finite values (NaN or inf) in {int(bad)} "
                         f"batch(es), first in batch {int(first_bad)}; remove or impute them.")
    return dataset


@tf.function
def _scan(dataset):
    def step(state, x):
        count, examples, bad, first_bad = state
        is_bad = ~tf.reduce_all(tf.math.is_finite(x))
        first_bad = tf.where(is_bad & (first_bad < 0), count, first_bad)
        rows = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.int64)
        return count + 1, examples + rows, bad + tf.cast(is_bad, tf.int64), first_bad

    zero = tf.constant(0, tf.int64)
    return dataset.reduce((zero, zero, zero, tf.constant(-1, tf.int64)), step)


def check_data(x, event_size: int, dtype: tf.DType = tf.float32, what: str = "x"):
    """Dispatches to ``check_dataset`` or ``check_array``; returns the checked input."""
    dtype = tf.as_dtype(dtype)
    if isinstance(x, tf.data.Dataset):
        return check_dataset(x, event_size, dtype, what)
    return check_array(x, event_size, dtype, what)
