"""Training tfp_flows distributions: ``FlowModel`` (Keras ``fit``), ``train`` (custom loop),
``NaNGuard``, ``flow_optimizer``, input checks and SavedModel export."""

from tfp_flows.training.checks import check_data
from tfp_flows.training.export import export_saved_model
from tfp_flows.training.guards import NaNGuard, ScaledSchedule
from tfp_flows.training.loop import train
from tfp_flows.training.model import FlowModel, flow_variables
from tfp_flows.training.optimizers import flow_optimizer

__all__ = ["FlowModel", "NaNGuard", "ScaledSchedule", "check_data", "export_saved_model",
           "flow_optimizer", "flow_variables", "train"]
