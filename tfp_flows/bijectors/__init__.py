"""Normalizing-flow bijectors for TensorFlow Probability."""

from tfp_flows.bijectors.batch_norm import BatchNorm
from tfp_flows.bijectors.fused_real_nvp import FusedRealNVP
from tfp_flows.bijectors.leaky_relu import LeakyReLU
from tfp_flows.bijectors.lu_linear import LULinear
from tfp_flows.bijectors.masks import channel_mask, checkerboard_mask, squeeze, unsqueeze
from tfp_flows.bijectors.permute import random_permute
from tfp_flows.bijectors.piecewise_linear_cdf import PiecewiseLinearCDF, PiecewiseLinearCoupling
from tfp_flows.bijectors.planar import Planar
from tfp_flows.bijectors.real_nvp_template import RealNVPTemplate, real_nvp_template

__all__ = [
    "BatchNorm",
    "FusedRealNVP",
    "LULinear",
    "LeakyReLU",
    "PiecewiseLinearCDF",
    "PiecewiseLinearCoupling",
    "Planar",
    "RealNVPTemplate",
    "channel_mask",
    "checkerboard_mask",
    "random_permute",
    "real_nvp_template",
    "squeeze",
    "unsqueeze",
]
