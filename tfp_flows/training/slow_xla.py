"""Flows whose XLA train step is slower than graph mode on CPU (issues 10 and 14).

A flow with a convolutional conditioner (``flows.multiscale_realnvp(network="conv")``, affine
or rational-quadratic spline couplings) trains faster in graph mode than under XLA on CPU.
Measured 2026-12-08 on an idle 2-core AMD EPYC, the full-size digits flows of
``benchmarks/digits.py`` (32 conv filters, batch 512 of 8×8 digits) under ``FlowModel.fit``
with one step per execution, each mode in its own process, three epochs of 16 steps. First
epoch (tracing, compiling), then seconds per step: affine couplings 9.2 s and 0.118 s in graph
mode against 18.8 s and 0.220 s under XLA; spline couplings 23.7 s and 0.335 s against 37.5 s
and 0.444 s.

So ``FlowModel.compile``'s default (``jit_compile=None`` or ``"auto"``) trains such a flow in
graph mode when TensorFlow sees no GPU, and ``jit_compile=True`` warns (both read
``slow_under_xla``). On a GPU nothing was measured, and the default stays XLA. (Before the
gather-free knot search, ``_compat.spline_search``, the spline flow's XLA compile took
minutes: benchmarks/README.md, Digits.)

Under XLA, the fused loop is slower still for these flows (spline 1282/644/1283 ms per step
fused against 404/203/162 with one XLA call per step, affine 198/322/320 against
177/117/166; tiny conv flow, 8 filters, 32 steps per execution, load ≈ 5, 2026-12-03), so
``fit`` runs the steps of an execution of any flow with a convolutional conditioner as one
XLA call each (``fuse_steps``).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors._base import nested_bijectors
from tfp_flows.bijectors.coupling import Coupling
from tfp_flows.bijectors.multiscale import ImageConditioner

tfb = tfp.bijectors


def _conv_couplings(distribution):
    """The couplings of ``distribution``'s bijector with a convolutional conditioner."""
    bijector = getattr(distribution, "bijector", None)
    if not isinstance(bijector, tfb.Bijector):
        return
    for b in nested_bijectors(bijector):
        if isinstance(b, Coupling) and isinstance(b.conditioner, ImageConditioner):
            yield b


def fuse_steps(distribution) -> bool:
    """Whether ``fit`` may train an execution's steps as one XLA loop: not for a flow with a
    convolutional conditioner (its fused loop was measured 2-5x slower per step)."""
    return next(_conv_couplings(distribution), None) is None


def slow_under_xla(distribution) -> str | None:
    """Why ``distribution``'s XLA train step is known to be slower than graph mode here (a
    convolutional conditioner, and TensorFlow sees no GPU), or None."""
    coupling = next(_conv_couplings(distribution), None)
    if coupling is None or tf.config.list_logical_devices("GPU"):
        return None
    return (f"coupling {coupling.name!r} has a convolutional conditioner: on CPU such flows "
            "train faster in graph mode (the full-size digits step was measured 1.3x (spline "
            "couplings) to 1.9x (affine) slower under XLA; tfp_flows.training.slow_xla), "
            "which compile's default jit_compile=None chooses for them")


__all__ = ["fuse_steps", "slow_under_xla"]
