"""The checks of the bijector contract, as plain functions that raise ``AssertionError``.

Every call hands the bijector a freshly created tensor: TFP caches ``forward``/``inverse``
results keyed by the input tensor, so reusing one tensor would let a wrong inverse pass by
cache lookup, and a cached ``forward`` is not on a ``GradientTape``.
``test_contract.py`` proves each check can fail on a deliberately broken bijector.
"""

import collections
import contextlib

import numpy as np
import tensorflow as tf

from tfp_flows import nn


def fresh(x, dtype):
    """A new tensor holding ``x`` (never a cached one)."""
    return tf.constant(np.array(x, dtype=tf.as_dtype(dtype).as_numpy_dtype))


def _event_ndims(bijector):
    return max(1, bijector.forward_min_event_ndims)


def _broadcast_ldj(ldj, batch_shape):
    return np.broadcast_to(np.asarray(ldj), batch_shape)


def check_round_trip(bijector, x, dtype, rtol):
    """``inverse(forward(x)) ≈ x`` and ``forward(inverse(y)) ≈ y``."""
    y = bijector.forward(fresh(x, dtype)).numpy()
    x_back = bijector.inverse(fresh(y, dtype)).numpy()
    np.testing.assert_allclose(x_back, x, rtol=rtol, atol=rtol, err_msg="inverse(forward(x))")
    y_again = bijector.forward(fresh(x_back, dtype)).numpy()
    np.testing.assert_allclose(y_again, y, rtol=rtol, atol=rtol, err_msg="forward(inverse(y))")


