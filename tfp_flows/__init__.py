"""tfp_flows: normalizing-flow bijectors for TensorFlow Probability, trainable with Keras 3.

Submodules: ``bijectors`` (TFP bijectors), ``flows`` (builders returning a
``tfd.TransformedDistribution``), ``training`` (``FlowModel``, ``train``, optimizers),
``datasets`` and ``energies`` (2-D data and targets), ``digits`` and ``dequantization``
(8×8 images), ``multiscale``, ``nn`` (conditioner networks) and ``plot`` (matplotlib figures;
imported on first use of ``tfp_flows.plot``, needs ``pip install "tfp_flows[plot]"``).
"""

# First: imports TensorFlow without its start-up messages (see tfp_flows/_quiet.py).
from tfp_flows import _quiet  # noqa: F401  # isort: skip

import importlib

from tfp_flows import (
    bijectors,
    datasets,
    dequantization,
    digits,
    energies,
    flows,
    multiscale,
    nn,
    training,
)
from tfp_flows._mode import is_training, training_mode
from tfp_flows._variables import keras_variable_of, make_variable
from tfp_flows.compiled import CompiledDistribution
from tfp_flows.training import FlowModel, NaNGuard, check_data, export_saved_model, train

__version__ = "0.1.0"

__all__ = ["CompiledDistribution", "FlowModel", "NaNGuard", "bijectors", "check_data",
           "datasets", "dequantization", "digits", "energies", "export_saved_model", "flows",
           "is_training", "keras_variable_of", "make_variable", "multiscale", "nn", "train",
           "training", "training_mode"]


def __getattr__(name):
    # PEP 562: `tfp_flows.plot` imports matplotlib (an optional dependency) on first use only.
    if name == "plot":
        return importlib.import_module("tfp_flows.plot")
    raise AttributeError(f"module 'tfp_flows' has no attribute {name!r}")


def __dir__():
    return sorted(__all__ + ["__version__", "plot"])
