"""Bad input raises a clear error naming the argument, the expected and the received value."""

import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb
from tfp_flows import flows, nn

tfb = tfp.bijectors

EVENT_BIJECTORS = {
    "planar": lambda: fb.Planar(3, seed=0),
    "lu_linear": lambda: fb.LULinear(3, seed=0),
    "piecewise_linear_cdf": lambda: fb.PiecewiseLinearCDF(3, num_bins=4),
    "batch_norm": lambda: fb.BatchNorm(3),
}


@pytest.fixture(params=sorted(EVENT_BIJECTORS))
def bijector(request):
    return EVENT_BIJECTORS[request.param]()


@pytest.mark.parametrize("method", ["forward", "inverse"])
def test_wrong_event_size(bijector, method):
    with pytest.raises(ValueError, match=r"expected event size 3 .* got 5"):
        getattr(bijector, method)(tf.fill([4, 5], 0.5))


def test_wrong_rank(bijector):
    with pytest.raises(ValueError, match="rank >= 1"):
        bijector.forward(tf.constant(0.5))


def test_integer_input(bijector):
    with pytest.raises(TypeError, match="int32.*float32|float32.*int32"):
        bijector.forward(np.zeros([2, 3], np.int32))


def test_mismatched_float_dtype(bijector):
    with pytest.raises(TypeError, match="float64.*float32|float32.*float64"):
        bijector.forward(np.zeros([2, 3], np.float64))


def test_integer_dtype_argument():
    with pytest.raises(TypeError, match="`dtype` must be a floating dtype.*int32"):
        fb.Planar(2, dtype=tf.int32)


