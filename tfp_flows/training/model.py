"""``FlowModel``: a ``keras.Model`` that trains a tfp_flows distribution with ``fit``.

What it minimises is an objective object (``tfp_flows.training.objectives``):
``MaximumLikelihood`` on data (the default, ``FlowModel(dist)``), ``ReverseKL`` to an
unnormalised target (``FlowModel.for_target(log_p, dist)``) or ``DequantizedBound`` on integer
pixels. ``fit`` and ``tfp_flows.training.train`` run the same step (``training/step.py``).

Conditional flows ``p(x | c)`` (builders with ``context_size=C``): the context rides in Keras's
``y`` slot, ``fit(x, c)`` with ``c [N, C]`` or a dataset of ``(x, c)`` / ``(x, c, w)``;
``log_prob(x, c)``, ``sample(n, c)`` with ``c [C]`` or ``[n, C]``, ``predict((x, c))``.
For an unconditional flow a dataset's ``y`` is ignored and an array ``y`` is refused.

The model owns no Keras layers: its weights are the ``keras.Variable``s behind the flow's
``tf.Variable``s (``tfp_flows.keras_variable_of``), so Keras and TFP train the same storage.
Its non-trainable weights also hold the NaN guard's counters and learning-rate scale and the
objective's seed stream, so ``BackupAndRestore`` and ``ModelCheckpoint`` + ``load_model``
resume exactly where the run was.
"""

import hashlib
import warnings
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks, _compat
from tfp_flows import flows as _flows
from tfp_flows._mode import training_mode
from tfp_flows._variables import keras_variable_of
from tfp_flows.bijectors._base import nested_bijectors
from tfp_flows.training import checks, distributed, execution, objectives, slow_xla, step
from tfp_flows.training.guards import NaNGuard


def flow_variables(distribution: tfp.distributions.Distribution) -> tuple[list, list]:
    """Builds lazy variables and returns ``(trainable, non_trainable)`` ``keras.Variable`` lists.

    Raises:
      TypeError: if a variable of ``distribution`` was not made by ``tfp_flows.make_variable``.
      ValueError: if the event shape is not ``[D]``.
    """
    event_size = _checks.vector_event_size(distribution, "FlowModel")
    context_size = context_size_of(distribution)
    kwargs = {} if context_size is None else objectives.context_kwargs(
        distribution, tf.zeros([1, context_size], distribution.dtype))
    with training_mode(False):
        distribution.log_prob(tf.zeros([1, event_size], distribution.dtype), **kwargs)
    seen = set()
    trainable, non_trainable = [], []
    for v in distribution.variables:
        if id(v) in seen:
            continue
        seen.add(id(v))
        (trainable if v.trainable else non_trainable).append(keras_variable_of(v))
    return trainable, non_trainable


def context_size_of(distribution: tfp.distributions.Distribution) -> int | None:
    """``C`` of a conditional flow (its ``flow_config`` or its conditional bijectors), or None.

    Raises:
      ValueError: if the flow's conditional bijectors expect contexts of different sizes (one
        context ``c`` reaches all of them).
    """
    config = getattr(distribution, "flow_config", None) or {}
    if config.get("context_size") is not None:
        return int(config["context_size"])
    bijector = getattr(distribution, "bijector", None)
    sizes = set() if bijector is None else {
        int(b.context_size) for b in nested_bijectors(bijector)
        if getattr(b, "context_size", None) is not None}
    if len(sizes) > 1:
        raise ValueError(f"{distribution.name}: its conditional bijectors expect contexts of "
                         f"different sizes {sorted(sizes)}; one context `c` reaches all of "
                         "them, so give them one `context_size`.")
    return sizes.pop() if sizes else None


def check_context(c, context_size, dtype, what="c"):
    """Checks a context against a flow: required iff ``context_size`` is not None, floating,
    ``[..., C]``; returns it as a tensor of ``dtype`` (or None)."""
    if context_size is None:
        if c is not None:
            raise ValueError(f"The flow is unconditional: it takes no context `{what}` "
                             "(build it with `context_size=C` to model p(x | c)).")
        return None
    if c is None:
        raise ValueError(f"The flow is conditional (context_size={context_size}): pass the "
                         f"context `{what}` of shape [..., {context_size}].")
    c = tf.convert_to_tensor(c)
    if not c.dtype.is_floating:
        raise TypeError(f"The context `{what}` must be floating-point, got {c.dtype.name}.")
    if c.shape.rank == 0 or (c.shape[-1] is not None and c.shape[-1] != context_size):
        raise ValueError(f"The context `{what}` has shape {c.shape}, but the flow takes "
                         f"contexts of size {context_size} ([..., {context_size}]).")
    return tf.cast(c, dtype)


