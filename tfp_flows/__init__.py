"""tfp_flows: normalizing-flow bijectors for TensorFlow Probability, trainable with Keras 3."""

from tfp_flows import bijectors, flows
from tfp_flows._mode import is_training, training_mode
from tfp_flows._variables import keras_variable_of, make_variable

__version__ = "0.1.0"

__all__ = ["bijectors", "flows", "is_training", "keras_variable_of", "make_variable",
           "training_mode"]
