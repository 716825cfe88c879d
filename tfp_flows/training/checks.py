"""Input checks run before the first training step: bad data never reaches the weights.

``check_data`` accepts a NumPy array / tensor / nested list of shape ``[N, D]`` (or
``[N, ..., D]``), a ``tf.data.Dataset`` whose elements are batches ``x``, ``(x, y)`` or
``(x, y, sample_weight)``, and (``iterators=True``, as ``fit`` allows) a Python generator or a
``keras.utils.PyDataset`` of such batches.
It raises ``TypeError`` for a non-floating dtype or an unsupported input type, and
``ValueError`` for an empty input, an unbatched dataset, a wrong event size (last axis != ``D``)
or values that are not finite in the flow's dtype (NaN, inf, or beyond the float32 range
for a float32 flow), naming the problem and where it is.

A dataset with a known finite cardinality is scanned completely (one pass, in a
``tf.function``); an infinite or unknown-length one has its first ``scan_batches`` elements
scanned. Of a generator or ``PyDataset`` only the first batch is checked. The rest is covered by
the NaN guard of the train step.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf


def _first(*element):
    """``x`` of an element that is ``x`` or a tuple ``(x, y, ...)`` (``Dataset.map`` unpacks
    tuples into arguments)."""
    element = element[0] if len(element) == 1 else element
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


def floating(x, dtype, what="x"):
    """``x`` cast to ``dtype`` if it holds floating-point values, else ``TypeError``.

    The cheap check of ``log_prob``: integer and boolean inputs are refused, not cast.
    """
    if isinstance(x, tf.Tensor | tf.Variable):
        value_dtype = x.dtype
    else:
        value_dtype = np.asarray(x).dtype
        if value_dtype.kind == "O":
            raise TypeError(f"{what} could not be converted to a numeric array (dtype object).")
    _check_dtype(value_dtype, tf.as_dtype(dtype), what)
    return tf.cast(x, dtype)


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
    with np.errstate(over="ignore"):
        cast = arr.astype(dtype.as_numpy_dtype, copy=False)
    finite = np.isfinite(cast)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.reshape(arr.shape[0], -1).all(axis=1))
        kind = ("NaN" if np.isnan(arr).any() else "inf" if np.isinf(arr).any()
                else f"beyond the {dtype.name} range, inf after the cast")
        raise ValueError(f"{what} contains non-finite values ({kind}) in {bad_rows.size} "
                         f"example(s), first at index {int(bad_rows[0])}; remove or impute them.")
    return cast


def check_sample_weight(sample_weight, num_examples: int, what: str = "sample_weight"):
    """Checks per-example weights of an array input: real, finite, non-negative, shape ``[N]``
    (or ``[N, 1]``) with ``N = num_examples``; returns them as float32 ``[N]``."""
    w = np.asarray(sample_weight.numpy() if isinstance(sample_weight, tf.Tensor)
                   else sample_weight)
    if w.dtype.kind not in "iuf":
        raise TypeError(f"{what} must hold real numbers, got dtype {w.dtype}.")
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1 or len(w) != num_examples:
        raise ValueError(f"{what} must have shape [{num_examples}] (one weight per example of "
                         f"x), got shape {w.shape}.")
    w = w.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise ValueError(f"{what} must be finite and >= 0; {bad.size} weight(s) are not, first "
                         f"at index {int(bad[0])} ({w[bad[0]]}).")
    return w


def check_dataset(dataset, event_size, dtype=tf.float32, what="dataset", scan_batches=100):
    """Checks a ``tf.data.Dataset`` of batches ``x`` or ``(x, ...)``; returns it unchanged."""
    spec = _first(dataset.element_spec)
    if not isinstance(spec, tf.TensorSpec):
        raise TypeError(f"{what} elements must be tensors x or tuples (x, ...), got {spec}.")
    _check_dtype(spec.dtype, tf.as_dtype(dtype), what)
    if spec.shape.rank == 1:
        raise ValueError(f"{what} yields single examples of shape {spec.shape} (an unbatched "
                         "dataset); batch it first, e.g. dataset.batch(256).")
    _check_event_size(spec.shape, event_size, what)
    cardinality = int(dataset.cardinality())
    if cardinality == 0:
        raise ValueError(f"{what} is empty: nothing to train on.")
    finite_length = cardinality > 0
    scanned = dataset if finite_length else dataset.take(scan_batches)
    count, examples, bad, first_bad = _scan(scanned.map(_first), tf.as_dtype(dtype))
    if int(count) == 0 or int(examples) == 0:
        raise ValueError(f"{what} is empty: nothing to train on.")
    if int(bad) > 0:
        raise ValueError(f"{what} contains non-finite values (NaN or inf, or beyond the "
                         f"{tf.as_dtype(dtype).name} range) in {int(bad)} batch(es), first in "
                         f"batch {int(first_bad)}; remove or impute them.")
    return dataset


@tf.function
def _scan(dataset, dtype):
    def step(state, x):
        count, examples, bad, first_bad = state
        is_bad = ~tf.reduce_all(tf.math.is_finite(tf.cast(x, dtype)))
        first_bad = tf.where(is_bad & (first_bad < 0), count, first_bad)
        rows = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.int64)
        return count + 1, examples + rows, bad + tf.cast(is_bad, tf.int64), first_bad

    zero = tf.constant(0, tf.int64)
    return dataset.reduce((zero, zero, zero, tf.constant(-1, tf.int64)), step)


def _first_batch(batch):
    return batch[0] if isinstance(batch, tuple | list) else batch


def check_py_dataset(dataset, event_size, dtype, what="x"):
    """Checks the length and the first batch of a ``keras.utils.PyDataset``."""
    if getattr(dataset, "num_batches", None) == 0:
        raise ValueError(f"{what} (a PyDataset) is empty: nothing to train on.")
    check_array(_first_batch(dataset[0]), event_size, dtype, f"{what} (a PyDataset) batch 0")
    return dataset


def check_generator(generator, event_size, dtype, what="x"):
    """Checks the first batch of a Python generator; returns a generator of all batches."""
    try:
        first = next(generator)
    except StopIteration:
        raise ValueError(f"{what} (a Python generator) is empty: nothing to train on.") from None
    if not isinstance(first, tuple):
        raise TypeError(f"{what} (a Python generator) must yield tuples (x,), (x, y) or "
                        f"(x, y, sample_weight) (Keras's convention), got {type(first).__name__}.")
    check_array(_first_batch(first), event_size, dtype, f"{what} (a Python generator) batch 0")

    def restored():
        yield first
        yield from generator

    return restored()


def refuse_iterators(x, what: str = "x"):
    """Raises ``TypeError`` naming a Python generator or ``keras.utils.PyDataset`` input
    (which only ``FlowModel.fit`` takes)."""
    kind = ("a keras.utils.PyDataset" if isinstance(x, keras.utils.PyDataset)
            else "a Python generator" if inspect.isgenerator(x) else None)
    if kind is not None:
        raise TypeError(f"{what} is {kind}, which this function does not take: pass an array "
                        "or a tf.data.Dataset (e.g. tf.data.Dataset.from_generator(..., "
                        "output_signature=...)), or train with FlowModel.fit.")


def check_data(x, event_size: int, dtype: tf.DType = tf.float32, what: str = "x",
               iterators: bool = False):
    """Dispatches on the input type; returns the checked input.

    ``iterators``: accept Python generators and ``keras.utils.PyDataset`` (``fit`` does;
    the custom loop ``train`` does not and refuses them with a message naming them).
    """
    dtype = tf.as_dtype(dtype)
    if isinstance(x, tf.data.Dataset):
        return check_dataset(x, event_size, dtype, what)
    if not iterators:
        refuse_iterators(x, what)
    if isinstance(x, keras.utils.PyDataset):
        return check_py_dataset(x, event_size, dtype, what)
    if inspect.isgenerator(x):
        return check_generator(x, event_size, dtype, what)
    return check_array(x, event_size, dtype, what)
