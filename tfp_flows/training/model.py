"""``FlowModel``: a ``keras.Model`` that trains a tfp_flows distribution with ``fit``.

Two objectives:

* maximum likelihood on data (``FlowModel(dist)``): loss = mean negative log-likelihood
  ``−(1/B) Σ_b log q(x_b)`` in nats; also logged as bits per dimension, ``loss / (D ln 2)``;
* reverse KL to an unnormalised target ``log p̃`` (``FlowModel.for_target(log_p, dist)``):
  with ``x_s ~ q`` (``num_samples`` per step, reparameterised),
  ``loss = kl = (1/S) Σ_s [log q(x_s) − log p̃(x_s)] = KL(q‖p) − log Z``; also logs the effective
  sample size of the importance weights ``w_s = p̃(x_s)/q(x_s)``,
  ``ess = (Σ w)² / Σ w²`` (between 1 and ``num_samples``).

The model owns no Keras layers: its weights are the ``keras.Variable``s behind the flow's
``tf.Variable``s (``tfp_flows.keras_variable_of``), so Keras and TFP train the same storage.
"""

import warnings
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks, _compat
from tfp_flows import energies as _energies
from tfp_flows import flows as _flows
from tfp_flows._mode import training_mode
from tfp_flows._variables import keras_variable_of
from tfp_flows.training import checks, distributed, execution
from tfp_flows.training.guards import NaNGuard


def flow_variables(distribution: tfp.distributions.Distribution) -> tuple[list, list]:
    """Builds lazy variables and returns ``(trainable, non_trainable)`` ``keras.Variable`` lists.

    Raises:
      TypeError: if a variable of ``distribution`` was not made by ``tfp_flows.make_variable``.
      ValueError: if the event shape is not ``[D]``.
    """
    event_size = _checks.vector_event_size(distribution, "FlowModel")
    with training_mode(False):
        distribution.log_prob(tf.zeros([1, event_size], distribution.dtype))
    seen = set()
    trainable, non_trainable = [], []
    for v in distribution.variables:
        if id(v) in seen:
            continue
        seen.add(id(v))
        (trainable if v.trainable else non_trainable).append(keras_variable_of(v))
    return trainable, non_trainable


def _permutations(distribution):
    """The permutations of the flow's ``tfb.Permute`` layers (not variables, so not saved)."""
    return [np.asarray(tf.get_static_value(b.permutation)).tolist()
            for b in _flows.layers_of(distribution) if isinstance(b, tfp.bijectors.Permute)]


# Measured on two moons (8 couplings, 2x64, batch 512, 2 cores): 1 -> 241 steps/s, 8 -> 294,
# 16 -> 323, 32 -> 327, 64 -> 339, 128 -> 326.
DEFAULT_STEPS_PER_EXECUTION = 32


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


