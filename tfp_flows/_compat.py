"""Every private TensorFlow / TFP / Keras API tfp_flows touches, in one place.

Each entry is one small function (or name) with the public-looking contract tfp_flows relies
on; ``tests/test_compat.py`` checks each one and names what broke after an upgrade. Add an
entry here (one function, one test) instead of reaching into a private attribute elsewhere.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow.python.framework import ops
from tensorflow_probability.python.bijectors import rational_quadratic_spline as _rq_spline
from tensorflow_probability.python.internal import cache_util

# --------------------------------------------------------------------------- TFP

#: TFP's bijector cache that also stores per-input attributes (e.g. a log-det computed with
#: the output), as ``tfb.FFJORD`` uses it. Set as the ``_cache`` class attribute of a bijector
#: whose ``_augmented_forward`` / ``_augmented_inverse`` return ``(output, attrs or None)``.
BijectorCacheWithGreedyAttrs = cache_util.BijectorCacheWithGreedyAttrs


def greedy_attrs_cache(forward_name="_augmented_forward", inverse_name="_augmented_inverse"):
    """A ``BijectorCacheWithGreedyAttrs`` for a bijector class's ``_cache`` attribute."""
    return BijectorCacheWithGreedyAttrs(forward_name=forward_name, inverse_name=inverse_name)


def spline_search(spline, x=None, y=None):
    """TFP's ``RationalQuadraticSpline._compute_shared`` (private) by comparisons and one-hot
    selection instead of ``searchsorted`` and batched gathers; the same values.

    With knots ``k_0 < … < k_K`` (the ``x`` knots for ``x``, the ``y`` knots for ``y``), ``v``
    out of ``(k_0, k_K)`` is moved to ``k_0``, its bin is ``i = #{j in 1..K-1: k_j <= v}``
    (``searchsorted(..., side="right") - 1``) and each of the six knot values TFP gathers is
    ``Σ_j onehot(i)_j · knot_j`` over the ``K`` bins: the one term's value exactly. Its gradient
    is that one-hot times the upstream gradient, where a gather's is a scatter-add: the first
    ``fit`` epoch of ``flows.nsf(2)`` (its XLA compile) took 54 s instead of 76 s.
    Shapes: ``v`` and the knots' batch shape broadcast, as in TFP.
    """
    range_min = tf.convert_to_tensor(spline.range_min, name="range_min")
    kx = _rq_spline._knot_positions(spline.bin_widths, range_min)
    ky = _rq_spline._knot_positions(spline.bin_heights, range_min)
    kd = _rq_spline._padded(_rq_spline._ensure_at_least_1d(spline.knot_slopes), lhs=1, rhs=1)
    knots, v = (kx, x) if x is not None else (ky, y)
    out_of_bounds = (v <= knots[..., 0]) | (v >= knots[..., -1])
    v = tf.where(out_of_bounds, knots[..., 0], v)
    bins = tf.reduce_sum(tf.cast(v[..., tf.newaxis] >= knots[..., 1:-1], tf.int32), axis=-1)
    one_hot = tf.one_hot(bins, tf.shape(kx)[-1] - 1, dtype=v.dtype)

    def select(k):
        return tf.reduce_sum(one_hot * k, axis=-1)

    x_k, y_k, d_k = select(kx[..., :-1]), select(ky[..., :-1]), select(kd[..., :-1])
    w_k, h_k = select(kx[..., 1:]) - x_k, select(ky[..., 1:]) - y_k
    return _rq_spline._SplineShared(out_of_bounds=out_of_bounds, x_k=x_k, y_k=y_k, d_k=d_k,
                                    d_kp1=select(kd[..., 1:]), h_k=h_k, w_k=w_k,
                                    s_k=h_k / w_k)


def shared_search_spline(spline_class):
    """Class decorator for a ``tfb.RationalQuadraticSpline`` subclass: its private
    ``_compute_shared(x=None, y=None)``, which TFP's map and log-det each call, is
    ``spline_search``, done once per input tensor.

    TFP computes the knots and their search on every call, so a map and its log-det on the
    same tensor do it twice. Here the result is kept per instance, keyed by the input tensor
    (held, so its id is not reused). Create one instance per set of parameters, as
    ``transformers.RationalQuadraticSpline.bijector`` does.
    """

    def _compute_shared(self, x=None, y=None):
        memo = self.__dict__.setdefault("_shared_search", {})
        key = (id(x), id(y))
        if key not in memo:
            memo[key] = (x, y, spline_search(self, x=x, y=y))
        return memo[key][2]

    spline_class._compute_shared = _compute_shared
    return spline_class


def _bijector_cache_storages():
    """The storages of TFP's bijector caches: the one ``tfb.Bijector._cache`` that every
    bijector class shares, and those of classes (mixins included) with a ``_cache`` of their
    own (``greedy_attrs_cache``)."""
    storages, classes, seen = {}, [tfp.bijectors.Bijector], set()
    while classes:
        cls = classes.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for base in cls.__mro__:
            cache = base.__dict__.get("_cache")
            if isinstance(cache, cache_util.BijectorCache):
                storages[id(cache.storage)] = cache.storage
        classes.extend(cls.__subclasses__())
    return list(storages.values())


