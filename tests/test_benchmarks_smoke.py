"""`benchmarks/run.py --smoke` runs every section and writes JSON with finite numbers.

Checks that the scripts run, not the figures: no timing is asserted.
"""

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
