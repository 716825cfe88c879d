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
                          cwd=ROOT, timeout=1500, check=False)  # ~1 min idle; 9 at load 18
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


PEER_MODELS = ["torch_zuko_realnvp", "torch_zuko_nsf", "torch_zuko_maf"]


def _check_peers(peers, stdout):
    """The optional PyTorch peer section: numbers where torch and zuko import, else a skip note
    with the install hint, printed and shown in the tables."""
    assert peers["models"] == PEER_MODELS
    if not PEERS_INSTALLED:
        message = peers["skipped"]
        assert message.startswith("skipped: PyTorch peers not installed"), message
        assert message.endswith("pip install .[peers]"), message
        assert f"peers: {message}" in stdout  # the log line
        for model in PEER_MODELS:
            assert f"| {model} | skipped |" in stdout
        assert message in stdout.split("### ")[-1]
        return
    assert "skipped" not in peers
    assert set(peers["quality"]["two_moons"]["models"]) == set(PEER_MODELS)
    ours = {"tfp_flows_fit": "torch_zuko_realnvp", "tfp_flows_nsf_fit": "torch_zuko_nsf",
            "tfp_flows_maf_fit": "torch_zuko_maf"}  # each with its zuko counterpart's rounds
    assert set(peers["train_speed"]) == set(PEER_MODELS) | {"tfp_realnvp"} | set(ours)
    for model, peer in ours.items():
        assert peers["train_speed"][model][f"ratio_to_{peer}"] > 0, model
    for p, v in _numbers({k: peers[k] for k in ("quality", "train_speed", "density")}):
        assert math.isfinite(v), p
    for model in PEER_MODELS:
        assert f"| {model} (PyTorch eager, no XLA) |" in stdout


def _fake_results(peers):
    return {"date": "2026-01-01", "mode": "smoke", "config": {"quality_steps": 25,
                                                              "speed_points": 2048},
            "environment": {"machine": {"cpu": "cpu", "cores": 2, "load_average_at_start": None},
                            "versions": {"tensorflow": "2", "tensorflow_probability": "0",
                                         "keras": "3", "git_commit": "0" * 40},
                            "command": "run.py"},
            "elapsed_s": 1.0,
            "quality": {"two_moons": {"entropy_floor": 1.676, "models": {
                "tfp_flows_fit": {"test_nll": 1.8, "steps_per_s": 100.0, "curve": [[25, 1.8]]},
                "tfp_flows_nsf": {"test_nll": 1.69, "steps_per_s": 90.0,
                                  "curve": [[25, 1.69]]}}}},
            "peers": peers}


def test_report_shows_peer_numbers_or_the_skip_note():
    from benchmarks import report

    skipped = {"models": PEER_MODELS, "library": "zuko",
               "skipped": "skipped: PyTorch peers not installed (x); pip install .[peers]"}
    text = report.markdown(_fake_results(skipped))
    assert "| two_moons | 1.676 | 1.800 | 1.690 | skipped | skipped | skipped |" in text
    for model in PEER_MODELS:
        assert f"| {model} | skipped | — | — | — | — |" in text
        assert f"| {model} | " + " | ".join(["skipped"] * 6) + " |" in text
    assert skipped["skipped"] in text
    assert "≤ torch_zuko_nsf" not in text  # no comparison without the peer's number

    def result(nll):
        return {"steps_per_s": 50.0, "curve": [[25, nll]], "test_nll": nll, "peak_mem_mib": 1.0}

    def speed(rate, **ratios):
        return {"steps_per_s": rate, "rounds": [rate], "peak_mem_mib": 1.0,
                "ratio_to_tfp_realnvp": rate / 80.0, **ratios}

    ran = {"models": PEER_MODELS, "library": "zuko", "versions": {"torch": "2", "zuko": "1"},
           "threads": {"intra_op": 2, "inter_op": 1, "omp_wait_policy": "PASSIVE"},
           "parameters": {m: 66 for m in PEER_MODELS},
           "load_average_at_start": [1.0, 1.0, 1.0],
           "quality": {"two_moons": {"entropy_floor": 1.676, "models": {
               "torch_zuko_realnvp": result(2.5), "torch_zuko_nsf": result(1.7),
               "torch_zuko_maf": result(2.0)}}},
           "train_speed": {"torch_zuko_realnvp": speed(40.0), "torch_zuko_nsf": speed(20.0),
                           "torch_zuko_maf": speed(30.0), "tfp_realnvp": speed(80.0),
                           "tfp_flows_nsf_fit": speed(50.0, ratio_to_torch_zuko_nsf=2.5)},
           "density": {m: {"eager": {"log_prob_points_per_s": 3e6, "sample_points_per_s": 2e6,
                                     "peak_mem_mib": 0.0}} for m in PEER_MODELS}}
    text = report.markdown(_fake_results(ran))
    assert "| two_moons | 1.676 | 1.800 | 1.690 | 2.500 | 1.700 | 2.000 |" in text
    assert "| torch_zuko_realnvp | 40 | 0.50 | — | 40 | 1 |" in text
    assert "| tfp_flows_nsf_fit | 50 | 0.62 | 2.50 (torch_zuko_nsf) | 50 | 1 |" in text
    assert "| two_moons: tfp_flows_nsf NLL ≤ torch_zuko_nsf | 1.690 vs 1.700 | met |" in text
    assert ("| tfp_flows_nsf_fit steps/s ≥ 3× torch_zuko_nsf (peers section, same rounds) "
            "| 2.50× | **missed** |") in text
    assert "| two_moons: tfp_flows_nsf NLL within 0.03 of the entropy floor 1.676 " in text
    for model in PEER_MODELS:
        assert f"| {model} (PyTorch eager, no XLA) | 3.00 M | — | — | 2.00 M | — | — |" in text
    assert "zuko 1 on PyTorch 2" in text


