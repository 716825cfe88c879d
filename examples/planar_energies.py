"""Planar flows fitted by reverse KL to the ring density and Rezende & Mohamed's U1-U4.

For every target ``p̃ = exp(−U)`` (``tfp_flows.energies``) and every depth K (``--layers``,
default 2, 8, 32 planar layers) a flow ``q`` is trained without data by minimising
``KL(q‖p) − log Z = E_q[log q(z) − log p̃(z)]`` with ``FlowModel.for_target``
(reparameterised Monte-Carlo samples). Writes ``planar_energies.png``: one row per target,
true (unnormalised) density | flow density for each K, on [-4, 4]². Prints the final KL
estimate (nats, up to the unknown ``log Z``) of every flow, on 4096 fresh samples.

Note: U2-U4 are not normalisable along z1 (they do not decay there); as in the paper, the
flows are only judged on the [-4, 4]² window.
"""

import sys

import _common

ENERGY_NAMES = ("ring", "u1", "u2", "u3", "u4")


def parse(argv):
    p = _common.parser(__doc__, "outputs/planar_energies")
    p.add_argument("--energies", nargs="+", default=list(ENERGY_NAMES), choices=ENERGY_NAMES)
    p.add_argument("--layers", type=int, nargs="+", default=[2, 8, 32],
                   help="numbers of planar layers K")
    p.add_argument("--steps", type=int, default=2000, help="optimisation steps per flow")
    p.add_argument("--num-samples", type=int, default=256, help="Monte-Carlo samples per step")
    p.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate (cosine-decayed)")
    args = p.parse_args(argv)
    if args.smoke:
        args.energies, args.layers, args.steps, args.num_samples = ["ring", "u1"], [2], 60, 128
    return args


def reverse_kl(dist, target, n=4096, seed=0):
    """``mean[log q(z) − log p̃(z)]`` over ``n`` draws ``z ~ q`` (nats, up to ``log Z``)."""
    import tensorflow as tf

    z, log_q = dist.experimental_sample_and_log_prob(n, seed=tf.constant([seed, 1]))
    return float(tf.reduce_mean(log_q - target(z)))


def main(argv=None):
    args = parse(argv)
    import keras

    import tfp_flows
    from tfp_flows import energies, flows, plot

    keras.utils.set_random_seed(args.seed)
    results = _common.Results(args.out)
    steps_per_epoch = min(100, args.steps)
    epochs = -(-args.steps // steps_per_epoch)
    rows = []
    for name in args.energies:
        target = energies.ENERGIES[name]
        row = [(f"{name}: true exp(-U)", target)]
        for k in args.layers:
            dist = flows.planar(2, num_layers=k, seed=args.seed)
            model = tfp_flows.FlowModel.for_target(name, dist, num_samples=args.num_samples,
                                                   seed=args.seed)
            results[f"untrained_kl_{name}_K{k}"] = reverse_kl(dist, target, seed=args.seed)
            _common.compile_cosine(model, args, epochs * steps_per_epoch)
            print(f"{name}, K={k}:")
            model.fit(epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=args.verbose)
            results[f"kl_{name}_K{k}"] = reverse_kl(dist, target, seed=args.seed)
            row.append((f"K = {k} (KL − log Z = {results[f'kl_{name}_K{k}']:.2f})", dist))
        rows.append(row)
    results.png(plot.density_grid(rows, ((-4.0, 4.0), (-4.0, 4.0))), "planar_energies.png")
    return results.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
