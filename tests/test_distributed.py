"""fit under tf.distribute equals fit on one device on the same global batches.

Three processes of ``tests/distributed_worker.py`` run at once (logical devices and
``TF_CONFIG`` must be set before TensorFlow starts): one runs every scenario on one device and
under ``MirroredStrategy`` on two logical CPUs; two are the workers of a
``MultiWorkerMirroredStrategy`` on 127.0.0.1, and the chief then runs the one-device reference.
All use the defaults (XLA, ``steps_per_execution=32``, NaN guard); one test checks all
scenarios so the processes start once.
"""

import json
import os
import subprocess
import sys

import numpy as np

from tfp_flows.training import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")
TIMEOUT = 1200  # seconds for all processes; they take ~1 min of CPU each on an idle machine


def _start(out, *flags, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    return subprocess.Popen([sys.executable, WORKER, str(out), *map(str, flags)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(processes):
    """Waits for every process (killing all on a timeout); returns their stdout."""
    logs = []
    try:
        for p in processes:
            logs.append(p.communicate(timeout=TIMEOUT)[0])
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, log in zip(processes, logs):
        assert p.returncode == 0, log[-3000:]
    return logs


def _weights(run):
    return np.concatenate([np.ravel(w) for w in run["weights"]])


def _assert_same_run(run, reference, rtol=1e-4, atol=1e-5):
    """Same weights (float tolerance), loss history, guard counters, step count, densities."""
    assert run["iterations"] == reference["iterations"]
    assert run["skipped"] == reference["skipped"][-len(run["skipped"]):]
    assert np.abs(_weights(reference)).max() > 0.05  # training moved the weights
    np.testing.assert_allclose(_weights(run), _weights(reference), rtol=rtol, atol=atol)
    # A resumed run's history holds the epochs it ran.
    np.testing.assert_allclose(run["loss"], reference["loss"][-len(run["loss"]):], rtol=1e-5)
    np.testing.assert_allclose(run["log_prob"], reference["log_prob"], rtol=rtol, atol=atol)


def _check_strategy(runs, one, name):
    """Every scenario ``runs`` holds equals the one-device run (``distributed_worker.py``)."""
    for case, run in runs.items():
        if case == "train_loop":
            continue
        ref = one[case]
        assert (ref["replicas"], run["replicas"]) == (1, 2), case
        # The single-device defaults hold under the strategy: XLA (on each replica's loss and
        # gradients, except with BatchNorm: below), 32 steps per execution, the NaN guard.
        assert ref["jit"] and run["jit"] and ref["guard"] and run["guard"], case
        assert ref["steps_per_execution"] == run["steps_per_execution"] == 32, case
        assert run["replica_xla"] == (case != "batch_norm"), case
        # float64 BatchNorm: equal to round-off (float32 + Adam: see batch_norm()).
        tolerance = dict(rtol=1e-9, atol=1e-11) if case == "batch_norm" else {}
        try:
            _assert_same_run(run, ref, **tolerance)
        except AssertionError as e:
            raise AssertionError(f"{name}, {case}: {e}") from e
    # The second batch's first half is 1e30, on one replica (worker) only: all skip that step
    # in both epochs, as one device does. Clipping was active (global norm 0.5 < the
    # gradient's), and clipped the full-batch gradient as on one device.
    assert one["conditional"]["skipped"] == [1.0, 2.0]
    assert one["conditional"]["iterations"] == 14
    assert one["conditional"]["initial_gradient_norm"] > 1.0
    # Per-variable clipping was active (the largest per-variable gradient norm / entry is above
    # the clip) and acts on the all-reduced gradient, as on one device (checked above).
    assert one["clipnorm"]["initial_gradient_largest"]["norm"] > 0.05 * 10
    assert one["clipvalue"]["initial_gradient_largest"]["value"] > 0.002 * 10
    # Resumed from the chief's backup, the run equals the uninterrupted one; backup deleted.
    assert runs["resume"]["iterations"] == 16 and not runs["resume"]["backup_left"]


def test_strategies_equal_one_device(tmp_path):
    configs = distributed.local_tf_configs(2)
    processes = [_start(tmp_path / "mirrored.json", "--devices", 2, "--backup", tmp_path / "m")]
    processes += [_start(tmp_path / f"worker{i}.json", "--backup", tmp_path / "w",
                         tf_config=config) for i, config in enumerate(configs)]
    _wait(processes)
    mirrored, chief, other = (json.loads((tmp_path / f"{name}.json").read_text())["strategy"]
                              for name in ("mirrored", "worker0", "worker1"))
    one = json.loads((tmp_path / "mirrored.json").read_text())["one_device"]
    assert set(chief) == {"conditional", "dequantized_uniform", "resume"}
    for runs, name in [(mirrored, "MirroredStrategy"), (chief, "MultiWorkerMirroredStrategy"),
                       (other, "MultiWorkerMirroredStrategy")]:
        _check_strategy(runs, one, name)
    for case in chief:  # the two workers end with identical weights
        np.testing.assert_array_equal(_weights(chief[case]), _weights(other[case]))
    # BatchNorm all-reduces inside the loss: there XLA is off, and fit says so once.
    assert mirrored["batch_norm"]["printed"].count("without XLA") == 1
    assert not one["batch_norm"]["printed"]
    # A SavedModel exported from a model trained under a strategy gives its densities; under
    # MultiWorkerMirroredStrategy the chief writes it.
    for runs in (mirrored, chief):
        np.testing.assert_allclose(runs["resume"]["exported_log_prob"],
                                   runs["resume"]["log_prob"], rtol=1e-6, atol=1e-6)
    assert "exported_log_prob" not in other["resume"]
    # train() refuses a flow built under a strategy, before training; on one device it trains.
    assert one["train_loop"] == {"refused": None, "steps": 4}
    assert "train with FlowModel" in mirrored["train_loop"]["refused"]


def test_local_tf_configs():
    configs = [json.loads(c) for c in distributed.local_tf_configs(3)]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)
