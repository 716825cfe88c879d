"""A multi-scale RealNVP on scikit-learn's 8×8 digits, with uniform dequantisation.

Pixels ``p ∈ {0, …, 16}`` are dequantised, ``u = (p + U[0, 1)) / 17``, and modelled in logit
space ``y = logit(0.05 + 0.9·u)`` (``tfp_flows.dequantization``) by a multi-scale RealNVP
(``tfp_flows.multiscale``: checkerboard and channel couplings, squeeze, factor-out) trained
with ``FlowModel.fit`` on fresh noise every batch. Model selection: a validation split carved
from the training images (fixed noise) drives ``keras.callbacks.EarlyStopping`` with
``restore_best_weights=True``. The test score is the dequantisation bound in bits per
dimension on the discrete test pixels. Figures written to ``--out``:

* ``samples.png``          - images sampled from the flow
* ``reconstructions.png``  - test images and ``f(f⁻¹(y))`` (asserted to give the same pixels)
* ``interpolations.png``   - decoded ``cos(πt/2)·z₁ + sin(πt/2)·z₂`` between test images
* ``training_curve.png``   - train / validation NLL of y per epoch

  python examples/digits.py --out outputs/digits
"""

import sys

import _common


def parse(argv):
    p = _common.parser(__doc__, "outputs/digits",
                       "about 3 minutes on 2 idle cores (171 s wall measured on 8 Dec 2026)",
                       jit_default="off: XLA slows these small convolutions down on CPU")
    p.add_argument("--network", choices=("conv", "mlp"), default="conv",
                   help="coupling networks: 3×3 convolutions or MLPs")
    p.add_argument("--filters", type=int, default=32, help="channels of the conv networks")
    p.add_argument("--hidden", type=int, nargs="+", default=None,
                   help="MLP hidden widths, or for --network conv one hidden conv per entry "
                        "(default: 128 128 for mlp, 1 1 for conv)")
    p.add_argument("--epochs", type=int, default=40, help="maximum epochs")
    p.add_argument("--steps-per-epoch", type=int, default=50,
                   help="optimizer steps between validations")
    p.add_argument("--patience", type=int, default=4, help="EarlyStopping patience (epochs)")
    p.add_argument("--batch-size", type=int, default=512, help="images per optimizer step")
    p.add_argument("--lr", type=float, default=1e-3, help="constant Adam learning rate")
    p.add_argument("--test-samples", type=int, default=4,
                   help="noise draws per test image in the bound")
    args = p.parse_args(argv)
    if args.hidden is None:
        args.hidden = [1, 1] if args.network == "conv" else [128, 128]
    if args.smoke:
        args.filters, args.hidden, args.epochs, args.steps_per_epoch = 8, [1], 2, 4
        args.batch_size, args.test_samples = 128, 1
    return args


