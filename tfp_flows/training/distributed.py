"""``fit`` / ``evaluate`` under a ``tf.distribute`` strategy with the single-device defaults.

Keras 3's TensorFlow trainer has three gaps under a strategy, each measured with a plain
``keras.Sequential`` on two logical CPUs (TF 2.21, Keras 3.15):

* ``jit_compile=True`` compiles ``strategy.run`` itself, a function over every replica's
  device; XLA compiles for one device ("Trying to access resource ... located in device CPU:1
  from device CPU:0").
* ``steps_per_execution > 1`` puts ``strategy.run`` inside a ``tf.cond``, which cannot hold the
  optimizer's ``merge_call`` ("You must feed a value for placeholder tensor", keras-team/keras
  #19246).
* MultiWorkerMirroredStrategy reduces the scalar logs with ``axis=0`` ("Invalid reduction
  dimension 0 for input with 0 dimensions").

So under a strategy ``FlowModel`` always runs its train and test steps through
``training/execution.py``'s ``tf.while_loop`` (no ``tf.cond`` around ``strategy.run``), logs
averaged over replicas without an axis (``mean_over_replicas``), and XLA compiles what runs on
one device: each replica's loss and gradients (``replica_compiled``); the gradient all-reduce,
the NaN guard's decision and the optimizer update run as TensorFlow graph ops. Random draws
(reverse KL's sample, dequantisation noise) are made for the global batch on every replica from
one seed, each replica keeping its rows (``replica_rows``), so they equal one device's.
``tfp_flows.train`` (a one-device loop) refuses a strategy (``refuse_strategy``).
"""

import json
import socket

import keras
import tensorflow as tf

from tfp_flows.bijectors._base import nested_bijectors


def is_distributed(strategy):
    """True for the strategies this module runs: Mirrored and MultiWorkerMirrored."""
    return isinstance(strategy, (tf.distribute.MirroredStrategy,
                                 tf.distribute.MultiWorkerMirroredStrategy))


def all_reduces_in_training(distribution):
    """The bijectors of ``distribution`` that all-reduce in training mode (``BatchNorm``)."""
    return [b for b in nested_bijectors(distribution.bijector)
            if getattr(b, "all_reduces_in_training", False)]


_told = set()


def replica_compiled(fn, jit_compile, distribution):
    """``fn`` (a replica's loss and gradients) compiled with XLA on the replica's device.

    XLA cannot compile a cross-replica all-reduce on CPU (MirroredStrategy hands it to a
    ``merge_call``); a flow whose training mode all-reduces (``BatchNorm``'s global batch
    statistics) therefore runs ``fn`` without XLA, and says so once.
    """
    if not jit_compile:
        return fn
    syncing = all_reduces_in_training(distribution)
    if syncing:
        name = type(syncing[0]).__name__
        if name not in _told:
            _told.add(name)
            print(f"tfp_flows: under a tf.distribute strategy the loss and gradients of a flow "
                  f"with {name} run without XLA: its batch statistics are all-reduced over the "
                  "replicas, and XLA does not compile that all-reduce here.")
        return fn
    return tf.function(fn, jit_compile=True, reduce_retracing=True)


def replica_rows(draw, rows):
    """This replica's ``rows`` of one random draw over the global batch.

    ``draw(n)`` must be a stateless draw of ``[n, ...]`` from a seed every replica shares.
    Each of the N replicas calls ``draw(N · rows)`` and keeps rows ``[r · rows, (r + 1) · rows)``
    (``r`` its index in the sync group: under ``MultiWorkerMirroredStrategy`` the worker's
    share of every global batch), so N replicas with ``rows = B / N`` points each use exactly
    the draw one device makes for its ``B`` points. Outside a strategy it is ``draw(rows)``.
    """
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if replicas == 1:
        return draw(rows)
    full = draw(rows * replicas)
    start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * tf.cast(rows, tf.int32)
    return tf.nest.map_structure(lambda t: t[start:start + rows], full)


