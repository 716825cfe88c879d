"""Imports TensorFlow without its start-up messages; ``tfp_flows/__init__.py`` imports it first.

On a CPU machine TensorFlow 2.21 prints 6–9 lines before a program says anything: absl's
"All log messages before absl::InitializeLog() is called are written to STDERR" and INFO lines
(oneDNN, "Could not find cuda drivers", CPU instruction sets) from static initialisers of its
two shared libraries, and "failed call to cuInit" when the CUDA platform is probed at the first
operation. The static initialisers log before any log level is read, so no environment variable
stops them; the later ones obey ``TF_CPP_MIN_LOG_LEVEL``.

So this module

* sets ``TF_CPP_MIN_LOG_LEVEL`` to ``"3"`` unless it is already set (an exported value wins;
  ``0`` shows everything again), and
* while ``import tensorflow`` runs, points file descriptor 2 at a temporary file, then writes
  back to stderr every captured line that is not one of those start-up messages.

It does nothing when TensorFlow is already imported or ``TF_CPP_MIN_LOG_LEVEL`` is ``0``.
"""

import os
import re
import sys
import tempfile

# absl's banner, INFO/WARNING lines of TensorFlow's C++ code during import, and the
# continuation line of the CPU-feature message; anything else captured is written back.
_START_UP_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|^[IW]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\] "
    r"|^To enable the following instructions: ")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _restore(saved_fd, log):
    sys.stderr.flush()
    os.dup2(saved_fd, 2)
    os.close(saved_fd)
    log.seek(0)
    lines = log.read().decode(errors="replace").splitlines(keepends=True)
    kept = "".join(line for line in lines if not _START_UP_NOISE.match(line))
    if kept:
        sys.stderr.write(kept)
        sys.stderr.flush()


if "tensorflow" not in sys.modules and os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() not in ("", "0"):
    try:
        sys.stderr.flush()
        _saved_fd = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no usable stderr: nothing to keep clean
        _saved_fd = None
    if _saved_fd is None:
        import tensorflow  # noqa: F401
    else:
        with tempfile.TemporaryFile() as _log:
            os.dup2(_log.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                _restore(_saved_fd, _log)
