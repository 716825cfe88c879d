"""``train``: a custom loop for users who do not want ``keras.Model.fit``.

It runs the same step as ``FlowModel.fit`` (``training/step.py``: any objective, the Keras
optimizer's clipping, the NaN guard). Steps run ``steps_per_execution`` at a time inside one
``tf.function`` (each step XLA-compiled by default); losses come back to the host once per
execution, not once per step.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tqdm.auto import tqdm

from tfp_flows import _checks, _compat
from tfp_flows.training import checks, distributed, objectives, step
from tfp_flows.training.guards import NaNGuard
from tfp_flows.training.model import check_inputs, context_size_of, flow_variables


def _batches(data, context, batch_size, seed, shuffle_buffer):
    """An endless iterator of batches ``x`` or ``(x, c)``; a dataset is taken as batched."""
    if isinstance(data, tf.data.Dataset):
        return iter(data.repeat())
    n = len(data)
    ds = tf.data.Dataset.from_tensor_slices(data if context is None else (data, context))
    ds = ds.shuffle(min(n, shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    return iter(ds.repeat().batch(min(batch_size, n), drop_remainder=True).prefetch(2))


def _unpack(element, conditional):
    if not isinstance(element, tuple):
        return element, None, None
    x, c, w = keras.utils.unpack_x_y_sample_weight(element)
    return x, (c if conditional else None), w


def train(distribution: tfp.distributions.Distribution, data, optimizer: keras.optimizers.Optimizer,
          steps: int, batch_size: int = 256, validation_data=None, validation_every: int = 100,
          objective: objectives.Objective | None = None, context=None, nan_guard: bool = True,
          backoff_after: int = 3, backoff_factor: float = 0.5, stop_after: int = 10,
          jit_compile: bool = True, steps_per_execution: int = 32, seed: int | None = None,
          shuffle_buffer: int = 10_000, progress: bool = True) -> dict:
    """Fits ``distribution`` by minimising ``objective`` (default: maximum likelihood).

    Args:
      distribution: a tfp_flows distribution over ``[D]``.
      data: array ``[N, D]`` (shuffled, batched by ``batch_size``) or a ``tf.data.Dataset`` of
        batches ``x``, ``(x, c)`` or ``(x, c, sample_weight)`` (repeated as needed; for an
        unconditional flow ``c`` is ignored); None for ``ReverseKL``.
      optimizer: a Keras 3 optimizer (its clipping options are honoured).
      steps: number of optimisation steps.
      validation_data: optional array ``[M, D]`` (or ``(x, c)`` for a conditional flow); its
        evaluation loss is recorded every ``validation_every`` steps and at the end.
      objective: a ``tfp_flows.training.objectives.Objective``; None: ``MaximumLikelihood``.
      context: for a conditional flow and array ``data``: the contexts ``[N, C]``.
      nan_guard, backoff_after, backoff_factor, stop_after: see ``NaNGuard``.
      jit_compile: compile the step with XLA.
      steps_per_execution: steps per ``tf.function`` call (and per host read of the losses).
      seed: shuffling seed.
      progress: show a tqdm progress bar.

    Returns:
      A dict: ``loss`` (per step, NaN for skipped steps), ``val_step`` and ``val_loss``,
      ``skipped_steps``, ``lr_backoffs``, ``steps`` (steps run) and ``stop_reason`` (None or
      the guard's message).
    """
    steps = _checks.positive_int(steps, "steps")
    batch_size = _checks.positive_int(batch_size, "batch_size")
    validation_every = _checks.positive_int(validation_every, "validation_every")
    seed = None if seed is None else _checks.non_negative_int(seed, "seed")
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError("`optimizer` must be a Keras 3 optimizer instance, e.g. "
                        "keras.optimizers.Adam(1e-3) or tfp_flows.training.flow_optimizer(steps)"
                        f", got {optimizer!r}.")
    steps_per_execution = _checks.positive_int(steps_per_execution, "steps_per_execution")
    objective = objectives.get(objective)
    trainable, _ = flow_variables(distribution)
    objective.build(distribution)
    trainable = trainable + list(objective.trainable_variables)
    distributed.refuse_strategy(trainable)
    dtype, event_size = distribution.dtype, int(distribution.event_shape[0])
    context_size = context_size_of(distribution)
    batches = None
    if objective.needs_data:
        checks.refuse_iterators(data, "data")
        data, context = check_inputs(objective, data, context, event_size, context_size, dtype,
                                     "data")
        batches = _batches(data, context, batch_size, seed, shuffle_buffer)
    if validation_data is not None:
        vx, vc = (validation_data if isinstance(validation_data, tuple)
                  else (validation_data, None))
        vx, vc = check_inputs(objective, vx, vc, event_size, context_size, dtype,
                              "validation_data")
        validation_data = (tf.constant(vx), None if vc is None else tf.constant(vc))
    guard = NaNGuard(nan_guard, backoff_after, backoff_factor, stop_after)
    registered_before = _compat.custom_gradient_names()
    if not optimizer.built:
        optimizer.build(trainable)
    guard.attach(optimizer)
    conditional = context_size is not None

    @tf.function(jit_compile=jit_compile)
    def one_step(*batch):
        x, c, w = _unpack(batch[0], conditional) if batch else (None, None, None)
        c = None if c is None else tf.cast(c, dtype)
        loss, _, _, ok = step.train_step(objective, distribution, optimizer, guard, trainable,
                                         x, c, w)
        return loss, ok, tf.convert_to_tensor(guard.consecutive_bad_steps)

    @tf.function
    def execution(iterator, k):
        losses = tf.TensorArray(tf.float32, size=k)
        oks = tf.TensorArray(tf.bool, size=k)
        bad = tf.TensorArray(tf.int32, size=k)
        for i in tf.range(k):
            loss, ok, consecutive = (one_step(next(iterator)) if iterator is not None
                                     else one_step())
            losses = losses.write(i, tf.cast(loss, tf.float32))
            oks = oks.write(i, ok)
            bad = bad.write(i, consecutive)
        return losses.stack(), oks.stack(), bad.stack()

    @tf.function
    def val_loss(x, c):
        return step.evaluation_step(objective, distribution, x, c)[0]

    history = {"loss": [], "val_step": [], "val_loss": [], "stop_reason": None}
    done = 0
    with tqdm(total=steps, disable=not progress, desc="train", unit="step") as bar:
        while done < steps:
            k = min(steps_per_execution, steps - done)
            if validation_data is not None:
                k = min(k, validation_every - done % validation_every)
            losses, oks, consecutive = (t.numpy() for t in execution(batches, tf.constant(k)))
            halted = np.flatnonzero(consecutive >= guard.stop_after) if guard.enabled else []
            if len(halted):  # the steps after the stop were skipped without counting
                k = int(halted[0]) + 1
            history["loss"].extend(np.where(oks[:k], losses[:k], np.nan).tolist())
            done += k
            bar.update(k)
            if progress:
                bar.set_postfix(loss=f"{float(losses[k - 1]):.4f}",
                                skipped=int(guard.skipped_steps.numpy()), refresh=False)
            if validation_data is not None and (done % validation_every == 0 or done == steps
                                                or len(halted)):
                history["val_step"].append(done)
                history["val_loss"].append(float(val_loss(*validation_data)))
            if len(halted):
                history["stop_reason"] = guard.stop_message()
                warnings.warn(history["stop_reason"], RuntimeWarning, stacklevel=2)
                break
    history.update(steps=len(history["loss"]), skipped_steps=int(guard.skipped_steps.numpy()),
                   lr_backoffs=int(guard.lr_backoffs.numpy()))
    history["loss"] = np.asarray(history["loss"])
    _compat.release_traces(registered_before)  # as FlowModel's runs do (_ReleaseTraces)
    return history


__all__ = ["train"]
