"""Optional dependencies: an ``ImportError`` that names the extra to install.

tfp_flows needs TensorFlow, TensorFlow Probability, tf-keras, NumPy and tqdm. Plots
(``tfp_flows.plot``, matplotlib) and rendered text (``tfp_flows.datasets.text``, Pillow) are
the ``[plot]`` extra; the 8×8 digits (``tfp_flows.digits.load``, scikit-learn) are ``[digits]``.
"""

import importlib

EXTRAS = {"matplotlib": "plot", "PIL": "plot", "sklearn": "digits"}
PACKAGES = {"matplotlib": "matplotlib", "PIL": "Pillow", "sklearn": "scikit-learn"}


def import_optional(name, feature):
    """Imports module ``name`` (e.g. ``"sklearn.datasets"``) that ``feature`` needs.

    Raises:
      ImportError: naming the missing package and ``pip install "tfp_flows[<extra>]"``.
    """
    try:
        return importlib.import_module(name)
    except ImportError as error:  # chained: the original error stays in the traceback
        raise missing(name, feature) from error


def missing(name, feature):
    """The ``ImportError`` to raise when module ``name``, needed by ``feature``, is missing."""
    top = name.split(".")[0]
    return ImportError(f"{feature} needs {PACKAGES[top]}, which is not installed. Install the "
                       f"optional dependency with: pip install \"tfp_flows[{EXTRAS[top]}]\"")
