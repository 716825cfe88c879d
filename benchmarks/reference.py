"""TFP's built-in flows, built the way a TFP user writes them today (the reference models).

* ``realnvp``: ``tfb.RealNVP`` couplings driven by a ``tf.Module`` MLP that mirrors
  ``tfb.real_nvp_default_template`` in TF2 (Glorot-uniform kernels, zero biases, ReLU,
  unbounded log-scale), with ``tfb.Permute`` between couplings. With ``tanh_log_scale`` the
  same network's log-scale is ``tanh(raw)`` (each coupling scales by e^±1 at most): the
  common stabilisation, which keeps ``exp(log_scale)`` from overflowing. With ``careful``
  the same flow as a careful TFP user writes it for 2-D inputs: no reshapes around the 2-D
  matmuls and a ``tfd.MultivariateNormalDiag`` base (issue 14's strongest reference).
* ``maf``: ``tfb.MaskedAutoregressiveFlow`` with ``tfb.AutoregressiveNetwork`` (MADE).
* ``realnvp_batchnorm``: ``realnvp`` with ``tfb.BatchNormalization`` after every coupling.
* ``lu_flow``: ``tfb.Shift ∘ tfb.ScaleMatvecLU`` layers (the counterpart of our ``LULinear``).

Every builder returns ``(train_dist, eval_dist)``; they share variables and differ only for
batch normalisation (batch statistics while training, moving averages when evaluating).
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb, tfd = tfp.bijectors, tfp.distributions


def _normal(event_size):
    return tfd.Sample(tfd.Normal(0.0, 1.0), [event_size])


def _permutation(event_size, rng):
    return [1, 0] if event_size == 2 else rng.permutation(event_size).astype(np.int32)


class ShiftAndLogScaleMLP(tf.Module):
    """``x0 [..., d] -> (shift, log_scale)``, each ``[..., output_units]``: a 2-D-matmul MLP.

    Same width and depth as ``tfp_flows``'s template; unlike it, every layer (also the last)
    is Glorot-uniform initialised and the log-scale is unbounded, as in
    ``tfb.real_nvp_default_template`` (``tanh_log_scale=True``: ``log_scale = tanh(raw)``).
    """

    def __init__(self, hidden_layers, seed, tanh_log_scale=False, reshape=True, name=None):
        super().__init__(name=name)
        self._tanh, self._reshape = tanh_log_scale, reshape
        self._hidden = list(hidden_layers)
        self._rng = np.random.default_rng(seed)
        self.kernels, self.biases = [], []

    def _build(self, d_in, d_out):
        widths = [d_in] + self._hidden + [2 * d_out]
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            kernel = self._rng.uniform(-limit, limit, [fan_in, fan_out]).astype(np.float32)
            self.kernels.append(tf.Variable(kernel, name="kernel"))
            self.biases.append(tf.Variable(tf.zeros([fan_out]), name="bias"))

    def __call__(self, x0, output_units, **kwargs):
        if not self.kernels:
            with tf.init_scope():
                self._build(int(x0.shape[-1]), int(output_units))
        batch = tf.shape(x0)[:-1]
        h = tf.reshape(x0, [-1, x0.shape[-1]]) if self._reshape else x0  # careful: [N, d] in
        for i, (k, b) in enumerate(zip(self.kernels, self.biases)):
            h = tf.matmul(h, k) + b
            if i < len(self.kernels) - 1:
                h = tf.nn.relu(h)
        if self._reshape:
            h = tf.reshape(h, tf.concat([batch, [2 * output_units]], 0))
        shift, log_scale = tf.split(h, 2, axis=-1)
        return shift, tf.tanh(log_scale) if self._tanh else log_scale


def _chain(layers, event_size, name, base=None):
    # `layers` is listed base -> data; tfb.Chain applies its list last-to-first.
    return tfd.TransformedDistribution(base or _normal(event_size),
                                       tfb.Chain(list(reversed(layers))), name=name)


def realnvp(event_size, num_layers=8, hidden_layers=(64, 64), batch_norm=False, seed=0,
            tanh_log_scale=False, careful=False):
    """Reference RealNVP; with ``batch_norm`` a ``tfb.BatchNormalization`` after each coupling,
    with ``tanh_log_scale`` the log-scale bounded by ``tanh``; ``careful``: see the module
    docstring (rank-2 batches only)."""
    import tf_keras

    rng = np.random.default_rng(seed)
    train_layers, eval_layers = [], []
    for i in range(num_layers):
        coupling = tfb.RealNVP(num_masked=event_size // 2,
                               shift_and_log_scale_fn=ShiftAndLogScaleMLP(
                                   hidden_layers, [seed, i], tanh_log_scale,
                                   reshape=not careful))
        train_layers.append(coupling)
        eval_layers.append(coupling)
        if batch_norm:
            layer = tf_keras.layers.BatchNormalization()
            train_layers.append(tfb.BatchNormalization(batchnorm_layer=layer, training=True))
            eval_layers.append(tfb.BatchNormalization(batchnorm_layer=layer, training=False))
        if i < num_layers - 1:
            permute = tfb.Permute(_permutation(event_size, rng))
            train_layers.append(permute)
            eval_layers.append(permute)
    name = "tfp_realnvp" + ("_bn" if batch_norm else "") + ("_tanh" if tanh_log_scale else "")
    base = tfd.MultivariateNormalDiag(tf.zeros([event_size])) if careful else None
    return (_chain(train_layers, event_size, name, base),
            _chain(eval_layers, event_size, name, base))


def maf(event_size, num_layers=8, hidden_layers=(64, 64), seed=0):
    """Reference masked autoregressive flow (MADE networks, ReLU, reversal between layers)."""
    import tf_keras

    rng = np.random.default_rng(seed)
    layers = []
    for i in range(num_layers):
        made = tfb.AutoregressiveNetwork(
            params=2, event_shape=[event_size], hidden_units=list(hidden_layers),
            activation="relu",
            kernel_initializer=tf_keras.initializers.GlorotUniform(seed=seed * 1000 + i))
        layers.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made))
        if i < num_layers - 1:
            layers.append(tfb.Permute(_permutation(event_size, rng)))
    dist = _chain(layers, event_size, "tfp_maf")
    return dist, dist


def lu_flow(event_size, num_layers=4, seed=0):
    """``num_layers`` × (``tfb.ScaleMatvecLU`` then a learnable ``tfb.Shift``), rotation init."""
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(num_layers):
        q, _ = np.linalg.qr(rng.normal(size=[event_size, event_size]))
        lower_upper, perm = tf.linalg.lu(tf.constant(q, tf.float32))
        layers.append(tfb.ScaleMatvecLU(tf.Variable(lower_upper, name="lower_upper"),
                                        tf.Variable(perm, trainable=False, name="permutation")))
        layers.append(tfb.Shift(tf.Variable(tf.zeros([event_size]), name="shift")))
    dist = _chain(layers, event_size, "tfp_lu")
    return dist, dist
