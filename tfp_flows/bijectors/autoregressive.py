"""Masked autoregressive flows (MAF, IAF) over ``tfb.MaskedAutoregressiveFlow``, Keras-3 trainable.

TFP has the autoregressive math but its conditioner, ``tfb.AutoregressiveNetwork``, is a tf_keras
layer that a Keras 3 model cannot train. Here the conditioner is ``tfp_flows.nn.MADE`` (one flat
variable made by ``make_variable``) and the elementwise map is a transformer from
``tfp_flows.bijectors.transformers`` (affine, rational-quadratic spline, ...).
"""

from collections.abc import Callable, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks
from tfp_flows.bijectors import transformers as _transformers
from tfp_flows.bijectors._base import LogDetWithMap
from tfp_flows.nn import MADE, network_init_kwargs

tfb = tfp.bijectors


class _Elementwise(tfb.Bijector):
    """The transformer with fixed parameters ``params [..., D, P]`` as a scalar TFP bijector
    (what ``tfb.MaskedAutoregressiveFlow``'s ``bijector_fn`` must return)."""

    def __init__(self, transformer, params):
        self._transformer, self._params = transformer, params
        super().__init__(forward_min_event_ndims=0, is_constant_jacobian=False,
                         name="autoregressive_transformer", parameters={})

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    def _forward(self, x):
        return self._transformer.forward_and_log_det(x, self._params)[0]

    def _inverse(self, y):
        return self._transformer.inverse_and_log_det(y, self._params)[0]

    def _forward_log_det_jacobian(self, x):
        return self._transformer.forward_and_log_det(x, self._params)[1]

    def _inverse_log_det_jacobian(self, y):
        return self._transformer.inverse_and_log_det(y, self._params)[1]


