"""``nn.MADE`` computes its documented masked dense layers (the ``D ≤ 2`` first layer is
written as multiply-adds with the matmul's gradient: both are checked against NumPy)."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import nn


def _pieces(made):
    """The MADE's weights ``[W_1, b_1, ..., W_L, b_L, (V)]`` as NumPy arrays of their shapes."""
    sizes = [int(np.prod(s)) for s in made._shapes]
    flat = np.split(made.params.numpy(), np.cumsum(sizes)[:-1])
    return [p.reshape(s) for p, s in zip(flat, made._shapes)]


def _assert_autoregressive(made, jac):
    """``jac [N, D, P, D]``: output ``i`` does not depend on inputs of degree ``≥ i``'s."""
    degrees = made.input_degrees
    for i in range(made.event_size):
        for j in range(made.event_size):
            if degrees[j] >= degrees[i]:
                np.testing.assert_array_equal(jac[:, i, :, j], 0.0)


def _reference(made, x, c=None):
    """``h_l = relu((M_l ⊙ W_l) h_{l−1} + V_l c + b_l)``, the last layer without the relu."""
    pieces = _pieces(made)
    masks = made.masks()
    widths = [m.shape[1] for m in masks]
    context = (np.split(c @ pieces[-1], np.cumsum(widths)[:-1], axis=-1) if c is not None
               else [0.0] * len(masks))
    h = x
    for i, mask in enumerate(masks):
        h = h @ (pieces[2 * i] * mask) + pieces[2 * i + 1] + context[i]
        if i < len(masks) - 1:
            h = np.maximum(h, 0.0)
    return h.reshape(x.shape[0], made.event_size, made.params_per_element)


@pytest.mark.parametrize("event_size, context_size", [(1, None), (2, None), (2, 3), (3, None)])
def test_made_matches_its_masked_dense_layers_and_their_gradient(event_size, context_size):
    rng = np.random.default_rng(event_size)
    made = nn.MADE(event_size, 2, hidden_layers=[5, 4], conditional_size=context_size, seed=0)
    x = rng.normal(size=[7, event_size])
    c = None if context_size is None else rng.normal(size=[7, context_size])
    made(tf.constant(x), None if c is None else tf.constant(c))  # builds (zero last layer)
    made.params.assign(rng.normal(size=made.params.shape))
    out = made(tf.constant(x), None if c is None else tf.constant(c))
    np.testing.assert_allclose(out.numpy(), _reference(made, x, c), rtol=1e-10, atol=1e-12)
    # The weights' and the input's gradients against central differences of the reference.
    weights = rng.normal(size=out.shape)
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        loss = tf.reduce_sum(made(xt, None if c is None else tf.constant(c)) * weights)
    grad_params, grad_x = tape.gradient(loss, [made.params, xt])
    flat = made.params.numpy()

    def reference_loss(params, inputs):
        made.params.assign(params)
        return float(np.sum(_reference(made, inputs, c) * weights))

    h = 1e-6
    for j in rng.choice(flat.size, 20, replace=False):
        e = np.zeros_like(flat)
        e[j] = h
        fd = (reference_loss(flat + e, x) - reference_loss(flat - e, x)) / (2 * h)
        np.testing.assert_allclose(grad_params.numpy()[j], fd, rtol=1e-5, atol=1e-7)
    made.params.assign(flat)
    for j in range(event_size):
        e = np.zeros_like(x)
        e[:, j] = h
        fd = [(reference_loss(flat, x + e * (np.arange(7) == r)[:, None])
               - reference_loss(flat, x - e * (np.arange(7) == r)[:, None])) / (2 * h)
              for r in range(7)]
        np.testing.assert_allclose(grad_x.numpy()[:, j], fd, rtol=1e-5, atol=1e-7)


def test_made_uniform_hidden_biases_keep_it_autoregressive_and_zero_at_start():
    """``bias_init="uniform"``: hidden biases in ``±1/√fan_in``, not all 0; the output (its
    layer zero) starts at 0; output ``i`` never depends on inputs of degree ``≥ i``'s."""
    made = nn.MADE(3, 2, hidden_layers=[8, 8], seed=0, bias_init="uniform")
    x = tf.constant(np.random.default_rng(0).normal(size=[5, 3]))
    np.testing.assert_array_equal(made(x).numpy(), 0.0)
    flat = made.params.numpy()
    pieces = _pieces(made)
    fan_ins = [3, 8]
    for bias, fan_in in zip(pieces[1:4:2], fan_ins):
        assert np.any(bias != 0.0) and np.all(np.abs(bias) <= 1 / np.sqrt(fan_in))
    np.testing.assert_array_equal(pieces[5], 0.0)  # the output layer's bias
    made.params.assign(np.random.default_rng(1).normal(size=flat.shape))
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        out = made(xt)
    jac = tape.batch_jacobian(out, xt).numpy()  # [N, D, P, D]
    _assert_autoregressive(made, jac)
    assert np.any(jac != 0.0)
    with pytest.raises(ValueError, match="bias_init"):
        nn.MADE(3, 2, bias_init="normal")


def test_made_uniform_init_draws_every_weight_within_its_fan_in_bound():
    """``kernel_init="uniform", zero_init_output=False`` (flows' ``network_init="uniform"``):
    every kernel and bias in ``±1/√fan_in`` (a context weight: ``fan_in = h_{l−1} + C``),
    none all zero, the output not zero, and still autoregressive."""
    made = nn.MADE(3, 2, hidden_layers=[8, 8], conditional_size=2, seed=0, bias_init="uniform",
                   kernel_init="uniform", zero_init_output=False)
    x = tf.constant(np.random.default_rng(0).normal(size=[5, 3]))
    c = tf.constant(np.random.default_rng(1).normal(size=[5, 2]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = made(x, conditional_input=c)
    assert np.all(out.numpy() != 0.0)
    pieces = _pieces(made)
    fan_ins = [3, 3, 8, 8, 8, 8]  # W_1, b_1, W_2, b_2, W_3, b_3
    for piece, fan_in in zip(pieces[:6], fan_ins):
        bound = 1 / np.sqrt(fan_in)
        assert np.all(np.abs(piece) <= bound) and np.abs(piece).max() > 0.5 * bound
    context = pieces[6]  # [C, 8 + 8 + 6]
    for block, fan_in in zip(np.split(context, [8, 16], axis=1), [3 + 2, 8 + 2, 8 + 2]):
        bound = 1 / np.sqrt(fan_in)
        assert np.all(np.abs(block) <= bound) and np.abs(block).max() > 0.5 * bound
    glorot = nn.MADE(3, 2, hidden_layers=[8, 8], seed=0)
    glorot(x)
    assert np.abs(_pieces(glorot)[2]).max() > 1 / np.sqrt(8)  # W_2
    _assert_autoregressive(made, tape.batch_jacobian(out, x).numpy())
    with pytest.raises(ValueError, match="kernel_init"):
        nn.MADE(3, 2, kernel_init="normal")