def test_speed_ratios_are_per_round_against_the_fastest_reference():
    from benchmarks import speed

    out = {"tfp_realnvp": {"rounds": [100.0, 50.0]},
           "tfp_realnvp_careful_round_xla": {"rounds": [200.0, 40.0]},
           "tfp_flows_loop_xla": {"rounds": [300.0, 100.0]},
           "tfp_flows_fit": {"rounds": [400.0, 150.0]}}
    speed.add_ratios(out)
    fit = out["tfp_flows_fit"]
    assert fit["ratio_to_tfp_realnvp"] == 3.5  # median of 4 and 3
    assert fit["ratio_to_fastest_tfp"] == 2.5  # rounds' fastest: 200 then 50 -> 2 and 3
    assert fit["ratio_to_tfp_flows_loop_xla"] == (400 / 300 + 1.5) / 2
    assert fit["fastest_tfp"] == "tfp_realnvp_careful_round_xla"  # by median rate (120 > 75)
    assert "ratio_to_tfp_flows_loop_xla" not in out["tfp_realnvp"]


def test_merging_keeps_other_models_and_an_older_single_peer_section():
    from benchmarks import run

    old = {"model": "torch_zuko_realnvp", "library": "zuko",
           "quality": {"two_moons": {"entropy_floor": 1.676,
                                     "models": {"torch_zuko_realnvp": {"test_nll": 1.7}}}},
           "train_speed": {"torch_zuko_realnvp": {"steps_per_s": 1.0}},
           "parameters": {"torch_zuko_realnvp": 10}, "load_average_at_start": [9.0, 9.0, 9.0]}
    new = {"models": ["torch_zuko_nsf"], "library": "zuko",
           "parameters": {"torch_zuko_nsf": 20}, "load_average_at_start": [1.0, 1.0, 1.0],
           "quality": {"two_moons": {"entropy_floor": 1.676,
                                     "models": {"torch_zuko_nsf": {"test_nll": 1.69}}},
                       "checkerboard": {"entropy_floor": 3.466,
                                        "models": {"torch_zuko_nsf": {"test_nll": 3.5}}}}}
    merged = run._merge_section("peers", old, new)
    assert merged["models"] == ["torch_zuko_realnvp", "torch_zuko_nsf"] and "model" not in merged
    assert set(merged["quality"]["two_moons"]["models"]) == {"torch_zuko_realnvp",
                                                             "torch_zuko_nsf"}
    assert set(merged["quality"]["checkerboard"]["models"]) == {"torch_zuko_nsf"}
    assert merged["train_speed"] == old["train_speed"]  # a part the new run did not measure
    assert merged["parameters"] == {"torch_zuko_realnvp": 10, "torch_zuko_nsf": 20}
    assert merged["load_average_at_start"] == [9.0, 9.0, 9.0]  # the speed rounds' load
    assert run._merge_section("train_speed", {"a": 1}, {"b": 2}) == {"b": 2}
