"""Reverse-KL training to unnormalised 2-D energies (FlowModel.for_target) and the energies."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows import energies
from tfp_flows.training import FlowModel


def reference_log_prob(name, z):
    """Independent NumPy transcription of Rezende & Mohamed (2015), Table 1 (and the ring)."""
    z1, z2 = z[:, 0], z[:, 1]
    r = np.hypot(z1, z2)
    w1 = np.sin(2 * np.pi * z1 / 4)
    w2 = 3 * np.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + np.exp(-(z1 - 1) / 0.3))
    u = {
        "ring": 0.5 * ((r - 2) / 0.3) ** 2,
        "u1": 0.5 * ((r - 2) / 0.4) ** 2
        - np.log(np.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + np.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)),
        "u2": 0.5 * ((z2 - w1) / 0.4) ** 2,
        "u3": -np.log(np.exp(-0.5 * ((z2 - w1) / 0.35) ** 2)
                      + np.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2)),
        "u4": -np.log(np.exp(-0.5 * ((z2 - w1) / 0.4) ** 2)
                      + np.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2)),
    }[name]
    return -u


@pytest.mark.parametrize("name", sorted(energies.ENERGIES))
def test_energies_match_the_formulas_and_have_finite_gradients(name):
    z = np.random.default_rng(0).uniform(-3, 3, size=(200, 2))
    got = energies.ENERGIES[name](tf.constant(z)).numpy()
    np.testing.assert_allclose(got, reference_log_prob(name, z), rtol=1e-6, atol=1e-6)
    batch = energies.ENERGIES[name](tf.zeros([4, 5, 2]))
    assert batch.shape == (4, 5)
    zero = tf.zeros([1, 2])
    with tf.GradientTape() as tape:
        tape.watch(zero)
        value = energies.ENERGIES[name](zero)
    assert np.all(np.isfinite(tape.gradient(value, zero).numpy()))


def test_kl_and_ess_estimates_are_exact_when_q_equals_p():
    # With identity networks (zero-initialised last layers) a fresh realnvp is the identity:
    # q = N(0, I).
    flow = tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[8], network_init="identity",
                                   seed=0)
    model = FlowModel.for_target(lambda z: -0.5 * tf.reduce_sum(z**2, -1), flow, num_samples=64,
                                 seed=1)
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
    logs = model.evaluate(steps=3, verbose=0, return_dict=True)
    # KL(q||p) - log Z with Z = 2π
    np.testing.assert_allclose(logs["kl"], -np.log(2 * np.pi), rtol=1e-5)
    np.testing.assert_allclose(logs["ess"], 64.0, rtol=1e-4)
    with pytest.raises(NotImplementedError, match="custom target"):
        model.get_config()


@pytest.mark.parametrize("kind", ["planar", "realnvp"])
def test_reverse_kl_training_reduces_kl_on_u1(kind, tmp_path):
    if kind == "planar":
        flow = tfp_flows.flows.planar(2, num_layers=8, seed=0)
    else:
        flow = tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[16, 16], seed=0)
    model = FlowModel.for_target("u1", flow, num_samples=256, seed=0)
    # XLA for realnvp (the default), plain tf.function for planar: both paths are exercised
    model.compile(keras.optimizers.Adam(1e-2, global_clipnorm=10.0),
                  jit_compile=None if kind == "realnvp" else False)
    before = model.evaluate(steps=4, verbose=0, return_dict=True)
    hist = model.fit(epochs=3, steps_per_epoch=100, verbose=0).history
    after = model.evaluate(steps=4, verbose=0, return_dict=True)
    assert set(hist) >= {"loss", "kl", "ess", "skipped_steps"}
    assert after["kl"] < before["kl"] - 0.5, (before, after)
    assert after["ess"] > before["ess"]
    # by-name targets serialise
    path = str(tmp_path / "rkl.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    z = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
    np.testing.assert_allclose(loaded.log_prob(z), model.log_prob(z), rtol=1e-5, atol=1e-5)
    assert loaded.num_samples == 256