@keras.saving.register_keras_serializable(package="tfp_flows")
class FlowModel(keras.Model):
    """Keras model around a tfp_flows ``tfd.TransformedDistribution``.

    Args:
      distribution: a distribution over ``[D]`` whose variables were made by tfp_flows (all
        ``tfp_flows.flows`` builders and ``tfp_flows.bijectors``).
      nan_guard: skip steps with a non-finite loss or gradient (see ``NaNGuard``).
      backoff_after, backoff_factor, stop_after: NaN-guard settings.
      name: model name.

    ``compile(optimizer, jit_compile=True, steps_per_execution=32)`` takes no loss. ``fit(x)``
    takes an array ``[N, D]`` or a ``tf.data.Dataset`` of batches ``x`` or ``(x, ...)`` (extra
    tuple entries are ignored); ``predict(x)`` returns ``log q(x) [N]``.
    """

    def __init__(self, distribution: tfp.distributions.Distribution, nan_guard: bool = True,
                 backoff_after: int = 3, backoff_factor: float = 0.5, stop_after: int = 10,
                 name: str = "flow_model", **kwargs):
        super().__init__(name=name, **kwargs)
        trainable, non_trainable = flow_variables(distribution)
        self._distribution = distribution
        self.event_size = int(distribution.event_shape[0])
        for v in trainable + non_trainable:
            _compat.track_variable(self, v)
        self.guard = NaNGuard(nan_guard, backoff_after, backoff_factor, stop_after)
        self._loss_tracker_ = keras.metrics.Mean(name="loss")
        self._ess_tracker = keras.metrics.Mean(name="ess")
        self._target = None
        self._target_name = None
        self.num_samples = None
        self._seed_generator = None
        self.stop_reason = None
        self._executions = execution.Executions()
        self.built = True

    # ----------------------------------------------------------------- construction
    @classmethod
    def for_target(cls, target_log_prob_fn: Callable[[tf.Tensor], tf.Tensor],
                   distribution: tfp.distributions.Distribution, num_samples: int = 256,
                   seed: int | None = None, **kwargs) -> "FlowModel":
        """A model trained by reverse KL to ``target_log_prob_fn`` (no data needed).

        Args:
          target_log_prob_fn: ``z [..., D] -> log p̃(z) [...]``, or the name of an energy in
            ``tfp_flows.energies.ENERGIES`` (then the model can be saved with ``model.save``).
          distribution: the flow ``q``.
          num_samples: Monte-Carlo samples per step.
          seed: int seed of the sampling stream.
        """
        model = cls(distribution, **kwargs)
        if isinstance(target_log_prob_fn, str):
            if target_log_prob_fn not in _energies.ENERGIES:
                raise ValueError(f"Unknown energy {target_log_prob_fn!r}; expected one of "
                                 f"{sorted(_energies.ENERGIES)} or a callable.")
            model._target_name = target_log_prob_fn
            target_log_prob_fn = _energies.ENERGIES[target_log_prob_fn]
        if not callable(target_log_prob_fn):
            raise TypeError("`target_log_prob_fn` must be callable z -> log p(z), got "
                            f"{target_log_prob_fn!r}.")
        model._target = target_log_prob_fn
        model.num_samples = int(num_samples)
        if model.num_samples < 2:
            raise ValueError(f"`num_samples` must be >= 2, got {num_samples!r}.")
        model._seed_generator = keras.random.SeedGenerator(seed)
        return model

    @property
    def distribution(self) -> tfp.distributions.Distribution:
        return self._distribution

    @property
    def metrics(self):
        return [self._loss_tracker_] + ([self._ess_tracker] if self._target is not None else [])

    def compile(self, optimizer="adam", loss=None, jit_compile=None, steps_per_execution=None,
                **kwargs):
        """Keras ``compile`` without a loss (the objective is fixed by the model).

        ``jit_compile`` defaults to True (XLA) and ``steps_per_execution`` to 32, not Keras's
        1: a flow's train step takes a few milliseconds, and with 1 Keras's per-call overhead
        costs as much again (``benchmarks/README.md``). Batch-level callbacks
        (``on_train_batch_end``, the progress bar) then run every 32 batches; pass
        ``steps_per_execution=1`` to see every batch. The same defaults hold under
        ``MirroredStrategy`` and ``MultiWorkerMirroredStrategy`` (``training.distributed``:
        there XLA compiles each replica's loss and gradients).
        """
        if loss is not None:
            raise TypeError("FlowModel's loss is fixed (negative log-likelihood or reverse KL); "
                            f"do not pass `loss` (got {loss!r}).")
        if jit_compile is None or jit_compile == "auto":
            jit_compile = True
        if steps_per_execution is None:
            steps_per_execution = DEFAULT_STEPS_PER_EXECUTION
        super().compile(optimizer=optimizer, jit_compile=jit_compile,
                        steps_per_execution=steps_per_execution, **kwargs)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        self.guard.attach(self.optimizer)

    # ----------------------------------------------------------------- densities
    def log_prob(self, x) -> tf.Tensor:
        """``log q(x)``, ``[..., D] -> [...]``, in inference mode; ``x`` must hold floats."""
        x = checks.floating(x, self._distribution.dtype, "x")
        with training_mode(False):
            return self._distribution.log_prob(x)

    def sample(self, n: int, seed: int | None = None) -> tf.Tensor:
        """``n`` samples ``[n, D]`` from the flow, in inference mode.

        ``seed``: None (fresh randomness), an int or a stateless ``[2]`` seed (the same seed
        gives the same samples).
        """
        n = _checks.non_negative_int(n, "n")
        with training_mode(False):
            return self._distribution.sample(n, seed=_checks.stateless_seed(seed))

    def call(self, x, training=False):
        with training_mode(bool(training)):
            return self._distribution.log_prob(tf.cast(x, self._distribution.dtype))

    # ----------------------------------------------------------------- objectives
    def _x_of(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return tf.cast(x, self._distribution.dtype)

    def _sample_seed(self):
        # The same seed on every replica: each pushes its slice of one global sample.
        return tf.cast(self._seed_generator.next(), tf.int32)

    def _reverse_kl(self):
        """Returns ``(kl_estimate, ess)`` from ``num_samples`` reparameterised samples (over
        all replicas under a strategy)."""
        x, log_q = distributed.sample_and_log_prob(self._distribution, self.num_samples,
                                                   self._sample_seed())
        log_p = tf.cast(self._target(x), log_q.dtype)
        log_w = log_p - log_q
        ess = tf.exp(2.0 * tf.reduce_logsumexp(log_w) - tf.reduce_logsumexp(2.0 * log_w))
        return tf.reduce_mean(-log_w), ess

    def compute_objective(self, data):
        """Returns ``(loss, ess or None, batch_size)`` for the current mode."""
        if self._target is not None:
            loss, ess = self._reverse_kl()
            return loss, ess, self.num_samples
        x = self._x_of(data)
        return -tf.reduce_mean(self._distribution.log_prob(x)), None, tf.shape(x)[0]

    def compute_loss_and_gradients(self, data):
        """``(loss, ess, batch_size, grads)``; grads of ``loss / num_replicas`` (Keras's
        convention: the optimizer sums gradients over replicas)."""
        variables = [v.value for v in self.trainable_variables]
        with tf.GradientTape() as tape:
            loss, ess, batch = self.compute_objective(data)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = loss / tf.cast(replicas, loss.dtype)
        return loss, ess, batch, tape.gradient(scaled, variables)

    def _update_metrics(self, loss, ess, batch, ok):
        weight = tf.cast(batch, tf.float32) * tf.cast(ok, tf.float32)
        self._loss_tracker_.update_state(tf.where(ok, loss, tf.zeros_like(loss)),
                                         sample_weight=weight)
        logs = {"loss": self._loss_tracker_.result()}
        if ess is not None:
            self._ess_tracker.update_state(tf.where(ok, ess, tf.zeros_like(ess)),
                                           sample_weight=tf.cast(ok, tf.float32))
            logs["kl"] = logs["loss"]
            logs["ess"] = self._ess_tracker.result()
        else:
            logs["bits_per_dim"] = logs["loss"] / (self.event_size * np.log(2.0))
        return logs

    # ----------------------------------------------------------------- Keras steps
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
        # The flag is read while tracing: this trace (train_function) uses batch statistics.
        gradients = getattr(self, "_replica_gradients", None) or self.compute_loss_and_gradients
        with training_mode(True):
            loss, ess, batch, grads = gradients(data)
        ok = self.guard.apply(self.optimizer, loss, grads, self.trainable_variables)
        logs = self._update_metrics(loss, ess, batch, ok)
        logs.update(self.guard.logs())
        return logs

    def test_step(self, data):
        with training_mode(False):
            loss, ess, batch = self.compute_objective(data)
        return self._update_metrics(loss, ess, batch, tf.math.is_finite(loss))

    def predict_step(self, data):
        with training_mode(False):
            return self._distribution.log_prob(self._x_of(data))

    # ----------------------------------------------------------------- fit / evaluate
    def _dummy_data(self):
        # One row per replica, so that every replica gets a (never read) batch.
        rows = self.distribute_strategy.num_replicas_in_sync
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        return tf.data.Dataset.from_tensors(tf.zeros([rows, 1])).repeat().with_options(options)

    def _check_validation(self, validation_data):
        if validation_data is None or self._target is not None:
            return validation_data
        if isinstance(validation_data, tuple):
            return (checks.check_data(validation_data[0], self.event_size,
                                      self._distribution.dtype, "validation_data"),)
        return (checks.check_data(validation_data, self.event_size, self._distribution.dtype,
                                  "validation_data"),)

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
                self, self.train_step, self.train_function, self._executions)
        return self.train_function

    def _callbacks(self, callbacks, verbose):
        """The user's callbacks plus the step plan and (unless the user brought one, or
        ``verbose=0``) the progress bar that counts what ran."""
        callbacks = list(callbacks or [])
        if verbose != 0 and not any(isinstance(c, keras.callbacks.ProgbarLogger)
                                    for c in callbacks):
            callbacks.append(execution.Progress(self._executions))
        return callbacks + [execution.StepPlan(self._executions)]

    def _require_compiled(self, method):
        if getattr(self, "optimizer", None) is None or not self.compiled:
            raise RuntimeError(f"Call `model.compile(optimizer=...)` before `{method}`.")

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_data=None, steps_per_epoch=None, validation_steps=None, **kwargs):
        """Keras ``fit``. Data are checked first (NaN/inf, event size, dtype, emptiness).

        Runs exactly ``epochs × steps_per_epoch`` steps for every ``steps_per_execution``.
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
            x = checks.check_data(x, self.event_size, self._distribution.dtype, "x",
                                  iterators=True)
        validation_data = self._check_validation(validation_data)
        validation_data, validation_steps = _take(validation_data, validation_steps)
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # Keras warns that it cannot shuffle a dataset
        self.guard.reset()
        self.stop_reason = None
        callbacks = self._callbacks(callbacks, verbose) + [_GuardStop(self.guard)]
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                           callbacks=callbacks, validation_data=validation_data,
                           steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                           **kwargs)

    def evaluate(self, x=None, y=None, steps=None, verbose="auto", callbacks=None, **kwargs):
        """Keras ``evaluate``; runs exactly ``steps`` batches (all of ``x`` if None). In
        reverse-KL mode ``x`` is not needed (``steps`` defaults to 10)."""
        self._require_compiled("evaluate")
        if kwargs.get("_use_cached_eval_dataset"):  # fit's validation: checked by fit
            return super().evaluate(x, y, steps=steps, verbose=verbose, callbacks=callbacks,
                                    **kwargs)
        if self._target is not None and x is None:
            x, steps = self._dummy_data(), steps or 10
        elif self._target is None:
            if x is None:
                raise ValueError("FlowModel.evaluate needs data `x`.")
            x = checks.check_data(x, self.event_size, self._distribution.dtype, "x")
        x, steps = _take(x, steps)
        return super().evaluate(x, y, steps=steps, verbose=verbose,
                                callbacks=self._callbacks(callbacks, verbose), **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """``log q(x)``, ``[N]``, for an array ``[N, D]`` or a dataset of batches (exactly
        ``steps`` of them if given); the input is checked as in ``fit``."""
        x = checks.check_data(x, self.event_size, self._distribution.dtype, "x", iterators=True)
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
        if self._target is not None and self._target_name is None:
            raise NotImplementedError(
                "A reverse-KL model with a custom target function cannot be serialised; pass "
                "the target by name (tfp_flows.energies.ENERGIES) or use save_weights.")
        config = {"name": self.name, "flow_config": dict(flow_config), **self.guard.config(),
                  "permutations": _permutations(self._distribution)}
        if self._target is not None:
            config.update(target=self._target_name, num_samples=self.num_samples)
        return config

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
        saved = config.pop("permutations", None)
        if saved is not None and saved != _permutations(distribution):
            raise ValueError(
                "The rebuilt flow has different permutations from the saved one: its "
                "`flow_config` did not reproduce them (was the config or a builder changed?). "
                "Rebuild the same flow object and use load_weights instead.")
        target = config.pop("target", None)
        num_samples = config.pop("num_samples", None)
        config = {k: v for k, v in config.items() if k in (
            "name", "nan_guard", "backoff_after", "backoff_factor", "stop_after")}
        if target is not None:
            return cls.for_target(target, distribution, num_samples=num_samples, **config)
        return cls(distribution, **config)


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
