"""Training throughput on 1 process vs 2 worker processes (MultiWorkerMirroredStrategy).

    python benchmarks/distributed.py [--steps 300] [--batch 512] [--smoke]

Each configuration is a fresh set of processes on this machine: one process without a
strategy, one worker of a one-worker ``MultiWorkerMirroredStrategy`` (the strategy's own cost)
and two workers on 127.0.0.1 (the same global batch, half per worker). Each runs the
``FlowModel.fit`` defaults (XLA gradients, ``steps_per_execution=32``, NaN guard) on a RealNVP
(8 couplings, 2x64) over two moons: one warm-up epoch (tracing, compilation), then a timed
``fit`` of ``--steps`` steps. Printed: steps/s and examples/s (global batch x steps/s) of the
slowest worker, and ratios to the single process. Two workers on one 2-core machine share its
cores; see ``benchmarks/README.md`` for what to expect across machines or GPUs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from tfp_flows.training import distributed

WORKER = """
import json, sys, time
import tfp_flows
import keras
import tensorflow as tf
steps, batch, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
strategy = (tf.distribute.MultiWorkerMirroredStrategy() if sys.argv[4] == "mwms"
            else tf.distribute.get_strategy())
x = tfp_flows.datasets.two_moons(batch * 32, seed=0)
data = tf.data.Dataset.from_tensor_slices(x).repeat().batch(batch, drop_remainder=True)
with strategy.scope():
    model = tfp_flows.FlowModel(tfp_flows.flows.realnvp(2, num_layers=8, hidden_layers=[64, 64],
                                                        seed=0))
    model.compile(keras.optimizers.Adam(1e-3))
model.fit(data, epochs=1, steps_per_epoch=64, verbose=0)  # trace, compile, warm up
start = time.perf_counter()
model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
seconds = time.perf_counter() - start
ran = int(model.optimizer.iterations.numpy()) - 64
json.dump({"seconds": seconds, "steps": ran}, open(out, "w"))
"""


def run(workers, mode, steps, batch, timeout):
    """Runs ``workers`` processes; returns the slowest one's ``(seconds, steps)``."""
    tmp = tempfile.mkdtemp()
    configs = distributed.local_tf_configs(workers)
    procs = []
    for i in range(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("TF_CONFIG", None)
        if mode == "mwms":
            env["TF_CONFIG"] = configs[i]
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(steps), str(batch), f"{tmp}/{i}.json", mode],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, log in zip(procs, logs):
        if p.returncode:
            raise RuntimeError(f"worker failed:\n{log[-2000:]}")
    results = [json.load(open(f"{tmp}/{i}.json")) for i in range(workers)]
    slowest = max(results, key=lambda r: r["seconds"])
    return slowest["seconds"], slowest["steps"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=320, help="timed steps (default 320)")
    parser.add_argument("--batch", type=int, default=512, help="global batch (default 512)")
    parser.add_argument("--smoke", action="store_true", help="32 steps, batch 64")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per configuration")
    args = parser.parse_args()
    steps, batch = (32, 64) if args.smoke else (args.steps, args.batch)
    rows = []
    for name, workers, mode in [("1 process, no strategy", 1, "none"),
                                ("1 worker, MultiWorkerMirrored", 1, "mwms"),
                                ("2 workers, MultiWorkerMirrored", 2, "mwms")]:
        t0 = time.perf_counter()
        seconds, ran = run(workers, mode, steps, batch, args.timeout)
        rows.append((name, ran / seconds, ran * batch / seconds))
        print(f"{name:32s} {ran / seconds:8.1f} steps/s {ran * batch / seconds:10.0f} examples/s"
              f"  ({ran} steps of {batch}; {time.perf_counter() - t0:.0f} s with start-up)",
              flush=True)
    base = rows[0][1]
    for name, rate, _ in rows[1:]:
        print(f"ratio {name} / 1 process: {rate / base:.2f}x steps/s (same global batch)")


if __name__ == "__main__":
    main()
