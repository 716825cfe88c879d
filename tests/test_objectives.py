"""The one train step and the objectives: fit and train() run the same step; ReverseKL's
annealing; the dequantised bound (uniform and variational) trains under fit and train()."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows import dequantization as dq
from tfp_flows.training import FlowModel, objectives, train
from tfp_flows.training.objectives import DequantizedBound, LinearRamp, ReverseKL


def moons(n=256, seed=0):
    return tfp_flows.datasets.two_moons(n, seed=seed)


def flow():
    return tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0)


def test_fit_and_train_run_the_same_step_and_give_the_same_weights():
    x = moons(256)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(64)  # 4 batches, same order for both
    a, b = flow(), flow()
    model = FlowModel(a)
    model.compile(keras.optimizers.Adam(1e-2, global_clipnorm=1.0), steps_per_execution=1)
    model.fit(ds, epochs=3, verbose=0)
    # train() in executions of 5 steps (one host read per execution), not 1.
    hist = train(b, ds, keras.optimizers.Adam(1e-2, global_clipnorm=1.0), 12,
                 steps_per_execution=5, progress=False)
    assert hist["steps"] == 12 and len(hist["loss"]) == 12
    assert int(model.optimizer.iterations) == 12
    for va, vb in zip(a.trainable_variables, b.trainable_variables):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(va.numpy(), v0.numpy())
               for va, v0 in zip(a.trainable_variables, FlowModel(flow()).trainable_weights))


def test_reverse_kl_annealing_weights_the_target_by_beta():
    ramp = LinearRamp(100)
    np.testing.assert_allclose([float(ramp(t)) for t in (0, 50, 100, 200)],
                               [0.01, 0.505, 1.0, 1.0], rtol=1e-6)
    c = 5.0  # log p̃ = c everywhere: loss − kl = (1 − β)·c exactly
    objective = ReverseKL(lambda z: tf.fill(tf.shape(z)[:-1], c), num_samples=16, beta=ramp,
                          seed=0)
    q = tfp_flows.flows.planar(2, num_layers=2, seed=0)
    for t, beta in ((0, 0.01), (50, 0.505), (300, 1.0)):
        loss, weight, metrics = objective.loss(q, None, step=tf.constant(t))
        np.testing.assert_allclose(float(loss - metrics["kl"]), (1 - beta) * c, rtol=1e-5)
        assert float(weight) == 16
    loss, _, metrics = objective.evaluation_loss(q, None, step=tf.constant(0))
    np.testing.assert_allclose(float(loss), float(metrics["kl"]))


def test_annealed_reverse_kl_trains_and_saves(tmp_path):
    q = tfp_flows.flows.planar(2, num_layers=4, seed=0)
    model = FlowModel.for_target("u1", q, num_samples=64, seed=0, beta=LinearRamp(40))
    model.compile(keras.optimizers.Adam(1e-2), steps_per_execution=1)
    history = model.fit(epochs=1, steps_per_epoch=40, verbose=0).history
    assert int(model.optimizer.iterations) == 40
    # Annealed: the reported loss is the β-weighted objective, kl the unweighted one.
    assert history["loss"][0] != pytest.approx(history["kl"][0])
    path = str(tmp_path / "annealed.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.objective, ReverseKL)
    assert isinstance(loaded.objective.beta, LinearRamp) and loaded.objective.beta.steps == 40
    assert loaded.num_samples == 64


def pixels(n=256, d=4, levels=4, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, levels, size=(n, 1))
    return np.clip(base + rng.integers(-1, 2, size=(n, d)), 0, levels - 1).astype("int32")


@pytest.mark.parametrize("variational", [False, True], ids=["uniform", "variational"])
def test_dequantized_bound_trains_under_fit_and_train(variational):
    p = pixels()
    levels = 4

    def objective(seed):
        vd = (dq.VariationalDequantizer(4, levels, num_couplings=1, hidden_layers=(8,), seed=0)
              if variational else None)
        return DequantizedBound(levels, dequantizer=vd, seed=seed)

    def bpd(dist, obj):
        return dq.evaluate_bits_per_dim(dist.log_prob, p, levels, dequantizer=obj.dequantizer,
                                        num_samples=2, seed=5)

    dist = tfp_flows.flows.realnvp(4, num_layers=2, hidden_layers=[16], seed=0)
    obj = objective(0)
    model = FlowModel(dist, objective=obj)
    n_flow = len(dist.trainable_variables)
    assert len(model.trainable_weights) == n_flow + (len(obj.trainable_variables)
                                                     if variational else 0)
    before = bpd(dist, obj)
    vd0 = [v.numpy() for v in obj.trainable_variables]
    model.compile(keras.optimizers.Adam(1e-2))
    history = model.fit(p, batch_size=64, epochs=5, verbose=0).history
    assert "bits_per_dim" in history
    after = bpd(dist, obj)
    assert after < before - 0.1
    if variational:  # the dequantiser is trained jointly
        assert any(not np.allclose(a, v.numpy()) for a, v in zip(vd0, obj.trainable_variables))

    dist2 = tfp_flows.flows.realnvp(4, num_layers=2, hidden_layers=[16], seed=0)
    obj2 = objective(1)
    hist = train(dist2, p, keras.optimizers.Adam(1e-2), 20, batch_size=64, objective=obj2,
                 progress=False)
    assert hist["steps"] == 20 and hist["skipped_steps"] == 0
    assert bpd(dist2, obj2) < before - 0.1

    with pytest.raises(ValueError, match="Pixel values must lie in"):
        model.fit(p + 10, verbose=0)


def test_objective_is_checked():
    with pytest.raises(TypeError, match="`objective` must be a tfp_flows"):
        FlowModel(flow(), objective="nll")
    with pytest.raises(ValueError, match="`num_samples` must be an integer >= 2"):
        ReverseKL("u1", num_samples=1)
    assert isinstance(FlowModel(flow()).objective, objectives.MaximumLikelihood)
