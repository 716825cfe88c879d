"""Where ``FlowModel.fit``'s time goes (issue 14): per-step cost of fit's parts, interleaved.

Every variant trains the protocol's RealNVP (8 couplings, 2×64, batch 512, two moons, Adam with
clipping) for ``steps`` timed steps per round, in turn, for ``rounds`` rounds after an untimed
one; printed: the median ms/step over rounds and the median per-round difference to the
arithmetic floor (``round_xla``):

* ``round_xla``: ``steps`` steps (batches drawn in the graph) in one XLA ``tf.while_loop``:
  loss, gradients and Adam only;
* ``round_xla_no_adam``: the same without the optimizer (loss and gradients);
* ``fit``: ``fit`` with the defaults (XLA, NaN guard, 32 steps per execution, one XLA
  computation per execution), the rounds being the epochs of one ``fit`` call (as in
  ``speed.py``); ``fit_new_call``: a new ``fit`` call per round (Keras then makes a new
  iterator of the pipeline, whose 50k-point shuffle buffer is refilled before the first
  batch); ``fit_no_guard``: ``FlowModel(nan_guard=False)``;
  ``fit_no_metrics``: the same model reporting the step's loss instead of Keras ``Mean``
  metrics; ``fit_per_step``: the per-step graph loop of ``training/execution.py`` (one XLA call
  per step, the iterator read between steps; the path taken under a strategy); ``fit_spe1``:
  ``steps_per_execution=1``; ``fit_cached*``: ``fit``, ``fit_no_guard``, ``fit_no_metrics`` on
  one epoch of the pipeline's batches cached in memory and repeated (what ``fit`` costs when
  its data cost nothing);
* ``iterator``: only reading ``steps`` batches of the protocol's ``tf.data`` pipeline in a graph
  loop; ``new_iterator``: a new iterator of that pipeline and its first batch (filling the
  50k-point shuffle buffer), divided by ``steps``.

``fit`` rows are timed twice: the whole round (for ``fit_new_call`` and ``fit_array*``: the whole
``fit`` call), and ``(epoch)`` from ``on_epoch_begin`` to ``on_epoch_end`` (what ``speed.py``
times).

``python -m benchmarks.profile_fit [--rounds R] [--steps S]``.
"""

import argparse
import time

import numpy as np

