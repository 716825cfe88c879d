"""What a train step minimises, as objects: one step (``training/step.py``) runs any of them.

An objective maps a batch to ``(loss, weight, metrics)``: a scalar loss, the weight of this
batch in the epoch average (its number of examples ``B``, as Keras weighs a batch), and a dict
of extra scalar metrics averaged with the same weight. ``report(logs)`` adds metrics derived
from the averages.

* ``MaximumLikelihood()``: ``loss = −Σ_b w_b log q(x_b | c_b) / B`` (nats; ``w`` the sample
  weights, 1 by default: Keras's reduction of a weighted loss, ``"sum_over_batch_size"``);
  reports ``bits_per_dim = loss / (D ln 2)``.
* ``ReverseKL(target, num_samples, beta)``: with ``x_s ~ q`` (reparameterised),
  ``loss = (1/S) Σ_s [log q(x_s) − β_t log p̃(x_s)]``, the annealed objective Rezende & Mohamed
  (2015) train planar flows with (``β_t = beta(t)`` at optimizer step ``t``; ``beta=None`` is
  ``β = 1``). Reports ``kl = (1/S) Σ_s [log q(x_s) − log p̃(x_s)] = KL(q‖p) − log Z`` (at
  ``β = 1``) and the effective sample size ``ess = (Σ w)² / Σ w²`` of ``w_s = p̃(x_s)/q(x_s)``.
* ``DequantizedBound(levels, alpha, dequantizer)``: data are integer pixels ``p``; ``loss`` is
  the one-sample negative bound ``−log p_Y(y) − log|dy/du| + log q(v|p) + D log L`` in nats
  (``tfp_flows.dequantization``), with uniform noise or a trainable
  ``VariationalDequantizer``; reports ``bits_per_dim``.

Objectives are Keras-serialisable (``get_config``) so ``FlowModel.save`` keeps them.
"""

import keras
import numpy as np
import tensorflow as tf

from tfp_flows import _checks
from tfp_flows import dequantization as _dq
from tfp_flows import energies as _energies
from tfp_flows import flows as _flows
from tfp_flows._variables import keras_variable_of
from tfp_flows.training import checks
from tfp_flows.training import distributed as _distributed


def context_kwargs(distribution, context):
    """``bijector_kwargs`` for ``p(x | context)`` (``{}`` without a context)."""
    if context is None:
        return {}
    return {"bijector_kwargs": _flows.context_kwargs(distribution, context)}


def _weighted_mean(values, sample_weight):
    """``(Σ_b w_b v_b / B, B)`` over a batch of ``B`` values, ``w = 1`` when ``sample_weight``
    is None: Keras's loss reduction (``"sum_over_batch_size"``), and ``B`` is the weight Keras
    gives the batch in the epoch average. A row of weight 0 adds nothing to the loss or its
    gradient (it still counts in ``B``, as in Keras)."""
    size = tf.size(values)
    if sample_weight is not None:
        values = tf.cast(tf.reshape(sample_weight, tf.shape(values)), values.dtype) * values
    return tf.reduce_sum(values) / tf.cast(size, values.dtype), tf.cast(size, tf.float32)


class Objective:
    """Base class. Subclasses implement ``loss``; see the module docstring."""

    #: False for objectives that draw their own samples (``fit()`` then needs no data).
    needs_data = True
    #: Names of the extra metrics ``loss`` returns (averaged like the loss).
    metric_names = ()

    def build(self, distribution):
        """Creates lazily built variables (called once by ``FlowModel`` / ``train``)."""

    @property
    def trainable_variables(self):
        """``keras.Variable``s the objective trains besides the flow's (e.g. a dequantiser)."""
        return []

    @property
    def state_variables(self):
        """Non-trainable ``keras.Variable``s that must survive save/resume (seed streams)."""
        return []

    def check_data(self, x, event_size, dtype, what):
        """Checks training data before the first step; returns them (possibly converted)."""
        return checks.check_data(x, event_size, dtype, what, iterators=True)

    def loss(self, distribution, x, context=None, sample_weight=None, step=None):
        """Returns ``(loss, weight, metrics)`` for one batch (see the module docstring)."""
        raise NotImplementedError

    def evaluation_loss(self, distribution, x, context=None, sample_weight=None, step=None):
        """The loss ``evaluate`` reports (default: the training loss)."""
        return self.loss(distribution, x, context, sample_weight, step)

    def report(self, logs, event_size):
        """Adds derived metrics to ``logs`` (a dict of averaged tensors); returns it."""
        return logs

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _bits_per_dim(logs, event_size):
    logs["bits_per_dim"] = logs["loss"] / (event_size * np.log(2.0))
    return logs


