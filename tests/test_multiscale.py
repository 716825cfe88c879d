"""Squeeze, image masks and the multi-scale RealNVP's structure, shapes and bad input.

Round trips and log-dets of ``MultiScaleRealNVP`` are covered by the shared contract suite.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows import bijectors as fb
from tfp_flows import flows
from tfp_flows.bijectors import multiscale
from tfp_flows.bijectors.masks import channel_mask, checkerboard_mask, squeeze, unsqueeze
from tfp_flows.training import FlowModel, execution, slow_xla


def test_squeeze_moves_each_2x2_block_into_channels():
    x = np.random.default_rng(0).normal(size=[3, 4, 6, 2])
    out = squeeze(x).numpy()
    assert out.shape == (3, 2, 3, 8)
    for i in range(2):
        for j in range(3):
            for a in range(2):
                for b in range(2):
                    np.testing.assert_array_equal(out[:, i, j, (2 * a + b) * 2:(2 * a + b + 1) * 2],
                                                  x[:, 2 * i + a, 2 * j + b, :])
    np.testing.assert_array_equal(unsqueeze(out).numpy(), x)


def test_squeeze_and_masks_reject_bad_shapes():
    with pytest.raises(ValueError, match="must be even.*7, 8, 1"):
        squeeze(np.zeros([2, 7, 8, 1]))
    with pytest.raises(ValueError, match="expected images"):
        squeeze(np.zeros([8, 8]))
    with pytest.raises(ValueError, match="multiple of 4"):
        unsqueeze(np.zeros([1, 2, 2, 6]))
    with pytest.raises(ValueError, match="channels must be even"):
        channel_mask((4, 4, 3))
    with pytest.raises(ValueError, match="parity"):
        checkerboard_mask((4, 4, 1), parity=2)
    with pytest.raises(ValueError, match="image_shape"):
        checkerboard_mask((4, 4))


def test_masks_alternate_and_halve():
    cb = checkerboard_mask((4, 4, 2), 0)
    assert cb.sum() == 16 and cb[0, 0, 0] and not cb[0, 1, 0] and cb[1, 1, 1]
    np.testing.assert_array_equal(checkerboard_mask((4, 4, 2), 1), ~cb)
    ch = channel_mask((2, 2, 4), 0)
    assert ch[..., :2].all() and not ch[..., 2:].any()
    np.testing.assert_array_equal(channel_mask((2, 2, 4), 1), ~ch)


def test_layout_partitions_the_active_entries_and_factors_out_half_per_scale():
    plan, factored = multiscale.multiscale_layout((8, 8, 1), num_scales=2,
                                                  couplings_per_scale=3, final_couplings=4)
    assert [f.size for f in factored] == [32, 16]
    assert len(plan) == 2 * (3 + 3) + 4
    assert [k for k, _, _, _ in plan[:6]] == ["checkerboard"] * 3 + ["channel"] * 3
    active = set(range(64))
    for i, (_, cond, trans, _) in enumerate(plan):
        if i in (6, 12):  # after each scale's factor-out
            active -= set(factored[i // 6 - 1].tolist())
        assert set(cond.tolist()) | set(trans.tolist()) == active
        assert not set(cond.tolist()) & set(trans.tolist())
        assert len(cond) == len(trans)
    # The first checkerboard coupling conditions on one colour of the 8×8 board.
    board = np.zeros(64, bool)
    board[plan[0][1]] = True
    np.testing.assert_array_equal(board.reshape(8, 8), checkerboard_mask((8, 8, 1), 0)[..., 0])
    # Consecutive couplings of one kind alternate which half they transform.
    assert set(plan[0][2].tolist()) == set(plan[1][1].tolist())


@pytest.mark.parametrize("shape, scales, message", [
    ((7, 8, 1), 1, "divisible by 2\\*\\*num_scales"),
    ((8, 8, 1), 3, "too small for 3 scales"),
    ((8, 8), 1, "image_shape"),
    (8, 1, "image_shape"),
])
def test_bad_image_shapes_are_named(shape, scales, message):
    with pytest.raises(ValueError, match=message):
        multiscale.MultiScaleRealNVP(shape, num_scales=scales, hidden_layers=(4,))


def _small(seed=0):
    return flows.multiscale_realnvp((8, 8, 1), num_scales=2, couplings_per_scale=2,
                                         final_couplings=2, hidden_layers=(8,), seed=seed)


def _perturb(variables, seed):
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(v + 0.1 * rng.normal(size=v.shape).astype(v.dtype.as_numpy_dtype))


def test_log_prob_sample_shapes_and_variables():
    dist = _small()
    x = tf.random.normal([5, 64], seed=1)
    lp = dist.log_prob(x)
    assert lp.shape == (5,)
    # Zero-initialised couplings: a fresh flow is the standard normal.
    np.testing.assert_allclose(lp.numpy(), tfp_flows.flows.standard_normal(64).log_prob(x).numpy(),
                               rtol=1e-5)
    assert dist.sample([2, 3], seed=[1, 2]).shape == (2, 3, 64)
    variables = dist.trainable_variables
    assert len(variables) == len(dist.bijector.couplings)  # one flat MLP variable per coupling
    assert all(tfp_flows.keras_variable_of(v).trainable for v in variables)
    assert dist.flow_config["builder"] == "multiscale_realnvp"
    rebuilt = flows.build(**dist.flow_config)
    np.testing.assert_allclose(rebuilt.log_prob(tf.identity(x)).numpy(), lp.numpy(), rtol=1e-6)


def test_former_module_name_still_imports():
    from tfp_flows import multiscale as former
    assert former.MultiScaleRealNVP is multiscale.MultiScaleRealNVP
    assert former.multiscale_realnvp is flows.multiscale_realnvp


def test_factored_out_latents_depend_only_on_their_scale():
    dist = _small(seed=3)
    dist.log_prob(tf.zeros([1, 64]))
    bij = dist.bijector
    _perturb(dist.trainable_variables, 0)
    x = tf.random.normal([4, 64], seed=2)
    z = bij.inverse(tf.identity(x)).numpy()
    # Couplings after the first scale (index >= 4 of 2+2 per scale) do not touch its latents.
    later = [v for c in bij.couplings[4:] for v in c.trainable_variables]
    _perturb(later, 1)
    z2 = bij.inverse(tf.identity(x)).numpy()
    first = bij.factored_out[0]
    np.testing.assert_array_equal(z2[:, first], z[:, first])
    rest = np.setdiff1d(np.arange(64), first)
    assert np.abs(z2[:, rest] - z[:, rest]).max() > 1e-3


def test_wrong_event_size_is_named():
    dist = _small()
    with pytest.raises(ValueError, match="event size 64"):
        dist.log_prob(tf.zeros([2, 63]))
    with pytest.raises(ValueError, match="overlap"):
        fb.Coupling(4, split=([0, 1], [1, 2]))
    with pytest.raises(ValueError, match="`conditioning` indices must be non-empty"):
        fb.Coupling(4, split=([], [1, 2]))
    with pytest.raises(ValueError, match="`transformed` indices must be non-empty"):
        fb.Coupling(4, split=([0, 1], []), context_size=2)
    with pytest.raises(ValueError, match="`network` must be 'mlp' or 'conv'"):
        multiscale.MultiScaleRealNVP((8, 8, 1), network="resnet")
    with pytest.raises(ValueError, match="Unknown transformer 'cubic'"):
        multiscale.MultiScaleRealNVP((8, 8, 1), transformer="cubic")


def _conv_flow(transformer):
    return flows.multiscale_realnvp(couplings_per_scale=1, final_couplings=1, hidden_layers=(1,),
                                    network="conv", filters=4, transformer=transformer, seed=0)


@pytest.mark.parametrize("gpu", [False, True])
def test_compile_defaults_to_graph_mode_for_conv_flows_on_cpu(gpu, monkeypatch):
    """A flow with a convolutional conditioner trains faster in graph mode on CPU
    (``training.slow_xla``): compile's default picks it there and ``jit_compile=True`` warns;
    with a GPU (not measured) and for other flows the default stays XLA, silently."""
    devices = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: ["/GPU:0"] if gpu and kind == "GPU" else devices(kind))
    for transformer in ("affine", "spline"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            for jit in (None, "auto", False):
                m = FlowModel(_conv_flow(transformer))
                m.compile(keras.optimizers.Adam(), jit_compile=jit)
                assert m.jit_compile is (gpu and jit is not False)
        m = FlowModel(_conv_flow(transformer))
        if gpu:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)
                m.compile(keras.optimizers.Adam(), jit_compile=True)
        else:
            with pytest.warns(UserWarning, match="convolutional conditioner: on CPU such flows "
                                                 "train faster in graph mode"):
                m.compile(keras.optimizers.Adam(), jit_compile=True)
        assert m.jit_compile is True
    m = FlowModel(flows.realnvp(2, 2, [4], seed=0))
    m.compile(keras.optimizers.Adam(), jit_compile="auto")
    assert m.jit_compile is True


# XLA is not a conv flow's default on CPU (``jit_compile=True`` below warns).
@pytest.mark.filterwarnings("ignore:FlowModel.compile. coupling:UserWarning")
def test_fit_runs_a_conv_flow_one_xla_step_per_call_with_the_same_batches(monkeypatch):
    """A flow with a convolutional conditioner is not trained by the fused XLA loop (measured
    slower, see ``training.slow_xla``); its 32-step executions train what one step per call
    does under XLA. A 2-D flow still fuses."""
    fused, array_runs = [], []
    original = execution.fused_steps
    monkeypatch.setattr(execution, "fused_steps",
                        lambda *a, **k: fused.append(a) or original(*a, **k))
    runs = execution.ArrayBatches.runs  # fit on arrays: the batches of fused executions
    monkeypatch.setattr(execution.ArrayBatches, "runs",
                        lambda self, *a: array_runs.append(a) or runs(self, *a))
    assert not slow_xla.fuse_steps(_conv_flow("affine"))
    assert slow_xla.fuse_steps(flows.realnvp(2, 2, [4], seed=0))
    x = np.random.default_rng(0).uniform(size=[40 * 4, 64]).astype(np.float32)
    weights = []
    for spe in (1, 32):
        tf.keras.utils.set_random_seed(0)
        m = FlowModel(_conv_flow("affine"))
        m.compile(keras.optimizers.Adam(1e-3), steps_per_execution=spe,
                  jit_compile=True)
        m.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0)
        assert int(m.optimizer.iterations) == 40
        weights.append([w.numpy() for w in m.trainable_weights])
    m = FlowModel(_conv_flow("affine"))
    m.compile(keras.optimizers.Adam(1e-3), jit_compile=True)
    assert m.jit_compile
    m.fit(x, batch_size=4, epochs=1, verbose=0)
    assert int(m.optimizer.iterations) == 40
    assert not fused, "the conv flow was trained by the fused XLA loop"
    assert not array_runs, "the conv flow's array batches were trained in fused executions"
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    m = FlowModel(flows.realnvp(2, 2, [4], seed=0))
    m.compile(keras.optimizers.Adam(1e-3))
    m.fit(tf.data.Dataset.from_tensor_slices(x[:, :2]).batch(4), epochs=1, verbose=0)
    assert fused, "the 2-D flow no longer fuses its steps"
    m.fit(x[:, :2], batch_size=4, epochs=1, verbose=0)
    assert array_runs, "the 2-D flow's array batches are no longer trained in fused executions"
