"""fit under tf.distribute equals fit on one device on the same global batches.

Each run is a fresh process of ``tests/distributed_worker.py`` (logical devices must be set
before TensorFlow initialises them): one device, ``MirroredStrategy`` on two logical CPUs, and
``MultiWorkerMirroredStrategy`` with two worker processes on 127.0.0.1. All use the defaults
(XLA step, ``steps_per_execution=32``, NaN guard).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")
TIMEOUT = 900  # seconds per process; the runs take ~30 s of CPU each


def _start(cases, out, *flags, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, WORKER, cases, str(out), *flags], env=env,
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
    """Same weights (float tolerance), loss history, guard counters and step count."""
    assert run["iterations"] == reference["iterations"]
    assert run["skipped"] == reference["skipped"]
    assert np.abs(_weights(reference)).max() > 0.05  # training moved the weights
    np.testing.assert_allclose(_weights(run), _weights(reference), rtol=rtol, atol=atol)
    np.testing.assert_allclose(run["loss"], reference["loss"], rtol=1e-5)
    np.testing.assert_allclose(run["log_prob"], reference["log_prob"], rtol=rtol, atol=atol)


def _single_and_mirrored(tmp_path, cases):
    _wait([_start(cases, tmp_path / "single.json", "--backup", tmp_path / "b1"),
           _start(cases, tmp_path / "mirrored.json", "--devices", "2",
                  "--backup", tmp_path / "b2")])
    single = json.loads((tmp_path / "single.json").read_text())
    mirrored = json.loads((tmp_path / "mirrored.json").read_text())
    return single, mirrored


def test_mirrored_maximum_likelihood_and_reverse_kl(tmp_path):
    single, mirrored = _single_and_mirrored(tmp_path, "mle,reverse_kl")
    for case in ("mle", "reverse_kl"):
        s, m = single[case], mirrored[case]
        assert (s["replicas"], m["replicas"]) == (1, 2)
        # The single-device defaults hold under the strategy.
        assert s["jit"] and m["jit"] and s["steps_per_execution"] == m["steps_per_execution"] == 32
        _assert_same_run(m, s)
    # Batch 2's first half is 1e30 on replica 0 only: both replicas skip that step, as one device.
    assert single["mle"]["skipped"] == [1.0, 2.0] and single["mle"]["iterations"] == 14
    # A SavedModel exported from the model trained under the strategy gives its densities.
    np.testing.assert_allclose(mirrored["mle"]["exported_log_prob"], mirrored["mle"]["log_prob"],
                               rtol=1e-6, atol=1e-6)


def test_mirrored_batch_norm_and_backup_and_restore(tmp_path):
    single, mirrored = _single_and_mirrored(tmp_path, "batch_norm,resume")
    # Global batch statistics: 2 replicas x 32 points train like one device with 64 (the
    # weights include the moving mean and variance).
    _assert_same_run(mirrored["batch_norm"], single["batch_norm"])
    for run in (single, mirrored):
        resume = run["resume"]
        np.testing.assert_allclose(_weights(resume["resumed"]), _weights(resume["whole"]),
                                   rtol=1e-5, atol=1e-6)
        assert resume["resumed"]["iterations"] == resume["whole"]["iterations"] == 16
        assert not resume["backup_left"]  # deleted at the end of training
    _assert_same_run(mirrored["resume"]["resumed"], single["resume"]["resumed"])


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_matches_single_process(tmp_path):
    """Two worker processes on 127.0.0.1 end with identical weights, equal to one process."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    backup = tmp_path / "backup"  # shared by both workers; only the chief writes
    workers = [_start("mle,resume", tmp_path / f"worker{i}.json", "--backup", backup,
                      tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i in range(2)]
    reference = _start("mle,resume", tmp_path / "single.json", "--backup", tmp_path / "b1")
    _wait(workers + [reference])
    single = json.loads((tmp_path / "single.json").read_text())
    runs = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2)]
    for run in runs:
        assert run["mle"]["replicas"] == 2
        assert run["mle"]["jit"] and run["mle"]["steps_per_execution"] == 32
        _assert_same_run(run["mle"], single["mle"])
        # Resumed from the chief's backup: as if never interrupted, as on one process.
        _assert_same_run(run["resume"]["resumed"], single["resume"]["resumed"])
        np.testing.assert_allclose(_weights(run["resume"]["resumed"]),
                                   _weights(single["resume"]["whole"]), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(_weights(runs[0]["mle"]), _weights(runs[1]["mle"]))
