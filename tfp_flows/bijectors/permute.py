"""Seeded random permutation of the event axis."""

from collections.abc import Sequence

import numpy as np
import tensorflow_probability as tfp

from tfp_flows import _checks

tfb = tfp.bijectors


def random_permute(event_size: int, seed: int | Sequence[int] | None = None,
                   name: str = "random_permute") -> tfp.bijectors.Permute:
    """Returns ``tfb.Permute`` with a random permutation of ``range(event_size)``.

    ``y[..., i] = x[..., perm[i]]``; log-det 0. The same ``seed`` gives the same
    permutation (``numpy.random.default_rng(seed).permutation``).
    """
    event_size = _checks.positive_int(event_size, "event_size")
    perm = np.random.default_rng(seed).permutation(event_size).astype(np.int32)
    return tfb.Permute(permutation=perm, name=name)
