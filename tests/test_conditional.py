"""Conditional flows p(x | c) in FlowModel: fit(x, c), datasets of (x, c), log_prob(x, c),
sample(n, c), train(); a missing or wrong-sized context is refused before training.

The plumbing is tested with a tiny conditional bijector defined here (an affine shift
``y = x + c·W``) so that it does not depend on a particular builder; then every builder that
takes ``context_size`` trains under FlowModel and agrees with its TFP distribution."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows import flows, make_variable
from tfp_flows.training import FlowModel, train

tfb, tfd = tfp.bijectors, tfp.distributions
D, C = 2, 3


class ConditionalShift(tfb.Bijector):
    """``y = x + c W`` (log-det 0); ``conditional_input`` is ``c [..., C]``."""

    def __init__(self, event_size, context_size, name="conditional_shift"):
        self.context_size = context_size
        with tf.name_scope(name) as scope:
            self.w = make_variable(np.zeros([context_size, event_size]), "w")
            super().__init__(forward_min_event_ndims=1, is_constant_jacobian=True, name=scope)

    def _shift(self, c):
        return tf.linalg.matvec(self.w, c, transpose_a=True)

    def _forward(self, x, conditional_input=None):
        return x + self._shift(conditional_input)

    def _inverse(self, y, conditional_input=None):
        return y - self._shift(conditional_input)

    def _forward_log_det_jacobian(self, x, conditional_input=None):
        return tf.zeros([], x.dtype)


def conditional_flow():
    base = tfd.Sample(tfd.Normal(0.0, 1.0), [D])
    return tfd.TransformedDistribution(base, tfb.Chain([ConditionalShift(D, C)]))


W_TRUE = np.array([[2.0, 0.0], [0.0, -2.0], [1.0, 1.0]], np.float32)


def data(n=1024, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n, C)).astype("float32")
    return (c @ W_TRUE + rng.normal(size=(n, D))).astype("float32"), c


def test_fit_with_array_context_learns_p_x_given_c():
    x, c = data()
    model = FlowModel(conditional_flow())
    assert model.context_size == C
    model.compile(keras.optimizers.Adam(5e-2))
    before = float(-tf.reduce_mean(model.log_prob(x, c)))
    model.fit(x, c, batch_size=128, epochs=15, verbose=0)
    after = float(-tf.reduce_mean(model.log_prob(x, c)))
    assert after < before - 1.0
    np.testing.assert_allclose(model.distribution.bijector.bijectors[0].w.numpy(), W_TRUE,
                               atol=0.2)
    # sample(n, c) with one context [C] and with one per row [n, C]
    s = model.sample(4000, c[0], seed=0).numpy()
    np.testing.assert_allclose(s.mean(0), c[0] @ W_TRUE, atol=0.2)
    assert model.sample(5, c[:5], seed=1).shape == (5, D)
    # evaluate / predict take the context too
    loss = model.evaluate(x, c, batch_size=256, verbose=0)
    np.testing.assert_allclose(loss[0] if isinstance(loss, list) else loss, after, rtol=1e-4)
    np.testing.assert_allclose(model.predict((x[:10], c[:10]), verbose=0),
                               model.log_prob(x[:10], c[:10]).numpy(), rtol=1e-5)


def test_dataset_of_x_c_pairs_and_train():
    x, c = data()
    ds = tf.data.Dataset.from_tensor_slices((x, c)).batch(128)
    model = FlowModel(conditional_flow())
    model.compile(keras.optimizers.Adam(5e-2))
    model.fit(ds, epochs=10, verbose=0)
    np.testing.assert_allclose(model.distribution.bijector.bijectors[0].w.numpy(), W_TRUE,
                               atol=0.3)

    dist = conditional_flow()
    hist = train(dist, x, keras.optimizers.Adam(5e-2), 100, batch_size=128, context=c,
                 validation_data=(x[:256], c[:256]), validation_every=50, progress=False)
    assert hist["steps"] == 100 and hist["val_step"] == [50, 100]
    np.testing.assert_allclose(dist.bijector.bijectors[0].w.numpy(), W_TRUE, atol=0.3)
    dist = conditional_flow()
    train(dist, ds, keras.optimizers.Adam(5e-2), 60, progress=False)
    np.testing.assert_allclose(dist.bijector.bijectors[0].w.numpy(), W_TRUE, atol=0.3)


def test_missing_or_wrong_context_is_refused_before_training():
    x, c = data(64)
    model = FlowModel(conditional_flow())
    model.compile(keras.optimizers.Adam(1e-2))
    with pytest.raises(ValueError, match="conditional \\(context_size=3\\).*context `y`"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match="event size 2.*models events of size 3|size 3"):
        model.fit(x, c[:, :2], verbose=0)
    with pytest.raises(ValueError, match="64 examples but the context `y` has 32"):
        model.fit(x, c[:32], verbose=0)
    with pytest.raises(ValueError, match="dataset must yield \\(x, c\\)"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), verbose=0)
    with pytest.raises(ValueError, match="contexts of size 3"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, c[:, :1])).batch(8), verbose=0)
    with pytest.raises(ValueError, match="pass the context `c`"):
        model.log_prob(x)
    with pytest.raises(ValueError, match="contexts of size 3"):
        model.sample(3, np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="must have shape \\[3\\] or \\[5, 3\\]"):
        model.sample(5, c[:4])
    with pytest.raises(ValueError, match="context"):
        train(conditional_flow(), x, keras.optimizers.Adam(1e-2), 5, progress=False)
    assert int(model.optimizer.iterations) == 0
    np.testing.assert_array_equal(model.distribution.bijector.bijectors[0].w.numpy(), 0.0)


def test_unconditional_flow_refuses_an_array_y_and_ignores_a_dataset_y():
    x, c = data(256)
    model = FlowModel(tfp_flows.flows.realnvp(D, 2, [8], seed=0))
    assert model.context_size is None
    model.compile(keras.optimizers.Adam(1e-2))
    with pytest.raises(ValueError, match="unconditional: `fit\\(x, y\\)`"):
        model.fit(x, c, verbose=0)
    with pytest.raises(ValueError, match="unconditional: it takes no context"):
        model.log_prob(x, c)
    model.fit(tf.data.Dataset.from_tensor_slices((x, c)).batch(64), epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 4


CONDITIONAL_BUILDERS = sorted(name for name, builder in flows.BUILDERS.items()
                              if "context_size" in inspect.signature(builder).parameters)


@pytest.mark.parametrize("builder", CONDITIONAL_BUILDERS)
def test_builder_with_context_trains_and_matches_its_tfp_distribution(builder):
    x, c = data(512)
    dist = flows.BUILDERS[builder](D, 2, hidden_layers=[8], context_size=C, seed=0)
    model = FlowModel(dist)
    assert model.context_size == C and dist.flow_config["context_size"] == C
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)  # XLA: tested elsewhere
    before = float(-tf.reduce_mean(model.log_prob(x, c)))
    history = model.fit(x, c, batch_size=128, epochs=3, verbose=0)
    assert int(model.optimizer.iterations) == 12
    after = float(-tf.reduce_mean(model.log_prob(x, c)))
    assert np.isfinite(history.history["loss"]).all() and after < before, (before, after)
    # FlowModel's densities and samples are the TFP distribution's, context routed by
    # flows.context_kwargs.
    expected = dist.log_prob(tf.constant(x[:64]),
                             bijector_kwargs=flows.context_kwargs(dist, tf.constant(c[:64])))
    np.testing.assert_allclose(model.log_prob(x[:64], c[:64]).numpy(), expected.numpy(),
                               rtol=1e-5, atol=1e-5)
    seed = tf.constant([4, 5], tf.int32)
    expected = dist.sample(64, seed=seed,
                           bijector_kwargs=flows.context_kwargs(dist, tf.constant(c[:64])))
    np.testing.assert_allclose(model.sample(64, c[:64], seed=seed).numpy(), expected.numpy(),
                               rtol=1e-5, atol=1e-5)
    one = model.sample(64, c[0], seed=seed).numpy()  # one context [C] for every sample
    expected = dist.sample(64, seed=seed, bijector_kwargs=flows.context_kwargs(
        dist, tf.constant(np.repeat(c[:1], 64, axis=0))))
    np.testing.assert_allclose(one, expected.numpy(), rtol=1e-5, atol=1e-5)
    # The trained flow uses its context: another context gives other densities.
    shifted = model.log_prob(x[:64], c[:64] + 1.0).numpy()
    assert np.max(np.abs(shifted - model.log_prob(x[:64], c[:64]).numpy())) > 1e-2
