"""One training run for tests/test_distributed.py, in its own process.

    python tests/distributed_worker.py CASE[,CASE...] OUT.json [--devices N] [--backup DIR]

Without ``--devices`` and ``TF_CONFIG`` it trains on one device; with ``--devices N`` under a
``MirroredStrategy`` over N logical CPUs; with ``TF_CONFIG`` set under a
``MultiWorkerMirroredStrategy`` (one worker of the cluster). Every mode sees the same global
batches and writes the same record (weights, logs) to OUT.json.
"""

import argparse
import json
import os

import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("case")
parser.add_argument("out")
parser.add_argument("--devices", type=int, default=0)
parser.add_argument("--backup", default=None)
args = parser.parse_args()
if args.devices:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.devices)])

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfp_flows  # noqa: E402
from tfp_flows.training import FlowModel, distributed, export_saved_model  # noqa: E402

if "TF_CONFIG" in os.environ:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
elif args.devices:
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.devices)])
else:
    strategy = tf.distribute.get_strategy()

rng = np.random.default_rng(0)
x = (rng.normal(size=(512, 2)) * [0.5, 2.0] + [1.0, -1.0]).astype("float32")


def data(nan_rows=False):
    """Global batches of 64; with ``nan_rows`` half of batch 2 is 1e30 (one replica sees it)."""
    values = x.copy()
    if nan_rows:
        values[128:160] = 1e30
    return tf.data.Dataset.from_tensor_slices(values).batch(64)


def record(model, history):
    return dict(weights=[v.numpy().ravel().tolist() for v in model.weights
                         if "seed_generator" not in v.path],
                loss=history.get("loss"), skipped=history.get("skipped_steps"),
                iterations=int(model.optimizer.iterations.numpy()),
                jit=bool(model.jit_compile), steps_per_execution=model.steps_per_execution,
                replicas=strategy.num_replicas_in_sync,
                log_prob=model.log_prob(x[:32]).numpy().tolist())


def realnvp_model(optimizer=None, **kwargs):
    with strategy.scope():
        model = FlowModel(tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[16, 16],
                                                  seed=0, **kwargs))
        model.compile(optimizer() if optimizer else
                      keras.optimizers.Adam(1e-2, global_clipnorm=1.0))
    return model


def mle():
    """Maximum likelihood with the defaults, global-norm clipping and one bad batch."""
    model = realnvp_model()
    out = record(model, model.fit(data(nan_rows=True), epochs=2, verbose=0).history)
    if args.devices:
        path = os.path.join(os.path.dirname(args.out), "saved_model")
        export_saved_model(model, path)
        loaded = tf.saved_model.load(path)
        out["exported_log_prob"] = loaded.log_prob(x[:32])["log_prob"].numpy().tolist()
    return out


def batch_norm():
    # SGD: Adam's normalised steps would blow float32 round-off in near-zero gradients up to
    # the learning rate, hiding what is compared (the global batch statistics).
    model = realnvp_model(lambda: keras.optimizers.SGD(0.05, momentum=0.5), batch_norm=True)
    return record(model, model.fit(data(), epochs=2, verbose=0).history)


def reverse_kl():
    with strategy.scope():
        model = FlowModel.for_target("u1", tfp_flows.flows.planar(2, num_layers=4, seed=0),
                                     num_samples=64, seed=0)
        model.compile(keras.optimizers.Adam(1e-2, global_clipnorm=1.0))
    return record(model, model.fit(epochs=1, steps_per_epoch=12, verbose=0).history)


def resume():
    """Two epochs in one ``fit``, and one epoch then a new model resuming from the backup."""
    model = realnvp_model()
    whole = record(model, model.fit(data(), epochs=2, verbose=0).history)
    model = realnvp_model()
    model.fit(data(), epochs=1, verbose=0,
              callbacks=[distributed.BackupAndRestore(args.backup, delete_checkpoint=False)])
    model = realnvp_model()  # a new model (initial weights), restored from the backup
    resumed = model.fit(data(), epochs=2, verbose=0,
                        callbacks=[distributed.BackupAndRestore(args.backup)]).history
    return dict(whole=whole, resumed=record(model, resumed),
                backup_left=os.path.exists(args.backup))


CASES = dict(mle=mle, batch_norm=batch_norm, reverse_kl=reverse_kl, resume=resume)

out = {case: CASES[case]() for case in args.case.split(",")}
with open(args.out, "w") as f:
    json.dump(out, f)