def release_traced_bijector_cache():
    """Drops the entries of TFP's bijector caches that hold graph (symbolic) tensors.

    TFP caches every bijector call (``y = f(x)`` and ``x``) in storages shared by bijector
    instances; it keeps ``x`` while ``y`` is alive, and the entry's key holds the bijector. A
    ``y`` made while tracing a ``tf.function`` lives as long as its graph, and the graph as
    long as ``x``: a traced graph then stays in memory, with its bijectors and their
    variables, for the life of the process. An entry of a finished trace is never used
    again. Runs only eagerly (while tracing, an enclosing trace may still use its entries);
    entries of eager tensors are kept. Returns the number of entries dropped.
    """
    if not tf.executing_eagerly():
        return 0
    dropped = 0
    for storage in _bijector_cache_storages():
        for key in list(storage):
            if any(tf.is_symbolic_tensor(ref()) for ref in key.ref_set):
                key.cancel()
                dropped += storage.pop(key, None) is not None
    return dropped


# --------------------------------------------------------------------------- Keras


def learning_rate_object(optimizer):
    """The optimizer's learning rate as configured: a ``keras.Variable`` for a constant, the
    ``LearningRateSchedule`` object itself for a schedule (``optimizer.learning_rate``
    evaluates a schedule at ``iterations``; Keras has no public getter for the object)."""
    return optimizer._learning_rate


def track_variable(model, variable):
    """Makes ``model`` own ``variable`` (a ``keras.Variable`` not created by a layer):
    it then appears in ``model.weights``, ``save_weights`` and optimizers."""
    model._track_variable(variable)


def skip_symbolic_build(model_class):
    """Class decorator: ``fit`` / ``evaluate`` no longer build ``model_class`` symbolically.

    Under a strategy Keras 3.15's TensorFlow trainer first averages a data batch over the
    replicas to build the model (``_maybe_symbolic_build``); under MultiWorkerMirroredStrategy
    that fails for ``(x, y)`` batches (the reduce takes one tensor, not a tuple). For a model
    that is built, with a built optimizer, before ``fit`` there is nothing to build."""
    model_class._maybe_symbolic_build = lambda self, iterator=None, data_batch=None: None
    return model_class


# --------------------------------------------------------------------------- TF


def module_constants(module):
    """Every constant (an eager ``tf.Tensor`` or NumPy array, not a variable) reachable from
    the attributes of ``module`` and its sub-modules, in a deterministic order
    (``tf.Module._flatten``: attributes sorted by name). For a flow these are its structure:
    permutations, ``LULinear``'s ``P`` and signs, masks and index sets."""
    def is_constant(value):
        return (isinstance(value, np.ndarray)
                or (isinstance(value, tf.Tensor) and hasattr(value, "numpy")))
    return list(module._flatten(predicate=is_constant, expand_composites=False))


def one_trace_per_object(fn):
    """Marks ``fn`` (a ``tf.function``) as traced once per object it wraps, so TensorFlow does
    not warn "N out of the last N calls ... triggered tf.function retracing" when one is made
    per distribution (TF counts traces by the wrapped method's code, shared by every
    ``Distribution.log_prob``). Returns ``fn``."""
    fn._omit_frequent_tracing_warning = True
    return fn


def strategy_supports_no_merge_call():
    """True when the current ``tf.distribute`` strategy can run an optimizer without
    ``merge_call`` (so a ``tf.cond`` around ``optimizer.apply`` is legal in replica
    context)."""
    return tf.__internal__.distribute.strategy_supports_no_merge_call()


def custom_gradient_names():
    """The names under which ``tf.custom_gradient`` has registered gradient functions so far
    (each traced call registers one, ``CustomGradient-<uid>``, in TF's global registry)."""
    return {name for name in ops._gradient_registry._registry
            if name.startswith("CustomGradient-")}


def forget_custom_gradients(keep):
    """Unregisters the ``tf.custom_gradient`` functions not named in ``keep``
    (``custom_gradient_names()`` taken before the traces whose gradients are done).

    In a ``tf.function`` every call of a ``tf.custom_gradient`` function registers its
    gradient function in TF's global registry, never removed; the function holds the traced
    graph's tensors, so the graph (a flow's train step: thousands of ops, its captured
    variables) outlives everything else. A train step's gradients are built while it is
    traced, so once it is, its registrations are not needed again. Only for traces nobody
    differentiates later (a ``tf.function`` called under a tape builds its gradient at the
    first ``tape.gradient``, from these registrations). Returns the number unregistered.
    """
    names = custom_gradient_names() - set(keep)
    for name in names:
        ops._gradient_registry._registry.pop(name, None)
    return len(names)


def release_traces(custom_gradients_before):
    """After traces whose gradients are built and which nobody differentiates later (a train
    step, an evaluation): ``forget_custom_gradients(custom_gradients_before)`` and
    ``release_traced_bijector_cache()``, so their graphs go with the functions that hold
    them."""
    forget_custom_gradients(custom_gradients_before)
    release_traced_bijector_cache()
