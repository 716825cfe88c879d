"""scikit-learn's 8×8 digits (1797 images, 17 grey levels), split and mapped to logit space.

The data ship inside scikit-learn (``sklearn.datasets.load_digits``), an optional dependency:
``pip install "tfp_flows[digits]"``. Nothing is downloaded.

Splits: a seeded, label-stratified 80/20 train/test split (``load``), and a further seeded,
stratified validation split carved from the training part (``load(validation_fraction=...)``)
for model selection.

Space (issue 6): a pixel ``p ∈ {0, …, 16}`` is dequantised to ``u = (p + v) / 17``,
``v ~ U[0, 1)``, and modelled in logit space, ``y = logit(α + (1 − 2α)·u)``, ``α = 0.05``.
``tfp_flows.dequantization`` implements the map, its log-Jacobian and the bits/dim bound.
"""

import collections

import numpy as np
from numpy.typing import ArrayLike

from tfp_flows._namespace import public_dir
from tfp_flows._optional import import_optional

LEVELS = 17
IMAGE_SHAPE = (8, 8, 1)
EVENT_SIZE = 64
ALPHA = 0.05

Split = collections.namedtuple("Split", ["train", "test", "validation", "train_labels",
                                         "test_labels", "validation_labels"])


def load(seed: int = 0, test_fraction: float = 0.2, validation_fraction: float = 0.0) -> Split:
    """Returns the digits split into train / (validation) / test.

    Args:
      seed: int seed of both splits (the same seed gives the same arrays).
      test_fraction: fraction of all images held out for testing, stratified by label.
      validation_fraction: fraction of the *training* images moved to a validation split,
        stratified by label (0 disables it: ``validation`` is an empty array).

    Returns:
      A ``Split`` whose image fields are int32 arrays ``[n, 64]`` (row-major 8×8 pixels with
      values in ``{0, …, 16}``) and whose label fields are int arrays ``[n]``.
    """
    load_digits = import_optional("sklearn.datasets", "tfp_flows.digits.load").load_digits
    train_test_split = import_optional("sklearn.model_selection",
                                       "tfp_flows.digits.load").train_test_split
    for name, frac in (("test_fraction", test_fraction),
                       ("validation_fraction", validation_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"`{name}` must lie in [0, 1), got {frac!r}.")
    if test_fraction == 0.0:
        raise ValueError("`test_fraction` must be > 0 to hold out a test split.")
    digits = load_digits()
    images = digits.data.astype(np.int32)
    labels = digits.target.astype(np.int64)
    train, test, train_labels, test_labels = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    validation = np.zeros([0, EVENT_SIZE], np.int32)
    validation_labels = np.zeros([0], np.int64)
    if validation_fraction > 0.0:
        train, validation, train_labels, validation_labels = train_test_split(
            train, train_labels, test_size=validation_fraction, random_state=seed + 1,
            stratify=train_labels)
    return Split(train, test, validation, train_labels, test_labels, validation_labels)


def to_image(x: ArrayLike) -> np.ndarray:
    """Reshapes flat events ``[..., 64]`` to images ``[..., 8, 8]`` (a NumPy view)."""
    x = np.asarray(x)
    if x.shape[-1:] != (EVENT_SIZE,):
        raise ValueError(f"Expected flat digits with last axis {EVENT_SIZE}, got shape {x.shape}.")
    return x.reshape(x.shape[:-1] + IMAGE_SHAPE[:2])


__all__ = ["ALPHA", "EVENT_SIZE", "IMAGE_SHAPE", "LEVELS", "Split", "load", "to_image"]
__dir__ = public_dir(__all__)
