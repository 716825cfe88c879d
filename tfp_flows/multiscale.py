"""The multi-scale flow under its former module name.

``MultiScaleRealNVP`` and ``multiscale_layout`` live in ``tfp_flows.bijectors.multiscale``,
the builder ``multiscale_realnvp`` in ``tfp_flows.flows``; this module re-exports them.
"""

from tfp_flows._namespace import public_dir
from tfp_flows.bijectors.multiscale import ImageConditioner, MultiScaleRealNVP, multiscale_layout
from tfp_flows.flows import multiscale_realnvp

__all__ = ["ImageConditioner", "MultiScaleRealNVP", "multiscale_layout", "multiscale_realnvp"]
__dir__ = public_dir(__all__)