import tfp_flows  # noqa: F401  (first: quiet TensorFlow start-up)
from benchmarks import protocol


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=96)
    args = parser.parse_args()
    config = dict(protocol.FULL)
    tf = protocol.configure_tensorflow(config)
    tf.get_logger().setLevel("ERROR")

    from benchmarks import quality, speed, trainers
    from tfp_flows import datasets
    from tfp_flows.training import FlowModel, execution

    x_train = np.asarray(datasets.load("two_moons", config["n_train"], seed=config["seed"]),
                         np.float32)

    def flow():
        return quality.ours(config, 2, config["seed"])

    def sampled(adam):
        dist = flow()
        trainers.build_variables(dist, dist, 2)
        optimizer = protocol.make_optimizer(config)
        _, body = trainers.make_sampled_step(dist, optimizer, x_train, config["batch_size"],
                                             True, config["seed"])
        if not adam:
            data = tf.constant(x_train)
            generator = tf.random.Generator.from_seed(1)
            variables = list(dist.trainable_variables)

            def body():
                batch = tf.gather(data, generator.uniform([config["batch_size"]], 0,
                                                          data.shape[0], tf.int32))
                with tf.GradientTape() as tape:
                    loss = -tf.reduce_mean(dist.log_prob(batch))
                grads = tape.gradient(loss, variables)
                return loss + tf.add_n([tf.reduce_sum(g) for g in grads]) * 0.0
        loop = trainers.make_loop(body, True)
        return lambda steps: loop(tf.constant(steps)).numpy()

    class NoMetrics(FlowModel):
        def _update_metrics(self, loss, weight, metrics, ok, *args, **kwargs):
            return {"loss": loss}

    def fit(cls=FlowModel, per_step=False, cached=False, new_call=False, **kwargs):
        nan_guard = kwargs.pop("nan_guard", True)
        model = cls(flow(), nan_guard=nan_guard)
        model.compile(optimizer=protocol.make_optimizer(config), **kwargs)
        dataset = protocol.train_dataset(x_train, config, config["seed"])
        if cached:  # the same batches, read from memory: data that cost nothing
            dataset = dataset.take(len(x_train) // config["batch_size"]).cache().repeat()
        if new_call:
            def run(steps):
                clock = speed._FitClock()
                model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0,
                          callbacks=[clock])
                return clock.seconds
            return run
        # The rounds are the epochs of one fit call (as in speed.py); the first one here is
        # a warm-up, the caller's untimed call the second.
        rounds = speed._FitRounds(model, dataset, args.steps, epochs=args.rounds + 2)
        saved = execution._dense
        if per_step:  # read when the first execution is traced
            execution._dense = lambda spec: False
        try:
            rounds(args.steps)
        finally:
            execution._dense = saved
        return lambda steps: rounds(steps)[1]

    def fit_array(cls=FlowModel, nan_guard=True):
        model = cls(flow(), nan_guard=nan_guard)
        model.compile(optimizer=protocol.make_optimizer(config))
        batch = config["batch_size"]

        def run(steps):  # one epoch of an array of `steps` full batches
            clock = speed._FitClock()
            model.fit(x_train[:steps * batch], batch_size=batch, epochs=1, verbose=0,
                      callbacks=[clock])
            return clock.seconds
        return run

    def iterator():
        it = iter(protocol.train_dataset(x_train, config, config["seed"]))

        @tf.function
        def read(steps):
            total = tf.constant(0.0)
            for _ in tf.range(steps):
                total += it.get_next()[0, 0]
            return total

        return lambda steps: read(tf.constant(steps)).numpy()

    def first_batch():
        dataset = protocol.train_dataset(x_train, config, config["seed"])
        return lambda steps: next(iter(dataset))[0, 0].numpy()

    makers = {
        "round_xla": lambda: sampled(True),
        "round_xla_no_adam": lambda: sampled(False),
        "fit": fit,
        "fit_new_call": lambda: fit(new_call=True),
        "fit_no_guard": lambda: fit(nan_guard=False),
        "fit_no_metrics": lambda: fit(NoMetrics),
        "fit_per_step": lambda: fit(per_step=True),
        "fit_spe1": lambda: fit(steps_per_execution=1),
        "fit_array": fit_array,
        "fit_array_no_guard": lambda: fit_array(nan_guard=False),
        "fit_array_no_metrics": lambda: fit_array(NoMetrics),
        "fit_cached": lambda: fit(cached=True),
        "fit_cached_no_guard": lambda: fit(cached=True, nan_guard=False),
        "fit_cached_no_metrics": lambda: fit(NoMetrics, cached=True),
        "iterator": iterator,
        "new_iterator": first_batch,
    }
    runs = {}
    for name, make in makers.items():
        runs[name] = make()
        runs[name](args.steps)  # untimed: tracing, compilation
    ms = {name: [] for name in runs}
    for name in list(runs):
        if name.startswith("fit"):
            ms[name + " (epoch)"] = []
    for _ in range(args.rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            epoch = run(args.steps)
            ms[name].append(1e3 * (time.perf_counter() - t0) / args.steps)
            if name.startswith("fit"):
                ms[name + " (epoch)"].append(1e3 * epoch / args.steps)
    floor = np.asarray(ms["round_xla"])
    print(f"device {speed.device()}; {args.rounds} rounds of {args.steps} steps; ms/step "
          "(median over rounds) and median per-round difference to round_xla")
    for name, values in ms.items():
        values = np.asarray(values)
        print(f"{name:18s} {np.median(values):7.3f} ms/step  {np.median(values - floor):+7.3f}  "
              f"(rounds {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
