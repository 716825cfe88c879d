"""Normalizing-flow bijectors for TensorFlow Probability."""

from tfp_flows.bijectors.autoregressive import MaskedAutoregressiveFlow, inverse_autoregressive_flow
from tfp_flows.bijectors.batch_norm import BatchNorm
from tfp_flows.bijectors.coupling import Coupling, channel_split, checkerboard_split, half_split
from tfp_flows.bijectors.elementwise import Elementwise
from tfp_flows.bijectors.leaky_relu import LeakyReLU
from tfp_flows.bijectors.lu_linear import LULinear
from tfp_flows.bijectors.masks import channel_mask, checkerboard_mask, squeeze, unsqueeze
from tfp_flows.bijectors.multiscale import ImageConditioner, MultiScaleRealNVP
from tfp_flows.bijectors.permute import random_permute
from tfp_flows.bijectors.piecewise_linear_cdf import PiecewiseLinearCDF
from tfp_flows.bijectors.planar import Planar
from tfp_flows.bijectors.real_nvp_template import RealNVPTemplate, real_nvp_template
from tfp_flows.bijectors.transformers import Affine, PiecewiseLinear, RationalQuadraticSpline

__all__ = [
    "Affine",
    "BatchNorm",
    "Coupling",
    "Elementwise",
    "ImageConditioner",
    "LULinear",
    "LeakyReLU",
    "MaskedAutoregressiveFlow",
    "MultiScaleRealNVP",
    "PiecewiseLinearCDF",
    "PiecewiseLinear",
    "Planar",
    "RationalQuadraticSpline",
    "RealNVPTemplate",
    "channel_mask",
    "channel_split",
    "checkerboard_mask",
    "checkerboard_split",
    "half_split",
    "inverse_autoregressive_flow",
    "random_permute",
    "real_nvp_template",
    "squeeze",
    "unsqueeze",
]
