"""Training scenarios for tests/test_distributed.py, run in a fresh process.

    python tests/distributed_worker.py OUT.json --backup DIR [--devices N]

With ``--devices N`` (N logical CPUs) every scenario runs under ``MirroredStrategy`` over the
N devices and then on one device (no strategy), the reference. With ``TF_CONFIG`` set this
process is one worker of a ``MultiWorkerMirroredStrategy`` and runs ``MULTI_WORKER`` under
it. All runs see the same global batches (64 points; 32 per replica). OUT.json gets
``{"strategy": {scenario: record}, "one_device": {...}}`` (a record holds the weights and
logs to compare). Logical devices and ``TF_CONFIG`` must be set before TensorFlow starts,
hence a process of its own; one process runs many scenarios because each start costs
~10-20 s.
"""

import argparse
import contextlib
import io
import json
import os

import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--backup", required=True)
parser.add_argument("--devices", type=int, default=0)
args = parser.parse_args()
if args.devices:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.devices)])

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfp_flows  # noqa: E402
from tfp_flows import digits as tfp_digits  # noqa: E402
from tfp_flows.dequantization import VariationalDequantizer  # noqa: E402
from tfp_flows.training import (  # noqa: E402
    DequantizedBound,
    FlowModel,
    distributed,
    export_saved_model,
    train,
)

if "TF_CONFIG" in os.environ:
    STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
else:
    STRATEGY = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.devices)])
ONE_DEVICE = tf.distribute.get_strategy()
CURRENT = [None]  # the strategy the scenarios run under

rng = np.random.default_rng(0)
X = (rng.normal(size=(512, 2)) * [0.5, 2.0] + [1.0, -1.0]).astype("float32")
C = (X[:, :1] > 1.0).astype("float32")  # a context: which side of x0 = 1 the point is on


def data(dtype="float32"):
    return tf.data.Dataset.from_tensor_slices(X.astype(dtype)).batch(64)


def weights(model):
    """The flow's (and a dequantiser's) trainable weights and BatchNorm's moving statistics."""
    return [v.numpy().ravel().tolist() for v in model.trainable_weights
            + [w for w in model.non_trainable_weights if "moving" in w.path]]


def record(model, history, x=X[:32], c=None):
    """What two runs must share: weights, logs, step count, and the defaults in force."""
    return dict(
        weights=weights(model), loss=history.get("loss"), skipped=history.get("skipped_steps"),
        iterations=int(model.optimizer.iterations.numpy()),
        jit=bool(model.jit_compile), steps_per_execution=model.steps_per_execution,
        guard=bool(model.guard.enabled),
        # Under a strategy XLA compiles each replica's loss and gradients (a tf.function).
        replica_xla=isinstance(getattr(model, "_replica_gradients", None),
                               tf.types.experimental.PolymorphicFunction),
        replicas=model.distribute_strategy.num_replicas_in_sync,
        log_prob=model.log_prob(x, c).numpy().tolist())


def in_scope(build):
    """``build()`` inside the current strategy's scope (the flow, FlowModel and compile)."""
    with CURRENT[0].scope():
        return build()


def realnvp_model(optimizer, **kwargs):
    def build():
        model = FlowModel(tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[16, 16],
                                                  seed=0, **kwargs))
        model.compile(optimizer())
        return model
    return in_scope(build)


def conditional():
    """``fit(x, c)`` on arrays (no shuffle, so every process sees the same batches); SGD with
    active global-norm clipping; half of batch 2 is 1e30, so one replica's share is bad."""
    model = realnvp_model(lambda: keras.optimizers.SGD(0.05, momentum=0.9, global_clipnorm=0.5),
                          context_size=1)
    x = X.copy()
    x[128:160] = 1e30
    with tf.GradientTape() as tape:  # the first batch's gradient norm at the initial weights
        loss = -tf.reduce_mean(model.log_prob(X[:64], C[:64]))
    norm = float(tf.linalg.global_norm(tape.gradient(loss, model.trainable_variables)))
    history = model.fit(x, C, batch_size=64, epochs=2, shuffle=False, verbose=0).history
    return dict(record(model, history, X[:32], C[:32]), initial_gradient_norm=norm)


def clipped(optimizer, learning_rate, **clip):
    """``optimizer`` with per-variable clipping (``clipnorm`` or ``clipvalue``), active: the first
    batch's largest per-variable gradient norm / entry is recorded to show it exceeds the
    clip. Per-replica clipping before the all-reduce would differ from one device (SGD at
    learning rate 1 moves each clipped entry by the clip, 0.002, per step: well above the
    comparison's tolerance)."""
    def run():
        model = realnvp_model(lambda: optimizer(learning_rate, **clip))
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(model.log_prob(X[:64]))
        grads = tape.gradient(loss, model.trainable_variables)
        largest = dict(norm=max(float(tf.norm(g)) for g in grads),
                       value=max(float(tf.reduce_max(tf.abs(g))) for g in grads))
        history = model.fit(data(), epochs=1, verbose=0).history
        return dict(record(model, history), initial_gradient_largest=largest)
    return run


