"""One ownership design for every parameter in tfp_flows.

Each parameter is a ``keras.Variable``; the bijector stores the ``tf.Variable``
behind it (``keras_variable.value``). TFP (``dist.trainable_variables``,
``tf.train.Checkpoint``, ``tf.saved_model``) sees the ``tf.Variable`` through
``tf.Module`` tracking, Keras (``FlowModel.trainable_weights``, ``save_weights``,
``summary``) sees the ``keras.Variable``, and both read and write the same storage.
"""

import keras
import numpy as np
import tensorflow as tf

_KERAS_ATTR = "_tfp_flows_keras_variable"


def make_variable(initial_value, name: str, dtype: tf.DType | str = tf.float32,
                  trainable: bool = True, aggregation: str = "none") -> tf.Variable:
    """Creates a parameter and returns its ``tf.Variable`` view.

    Args:
      initial_value: array-like initial value (NumPy, Python or eager tensor).
      name: variable name.
      dtype: floating dtype of the variable.
      trainable: whether optimizers should update it.
      aggregation: Keras aggregation under a distribution strategy ("none", "mean", ...).

    Returns:
      The ``tf.Variable`` that backs a new ``keras.Variable``; ``keras_variable_of``
      returns the latter.
    """
    dtype = tf.as_dtype(dtype)
    value = np.asarray(initial_value, dtype=dtype.as_numpy_dtype)
    # Lift creation out of any tf.function being traced, as Keras does for lazy builds.
    with tf.init_scope():
        kv = keras.Variable(value, dtype=dtype.name, trainable=trainable, name=name,
                            aggregation=aggregation)
    tv = kv.value
    setattr(tv, _KERAS_ATTR, kv)
    return tv


def keras_variable_of(variable: tf.Variable) -> keras.Variable:
    """Returns the ``keras.Variable`` behind a ``tf.Variable`` made by ``make_variable``.

    Raises:
      TypeError: if ``variable`` was not created by tfp_flows.
    """
    kv = getattr(variable, _KERAS_ATTR, None)
    if kv is None:
        raise TypeError(
            f"Variable {getattr(variable, 'name', variable)!r} was not created by tfp_flows, "
            "so Keras cannot train it. Create parameters with "
            "tfp_flows.make_variable(...) or use tfp_flows bijectors.")
    return kv