def sample_and_log_prob(distribution, num_samples, seed, bijector_kwargs=None):
    """This replica's share of ``num_samples`` draws ``x ~ q``, and ``log q(x)``.

    ``num_samples`` counts all replicas: every replica draws the same ``num_samples`` base
    points ``z`` from ``seed`` and pushes its ``num_samples / N`` rows through the bijector
    (``replica_rows``), so N replicas together use the very sample one device draws:
    ``x = f(z)``, ``log q(x) = log p_z(z) − log|det ∂f/∂z|``. Shapes: ``[num_samples / N, D]``
    and ``[num_samples / N]``. ``bijector_kwargs`` (e.g. a conditional flow's context, one row
    per local sample) go to ``f``.
    """
    base, bijector = distribution.distribution, distribution.bijector
    kwargs = bijector_kwargs or {}
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    z = replica_rows(lambda n: base.sample(n, seed=seed), num_samples // replicas)
    log_q = base.log_prob(z) - bijector.forward_log_det_jacobian(
        z, event_ndims=len(base.event_shape), **kwargs)
    return bijector.forward(z, **kwargs), log_q


def check_num_samples(num_samples, strategy):
    """Raises if ``num_samples`` (per step, global) does not split evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if num_samples % replicas:
        raise ValueError(f"`num_samples` ({num_samples}) is the number of samples per step over "
                         f"all replicas and must be divisible by the {replicas} replicas of "
                         f"{type(strategy).__name__}.")


def mean_over_replicas(strategy, value):
    """A replica function's scalar log averaged over replicas (integer counters are equal on
    every replica: the first). Keras reduces with ``axis=0``, which fails on scalars."""
    first = strategy.experimental_local_results(value)[0]
    if first.dtype.is_floating:
        return strategy.reduce("MEAN", value, axis=None)
    return first


def refuse_strategy(variables, what="tfp_flows.training.train"):
    """Raises ``ValueError`` before training if a ``tf.distribute`` strategy is in scope or
    ``variables`` (``keras.Variable``s) were created under one: ``what`` runs on one device.

    Its loop has no all-reduce, so each replica would train its own copy (or fail inside the
    loop); ``FlowModel.fit`` all-reduces the gradients, ``BatchNorm``'s batch statistics and
    the NaN guard's decision.
    """
    strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    if strategy is None:
        for v in variables:
            if isinstance(getattr(v, "value", v), tf.distribute.DistributedValues):
                strategy = getattr(v.value, "distribute_strategy", None) or v.value
                break
    if strategy is not None:
        raise ValueError(
            f"{what} runs on one device, but the flow's variables belong to "
            f"{type(strategy).__name__} (or it was called inside strategy.scope()). Under a "
            "tf.distribute strategy train with FlowModel: build the flow, the FlowModel and "
            "compile inside strategy.scope(), then call model.fit (README: Several devices).")


def local_tf_configs(num_workers, host="127.0.0.1"):
    """``TF_CONFIG`` values (JSON strings) for ``num_workers`` processes on this machine.

    Worker ``i`` of the returned list is ``{"cluster": {"worker": [host:p0, host:p1, ...]},
    "task": {"type": "worker", "index": i}}`` with ports that were free when asked; worker 0
    is the chief. Start one process per entry with ``TF_CONFIG`` set to it, before
    TensorFlow starts, to try ``MultiWorkerMirroredStrategy`` without a cluster.
    """
    sockets = [socket.socket() for _ in range(int(num_workers))]
    try:
        for s in sockets:
            s.bind((host, 0))
        ports = [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
    cluster = {"worker": [f"{host}:{p}" for p in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(len(ports))]


def is_chief(strategy=None):
    """Whether this process is the chief: the ``chief`` task, else worker 0, else alone.

    Reads ``strategy.cluster_resolver`` or, without a strategy, ``TF_CONFIG``.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if not resolver.task_type or resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` for several workers: only the chief writes.

    Every worker restores from ``backup_dir`` when ``fit`` starts (so it must be a directory
    all workers read, e.g. a shared file system); only the chief saves there and deletes it at
    the end. The workers' weights are equal after every step, so the chief's backup is
    everyone's. On one process it is Keras's callback.
    """

    def on_epoch_end(self, epoch, logs=None):
        if is_chief(self.model.distribute_strategy):
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if is_chief(self.model.distribute_strategy):
            super().on_train_batch_end(batch, logs)

    def on_train_end(self, logs=None):
        if is_chief(self.model.distribute_strategy):
            super().on_train_end(logs)
