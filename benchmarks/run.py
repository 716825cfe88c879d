"""Runs the benchmarks: ``python benchmarks/run.py [--smoke] [--out DIR] [--only SECTION ...]``.

Full mode writes ``<out>/<date>.json`` and ``<out>/<date>.png`` (``out`` defaults to
``benchmarks/results``) and regenerates the tables in ``benchmarks/README.md``. ``--smoke``
runs every section at tiny sizes (a check that the scripts run, not a measurement) and leaves
the README alone. The ``peers`` section (``benchmarks/peers.py``, the same RealNVP in a
PyTorch flow library) runs only where ``pip install .[peers]`` was done and is otherwise
skipped in a moment, with a note in the tables.
"""

import argparse
import datetime
import json
import os
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import tfp_flows  # noqa: E402, F401  (first: imports TensorFlow without start-up noise)
from benchmarks import protocol  # noqa: E402

SECTIONS = ["train_speed", "density", "scaling", "planar", "quality", "batch_norm", "peers"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, < 60 s")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--no-readme", action="store_true", help="do not touch README.md")
    parser.add_argument("--merge", action="store_true",
                        help="with --only: update today's JSON, keeping its other sections "
                             "(quality: its other data sets and models)")
    parser.add_argument("--combine", nargs="+", metavar="JSON",
                        help="run nothing: merge these results files in order (as --merge "
                             "would, later files win) into today's JSON, tables and figure")
    parser.add_argument("--peer-parts", nargs="+", choices=["quality", "train_speed", "density"],
                        help="peers: only these parts")
    parser.add_argument("--speed-models", nargs="+", help="train_speed: only these models")
    parser.add_argument("--datasets", nargs="+", help="quality: only these data sets")
    parser.add_argument("--models", nargs="+",
                        help="quality / peers: only these models (torch_*: the peers)")
    parser.add_argument("--seed", type=int,
                        help="the protocol's seed (data, batches, initialisation; default "
                             "0): repeats of a comparison on other seeds")
    args = parser.parse_args(argv)

    config = dict(protocol.SMOKE if args.smoke else protocol.FULL)
    if args.datasets:
        config["datasets"] = args.datasets
    if args.models:  # torch_* names select the PyTorch peers, the others the quality models
        config["quality_models"] = [m for m in args.models if not m.startswith("torch_")]
        config["peer_models"] = [m for m in args.models if m.startswith("torch_")]
    if args.speed_models:
        config["speed_models"] = args.speed_models
    if args.seed is not None:
        config["seed"] = args.seed
    if args.peer_parts:
        config["peer_parts"] = args.peer_parts
    tf = protocol.configure_tensorflow(config)
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")

    from benchmarks import peers, quality, report, scaling, speed

    runners = {"train_speed": speed.train_speed, "density": speed.density,
               "scaling": scaling.dimension, "planar": scaling.planar,
               "quality": quality.run, "batch_norm": quality.batch_norm,
               "peers": peers.run}
    start = time.time()
    date = datetime.date.today().isoformat()
    stem = f"smoke-{date}" if args.smoke else date
    json_path = os.path.join(args.out, f"{stem}.json")
    previous = {}
    if args.merge and os.path.exists(json_path):
        with open(json_path) as f:
            previous = json.load(f)
    if args.combine:
        return _combine(args, json_path, stem, report)
    results = {**previous, "date": date, "mode": "smoke" if args.smoke else "full",
               "config": config,
               "memory_method": protocol.MEMORY_METHOD, "device": speed.device(),
               "environment": protocol.environment(sys.argv if argv is None else
                                                   ["benchmarks/run.py"] + list(argv)),
               "section_seconds": dict(previous.get("section_seconds", {}))}
    for section in args.only or SECTIONS:
        t0 = time.time()
        tf.random.set_seed(config["seed"])
        new = runners[section](config, log=lambda s: print(s, flush=True))
        results[section] = _merge_section(section, previous.get(section), new)
        results["section_seconds"][section] = time.time() - t0
        print(f"-- {section}: {time.time() - t0:.0f} s", flush=True)
    results["elapsed_s"] = sum(results["section_seconds"].values()) if previous else (
        time.time() - start)
    if previous:
        results["merged_commands"] = previous.get("merged_commands", [
            previous["environment"]["command"]]) + [results["environment"]["command"]]
    return _write(results, args, json_path, stem, report)


def _write(results, args, json_path, stem, report):
    for name, entry in (results.get("quality") or {}).items():
        entry["entropy_floor"] = protocol.ENTROPY_FLOORS.get(name)  # also for merged runs
    results["targets"] = report.targets(results)
    report.write_json(results, json_path)
    report.figure(results, os.path.join(args.out, f"{stem}.png"))
    table = report.markdown(results)
    if not (args.smoke or args.no_readme):
        report.update_readme(os.path.join(ROOT, "benchmarks", "README.md"), table)
    print(table)
    print(f"wrote {json_path}")
    return results


def _combine(args, json_path, stem, report):
    """Merges ``args.combine`` (results JSONs) in order into ``json_path``."""
    results = {}
    for path in args.combine:
        with open(path) as f:
            new = json.load(f)
        if not results:
            results = new
            results.setdefault("merged_commands", [new["environment"]["command"]])
            continue
        for section in SECTIONS:
            if section in new:
                results[section] = _merge_section(section, results.get(section), new[section])
        results["section_seconds"] = {**results.get("section_seconds", {}),
                                      **new.get("section_seconds", {})}
        results["merged_commands"] += new.get("merged_commands", [new["environment"]["command"]])
        results["environment"] = new["environment"]
        results["device"] = new.get("device", results.get("device"))
    results["elapsed_s"] = sum(results["section_seconds"].values())
    results["date"] = stem  # the combined record's date: today's
    return _write(results, args, json_path, stem, report)


def _merge_section(section, old, new):
    """``new`` results of ``section`` on top of ``old`` ones: quality per data set and model,
    the PyTorch peers per part (their quality per data set and model), others replaced."""
    if not old:
        return new
    if section == "quality":
        return _merge_quality(old, new)
    if section == "peers" and "skipped" not in old and "skipped" not in new:
        merged = {**old, **new}
        merged["models"] = list(dict.fromkeys(  # (a section before several peers: "model")
            (old.get("models") or [old["model"]]) + new["models"]))
        merged.pop("model", None)
        merged["quality"] = _merge_quality(old.get("quality"), new.get("quality") or {})
        merged["parameters"] = {**(old.get("parameters") or {}), **(new.get("parameters") or {})}
        if "train_speed" not in new and "load_average_at_start" in old:
            # the report states the load next to the training-speed rounds: keep theirs
            merged["load_average_at_start"] = old["load_average_at_start"]
        return merged
    return new


def _merge_quality(old, new):
    """``old`` quality results updated per data set and model by ``new``."""
    merged = {name: {**entry, "models": dict(entry["models"])} for name, entry in
              (old or {}).items()}
    for name, entry in new.items():
        merged.setdefault(name, {**entry, "models": {}})["models"].update(entry["models"])
    return merged


if __name__ == "__main__":
    main()
