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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the example's docstring layout; appends ``(default: ...)`` to an option's help
    unless the help already states its default or there is nothing to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and action.option_strings):
            text += " (default: %(default)s)"
        return text


def parser(description, default_out, duration, seed_help="seed of the data, the weights and "
           "sampling", measured=None, jit_default="on, off with --smoke, where compiling costs "
           "more than it saves"):
    """An ``ArgumentParser`` with the options every example has: --out, --seed, --smoke,
    --verbose, --jit. ``duration`` (e.g. ``"about 3 minutes"``) is how long the default run
    takes on a 2-core CPU and ``measured`` (e.g. ``"2 min 51 s"``) the wall-clock time of one
    whole default run timed on 2 CPU cores; ``--help`` shows both. ``jit_default`` says what
    the example does without --jit / --no-jit."""
    timed = (f" (measured: {measured} for the whole run on 2 CPU cores shared with other jobs)"
             if measured else "")
    p = argparse.ArgumentParser(
        description=description, formatter_class=_HelpFormatter,
        epilog=f"The default run takes {duration} on a 2-core CPU{timed}; --smoke takes "
               "seconds.")
    p.add_argument("--out", default=default_out, help="folder for the PNG figures")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--smoke", action="store_true",
                   help="a seconds-long configuration (used by the tests); overrides sizes")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch")
    p.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None,
                   help=f"XLA-compile the train step (default: {jit_default})")
    return p


def jit(args):
    """The ``jit_compile`` flag for ``FlowModel.compile``."""
    return (not args.smoke) if args.jit is None else args.jit


def compile_flow(model, args, total_steps):
    """``model.compile`` with ``tfp_flows.training.flow_optimizer(total_steps, args.lr)``
    (warm-up, cosine decay to 0, global-norm clipping) and XLA per ``jit(args)``."""
    from tfp_flows.training import flow_optimizer

    model.compile(optimizer=flow_optimizer(total_steps, learning_rate=args.lr),
                  jit_compile=jit(args))


def plural(n, word):
    """``"1 figure"``, ``"2 figures"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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
        """Prints the one closing line (figures written, wall time) and returns ``self``;
        the examples print their results once, as they get them."""
        self["seconds"] = time.perf_counter() - self.start
        print(f"wrote {plural(len(self['pngs']), 'figure')} to {os.path.abspath(self.out)}/ "
              f"({', '.join(self['pngs'])}) in {self['seconds']:.0f} s")
        return self


def nll(model_or_dist, x, batch_size=8192):
    """Mean negative log-likelihood (nats) of ``x [N, D]``, evaluated in batches."""
    import numpy as np

    total = 0.0
    for i in range(0, len(x), batch_size):
        total += float(np.sum(model_or_dist.log_prob(x[i:i + batch_size])))
    return -total / len(x)
