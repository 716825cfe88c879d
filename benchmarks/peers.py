"""PyTorch peer: the same RealNVP in zuko, on CPU, under the same protocol (optional extra).

Runs only when ``torch`` and ``zuko`` import (``pip install .[peers]``); otherwise the section
returns ``{"skipped": "skipped: PyTorch peers not installed ...; pip install .[peers]"}``,
prints that message, and the report shows it in place of the numbers.

Model ``torch_zuko_realnvp``: ``zuko.flows.RealNVP(D, transforms=num_layers,
hidden_features=hidden_layers, activation=ReLU)``: ``num_layers`` affine couplings, each
conditioned by an MLP (``hidden_layers``, ReLU), with masks that alternate between couplings
(for D = 2 the two coordinates take turns, as the swap in tfp_flows and the permutation in the
TFP reference), over a standard normal base. Everything else is zuko's default, as a zuko user
gets it: PyTorch's default ``Linear`` initialisation and zuko's soft-bounded log-scale
``a / (1 + |a| / ln 1000)`` (|log-scale| < 6.91).

Protocol (``protocol.py``): the same minibatches (``protocol.train_dataset``'s seeded pipeline,
each batch copied into a torch tensor), ``torch.optim.Adam(learning_rate, eps=1e-7)`` (Keras'
epsilon) with ``torch.nn.utils.clip_grad_norm_(..., global_clipnorm)``,
``torch.set_num_threads(intra_op_threads)``, ``torch.manual_seed(seed)``; the first
``warmup_steps`` steps untimed, the test NLL every ``eval_every`` steps with the clock stopped.
``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here: with GNU OpenMP's default spin-waiting, a
2-thread pool on a 2-core machine where another process holds one core ran this model at
2 steps/s instead of 87 (every parallel region waits for the descheduled thread); TF's Eigen
pool does not stall that way. Set ``OMP_WAIT_POLICY`` yourself to override; the JSON records it.

Result (key ``peers`` of the results JSON), shaped like the other sections:

* ``quality``: ``{dataset: {"entropy_floor": f, "models": {MODEL: result}}}`` with the
  ``trainers`` result dict (``steps_per_s``, ``curve``, ``test_nll``, ``peak_mem_mib``);
* ``train_speed``: ``{MODEL: {...}, "tfp_realnvp": {...}}`` on two moons: ``speed_rounds``
  rounds of ``speed_round_steps`` steps, each round running the torch model and then the TFP
  reference (``reference.realnvp`` in the hand-written loop) in this process, so
  ``ratio_to_tfp_realnvp`` is a per-round ratio as in ``speed.py``;
* ``density``: ``{MODEL: {"eager": {"log_prob_points_per_s", "sample_points_per_s",
  "peak_mem_mib"}}}`` on ``speed_points`` points in one call (``torch.inference_mode``,
  untrained model, median of 5 calls), the counterpart of ``speed.density``.
"""

import os
import sys
import time
import warnings

import numpy as np

from benchmarks import protocol

LIBRARY = "zuko"
MODEL = f"torch_{LIBRARY}_realnvp"
INSTALL_HINT = "pip install .[peers]"


def _import_peers():
    """``(torch, zuko, None)``, or ``(None, None, reason)`` when either does not import."""
    # TensorFlow is loaded by now, and loading Triton's libtriton.so after it segfaults (seen
    # with TF 2.21, torch 2.14.1, triton 3.8.0). Triton only compiles GPU / torch.compile
    # kernels, which CPU eager mode never uses; torch treats it as absent when its import fails.
    sys.modules.setdefault("triton", None)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads libgomp
    warnings.filterwarnings("ignore", message="CUDA initialization")  # CUDA wheels, no GPU
    try:
        import torch
        import zuko
    except (ImportError, OSError) as e:
        return None, None, f"{type(e).__name__}: {e}"
    return torch, zuko, None


def skip_message(reason):
    return f"skipped: PyTorch peers not installed ({reason}); {INSTALL_HINT}"


