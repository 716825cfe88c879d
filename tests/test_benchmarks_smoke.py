"""`benchmarks/run.py --smoke` runs every section and writes JSON with finite numbers.

Checks that the scripts run, not the figures: no timing is asserted.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
PEERS_INSTALLED = all(importlib.util.find_spec(m) for m in ("torch", "zuko"))


def _numbers(obj, path=""):
    if isinstance(obj, bool):
        return
    if isinstance(obj, int | float):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}/{i}")


def test_smoke_run_writes_finite_results(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--smoke",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = [f for f in os.listdir(tmp_path) if f.endswith(".json")]
    assert len(files) == 1, files
    with open(tmp_path / files[0]) as f:
        results = json.load(f)
    for section in ("train_speed", "density", "scaling", "planar", "quality", "batch_norm"):
        assert results[section], section
    assert results["mode"] == "smoke"
    assert results["environment"]["versions"]["tensorflow"]
    measured = [(p, v) for p, v in _numbers(results) if not p.startswith("/config")]
    assert len(measured) > 50
    # Rates, NLLs and errors must be finite numbers (None would mean NaN/inf was measured).
    for section in ("train_speed", "density", "scaling", "planar", "quality", "batch_norm"):
        for p, v in _numbers(results[section], section):
            assert math.isfinite(v), p
    for entry in results["quality"].values():
        for model, r in entry["models"].items():
            assert r["test_nll"] is not None and math.isfinite(r["test_nll"]), model
            assert all(v is not None for _, v in r["curve"]), model
    assert results["targets"] and all(isinstance(t["met"], bool) for t in results["targets"])
    assert os.path.exists(tmp_path / files[0].replace(".json", ".png"))
    _check_peers(results["peers"], proc.stdout)


def _check_peers(peers, stdout):
    """The optional PyTorch peer section: numbers where torch and zuko import, else a skip note
    with the install hint, printed and shown in the tables."""
    model = peers["model"]
    assert model == "torch_zuko_realnvp"
    if not PEERS_INSTALLED:
        message = peers["skipped"]
        assert message.startswith("skipped: PyTorch peers not installed"), message
        assert message.endswith("pip install .[peers]"), message
        assert f"peers: {message}" in stdout  # the log line
        assert f"| {model} | skipped |" in stdout and message in stdout.split("### ")[-1]
        return
    assert "skipped" not in peers
    assert set(peers["quality"]["two_moons"]["models"]) == {model}
    assert set(peers["train_speed"]) == {model, "tfp_realnvp"}
    for p, v in _numbers({k: peers[k] for k in ("quality", "train_speed", "density")}):
        assert math.isfinite(v), p
    assert f"| {model} (PyTorch eager, no XLA) |" in stdout


def _fake_results(peers):
    return {"date": "2026-01-01", "mode": "smoke", "config": {"quality_steps": 25,
                                                              "speed_points": 2048},
            "environment": {"machine": {"cpu": "cpu", "cores": 2, "load_average_at_start": None},
                            "versions": {"tensorflow": "2", "tensorflow_probability": "0",
                                         "keras": "3", "git_commit": "0" * 40},
                            "command": "run.py"},
            "elapsed_s": 1.0,
            "quality": {"two_moons": {"entropy_floor": 1.676, "models": {"tfp_flows_fit": {
                "test_nll": 1.8, "steps_per_s": 100.0, "curve": [[25, 1.8]]}}}},
            "peers": peers}


def test_report_shows_peer_numbers_or_the_skip_note():
    from benchmarks import report

    model = "torch_zuko_realnvp"
    skipped = {"model": model, "library": "zuko",
               "skipped": "skipped: PyTorch peers not installed (x); pip install .[peers]"}
    text = report.markdown(_fake_results(skipped))
    assert "| two_moons | 1.676 | 1.800 | skipped |" in text
    assert f"| {model} | skipped | — | — | — |" in text
    assert f"| {model} | " + " | ".join(["skipped"] * 6) + " |" in text
    assert skipped["skipped"] in text

    result = {"steps_per_s": 50.0, "curve": [[25, 2.5]], "test_nll": 2.5, "peak_mem_mib": 1.0}
    speed = {"steps_per_s": 40.0, "rounds": [40.0], "peak_mem_mib": 1.0,
             "ratio_to_tfp_realnvp": 0.5}
    ran = {"model": model, "library": "zuko", "versions": {"torch": "2", "zuko": "1"},
           "threads": {"intra_op": 2, "inter_op": 1, "omp_wait_policy": "PASSIVE"},
           "parameters": 66,
           "load_average_at_start": [1.0, 1.0, 1.0],
           "quality": {"two_moons": {"entropy_floor": 1.676, "models": {model: result}}},
           "train_speed": {model: speed, "tfp_realnvp": speed},
           "density": {model: {"eager": {"log_prob_points_per_s": 3e6,
                                         "sample_points_per_s": 2e6, "peak_mem_mib": 0.0}}}}
    text = report.markdown(_fake_results(ran))
    assert "| two_moons | 1.676 | 1.800 | 2.500 |" in text
    assert f"| {model} | 40 | 0.50 | 40 | 1 |" in text
    assert "| tfp_realnvp | 40 |" not in text  # the peer's own reference rounds stay in the JSON
    assert f"| {model} (PyTorch eager, no XLA) | 3.00 M | — | — | 2.00 M | — | — |" in text
    assert "zuko 1 on PyTorch 2" in text
