"""Export a flow as a TensorFlow SavedModel that needs neither Keras nor tfp_flows to run.

The artifact holds the flow's variables and two ``tf.function`` signatures, both in inference
mode (``BatchNorm`` uses its moving statistics):

* ``log_prob(x: float[None, D]) -> {"log_prob": float[None]}``
* ``sample(n: int32[], seed: int32[2]) -> {"samples": float[None, D]}`` (stateless seed: the same
  ``(n, seed)`` gives the same samples)

Load with ``m = tf.saved_model.load(path)`` and call ``m.log_prob(x)`` / ``m.sample(n, seed)``
(or ``m.signatures["log_prob"](x=x)``).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows._mode import training_mode
from tfp_flows.training.model import FlowModel, flow_variables


class _ExportedFlow(tf.Module):
    def __init__(self, distribution):
        super().__init__(name="exported_flow")
        self.distribution = distribution
        d, dtype = int(distribution.event_shape[0]), distribution.dtype

        @tf.function(input_signature=[tf.TensorSpec([None, d], dtype, name="x")])
        def log_prob(x):
            with training_mode(False):
                return {"log_prob": self.distribution.log_prob(x)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n"),
                                      tf.TensorSpec([2], tf.int32, name="seed")])
        def sample(n, seed):
            with training_mode(False):
                return {"samples": self.distribution.sample(n, seed=seed)}

        self.log_prob = log_prob
        self.sample = sample


def export_saved_model(flow: FlowModel | tfp.distributions.Distribution, path: str) -> str:
    """Writes ``flow`` (a ``FlowModel`` or a tfp_flows distribution) as a SavedModel at ``path``.

    Returns ``path``.
    """
    distribution = flow.distribution if isinstance(flow, FlowModel) else flow
    flow_variables(distribution)  # builds lazy variables
    module = _ExportedFlow(distribution)
    tf.saved_model.save(module, str(path),
                        signatures={"log_prob": module.log_prob, "sample": module.sample,
                                    "serving_default": module.log_prob})
    return path
