"""Toy-density gallery: one flow per 2-D dataset; data | flow density | flow samples.

Datasets (``tfp_flows.datasets``, all generated in code): two_moons, checkerboard, pinwheel,
eight_gaussians, two_spirals. Each gets its own neural spline flow (``flows.nsf``:
``--layers`` rational-quadratic spline couplings; ``--flow realnvp`` for affine ones)
fitted by ``FlowModel.fit``. Writes ``gallery.png`` (one row per dataset) and
prints each flow's test NLL (nats).
"""

import sys

import _common

GALLERY = ("two_moons", "checkerboard", "pinwheel", "eight_gaussians", "two_spirals")


def parse(argv):
    p = _common.parser(__doc__, "outputs/gallery",
                       "about 5 minutes on 2 idle cores (275 s measured on 7 Dec 2026, "
                       "most of it compiling each flow's XLA step)")
    p.add_argument("--datasets", nargs="+", default=list(GALLERY), choices=GALLERY,
                   metavar="NAME", help="which data sets, one row each; any of "
                   + ", ".join(GALLERY) + " (default: all)")
    p.add_argument("--flow", choices=("nsf", "realnvp"), default="nsf",
                   help="spline couplings (flows.nsf) or affine ones (flows.realnvp)")
    p.add_argument("--layers", type=int, default=8, help="couplings per flow")
    p.add_argument("--bins", type=int, default=8, help="spline bins per coupling (nsf)")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64],
                   help="hidden widths of each coupling's MLP")
    p.add_argument("--n-train", type=int, default=20000, help="training points per data set")
    p.add_argument("--n-test", type=int, default=5000,
                   help="held-out points per data set (test NLL, the plotted data)")
    p.add_argument("--epochs", type=int, default=25, help="passes over the training points")
    p.add_argument("--batch-size", type=int, default=256, help="points per optimizer step")
    p.add_argument("--lr", type=float, default=4e-3,
                   help="peak learning rate of flow_optimizer (warm-up, cosine decay to 0)")
    p.add_argument("--colors", type=int, default=None,
                   help="save a palette PNG with this many colours (smaller file)")
    args = p.parse_args(argv)
    if args.smoke:
        args.datasets, args.layers, args.hidden = ["two_moons", "eight_gaussians"], 2, [16]
        args.bins = 4
        args.n_train, args.n_test, args.epochs, args.batch_size = 2000, 1000, 3, 200
    return args


def main(argv=None):
    args = parse(argv)
    import keras
    import numpy as np

    import tfp_flows
    from tfp_flows import datasets, flows, plot

    keras.utils.set_random_seed(args.seed)
    results = _common.Results(args.out)
    rows = []
    for name in args.datasets:
        x_train, x_test = datasets.train_test(name, args.n_train, args.n_test, seed=args.seed)
        if args.flow == "nsf":
            dist = flows.nsf(2, num_layers=args.layers, num_bins=args.bins,
                             hidden_layers=args.hidden, seed=args.seed)
        else:
            dist = flows.realnvp(2, num_layers=args.layers, hidden_layers=args.hidden,
                                 seed=args.seed)
        model = tfp_flows.FlowModel(dist)
        results[f"untrained_test_nll_{name}"] = _common.nll(model, x_test)
        _common.compile_flow(model, args, args.epochs * -(-args.n_train // args.batch_size))
        if args.verbose:
            print(f"{name}:")
        model.fit(x_train, batch_size=args.batch_size, epochs=args.epochs, verbose=args.verbose)
        results[f"test_nll_{name}"] = _common.nll(model, x_test)
        print(f"{name}: test NLL {results[f'test_nll_{name}']:.3f} nats (untrained "
              f"{results[f'untrained_test_nll_{name}']:.3f})")
        samples = np.asarray(model.sample(len(x_test), seed=args.seed))
        rows.append((name.replace("_", " "), x_test, dist, samples))
    results.png(plot.gallery(rows), "gallery.png", colors=args.colors)
    return results.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
