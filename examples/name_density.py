"""Your name as a density: a neural spline flow fitted to points sampled from rendered text.

The text (``--text``) is rasterised with Pillow's built-in font; 2-D points are drawn
from its dark pixels with jitter (``tfp_flows.datasets.text``, about [-4, 4] x [-2, 2]).
A neural spline flow (``flows.nsf``: ``--layers`` rational-quadratic spline couplings with
``--bins`` bins; ``--flow realnvp`` for affine couplings, optionally with batch norm) is
fitted by maximum likelihood with ``FlowModel.fit``. Figures written to ``--out``:

* ``data_vs_samples.png`` - training points | flow samples
* ``log_density.png``     - heat map of the flow's log-density
* ``training_curve.png``  - train / test NLL per epoch
* ``warp.png``            - 8000 base points coloured by quadrant, pushed through every
  bijector of the flow in turn (one panel per layer)

Prints the test NLL (nats per point) of the untrained and trained flow next to the data's
entropy, the floor no model can beat in expectation: the points are uniform on the dark
pixels plus Gaussian jitter, whose exact density ``tfp_flows.datasets.text_log_prob`` and
entropy ``text_entropy`` (about log(ink area) + a little for the blurred edges) are computed
from the rendered mask. The NLL of the test points under that true density is printed too
(the floor measured on the same points).

  python examples/name_density.py --text "Ada" --out outputs/ada
"""

import argparse
import sys

import _common


def parse(argv):
    # Measured 7 Dec 2026 on an idle 2-core machine, one run each: flows.nsf's defaults with
    # the marginal splines off 83 s (92 s wall with start-up), test NLL 1.859 against the
    # entropy floor 1.757 (gap 0.102); with them (--marginal-splines) 130 s, 1.863: they
    # double the XLA compile of the first epoch and do not help here. Since the splines'
    # knot search selects by one-hot sums (no gathers): 56 s (62 s wall), 1.857 (gap 0.100).
    p = _common.parser(__doc__, "outputs/name_density",
                       "about 1 minute on 2 idle cores (56 s measured, 24 s of it the first "
                       "epoch, which compiles the XLA step)")
    p.add_argument("--text", default="tfp_flows", help="the text to turn into a density")
    p.add_argument("--n-train", type=int, default=30000, help="training points")
    p.add_argument("--n-test", type=int, default=5000, help="held-out points for the test NLL")
    p.add_argument("--flow", choices=("nsf", "realnvp"), default="nsf",
                   help="spline couplings (flows.nsf) or affine ones (flows.realnvp)")
    p.add_argument("--layers", type=int, default=8, help="number of couplings")
    p.add_argument("--bins", type=int, default=16, help="spline bins per coupling (nsf)")
    p.add_argument("--marginal-splines", action=argparse.BooleanOptionalAction, default=False,
                   help="nsf: a spline on each coupling's conditioning half too (flows.nsf "
                        "turns them on; off here: on this density they compile twice as long "
                        "for no better fit)")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128],
                   help="hidden widths of each coupling's MLP")
    p.add_argument("--batch-norm", action="store_true",
                   help="BatchNorm after every coupling (realnvp only)")
    p.add_argument("--epochs", type=int, default=50, help="passes over the training points")
    p.add_argument("--batch-size", type=int, default=512, help="points per optimizer step")
    p.add_argument("--lr", type=float, default=4e-3,
                   help="peak learning rate of flow_optimizer (warm-up, cosine decay to 0)")
    args = p.parse_args(argv)
    if args.batch_norm and args.flow != "realnvp":
        p.error("--batch-norm needs --flow realnvp")
    if args.smoke:
        args.n_train, args.n_test, args.layers, args.hidden, args.bins = 2000, 500, 2, [16], 4
        args.epochs, args.batch_size = 3, 200
    return args


def main(argv=None):
    args = parse(argv)
    import keras
    import numpy as np

    import tfp_flows
    from tfp_flows import datasets, flows, plot

    keras.utils.set_random_seed(args.seed)
    results = _common.Results(args.out)
    x_train, x_test = datasets.train_test("text", args.n_train, args.n_test, seed=args.seed,
                                          text=args.text)
    if args.flow == "nsf":
        dist = flows.nsf(2, num_layers=args.layers, num_bins=args.bins,
                         hidden_layers=args.hidden, marginal_splines=args.marginal_splines,
                         seed=args.seed)
    else:
        dist = flows.realnvp(2, num_layers=args.layers, hidden_layers=args.hidden,
                             batch_norm=args.batch_norm, seed=args.seed)
    model = tfp_flows.FlowModel(dist)
    results["untrained_test_nll"] = _common.nll(model, x_test)

    results["entropy"] = datasets.text_entropy(args.text)
    results["true_test_nll"] = float(-np.mean(datasets.text_log_prob(x_test, args.text)))

    steps = args.epochs * -(-args.n_train // args.batch_size)
    _common.compile_flow(model, args, steps)
    history = model.fit(x_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=x_test, verbose=args.verbose)
    results["train_nll"] = _common.nll(model, x_train)
    results["test_nll"] = _common.nll(model, x_test)
    results["gap_to_entropy"] = results["test_nll"] - results["entropy"]
    print(f"test NLL {results['test_nll']:.3f} nats after {steps} steps (untrained "
          f"{results['untrained_test_nll']:.3f}); data entropy {results['entropy']:.3f} "
          f"(gap {results['gap_to_entropy']:+.3f}); true density on the same test points "
          f"{results['true_test_nll']:.3f}")

    lims = ((-4.4, 4.4), (-2.2, 2.2))
    samples = np.asarray(model.sample(len(x_test), seed=args.seed))
    results.png(plot.data_vs_samples(x_train[:len(x_test)], samples, lims=lims, size=(12, 3.6)),
                "data_vs_samples.png")
    results.png(plot.log_density(dist, lims, size=(9, 3.2), grid=300, floor=6.0,
                                 title=f"log-density of the flow fitted to {args.text!r}"),
                "log_density.png")
    results.png(plot.training_curve(history), "training_curve.png")
    results.png(plot.warp(dist, n=8000, seed=args.seed, panel=2.5), "warp.png", colors=32)
    return results.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
