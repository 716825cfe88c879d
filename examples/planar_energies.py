"""Planar flows fitted by reverse KL to the ring density and Rezende & Mohamed's U1-U4.

Reproduces Fig. 3 of Rezende & Mohamed (2015): for every target ``p = exp(−U) / Z``
(``tfp_flows.energies``) and every depth K (``--layers``, default 2, 8, 32 planar layers) a
flow ``q`` is trained without data by minimising the paper's annealed free energy
``E_q[log q(z) + β_t U(z)]`` with ``FlowModel.for_target(..., beta=LinearRamp(...))``
(reparameterised Monte-Carlo samples, ``flow_optimizer``): ``β_t`` rises linearly from 0.01
to 1 over the first ``--anneal-steps`` steps, so the flow first spreads over every mode of
the flattened target, then sharpens; at ``β = 1`` the objective is ``KL(q‖p) − log Z``.

``log Z`` of each energy is computed by quadrature on a fine grid, so the example prints
``KL(q‖p)`` itself (nats, 20000 fresh samples of q), with the share of q's samples in each U1
mode (z1 > 0 and z1 < 0) and, for the ring, the emptiest of 36 angular sectors relative to
its uniform share (1 = evenly covered, 0 = an open arc). The ring and U1 decay in every
direction (Z over the plane); U2-U4 do not decay along z1 and, as in the paper, are
normalised and judged on the [-4, 4]² window (their KL is to the target restricted to it).

Writes ``planar_energies.png``: one row per target, true density | flow density for each
K, on [-4, 4]², in the same units per row.
"""

import sys

import _common

ENERGY_NAMES = ("ring", "u1", "u2", "u3", "u4")
BOX = ((-4.0, 4.0), (-4.0, 4.0))
WHOLE_PLANE = ("ring", "u1")  # normalisable on R²: Z over the plane (a ±8 box suffices)


def parse(argv):
    p = _common.parser(__doc__, "outputs/planar_energies", "about 20 minutes",
                       seed_help="seed of the flows' initial weights and of q's samples")
    p.add_argument("--energies", nargs="+", default=list(ENERGY_NAMES), choices=ENERGY_NAMES,
                   metavar="NAME", help="targets, one row each; any of "
                   + ", ".join(ENERGY_NAMES) + " (default: all)")
    p.add_argument("--layers", type=int, nargs="+", default=[2, 8, 32],
                   help="numbers of planar layers K, one column each")
    p.add_argument("--steps", type=int, default=3000, help="optimisation steps per flow")
    p.add_argument("--anneal-steps", type=int, default=None,
                   help="steps over which β rises from 0.01 to 1; 0: no annealing "
                        "(default: half of --steps)")
    p.add_argument("--num-samples", type=int, default=256, help="Monte-Carlo samples per step")
    p.add_argument("--lr", type=float, default=5e-3,
                   help="peak learning rate of flow_optimizer (warm-up, cosine decay to 0)")
    args = p.parse_args(argv)
    if args.smoke:
        args.energies, args.layers, args.steps, args.num_samples = ["ring", "u1"], [2], 64, 128
    if args.anneal_steps is None:
        args.anneal_steps = args.steps // 2
    return args


def log_normaliser(target, name, points=2001):
    """``log Z = log ∫ exp(log p̃)`` by the midpoint rule on a ``points²`` grid (float64):
    on [-8, 8]² for the ring and U1 (their mass beyond is below 1e-30), else on ``BOX``.
    ``log Z(U1) = 1.8775``."""
    import numpy as np
    import tensorflow as tf

    half = 8.0 if name in WHOLE_PLANE else BOX[0][1]
    step = 2.0 * half / points
    xs = -half + step * (np.arange(points) + 0.5)
    mesh = np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
    log_p = target(tf.constant(mesh, tf.float64)).numpy()
    return float(np.logaddexp.reduce(log_p) + 2.0 * np.log(step))


def diagnostics(dist, target, name, log_z, n=20000, seed=0):
    """``KL(q‖p)``, effective sample size / n, U1 mode shares, ring coverage, mass off BOX."""
    import numpy as np
    import tensorflow as tf

    z, log_q = dist.experimental_sample_and_log_prob(n, seed=tf.constant([seed, 1]))
    log_w = (target(z) - log_q).numpy().astype(np.float64)
    z = z.numpy()
    out = {"kl": float(-log_w.mean() + log_z),
           "ess": float(np.exp(2 * np.logaddexp.reduce(log_w)
                               - np.logaddexp.reduce(2 * log_w)) / n),
           "outside_box": float(np.mean(np.any(np.abs(z) > BOX[0][1], axis=1)))}
    if name == "u1":
        out["mode_right"] = float(np.mean(z[:, 0] > 0))
    if name == "ring":
        sectors = np.histogram(np.arctan2(z[:, 1], z[:, 0]), bins=36, range=(-np.pi, np.pi))[0]
        out["emptiest_sector"] = float(sectors.min() * 36 / n)
    return out


def main(argv=None):
    args = parse(argv)
    import keras

    import tfp_flows
    from tfp_flows import energies, flows, plot
    from tfp_flows.training.objectives import LinearRamp

    keras.utils.set_random_seed(args.seed)
    results = _common.Results(args.out)
    steps_per_epoch = min(100, args.steps)
    epochs = -(-args.steps // steps_per_epoch)
    rows = []
    for name in args.energies:
        target = energies.ENERGIES[name]
        log_z = results[f"log_z_{name}"] = log_normaliser(target, name)

        def normalised(z, target=target, log_z=log_z):
            return target(z) - log_z

        row = [(f"{name}: true density", normalised)]
        for k in args.layers:
            dist = flows.planar(2, num_layers=k, seed=args.seed)
            beta = LinearRamp(args.anneal_steps, start=0.01) if args.anneal_steps else None
            model = tfp_flows.FlowModel.for_target(name, dist, num_samples=args.num_samples,
                                                   seed=args.seed, beta=beta)
            results[f"untrained_kl_{name}_K{k}"] = diagnostics(
                dist, target, name, log_z, seed=args.seed)["kl"]
            _common.compile_flow(model, args, epochs * steps_per_epoch)
            if args.verbose:
                print(f"{name}, K = {k}:")
            model.fit(epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=args.verbose)
            found = diagnostics(dist, target, name, log_z, seed=args.seed)
            for key, value in found.items():
                results[f"{key}_{name}_K{k}"] = value
            extra = ""
            if "mode_right" in found:
                extra = (f", modes {100 * (1 - found['mode_right']):.0f} % | "
                         f"{100 * found['mode_right']:.0f} %")
            if "emptiest_sector" in found:
                extra = f", emptiest sector {found['emptiest_sector']:.2f} of uniform"
            print(f"{name} K = {k:2d}: KL(q‖p) {found['kl']:.3f} nats (log Z {log_z:.4f}), "
                  f"ESS {100 * found['ess']:.0f} %{extra}")
            row.append((f"K = {k}: KL {found['kl']:.2f}", dist))
        rows.append(row)
    results.png(plot.density_grid(rows, BOX), "planar_energies.png")
    return results.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
