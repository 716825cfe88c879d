"""Each private TF / TFP / Keras API in ``tfp_flows/_compat.py`` still does what we rely on.

A failure here names the entry and what changed upstream, so an upgrade breaks one test with
a readable message instead of a deep traceback in a bijector or the train step.
"""

import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

from tfp_flows import _compat

tfb = tfp.bijectors


def test_greedy_attrs_cache_hands_the_log_det_of_an_augmented_map_to_the_log_det_methods():
    calls = []

    class Doubling(tfb.Bijector):
        _cache = _compat.greedy_attrs_cache()

        def __init__(self):
            super().__init__(forward_min_event_ndims=0, name="doubling")

        def _augmented_forward(self, x):
            calls.append("forward")
            return 2.0 * x, {"ildj": tf.fill(tf.shape(x), -np.log(2.0))}

        def _augmented_inverse(self, y):
            calls.append("inverse")
            return 0.5 * y, {"ildj": tf.fill(tf.shape(y), -np.log(2.0))}

        def _forward_log_det_jacobian(self, x):
            calls.append("fldj")
            return tf.fill(tf.shape(x), np.log(2.0))

        def _inverse_log_det_jacobian(self, y):
            calls.append("ildj")
            return tf.fill(tf.shape(y), -np.log(2.0))

    b = Doubling()
    x, y = tf.constant([1.0, 2.0]), tf.constant([3.0])
    np.testing.assert_allclose(b.forward(x).numpy(), [2.0, 4.0])
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, 0).numpy(), [np.log(2.0)] * 2,
                               rtol=1e-6)
    np.testing.assert_allclose(b.inverse(y).numpy(), [1.5])
    np.testing.assert_allclose(b.inverse_log_det_jacobian(y, 0).numpy(), [-np.log(2.0)],
                               rtol=1e-6)
    assert calls == ["forward", "inverse"], (
        "tensorflow_probability.python.internal.cache_util.BijectorCacheWithGreedyAttrs no "
        "longer hands the `ildj` returned by `_augmented_forward`/`_augmented_inverse` to the "
        "log-det methods (LogDetWithMap bijectors rely on it to run their network once): "
        f"calls {calls}")


def test_learning_rate_object_is_the_schedule_or_the_variable():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.5)
    opt = keras.optimizers.Adam(schedule)
    assert _compat.learning_rate_object(opt) is schedule, (
        "keras Optimizer._learning_rate no longer holds the LearningRateSchedule object "
        "(NaNGuard wraps it in ScaledSchedule to back off a scheduled learning rate)")
    opt = keras.optimizers.Adam(1e-3)
    lr = _compat.learning_rate_object(opt)
    assert isinstance(lr, keras.Variable), (
        "keras Optimizer._learning_rate of a constant rate is no longer a keras.Variable")
    lr.assign(5e-4)
    np.testing.assert_allclose(float(opt.learning_rate), 5e-4, rtol=1e-6)


def test_track_variable_makes_a_model_own_a_variable():
    class Empty(keras.Model):
        def call(self, x):
            return x

    model = Empty()
    v = keras.Variable(np.ones(3, "float32"), name="w")
    _compat.track_variable(model, v)
    assert any(w is v for w in model.trainable_weights), (
        "keras.Model._track_variable no longer adds a variable to the model's weights "
        "(FlowModel owns the flow's variables through it)")


def test_strategy_supports_no_merge_call():
    assert _compat.strategy_supports_no_merge_call() in (True, False), (
        "tf.__internal__.distribute.strategy_supports_no_merge_call is gone or changed "
        "(NaNGuard uses it to decide where its tf.cond around optimizer.apply may run)")
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert isinstance(_compat.strategy_supports_no_merge_call(), bool)