def run(config, log=print):
    """Trains and times ``MODEL`` (see the module docstring); a skip note without torch/zuko."""
    torch, zuko, reason = _import_peers()
    if torch is None:
        message = skip_message(reason)
        log(f"peers: {message}")
        return {"model": MODEL, "library": LIBRARY, "skipped": message}
    _set_threads(torch, config)
    peer = _Peer(torch, zuko, config)
    out = {"model": MODEL, "library": LIBRARY,
           "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
           "versions": {"torch": torch.__version__, "zuko": zuko.__version__},
           "threads": {"intra_op": torch.get_num_threads(),
                       "inter_op": torch.get_num_interop_threads(),
                       "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
           "parameters": sum(p.numel() for p in peer.build(2).parameters()),
           "quality": _quality(peer, config, log), "train_speed": _train_speed(peer, config, log),
           "density": _density(peer, config, log)}
    return out


def _set_threads(torch, config):
    torch.set_num_threads(config["intra_op_threads"])
    try:  # allowed once per process, before any inter-op work
        torch.set_num_interop_threads(config["inter_op_threads"])
    except RuntimeError:
        pass


class _Peer:
    """Builds, trains and evaluates the zuko flow under the protocol."""

    def __init__(self, torch, zuko, config):
        self.torch, self.zuko, self.config = torch, zuko, config

    def build(self, event_size):
        torch, config = self.torch, self.config
        torch.manual_seed(config["seed"])
        return self.zuko.flows.RealNVP(event_size, transforms=config["num_layers"],
                                       hidden_features=list(config["hidden_layers"]),
                                       activation=torch.nn.ReLU)

    def make_step(self, flow):
        """``step(batch) -> loss``: one Adam step on the mean NLL, gradients clipped."""
        torch, config = self.torch, self.config
        params = list(flow.parameters())
        optimizer = torch.optim.Adam(params, lr=config["learning_rate"], eps=1e-7)

        def step(batch):
            optimizer.zero_grad(set_to_none=True)
            loss = -flow().log_prob(batch).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config["global_clipnorm"])
            optimizer.step()
            return loss

        return step

    def batches(self, x_train):
        """The protocol's minibatches (same seed, same order) as float32 torch tensors."""
        stream = protocol.train_dataset(x_train, self.config, self.config["seed"])
        for batch in stream.as_numpy_iterator():
            yield self.torch.tensor(batch)

    def nll(self, flow, x):
        with self.torch.no_grad():
            return float(-flow().log_prob(x).mean())

    def train(self, x_train, x_test, steps):
        """As ``trainers.train_loop``: returns ``steps_per_s``, ``curve``, ``test_nll``,
        ``peak_mem_mib``."""
        warmup, eval_every = self.config["warmup_steps"], self.config["eval_every"]
        x_test = self.torch.tensor(x_test)
        with protocol.PeakMemory() as memory:
            flow = self.build(x_train.shape[-1])
            step, batches = self.make_step(flow), self.batches(x_train)
            seconds, curve, t0 = 0.0, [], None
            for s in range(1, steps + 1):
                step(next(batches))
                if s == warmup:
                    t0 = time.perf_counter()
                if s % eval_every == 0 or s == steps:
                    if t0 is not None:
                        seconds += time.perf_counter() - t0
                    curve.append((s, self.nll(flow, x_test)))
                    t0 = time.perf_counter() if s >= warmup else None
        nll = curve[-1][1] if curve else float("nan")
        timed = steps - warmup
        return {"steps_per_s": timed / seconds if seconds > 0 else float("nan"),
                "curve": [[int(s), protocol.finite_or_none(v)] for s, v in curve],
                "test_nll": protocol.finite_or_none(nll), "peak_mem_mib": memory.mib}

    def speed_round(self, x_train):
        """``run(steps) -> (steps, seconds)`` after ``warmup_steps`` untimed steps."""
        flow = self.build(x_train.shape[-1])
        step, batches = self.make_step(flow), self.batches(x_train)
        for _ in range(self.config["warmup_steps"]):
            step(next(batches))

        def run(steps):
            t0 = time.perf_counter()
            for _ in range(steps):
                step(next(batches))
            return steps, time.perf_counter() - t0

        return run


def _quality(peer, config, log):
    from tfp_flows import datasets

    out = {}
    for name in config["datasets"]:
        x_train, x_test = datasets.train_test(name, config["n_train"], config["n_test"],
                                              seed=config["seed"])
        x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
        r = peer.train(x_train, x_test, config["quality_steps"])
        log(f"peers quality {name:16s} {MODEL} nll={r['test_nll']} "
            f"steps/s={r['steps_per_s']:.1f}")
        out[name] = {"entropy_floor": protocol.ENTROPY_FLOORS.get(name), "models": {MODEL: r}}
    return out


def _tfp_reference_round(config, x_train):
    """The TFP reference in the hand-written loop (``speed.py``'s ``tfp_realnvp``)."""
    from benchmarks import reference, speed

    return speed.loop_round(reference.realnvp(x_train.shape[-1], config["num_layers"],
                                              config["hidden_layers"], seed=config["seed"]),
                            x_train, config, jit=False)


def _train_speed(peer, config, log):
    from tfp_flows import datasets

    x_train = np.asarray(datasets.load("two_moons", config["n_train"], seed=config["seed"]),
                         np.float32)
    runs, out = {}, {}
    for name, make in ((MODEL, lambda: peer.speed_round(x_train)),
                       ("tfp_realnvp", lambda: _tfp_reference_round(config, x_train))):
        with protocol.PeakMemory() as memory:
            runs[name] = make()
            runs[name](config["speed_round_steps"])  # first round untimed, as in speed.py
        out[name] = {"peak_mem_mib": memory.mib, "rounds": []}
    for _ in range(config["speed_rounds"]):
        for name, run in runs.items():
            steps, seconds = run(config["speed_round_steps"])
            out[name]["rounds"].append(steps / seconds)
    ref = out["tfp_realnvp"]["rounds"]
    for name, r in out.items():
        r["steps_per_s"] = float(np.median(r["rounds"]))
        r["ratio_to_tfp_realnvp"] = float(np.median(np.divide(r["rounds"], ref)))
        log(f"peers train speed {name:20s} {r['steps_per_s']:8.1f} steps/s  "
            f"(rounds {', '.join(f'{v:.0f}' for v in r['rounds'])})")
    return out


def _density(peer, config, log):
    torch, n, d = peer.torch, config["speed_points"], 2
    flow = peer.build(d)
    x = torch.tensor(np.random.default_rng(config["seed"]).normal(size=[n, d]),
                     dtype=torch.float32)

    def log_prob(points):
        with torch.inference_mode():
            return flow().log_prob(points)

    def sample(count):
        with torch.inference_mode():
            return flow().sample((count,))

    with protocol.PeakMemory() as memory:
        lp = protocol.points_per_second(log_prob, x)
        sp = protocol.points_per_second(sample, n)
    log(f"peers density {MODEL:18s} eager log_prob {lp / 1e6:6.2f} M/s  "
        f"sample {sp / 1e6:6.2f} M/s  mem {memory.mib:6.1f} MiB")
    return {MODEL: {"eager": {"log_prob_points_per_s": lp, "sample_points_per_s": sp,
                              "peak_mem_mib": memory.mib}}}
