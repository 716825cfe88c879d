"""Training-mode switch read by mode-dependent bijectors (``BatchNorm``).

``FlowModel`` enters ``training_mode(True)`` while tracing its train step and
``training_mode(False)`` for evaluate/predict/sample; code outside defaults to inference.
"""

import contextlib
import contextvars
from collections.abc import Iterator

_TRAINING = contextvars.ContextVar("tfp_flows_training", default=False)


def is_training() -> bool | None:
    """Returns the current Python-level training flag."""
    return _TRAINING.get()


@contextlib.contextmanager
def training_mode(training: bool = True) -> Iterator[None]:
    """Context in which mode-dependent bijectors use batch statistics (``training=True``)."""
    token = _TRAINING.set(bool(training))
    try:
        yield
    finally:
        _TRAINING.reset(token)