def autodiff_jacobian(fn, x, dtype):
    """Every example's Jacobian ``∂fn(x)_i/∂x_j``, ``[N, D, D]`` for ``x`` of shape ``[N, D]``.

    Row ``i`` is the gradient of ``Σ_b fn(x)[b, i]``: D backward passes, several times cheaper in
    eager mode than ``batch_jacobian``'s pfor tracing. Exact because each example's output
    depends on that example alone (every contract bijector, batch norm included: the contract
    runs it in inference mode).
    """
    flat = fresh(x, dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(flat)
        out = fn(flat)
        rows = [tf.reduce_sum(out[:, i]) for i in range(out.shape[-1])]
    return tf.stack([tape.gradient(row, flat) for row in rows], axis=1)


def autodiff_log_det(fn, x, dtype):
    """``log|det ∂fn/∂x|`` from the autodiff Jacobian, ``x`` of shape ``[..., D]``."""
    jac = autodiff_jacobian(fn, np.reshape(x, [-1, np.shape(x)[-1]]), dtype)
    _, log_abs_det = tf.linalg.slogdet(jac)
    return np.reshape(log_abs_det.numpy(), np.shape(x)[:-1])


def check_log_det(bijector, x, dtype, atol, batch_shapes=None):
    """Both log-dets against the autodiff Jacobians, and ``ildj(y) = −fldj(inverse(y))``.

    ``x`` has shape ``[..., D]``. With ``batch_shapes``, ``x`` is ``[N, D]`` and the log-dets are
    evaluated on its first ``prod(shape)`` rows reshaped to each ``shape + [D]``: one autodiff
    Jacobian per direction (``[N, D, D]``, D backward passes) serves every batch shape.
    """
    nd = _event_ndims(bijector)
    d = np.shape(x)[-1]
    rows = np.reshape(x, [-1, d])
    expected = autodiff_log_det(bijector.forward, rows, dtype)
    y_rows = bijector.forward(fresh(rows, dtype)).numpy()
    expected_inv = autodiff_log_det(bijector.inverse, y_rows, dtype)
    for batch_shape in batch_shapes or [np.shape(x)[:-1]]:
        batch_shape = tuple(batch_shape)
        n = int(np.prod(batch_shape, dtype=int))
        assert n <= len(rows), f"batch shape {batch_shape} needs {n} of {len(rows)} rows"
        xs = np.reshape(rows[:n], batch_shape + (d,))
        ys = np.reshape(y_rows[:n], batch_shape + (d,))
        where = f" (batch shape {batch_shape})"
        fldj = bijector.forward_log_det_jacobian(fresh(xs, dtype), event_ndims=nd).numpy()
        np.testing.assert_allclose(_broadcast_ldj(fldj, batch_shape),
                                   np.reshape(expected[:n], batch_shape), rtol=atol, atol=atol,
                                   err_msg="forward_log_det_jacobian vs autodiff" + where)
        ildj = bijector.inverse_log_det_jacobian(fresh(ys, dtype), event_ndims=nd).numpy()
        np.testing.assert_allclose(_broadcast_ldj(ildj, batch_shape),
                                   np.reshape(expected_inv[:n], batch_shape), rtol=atol,
                                   atol=atol,
                                   err_msg="inverse_log_det_jacobian vs autodiff" + where)
        x_of_y = bijector.inverse(fresh(ys, dtype))
        minus_fldj = -bijector.forward_log_det_jacobian(x_of_y, event_ndims=nd).numpy()
        np.testing.assert_allclose(_broadcast_ldj(ildj, batch_shape),
                                   _broadcast_ldj(minus_fldj, batch_shape), rtol=atol, atol=atol,
                                   err_msg="ildj(y) vs -fldj(inverse(y))" + where)


def check_compiled(bijector, dist, x, dtype, rtol, network_once=True):
    """``tf.function`` and ``tf.function(jit_compile=True)`` (XLA) give the eager results, and
    (``network_once``) each call's graph holds one pass of each conditioner network.

    The calls are traced into ONE graph function (one trace), each on its own argument so
    that no call can answer from another's cache entry. That function runs as a graph, then
    inside a ``jit_compile=True`` function, which XLA must compile whole (nested functions
    included: an op without an XLA kernel raises, see ``test_contract.py``): one trace, one
    XLA compilation for both modes.

    Network passes are counted while tracing: a map and a log-det each trace one pass of each
    network (an autoregressive flow's sequential direction: one pass in a ``tf.while_loop``),
    and a log-det of the tensor the map just ran on traces none (``forward_then_log_det``,
    ``log_prob``): it reads the log-det from TFP's cache. Eagerly, a ``tfb.Chain`` recomputes
    its links for the log-det (TFP's cache holds outputs weakly, and the chain's intermediate
    tensors are gone once ``forward`` returns), so the count is made on the trace.
    """
    nd = _event_ndims(bijector)
    y = bijector.forward(fresh(x, dtype)).numpy()
    calls = {  # name -> (call, its input)
        "forward": (bijector.forward, x),
        "inverse": (bijector.inverse, y),
        "forward_log_det_jacobian":
            (lambda t: bijector.forward_log_det_jacobian(t, event_ndims=nd), x),
        "inverse_log_det_jacobian":
            (lambda t: bijector.inverse_log_det_jacobian(t, event_ndims=nd), y),
        "forward_then_log_det": (lambda t: tf.stack(
            [tf.reduce_sum(bijector.forward(t)),
             tf.reduce_sum(bijector.forward_log_det_jacobian(t, event_ndims=nd))]), x),
        "log_prob": (dist.log_prob, y),
    }
    passes = {}

    def all_calls(inputs):
        results = {}
        for name, (fn, _) in calls.items():
            before = dict(counts)
            results[name] = fn(inputs[name])
            passes[name] = sorted(n - before.get(k, 0) for k, n in counts.items()
                                  if n > before.get(k, 0))
        return results

    def inputs():
        return {name: fresh(arg, dtype) for name, (_, arg) in calls.items()}

    with counting_network_calls() as counts:
        graph_fn = tf.function(all_calls).get_concrete_function(inputs())
    if network_once:
        for name, n in passes.items():
            assert all(c == 1 for c in n), (
                f"{name}: its graph runs a network {n} times, expected once each")
    results = {"tf.function": graph_fn(inputs()),
               "tf.function(jit_compile=True)":
                   tf.function(lambda t: graph_fn(t), jit_compile=True)(inputs())}
    for name, (fn, arg) in calls.items():
        eager = fn(fresh(arg, dtype)).numpy()
        for mode, compiled in results.items():
            np.testing.assert_allclose(compiled[name].numpy(), eager, rtol=rtol, atol=rtol,
                                       err_msg=f"{name} under {mode}")


@contextlib.contextmanager
def counting_network_calls():
    """Counts calls of every conditioner network (``nn.MLP``, ``nn.MADE``, ``nn.ConvNet``):
    yields a ``Counter`` keyed by network object."""
    calls = collections.Counter()
    originals = {cls: cls.__call__ for cls in (nn.MLP, nn.MADE, nn.ConvNet)}

    def counted(original):
        def call(self, *args, **kwargs):
            calls[id(self)] += 1
            return original(self, *args, **kwargs)
        return call

    for cls, original in originals.items():
        cls.__call__ = counted(original)
    try:
        yield calls
    finally:
        for cls, original in originals.items():
            cls.__call__ = original


def check_gradients(dist, y, dtype):
    """Gradients of the NLL are finite for every variable and non-zero for each."""
    variables = dist.trainable_variables
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(fresh(y, dtype)))
    grads = tape.gradient(loss, variables)
    for v, g in zip(variables, grads, strict=True):
        assert g is not None, f"no gradient reaches {v.name}"
        g = tf.convert_to_tensor(g).numpy()
        assert np.all(np.isfinite(g)), f"non-finite gradient for {v.name}"
        assert np.any(g != 0), f"zero gradient for {v.name}"


