"""Shared plumbing of the example scripts: argument parsing, output folder, PNG bookkeeping.

Each example's ``main(argv)`` returns a dict of numbers plus ``"pngs"``:
``{file name: {"path": ..., "size": (width, height)}}``, which the tests check.
"""

import argparse
import importlib.util
import os
import sys
import time

if importlib.util.find_spec("tfp_flows") is None:  # a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tfp_flows  # noqa: E402, F401  (before keras: imports TensorFlow without start-up noise)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                     argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the example's docstring layout."""


def parser(description, default_out):
    """An ``ArgumentParser`` with the options every example has: --out, --seed, --smoke."""
    p = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    p.add_argument("--out", default=default_out, help="folder for the PNG figures")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the weights and sampling")
    p.add_argument("--smoke", action="store_true",
                   help="a seconds-long configuration (used by the tests); overrides sizes")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch")
    p.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA-compile the train step (default: on, off with --smoke, where "
                        "compiling costs more than it saves)")
    return p


def jit(args):
    """The ``jit_compile`` flag for ``FlowModel.compile``."""
    return (not args.smoke) if args.jit is None else args.jit


def compile_cosine(model, args, total_steps):
    """Adam, learning rate ``args.lr`` cosine-decayed to 5 % over ``total_steps``, global-norm
    clipping at 1, XLA per ``jit(args)``."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=total_steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule, global_clipnorm=1.0),
                  jit_compile=jit(args))


class Results(dict):
    """The dict ``main`` returns; ``png`` saves a figure and records its path and size."""

    def __init__(self, out):
        super().__init__(pngs={})
        self.out = out
        self.start = time.perf_counter()
        os.makedirs(out, exist_ok=True)

    def png(self, fig, name, colors=None):
        from tfp_flows import plot

        path = plot.save(fig, os.path.join(self.out, name), colors=colors)
        self["pngs"][name] = {"path": path, "size": plot.figure_pixels(fig)}
        return path

    def finish(self):
        self["seconds"] = time.perf_counter() - self.start
        for name, value in self.items():
            if isinstance(value, float):
                print(f"{name}: {value:.4f}")
        print(f"wrote {len(self['pngs'])} figures to {os.path.abspath(self.out)}/: "
              + ", ".join(self["pngs"]))
        return self


def nll(model_or_dist, x, batch_size=8192):
    """Mean negative log-likelihood (nats) of ``x [N, D]``, evaluated in batches."""
    import numpy as np

    total = 0.0
    for i in range(0, len(x), batch_size):
        total += float(np.sum(model_or_dist.log_prob(x[i:i + batch_size])))
    return -total / len(x)
