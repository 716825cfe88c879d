"""Every bijector and builder in ``contract_cases.CASES`` through the same contract."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from contract_cases import CASES, build, make_bijector, normal_inputs
from contract_checks import (
    check_autoregressive,
    check_compiled,
    check_gradient_matches_finite_difference,
    check_gradients,
    check_log_det,
    check_round_trip,
    fresh,
    grid_integral,
)

import tfp_flows
from tfp_flows import bijectors as fb
from tfp_flows.bijectors import transformers

tfd = tfp.distributions
DTYPES = ["float32", "float64"]
BATCH_SHAPES = [(), (7,), (3, 5)]


@pytest.fixture(scope="module", params=CASES, ids=str)
def case(request):
    return request.param


@pytest.fixture(scope="module", params=DTYPES)
def built(request, case):
    dtype = request.param
    bijector, dist = make_bijector(case, dtype)
    return case, dtype, bijector, dist


def _inputs(case, shape, seed=0):
    return case.sample(np.random.default_rng(seed), tuple(shape) + (case.event_size,))


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
def test_round_trip(built, batch_shape):
    case, dtype, bijector, _ = built
    check_round_trip(bijector, _inputs(case, batch_shape), dtype, case.rtol[dtype])


def test_log_det_matches_autodiff(built):
    """On every batch shape: the log-dets of the first 1, 7 and 15 of the same 15 points."""
    case, dtype, bijector, _ = built
    rows = max(int(np.prod(shape, dtype=int)) for shape in BATCH_SHAPES)
    check_log_det(bijector, _inputs(case, [rows]), dtype, case.ldj_atol[dtype],
                  batch_shapes=BATCH_SHAPES)


def test_every_branch(built):
    case, dtype, bijector, _ = built
    if case.edges is None:
        pytest.skip("no piecewise branches")
    x = case.edges(case.event_size)
    if case.pieces is not None:
        ids, num_pieces = case.pieces(bijector, x)
        missed = sorted(set(range(num_pieces)) - set(np.unique(ids).tolist()))
        assert not missed, f"the edge points never reach pieces {missed} of {num_pieces}"
    check_round_trip(bijector, x, dtype, case.rtol[dtype])
    check_log_det(bijector, x, dtype, case.ldj_atol[dtype])


def test_compiled(built):
    """Under tf.function and under XLA; one network pass per direction in the graph."""
    case, dtype, bijector, dist = built
    rtol = max(case.rtol[dtype], {"float32": 1e-4, "float64": 1e-9}[dtype])
    check_compiled(bijector, dist, _inputs(case, [6]), dtype, rtol,
                   network_once=not case.reruns_network)


def test_gradients_finite_and_nonzero(built):
    case, dtype, bijector, dist = built
    if not dist.trainable_variables:
        pytest.skip("no trainable variables")
    y = bijector.forward(fresh(_inputs(case, [64]), dtype)).numpy()
    check_gradients(dist, y, dtype)


def test_mle_gradient_matches_finite_differences(case):
    _, dist = make_bijector(case, "float64")
    if not dist.trainable_variables:
        pytest.skip("no trainable variables")
    if case.mle_gradient == "ill-conditioned":
        pytest.skip("central differences of the mean NLL do not converge near the singularity")
    # A fixed data set, as in maximum likelihood; not the flow's own samples, which crowd
    # into its sharpest bins (see check_gradient_matches_finite_difference).
    y = _inputs(case, [50000], seed=1)
    if case.mle_gradient == "unbiased":
        check_gradient_matches_finite_difference(dist, y, "float64")
    else:
        with pytest.raises(AssertionError, match="finite differences"):
            check_gradient_matches_finite_difference(dist, y, "float64")


def test_density_integrates_to_one_in_2d(case):
    if case.no_density_check:
        pytest.skip(case.no_density_check)
    for dtype in DTYPES:
        _, dist = make_bijector(case, dtype, event_size=2)
        total = grid_integral(dist, dtype, resolution=case.density_resolution)
        assert abs(total - 1.0) < 0.01, f"{dtype}: density integrates to {total}"


def test_variables_visible_to_tfp_and_keras(case):
    _, dist = make_bijector(case, "float32")
    if case.name in ("random_permute", "leaky_relu"):
        assert not dist.trainable_variables
        return
    assert dist.trainable_variables, "TFP sees no variables"
    for v in dist.variables:
        kv = tfp_flows.keras_variable_of(v)
        assert kv.value is v and kv.trainable == v.trainable


def test_keras_optimizer_step_changes_log_prob(case):
    _, dist = make_bijector(case, "float32")
    if not dist.trainable_variables:
        pytest.skip("no trainable variables")
    x = _inputs(case, [32])
    before = dist.log_prob(fresh(x, "float32")).numpy()
    variables = dist.trainable_variables
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(fresh(x, "float32")))
    grads = tape.gradient(loss, variables)
    opt = keras.optimizers.SGD(1e-3)
    opt.apply_gradients(zip(grads, [tfp_flows.keras_variable_of(v) for v in variables]))
    after = dist.log_prob(fresh(x, "float32")).numpy()
    assert np.mean(after) > np.mean(before), "a descent step on the NLL did not raise log_prob"


def test_checkpoint_round_trip(case, tmp_path):
    _, dist = make_bijector(case, "float64")
    x = _inputs(case, [16])
    checkpoint = tf.train.Checkpoint(dist=dist)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    saved = dist.log_prob(fresh(x, "float64")).numpy()
    if not dist.variables:
        return
    for v in dist.variables:
        v.assign(v * 1.5 + 0.25)
    assert not np.allclose(dist.log_prob(fresh(x, "float64")).numpy(), saved)
    checkpoint.restore(path).assert_consumed()
    np.testing.assert_array_equal(dist.log_prob(fresh(x, "float64")).numpy(), saved)


def test_same_seed_same_flow(case):
    x = _inputs(case, [16])
    log_probs = []
    for _ in range(2):
        _, dist = build(case, "float32")
        dist.log_prob(tf.zeros([case.event_size]))
        rng = np.random.default_rng(3)  # move templates off their zero-initialised last layer
        for v in dist.trainable_variables:
            if not np.any(v.numpy()):
                v.assign(rng.normal(size=v.shape))
        log_probs.append(dist.log_prob(fresh(x, "float32")).numpy())
    np.testing.assert_array_equal(log_probs[0], log_probs[1])


def test_log_prob_finite_far_from_the_data(case):
    """Held-out points far outside the training range get a finite log-density in float32
    (``lu_piecewise_linear`` returned NaN there when its sigmoid rounded to 1)."""
    if case.sample is not normal_inputs:
        pytest.skip("inputs live in a bounded domain")
    _, dist = make_bijector(case, "float32")
    d = case.event_size
    far = np.array([np.full(d, 30.0), np.full(d, -30.0), np.resize([60.0, -45.0], d),
                    np.resize([-20.0, 25.0, 0.5], d)])
    log_p = dist.log_prob(fresh(far, "float32")).numpy()
    assert np.all(np.isfinite(log_p)), f"log_prob far from the data: {log_p}"


def test_every_builder_has_a_case():
    """Every flows.BUILDERS entry runs through the contract (e.g. the far-from-data check)."""
    covered = {getattr(case.make("float32", case.event_size), "flow_config", {}).get("builder")
               for case in CASES}
    assert not set(tfp_flows.flows.BUILDERS) - covered, "builders without a contract case"


def test_refuses_wrong_event_size(case):
    bijector, _ = make_bijector(case, "float32")
    wrong = np.zeros([4, case.event_size + 1])
    for method in (bijector.forward, bijector.inverse):
        if case.accepts_wrong_event_size:
            pytest.skip(case.accepts_wrong_event_size)
        with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
            method(fresh(wrong, "float32"))


def _sweeps(case, num=61, width=30.0):
    """Sample points with one element at a time swept over ``[-width, width]``: a ReLU
    conditioner may be flat in an element over the sample's range (every unit of a degree
    inactive there), so an allowed dependency is looked for over a wide range of each."""
    base = _inputs(case, [num], seed=3)
    points = []
    for j in range(case.event_size):
        swept = base.copy()
        swept[:, j] = np.linspace(-width, width, num)
        points.append(swept)
    return np.concatenate(points)


def test_autoregressive_structure(built):
    case, dtype, bijector, _ = built
    if case.degrees is None:
        pytest.skip("not autoregressive")
    x = np.concatenate([_inputs(case, [16]), _sweeps(case)])
    check_autoregressive(bijector, x, dtype, case.degrees(case.event_size))


# --- the checks themselves can fail -------------------------------------------------------


class _WrongInverse(fb.Planar):
    def _inverse(self, y):
        return super()._inverse(y) + 1e-2


class _WrongLogDet(fb.Planar):
    def _forward_log_det_jacobian(self, x):
        return super()._forward_log_det_jacobian(x) + 1e-2


def test_checks_catch_a_wrong_inverse():
    bijector = _WrongInverse(2, seed=0, dtype=tf.float64)
    x = np.random.default_rng(0).normal(size=[5, 2])
    with pytest.raises(AssertionError, match="inverse"):
        check_round_trip(bijector, x, "float64", 1e-6)
    # The trap this guards against: with one reused tensor the cache returns x unchanged.
    x_tensor = tf.constant(x)
    np.testing.assert_array_equal(bijector.inverse(bijector.forward(x_tensor)).numpy(), x)


def test_checks_catch_a_wrong_log_det():
    bijector = _WrongLogDet(2, seed=0, dtype=tf.float64)
    x = np.random.default_rng(0).normal(size=[5, 2])
    with pytest.raises(AssertionError, match="log_det"):
        check_log_det(bijector, x, "float64", 1e-6)


class _WrongBatchedLogDet(fb.Planar):  # right on [N, D] inputs, off on [B1, B2, D]
    def _forward_log_det_jacobian(self, x):
        return super()._forward_log_det_jacobian(x) + (1e-2 if x.shape.rank > 2 else 0.0)


def test_checks_catch_a_log_det_wrong_on_one_batch_shape():
    bijector = _WrongBatchedLogDet(2, seed=0, dtype=tf.float64)
    x = np.random.default_rng(0).normal(size=[15, 2])
    check_log_det(bijector, x, "float64", 1e-6, batch_shapes=[(), (7,)])
    with pytest.raises(AssertionError, match=r"batch shape \(3, 5\)"):
        check_log_det(bijector, x, "float64", 1e-6, batch_shapes=BATCH_SHAPES)


class _GraphOnlyOffset(fb.Planar):  # eager and traced results differ
    def _forward(self, x):
        return super()._forward(x) + (0.0 if tf.executing_eagerly() else 1e-2)


class _NoXlaKernel(fb.Planar):  # tf.numpy_function runs in a graph, not under XLA
    def _forward(self, x):
        return tf.numpy_function(lambda a: a, [super()._forward(x)], x.dtype, stateful=False)


@pytest.mark.parametrize("bijector_class, error, match", [
    (_GraphOnlyOffset, AssertionError, r"forward under tf.function\n"),
    (_NoXlaKernel, tf.errors.InvalidArgumentError, "unsupported operations.*XLA"),
], ids=["graph_differs", "no_xla_kernel"])
def test_checks_catch_a_map_that_fails_compiled(bijector_class, error, match):
    bijector = bijector_class(2, seed=0, dtype=tf.float64)
    dist = tfd.TransformedDistribution(tfp_flows.flows.standard_normal(2, "float64"), bijector)
    x = np.random.default_rng(0).normal(size=[6, 2])
    with pytest.raises(error, match=match):
        check_compiled(bijector, dist, x, "float64", 1e-9)


class _LogDetNotCached(fb.Coupling):  # the map hands TFP's cache no log-det: it runs again
    def _augmented_forward(self, x, **kwargs):
        return super()._augmented_forward(x, **kwargs)[0], None

    def _forward_log_det_jacobian(self, x, **kwargs):
        return -super()._augmented_forward(x, **kwargs)[1]["ildj"]


class _TwoPassInverse(fb.Coupling):  # right inverse, but the network runs twice
    def _augmented_inverse(self, y, **kwargs):
        super()._augmented_inverse(y, **kwargs)
        return super()._augmented_inverse(y, **kwargs)


@pytest.mark.parametrize("bijector_class, match", [
    (_LogDetNotCached, r"forward_then_log_det: its graph runs a network \[2\] times"),
    (_TwoPassInverse, r"inverse: its graph runs a network \[2\] times"),
], ids=["log_det_not_cached", "two_pass_inverse"])
def test_checks_catch_a_network_run_too_often(bijector_class, match):
    bijector = bijector_class(3, hidden_layers=[4], seed=0, dtype=tf.float64)
    dist = tfd.TransformedDistribution(tfp_flows.flows.standard_normal(3, "float64"), bijector)
    x = np.random.default_rng(0).normal(size=[5, 3])
    with pytest.raises(AssertionError, match=match):
        check_compiled(bijector, dist, x, "float64", 1e-9)


def test_checks_catch_a_non_normalised_density():
    class Leaky(fb.Planar):  # a consistent log-det that is off by 0.05 nats everywhere
        def _forward_log_det_jacobian(self, x):
            return super()._forward_log_det_jacobian(x) - 0.05

        def _inverse_log_det_jacobian(self, y):
            return super()._inverse_log_det_jacobian(y) + 0.05

    dist = tfd.TransformedDistribution(tfp_flows.flows.standard_normal(2), Leaky(2, seed=0))
    assert abs(grid_integral(dist, "float32") - 1.0) > 0.04


def test_saved_model_round_trip(case, tmp_path):
    _, dist = make_bijector(case, "float32")
    module = tf.Module()
    module.dist = dist
    module.log_prob = tf.function(dist.log_prob, input_signature=[
        tf.TensorSpec([None, case.event_size], tf.float32)])
    x = _inputs(case, [8])
    expected = dist.log_prob(fresh(x, "float32")).numpy()
    path = str(tmp_path / "saved")
    tf.saved_model.save(module, path)
    saved = [name for name, _ in tf.train.list_variables(path + "/variables/variables")
             if name.startswith("dist/")]
    assert len(saved) == len(dist.variables)
    for v in dist.variables:  # the loaded model must use its own saved copies
        v.assign(v * 1.5 + 0.25)
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(loaded.log_prob(fresh(x, "float32")).numpy(), expected, rtol=1e-6)


# --- transformers (the elementwise maps of couplings and MADE) -----------------------------

TRANSFORMERS = {
    "affine": transformers.Affine(log_scale_bound=1.5),
    "affine_shift_only": transformers.Affine(shift_only=True),
    "spline": transformers.RationalQuadraticSpline(num_bins=4, bound=2.0),
    "spline_inverted": transformers.RationalQuadraticSpline(num_bins=4, bound=2.0, invert=True),
    "spline_softclip": transformers.RationalQuadraticSpline(num_bins=4, bound=2.0, softclip=True),
    "piecewise_linear": transformers.PiecewiseLinear(num_bins=4),
    "piecewise_linear_not_inverted": transformers.PiecewiseLinear(num_bins=4, invert=False),
}


def _transformer_inputs(transformer, n):
    """Points on every piece: inside the bins, both tails (spline), outside [0, 1] (piecewise)."""
    rng = np.random.default_rng(2)
    if isinstance(transformer, transformers.PiecewiseLinear):
        return np.concatenate([rng.uniform(0.01, 0.99, n), [-0.5, 1.5]])
    if isinstance(transformer, transformers.RationalQuadraticSpline):
        b = transformer.bound
        return np.concatenate([rng.uniform(-0.99 * b, 0.99 * b, n), [-3 * b, -1.01 * b, 1.01 * b,
                                                                     3 * b]])
    return rng.normal(size=n) * 2


@pytest.mark.parametrize("name", sorted(TRANSFORMERS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_zero_params_is_identity(name, dtype):
    transformer = TRANSFORMERS[name]
    x = _transformer_inputs(transformer, 50)
    params = np.zeros([x.size, transformer.num_params])
    y, log_det = transformer.forward_and_log_det(fresh(x, dtype), fresh(params, dtype))
    np.testing.assert_allclose(y.numpy(), x, atol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), 0.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TRANSFORMERS))
def test_transformer_round_trip_and_elementwise_log_det(name):
    transformer = TRANSFORMERS[name]
    x = _transformer_inputs(transformer, 200)
    params = np.random.default_rng(4).normal(size=[x.size, transformer.num_params]) * 1.5
    xt = fresh(x, "float64")
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y, fldj = transformer.forward_and_log_det(xt, fresh(params, "float64"))
    slope = tape.gradient(y, xt).numpy()
    assert np.all(slope > 0), "not increasing"
    np.testing.assert_allclose(fldj.numpy(), np.log(slope), atol=1e-8, err_msg="forward log-det")
    yt = fresh(y.numpy(), "float64")
    with tf.GradientTape() as tape:
        tape.watch(yt)
        x_back, ildj = transformer.inverse_and_log_det(yt, fresh(params, "float64"))
    np.testing.assert_allclose(x_back.numpy(), x, atol=1e-8, err_msg="inverse(forward(x))")
    np.testing.assert_allclose(ildj.numpy(), np.log(tape.gradient(x_back, yt).numpy()),
                               atol=1e-8, err_msg="inverse log-det")
    np.testing.assert_allclose(ildj.numpy(), -fldj.numpy(), atol=1e-8)


def test_transformer_lookup():
    assert isinstance(transformers.get("spline"), transformers.RationalQuadraticSpline)
    assert transformers.get(TRANSFORMERS["affine"]) is TRANSFORMERS["affine"]
    with pytest.raises(ValueError, match="Unknown transformer 'cubic'"):
        transformers.get("cubic")
    with pytest.raises(TypeError, match="num_params"):
        transformers.get(object())
def test_checks_catch_a_non_autoregressive_map():
    bijector = fb.LULinear(3, seed=2, dtype=tf.float64)  # dense Jacobian
    x = np.random.default_rng(0).normal(size=[4, 3])
    with pytest.raises(AssertionError, match="later element"):
        check_autoregressive(bijector, x, "float64", [1, 2, 3])
    diagonal = fb.LeakyReLU(0.3, dtype=tf.float64)  # triangular, but drops every dependency
    with pytest.raises(AssertionError, match="missing"):
        check_autoregressive(diagonal, x, "float64", [1, 2, 3])
