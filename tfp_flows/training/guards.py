"""NaN guards: a non-finite loss or gradient never reaches the weights.

``NaNGuard.apply`` runs inside the compiled train step (``tf.function``, XLA and
``tf.distribute`` replica context). Per step:

* ``ok = isfinite(loss) and every gradient entry is finite`` (agreed across replicas);
* ok: the optimizer applies the gradients and ``consecutive_bad_steps`` resets to 0;
* not ok: the optimizer is not called at all (weights, slots and ``iterations`` untouched),
  ``skipped_steps`` and ``consecutive_bad_steps`` grow by one; every ``backoff_after``
  consecutive bad steps the learning rate is multiplied by ``backoff_factor``;
* once ``consecutive_bad_steps >= stop_after`` every later step is skipped too (the weights
  stay at the last good values; these steps are not counted) and ``FlowModel.fit`` / ``train``
  stop with a message naming the cause (``stop_message``) at the end of the current execution
  (``steps_per_execution`` batches).

The counters are ``keras.Variable``s and appear in the fit logs and history.
"""

import contextlib
import threading

import keras
import tensorflow as tf

from tfp_flows import _checks, _compat

CAUSES = {0: "none", 1: "non-finite loss", 2: "non-finite gradient"}


@keras.saving.register_keras_serializable(package="tfp_flows")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``step -> scale · schedule(step)``: lets the guard back off a scheduled learning rate.

    ``scale`` is the guard's variable; a deserialised copy starts at scale 1 until a guard
    re-attaches it.
    """

    def __init__(self, schedule, scale=None):
        self.schedule = schedule
        self.scale = scale

    def __call__(self, step):
        lr = self.schedule(step)
        if self.scale is None:
            return lr
        return lr * tf.cast(tf.convert_to_tensor(self.scale), lr.dtype)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]))


def _counter(name):
    return keras.Variable(0, dtype="int32", trainable=False, name=name,
                          aggregation="only_first_replica")


def all_finite(tensors):
    """``True`` iff every entry of every (non-None) tensor is finite (a scalar bool)."""
    checks = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors if t is not None]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


class NaNGuard:
    """Skip-and-count guard for a train step (see the module docstring).

    Args:
      enabled: if False, gradients are applied unconditionally (counters stay at 0).
      backoff_after: ``k``; the learning rate is multiplied by ``backoff_factor`` after every
        ``k`` consecutive bad steps.
      backoff_factor: in (0, 1).
      stop_after: ``m >= k``; after ``m`` consecutive bad steps training stops.
    """

    LOG_KEYS = ("skipped_steps", "consecutive_bad_steps", "lr_backoffs")

    def __init__(self, enabled: bool = True, backoff_after: int = 3, backoff_factor: float = 0.5,
                 stop_after: int = 10):
        self.enabled = bool(enabled)
        self.backoff_after = _checks.positive_int(backoff_after, "backoff_after")
        self.backoff_factor = _checks.in_open_interval(backoff_factor, 0.0, 1.0, "backoff_factor")
        self.stop_after = _checks.positive_int(stop_after, "stop_after")
        if self.stop_after < self.backoff_after:
            raise ValueError(f"`stop_after` ({stop_after}) must be >= `backoff_after` "
                             f"({backoff_after}).")
        self.skipped_steps = _counter("skipped_steps")
        self.consecutive_bad_steps = _counter("consecutive_bad_steps")
        self.lr_backoffs = _counter("lr_backoffs")
        self.last_cause = _counter("last_bad_cause")
        self.lr_scale = keras.Variable(1.0, dtype="float32", trainable=False, name="lr_scale",
                                       aggregation="only_first_replica")
        self._lr_variable = None

    @property
    def variables(self):
        """The guard's state (counters and learning-rate scale), saved with the model."""
        return [self.skipped_steps, self.consecutive_bad_steps, self.lr_backoffs,
                self.last_cause, self.lr_scale]

    def config(self):
        return dict(nan_guard=self.enabled, backoff_after=self.backoff_after,
                    backoff_factor=self.backoff_factor, stop_after=self.stop_after)

    def attach(self, optimizer):
        """Connects the learning-rate back-off to ``optimizer`` (call before tracing).

        A constant learning rate is a variable and is multiplied in place (so callbacks such as
        ``ReduceLROnPlateau`` see the backed-off value); a schedule is wrapped in
        ``ScaledSchedule`` driven by ``lr_scale``.
        """
        self._lr_variable = None
        if not self.enabled:
            return
        current = optimizer.learning_rate
        if isinstance(current, keras.Variable):
            self._lr_variable = current
            return
        schedule = _compat.learning_rate_object(optimizer)
        if isinstance(schedule, ScaledSchedule):
            schedule.scale = self.lr_scale
        else:
            optimizer.learning_rate = ScaledSchedule(schedule, self.lr_scale)

    def reset(self):
        """Zeroes the counters (eagerly, at the start of ``fit``); the learning rate is kept."""
        for v in (self.skipped_steps, self.consecutive_bad_steps, self.lr_backoffs,
                  self.last_cause):
            v.assign(0)

    def logs(self):
        return {k: tf.convert_to_tensor(getattr(self, k)) for k in self.LOG_KEYS}

    @property
    def halted(self):
        return int(self.consecutive_bad_steps.numpy()) >= self.stop_after

    def stop_message(self):
        cause = CAUSES.get(int(self.last_cause.numpy()), "unknown")
        return (f"tfp_flows NaN guard: training stopped after {self.stop_after} consecutive "
                f"skipped steps (cause of the last one: {cause}; {int(self.skipped_steps.numpy())}"
                f" skipped in total, learning rate backed off {int(self.lr_backoffs.numpy())} "
                "times). The weights are left at their last good values. Lower the learning "
                "rate, add gradient clipping (e.g. global_clipnorm=1.0) or check the data.")

    def apply(self, optimizer, loss, grads, variables):
        """Applies ``grads`` to ``variables`` with ``optimizer`` iff the step is good.

        Must be called in replica context (inside the train step). Returns the scalar bool
        ``ok``.
        """
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        if replicas > 1:
            grads = sum_over_replicas(ctx, grads)
        with _clip_thresholds_divided(optimizer, replicas):
            if not self.enabled:
                optimizer.apply(grads, variables)
                return tf.constant(True)
            loss_ok = tf.reduce_all(tf.math.is_finite(loss))
            grad_ok = all_finite(grads)
            if replicas > 1:
                # Every replica must take the same decision: any bad replica loss is bad.
                loss_ok = ctx.all_reduce("sum", tf.cast(~loss_ok, tf.float32)) == 0
            running = self.consecutive_bad_steps < self.stop_after
            ok = loss_ok & grad_ok & running
            _apply_if(ok, optimizer, grads, variables)

        # Steps after the stop are not counted: with steps_per_execution > 1, fit only sees
        # the stop at the end of an execution, and the counters should not depend on that.
        bad = tf.cast(~ok & running, tf.int32)
        consecutive = tf.where(running, (self.consecutive_bad_steps + 1) * bad,
                               self.consecutive_bad_steps)
        self.consecutive_bad_steps.assign(consecutive)
        self.skipped_steps.assign_add(bad)
        cause = tf.where(loss_ok, 2, 1)
        self.last_cause.assign(tf.where(ok | ~running, self.last_cause, cause))
        backoff = ((~ok) & running & (consecutive % self.backoff_after == 0)
                   & (consecutive < self.stop_after))
        self.lr_backoffs.assign_add(tf.cast(backoff, tf.int32))
        factor = tf.where(backoff, self.backoff_factor, 1.0)
        if self._lr_variable is not None:
            lr = self._lr_variable
            lr.assign(lr * tf.cast(factor, lr.dtype))
        else:
            self.lr_scale.assign(self.lr_scale * factor)
        return ok


