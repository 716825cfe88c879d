"""A lazily built multilayer perceptron owned as a ``tf.Module``.

Used by the coupling templates. Its parameters are created by
``tfp_flows.make_variable`` on the first call (when the input width is known),
so TFP tracks them as ``tf.Variable``s and ``FlowModel`` trains them as Keras weights.
"""

import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows._variables import make_variable


def concat_conditions(x0, condition_kwargs):
    """Concatenates ``x0 [..., d]`` with every conditioning tensor ``[..., c_k]``.

    Conditions are taken in sorted-key order and broadcast against the batch axes of ``x0``.
    """
    if not condition_kwargs:
        return x0
    parts = [x0] + [tf.cast(condition_kwargs[k], x0.dtype) for k in sorted(condition_kwargs)]
    batch = tf.shape(parts[0])[:-1]
    for p in parts[1:]:
        batch = tf.broadcast_dynamic_shape(batch, tf.shape(p)[:-1])
    parts = [tf.broadcast_to(p, tf.concat([batch, tf.shape(p)[-1:]], axis=0)) for p in parts]
    return tf.concat(parts, axis=-1)


class MLP(tf.Module):
    """``h -> W_L(act(... act(W_1 h + b_1) ...)) + b_L`` on the last axis.

    Args:
      hidden_layers: sequence of hidden widths, at least one.
      output_units: width of the output.
      activation: elementwise activation of the hidden layers.
      zero_init_output: initialise the last layer to zero (output exactly 0).
      seed: int seed for the Glorot-uniform initialisation (None: random).
      name: module name.

    Shapes: input ``[..., d]`` -> output ``[..., output_units]``; the batch axes are
    flattened so that every layer is one 2-D ``tf.matmul`` (much faster than einsum on CPU).

    All weights live in one flat variable ``params`` ``[P]`` (``W_1, b_1, ..., W_L, b_L``,
    row-major, then the ``extra_parameters``), sliced on every call: an optimizer step then
    updates one variable per network instead of ``2L`` (per-variable overhead is most of a
    small flow's step time on CPU; ``benchmarks/README.md``). ``weights()`` returns the
    ``(W_i, b_i)`` views, ``extra(name)`` an extra parameter.

    ``extra_parameters``: optional ``{name: initial array}`` of parameters that the caller
    uses next to the network (e.g. a learnable bound), stored in the same variable.
    """

    def __init__(self, hidden_layers, output_units, activation=tf.nn.relu,
                 zero_init_output=True, seed=None, extra_parameters=None, name=None):
        super().__init__(name=name)
        self._extra = {k: np.asarray(v, np.float64) for k, v in (extra_parameters or {}).items()}
        hidden_layers = list(hidden_layers)
        if not hidden_layers:
            raise ValueError("`hidden_layers` must list at least one hidden width, got [].")
        self._hidden = [_checks.positive_int(h, "hidden_layers[i]") for h in hidden_layers]
        self._output_units = _checks.positive_int(output_units, "output_units")
        self._activation = activation
        self._zero_init_output = zero_init_output
        self._seed = seed
        self._built_for = None
        self._shapes = []
        self.params = None

    def _build(self, input_units, dtype):
        rng = np.random.default_rng(self._seed)
        widths = [input_units] + self._hidden + [self._output_units]
        pieces = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            if last and self._zero_init_output:
                kernel = np.zeros([fan_in, fan_out])
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                kernel = rng.uniform(-limit, limit, size=[fan_in, fan_out])
            pieces += [kernel.ravel(), np.zeros([fan_out])]
            self._shapes += [(fan_in, fan_out), (fan_out,)]
        pieces += [v.ravel() for v in self._extra.values()]
        self.params = make_variable(np.concatenate(pieces), "params", dtype)
        self._built_for = (input_units, dtype)

    def weights(self):
        """``[(W_1 [d, h_1], b_1 [h_1]), ..., (W_L [h_{L-1}, out], b_L [out])]`` (tensors)."""
        if self.params is None:
            raise ValueError(f"MLP {self.name} is not built yet (call it once).")
        sizes = [int(np.prod(s)) for s in self._shapes]
        extra = sum(v.size for v in self._extra.values())
        flat = tf.split(tf.convert_to_tensor(self.params), sizes + [extra])[:len(sizes)]
        tensors = [tf.reshape(t, s) for t, s in zip(flat, self._shapes)]
        return list(zip(tensors[0::2], tensors[1::2]))

    def extra(self, name):
        """The extra parameter ``name`` (a tensor of its initial array's shape)."""
        if self.params is None:
            raise ValueError(f"MLP {self.name} is not built yet (call it once).")
        # One slice, not a second split of the whole vector (called next to __call__).
        offset = sum(int(np.prod(s)) for s in self._shapes)
        for key, value in self._extra.items():
            if key == name:
                flat = tf.convert_to_tensor(self.params)[offset:offset + value.size]
                return tf.reshape(flat, value.shape)
            offset += value.size
        raise KeyError(f"MLP {self.name} has no extra parameter {name!r}.")

    def __call__(self, h):
        h = tf.convert_to_tensor(h)
        input_units = h.shape[-1]
        if input_units is None:
            raise ValueError("MLP: the last axis of the input must be statically known.")
        if self._built_for is None:
            self._build(input_units, h.dtype)
        elif self._built_for != (input_units, h.dtype):
            raise ValueError(
                f"MLP {self.name}: built for input width {self._built_for[0]} and dtype "
                f"{self._built_for[1].name}, got width {input_units} and dtype {h.dtype.name}.")
        batch_shape = tf.shape(h)[:-1]
        out = tf.reshape(h, [-1, input_units])
        layers = self.weights()
        for i, (kernel, bias) in enumerate(layers):
            out = tf.matmul(out, kernel) + bias
            if i < len(layers) - 1:
                out = self._activation(out)
        return tf.reshape(out, tf.concat([batch_shape, [self._output_units]], axis=0))