def grid_integral(dist, dtype, num_samples=20000, resolution=600):
    """``∫ p(x) dx`` over the plane by a grid sum, for a 2-D ``dist``.

    The grid covers the samples' range padded by half its width on each side.
    """
    samples = dist.sample(num_samples, seed=(1, 2)).numpy()
    lo, hi = np.quantile(samples, 0.0005, axis=0), np.quantile(samples, 0.9995, axis=0)
    lo, hi = lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo)
    axes = [np.linspace(lo[i], hi[i], resolution) for i in range(2)]
    xx, yy = np.meshgrid(*axes, indexing="ij")
    grid = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    log_p = dist.log_prob(fresh(grid, dtype)).numpy()  # eager: an XLA compile costs more here
    cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    return float(np.sum(np.exp(log_p.astype(np.float64))) * cell)


def check_gradient_matches_finite_difference(dist, y, dtype, h=1e-3, rtol=1e-3):
    """The autodiff gradient of the mean NLL over many points is the derivative of the mean NLL.

    Compares ``∇L · v`` with the central difference ``(L(θ + hv) − L(θ − hv)) / 2h`` along a
    random unit direction ``v`` of all trainable variables. With enough points the difference
    quotient sees what per-point autodiff cannot: log-dets that jump when a piecewise map's
    breakpoints sweep across data points bias the gradient.

    ``y`` must not depend on the flow: a perturbed spline flow's own samples crowd into the
    flat middle of a bin of height ~1e-3, where one point's NLL moves by nats over a step of
    1e-5 (smooth: per-point differences match autodiff as h -> 1e-8), and the difference
    quotient of their mean does not settle until h ~ 1e-6, far below the step that jumps need.
    ``h`` must stay large against the spacing of the jumps (about ``1 / N`` of the parameter
    range) and small against the curvature of the mean NLL: a state with a far sharper NLL
    than the cases' (e.g. 8-bin splines perturbed by 0.3) needs a smaller step.
    """
    variables = dist.trainable_variables

    def loss():
        return -tf.reduce_mean(dist.log_prob(fresh(y, dtype)))

    with tf.GradientTape() as tape:
        value = loss()
    grads = [tf.convert_to_tensor(g) for g in tape.gradient(value, variables)]
    rng = np.random.default_rng(5)
    direction = [rng.normal(size=v.shape) for v in variables]
    norm = np.sqrt(sum(np.sum(d * d) for d in direction))
    direction = [d / norm for d in direction]
    analytic = sum(float(np.sum(g.numpy() * d)) for g, d in zip(grads, direction, strict=True))
    for v, d in zip(variables, direction, strict=True):
        v.assign_add(h * d)
    plus = float(loss())
    for v, d in zip(variables, direction, strict=True):
        v.assign_sub(2 * h * d)
    minus = float(loss())
    for v, d in zip(variables, direction, strict=True):
        v.assign_add(h * d)
    numeric = (plus - minus) / (2 * h)
    grad_norm = np.sqrt(sum(float(np.sum(g.numpy() ** 2)) for g in grads))
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=rtol * grad_norm,
                               err_msg="gradient of the mean NLL vs finite differences")


def check_autoregressive(bijector, x, dtype, degrees):
    """Both Jacobians are triangular in the degree order, and no further masked than that:
    ``∂out_i/∂in_j = 0`` where ``degree_j ≥ degree_i`` (``i ≠ j``), ``≠ 0`` where
    ``degree_j < degree_i``."""
    degrees = np.asarray(degrees)
    masked = (degrees[None, :] >= degrees[:, None]) & ~np.eye(degrees.size, dtype=bool)
    y = bijector.forward(fresh(x, dtype)).numpy()
    for name, fn, v in (("forward", bijector.forward, x), ("inverse", bijector.inverse, y)):
        jac = np.abs(autodiff_jacobian(fn, np.reshape(v, [-1, degrees.size]), dtype).numpy())
        assert np.all(jac[:, masked] == 0), f"{name}: output depends on a later element"
        assert np.all(jac.max(axis=0)[~masked] > 0), f"{name}: an allowed dependency is missing"
