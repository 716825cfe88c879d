"""The three ways TensorFlow Probability and Keras 3 fail together, each next to tfp_flows.

Run ``python -m tfp_flows.pitfalls`` (under a minute on a CPU). With TensorFlow ≥ 2.16,
``tf.keras`` is Keras 3, and

1. ``tfb.real_nvp_default_template`` builds TF1-style variables that TF2 cannot see:
   ``bijector.trainable_variables == ()``, so nothing can train them;
2. a Keras 3 layer cannot be a ``shift_and_log_scale_fn``: ``tfb.RealNVP`` passes
   ``output_units`` positionally and Keras 3 layers take only tensors positionally;
3. a ``keras.Model`` around a TFP distribution whose parameters are ``tf.Variable``\\ s sees no
   weights, so ``fit()`` runs and trains nothing.

Each function below builds both situations and returns what it observed; ``main`` prints it.
tfp_flows' answer to all three is one ownership design: its parameters are ``keras.Variable``\\ s
whose ``tf.Variable`` the bijector holds (``tfp_flows.make_variable``).
"""

import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import flows
from tfp_flows._namespace import public_dir
from tfp_flows.bijectors import real_nvp_template
from tfp_flows.training import FlowModel

tfb, tfd = tfp.bijectors, tfp.distributions


def banana(n: int = 1024, seed: int = 0) -> np.ndarray:
    """``x1 ~ N(0, 1)``, ``x2 = x1²/4 + 0.3·ε``: float32 ``[n, 2]``."""
    x = np.random.default_rng(seed).normal(size=(n, 2)).astype("float32")
    x[:, 1] = x[:, 0] ** 2 / 4 + 0.3 * x[:, 1]
    return x


def template_variables() -> dict:
    """Pitfall 1: trainable variables of a ``tfb.RealNVP`` after one forward pass.

    Returns ``{"tfp": n, "tfp_flows": n}`` for ``tfb.real_nvp_default_template([32, 32])`` and
    ``tfp_flows.bijectors.real_nvp_template([32, 32])``.
    """
    counts = {}
    for key, template in (("tfp", tfb.real_nvp_default_template([32, 32])),
                          ("tfp_flows", real_nvp_template([32, 32], seed=0))):
        bijector = tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=template)
        with warnings.catch_warnings():  # the TF1 template warns that tf.layers is deprecated
            warnings.simplefilter("ignore", UserWarning)
            bijector.forward(tf.constant(banana(8)))
        counts[key] = len(bijector.trainable_variables)
    return counts


class _KerasNet(keras.layers.Layer):
    """A Keras 3 layer written as a ``shift_and_log_scale_fn``."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x, output_units=None):
        shift, log_scale = tf.split(self.dense(x), 2, axis=-1)
        return shift, log_scale


def keras_layer_as_template() -> dict:
    """Pitfall 2: ``tfb.RealNVP(shift_and_log_scale_fn=...)`` with a Keras 3 layer.

    Returns ``{"tfp": "<error>" or "worked", "tfp_flows": "worked"}``; the tfp_flows side uses
    ``real_nvp_template``, which takes ``output_units`` positionally as ``tfb.RealNVP`` calls it.
    """
    observed = {}
    for key, fn in (("tfp", _KerasNet()), ("tfp_flows", real_nvp_template([32], seed=0))):
        try:
            tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=fn).forward(tf.constant(banana(8)))
            observed[key] = "worked"
        except Exception as error:  # noqa: BLE001 - the demonstration reports what happens
            observed[key] = f"{type(error).__name__}: {str(error).split('. ')[0]}"
    return observed


class _Mlp(tf.Module):
    """A ``shift_and_log_scale_fn`` whose parameters are plain ``tf.Variable``\\ s."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([1, 2], seed=[0, 0]) * 0.1)

    def __call__(self, x0, output_units, **kwargs):
        shift, log_scale = tf.split(x0 @ self.w, 2, axis=-1)
        return shift, log_scale


class _NaiveModel(keras.Model):
    """What one writes first: a ``keras.Model`` whose ``call`` is the distribution's NLL."""

    def __init__(self, dist):
        super().__init__(name="naive_model")
        self.dist = dist

    def call(self, x):
        return -self.dist.log_prob(x)


def keras_model_training(epochs: int = 3) -> dict:
    """Pitfall 3: ``keras.Model.fit`` on a TFP distribution, then ``FlowModel.fit``.

    Returns, for ``"tfp"`` (a ``keras.Model`` around a ``tfb.RealNVP`` with a ``tf.Variable``
    network) and ``"tfp_flows"`` (``FlowModel(flows.realnvp(2, num_layers=4))``), a dict with
    the distribution's trainable variables, the model's trainable weights and the loss of
    each epoch (mean negative log-likelihood, nats).
    """
    x = banana()
    dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [2]),
                                       tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=_Mlp()))
    naive = _NaiveModel(dist)
    naive.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=lambda _, nll: tf.reduce_mean(nll))
    history = naive.fit(x, np.zeros(len(x)), epochs=epochs, batch_size=256, verbose=0)
    observed = {"tfp": {"distribution_variables": len(dist.trainable_variables),
                        "model_weights": len(naive.trainable_weights),
                        "losses": history.history["loss"]}}

    flow = flows.realnvp(2, num_layers=4, hidden_layers=[32, 32], seed=0)
    model = FlowModel(flow)
    model.compile(keras.optimizers.Adam(1e-2))
    history = model.fit(x, batch_size=256, epochs=epochs, verbose=0)
    observed["tfp_flows"] = {"distribution_variables": len(flow.trainable_variables),
                             "model_weights": len(model.trainable_weights),
                             "losses": history.history["loss"]}
    return observed


def main() -> None:
    """Prints each pitfall as TFP alone shows it and as tfp_flows handles it."""
    print(f"tensorflow {tf.__version__} | tensorflow-probability {tfp.__version__} | "
          f"keras {keras.__version__}")
    counts = template_variables()
    print("1. RealNVP's trainable_variables after a forward pass:")
    print(f"   tfb.real_nvp_default_template([32, 32]):  {counts['tfp']}")
    print(f"   tfp_flows.bijectors.real_nvp_template:     {counts['tfp_flows']}"
          " (all weights of its network in one flat variable)")
    observed = keras_layer_as_template()
    print("2. A Keras 3 layer as shift_and_log_scale_fn:")
    print(f"   keras.layers.Layer:                        {observed['tfp']}")
    print(f"   tfp_flows.bijectors.real_nvp_template:     {observed['tfp_flows']}")
    print("3. fit() on a distribution (3 epochs on a 2-D banana):")
    runs = keras_model_training()
    for key, label in (("tfp", "keras.Model around tfb.RealNVP"),
                       ("tfp_flows", "tfp_flows.FlowModel")):
        run = runs[key]
        print(f"   {label + ':':<42} {run['distribution_variables']} distribution variables, "
              f"{run['model_weights']} model weights, losses "
              + ", ".join(f"{v:.4f}" for v in run["losses"]))


__all__ = ["banana", "keras_layer_as_template", "keras_model_training", "main",
           "template_variables"]
__dir__ = public_dir(__all__)

if __name__ == "__main__":
    main()
