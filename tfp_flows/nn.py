"""The conditioner networks, each a lazily built ``tf.Module`` with one flat variable.

``MLP`` (couplings, ``real_nvp_template``), ``MADE`` (masked autoregressive flows) and
``ConvNet`` (image couplings). Their parameters are created by ``tfp_flows.make_variable`` on
the first call (when the input width and dtype are known), so TFP tracks them as
``tf.Variable``s and ``FlowModel`` trains them as Keras weights.
"""

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows._namespace import public_dir
from tfp_flows._variables import make_variable


def concat_conditions(x0: tf.Tensor, condition_kwargs: dict) -> tf.Tensor:
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


_BIAS_INITS = ("zeros", "uniform")
_KERNEL_INITS = ("glorot", "uniform")
_NETWORK_INITS = ("identity", "uniform")


def network_init_kwargs(network_init: str) -> dict:
    """``MLP`` / ``MADE`` keyword arguments for a flow layer's ``network_init``: ``"identity"``
    (Glorot kernels, a zero output layer: the layer starts as the identity) or ``"uniform"``
    (every kernel and the output bias from ``U(±1/√fan_in)``, PyTorch's default)."""
    identity = _checks.one_of(network_init, _NETWORK_INITS, "network_init") == "identity"
    return dict(kernel_init="glorot" if identity else "uniform", zero_init_output=identity)


def _dense_layers(widths, rng, zero_init_output, shapes, bias_init="zeros",
                  kernel_init="glorot"):
    """Initial kernels and biases of dense layers ``widths[i] -> widths[i+1]``.

    Returns the flat pieces ``[W_1, b_1, ..., W_L, b_L]`` and appends their shapes to ``shapes``.
    Kernels: Glorot-uniform ``U(±√(6 / (fan_in + fan_out)))`` (``kernel_init="glorot"``) or
    ``U(±1/√fan_in)`` (``"uniform"``: PyTorch's ``nn.Linear`` default; then the output bias is
    drawn from ``U(±1/√fan_in)`` too). With ``zero_init_output`` the last kernel and bias are
    zero (the network starts at output 0). Hidden biases: zero, or from ``U(±1/√fan_in)`` with
    ``bias_init="uniform"``. Everything is drawn from ``rng`` in layer order.
    """
    pieces = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        bias = np.zeros([fan_out])
        if zero_init_output and last:
            kernel = np.zeros([fan_in, fan_out])
        else:
            limit = (1.0 / np.sqrt(fan_in) if kernel_init == "uniform"
                     else np.sqrt(6.0 / (fan_in + fan_out)))
            kernel = rng.uniform(-limit, limit, size=[fan_in, fan_out])
            if last and kernel_init == "uniform":
                bias = rng.uniform(-1.0, 1.0, size=[fan_out]) / np.sqrt(fan_in)
        if bias_init == "uniform" and not last:
            bias = rng.uniform(-1.0, 1.0, size=[fan_out]) / np.sqrt(fan_in)
        pieces += [kernel.ravel(), bias]
        shapes += [(fan_in, fan_out), (fan_out,)]
    return pieces


# Widths up to which a layer's narrow side is written as multiply-adds: MADE's first layer
# (``_narrow_matmul``) and the gradient of MLP's output layer (``_narrow_output_matmul``).
_NARROW = 2


@tf.custom_gradient
def _narrow_output_matmul(x, kernel):
    """``x [N, H] @ kernel [H, K]`` (small ``K``) whose gradient is multiply-adds and sums.

    The forward pass is the matmul. Autodiff's gradient is two more matmuls, ``g kernelᵀ``
    (``K`` deep) and ``xᵀ g`` (``K`` wide): in a profile of a 2-D ``flows.realnvp`` training
    step (``K = 2``, ``[512, 64]`` activations) XLA's CPU dot took 32–58 µs for each of them
    against 51–78 µs for the square ``[512, 64] @ [64, 64]`` products, with 32× less
    arithmetic. Here ``Σ_k g[:, k:k+1] · kernel[:, k]`` fuses with the activation's gradient
    that follows, and column ``k`` of the kernel's gradient is one reduction over the rows of
    ``x · g[:, k:k+1]``: that step ran ~1.2× faster
    (``benchmarks/README.md``).
    """
    def grad(g):
        columns = range(kernel.shape[-1])
        dx = sum(g[:, k:k + 1] * kernel[:, k] for k in columns)
        dkernel = tf.stack([tf.reduce_sum(x * g[:, k:k + 1], axis=0) for k in columns], axis=1)
        return dx, dkernel
    return tf.matmul(x, kernel), grad