def test_module_constants_finds_constants_of_nested_modules():
    inner = tf.Module()
    inner.perm = tf.constant([2, 0, 1])
    inner.w = tf.Variable([1.0])
    outer = tf.Module()
    outer.children = [inner]
    outer.mask = np.array([True, False])
    found = _compat.module_constants(outer)
    assert len(found) == 2, (
        "tf.Module._flatten no longer walks sub-modules in lists or no longer takes a "
        "predicate (FlowModel fingerprints a flow's structure with it)")
    assert any(isinstance(c, np.ndarray) for c in found)
    assert any(isinstance(c, tf.Tensor) and c.numpy().tolist() == [2, 0, 1] for c in found)


def test_skip_symbolic_build_replaces_the_keras_trainer_hook():
    assert callable(getattr(TensorFlowTrainer, "_maybe_symbolic_build", None)), (
        "Keras's TensorFlow trainer has no _maybe_symbolic_build any more: drop the entry")

    @_compat.skip_symbolic_build
    class Model(keras.Model):
        pass

    assert Model._maybe_symbolic_build is not TensorFlowTrainer._maybe_symbolic_build
    assert Model()._maybe_symbolic_build(iterator=None) is None


def test_one_trace_per_object_sets_the_flag_tf_function_reads(caplog):
    # TensorFlow's frequent-retracing detector is process-global (its warning depends on what
    # ran before), so the test checks the flag tf.function defines, then that no warning comes.
    plain = tf.function(lambda x: x)
    assert getattr(plain, "_omit_frequent_tracing_warning", None) is False, (
        "tf.function no longer has `_omit_frequent_tracing_warning`: the per-distribution "
        "log_prob functions of tfp_flows.plot would warn about retracing again")
    fns = [_compat.one_trace_per_object(tf.function(tfp.distributions.Normal(float(i), 1.0)
                                                    .log_prob)) for i in range(6)]
    assert all(fn._omit_frequent_tracing_warning is True for fn in fns)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for fn in fns:
            fn(tf.constant([0.0]))
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def _spline_knots(rng, dtype, batch=(3,), bins=4):
    """Widths and heights summing to 4 (range [-2, 2]) and interior slopes, ``batch + [K]``."""
    widths, heights = (tf.constant(k / k.sum(-1, keepdims=True) * 4.0, dtype) for k in
                       (rng.uniform(0.2, 1.0, [*batch, bins]) for _ in range(2)))
    return widths, heights, tf.constant(rng.uniform(0.5, 2.0, [*batch, bins - 1]), dtype)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_spline_search_gives_the_values_and_gradients_of_tfps_compute_shared(dtype):
    """``RationalQuadraticSpline._compute_shared(x=None, y=None)`` (TFP, private) returns the
    namedtuple whose fields ``spline_search`` computes: the same values, bit for bit, and the
    same gradients, for points inside, outside, on the range's ends and on interior knots."""
    rng = np.random.default_rng(1)
    widths, heights, slopes = _spline_knots(rng, dtype)
    spline = tfb.RationalQuadraticSpline(widths, heights, slopes, range_min=-2.0)
    # The interior knots as TFP computes them (cumsum + range_min), so points hit them exactly.
    knots = {side: (tf.cumsum(sizes, axis=-1) + tf.constant(-2.0, dtype)).numpy()
             for side, sizes in (("x", widths), ("y", heights))}
    for side in ("x", "y"):
        points = rng.uniform(-3.0, 3.0, [6, 3])
        points[0], points[1], points[2] = -2.0, 2.0, knots[side][:, 1]  # ends, interior knots
        points[3] = knots[side][:, 2]
        v = tf.constant(points, dtype)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([v, widths, heights, slopes])
            ours = _compat.spline_search(spline, **{side: v})
            tfps = tfb.RationalQuadraticSpline._compute_shared(spline, **{side: v})
            fields = [f for f in tfps._fields if f != "out_of_bounds"]
            loss = {name: sum(tf.reduce_sum(getattr(r, f) * (i + 1.0))
                              for i, f in enumerate(fields))
                    for name, r in (("ours", ours), ("tfp", tfps))}
        for f in tfps._fields:
            np.testing.assert_array_equal(getattr(ours, f).numpy(), getattr(tfps, f).numpy(),
                                          err_msg=f"{side}: {f}")
        # The knot values do not depend on the point (its bin is piecewise constant): no
        # gradient to v in either.
        assert tape.gradient(loss["ours"], v) is None and tape.gradient(loss["tfp"], v) is None
        for got, expected in zip(tape.gradient(loss["ours"], [widths, heights, slopes]),
                                 tape.gradient(loss["tfp"], [widths, heights, slopes])):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=0,
                                       rtol=1e-6 if dtype == tf.float32 else 1e-13)


