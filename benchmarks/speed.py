"""Speed: training steps/s (interleaved rounds, same process) and density points/s.

Training speed is measured on two moons in ``speed_rounds`` rounds; each round runs every
model for ``speed_round_steps`` timed steps in turn, so load from other processes hits all
models alike; reported: the median rate over rounds and medians over rounds of per-round
ratios (both sides of a ratio saw similar load). Models:

* ``tfp_flows_fit``: ``FlowModel.fit`` with its defaults (XLA train step, NaN guard, 32 steps
  per execution) on the protocol's ``tf.data`` pipeline; the rounds are the epochs of one
  ``fit`` call (``_FitRounds``; before 2026-12-07 a ``fit`` call per round, which timed a
  refill of the pipeline's shuffle buffer every round);
* ``tfp_flows_fit_array``: the same ``fit`` on the training array itself
  (``fit(x, batch_size=512)``: reshuffled every epoch, the last batch short; since
  2026-12-07 batched inside the compiled steps, ``execution.ArrayBatches``), the most
  common Keras input form; a round is one epoch (``ceil(n_train / 512)`` steps) instead of
  ``speed_round_steps``;
* ``tfp_flows_fit_no_guard``: the same with ``FlowModel(nan_guard=False)`` (cost of the guard);
* ``tfp_flows_fit_spe1``: the same with ``steps_per_execution=1`` (Keras's default: one Python
  round trip per step);
* ``tfp_flows_loop`` / ``tfp_flows_loop_xla``: our flow in the hand-written loop, without /
  with ``jit_compile``; ``tfp_flows_round_xla``: our flow with graph-sampled batches and a whole
  round of steps in one XLA call (what the flow costs without any per-step dispatch);
* the TFP references (``REFERENCES``): ``tfp_realnvp`` / ``tfp_realnvp_xla`` are what a typical
  user writes (``tf.data`` iterator, reshapes, ``tfd.Sample`` base), without / with XLA; the
  ``tfp_realnvp_careful*`` variants are the strongest loops we could write with TFP (issue 14):
  no reshapes, ``MultivariateNormalDiag`` base, batches drawn in the graph
  (``tf.random.Generator`` + ``tf.gather``), a ``tf.function`` step (``_careful``), an XLA step
  (``_careful_xla``), or a whole round in one ``tf.while_loop`` (``_careful_round``, and in one
  XLA call: ``_careful_round_xla``);
* ``tfp_maf``: ``tfb.MaskedAutoregressiveFlow`` in the hand-written loop.

Ratios: ``ratio_to_tfp_realnvp`` (the typical reference), ``ratio_to_fastest_tfp`` (per round,
against the fastest TFP RealNVP variant of that round) and ``ratio_to_tfp_flows_loop_xla``.

Density speed: ``log_prob`` and ``sample`` on ``speed_points`` points in one call, wrapped in
``tf.function`` (``graph``) or ``tf.function(jit_compile=True)`` (``xla``), and for our flow
also through ``tfp_flows.CompiledDistribution`` (``xla_chunked``: XLA, its default chunks);
median of 5 calls.
"""

import queue
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import protocol, quality, reference, trainers

TYPICAL = "tfp_realnvp"
REFERENCES = ("tfp_realnvp", "tfp_realnvp_xla", "tfp_realnvp_careful", "tfp_realnvp_careful_xla",
              "tfp_realnvp_careful_round", "tfp_realnvp_careful_round_xla")


def sampled_round(dist_pair, x_train, config, jit, whole_round=False):
    """As ``loop_round`` with batches drawn in the graph; ``whole_round``: each round's
    steps run in one ``tf.function`` call (``trainers.make_loop``)."""
    train, evaluate = dist_pair
    trainers.build_variables(train, evaluate, x_train.shape[-1])
    step, body = trainers.make_sampled_step(train, protocol.make_optimizer(config), x_train,
                                            config["batch_size"], jit, config["seed"])
    if whole_round:
        loop = trainers.make_loop(body, jit)

        def steps_fn(steps):
            return loop(tf.constant(steps))
    else:
        def steps_fn(steps):
            for _ in range(steps):
                loss = step()
            return loss
    steps_fn(config["warmup_steps"]).numpy()

    def run(steps):
        t0 = time.perf_counter()
        steps_fn(steps).numpy()
        return steps, time.perf_counter() - t0

    return run


