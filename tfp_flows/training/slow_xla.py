"""Flows whose XLA train step is known to be slower than graph mode (issue 10).

A ``MultiScaleRealNVP`` whose couplings are rational-quadratic splines with convolutional
conditioners (``flows.multiscale_realnvp(network="conv", transformer="spline")``) trains far
slower under ``FlowModel``'s default XLA step than in graph mode. Measured 2026-12-03 on 2
shared CPU cores (load 6–12), batch 512 of 8×8 digits, the smoke-size flow of
``benchmarks/digits.py`` under ``fit``: with the default 32 steps fused into one XLA loop the
first 32 steps took 448 s and then ≈ 2.5 s per step; with ``steps_per_execution=1`` the first
8 steps took 289 s (compiling) and then 0.4 s per step; in graph mode the first 32 steps
took 124 s and then 0.53–0.60 s per step. The full-size flow's single loss-and-gradient
step took ≈ 4 s under XLA against ≈ 2 s in graph mode. The time is spread over the
conditioners' convolution gradients, layout copies and the spline's gathers (XLA CPU
profile in ``benchmarks/README.md``, Digits). Most of the loss is the fused loop: in one run,
a tiny spline conv flow took 786–1281 ms per step with 32 steps per XLA loop against
160–247 ms with ``steps_per_execution=1``.

``FlowModel.compile`` warns (``slow_under_xla``) when such a flow is compiled with XLA.

The fused loop is slow for affine couplings with convolutional conditioners too (321/161
against 61/88 ms per step in the run above), so ``fit`` runs the steps of an execution of any
flow with a convolutional conditioner as one XLA call each (``fuse_steps``). Same-run A/B of
the two at 32 steps per execution (tiny conv flow, 8 filters, load ≈ 5, three rounds, same
batches and the same bits/dim): affine 198/322/320 ms per step fused against 177/117/166 one
call per step, spline 1282/644/1283 against 404/203/162.
"""

import tensorflow_probability as tfp

from tfp_flows.bijectors._base import nested_bijectors
from tfp_flows.bijectors.coupling import Coupling
from tfp_flows.bijectors.multiscale import ImageConditioner
from tfp_flows.bijectors.transformers import RationalQuadraticSpline

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
    """Why ``distribution``'s XLA train step is known to be slow, or None."""
    for b in _conv_couplings(distribution):
        if isinstance(b.transformer, RationalQuadraticSpline):
            return (f"coupling {b.name!r} is a rational-quadratic spline with a convolutional "
                    "conditioner: for such multi-scale flows XLA compiles for minutes and the "
                    "full-size digits step was measured about 2x slower than in graph mode "
                    "(benchmarks/README.md, Digits); compile(..., jit_compile=False) trains "
                    "them in graph mode")
    return None


__all__ = ["fuse_steps", "slow_under_xla"]
