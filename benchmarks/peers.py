"""PyTorch peers: zuko's RealNVP, NSF and MAF, on CPU, under the same protocol (optional extra).

Runs only when ``torch`` and ``zuko`` import (``pip install .[peers]``); otherwise the section
returns ``{"skipped": "skipped: PyTorch peers not installed ...; pip install .[peers]"}``,
prints that message, and the report shows it in place of the numbers.

Models (``MODELS``; ``config["peer_models"]`` selects), each ``num_layers`` transforms with
MLPs of ``hidden_layers`` (ReLU) over a standard normal base, everything else zuko's default as
a zuko user gets it (PyTorch's default ``Linear`` initialisation):

* ``torch_zuko_realnvp``: ``zuko.flows.RealNVP``: affine couplings with masks that alternate
  between couplings (for D = 2 the coordinates take turns, as the swap in tfp_flows and the
  permutation in the TFP reference), zuko's soft-bounded log-scale ``a / (1 + |a| / ln 1000)``;
  trained with the protocol's constant Adam (as the TFP references);
* ``torch_zuko_nsf``: ``zuko.flows.NSF``: monotonic rational-quadratic splines (8 bins on
  ``[-5, 5]``, identity outside), **autoregressive** (zuko's default: MADE conditioners, one
  network pass per ``log_prob``, D passes per ``sample``);
* ``torch_zuko_maf``: ``zuko.flows.MAF``: affine autoregressive transforms (MADE), orders
  reversed between transforms;
  ``_nsf`` and ``_maf`` train with the schedule of ``tfp_flows.training.flow_optimizer``
  (linear warm-up over ``min(100, T // 10)`` steps to 4e-3, cosine decay to 0 at the last step,
  as ``torch.optim.lr_scheduler.LambdaLR``), the schedule tfp_flows' builders get in the quality
  section (issue 10 compares with "zuko NSF, cosine schedule").

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

* ``quality``: ``{dataset: {"entropy_floor": f, "models": {model: result}}}`` with the
  ``trainers`` result dict (``steps_per_s``, ``curve``, ``test_nll``, ``peak_mem_mib``);
* ``train_speed``: ``{model: {...}, "tfp_realnvp": {...}, ...}`` on two moons:
  ``speed_rounds`` rounds of ``speed_round_steps`` steps, each round running every torch model
  and then, in this process, the TFP reference (``tfp_realnvp``), tfp_flows' ``fit``
  (``TF_MODELS``) and the ``fit`` of the tfp_flows counterpart of every selected peer
  (``COUNTERPARTS``: ``tfp_flows_nsf_fit`` for ``torch_zuko_nsf``; as in ``speed.py``), so
  every ratio (``ratio_to_tfp_realnvp``, and ``ratio_to_<peer>`` for a tfp_flows builder and
  its zuko counterpart) is a per-round ratio;
* ``density``: ``{model: {"eager": {"log_prob_points_per_s", "sample_points_per_s",
  "peak_mem_mib"}}}`` on ``speed_points`` points in one call (``torch.inference_mode``,
  untrained model, median of 5 calls), the counterpart of ``speed.density``.
"""

import math
import os
import sys
import time
import warnings

import numpy as np

from benchmarks import protocol

LIBRARY = "zuko"
MODELS = ("torch_zuko_realnvp", "torch_zuko_nsf", "torch_zuko_maf")
SCHEDULED = ("torch_zuko_nsf", "torch_zuko_maf")  # trained with flow_optimizer's schedule
TF_MODELS = ("tfp_realnvp", "tfp_flows_fit")
COUNTERPARTS = {"tfp_flows_fit": "torch_zuko_realnvp", "tfp_flows_nsf_fit": "torch_zuko_nsf",
                "tfp_flows_maf_fit": "torch_zuko_maf"}
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


def models(config):
    return list(config.get("peer_models") or MODELS)