class MaskedAutoregressiveFlow(LogDetWithMap, tfb.MaskedAutoregressiveFlow):
    """MAF (Papamakarios et al., 2017): ``tfb.MaskedAutoregressiveFlow`` with a MADE conditioner.

    With ``θ = MADE(y, c) [..., D, P]`` (``θ_i`` depends on ``y_j`` of smaller degree only, and on
    the context ``c``) and an increasing elementwise transformer ``τ(·; θ_i)``:

    - inverse (data -> base, ``log_prob``): ``x_i = τ⁻¹(y_i; θ_i(y))`` — **one** network pass;
      ``log|det ∂x/∂y| = Σ_i log|∂τ⁻¹/∂y_i|`` (the Jacobian is triangular in the degree order).
    - forward (base -> data, ``sample``): ``y_i = τ(x_i; θ_i(y))`` solved element by element —
      **D** network passes (a ``tf.while_loop``; after pass ``k`` the elements of degree ``≤ k``
      are exact, and the last pass also gives the log-det).

    ``tfb.Invert`` of this bijector is IAF (Kingma et al., 2016): one pass to sample, ``D`` to
    evaluate the density of an arbitrary point — the direction reverse KL needs.

    Each direction evaluates the network once per pass: the output and its log-det come from the
    same pass and are handed to TFP's bijector cache (as ``Coupling`` does), where
    ``tfb.MaskedAutoregressiveFlow`` would run the network again for the log-det.

    Args:
      event_size: ``D``; inputs are ``[..., D]``.
      transformer: ``"affine"`` (bounded log-scale), ``"spline"`` (rational-quadratic) or a
        transformer object (see ``tfp_flows.bijectors.transformers``).
      hidden_layers: MADE hidden widths (each ``≥ D − 1``).
      context_size: ``C`` of ``conditional_input [..., C]`` (None: unconditional). The context
        is passed as TFP's keyword: ``forward(x, conditional_input=c)``, or through a
        distribution's ``bijector_kwargs``; it broadcasts against the batch axes of ``x``.
      input_order: MADE degrees, a permutation of ``1..D`` (default left to right).
      activation: MADE hidden activation.
      seed: int seed of the MADE initialisation.
      bias_init: the MADE's hidden biases, ``"zeros"`` or ``"uniform"`` (``nn.MADE``).
      network_init: the MADE's other weights: ``"identity"`` (Glorot-uniform kernels, a zero
        last layer: a fresh bijector is the identity) or ``"uniform"`` (every kernel and the
        output bias from ``U(±1/√fan_in)``, PyTorch's ``nn.Linear`` default: near, not at,
        the identity).
      validate_args: TFP's flag.
      name: bijector name (unique within a ``tfb.Chain`` to route ``bijector_kwargs``).

    The MADE's variable is created on the first call (with the input's dtype) through
    ``make_variable``, so ``tf.Module`` tracking (TFP) and ``FlowModel`` (Keras) see it.
    """

    def __init__(self, event_size: int, transformer="affine",
                 hidden_layers: Sequence[int] = (64, 64), context_size: int | None = None,
                 input_order: Sequence[int] | None = None,
                 activation: Callable[[tf.Tensor], tf.Tensor] = tf.nn.relu,
                 seed: int | None = None, bias_init: str = "zeros",
                 network_init: str = "identity", validate_args: bool = False,
                 name: str | None = None):
        name = name or "masked_autoregressive_flow"
        self._event_size = _checks.positive_int(event_size, "event_size")
        self._transformer = _transformers.get(transformer)
        self._made = MADE(event_size, self._transformer.num_params, hidden_layers,
                          conditional_size=context_size, input_order=input_order,
                          activation=activation, seed=seed, bias_init=bias_init,
                          **network_init_kwargs(network_init), name=f"{name}_made")
        super().__init__(bijector_fn=self._bijector_fn_of_made, validate_args=validate_args,
                         name=name)

    @property
    def event_size(self):
        return self._event_size

    @property
    def context_size(self):
        """``C`` of ``conditional_input``, or None when unconditional."""
        return self._made.conditional_size

    @property
    def made(self):
        return self._made

    @property
    def transformer(self):
        return self._transformer

    def _bijector_fn_of_made(self, y, **condition_kwargs):
        return _Elementwise(self._transformer, self._made(y, **condition_kwargs))

    def _prepare(self, v, condition_kwargs):
        """Checks the event size and broadcasts ``v`` against the context's batch axes."""
        _checks.event_shape(v, self._event_size, self.name)
        unknown = set(condition_kwargs) - {"conditional_input"}
        if unknown:
            raise TypeError(f"{self.name}: unexpected keyword(s) {sorted(unknown)}; the context "
                            "is passed as `conditional_input`.")
        c = condition_kwargs.get("conditional_input")
        if c is None:
            return v
        batch = tf.broadcast_dynamic_shape(tf.shape(v)[:-1], tf.shape(c)[:-1])
        return tf.broadcast_to(v, tf.concat([batch, [self._event_size]], axis=0))

    def _augmented_forward(self, x, **condition_kwargs):
        x = self._prepare(x, condition_kwargs)

        def one_pass(y, log_det):
            del log_det  # only the last pass's is the log-det of the result
            return self._transformer.forward_and_log_det(x, self._made(y, **condition_kwargs))

        y, log_det = tf.while_loop(lambda *_: True, one_pass, (tf.zeros_like(x), tf.zeros_like(x)),
                                   maximum_iterations=self._event_size)
        fldj = tf.reduce_sum(log_det, axis=-1)
        return y, {"ildj": -fldj}

    def _augmented_inverse(self, y, **condition_kwargs):
        y = self._prepare(y, condition_kwargs)
        x, log_det = self._transformer.inverse_and_log_det(y, self._made(y, **condition_kwargs))
        ildj = tf.reduce_sum(log_det, axis=-1)
        return x, {"ildj": ildj}


def inverse_autoregressive_flow(event_size: int, transformer="affine",
                                hidden_layers: Sequence[int] = (64, 64),
                                context_size: int | None = None,
                                input_order: Sequence[int] | None = None,
                                activation: Callable[[tf.Tensor], tf.Tensor] = tf.nn.relu,
                                seed: int | None = None, bias_init: str = "zeros",
                                network_init: str = "identity", validate_args: bool = False,
                                name: str | None = None) -> tfb.Invert:
    """IAF (Kingma et al., 2016): ``tfb.Invert(MaskedAutoregressiveFlow(...))``.

    forward (base -> data, ``sample``): ``y_i = τ⁻¹(x_i; θ_i(x))`` — one MADE pass over the
    base sample; inverse (``log_prob`` of a given point): ``D`` passes. Use it where samples and
    their densities are what is needed (reverse KL, variational inference):
    ``experimental_sample_and_log_prob`` costs one pass, the log-det coming from the cache.
    Arguments as for ``MaskedAutoregressiveFlow``; the context reaches the inner bijector through
    ``tfb.Invert``'s keyword arguments.
    """
    name = name or "inverse_autoregressive_flow"
    maf = MaskedAutoregressiveFlow(event_size, transformer=transformer,
                                   hidden_layers=hidden_layers, context_size=context_size,
                                   input_order=input_order, activation=activation, seed=seed,
                                   bias_init=bias_init, network_init=network_init,
                                   validate_args=validate_args,
                                   name=f"{name}_maf")
    return tfb.Invert(maf, name=name)