def check_inputs(objective, x, y, event_size, context_size, dtype, what="x"):
    """Checks training data ``x`` and the context ``y`` before the first step; returns both.

    ``x``: what ``objective.check_data`` takes (an array or a dataset of ``x`` / ``(x, c)`` /
    ``(x, c, w)`` batches). A conditional flow needs ``y [N, C]`` with an array, or datasets
    of ``(x, c, ...)``; an unconditional one refuses an array ``y``.
    """
    x = objective.check_data(x, event_size, dtype, what)
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if context_size is not None:
            if not isinstance(spec, tuple) or len(spec) < 2:
                raise ValueError(
                    f"{what}: the flow is conditional (context_size={context_size}), so the "
                    "dataset must yield (x, c) or (x, c, sample_weight) batches.")
            c_spec = spec[1]
            check_context(tf.zeros([1 if d is None else d for d in c_spec.shape], c_spec.dtype)
                          if c_spec.shape.rank is not None else None, context_size, dtype,
                          f"c of {what}")
        return x, y
    if context_size is None:
        if y is not None:
            raise ValueError(
                "The flow is unconditional: `fit(x, y)` with an array `y` has no meaning for "
                "a density p(x) (build the flow with `context_size=C` to model p(x | c) from "
                "`fit(x, c)`).")
        return x, y
    c = check_context(y, context_size, dtype, "y")
    c = checks.check_array(c.numpy(), context_size, dtype, "the context y")
    if len(c) != len(x):
        raise ValueError(f"`x` has {len(x)} examples but the context `y` has {len(c)}.")
    return x, c


def structure_fingerprint(distribution):
    """``int32 [4]``: a hash of every constant of the flow (permutations, ``LULinear``'s ``P``
    and signs, masks, index sets), which are fixed at construction and not weights."""
    digest = hashlib.sha256()
    for value in _compat.module_constants(distribution):
        a = np.asarray(value)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return np.frombuffer(digest.digest()[:16], np.int32).copy()


SKIPPED_BATCHES = "skipped_batches"

# Measured on two moons (8 couplings, 2x64, batch 512, 2 cores): 1 -> 241 steps/s, 8 -> 294,
# 16 -> 323, 32 -> 327, 64 -> 339, 128 -> 326.
DEFAULT_STEPS_PER_EXECUTION = 32


class MeanOrNaN(keras.metrics.Mean):
    """``keras.metrics.Mean`` that is NaN, not 0, while nothing was averaged (every step or
    batch so far was left out as non-finite): a run that produced no finite loss never reports
    one."""

    def result(self):
        return tf.where(self.count > 0, super().result(), tf.constant(np.nan, self.dtype))


class _GuardStop(keras.callbacks.Callback):
    """Stops ``fit`` once the NaN guard has seen ``stop_after`` consecutive bad steps."""

    def __init__(self, guard):
        super().__init__()
        self.guard = guard

    def on_train_batch_end(self, batch, logs=None):
        if self.guard.enabled and self.guard.halted:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.guard.enabled and self.guard.halted:
            self.model.stop_reason = self.guard.stop_message()
            warnings.warn(self.model.stop_reason, RuntimeWarning, stacklevel=2)