def run(config, log=print):
    """Trains and times ``MODELS`` (see the module docstring); a skip note without torch/zuko."""
    torch, zuko, reason = _import_peers()
    if torch is None:
        message = skip_message(reason)
        log(f"peers: {message}")
        return {"models": models(config), "library": LIBRARY, "skipped": message}
    _set_threads(torch, config)
    peer = _Peer(torch, zuko, config)
    out = {"models": models(config), "library": LIBRARY,
           "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
           "versions": {"torch": torch.__version__, "zuko": zuko.__version__},
           "threads": {"intra_op": torch.get_num_threads(),
                       "inter_op": torch.get_num_interop_threads(),
                       "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
           "parameters": {m: sum(p.numel() for p in peer.build(2, m).parameters())
                          for m in models(config)},
           }
    parts = {"quality": _quality, "train_speed": _train_speed, "density": _density}
    for part in config.get("peer_parts") or parts:
        out[part] = parts[part](peer, config, log)
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

    def build(self, event_size, model):
        torch, config = self.torch, self.config
        torch.manual_seed(config["seed"])
        family = {"torch_zuko_realnvp": self.zuko.flows.RealNVP,
                  "torch_zuko_nsf": self.zuko.flows.NSF,
                  "torch_zuko_maf": self.zuko.flows.MAF}[model]
        return family(event_size, transforms=config["num_layers"],
                      hidden_features=list(config["hidden_layers"]), activation=torch.nn.ReLU)

    def make_step(self, flow, model, total_steps):
        """``step(batch) -> loss``: one Adam step on the mean NLL, gradients clipped; for
        ``SCHEDULED`` models the learning rate follows ``flow_optimizer(total_steps)``."""
        torch, config = self.torch, self.config
        params = list(flow.parameters())
        scheduled = model in SCHEDULED
        peak = FLOW_OPTIMIZER_PEAK if scheduled else config["learning_rate"]
        optimizer = torch.optim.Adam(params, lr=peak, eps=1e-7)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: flow_optimizer_factor(t, total_steps)) if scheduled else None

        def step(batch):
            optimizer.zero_grad(set_to_none=True)
            loss = -flow().log_prob(batch).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config["global_clipnorm"])
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
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

    def train(self, model, x_train, x_test, steps):
        """As ``trainers.train_loop``: returns ``steps_per_s``, ``curve``, ``test_nll``,
        ``peak_mem_mib``."""
        warmup, eval_every = self.config["warmup_steps"], self.config["eval_every"]
        x_test = self.torch.tensor(x_test)
        with protocol.PeakMemory() as memory:
            flow = self.build(x_train.shape[-1], model)
            step, batches = self.make_step(flow, model, steps), self.batches(x_train)
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

    def speed_round(self, model, x_train):
        """``run(steps) -> (steps, seconds)`` after ``warmup_steps`` untimed steps."""
        flow = self.build(x_train.shape[-1], model)
        step, batches = self.make_step(flow, model, 10**9), self.batches(x_train)
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
        results = {}
        for model in models(config):
            r = results[model] = peer.train(model, x_train, x_test, config["quality_steps"])
            log(f"peers quality {name:16s} {model} nll={r['test_nll']} "
                f"steps/s={r['steps_per_s']:.1f}")
        out[name] = {"entropy_floor": protocol.ENTROPY_FLOORS.get(name), "models": results}
    return out


def _train_speed(peer, config, log):
    from benchmarks import speed
    from tfp_flows import datasets

    x_train = np.asarray(datasets.load("two_moons", config["n_train"], seed=config["seed"]),
                         np.float32)
    tf_runners = speed.runners(config, x_train)
    makers = {m: (lambda m=m: peer.speed_round(m, x_train)) for m in models(config)}
    counterparts = [m for m, peer in COUNTERPARTS.items() if peer in makers]
    makers.update({m: tf_runners[m] for m in dict.fromkeys(TF_MODELS + tuple(counterparts))})
    runs, out = {}, {}
    for name, make in makers.items():
        with protocol.PeakMemory() as memory:
            runs[name] = make()
            runs[name](config["speed_round_steps"])  # first round untimed, as in speed.py
        out[name] = {"peak_mem_mib": memory.mib, "rounds": []}
    for _ in range(config["speed_rounds"]):
        for name, run in runs.items():
            steps, seconds = run(config["speed_round_steps"])
            out[name]["rounds"].append(steps / seconds)
    speed.add_ratios(out)
    for ours, theirs in COUNTERPARTS.items():
        if ours in out and theirs in out:
            out[ours][f"ratio_to_{theirs}"] = float(np.median(
                np.divide(out[ours]["rounds"], out[theirs]["rounds"])))
    for name, r in out.items():
        log(f"peers train speed {name:20s} {r['steps_per_s']:8.1f} steps/s  "
            + "  ".join(f"{k.replace('ratio_to_', '×')} {v:.2f}" for k, v in r.items()
                        if k.startswith("ratio_to_"))
            + f"  (rounds {', '.join(f'{v:.0f}' for v in r['rounds'])})")
    return out


def _density(peer, config, log):
    torch, n, d = peer.torch, config["speed_points"], 2
    x = torch.tensor(np.random.default_rng(config["seed"]).normal(size=[n, d]),
                     dtype=torch.float32)
    out = {}
    for model in models(config):
        flow = peer.build(d, model)

        def log_prob(points, flow=flow):
            with torch.inference_mode():
                return flow().log_prob(points)

        def sample(count, flow=flow):
            with torch.inference_mode():
                return flow().sample((count,))

        with protocol.PeakMemory() as memory:
            lp = protocol.points_per_second(log_prob, x)
            sp = protocol.points_per_second(sample, n)
        log(f"peers density {model:18s} eager log_prob {lp / 1e6:6.2f} M/s  "
            f"sample {sp / 1e6:6.2f} M/s  mem {memory.mib:6.1f} MiB")
        out[model] = {"eager": {"log_prob_points_per_s": lp, "sample_points_per_s": sp,
                                "peak_mem_mib": memory.mib}}
    return out


FLOW_OPTIMIZER_PEAK = 4e-3  # tfp_flows.training.flow_optimizer's default learning_rate


def flow_optimizer_factor(t, total_steps):
    """``lr(t) / peak`` of ``flow_optimizer(total_steps)`` (its docstring): linear warm-up over
    ``min(100, T // 10)`` steps, then cosine decay to 0 at ``T``."""
    warmup = min(100, total_steps // 10)
    if t < warmup:
        return t / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(t - warmup, total_steps - warmup)
                                 / (total_steps - warmup)))