class MLP(tf.Module):
    """``h -> W_L(act(... act(W_1 h + b_1) ...)) + b_L`` on the last axis.

    Args:
      hidden_layers: sequence of hidden widths, at least one.
      output_units: width of the output.
      activation: elementwise activation of the hidden layers.
      zero_init_output: initialise the last layer to zero (output exactly 0).
      seed: int seed of the initialisation (None: random).
      bias_init: ``"zeros"`` or ``"uniform"``: hidden biases from ``U(±1/√fan_in)``. With zero
        biases a ReLU network starts positively homogeneous (``f(a·h) = a·f(h)``, ``a > 0``):
        on a one-dimensional input all its kinks sit at 0 until the biases learn to move them;
        random biases spread them over the input's range from the start.
      kernel_init: ``"glorot"`` (Glorot-uniform) or ``"uniform"``: every kernel from
        ``U(±1/√fan_in)``, and the output bias too unless ``zero_init_output`` (PyTorch's
        ``nn.Linear`` default).
      name: module name.

    Shapes: input ``[..., d]`` -> output ``[..., output_units]``; the batch axes are
    flattened so that every layer is one 2-D ``tf.matmul`` (much faster than einsum on CPU).

    An output layer of width ``≤ 2`` (an affine coupling of a 2-D flow) has its gradient
    written as multiply-adds and sums instead of matmuls (``_narrow_output_matmul``).

    All weights live in one flat variable ``params`` ``[P]`` (``W_1, b_1, ..., W_L, b_L``,
    row-major, then the ``extra_parameters``), sliced on every call: an optimizer step then
    updates one variable per network instead of ``2L`` (per-variable overhead is most of a
    small flow's step time on CPU; ``benchmarks/README.md``). ``weights()`` returns the
    ``(W_i, b_i)`` views, ``extra(name)`` an extra parameter.

    ``extra_parameters``: optional ``{name: initial array}`` of parameters that the caller
    uses next to the network (e.g. a learnable bound), stored in the same variable.
    """

    def __init__(self, hidden_layers: Sequence[int], output_units: int,
                 activation: Callable[[tf.Tensor], tf.Tensor] = tf.nn.relu,
                 zero_init_output: bool = True, seed: int | None = None,
                 extra_parameters: dict | None = None, bias_init: str = "zeros",
                 kernel_init: str = "glorot", name: str | None = None):
        super().__init__(name=name)
        self._bias_init = _checks.one_of(bias_init, _BIAS_INITS, "bias_init")
        self._kernel_init = _checks.one_of(kernel_init, _KERNEL_INITS, "kernel_init")
        self._extra = {k: np.asarray(v, np.float64) for k, v in (extra_parameters or {}).items()}
        self._hidden = _checks.hidden_layers(hidden_layers)
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
        pieces = _dense_layers(widths, rng, self._zero_init_output, self._shapes,
                               self._bias_init, self._kernel_init)
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

    def __call__(self, h: tf.Tensor) -> tf.Tensor:
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
            last = i == len(layers) - 1
            out = (_narrow_output_matmul(out, kernel) if last and self._output_units <= _NARROW
                   else tf.matmul(out, kernel)) + bias
            if not last:
                out = self._activation(out)
        return tf.reshape(out, tf.concat([batch_shape, [self._output_units]], axis=0))