@keras.saving.register_keras_serializable(package="tfp_flows")
class MaximumLikelihood(Objective):
    """Mean negative log-likelihood of the data (see the module docstring)."""

    def loss(self, distribution, x, context=None, sample_weight=None, step=None):
        x = tf.cast(x, distribution.dtype)
        log_q = distribution.log_prob(x, **context_kwargs(distribution, context))
        loss, weight = _weighted_mean(-log_q, sample_weight)
        return loss, weight, {}

    def report(self, logs, event_size):
        return _bits_per_dim(logs, event_size)


@keras.saving.register_keras_serializable(package="tfp_flows")
class LinearRamp:
    """``β(t) = start + (end − start)·min(t / steps, 1)``: the annealing schedule of Rezende &
    Mohamed (2015), from 0.01 to 1 over ``steps`` optimizer steps by default."""

    def __init__(self, steps, start=0.01, end=1.0):
        self.steps = _checks.positive_int(steps, "steps")
        self.start, self.end = float(start), float(end)

    def __call__(self, step):
        t = tf.minimum(tf.cast(step, tf.float32) / self.steps, 1.0)
        return self.start + (self.end - self.start) * t

    def get_config(self):
        return {"steps": self.steps, "start": self.start, "end": self.end}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfp_flows")
class ReverseKL(Objective):
    """Reverse KL to an unnormalised target (see the module docstring).

    Args:
      target: ``z [..., D] -> log p̃(z) [...]``, or the name of an energy in
        ``tfp_flows.energies.ENERGIES`` (then a model using it can be saved).
      num_samples: Monte-Carlo samples ``S`` per step (>= 2).
      beta: None (``β = 1``), a number, or a callable ``step -> β`` such as ``LinearRamp``.
      seed: int seed of the sampling stream (a ``keras.random.SeedGenerator``, saved with the
        model so a resumed run draws the same samples).

    The target takes no context: reverse KL trains an unconditional flow.
    """

    needs_data = False
    metric_names = ("kl", "ess")

    def __init__(self, target, num_samples=256, beta=None, seed=None):
        self.target_name = None
        if isinstance(target, str):
            if target not in _energies.ENERGIES:
                raise ValueError(f"Unknown energy {target!r}; expected one of "
                                 f"{sorted(_energies.ENERGIES)} or a callable.")
            self.target_name, target = target, _energies.ENERGIES[target]
        if not callable(target):
            raise TypeError(f"`target` must be callable z -> log p(z), got {target!r}.")
        self.target = target
        if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer) \
                or num_samples < 2:
            raise ValueError(f"`num_samples` must be an integer >= 2, got {num_samples!r}.")
        self.num_samples = int(num_samples)
        if beta is not None and not callable(beta):
            beta = float(beta)
        self.beta = beta
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def state_variables(self):
        return [self.seed_generator.state]

    def _seed(self):
        # The same seed on every replica: each pushes its slice of one global sample.
        return tf.cast(self.seed_generator.next(), tf.int32)

    def _beta(self, step):
        if self.beta is None:
            return None
        if callable(self.beta):
            return self.beta(0 if step is None else step)
        return tf.constant(self.beta)

    def _loss(self, distribution, beta):
        x, log_q = _distributed.sample_and_log_prob(distribution, self.num_samples,
                                                    self._seed())
        log_p = tf.cast(self.target(x), log_q.dtype)
        log_w = log_p - log_q
        kl = tf.reduce_mean(-log_w)
        ess = tf.exp(2.0 * tf.reduce_logsumexp(log_w) - tf.reduce_logsumexp(2.0 * log_w))
        loss = kl if beta is None else tf.reduce_mean(log_q - tf.cast(beta, log_p.dtype) * log_p)
        weight = tf.cast(tf.size(log_q), tf.float32)
        return loss, weight, {"kl": kl, "ess": ess}

    def loss(self, distribution, x=None, context=None, sample_weight=None, step=None):
        return self._loss(distribution, self._beta(step))

    def evaluation_loss(self, distribution, x=None, context=None, sample_weight=None,
                        step=None):
        return self._loss(distribution, None)  # evaluate reports the KL itself (β = 1)

    def get_config(self):
        if self.target_name is None:
            raise NotImplementedError(
                "A reverse-KL objective with a custom target function cannot be serialised; "
                "pass the target by name (tfp_flows.energies.ENERGIES) or use save_weights.")
        beta = self.beta
        if callable(beta):
            beta = keras.saving.serialize_keras_object(beta)
        return {"target": self.target_name, "num_samples": self.num_samples, "beta": beta,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("beta"), dict):
            config["beta"] = keras.saving.deserialize_keras_object(config["beta"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfp_flows")
class DequantizedBound(Objective):
    """The dequantised likelihood bound on integer pixels (see the module docstring).

    Args:
      levels: number of grey levels ``L``.
      alpha: logit margin ``α``.
      dequantizer: None (uniform noise) or a ``tfp_flows.dequantization.VariationalDequantizer``
        (trained jointly with the flow).
      seed: int seed of the noise stream.
    """

    def __init__(self, levels, alpha=0.05, dequantizer=None, seed=None):
        self.levels = _dq._levels(levels)
        self.alpha = float(alpha)
        if dequantizer is not None and not isinstance(dequantizer,
                                                      _dq.VariationalDequantizer):
            raise TypeError("`dequantizer` must be None (uniform) or a VariationalDequantizer, "
                            f"got {dequantizer!r}.")
        self.dequantizer = dequantizer
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, distribution):
        if self.dequantizer is not None:
            d = int(distribution.event_shape[0])
            self.dequantizer.sample_and_log_prob(tf.zeros([1, d], tf.int32), seed=[0, 0])

    @property
    def trainable_variables(self):
        if self.dequantizer is None:
            return []
        return [keras_variable_of(v) for v in self.dequantizer.trainable_variables]

    @property
    def state_variables(self):
        return [self.seed_generator.state]

    def check_data(self, x, event_size, dtype, what):
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            spec = spec[0] if isinstance(spec, tuple) else spec
            if not spec.dtype.is_integer:
                raise TypeError(f"{what}: DequantizedBound trains on integer pixels, got a "
                                f"dataset of {spec.dtype.name}.")
            return x
        pixels = _dq.check_discrete(x, self.levels)
        if pixels.ndim != 2 or pixels.shape[1] != event_size:
            raise ValueError(f"{what} must have shape [N, {event_size}], got {pixels.shape}.")
        return pixels

    def loss(self, distribution, x, context=None, sample_weight=None, step=None):
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        kwargs = context_kwargs(distribution, context)
        nats = _dq.negative_bound(lambda y: distribution.log_prob(y, **kwargs), x,
                                  self.levels, self.alpha, dtype=distribution.dtype,
                                  noise=self._noise(x, seed, distribution.dtype))
        loss, weight = _weighted_mean(nats, sample_weight)
        return loss, weight, {}

    def _noise(self, x, seed, dtype):
        """``(v, log q(v | x))`` for this replica's rows of the global batch's draw (under
        ``tf.distribute`` N replicas use the noise one device draws for the same batch)."""
        rows = tf.shape(x)[0]
        if self.dequantizer is None:
            d = x.shape[-1]
            v = _distributed.replica_rows(
                lambda n: tf.random.stateless_uniform([n, d], seed=seed, dtype=dtype), rows)
            return v, tf.zeros([rows], dtype)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return _distributed.sample_and_log_prob(self.dequantizer.flow, rows * replicas, seed,
                                                self.dequantizer.condition(x))

    def report(self, logs, event_size):
        return _bits_per_dim(logs, event_size)

    def get_config(self):
        if self.dequantizer is not None:
            raise NotImplementedError(
                "A DequantizedBound with a variational dequantizer cannot be serialised by "
                "model.save; use save_weights / load_weights.")
        return {"levels": self.levels, "alpha": self.alpha, "seed": self.seed}


def get(objective):
    """``objective`` itself, or ``MaximumLikelihood()`` for None."""
    if objective is None:
        return MaximumLikelihood()
    if not isinstance(objective, Objective):
        raise TypeError("`objective` must be a tfp_flows.training.objectives.Objective "
                        f"(MaximumLikelihood, ReverseKL, DequantizedBound), got {objective!r}.")
    return objective


__all__ = ["DequantizedBound", "LinearRamp", "MaximumLikelihood", "Objective", "ReverseKL",
           "context_kwargs", "get"]
