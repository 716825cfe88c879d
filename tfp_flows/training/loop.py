"""``train``: a custom maximum-likelihood loop for users who do not want ``keras.Model.fit``.

Same objective, clipping (the Keras optimizer's ``clipnorm`` / ``clipvalue`` /
``global_clipnorm``) and NaN guards as ``FlowModel``; one compiled ``tf.function`` step
(XLA by default); a tqdm progress bar.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tqdm.auto import tqdm

from tfp_flows import _checks
from tfp_flows._mode import training_mode
from tfp_flows.training import checks
from tfp_flows.training.guards import NaNGuard
from tfp_flows.training.model import flow_variables


def _batches(data, batch_size, seed, shuffle_buffer):
    """An endless iterator of batches ``[batch_size, D]``; a dataset is taken as batched."""
    if isinstance(data, tf.data.Dataset):
        ds = data.map(lambda *e: e[0]) if isinstance(data.element_spec, tuple) else data
        return iter(ds.repeat())
    ds = tf.data.Dataset.from_tensor_slices(data)
    ds = ds.shuffle(min(len(data), shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    return iter(ds.repeat().batch(min(batch_size, len(data)), drop_remainder=True).prefetch(2))


def train(distribution: tfp.distributions.Distribution, data, optimizer: keras.optimizers.Optimizer,
          steps: int, batch_size: int = 256, validation_data=None, validation_every: int = 100,
          nan_guard: bool = True, backoff_after: int = 3, backoff_factor: float = 0.5,
          stop_after: int = 10, jit_compile: bool = True, seed: int | None = None,
          shuffle_buffer: int = 10_000, progress: bool = True) -> dict:
    """Fits ``distribution`` to ``data`` by minimising the mean negative log-likelihood.

    Args:
      distribution: a tfp_flows distribution over ``[D]``.
      data: array ``[N, D]`` (shuffled, batched by ``batch_size``) or a ``tf.data.Dataset`` of
        batches ``x`` or ``(x, ...)`` (repeated as needed).
      optimizer: a Keras 3 optimizer (its clipping options are honoured).
      steps: number of optimisation steps.
      validation_data: optional array ``[M, D]``; its mean NLL is recorded every
        ``validation_every`` steps and at the end.
      nan_guard, backoff_after, backoff_factor, stop_after: see ``NaNGuard``.
      jit_compile: compile the step with XLA.
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
    trainable, _ = flow_variables(distribution)
    dtype, event_size = distribution.dtype, int(distribution.event_shape[0])
    data = checks.check_data(data, event_size, dtype, "data")
    if validation_data is not None:
        validation_data = tf.constant(checks.check_array(validation_data, event_size, dtype,
                                                         "validation_data"))
    batches = _batches(data, batch_size, seed, shuffle_buffer)
    guard = NaNGuard(nan_guard, backoff_after, backoff_factor, stop_after)
    if not optimizer.built:
        optimizer.build(trainable)
    guard.attach(optimizer)
    tf_vars = [v.value for v in trainable]

    @tf.function(jit_compile=jit_compile)
    def step(x):
        x = tf.cast(x, dtype)
        with training_mode(True):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(distribution.log_prob(x))
            grads = tape.gradient(loss, tf_vars)
        ok = guard.apply(optimizer, loss, grads, trainable)
        return loss, ok

    @tf.function
    def val_loss(x):
        with training_mode(False):
            return -tf.reduce_mean(distribution.log_prob(x))

    history = {"loss": [], "val_step": [], "val_loss": [], "stop_reason": None}
    bar = tqdm(range(steps), disable=not progress, desc="train", unit="step")
    for i in bar:
        loss, ok = step(next(batches))
        history["loss"].append(float(loss) if bool(ok) else float("nan"))
        if validation_data is not None and ((i + 1) % validation_every == 0 or i + 1 == steps):
            history["val_step"].append(i + 1)
            history["val_loss"].append(float(val_loss(validation_data)))
        if progress and (i % 10 == 0 or i + 1 == steps):
            bar.set_postfix(loss=f"{float(loss):.4f}",
                            skipped=int(guard.skipped_steps.numpy()), refresh=False)
        if guard.enabled and guard.halted:
            history["stop_reason"] = guard.stop_message()
            warnings.warn(history["stop_reason"], RuntimeWarning, stacklevel=2)
            break
    bar.close()
    history.update(steps=len(history["loss"]), skipped_steps=int(guard.skipped_steps.numpy()),
                   lr_backoffs=int(guard.lr_backoffs.numpy()))
    history["loss"] = np.asarray(history["loss"])
    return history
