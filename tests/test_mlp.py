"""``nn.MLP`` computes its documented dense layers; the output layer of width ``≤ 2`` has a
gradient written as multiply-adds and sums (``nn._narrow_output_matmul``): both the values and
the gradients are checked against NumPy and central differences."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import nn


def _reference(mlp, x):
    """``relu(... relu(x W_1 + b_1) ...) W_L + b_L`` from the flat parameter vector."""
    h = x
    layers = [(w.numpy(), b.numpy()) for w, b in mlp.weights()]
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


@pytest.mark.parametrize("input_units, output_units", [(1, 1), (1, 2), (3, 2), (2, 3)])
def test_mlp_matches_its_dense_layers_and_their_gradient(input_units, output_units):
    rng = np.random.default_rng(10 * input_units + output_units)
    mlp = nn.MLP([5, 4], output_units, seed=0)
    x = rng.normal(size=[2, 7, input_units])  # batch axes are flattened and restored
    mlp(tf.constant(x))  # builds (zero last layer)
    mlp.params.assign(rng.normal(size=mlp.params.shape))
    out = mlp(tf.constant(x))
    assert out.shape == (2, 7, output_units)
    np.testing.assert_allclose(out.numpy(), _reference(mlp, x), rtol=1e-10, atol=1e-12)

    weights = rng.normal(size=out.shape)
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        loss = tf.reduce_sum(mlp(xt) * weights)
    grad_params, grad_x = tape.gradient(loss, [mlp.params, xt])
    flat = mlp.params.numpy()

    def reference_loss(params, inputs):
        mlp.params.assign(params)
        return float(np.sum(_reference(mlp, inputs) * weights))

    h = 1e-6
    for j in range(flat.size):  # every weight, the output layer's included
        e = np.zeros_like(flat)
        e[j] = h
        fd = (reference_loss(flat + e, x) - reference_loss(flat - e, x)) / (2 * h)
        np.testing.assert_allclose(grad_params.numpy()[j], fd, rtol=1e-5, atol=1e-7)
    mlp.params.assign(flat)
    for index in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[index] = h
        fd = (reference_loss(flat, x + e) - reference_loss(flat, x - e)) / (2 * h)
        np.testing.assert_allclose(grad_x.numpy()[index], fd, rtol=1e-5, atol=1e-7)


def test_narrow_output_gradient_equals_the_matmul_gradient_under_xla():
    """In a compiled float32 step the gradient matches the plain matmul's to rounding."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=[512, 64]), tf.float32)
    kernel = tf.constant(rng.normal(size=[64, 2]), tf.float32)
    g = tf.constant(rng.normal(size=[512, 2]), tf.float32)

    def grads(matmul):
        @tf.function(jit_compile=True)
        def f(x, kernel):
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                loss = tf.reduce_sum(matmul(x, kernel) * g)
            return tape.gradient(loss, [x, kernel])
        return [t.numpy() for t in f(x, kernel)]

    narrow, plain = grads(nn._narrow_output_matmul), grads(tf.matmul)
    np.testing.assert_allclose(narrow[0], plain[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(narrow[1], plain[1], rtol=1e-5, atol=1e-4)