def image_grid(rows, title, row_labels=None, panel=0.62):
    """Figure of grey images ``rows [R, C, 8, 8]`` with values in [0, 1] (1 = ink)."""
    import numpy as np

    from tfp_flows import plot

    rows = np.asarray(rows)
    r, c = rows.shape[:2]
    fig = plot.new_figure(max(c * panel + 1.2, 4.0), max(r * panel + 0.7, 3.0))
    axes = fig.subplots(r, c, squeeze=False)
    for i in range(r):
        for j in range(c):
            ax = axes[i, j]
            ax.imshow(rows[i, j], cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = parse(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    import tfp_flows
    from tfp_flows import dequantization as dq
    from tfp_flows import digits, multiscale, plot

    keras.utils.set_random_seed(args.seed)
    results = _common.Results(args.out)
    levels, alpha = digits.LEVELS, digits.ALPHA
    split = digits.load(seed=args.seed, validation_fraction=0.15)
    train = dq.check_discrete(split.train, levels)
    test = dq.check_discrete(split.test, levels)
    if args.smoke:
        test, split_labels = test[:64], split.test_labels[:64]
    else:
        split_labels = split.test_labels

    def to_y(pixels, seed=None):
        return dq.uniform_dequantize(pixels, levels, alpha, seed=seed)[0]

    dataset = (tf.data.Dataset.from_tensor_slices(train)
               .shuffle(len(train), seed=args.seed, reshuffle_each_iteration=True).repeat()
               .batch(args.batch_size, drop_remainder=True)
               .map(lambda p: to_y(p), num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))
    y_val = to_y(dq.check_discrete(split.validation, levels), seed=[args.seed, 1]).numpy()

    dist = multiscale.multiscale_realnvp(
        digits.IMAGE_SHAPE, num_scales=2, couplings_per_scale=2 if args.smoke else 3,
        final_couplings=2 if args.smoke else 4, hidden_layers=args.hidden, network=args.network,
        filters=args.filters, seed=args.seed)
    model = tfp_flows.FlowModel(dist)

    def test_bpd():
        return dq.evaluate_bits_per_dim(model.log_prob, test, levels, alpha,
                                        num_samples=args.test_samples, seed=args.seed + 7)

    results["untrained_test_bits_per_dim"] = test_bpd()
    # Graph mode: XLA slows these small convolutions down on CPU (the full-size step 1.9×,
    # tfp_flows.training.slow_xla), and this keeps --network mlp the same; --jit forces XLA.
    model.compile(optimizer=keras.optimizers.Adam(args.lr),
                  jit_compile=bool(args.jit))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                         restore_best_weights=True)
    history = model.fit(dataset, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                        validation_data=y_val, callbacks=[stop], verbose=args.verbose)
    results["epochs_run"] = len(history.history["loss"])
    results["best_epoch"] = int(np.argmin(history.history["val_loss"])) + 1
    results["test_bits_per_dim"] = test_bpd()

    def to_pixels(y):
        """Dequantised logit-space events -> grey levels (floor of 17·u)."""
        u = dq.from_logit(y, alpha).numpy()
        return np.clip(np.floor(levels * u), 0, levels - 1).astype(np.int32)

    def show(pixels):
        return digits.to_image(pixels / (levels - 1))

    # Samples.
    samples = np.asarray(model.sample(48, seed=args.seed))
    results.png(image_grid(show(to_pixels(samples)).reshape(4, 12, 8, 8),
                           "samples from the multi-scale RealNVP"), "samples.png")

    # Reconstructions f(f⁻¹(y)); fresh tensors so TFP's bijector cache cannot answer.
    bijector = dist.bijector
    y = to_y(test[:12], seed=[args.seed, 2])
    z = tf.constant(bijector.inverse(tf.constant(y.numpy())).numpy())
    y_rec = bijector.forward(z).numpy()
    rec_pixels = to_pixels(y_rec)
    results["reconstruction_max_abs_error"] = float(np.max(np.abs(y_rec - y.numpy())))
    assert np.array_equal(rec_pixels, test[:12]), (
        "f(f⁻¹(x)) did not reproduce the input pixels (max |Δy| = "
        f"{results['reconstruction_max_abs_error']:.3g})")
    results.png(image_grid(np.stack([show(test[:12]), show(rec_pixels)]),
                           "test images (top) and f(f⁻¹(x)) (bottom)", ["input", "f(f⁻¹(x))"]),
                "reconstructions.png")

    # Interpolations between test images of different digits, variance-preserving in z.
    pairs = [(int(np.flatnonzero(split_labels == a)[0]), int(np.flatnonzero(split_labels == b)[0]))
             for a, b in ((0, 1), (3, 8), (4, 7), (2, 5)) if {a, b} <= set(split_labels.tolist())]
    ends = to_y(test[np.array(pairs).ravel()], seed=[args.seed, 3])
    z_ends = bijector.inverse(tf.constant(ends.numpy())).numpy().reshape(len(pairs), 2, -1)
    t = np.linspace(0.0, 1.0, 9)[None, :, None]
    z_path = (np.cos(np.pi * t / 2) * z_ends[:, :1] + np.sin(np.pi * t / 2) * z_ends[:, 1:])
    decoded = bijector.forward(tf.constant(z_path.reshape(-1, digits.EVENT_SIZE), tf.float32))
    path_pixels = to_pixels(decoded).reshape(len(pairs), 9, -1)
    results.png(image_grid(show(path_pixels), "latent interpolations between test images"),
                "interpolations.png")
    results.png(plot.training_curve(history, ylabel="NLL of y (nats per image)"),
                "training_curve.png")
    print(f"test bound: {results['test_bits_per_dim']:.3f} bits/dim (untrained: "
          f"{results['untrained_test_bits_per_dim']:.3f}; uniform: {np.log2(levels):.3f})")
    return results.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