def loop_round(dist_pair, x_train, config, jit, training_context=None):
    """Returns ``round(steps) -> (steps, seconds)`` after ``warmup_steps`` untimed steps."""
    train, evaluate = dist_pair
    trainers.build_variables(train, evaluate, x_train.shape[-1])
    step = trainers.make_step(train, protocol.make_optimizer(config), jit, training_context)
    iterator = iter(protocol.train_dataset(x_train, config, config["seed"]))
    for _ in range(config["warmup_steps"]):
        loss = step(next(iterator))
    loss.numpy()

    def run(steps):
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step(next(iterator))
        loss.numpy()
        return steps, time.perf_counter() - t0

    return run


class _FitClock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.t0


class _FitRounds(keras.callbacks.Callback):
    """The rounds of one ``fit`` call: epoch ``i`` runs when ``run`` is called the ``i``-th time.

    A training run is one ``fit`` call, and within it Keras reads a dataset through one
    iterator (``steps_per_epoch`` given). A new ``fit`` call per round would make a new
    iterator every round and time the refill of the pipeline's shuffle buffer (the whole
    50k-point training set: ~0.8 ms per step of a 100-step round, measured 2026-12-07), which
    the hand-written loops, reading one iterator, never pay. ``fit`` runs ``epochs`` epochs of
    ``steps`` steps in a thread that waits at each ``on_epoch_begin`` until ``run`` is called;
    ``run`` returns the epoch's seconds (``on_epoch_begin`` to ``on_epoch_end``)."""

    def __init__(self, model, dataset, steps, epochs):
        super().__init__()
        self.steps = steps
        self._go, self._done = threading.Semaphore(0), queue.Queue()

        def train():
            try:
                model.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=0,
                          callbacks=[self])
            except BaseException as error:  # handed to the caller of run
                self._done.put(error)
            self._done.put(None)  # the fit ended

        self._thread = threading.Thread(target=train, daemon=True)
        self._thread.start()

    def on_epoch_begin(self, epoch, logs=None):
        self._go.acquire()
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._done.put(time.perf_counter() - self.t0)

    def __call__(self, steps):
        """Runs the next epoch; ``(steps, seconds)``."""
        if steps != self.steps:
            raise ValueError(f"this fit's epochs have {self.steps} steps, not {steps}")
        self._go.release()
        seconds = self._done.get()
        if seconds is None or isinstance(seconds, BaseException):
            self._thread.join()
            raise RuntimeError("the fit ended before this round") from seconds
        return steps, seconds


def _fit_round(dist, x_train, config, nan_guard=True, **compile_kwargs):
    """``fit`` on the protocol's pipeline: one ``fit`` call whose epochs are the untimed
    warm-up, the untimed first round and the ``speed_rounds`` timed rounds (``_FitRounds``)."""
    from tfp_flows.training import FlowModel

    model = FlowModel(dist, nan_guard=nan_guard)
    model.compile(optimizer=protocol.make_optimizer(config), **compile_kwargs)
    dataset = protocol.train_dataset(x_train, config, config["seed"])
    steps = config["speed_round_steps"]
    run = _FitRounds(model, dataset, steps, epochs=config["speed_rounds"] + 2)
    run(steps)  # warm-up: tracing, XLA compilation
    return run


