"""A TF2 shift-and-log-scale network for ``tfb.RealNVP``.

Drop-in replacement for ``tfb.real_nvp_default_template``, whose TF1 variables are
invisible in TF2 (``bijector.trainable_variables == ()``).
"""

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows.nn import MLP, concat_conditions


class RealNVPTemplate(tf.Module):
    """Callable ``(x0, output_units, **condition_kwargs) -> (shift, log_scale)``.

    An MLP maps ``x0 [..., d]`` (concatenated with any conditioning tensors
    ``[..., c]``) to ``2 * output_units`` numbers, split into ``shift`` and a raw
    log-scale ``r``. The log-scale is softly bounded,
    ``log_scale = c * tanh(r / c)``, ``c = softplus(rho) > 0`` learnable per unit
    (initially ``log_scale_bound``), so ``exp(log_scale)`` cannot blow up during training.
    The last layer is zero-initialised: a fresh coupling is the identity.
    With ``shift_only=True`` it returns ``(shift, None)``: NICE's additive coupling.

    Variables are created on the first call, when ``d`` and ``output_units`` are known.
    """

    def __init__(self, hidden_layers: Sequence[int], shift_only: bool = False,
                 activation: Callable[[tf.Tensor], tf.Tensor] = tf.nn.relu,
                 log_scale_bound: float = 2.0, seed: int | None = None, name: str | None = None):
        super().__init__(name=name or "real_nvp_template")
        hidden_layers = _checks.hidden_layers(hidden_layers)
        self._hidden_layers = hidden_layers
        self._shift_only = bool(shift_only)
        self._activation = activation
        self._log_scale_bound = _checks.positive_float(log_scale_bound, "log_scale_bound")
        self._seed = seed
        self._output_units = None
        self.network = None

    @property
    def shift_only(self):
        return self._shift_only

    @property
    def log_scale_bound(self):
        """The current bound ``c = softplus(rho)`` ``[output_units]`` (None before the first
        call or with ``shift_only``)."""
        if self.network is None or self._shift_only:
            return None
        return tf.nn.softplus(self.network.extra("log_scale_bound"))

    def _build(self, output_units):
        width = output_units if self._shift_only else 2 * output_units
        extra = None
        if not self._shift_only:
            rho = np.log(np.expm1(self._log_scale_bound))  # softplus^{-1}
            extra = {"log_scale_bound": np.full([output_units], rho)}
        # One variable per coupling: the bound's rho is stored with the network's weights.
        self.network = MLP(self._hidden_layers, width, activation=self._activation,
                           zero_init_output=True, seed=self._seed, extra_parameters=extra,
                           name="network")
        self._output_units = output_units

    def __call__(self, x0, output_units, **condition_kwargs):
        x0 = tf.convert_to_tensor(x0)
        output_units = _checks.positive_int(int(output_units), "output_units")
        if self._output_units is None:
            self._build(output_units)
        elif output_units != self._output_units:
            raise ValueError(
                f"{self.name}: built for output_units={self._output_units}, got {output_units}; "
                "use one template per coupling layer.")
        out = self.network(concat_conditions(x0, condition_kwargs))
        if self._shift_only:
            return out, None
        shift, raw = tf.split(out, 2, axis=-1)
        bound = self.log_scale_bound
        return shift, bound * tf.tanh(raw / bound)


def real_nvp_template(hidden_layers: Sequence[int], shift_only: bool = False,
                      activation: Callable[[tf.Tensor], tf.Tensor] = tf.nn.relu,
                      log_scale_bound: float = 2.0, seed: int | None = None,
                      name: str | None = None) -> RealNVPTemplate:
    """Returns a ``RealNVPTemplate``: the TF2 ``tfb.real_nvp_default_template``.

    Example:
      ``tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=real_nvp_template([64, 64]))``
    """
    return RealNVPTemplate(hidden_layers, shift_only=shift_only, activation=activation,
                           log_scale_bound=log_scale_bound, seed=seed, name=name)
