"""Training tfp_flows distributions: ``FlowModel`` (Keras ``fit``), ``train`` (custom loop),
both running the one step of ``training/step.py`` on an objective (``MaximumLikelihood``,
``ReverseKL``, ``DequantizedBound``); ``NaNGuard``, ``flow_optimizer``, input checks and
SavedModel export."""

from tfp_flows.training import objectives
from tfp_flows.training.checks import check_data
from tfp_flows.training.export import export_saved_model
from tfp_flows.training.guards import NaNGuard, ScaledSchedule
from tfp_flows.training.loop import train
from tfp_flows.training.model import FlowModel, flow_variables
from tfp_flows.training.objectives import DequantizedBound, LinearRamp, MaximumLikelihood, ReverseKL
from tfp_flows.training.optimizers import flow_optimizer

__all__ = ["DequantizedBound", "FlowModel", "LinearRamp", "MaximumLikelihood", "NaNGuard",
           "ReverseKL", "ScaledSchedule", "check_data", "export_saved_model", "flow_optimizer",
           "flow_variables", "objectives", "train"]