def _fit_array_round(dist, x_train, config):
    """``fit(x_train, batch_size)`` on the array; ``run`` ignores ``steps`` and runs one
    epoch (its ``ceil(len(x_train) / batch_size)`` steps), the warm-up one untimed epoch."""
    from tfp_flows.training import FlowModel

    model = FlowModel(dist)
    model.compile(optimizer=protocol.make_optimizer(config))
    batch = config["batch_size"]
    model.fit(x_train, batch_size=batch, epochs=1, verbose=0)

    def run(steps):
        clock = _FitClock()
        model.fit(x_train, batch_size=batch, epochs=1, verbose=0, callbacks=[clock])
        return -(-len(x_train) // batch), clock.seconds

    return run


def runners(config, x_train):
    """``{model: make}``; ``make()`` builds a model and returns its ``run(steps)``."""
    import tfp_flows

    d, seed = x_train.shape[-1], config["seed"]
    layers, hidden = config["num_layers"], config["hidden_layers"]

    def ours():
        return quality.ours(config, d, seed)

    def ours_pair():
        dist = ours()
        return dist, dist

    def careful(jit, whole_round=False):
        return sampled_round(reference.realnvp(d, layers, hidden, seed=seed, careful=True),
                             x_train, config, jit, whole_round)

    return {
        "tfp_flows_fit": lambda: _fit_round(ours(), x_train, config),
        "tfp_flows_fit_array": lambda: _fit_array_round(ours(), x_train, config),
        "tfp_flows_fit_no_guard": lambda: _fit_round(ours(), x_train, config, nan_guard=False),
        "tfp_flows_fit_spe1": lambda: _fit_round(ours(), x_train, config,
                                                 steps_per_execution=1),
        "tfp_flows_nsf_fit": lambda: _fit_round(quality.builder("nsf", config, d, seed),
                                                x_train, config),
        "tfp_flows_maf_fit": lambda: _fit_round(quality.builder("maf", config, d, seed),
                                                x_train, config),
        "tfp_flows_loop": lambda: loop_round(ours_pair(), x_train, config, False,
                                              tfp_flows.training_mode),
        "tfp_flows_loop_xla": lambda: loop_round(ours_pair(), x_train, config, True,
                                                  tfp_flows.training_mode),
        "tfp_flows_round_xla": lambda: sampled_round(ours_pair(), x_train, config, True, True),
        "tfp_realnvp": lambda: loop_round(reference.realnvp(d, layers, hidden, seed=seed),
                                           x_train, config, False),
        "tfp_realnvp_xla": lambda: loop_round(reference.realnvp(d, layers, hidden, seed=seed),
                                               x_train, config, True),
        "tfp_realnvp_careful": lambda: careful(False),
        "tfp_realnvp_careful_xla": lambda: careful(True),
        "tfp_realnvp_careful_round": lambda: careful(False, True),
        "tfp_realnvp_careful_round_xla": lambda: careful(True, True),
        "tfp_maf": lambda: loop_round(reference.maf(d, layers, hidden, seed=seed), x_train,
                                       config, False),
    }


def train_speed(config, log=print):
    """Returns ``{model: {"steps_per_s": median, "rounds": [...], "peak_mem_mib": m}}``."""
    from tfp_flows import datasets

    x_train = np.asarray(datasets.load("two_moons", config["n_train"], seed=config["seed"]),
                         np.float32)
    runs, out = {}, {}
    makers = runners(config, x_train)
    for name in config["speed_models"] or list(makers):
        make = makers[name]
        with protocol.PeakMemory() as memory:
            runs[name] = make()
            runs[name](config["speed_round_steps"])  # first round untimed (allocator warm-up)
        out[name] = {"peak_mem_mib": memory.mib, "rounds": []}
    for _ in range(config["speed_rounds"]):
        for name, run in runs.items():
            steps, seconds = run(config["speed_round_steps"])
            out[name]["rounds"].append(steps / seconds)
    add_ratios(out)
    log(f"train speed device: {device()}")
    for name, r in out.items():
        log(f"train speed {name:30s} {r['steps_per_s']:8.1f} steps/s  "
            + "  ".join(f"{k.replace('ratio_to_', '×')} {v:.2f}" for k, v in r.items()
                        if k.startswith("ratio_to_"))
            + f"  (rounds {', '.join(f'{v:.0f}' for v in r['rounds'])})")
    return out


def device():
    """Where TF places this process's ops: the first GPU if there is one, else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return (gpus or tf.config.list_logical_devices("CPU"))[0].name


def add_ratios(out):
    """Adds ``steps_per_s`` and the per-round ratios (module docstring) to every entry of
    ``out`` (``{model: {"rounds": [...]}}``); ``fastest_tfp`` names the fastest reference."""
    refs = {k: np.asarray(out[k]["rounds"]) for k in REFERENCES if k in out}
    fastest = np.max(list(refs.values()), axis=0) if refs else None
    for r in out.values():
        r["steps_per_s"] = float(np.median(r["rounds"]))
    if refs:
        fastest_name = max(refs, key=lambda k: out[k]["steps_per_s"])
    for name, r in out.items():
        rounds = np.asarray(r["rounds"])
        if TYPICAL in refs:
            r["ratio_to_tfp_realnvp"] = float(np.median(rounds / refs[TYPICAL]))
        if fastest is not None:
            r["ratio_to_fastest_tfp"] = float(np.median(rounds / fastest))
            r["fastest_tfp"] = fastest_name
        if "tfp_flows_loop_xla" in out and name.startswith("tfp_flows_fit"):
            r["ratio_to_tfp_flows_loop_xla"] = float(np.median(
                rounds / np.asarray(out["tfp_flows_loop_xla"]["rounds"])))
    return out


def density_speed(dist, n, jit, seed=0):
    """``(log_prob points/s, sample points/s, peak MiB)`` of ``dist`` on ``n`` points.

    ``jit``: False (``tf.function``), True (``tf.function(jit_compile=True)``) or
    ``"chunked"`` (``tfp_flows.CompiledDistribution``: XLA, its default chunks)."""
    x = tf.constant(np.random.default_rng(seed).normal(size=[n, dist.event_shape[0]]),
                    tf.float32)
    if jit == "chunked":
        from tfp_flows import CompiledDistribution

        compiled = CompiledDistribution(dist)
        log_prob, sample = compiled.log_prob, lambda s: compiled.sample(n, seed=s)
    else:
        log_prob = tf.function(dist.log_prob, jit_compile=jit)
        sample = tf.function(lambda s: dist.sample(n, seed=s), jit_compile=jit)
    stateless_seed = tf.constant([seed, 1], tf.int32)
    with protocol.PeakMemory() as memory:
        lp = protocol.points_per_second(log_prob, x)
        sp = protocol.points_per_second(lambda _: sample(stateless_seed), n)
    return lp, sp, memory.mib


def density(config, log=print):
    """log_prob / sample points/s for our RealNVP, NSF and MAF and the TFP references, graph
    and XLA (ours also chunked)."""
    d, seed = 2, config["seed"]
    layers, hidden = config["num_layers"], config["hidden_layers"]
    builders = {
        "tfp_flows_realnvp": lambda: quality.ours(config, d, seed),
        "tfp_flows_nsf": lambda: quality.builder("nsf", config, d, seed),
        "tfp_flows_maf": lambda: quality.builder("maf", config, d, seed),
        "tfp_realnvp": lambda: reference.realnvp(d, layers, hidden, seed=seed)[1],
        "tfp_maf": lambda: reference.maf(d, layers, hidden, seed=seed)[1],
    }
    out = {}
    for name, build in builders.items():
        if name not in ("tfp_flows_realnvp", "tfp_realnvp") and config["speed_models"] is not None:
            continue  # smoke: the same code path for every model; two are enough
        dist = build()
        dist.log_prob(tf.zeros([1, d]))
        out[name] = {}
        modes = [("graph", False), ("xla", True)]
        if name.startswith("tfp_flows"):
            modes.append(("xla_chunked", "chunked"))
        for mode, jit in modes:
            lp, sp, mem = density_speed(dist, config["speed_points"], jit, seed)
            out[name][mode] = {"log_prob_points_per_s": lp, "sample_points_per_s": sp,
                               "peak_mem_mib": mem}
            log(f"density {name:18s} {mode:5s} log_prob {lp / 1e6:6.2f} M/s  "
                f"sample {sp / 1e6:6.2f} M/s  mem {mem:6.1f} MiB")
    return out
