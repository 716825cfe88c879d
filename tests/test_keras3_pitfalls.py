"""The Keras 3 pitfalls ``python -m tfp_flows.pitfalls`` shows, and tfp_flows' fixes of them."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows import bijectors as fb
from tfp_flows import pitfalls

tfb, tfd = tfp.bijectors, tfp.distributions


def _data():
    x = np.random.default_rng(0).normal(size=(256, 2)).astype("float32")
    x[:, 1] = x[:, 0] ** 2 / 4 + 0.3 * x[:, 1]
    return x


def _dist(template):
    return tfd.TransformedDistribution(tfp_flows.flows.standard_normal(2),
                                       tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=template))


def test_tfp_default_template_is_invisible_but_ours_is_tracked():
    ours = tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=fb.real_nvp_template([8, 8], seed=0))
    ours.forward(_data())
    # One flat variable: 2 layers of kernel+bias (1·8+8, 8·8+8; the masked input is x[:1]),
    # the output layer (8·2+2) and the learnable log-scale bound (1).
    (params,) = ours.trainable_variables
    assert params.shape == (16 + 72 + 18 + 1,)


def test_gradient_step_changes_log_prob():
    dist = _dist(fb.real_nvp_template([8, 8], seed=0))
    x = _data()
    before = dist.log_prob(tf.constant(x)).numpy()
    opt = keras.optimizers.Adam(1e-2)
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(tf.constant(x)))
        grads = tape.gradient(loss, dist.trainable_variables)
        opt.apply_gradients(zip(grads, dist.trainable_variables))
    after = dist.log_prob(tf.constant(x)).numpy()
    assert np.mean(after) > np.mean(before) + 1e-3


def test_conditioning_input_reaches_the_template():
    template = fb.real_nvp_template([8], seed=0)
    bijector = tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=template)
    x = tf.constant(_data()[:4])
    cond_a, cond_b = tf.zeros([4, 3]), tf.ones([4, 3])
    bijector.forward(x, conditional_input=cond_a)
    for v in template.trainable_variables:
        v.assign(v + 0.1)
    y_a = bijector.forward(tf.constant(_data()[:4]), conditional_input=cond_a)
    y_b = bijector.forward(tf.constant(_data()[:4]), conditional_input=cond_b)
    assert not np.allclose(y_a.numpy(), y_b.numpy())
    x_back = bijector.inverse(tf.constant(y_b.numpy()), conditional_input=cond_b)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-5)


def test_the_demonstration_shows_each_pitfall_and_its_fix():
    # The TFP side is a canary: if TFP or Keras fix a pitfall, the README and the demo change.
    assert pitfalls.template_variables() == {"tfp": 0, "tfp_flows": 1}
    layer = pitfalls.keras_layer_as_template()
    assert layer["tfp"].startswith("ValueError") and layer["tfp_flows"] == "worked"
    runs = pitfalls.keras_model_training(epochs=2)
    assert runs["tfp"]["model_weights"] == 0 and runs["tfp"]["distribution_variables"] == 1
    # Flat up to float32 rounding of a mean over reshuffled batches (nothing is trained).
    assert runs["tfp"]["losses"][-1] == pytest.approx(runs["tfp"]["losses"][0], rel=1e-6)
    ours = runs["tfp_flows"]
    assert ours["model_weights"] == ours["distribution_variables"] > 0
    assert ours["losses"][-1] < ours["losses"][0] - 0.05