def made_degrees(event_size: int, hidden_layers: Sequence[int],
                 input_order: Sequence[int] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The degrees of a MADE (Germain et al., 2015): ``(input_degrees, [hidden_degrees_l])``.

    ``input_degrees [D]`` is a permutation of ``1..D`` (``input_order``; default ``1..D``,
    left to right). Hidden unit ``k`` of every layer gets degree ``1 + k mod (D − 1)`` (1 when
    ``D = 1``), so each degree ``1..D−1`` appears when a layer has at least ``D − 1`` units.
    A unit of degree ``m`` may see inputs of degree ``≤ m``; the outputs of element ``i``
    (degree ``d_i``) see hidden units of degree ``< d_i``, hence only inputs of degree ``< d_i``.
    """
    event_size = _checks.positive_int(event_size, "event_size")
    if input_order is None:
        degrees = np.arange(1, event_size + 1)
    else:
        degrees = np.asarray(input_order)
        if degrees.shape != (event_size,) or sorted(degrees.tolist()) != list(
                range(1, event_size + 1)):
            raise ValueError(f"`input_order` must be a permutation of 1..{event_size} "
                             f"(one degree per element), got {input_order!r}.")
    span = max(event_size - 1, 1)
    hidden = [1 + np.arange(h) % span for h in hidden_layers]
    return degrees.astype(np.int64), hidden


@tf.custom_gradient
def _narrow_matmul(x, kernel):
    """``x [N, K] @ kernel [K, H]`` as ``Σ_k x[:, k:k+1] · kernel[k]`` (small ``K``).

    XLA keeps a ``K = 2`` matmul as its own dot kernel (one more pass over ``[N, H]``), while
    these multiply-adds fuse with the bias and activation that follow: in a 2-D ``flows.maf``
    ``log_prob`` each layer runs 6 kernels over the points instead of 7 (``benchmarks/README.md``).
    The gradient is the matmul's (``g kernelᵀ``, ``xᵀ g``): autodiff of the sum would reduce
    over the ``N`` rows, slower than a dot.
    """
    def grad(g):
        return tf.matmul(g, kernel, transpose_b=True), tf.matmul(x, g, transpose_a=True)
    return sum(x[:, k:k + 1] * kernel[k] for k in range(x.shape[-1])), grad


class MADE(tf.Module):
    """Masked autoencoder for distribution estimation (Germain et al., 2015), Keras-3 trainable.

    ``MADE(x, conditional_input=c) -> params [..., D, params_per_element]`` where
    ``params[..., i, :]`` depends only on the elements ``x_j`` with ``degree_j < degree_i``
    (and on all of ``c``): the conditioner of a masked autoregressive flow.

    Each layer is ``h_l = act((M_l ⊙ W_l) h_{l−1} + V_l c + b_l)`` with a fixed binary mask
    ``M_l`` from ``made_degrees``; the context ``c [..., C]`` feeds every layer unmasked,
    the output layer included (else the element of degree 1, which sees no hidden unit,
    would not depend on ``c``). With ``zero_init_output`` (the default) the output layer is
    zero-initialised, so a fresh MADE returns zeros (the identity map for the transformers).

    Args:
      event_size: ``D``, the size of the last axis of ``x``.
      params_per_element: ``P``, outputs per element.
      hidden_layers: hidden widths, at least one. Each should be ``≥ D − 1``: a layer of
        ``h < D − 1`` units leaves the inputs of degree ``> h`` unseen (a ``UserWarning``).
      conditional_size: ``C``, the size of ``conditional_input``, or None (unconditional).
      input_order: degrees of the inputs, a permutation of ``1..D`` (default left to right).
      activation: elementwise activation of the hidden layers.
      seed: int seed of the initialisation (None: random).
      bias_init: ``"zeros"`` or ``"uniform"``: hidden biases from ``U(±1/√fan_in)``. With zero
        biases a ReLU network starts positively homogeneous (``f(a·h) = a·f(h)``, ``a > 0``):
        on a one-dimensional input all its kinks sit at 0 until the biases learn to move them;
        random biases spread them over the input's range from the start.
      kernel_init: ``"glorot"`` or ``"uniform"``, as ``MLP``'s (fan-ins before masking; a
        context weight ``V_l`` with ``fan_in = h_{l−1} + C``).
      zero_init_output: initialise the output layer (and its context weights) to zero.
      name: module name.

    All weights (``W_l, b_l`` of every layer, then ``V = [V_1, ..., V_L]``) live in one flat
    variable ``params``, made by ``make_variable`` on the first call (when the dtype is
    known), as in ``MLP``: the optimizer pays per variable. The batch axes of ``x`` and ``c``
    are broadcast against each other and flattened, so every layer is one 2-D ``tf.matmul``
    (the first layer of a ``D ≤ 2`` MADE: ``D`` multiply-adds, see ``_narrow_matmul``).
    """

    def __init__(self, event_size: int, params_per_element: int,
                 hidden_layers: Sequence[int] = (64, 64), conditional_size: int | None = None,
                 input_order: Sequence[int] | None = None,
                 activation: Callable[[tf.Tensor], tf.Tensor] = tf.nn.relu,
                 seed: int | None = None, bias_init: str = "zeros", kernel_init: str = "glorot",
                 zero_init_output: bool = True, name: str | None = None):
        super().__init__(name=name or "made")
        self._bias_init = _checks.one_of(bias_init, _BIAS_INITS, "bias_init")
        self._kernel_init = _checks.one_of(kernel_init, _KERNEL_INITS, "kernel_init")
        self._zero_init_output = bool(zero_init_output)
        self._hidden = _checks.hidden_layers(hidden_layers)
        self._event_size = _checks.positive_int(event_size, "event_size")
        self._params_per_element = _checks.positive_int(params_per_element,
                                                        "params_per_element")
        self._conditional_size = (None if conditional_size is None else
                                  _checks.positive_int(conditional_size, "conditional_size"))
        self._input_degrees, hidden_degrees = made_degrees(event_size, self._hidden, input_order)
        narrowest = min(self._hidden)
        if narrowest < self._event_size - 1:
            # Hidden degrees then stop at `narrowest`: a valid but weaker autoregressive model.
            warnings.warn(
                f"MADE(event_size={self._event_size}, hidden_layers={self._hidden}): a hidden "
                f"layer of {narrowest} units < event_size - 1 = {self._event_size - 1} leaves "
                f"the inputs of degree > {narrowest} unseen (no output depends on them); use "
                f"hidden layers of at least {self._event_size - 1} units.", stacklevel=2)
        output_degrees = np.repeat(self._input_degrees, self._params_per_element)
        degrees = [self._input_degrees] + hidden_degrees
        # Hidden layers: unit of degree m sees degrees <= m; output: strictly smaller degrees.
        self._masks = [(d_in[:, None] <= d_out[None, :]).astype(np.float64)
                       for d_in, d_out in zip(degrees[:-1], degrees[1:])]
        self._masks.append((degrees[-1][:, None] < output_degrees[None, :]).astype(np.float64))
        self._activation = activation
        self._seed = seed
        self._dtype = None
        self._shapes = []
        self.params = None

    @property
    def event_size(self):
        return self._event_size

    @property
    def params_per_element(self):
        return self._params_per_element

    @property
    def conditional_size(self):
        return self._conditional_size

    @property
    def input_degrees(self):
        """The degree ``1..D`` of each input element, ``[D]`` (NumPy)."""
        return self._input_degrees.copy()

    def masks(self):
        """The binary masks ``[M_1 [D, h_1], ..., M_L [h_{L−1}, D·P]]`` (NumPy)."""
        return [m.copy() for m in self._masks]

    def _build(self, dtype):
        rng = np.random.default_rng(self._seed)
        widths = [self._event_size] + self._hidden + [self._event_size * self._params_per_element]
        pieces = _dense_layers(widths, rng, self._zero_init_output, self._shapes,
                               self._bias_init, self._kernel_init)
        if self._conditional_size is not None:
            c, ins, out = self._conditional_size, widths[:-1], widths[1:]
            if self._kernel_init == "uniform":
                limits = [np.full([w], 1.0 / np.sqrt(h + c)) for h, w in zip(ins, out)]
            else:
                limits = [np.full([w], np.sqrt(6.0 / (c + w))) for w in out]
            context = rng.uniform(-1.0, 1.0, size=[c, sum(out)]) * np.concatenate(limits)
            if self._zero_init_output:  # the output layer starts at zero for every context
                context[:, -out[-1]:] = 0.0
            pieces.append(context.ravel())
            self._shapes.append((c, sum(out)))
        self.params = make_variable(np.concatenate(pieces), "params", dtype)
        self._dtype = dtype

    def _weights(self):
        sizes = [int(np.prod(s)) for s in self._shapes]
        flat = tf.split(tf.convert_to_tensor(self.params), sizes)
        return [tf.reshape(t, s) for t, s in zip(flat, self._shapes)]

    def __call__(self, x, conditional_input=None):
        x = tf.convert_to_tensor(x)
        _checks.event_shape(x, self._event_size, f"MADE {self.name}")
        if self._dtype is None:
            self._build(x.dtype)
        elif x.dtype != self._dtype:
            raise TypeError(f"MADE {self.name}: built for dtype {self._dtype.name}, got input "
                            f"of dtype {x.dtype.name}.")
        if (conditional_input is None) != (self._conditional_size is None):
            raise ValueError(
                f"MADE {self.name}: " + (
                    f"built with conditional_size={self._conditional_size}, so it needs "
                    "`conditional_input` [..., C]" if conditional_input is None else
                    "built without conditional_size, but got `conditional_input`"))
        weights = self._weights()
        batch_shape = tf.shape(x)[:-1]
        if conditional_input is not None:
            c = tf.convert_to_tensor(conditional_input, dtype=x.dtype)
            _checks.event_shape(c, self._conditional_size,
                                f"MADE {self.name} (conditional_input)")
            batch_shape = tf.broadcast_dynamic_shape(batch_shape, tf.shape(c)[:-1])
            c = tf.reshape(tf.broadcast_to(c, tf.concat([batch_shape, [self._conditional_size]],
                                                        axis=0)),
                           [-1, self._conditional_size])
            x = tf.broadcast_to(x, tf.concat([batch_shape, [self._event_size]], axis=0))
            widths = [s[1] for s in self._shapes[0:-1:2]]
            context_terms = tf.split(tf.matmul(c, weights[-1]), widths, axis=-1)
        out = tf.reshape(x, [-1, self._event_size])
        num_layers = len(self._masks)
        for i, mask in enumerate(self._masks):
            kernel, bias = weights[2 * i], weights[2 * i + 1]
            masked = kernel * tf.constant(mask, x.dtype)
            out = (_narrow_matmul(out, masked) if i == 0 and self._event_size <= _NARROW
                   else tf.matmul(out, masked)) + bias
            if conditional_input is not None:
                out = out + context_terms[i]
            if i < num_layers - 1:
                out = self._activation(out)
        return tf.reshape(out, tf.concat(
            [batch_shape, [self._event_size, self._params_per_element]], axis=0))


# --- ConvNet: the conditioner of image couplings --------------------------------------------


class ConvNet(tf.Module):
    """``img -> conv_L(relu(... relu(conv_1(img)) ...))``: ``3×3`` ``SAME`` convolutions.

    Args:
      filters: channels of the hidden convolutions.
      num_layers: number of hidden convolutions (at least one).
      output_channels: channels of the output.
      zero_init_output: initialise the last convolution to zero (output exactly 0).
      seed: int seed for the Glorot-uniform initialisation (None: random).

    Shapes: ``[..., H, W, C_in] -> [..., H, W, output_channels]`` (batch axes flattened for
    ``tf.nn.conv2d``). As in ``MLP``, all kernels and biases live in one flat variable
    ``params``, created on the first call when ``C_in`` is known.
    """

    def __init__(self, filters, num_layers, output_channels, zero_init_output=True, seed=None,
                 name=None):
        super().__init__(name=name)
        self._filters = _checks.positive_int(filters, "filters")
        self._num_layers = _checks.positive_int(num_layers, "num_layers")
        self._output_channels = _checks.positive_int(output_channels, "output_channels")
        self._zero_init_output = zero_init_output
        self._seed = seed
        self._shapes = []
        self._built_for = None
        self.params = None

    def _build(self, channels, dtype):
        rng = np.random.default_rng(self._seed)
        widths = [channels] + [self._filters] * self._num_layers + [self._output_channels]
        pieces = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            if i == len(widths) - 2 and self._zero_init_output:
                kernel = np.zeros([3, 3, cin, cout])
            else:
                limit = np.sqrt(6.0 / (9 * (cin + cout)))
                kernel = rng.uniform(-limit, limit, size=[3, 3, cin, cout])
            pieces += [kernel.ravel(), np.zeros([cout])]
            self._shapes += [(3, 3, cin, cout), (cout,)]
        self.params = make_variable(np.concatenate(pieces), "params", dtype)
        self._built_for = (channels, dtype)

    def __call__(self, img):
        img = tf.convert_to_tensor(img)
        if img.shape.rank is None or img.shape.rank < 3 or None in img.shape[-3:]:
            raise ValueError(f"ConvNet {self.name}: expected images [..., H, W, C] with a static "
                             f"image shape, got {img.shape}.")
        h, w, c = img.shape[-3:]
        if self._built_for is None:
            self._build(c, img.dtype)
        elif self._built_for != (c, img.dtype):
            raise ValueError(f"ConvNet {self.name}: built for {self._built_for[0]} channels and "
                             f"dtype {self._built_for[1].name}, got {c} and {img.dtype.name}.")
        flat = tf.split(tf.convert_to_tensor(self.params),
                        [int(np.prod(s)) for s in self._shapes])
        tensors = [tf.reshape(t, s) for t, s in zip(flat, self._shapes)]
        batch = tf.shape(img)[:-3]
        out = tf.reshape(img, [-1, h, w, c])
        for i in range(0, len(tensors), 2):
            out = tf.nn.conv2d(out, tensors[i], 1, "SAME") + tensors[i + 1]
            if i < len(tensors) - 2:
                out = tf.nn.relu(out)
        return tf.reshape(out, tf.concat([batch, [h, w, self._output_channels]], axis=0))


__all__ = ["ConvNet", "MADE", "MLP", "concat_conditions", "made_degrees"]
__dir__ = public_dir(__all__)
