"""Elementwise and linear flows: what each can and cannot do.

1. A 1-D piecewise-linear CDF flow (Müller et al., 2019) fitted to a bimodal density
   ``½ N(−1.5, 0.5²) + ½ N(1.2, 0.35²)``. Data -> base (the ``log_prob`` direction):
   ``sigmoid`` (R -> (0, 1)), a K-bin ``PiecewiseLinearCDF`` with fixed equal-width bins on
   (0, 1) and learned masses, ``logit`` back to R. Data therefore always meet the fixed bin
   edges: with learned edges on the data side the per-point log-likelihood jumps whenever an
   edge crosses a point, and autodiff misses that part of the gradient (training then
   diverges). ``pwl.png`` shows the data histogram, the true and the flow densities with the
   bin edges ``logit(k/K)``, and the learned CDF on (0, 1) with its knots ``(k/K, C_k)``.
2. A stack of ``LULinear`` layers fitted to two moons. A composition of affine maps is
   affine, so the flow stays Gaussian however many layers it has: its best NLL is the
   Gaussian maximum-likelihood fit's. ``lu_linear.png``: data | LU-linear flow density |
   density of the Gaussian fitted by moments.
"""

import sys

import _common

MIXTURE = ((0.5, -1.5, 0.5), (0.5, 1.2, 0.35))  # (weight, mean, std)


def parse(argv):
    p = _common.parser(__doc__, "outputs/elementwise_and_linear", "about 1 minute",
                       measured="43 s")
    p.add_argument("--bins", type=int, default=32, help="bins of the piecewise-linear CDF")
    p.add_argument("--lu-layers", type=int, default=3, help="LULinear layers")
    p.add_argument("--n-train", type=int, default=20000, help="training points of each part")
    p.add_argument("--n-test", type=int, default=5000, help="held-out points for the test NLL")
    p.add_argument("--epochs", type=int, default=20, help="passes over the training points")
    p.add_argument("--batch-size", type=int, default=256, help="points per optimizer step")
    p.add_argument("--lr", type=float, default=1e-2,
                   help="constant Adam learning rate (global-norm clipping at 1)")
    args = p.parse_args(argv)
    if args.smoke:
        args.bins, args.n_train, args.n_test, args.epochs = 16, 2000, 1000, 3
        args.batch_size, args.lu_layers = 200, 2
    return args


def mixture_sample(n, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    w, mu, sd = (np.array(c) for c in zip(*MIXTURE))
    k = rng.choice(len(w), size=n, p=w)
    return (mu[k] + sd[k] * rng.standard_normal(n)).astype(np.float32)[:, None]


def mixture_log_prob(x):
    """``log p(x)`` of the bimodal target, NumPy ``[N] -> [N]``."""
    import numpy as np

    x = np.asarray(x, np.float64)[..., None]
    w, mu, sd = (np.array(c) for c in zip(*MIXTURE))
    comp = np.log(w) - np.log(sd) - 0.5 * np.log(2 * np.pi) - 0.5 * ((x - mu) / sd) ** 2
    return np.logaddexp.reduce(comp, axis=-1)


def fit(model, x_train, x_test, args):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(args.lr, global_clipnorm=1.0),
                  jit_compile=_common.jit(args))
    return model.fit(x_train, batch_size=args.batch_size, epochs=args.epochs,
                     validation_data=x_test, verbose=args.verbose)