@pytest.mark.parametrize("make, match", [
    (lambda: fb.PiecewiseLinearCDF(2, num_bins=0), r"`num_bins` must be a positive integer, got 0"),
    (lambda: fb.PiecewiseLinearCDF(2, num_bins=4, min_bin_mass=0.5), r"`min_bin_mass`.*got 0.5"),
    (lambda: fb.real_nvp_template([]), r"`hidden_layers` must list at least one.*got \[\]"),
    (lambda: fb.real_nvp_template([16, 0]), r"`hidden_layers\[i\]` must be a positive integer"),
    (lambda: fb.real_nvp_template([16], log_scale_bound=-1.0), r"`log_scale_bound`.*got -1.0"),
    (lambda: fb.Coupling(2, hidden_layers=[]), r"`hidden_layers` must list"),
    (lambda: fb.Coupling(1), r"`event_size` >= 2 to split"),
    (lambda: fb.Coupling(4, split=4), r"int `split`.*\[1, 3\], got 4"),
    (lambda: fb.Coupling(4, split=[True, False]), r"boolean `split` mask must have shape \[4\]"),
    (lambda: fb.Coupling(4, transformer="cubic"), r"Unknown transformer 'cubic'"),
    (lambda: fb.Coupling(4, context_size=0), r"`context_size` must be a positive integer"),
    (lambda: fb.RationalQuadraticSpline(4, bound=-1.0), r"`bound` must be a positive number"),
    (lambda: fb.RationalQuadraticSpline(4, bound=1.0, min_width=0.6), r"`min_width` must lie"),
    (lambda: fb.BatchNorm(2, momentum=1.0), r"`momentum` must lie in \(0.0, 1.0\), got 1.0"),
    (lambda: fb.BatchNorm(2, momentum=-0.1), r"`momentum` must lie in \(0.0, 1.0\), got -0.1"),
    (lambda: fb.BatchNorm(2, epsilon=0.0), r"`epsilon` must be a positive number, got 0.0"),
    (lambda: fb.LeakyReLU(alpha=0.0), r"`alpha` must be a positive number, got 0.0"),
    (lambda: fb.Planar(0), r"`event_size` must be a positive integer, got 0"),
    (lambda: fb.Planar(2.5), r"`event_size` must be a positive integer, got 2.5"),
    (lambda: fb.LULinear(2, init="random"),
     r"`init` must be 'rotation' or 'identity', got 'random'"),
    (lambda: fb.random_permute(-1), r"`event_size` must be a positive integer, got -1"),
    (lambda: flows.realnvp(1), r"`event_size` >= 2.*got 1"),
    (lambda: flows.realnvp(2, num_layers=0), r"`num_layers` must be a positive integer, got 0"),
    (lambda: flows.realnvp(2, network_init="zeros"),
     r"`network_init` must be 'identity' or 'uniform', got 'zeros'"),
    (lambda: flows.maf(2, network_init="glorot"),
     r"`network_init` must be 'identity' or 'uniform', got 'glorot'"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_invalid_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_piecewise_linear_outside_unit_interval_with_validate_args():
    bijector = fb.PiecewiseLinearCDF(2, num_bins=4, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside \[0, 1\]"):
        bijector.forward(tf.constant([[0.5, 1.5]]))
    # Without validate_args the map is the identity outside [0, 1].
    relaxed = fb.PiecewiseLinearCDF(2, num_bins=4)
    np.testing.assert_array_equal(relaxed.forward(tf.constant([[-0.5, 1.5]])).numpy(),
                                  [[-0.5, 1.5]])


def test_coupling_context_is_required_exactly_when_conditional():
    plain = fb.Coupling(2, hidden_layers=[4], seed=0)
    with pytest.raises(ValueError, match="unconditional.*context_size=C"):
        plain.forward(tf.zeros([3, 2]), conditional_input=tf.zeros([3, 1]))
    conditional = fb.Coupling(2, hidden_layers=[4], context_size=3, seed=0)
    with pytest.raises(ValueError, match="pass `conditional_input` \\[..., 3\\]"):
        conditional.forward(tf.zeros([3, 2]))
    with pytest.raises(ValueError, match="expected a context \\[..., 3\\]"):
        conditional.forward(tf.zeros([3, 2]), conditional_input=tf.zeros([3, 2]))
    with pytest.raises(ValueError, match="no conditional bijector"):
        flows.context_kwargs(flows.nsf(2, 2, seed=0), tf.zeros([3]))


def test_flow_model_refuses_conditional_bijectors_of_different_context_sizes():
    import tfp_flows

    chain = tfb.Chain([fb.Coupling(2, hidden_layers=[4], context_size=2, seed=0, name="a"),
                       fb.Coupling(2, hidden_layers=[4], context_size=3, seed=1, name="b")])
    dist = tfp.distributions.TransformedDistribution(flows.standard_normal(2), chain)
    with pytest.raises(ValueError, match=r"contexts of different sizes \[2, 3\]"):
        tfp_flows.FlowModel(dist)
    same = tfb.Chain([fb.Coupling(2, hidden_layers=[4], context_size=3, seed=0, name="a"),
                      tfb.Invert(fb.Coupling(2, hidden_layers=[4], context_size=3, seed=1,
                                             name="b"))])
    model = tfp_flows.FlowModel(tfp.distributions.TransformedDistribution(
        flows.standard_normal(2), same))
    assert model.context_size == 3


def test_template_reused_for_a_different_width():
    template = fb.real_nvp_template([8], seed=0)
    tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=template).forward(tf.zeros([2, 2]))
    with pytest.raises(ValueError, match="built for output_units=1, got 2"):
        tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=template).forward(tf.zeros([2, 3]))


# ------------------------------------------------------------------ training inputs
def _model():
    import keras

    from tfp_flows.training import FlowModel
    model = FlowModel(flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0))
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
    return model


def _x(n=64, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 2)).astype("float32")


@pytest.mark.parametrize("make, error, match", [
    (lambda: flows.realnvp(2, hidden_layers=64), ValueError,
     r"`hidden_layers` must be a non-empty sequence of positive ints \(e.g. \[64, 64\]\), got 64"),
    (lambda: flows.realnvp(2, seed="abc"), ValueError, r"`seed` must be a non-negative integer"),
    (lambda: _model().sample(2.5), ValueError, r"`n` must be a non-negative integer, got 2.5"),
    (lambda: _model().sample(2, seed="abc"), TypeError, r"`seed` must be None, an int or"),
], ids=["hidden_layers_int", "builder_seed", "sample_n", "sample_seed"])
def test_bad_arguments_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=-5), ValueError, r"`batch_size` must be a positive integer, got -5"),
    (dict(steps=-1), ValueError, r"`steps` must be a positive integer, got -1"),
    (dict(optimizer="adam"), TypeError, r"`optimizer` must be a Keras 3 optimizer.*'adam'"),
    (dict(seed="abc"), ValueError, r"`seed` must be a non-negative integer, got 'abc'"),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else "")
