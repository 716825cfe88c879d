"""Persistence: save_weights/load_weights, model.save + load_model, SavedModel export."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows.training import FlowModel, export_saved_model

FLOWS = {
    "realnvp_bn": lambda seed: tfp_flows.flows.realnvp(3, num_layers=2, hidden_layers=[8],
                                                       batch_norm=True, seed=seed),
    "planar": lambda seed: tfp_flows.flows.planar(3, num_layers=2, seed=seed),
    "lu_piecewise_linear": lambda seed: tfp_flows.flows.lu_piecewise_linear(
        3, num_layers=1, num_bins=4, seed=seed),
    "maf_spline": lambda seed: tfp_flows.flows.maf(3, num_layers=2, hidden_layers=[8],
                                                   transformer="spline", num_bins=4, seed=seed),
    "iaf": lambda seed: tfp_flows.flows.iaf(3, num_layers=2, hidden_layers=[8], seed=seed),
}


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [1.0, -1.0, 0.0]).astype("float32")


def trained(kind):
    model = FlowModel(FLOWS[kind](0))
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    model.fit(data(), batch_size=64, epochs=2, verbose=0)
    return model


def test_save_weights_round_trip(tmp_path):
    model = trained("realnvp_bn")
    x = data(64, seed=1)
    path = str(tmp_path / "flow.weights.h5")
    model.save_weights(path)
    fresh = FlowModel(FLOWS["realnvp_bn"](0))  # same architecture, untrained weights
    assert not np.allclose(fresh.log_prob(x), model.log_prob(x))
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.log_prob(x).numpy(), model.log_prob(x).numpy())
    for a, b in zip(fresh.non_trainable_weights, model.non_trainable_weights):  # BN moving stats
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_keras_save_and_load_model(tmp_path, kind):
    model = trained(kind)
    x = data(64, seed=1)
    path = str(tmp_path / "flow.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, FlowModel)
    assert loaded.distribution is not model.distribution
    np.testing.assert_allclose(loaded.log_prob(x).numpy(), model.log_prob(x).numpy(), rtol=1e-6)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 8
    # the loaded model keeps training
    loaded.fit(data(), batch_size=64, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 12


def test_saved_model_export_runs_with_tensorflow_alone(tmp_path):
    model = trained("realnvp_bn")
    x = data(16, seed=2)
    path = export_saved_model(model, tmp_path / "export")
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        m = tf.saved_model.load({str(path)!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        lp = m.log_prob(tf.constant(x))["log_prob"].numpy()
        s = m.signatures["sample"](n=tf.constant(5), seed=tf.constant([1, 2]))["samples"].numpy()
        s2 = m.sample(tf.constant(5), tf.constant([1, 2]))["samples"].numpy()
        assert "tfp_flows" not in sys.modules and "tensorflow_probability" not in sys.modules
        np.savez({str(tmp_path / "out.npz")!r}, lp=lp, s=s, s2=s2)
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path,
                   timeout=300)
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["lp"], model.log_prob(x).numpy(), rtol=1e-5, atol=1e-5)
    assert out["s"].shape == (5, 3) and np.all(np.isfinite(out["s"]))
    np.testing.assert_array_equal(out["s"], out["s2"])
    np.testing.assert_allclose(out["s"], model.sample(5, seed=tf.constant([1, 2])).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_load_model_rebuilds_a_flow_built_without_a_seed(tmp_path):
    # The builder draws and records a concrete seed, so the random permutations come back.
    model = FlowModel(tfp_flows.flows.realnvp(5, num_layers=3, hidden_layers=[4], seed=None))
    assert isinstance(model.distribution.flow_config["seed"], int)
    for v in model.trainable_variables:
        v.assign(v + 0.1)
    x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    path = str(tmp_path / "unseeded.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.log_prob(x).numpy(), model.log_prob(x).numpy())


def test_load_model_refuses_a_flow_whose_permutations_differ(tmp_path, monkeypatch):
    model = FlowModel(tfp_flows.flows.realnvp(5, num_layers=3, hidden_layers=[4], seed=1))
    path = str(tmp_path / "seeded.keras")
    model.save(path)
    real_build = tfp_flows.flows.build
    monkeypatch.setattr(tfp_flows.flows, "build",
                        lambda **config: real_build(**{**config, "seed": 2}))
    with pytest.raises(ValueError, match="different structure"):
        keras.models.load_model(path)


@pytest.mark.parametrize("builder", [
    lambda seed: tfp_flows.flows.realnvp(3, num_layers=4, hidden_layers=[8], seed=seed),
    lambda seed: tfp_flows.flows.lu_piecewise_linear(3, num_layers=1, num_bins=4, seed=seed),
], ids=["realnvp_permutations", "lu_linear_p_and_signs"])
def test_weights_into_a_flow_rebuilt_with_another_seed_are_refused(tmp_path, builder):
    model = FlowModel(builder(0))
    path = str(tmp_path / "flow.weights.h5")
    model.save_weights(path)
    same = FlowModel(builder(0))
    same.load_weights(path)  # the same structure loads
    x = data(32, seed=2)
    np.testing.assert_array_equal(same.log_prob(x).numpy(), model.log_prob(x).numpy())
    other = FlowModel(builder(1))
    before = [w.numpy() for w in other.weights]
    with pytest.raises(ValueError, match="different structure.*another seed"):
        other.load_weights(path)
    for w, b in zip(other.weights, before):  # refused before any weight changed
        np.testing.assert_array_equal(w.numpy(), b)


def test_multiscale_model_save_and_load(tmp_path):
    flow = tfp_flows.flows.multiscale_realnvp((4, 4, 1), num_scales=1, couplings_per_scale=1,
                                              final_couplings=1, hidden_layers=[8], seed=0)
    model = FlowModel(flow)
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    path = str(tmp_path / "multiscale.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.log_prob(x[:8]).numpy(), model.log_prob(x[:8]).numpy(),
                               rtol=1e-5)


def test_nsf_config_recorded_before_data_affine_rebuilds_without_it():
    """A ``flow_config`` saved before ``flows.nsf`` gained ``data_affine`` (default True since)
    rebuilds the flow it described, without the data-side affine; the key, when present, wins."""
    config = tfp_flows.flows.nsf(2, num_layers=2, hidden_layers=[8], seed=0).flow_config
    assert config["data_affine"] is True
    old = {k: v for k, v in config.items() if k != "data_affine"}
    names = [b.name for b in tfp_flows.flows.layers_of(tfp_flows.flows.build(**old))]
    assert not any("affine" in n for n in names), names
    new = [b.name for b in tfp_flows.flows.layers_of(tfp_flows.flows.build(**config))]
    assert len(new) == len(names) + 1 and any("affine" in n for n in new), new


def test_nsf_config_recorded_before_the_2026_12_07_defaults_rebuilds_the_old_flow():
    """``flows.nsf``'s defaults changed on 2026-12-07 (splines evaluated data -> base, marginal
    splines, random hidden biases). A ``flow_config`` saved before has ``invert_splines`` and
    ``marginal_splines`` recorded as False and no ``hidden_bias_init``: it rebuilds the old
    flow (no marginal layers, zero hidden biases, splines the old way round)."""
    config = tfp_flows.flows.nsf(2, num_layers=2, hidden_layers=[8], seed=0).flow_config
    assert config["invert_splines"] and config["marginal_splines"]
    assert config["hidden_bias_init"] == "uniform"
    old = {k: v for k, v in config.items() if k != "hidden_bias_init"}
    old.update(invert_splines=False, marginal_splines=False)
    flow = tfp_flows.flows.build(**old)
    layers = tfp_flows.flows.layers_of(flow)
    assert not any("marginal" in b.name for b in layers), [b.name for b in layers]
    coupling = layers[0]
    assert not coupling.transformer.invert
    for _, bias in coupling.conditioner.weights():
        np.testing.assert_array_equal(bias.numpy(), 0.0)
    new = tfp_flows.flows.layers_of(tfp_flows.flows.build(**config))
    assert any("marginal" in b.name for b in new) and new[0].transformer.invert
    assert np.any(new[0].conditioner.weights()[0][1].numpy() != 0.0)


@pytest.mark.parametrize("builder", ["realnvp", "nsf", "maf", "iaf"])
def test_config_recorded_before_network_init_rebuilds_identity_networks(builder):
    """``network_init`` is recorded since 2026-12-07 (``hidden_bias_init`` since then or
    earlier): a ``flow_config`` saved without them described zero-initialised output layers
    and zero hidden biases: ``build`` rebuilds a flow that starts at the base."""
    make = getattr(tfp_flows.flows, builder)
    config = make(2, num_layers=2, hidden_layers=[8], network_init="uniform",
                  hidden_bias_init="uniform", seed=0).flow_config
    assert config["network_init"] == "uniform" and config["hidden_bias_init"] == "uniform"
    old = {k: v for k, v in config.items() if k not in ("network_init", "hidden_bias_init")}
    x = np.random.default_rng(0).normal(size=[5, 2]).astype("float32")
    base = tfp_flows.flows.standard_normal(2).log_prob(tf.constant(x)).numpy()
    np.testing.assert_allclose(tfp_flows.flows.build(**old).log_prob(tf.constant(x)).numpy(),
                               base, atol=1e-5)
    rebuilt = tfp_flows.flows.build(**config).log_prob(tf.constant(x)).numpy()
    assert np.abs(rebuilt - base).max() > 1e-2
    # the same start as the old defaults spelled out (weights equal, variables built above)
    before = make(2, num_layers=2, hidden_layers=[8], network_init="identity",
                  hidden_bias_init="zeros", seed=0)
    before.log_prob(tf.constant(x))
    rebuilt_old = tfp_flows.flows.build(**old)
    rebuilt_old.log_prob(tf.constant(x))
    for a, b in zip(rebuilt_old.trainable_variables, before.trainable_variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