def piecewise_linear_part(args, results):
    import numpy as np
    import tensorflow_probability as tfp

    import tfp_flows
    from tfp_flows import bijectors, flows, plot

    tfb, tfd = tfp.bijectors, tfp.distributions
    pwl = bijectors.PiecewiseLinearCDF(1, num_bins=args.bins, name="pwl")
    # Base -> data (tfb.Chain applies right to left): sigmoid, CDF⁻¹, logit; so log_prob
    # evaluates the CDF forward, on its fixed input bins.
    dist = tfd.TransformedDistribution(
        flows.standard_normal(1),
        tfb.Chain([tfb.Invert(tfb.Sigmoid()), tfb.Invert(pwl), tfb.Sigmoid()]))
    x_train = mixture_sample(args.n_train, args.seed)
    x_test = mixture_sample(args.n_test, args.seed + 1)
    model = tfp_flows.FlowModel(dist)
    results["untrained_pwl_test_nll"] = _common.nll(model, x_test)
    fit(model, x_train, x_test, args)
    results["pwl_test_nll"] = _common.nll(model, x_test)
    results["pwl_true_test_nll"] = float(-np.mean(mixture_log_prob(x_test[:, 0])))

    grid = np.linspace(-4.0, 4.0, 800, dtype=np.float32)
    flow_pdf = np.exp(np.asarray(model.log_prob(grid[:, None])))
    masses = np.asarray(pwl.bin_masses())[0]
    knots_out = np.concatenate([[0.0], np.cumsum(masses)])
    knots_in = np.linspace(0.0, 1.0, args.bins + 1)
    inner = knots_in[1:-1]
    edges = np.log(inner) - np.log1p(-inner)

    fig = plot.new_figure(11, 4)
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    left.hist(x_train[:, 0], bins=120, range=(-4, 4), density=True, color="#cccccc",
              label="data")
    left.plot(grid, np.exp(mixture_log_prob(grid)), "k--", lw=1.5, label="true density")
    left.plot(grid, flow_pdf, color="#d62728", lw=1.5, label="flow density")
    for e in edges[(edges > -4) & (edges < 4)]:
        left.axvline(e, color="#1f77b4", lw=0.5, alpha=0.6)
    left.set_xlim(-4, 4)
    left.set_title(f"{args.bins}-bin piecewise-linear CDF flow; blue: bin edges",
                   fontsize=10)
    left.legend(loc="upper left", fontsize=8)
    right.plot(knots_in, knots_out, "-o", color="#1f77b4", ms=3)
    right.plot([0, 1], [0, 1], "k:", lw=1)
    right.set_xlabel("sigmoid(x)")
    right.set_ylabel("sigmoid(z)")
    right.set_title("learned CDF on (0, 1)", fontsize=10)
    right.set_aspect("equal")
    fig.tight_layout()
    results.png(fig, "pwl.png")


def lu_linear_part(args, results):
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    import tfp_flows
    from tfp_flows import bijectors, datasets, flows, plot

    tfb, tfd = tfp.bijectors, tfp.distributions
    x_train, x_test = datasets.train_test("two_moons", args.n_train, args.n_test, seed=args.seed)
    layers = [bijectors.LULinear(2, seed=[args.seed, i], name=f"lu_linear_{i}")
              for i in range(args.lu_layers)]
    dist = tfd.TransformedDistribution(flows.standard_normal(2), tfb.Chain(layers[::-1]))
    model = tfp_flows.FlowModel(dist)
    results["untrained_lu_test_nll"] = _common.nll(model, x_test)
    fit(model, x_train, x_test, args)
    results["lu_test_nll"] = _common.nll(model, x_test)

    mean, cov = x_train.mean(0), np.cov(x_train.T.astype(np.float64))
    gaussian = tfd.MultivariateNormalTriL(tf.constant(mean, tf.float32),
                                          tf.constant(np.linalg.cholesky(cov), tf.float32))
    results["gaussian_mle_test_nll"] = _common.nll(gaussian, x_test)
    results["lu_minus_gaussian_nll"] = results["lu_test_nll"] - results["gaussian_mle_test_nll"]

    lims = plot.limits(x_train, quantile=0.0, pad=0.3)
    fig = plot.new_figure(11.6, 3.6)
    axes = fig.subplots(1, 3)
    plot.draw_points(axes[0], x_train[:4000], lims, color="#1f77b4")
    images = [plot.draw_density(axes[1], dist, lims), plot.draw_density(axes[2], gaussian, lims)]
    top = max(image.norm.vmax for image in images)
    for image in images:
        image.set_clim(0.0, top)
    plot.colorbar(fig, images[-1], axes[2], "p(x)")
    titles = ("two moons", f"{args.lu_layers} LU-linear layers: "
              f"NLL {results['lu_test_nll']:.3f}",
              f"Gaussian MLE: NLL {results['gaussian_mle_test_nll']:.3f}")
    for ax, title in zip(axes, titles):
        plot.style_axes(ax, title)
    fig.tight_layout()
    results.png(fig, "lu_linear.png")


def main(argv=None):
    args = parse(argv)
    import keras

    keras.utils.set_random_seed(args.seed)
    results = _common.Results(args.out)
    piecewise_linear_part(args, results)
    lu_linear_part(args, results)
    print(f"piecewise-linear: test NLL {results['pwl_test_nll']:.3f} nats "
          f"(true {results['pwl_true_test_nll']:.3f}); LU-linear {results['lu_test_nll']:.3f} vs "
          f"Gaussian MLE {results['gaussian_mle_test_nll']:.3f}")
    return results.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
