"""A coupling flow with leaky-ReLU layers on the toy ``x2 ~ N(0, 4)``, ``x1 ~ N(x2²/4, 1)``.

Base -> data, repeated ``--layers`` times: an affine coupling (``tfb.RealNVP`` with a
``real_nvp_template``), an elementwise ``LeakyReLU`` with a learnable slope, and a swap of the
two coordinates (none after the last block). Fitted by maximum likelihood with
``FlowModel.fit``. The toy's exact density is known
(``tfp_flows.datasets.leaky_relu_toy_log_prob``), so the test NLL minus the true entropy
estimate is the KL gap. Figures written to ``--out``:

* ``intermediate.png``    - base samples coloured by quadrant after every layer (the
  intermediate distributions)
* ``densities.png``       - true density | flow density
* ``data_vs_samples.png`` - test data | flow samples
"""

import sys

import _common


def parse(argv):
    p = _common.parser(__doc__, "outputs/leaky_relu_coupling", "about 1 minute",
                       measured="58 s")
    p.add_argument("--layers", type=int, default=4, help="coupling + leaky-ReLU blocks")
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 32],
                   help="hidden widths of each coupling's MLP")
    p.add_argument("--alpha", type=float, default=0.5, help="initial leaky-ReLU slope")
    p.add_argument("--n-train", type=int, default=20000, help="training points")
    p.add_argument("--n-test", type=int, default=5000, help="held-out points for the test NLL")
    p.add_argument("--epochs", type=int, default=40, help="passes over the training points")
    p.add_argument("--batch-size", type=int, default=256, help="points per optimizer step")
    p.add_argument("--lr", type=float, default=4e-3,
                   help="peak learning rate of flow_optimizer (warm-up, cosine decay to 0)")
    args = p.parse_args(argv)
    if args.smoke:
        args.layers, args.hidden, args.n_train, args.n_test = 2, [16], 2000, 1000
        args.epochs, args.batch_size = 3, 200
    return args


def leaky_coupling_flow(num_layers, hidden, alpha, seed):
    """``TransformedDistribution`` over N(0, I₂) with [coupling, LeakyReLU, swap] blocks."""
    import tensorflow_probability as tfp

    from tfp_flows import bijectors, flows

    tfb, tfd = tfp.bijectors, tfp.distributions
    layers = []
    for i in range(num_layers):
        template = bijectors.real_nvp_template(hidden, seed=[seed, i], name=f"template_{i}")
        layers.append(tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=template,
                                  name=f"coupling_{i}"))
        layers.append(bijectors.LeakyReLU(alpha, trainable=True, name=f"leaky_relu_{i}"))
        if i < num_layers - 1:
            layers.append(tfb.Permute([1, 0], name=f"swap_{i}"))
    chain = tfb.Chain(list(reversed(layers)), name="leaky_coupling_flow")
    return tfd.TransformedDistribution(flows.standard_normal(2), chain), layers


def main(argv=None):
    args = parse(argv)
    import keras
    import numpy as np

    import tfp_flows
    from tfp_flows import datasets, plot

    keras.utils.set_random_seed(args.seed)
    results = _common.Results(args.out)
    x_train, x_test = datasets.train_test("leaky_relu_toy", args.n_train, args.n_test,
                                          seed=args.seed)
    dist, layers = leaky_coupling_flow(args.layers, args.hidden, args.alpha, args.seed)
    model = tfp_flows.FlowModel(dist)
    results["untrained_test_nll"] = _common.nll(model, x_test)
    _common.compile_flow(model, args, args.epochs * -(-args.n_train // args.batch_size))
    model.fit(x_train, batch_size=args.batch_size, epochs=args.epochs, validation_data=x_test,
              verbose=args.verbose)
    results["test_nll"] = _common.nll(model, x_test)
    results["true_test_nll"] = float(-np.mean(datasets.leaky_relu_toy_log_prob(x_test)))
    results["kl_gap"] = results["test_nll"] - results["true_test_nll"]
    leaky = [b for b in layers if isinstance(b, tfp_flows.bijectors.LeakyReLU)]
    results["slopes"] = [round(float(b.alpha), 3) for b in leaky]

    lims = ((-3.0, 12.0), (-7.0, 7.0))
    results.png(plot.warp(dist, layers=layers, n=8000, seed=args.seed, cols=4),
                "intermediate.png")
    results.png(plot.density_comparison(datasets.leaky_relu_toy_log_prob, {"flow": dist}, lims,
                                        panel=3.5, true_title="true density"), "densities.png")
    samples = np.asarray(model.sample(len(x_test), seed=args.seed))
    results.png(plot.data_vs_samples(x_test, samples, lims=lims, titles=("test data", "flow")),
                "data_vs_samples.png")
    print(f"test NLL {results['test_nll']:.3f} nats, true {results['true_test_nll']:.3f}, "
          f"untrained {results['untrained_test_nll']:.3f}; learned slopes {results['slopes']}")
    return results.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