class _ReleaseTraces(keras.callbacks.Callback):
    """Lets the graphs that ``fit``, ``evaluate`` or ``predict`` traced go with their model.

    TFP's bijector cache (``_compat.release_traced_bijector_cache``) and the gradient
    functions ``tf.custom_gradient`` registers while a step is traced
    (``_compat.forget_custom_gradients``; ``nn.MLP``'s output layer) would otherwise keep
    each traced graph, its bijectors and their variables for the life of the process. At the
    end of each run both let go of what its traces made (``_compat.release_traces``).
    """

    def __init__(self):
        super().__init__()
        # custom_gradient_names() at each run's begin; runs nest (fit's validation runs).
        self._before = []

    def on_train_begin(self, logs=None):
        self._before.append(_compat.custom_gradient_names())

    def on_train_end(self, logs=None):
        _compat.release_traces(self._before.pop() if self._before
                               else _compat.custom_gradient_names())

    on_test_begin = on_predict_begin = on_train_begin
    on_test_end = on_predict_end = on_train_end


@keras.saving.register_keras_serializable(package="tfp_flows")
@_compat.skip_symbolic_build  # built in __init__, its optimizer in compile
class FlowModel(keras.Model):
    """Keras model around a tfp_flows ``tfd.TransformedDistribution``.

    Args:
      distribution: a distribution over ``[D]`` whose variables were made by tfp_flows (all
        ``tfp_flows.flows`` builders and ``tfp_flows.bijectors``).
      objective: what ``fit`` minimises (``tfp_flows.training.objectives``); None:
        ``MaximumLikelihood()``.
      nan_guard: skip steps with a non-finite loss or gradient (see ``NaNGuard``).
      backoff_after, backoff_factor, stop_after: NaN-guard settings.
      name: model name.

    ``compile(optimizer, jit_compile=True, steps_per_execution=32)`` takes no loss. ``fit(x)``
    takes an array ``[N, D]`` or a ``tf.data.Dataset`` of batches ``x`` or ``(x, ...)`` (extra
    tuple entries are ignored); ``predict(x)`` returns ``log q(x) [N]``.
    """

    def __init__(self, distribution: tfp.distributions.Distribution,
                 objective: objectives.Objective | None = None, nan_guard: bool = True,
                 backoff_after: int = 3, backoff_factor: float = 0.5, stop_after: int = 10,
                 name: str = "flow_model", **kwargs):
        super().__init__(name=name, **kwargs)
        trainable, non_trainable = flow_variables(distribution)
        self._distribution = distribution
        self.event_size = int(distribution.event_shape[0])
        self.context_size = context_size_of(distribution)
        self.objective = objectives.get(objective)
        if self.context_size is not None and not self.objective.needs_data:
            raise ValueError(f"{type(self.objective).__name__} trains an unconditional flow; "
                             f"this flow is conditional (context_size={self.context_size}).")
        self.objective.build(distribution)
        self.guard = NaNGuard(nan_guard, backoff_after, backoff_factor, stop_after)
        # The guard's counters and lr scale and the objective's seed stream are state too:
        # saved with the weights, so a resumed run continues exactly.
        self.structure = keras.Variable(structure_fingerprint(distribution), dtype="int32",
                                        trainable=False, name="structure_fingerprint")
        state = (list(self.guard.variables) + list(self.objective.state_variables)
                 + [self.structure])
        for v in trainable + list(self.objective.trainable_variables) + non_trainable + state:
            _compat.track_variable(self, v)
        self._loss_tracker_ = MeanOrNaN(name="loss")
        self._metric_trackers = {k: MeanOrNaN(name=k) for k in self.objective.metric_names}
        # Evaluation batches left out as non-finite (reported by evaluate when > 0).
        self._skipped_batches = keras.metrics.Sum(name=SKIPPED_BATCHES)
        self.stop_reason = None
        self._executions = execution.Executions()
        self.built = True

    # ----------------------------------------------------------------- construction
    @classmethod
    def for_target(cls, target_log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | str,
                   distribution: tfp.distributions.Distribution, num_samples: int = 256,
                   seed: int | None = None,
                   beta: float | Callable[[tf.Tensor], tf.Tensor] | None = None,
                   **kwargs) -> "FlowModel":
        """A model trained by reverse KL to ``target_log_prob_fn`` (no data needed):
        ``FlowModel(distribution, objective=ReverseKL(target, num_samples, beta, seed))``.

        Args:
          target_log_prob_fn: ``z [..., D] -> log p̃(z) [...]``, or the name of an energy in
            ``tfp_flows.energies.ENERGIES`` (then the model can be saved with ``model.save``).
          distribution: the flow ``q``.
          num_samples: Monte-Carlo samples per step.
          seed: int seed of the sampling stream.
          beta: annealing ``β_t`` (None, a number or ``step -> β``, e.g.
            ``objectives.LinearRamp(steps)``).
        """
        objective = objectives.ReverseKL(target_log_prob_fn, num_samples, beta=beta, seed=seed)
        return cls(distribution, objective=objective, **kwargs)

    @property
    def _target(self):
        """The reverse-KL target (None when the objective uses data)."""
        return getattr(self.objective, "target", None)

    @property
    def num_samples(self):
        return getattr(self.objective, "num_samples", None)

    @property
    def distribution(self) -> tfp.distributions.Distribution:
        return self._distribution

    @property
    def metrics(self):
        return ([self._loss_tracker_] + list(self._metric_trackers.values())
                + [self._skipped_batches])

    def compile(self, optimizer="adam", loss=None, jit_compile=None, steps_per_execution=None,
                **kwargs):
        """Keras ``compile`` without a loss (the objective is fixed by the model).

        ``jit_compile`` defaults (``None`` or ``"auto"``) to True (XLA) and
        ``steps_per_execution`` to 32, not Keras's 1: a flow's train step takes a few
        milliseconds, and with 1 Keras's per-call overhead costs as much again
        (``benchmarks/README.md``). Batch-level callbacks (``on_train_batch_end``, the progress
        bar) then run every 32 batches; pass ``steps_per_execution=1`` to see every batch. The
        same defaults hold under ``MirroredStrategy`` and ``MultiWorkerMirroredStrategy``
        (``training.distributed``: there XLA compiles each replica's loss and gradients).
        The exception: a flow whose XLA step is known to be slower than graph mode
        (``training.slow_xla``: a convolutional conditioner, on a machine without a GPU)
        defaults to graph mode, and ``jit_compile=True`` warns for it.
        """
        if loss is not None:
            raise TypeError("FlowModel's loss is fixed (negative log-likelihood or reverse KL); "
                            f"do not pass `loss` (got {loss!r}).")
        slow = slow_xla.slow_under_xla(self._distribution)
        if jit_compile is None or jit_compile == "auto":
            jit_compile = slow is None
        elif jit_compile and slow:
            warnings.warn(f"FlowModel.compile: {slow}.", UserWarning, stacklevel=2)
        if steps_per_execution is None:
            steps_per_execution = DEFAULT_STEPS_PER_EXECUTION
        super().compile(optimizer=optimizer, jit_compile=jit_compile,
                        steps_per_execution=steps_per_execution, **kwargs)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        self.guard.attach(self.optimizer)

    # ----------------------------------------------------------------- densities
    def _context(self, c, what="c"):
        return check_context(c, self.context_size, self._distribution.dtype, what)

    def _log_prob(self, x, c):
        x = tf.cast(x, self._distribution.dtype)
        return self._distribution.log_prob(
            x, **objectives.context_kwargs(self._distribution, c))

    def log_prob(self, x, c=None) -> tf.Tensor:
        """``log q(x)`` (or ``log q(x | c)``), ``[..., D] -> [...]``, in inference mode; ``x``
        must hold floats."""
        x = checks.floating(x, self._distribution.dtype, "x")
        c = self._context(c)
        with training_mode(False):
            return self._log_prob(x, c)

    def sample(self, n: int, c=None, seed: int | None = None) -> tf.Tensor:
        """``n`` samples ``[n, D]`` from the flow (given ``c [C]`` or ``[n, C]`` if it is
        conditional), in inference mode.

        ``seed``: None (fresh randomness), an int or a stateless ``[2]`` seed (the same seed
        gives the same samples).
        """
        n = _checks.non_negative_int(n, "n")
        c = self._context(c)
        kwargs = {}
        if c is not None:
            if c.shape.rank == 1:
                c = tf.repeat(c[tf.newaxis], n, axis=0)
            elif c.shape.rank != 2 or c.shape[0] != n:
                raise ValueError(f"sample(n={n}, c): c must have shape [{self.context_size}] "
                                 f"or [{n}, {self.context_size}], got {c.shape}.")
            kwargs = objectives.context_kwargs(self._distribution, c)
        with training_mode(False):
            return self._distribution.sample(n, seed=_checks.stateless_seed(seed), **kwargs)

    def call(self, inputs, training=False):
        """``log q(x)`` of ``inputs = x``, or ``log q(x | c)`` of ``inputs = (x, c)``."""
        x, c = (inputs if isinstance(inputs, tuple | list) else (inputs, None))
        with training_mode(bool(training)):
            return self._log_prob(x, c)

    # ----------------------------------------------------------------- Keras steps
    def _unpack(self, data):
        """``(x, context or None, sample_weight or None)`` of a batch; an unconditional flow
        ignores ``y``."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, tuple | list) and len(x) == 2 and y is None:
            x, y = x  # predict((x, c)): Keras hands the pair over as the inputs
        if not self.objective.needs_data:
            return None, None, None
        if self.context_size is None:
            y = None
        elif y is None:
            raise ValueError(f"The flow is conditional (context_size={self.context_size}): "
                             "batches must be (x, c) or (x, c, sample_weight).")
        else:
            y = tf.cast(y, self._distribution.dtype)
        return x, y, sample_weight

    def _update_metrics(self, loss, weight, metrics, ok):
        weight = weight * tf.cast(ok, tf.float32)
        self._loss_tracker_.update_state(tf.where(ok, loss, tf.zeros_like(loss)),
                                         sample_weight=weight)
        for k, tracker in self._metric_trackers.items():
            value = metrics[k]
            tracker.update_state(tf.where(ok, value, tf.zeros_like(value)),
                                 sample_weight=weight)
        logs = {"loss": self._loss_tracker_.result()}
        logs.update({k: t.result() for k, t in self._metric_trackers.items()})
        return self.objective.report(logs, self.event_size)

    def compute_loss_and_gradients(self, data):
        """``(loss, weight, metrics, grads)`` of the objective on a batch (``step.py``)."""
        return step.loss_and_gradients(self.objective, self._distribution,
                                       self.trainable_variables, *self._unpack(data),
                                       step=self.optimizer.iterations)

    def make_test_function(self, force=False):
        """Keras's test function; under a strategy the one of ``training/execution.py``
        (``training/distributed.py`` says why)."""
        if self.test_function is not None and not force:
            return self.test_function
        super().make_test_function(force=True)
        if distributed.is_distributed(self.distribute_strategy) and not self.run_eagerly:
            self.test_function = execution.multi_step_function(
                self, self.test_step, self.test_function, execution.Executions())
        return self.test_function

    def train_step(self, data):
        # Training mode is read while tracing: this trace (train_function) uses batch stats.
        # Under a strategy the loss and gradients are compiled per replica (distributed.py);
        # either way this is the one step of step.py: gradients, then the guarded update.
        gradients = getattr(self, "_replica_gradients", None) or self.compute_loss_and_gradients
        loss, weight, metrics, grads = gradients(data)
        ok = self.guard.apply(self.optimizer, loss, grads, self.trainable_variables)
        logs = self._update_metrics(loss, weight, metrics, ok)
        logs.update(self.guard.logs())
        return logs

    def test_step(self, data):
        loss, weight, metrics, ok = step.evaluation_step(
            self.objective, self._distribution, *self._unpack(data))
        self._skipped_batches.update_state(1.0 - tf.cast(ok, tf.float32))
        logs = self._update_metrics(loss, weight, metrics, ok)
        logs[SKIPPED_BATCHES] = self._skipped_batches.result()
        return logs

    def predict_step(self, data):
        x, c, _ = self._unpack(data)
        with training_mode(False):
            return self._log_prob(x, c)

    def _check_inputs(self, x, y, what="x"):
        """Checks data (and context) before training; returns them."""
        return check_inputs(self.objective, x, y, self.event_size, self.context_size,
                            self._distribution.dtype, what)

    # ----------------------------------------------------------------- fit / evaluate
    def _dummy_data(self):
        # One row per replica, so that every replica gets a (never read) batch.
        rows = self.distribute_strategy.num_replicas_in_sync
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        return tf.data.Dataset.from_tensors(tf.zeros([rows, 1])).repeat().with_options(options)

    def _check_weights(self, x, y, sample_weight, what="sample_weight"):
        """``(y, sample_weight)`` for array data ``x``: the weights checked, and for an
        unconditional flow ``y`` an empty ``[N, 0]`` array, as Keras drops ``sample_weight``
        when ``y`` is None. (Keras itself refuses ``sample_weight`` with a dataset.)"""
        if sample_weight is None:
            return y, None
        if self._target is not None:
            raise ValueError(f"{what}: a reverse-KL model draws its own samples, so it takes no "
                             "sample weights.")
        if isinstance(x, tf.data.Dataset) or not hasattr(x, "__len__"):
            return y, sample_weight
        sample_weight = checks.check_sample_weight(sample_weight, len(x), what)
        if y is None:
            y = np.zeros((len(x), 0), np.float32)
        return y, sample_weight

    def _check_validation(self, validation_data):
        if validation_data is None or self._target is not None:
            return validation_data
        if isinstance(validation_data, tuple):
            x, c, w = (tuple(validation_data) + (None, None))[:3]
            c = c if self.context_size is not None else None
            x, c = self._check_inputs(x, c, "validation_data")
            c, w = self._check_weights(x, c, w, "the sample weights of validation_data")
            return (x,) if c is None else (x, c) if w is None else (x, c, w)
        return self._check_inputs(validation_data, None, "validation_data")[:1]

    def _evaluation_logs(self, logs, return_dict=False):
        """Keras's ``evaluate`` result with ``skipped_batches`` (the count of batches left out
        of the averages as non-finite) only when > 0; as a list (Keras's order: the metrics,
        then the other logs sorted) it comes last, so the other positions never move."""
        logs = dict(logs)
        skipped = int(logs.pop(SKIPPED_BATCHES, 0))
        names = [m.name for m in self.metrics]
        logs = {k: logs[k] for k in [k for k in names if k in logs]
                + [k for k in sorted(logs) if k not in names]}
        if skipped:
            logs[SKIPPED_BATCHES] = skipped
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def make_train_function(self, force=False):
        """Keras's train function; with ``steps_per_execution > 1`` one whose last execution
        of an epoch is short, so that an epoch runs exactly ``steps_per_epoch`` steps
        (``training/execution.py``). Under a strategy always that one, with XLA on each
        replica's loss and gradients (``training/distributed.py``)."""
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        strategy = self.distribute_strategy
        self._replica_gradients = None
        if distributed.is_distributed(strategy):
            if self._target is not None:
                distributed.check_num_samples(self.num_samples, strategy)
            self._replica_gradients = distributed.replica_compiled(
                self.compute_loss_and_gradients, self.jit_compile, self._distribution)
        if ((self.steps_per_execution > 1 or distributed.is_distributed(strategy))
                and not self.run_eagerly):
            self.train_function = execution.multi_step_function(
                self, self.train_step, self.train_function, self._executions,
                fuse=slow_xla.fuse_steps(self._distribution))
        return self.train_function

    def _callbacks(self, callbacks, verbose):
        """The user's callbacks (``on_train_batch_end`` gets the last step that ran) plus the
        step plan, the release of what the run's traces left in TFP's and TF's registries
        (``_ReleaseTraces``) and (unless the user brought one, or ``verbose=0``) the progress
        bar that counts what ran."""
        callbacks = execution.with_last_step_index(list(callbacks or []), self._executions)
        if verbose != 0 and not any(isinstance(c, keras.callbacks.ProgbarLogger)
                                    for c in callbacks):
            callbacks.append(execution.Progress(self._executions))
        return callbacks + [execution.StepPlan(self._executions), _ReleaseTraces()]

    def _require_compiled(self, method):
        if getattr(self, "optimizer", None) is None or not self.compiled:
            raise RuntimeError(f"Call `model.compile(optimizer=...)` before `{method}`.")

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_data=None, steps_per_epoch=None, validation_steps=None, **kwargs):
        """Keras ``fit``. Data are checked first (NaN/inf, event size, dtype, emptiness).

        Runs exactly ``epochs × steps_per_epoch`` steps for every ``steps_per_execution``.
        A ``tf.data.Dataset`` is read ``steps_per_execution`` batches ahead (``prefetch``):
        the same batches in the same order, produced while the previous execution trains.
        Arrays are batched inside the compiled steps (``execution.ArrayBatches``: Keras's
        batches, sizes and order, with the rows' order drawn once per epoch), except with a
        strategy, without XLA or fused steps, with ``steps_per_execution=1``,
        ``steps_per_epoch``, ``validation_split`` or ``shuffle="batch"``, which keep Keras's
        array pipeline.
        In reverse-KL mode ``x`` is not needed: ``fit(epochs=..., steps_per_epoch=...)``
        (``steps_per_epoch`` defaults to 100).
        """
        self._require_compiled("fit")
        if self._target is not None:
            if x is None:
                x = self._dummy_data()
                steps_per_epoch = steps_per_epoch or 100
                kwargs["shuffle"] = False
        else:
            if x is None:
                raise ValueError("FlowModel.fit needs training data `x` (an array [N, D] or a "
                                 "tf.data.Dataset); use FlowModel.for_target(...) to train "
                                 "without data.")
            x, y = self._check_inputs(x, y)
            y, kwargs["sample_weight"] = self._check_weights(x, y, kwargs.get("sample_weight"))
        if kwargs.get("class_weight") is not None:
            raise ValueError("class_weight: a density has no classes; weight examples with "
                             "`sample_weight` instead.")
        validation_data = self._check_validation(validation_data)
        validation_data, validation_steps = _take(validation_data, validation_steps)
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # Keras warns that it cannot shuffle a dataset
            # An execution pulls its k batches before it trains them: with k batches in
            # flight the pipeline makes the next execution's while this one trains.
            x = x.prefetch(self.steps_per_execution)
        arrays = self._array_batches(x, y, batch_size, steps_per_epoch, kwargs)
        if arrays is not None:  # trained inside the compiled steps; Keras counts the steps
            x, y, batch_size = arrays.stand_in(), None, None
            kwargs.setdefault("validation_batch_size", arrays.batch_size)  # Keras's default
            kwargs.update(shuffle=False, sample_weight=None)
        if not kwargs.get("initial_epoch"):  # a resumed fit keeps the guard's counters
            self.guard.reset()
        self.stop_reason = None
        callbacks = self._callbacks(callbacks, verbose) + [_GuardStop(self.guard)]
        self._executions.arrays = arrays
        try:
            return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                               callbacks=callbacks, validation_data=validation_data,
                               steps_per_epoch=steps_per_epoch,
                               validation_steps=validation_steps, **kwargs)
        finally:
            self._executions.arrays = None

    def _array_batches(self, x, y, batch_size, steps_per_epoch, kwargs):
        """``execution.ArrayBatches`` of array data that ``fit`` trains inside its compiled
        steps (each execution one XLA computation gathering its batches), or None where
        Keras's array pipeline stays: a strategy, no XLA or no fused steps,
        ``steps_per_execution=1``, ``steps_per_epoch`` (epochs then cut through the data),
        ``validation_split`` or ``shuffle="batch"``."""
        shuffle = kwargs.get("shuffle", True)
        if (self._target is not None or not isinstance(x, np.ndarray | tf.Tensor)
                or steps_per_epoch is not None or kwargs.get("validation_split")
                or shuffle not in (True, False) or self.steps_per_execution <= 1
                or not self.jit_compile or self.run_eagerly
                or distributed.is_distributed(self.distribute_strategy)
                or not slow_xla.fuse_steps(self._distribution)):
            return None
        weights = kwargs.get("sample_weight")
        data = (x,) if y is None else (x, y) if weights is None else (x, y, weights)
        return execution.ArrayBatches(data, batch_size or 32, shuffle)  # Keras's default B

    def evaluate(self, x=None, y=None, steps=None, verbose="auto", callbacks=None, **kwargs):
        """Keras ``evaluate``; runs exactly ``steps`` batches (all of ``x`` if None). In
        reverse-KL mode ``x`` is not needed (``steps`` defaults to 10)."""
        self._require_compiled("evaluate")
        return_dict = kwargs.pop("return_dict", False)
        if kwargs.get("_use_cached_eval_dataset"):  # fit's validation: checked by fit
            return self._evaluation_logs(super().evaluate(
                x, y, steps=steps, verbose=verbose, callbacks=callbacks, return_dict=True,
                **kwargs), return_dict)
        if self._target is not None and x is None:
            x, steps = self._dummy_data(), steps or 10
        elif self._target is None:
            if x is None:
                raise ValueError("FlowModel.evaluate needs data `x`.")
            x, y = self._check_inputs(x, y)
            y, kwargs["sample_weight"] = self._check_weights(x, y, kwargs.get("sample_weight"))
        x, steps = _take(x, steps)
        logs = self._evaluation_logs(super().evaluate(
            x, y, steps=steps, verbose=verbose, callbacks=self._callbacks(callbacks, verbose),
            return_dict=True, **kwargs), return_dict=True)
        if logs.get(SKIPPED_BATCHES):
            warnings.warn(f"evaluate left out {logs[SKIPPED_BATCHES]} batch(es) whose loss was "
                          "not finite (NaN or inf); the averages are over the other batches "
                          "(NaN if none was left).", RuntimeWarning, stacklevel=2)
        return logs if return_dict else self._evaluation_logs(logs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """``log q(x)``, ``[N]``, for an array ``[N, D]`` or a dataset of batches (exactly
        ``steps`` of them if given), or ``log q(x | c)`` for ``(x, c)`` with a conditional
        flow; the input is checked as in ``fit``."""
        if self.context_size is not None and isinstance(x, tuple | list):
            x = self._check_inputs(*x, what="x")
        else:
            x = checks.check_data(x, self.event_size, self._distribution.dtype, "x",
                                   iterators=True)
        x, steps = _take(x, steps)
        return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps,
                               callbacks=self._callbacks(callbacks, verbose))

    # ----------------------------------------------------------------- serialisation
    def get_config(self):
        flow_config = getattr(self._distribution, "flow_config", None)
        if flow_config is None:
            raise NotImplementedError(
                "model.save needs a flow built by a tfp_flows.flows builder (it records "
                "`flow_config`); use save_weights/load_weights for custom flows.")
        return {"name": self.name, "flow_config": dict(flow_config), **self.guard.config(),
                "objective": keras.saving.serialize_keras_object(self.objective)}

    def load_own_variables(self, store):
        """Keras's weight loading (``load_weights``, ``load_model``, ``BackupAndRestore``),
        refused before any weight changes if the saved flow had another structure."""
        own = list(self._trainable_variables) + list(self._non_trainable_variables)
        key = next((str(i) for i, v in enumerate(own) if v is self.structure), None)
        if key is not None and len(store) == len(own):
            saved = np.asarray(store[key])
            if saved.shape != (4,) or not np.array_equal(saved, self.structure.numpy()):
                raise ValueError(
                    "These weights were saved from a flow with a different structure "
                    "(permutations, LULinear's P and signs, masks or index sets differ: was it "
                    "built with another seed or other arguments?). Their values would give a "
                    "wrong log_prob here; rebuild the flow exactly as it was saved (same "
                    "builder, arguments and seed), or use keras.models.load_model, which "
                    "rebuilds it from the saved config.")
        super().load_own_variables(store)

    def compile_from_config(self, config):
        """Recompiles from ``get_compile_config()`` (used by ``keras.models.load_model``)."""
        config = keras.saving.deserialize_keras_object(config)
        config = {k: v for k, v in config.items() if k in (
            "optimizer", "run_eagerly", "steps_per_execution", "jit_compile")}
        self.compile(**config)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        distribution = _flows.build(**config.pop("flow_config"))
        objective = keras.saving.deserialize_keras_object(config.pop("objective", None))
        config = {k: v for k, v in config.items() if k in (
            "name", "nan_guard", "backoff_after", "backoff_factor", "stop_after")}
        return cls(distribution, objective=objective, **config)


def _take(data, steps):
    """``(data.take(steps), None)`` for a dataset and ``steps``, else ``(data, steps)``.

    Evaluation and prediction start a fresh iterator on every call, so this is the same data;
    Keras's multi-step loop then ends with the data instead of running up to
    ``steps_per_execution`` batches past ``steps``.
    """
    if isinstance(data, tuple) and len(data) == 1:
        data, steps = _take(data[0], steps)
        return (data,), steps
    if steps is None or not isinstance(data, tf.data.Dataset):
        return data, steps
    return data.take(int(steps)), None