def sum_over_replicas(ctx, grads):
    """All-reduces per-replica gradients (of ``loss / n``) and returns ``G / n`` everywhere.

    Keras 3 clips each replica's partial gradient before its own all-reduce, which is not
    the single-device clipping of the full-batch gradient ``G = Σ_r g_r``. Giving every
    replica ``G / n`` with clipping thresholds divided by ``n`` (``_clip_thresholds_divided``)
    makes the optimizer's sum ``n · clip_{c/n}(G / n) = clip_c(G)``: clipping by norm, global
    norm and value are all positively homogeneous.
    """
    n = ctx.num_replicas_in_sync
    summed = ctx.all_reduce("sum", [g for g in grads if g is not None])
    it = iter(summed)
    return [None if g is None else next(it) / tf.cast(n, g.dtype) for g in grads]


_CLIP_LOCK = threading.Lock()
_CLIP_NAMES = ("clipnorm", "global_clipnorm", "clipvalue")


@contextlib.contextmanager
def _clip_thresholds_divided(optimizer, n):
    """Divides the optimizer's clipping thresholds by ``n`` while the step is traced.

    MirroredStrategy traces the replicas in parallel threads on the same optimizer: the first
    thread in divides, the last one out restores (a lock-protected count).
    """
    if n <= 1:
        yield
        return
    with _CLIP_LOCK:
        depth = getattr(optimizer, "_tfp_flows_clip_depth", 0)
        if depth == 0:
            optimizer._tfp_flows_clip_saved = {k: getattr(optimizer, k, None)
                                               for k in _CLIP_NAMES}
            for k, v in optimizer._tfp_flows_clip_saved.items():
                if v:
                    setattr(optimizer, k, v / n)
        optimizer._tfp_flows_clip_depth = depth + 1
    try:
        yield
    finally:
        with _CLIP_LOCK:
            optimizer._tfp_flows_clip_depth -= 1
            if optimizer._tfp_flows_clip_depth == 0:
                for k, v in optimizer._tfp_flows_clip_saved.items():
                    setattr(optimizer, k, v)


def _apply_if(ok, optimizer, grads, variables):
    """``optimizer.apply(grads, variables)`` under ``tf.cond(ok, ...)``, distribution-safe.

    Keras optimizers may call ``merge_call``, which a ``cond`` in replica context cannot hold;
    then (as Keras's LossScaleOptimizer does) the ``cond`` runs in cross-replica context.
    """

    def apply():
        optimizer.apply(grads, variables)

    def skip():
        pass

    if _compat.strategy_supports_no_merge_call():
        tf.cond(ok, apply, skip)
        return

    def cross_replica(strategy, ok, grads):
        ok = strategy.experimental_local_results(ok)[0]

        def apply_each():
            strategy.extended.call_for_each_replica(
                lambda g: optimizer.apply(g, variables), args=(grads,))

        tf.cond(ok, apply_each, skip)

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(ok, grads))
