"""tfp_flows: normalizing-flow bijectors for TensorFlow Probability, trainable with Keras 3."""

# First: imports TensorFlow without its start-up messages (see tfp_flows/_quiet.py).
from tfp_flows import _quiet  # noqa: F401  # isort: skip

from tfp_flows import bijectors, datasets, dequantization, digits, energies, flows, multiscale
from tfp_flows._mode import is_training, training_mode
from tfp_flows._variables import keras_variable_of, make_variable
from tfp_flows.compiled import CompiledDistribution
from tfp_flows.training import FlowModel, NaNGuard, check_data, export_saved_model, train

__version__ = "0.1.0"

__all__ = ["CompiledDistribution", "FlowModel", "NaNGuard", "bijectors", "check_data",
           "datasets", "dequantization", "digits", "energies", "export_saved_model", "flows",
           "is_training", "keras_variable_of", "make_variable", "multiscale", "train",
           "training_mode"]