def reverse_kl():
    def build():
        model = FlowModel.for_target("u1", tfp_flows.flows.planar(2, num_layers=4, seed=0),
                                     num_samples=64, seed=0)
        model.compile(keras.optimizers.Adam(1e-2, global_clipnorm=1.0))
        return model
    model = in_scope(build)
    return record(model, model.fit(epochs=1, steps_per_epoch=12, verbose=0).history)


def batch_norm():
    """BatchNorm (global batch statistics) with Adam, in float64: Adam turns round-off in
    gradients that BatchNorm makes nearly zero into lr-sized steps, which float32 shows."""
    model = realnvp_model(lambda: keras.optimizers.Adam(1e-2), batch_norm=True, dtype="float64")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        history = model.fit(data("float64"), epochs=2, verbose=0).history
    return dict(record(model, history, X[:32].astype("float64")), printed=printed.getvalue())


def dequantized(variational):
    """``DequantizedBound`` on 8x8 digits (17 levels), a small flow, 4 steps. Each replica's
    noise is its rows of the global batch's draw, so the draws equal one device's."""
    pixels = np.asarray(tfp_digits.load().train[:256], np.int32)

    def run():
        def build():
            dequantizer = (VariationalDequantizer(64, 17, num_couplings=1, hidden_layers=[8],
                                                  seed=1) if variational else None)
            model = FlowModel(tfp_flows.flows.realnvp(64, num_layers=2, hidden_layers=[16],
                                                      seed=0),
                              objective=DequantizedBound(17, dequantizer=dequantizer, seed=0))
            model.compile(keras.optimizers.Adam(1e-2))
            return model
        model = in_scope(build)
        history = model.fit(tf.data.Dataset.from_tensor_slices(pixels).batch(64), epochs=1,
                            verbose=0).history
        return record(model, history, np.linspace(-3, 3, 4 * 64, dtype="float32").reshape(4, 64))
    return run


def resume():
    """Under the strategy: one epoch with ``distributed.BackupAndRestore`` (the chief writes),
    then a new model that restores from the backup and runs to epoch 2; its SavedModel (the
    chief exports). On one device: the two epochs uninterrupted, the reference."""
    def adam():
        return keras.optimizers.Adam(1e-2, global_clipnorm=1.0)

    if CURRENT[0] is ONE_DEVICE:
        model = realnvp_model(adam)
        return record(model, model.fit(data(), epochs=2, verbose=0).history)
    backup = os.path.join(args.backup, "backup")
    model = realnvp_model(adam)
    model.fit(data(), epochs=1, verbose=0,
              callbacks=[distributed.BackupAndRestore(backup, delete_checkpoint=False)])
    model = realnvp_model(adam)  # a new model (initial weights), restored from the backup
    history = model.fit(data(), epochs=2, verbose=0,
                        callbacks=[distributed.BackupAndRestore(backup)]).history
    out = dict(record(model, history), backup_left=os.path.exists(backup))
    if distributed.is_chief(CURRENT[0]):
        path = export_saved_model(model, os.path.join(args.backup, "saved_model"))
        loaded = tf.saved_model.load(path)  # kept: its functions need its variables
        out["exported_log_prob"] = loaded.log_prob(X[:32])["log_prob"].numpy().tolist()
    return out


def train_loop():
    """``train()`` refuses a flow built under a strategy; on one device it trains."""
    flow = in_scope(lambda: tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[16, 16],
                                                    seed=0))
    try:
        history = train(flow, X, keras.optimizers.Adam(1e-2), steps=4, batch_size=64,
                        progress=False)
    except ValueError as e:
        return dict(refused=str(e))
    return dict(refused=None, steps=history["steps"])


SCENARIOS = dict(conditional=conditional, reverse_kl=reverse_kl, batch_norm=batch_norm,
                 clipnorm=clipped(keras.optimizers.Adam, 1e-2, clipnorm=0.05),
                 clipvalue=clipped(keras.optimizers.SGD, 1.0, clipvalue=0.002),
                 dequantized_uniform=dequantized(False),
                 dequantized_variational=dequantized(True), resume=resume, train_loop=train_loop)
MULTI_WORKER = ["conditional", "dequantized_uniform", "resume"]


def run_all(strategy, names):
    CURRENT[0] = strategy
    return {name: SCENARIOS[name]() for name in names}


names = MULTI_WORKER if "TF_CONFIG" in os.environ else list(SCENARIOS)
results = {"strategy": run_all(STRATEGY, names)}
if args.devices:
    results["one_device"] = run_all(ONE_DEVICE, names)
with open(args.out, "w") as f:
    json.dump(results, f)