def test_train_arguments_are_named(kwargs, error, match):
    import keras

    from tfp_flows.training import train
    args = dict(optimizer=keras.optimizers.Adam(1e-3), steps=5, progress=False) | kwargs
    dist = flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0)
    with pytest.raises(error, match=match):
        train(dist, _x(), **args)


def test_fit_before_compile_is_a_clear_error():
    from tfp_flows.training import FlowModel
    model = FlowModel(flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0))
    for call in (lambda: model.fit(_x(), verbose=0), lambda: model.evaluate(_x(), verbose=0)):
        with pytest.raises(RuntimeError, match=r"Call `model.compile\(optimizer=...\)` before"):
            call()


@pytest.mark.parametrize("dtype", [np.int32, np.int64, bool])
def test_int_and_bool_are_refused_by_predict_and_log_prob(dtype):
    model = _model()
    x = np.ones((4, 2), dtype)
    with pytest.raises(TypeError, match=f"floating-point.*{np.dtype(dtype).name}"):
        model.predict(x, verbose=0)
    with pytest.raises(TypeError, match=f"floating-point.*{np.dtype(dtype).name}"):
        model.log_prob(x)
    with pytest.raises(TypeError, match="floating-point"):
        model.log_prob(tf.constant(x))


def test_float64_beyond_the_float32_range_is_refused():
    x = _x().astype(np.float64)
    x[9, 1] = 1e300
    model = _model()
    with pytest.raises(ValueError, match=r"beyond the float32 range.*index 9"):
        model.fit(x, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(16)
    with pytest.raises(ValueError, match=r"non-finite.*float32 range.*batch 0"):
        model.fit(ds, verbose=0)
    assert int(model.optimizer.iterations) == 0


def test_unbatched_dataset_is_refused():
    ds = tf.data.Dataset.from_tensor_slices(_x())
    with pytest.raises(ValueError, match=r"unbatched dataset.*dataset.batch\(256\)"):
        _model().fit(ds, verbose=0)


def test_python_generator_and_py_dataset_train_in_fit_and_are_refused_by_train():
    import keras

    from tfp_flows.training import train

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return _x(16, seed=i)

    def generator():
        for i in range(4):
            yield (_x(16, seed=i),)  # Keras takes tuples (x,), (x, y) or (x, y, w)

    for data in (Batches(), generator()):
        model = _model()
        model.fit(data, epochs=1, verbose=0)
        assert int(model.optimizer.iterations) == 4
    dist = flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0)
    for data, name in ((Batches(), "PyDataset"), (generator(), "Python generator")):
        with pytest.raises(TypeError, match=f"data is a.*{name}.*tf.data.Dataset"):
            train(dist, data, keras.optimizers.Adam(1e-3), 5, progress=False)


def test_generator_with_a_bad_first_batch_is_refused_before_training():
    def generator():
        yield (np.ones((4, 3), np.float32),)

    with pytest.raises(ValueError, match=r"Python generator\) batch 0 has event size 3"):
        _model().fit(generator(), verbose=0)


def test_made_narrower_than_event_warns_and_ignores_late_inputs():
    """A MADE layer of h < D − 1 units warns, and its claim (inputs of degree > h reach no
    output) holds in the Jacobian; h = D − 1 warns nothing and every input but the last
    reaches an output (tanh, so that no unit is a dead ReLU on these points)."""
    x = tf.random.stateless_normal([4, 5], seed=[1, 2])

    def reach(made):
        made(x)  # builds the flat variable (zero-initialised output layer)
        made.params.assign(tf.random.stateless_normal(made.params.shape, seed=[3, 4]))
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = made(x)
        jac = tape.batch_jacobian(out, x)  # [4, D, P, D]
        return tf.reduce_max(tf.abs(jac), axis=[0, 1, 2]).numpy()  # per input

    with pytest.warns(UserWarning, match=r"hidden layer of 2 units < event_size - 1 = 4 .*"
                                         r"degree > 2 unseen"):
        narrow = nn.MADE(5, 2, hidden_layers=[8, 2], activation=tf.tanh, seed=0)
    np.testing.assert_array_equal(reach(narrow)[2:], 0.0)
    assert np.all(reach(narrow)[:2] > 0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wide = nn.MADE(5, 2, hidden_layers=[4, 4], activation=tf.tanh, seed=0)
    assert np.all(reach(wide)[:4] > 0)  # the last input (degree 5) conditions no output
