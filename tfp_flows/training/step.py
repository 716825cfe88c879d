"""The one train step that ``FlowModel.fit`` and ``train()`` run.

Per step, with ``θ`` the flow's (and the objective's) trainable variables:

1. ``loss, weight, metrics = objective.loss(distribution, x, context, sample_weight, t)`` in
   training mode (``BatchNorm`` uses batch statistics), ``t = optimizer.iterations``;
2. ``g = ∇_θ loss / R`` (``R`` replicas: Keras's convention, the optimizer sums over them);
3. ``NaNGuard.apply``: the optimizer (with its clipping) applies ``g`` iff the loss and every
   gradient entry are finite; otherwise nothing is touched and the step is counted.

Returns ``(loss, weight, metrics, ok)``; the caller averages what it reports over good steps.
"""

import tensorflow as tf

from tfp_flows._mode import training_mode


def loss_and_gradients(objective, distribution, variables, x, context=None, sample_weight=None,
                       step=None):
    """``(loss, weight, metrics, grads)``; grads of ``loss / num_replicas`` w.r.t.
    ``variables`` (``keras.Variable``s)."""
    with training_mode(True):
        with tf.GradientTape() as tape:
            loss, weight, metrics = objective.loss(distribution, x, context, sample_weight, step)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = loss / tf.cast(replicas, loss.dtype)
    return loss, weight, metrics, tape.gradient(scaled, [v.value for v in variables])


def train_step(objective, distribution, optimizer, guard, variables, x, context=None,
               sample_weight=None):
    """One guarded optimisation step (see the module docstring)."""
    loss, weight, metrics, grads = loss_and_gradients(
        objective, distribution, variables, x, context, sample_weight, optimizer.iterations)
    ok = guard.apply(optimizer, loss, grads, variables)
    return loss, weight, metrics, ok


def evaluation_step(objective, distribution, x, context=None, sample_weight=None, step=None):
    """``(loss, weight, metrics, ok)`` of the objective in inference mode; ``ok`` says the
    loss and metrics are finite (a non-finite batch is left out of the averages and counted
    by the caller)."""
    with training_mode(False):
        loss, weight, metrics = objective.evaluation_loss(distribution, x, context,
                                                          sample_weight, step)
    ok = tf.reduce_all(tf.math.is_finite(loss))
    return loss, weight, metrics, ok