def test_shared_search_spline_searches_once_per_tensor_with_tfp_values(monkeypatch):
    """A decorated spline's map and log-det on one tensor search its knots once and give
    plain TFP's values."""
    calls = []
    search = _compat.spline_search
    monkeypatch.setattr(_compat, "spline_search",
                        lambda *a, **k: calls.append(1) or search(*a, **k))

    @_compat.shared_search_spline
    class Spline(tfb.RationalQuadraticSpline):
        pass

    rng = np.random.default_rng(0)
    widths, heights, slopes = _spline_knots(rng, tf.float64)
    x = rng.uniform(-2.5, 2.5, [5, 3])
    plain = tfb.RationalQuadraticSpline(widths, heights, slopes, range_min=-2.0)
    shared = Spline(widths, heights, slopes, range_min=-2.0)
    for method, log_det in (("forward", "forward_log_det_jacobian"),
                            ("inverse", "inverse_log_det_jacobian")):
        v = tf.constant(x)
        expected = (getattr(plain, method)(tf.constant(x)),
                    getattr(plain, log_det)(tf.constant(x), event_ndims=0))
        del calls[:]
        got = getattr(shared, method)(v), getattr(shared, log_det)(v, event_ndims=0)
        # forward + its log-det: one search; inverse + its log-det: TFP takes the log-det at
        # the inverse's output, a second tensor, so two searches.
        assert len(calls) == (1 if method == "forward" else 2)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = tf.constant(x + 0.5)
    np.testing.assert_array_equal(shared.forward(other).numpy(),
                                  plain.forward(tf.constant(x + 0.5)).numpy())


def _collected(ref):
    gc.collect()
    return ref() is None


def test_release_traced_bijector_cache_lets_a_traced_graph_and_its_bijector_go():
    held = {"bijector": tfb.Shift(tf.Variable(1.0))}
    graphs = []

    @tf.function
    def forward(x):
        graphs.append(weakref.ref(tf.compat.v1.get_default_graph()))
        return held["bijector"].forward(x)

    forward(tf.constant([1.0, 2.0]))
    eager_y = held["bijector"].forward(tf.constant([3.0]))  # an eager entry: kept
    ref, forward = weakref.ref(held.pop("bijector")), None
    assert not _collected(graphs[0]), "TFP's cache no longer holds traced graphs: drop the entry"
    assert _compat.release_traced_bijector_cache() >= 1
    assert _collected(graphs[0])
    assert not _collected(ref)  # still cached with the eager tensors
    del eager_y
    assert _collected(ref)


def test_forget_custom_gradients_unregisters_what_tracing_registered():
    @tf.custom_gradient
    def double(x):
        return 2.0 * x, lambda g: 2.0 * g

    graphs = []

    @tf.function
    def grad(x):
        graphs.append(weakref.ref(tf.compat.v1.get_default_graph()))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = double(x)
        return tape.gradient(y, x)

    before = _compat.custom_gradient_names()
    assert float(grad(tf.constant(3.0))) == 2.0
    grad = None
    new = _compat.custom_gradient_names() - before
    assert new, "tf.custom_gradient no longer registers per trace: drop the entry"
    assert not _collected(graphs[0])
    assert _compat.forget_custom_gradients(before) == len(new)
    assert not _compat.custom_gradient_names() - before
    assert _collected(graphs[0])
