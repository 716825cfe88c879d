"""Matplotlib figures for 2-D flows: data vs samples, densities, training curves, warps.

Every function returns a ``matplotlib.figure.Figure`` drawn on the Agg canvas without
pyplot, so nothing depends on (or changes) the session's backend: in a notebook the
returned figure displays itself, in a script ``save(fig, path)`` writes a PNG. Figure sizes
are fixed (``figsize`` inches x ``dpi``), so a PNG's pixel size is known in advance:
``figure_pixels(fig)``.

Distributions are anything with ``log_prob`` (a TFP distribution, a ``FlowModel``) or a
plain callable ``x [N, 2] -> log p [N]``; they are evaluated on a grid through
``tf.function(log_prob, jit_compile=True)``.
"""

import os
import weakref
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from numpy.typing import ArrayLike

from tfp_flows import _compat
from tfp_flows._namespace import public_dir
from tfp_flows._optional import import_optional, missing

try:  # matplotlib is the optional dependency `pip install "tfp_flows[plot]"`
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colorbar import Colorbar
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage
    from matplotlib.ticker import MaxNLocator
except ImportError as error:
    raise missing("matplotlib", "tfp_flows.plot") from error

DPI = 100
QUADRANT_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e")
_QUADRANT_CMAP = ListedColormap(QUADRANT_COLORS)

Limits = tuple[tuple[float, float], tuple[float, float]]
"""A plot box ``((x0, x1), (y0, y1))``."""
Density = Callable[[np.ndarray], ArrayLike] | tfp.distributions.Distribution
"""Anything with ``log_prob`` (a distribution, a ``FlowModel``) or ``x [N, 2] -> log p [N]``."""


def new_figure(width: float, height: float, dpi: int = DPI) -> Figure:
    """A pyplot-free Figure of ``width x height`` inches on an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_pixels(fig: Figure) -> tuple[int, int]:
    """``(width, height)`` in pixels of the PNG that ``save(fig, ...)`` writes."""
    w, h = fig.get_size_inches() * fig.dpi
    return int(round(w)), int(round(h))


def save(fig: Figure, path: str, colors: int | None = None) -> str:
    """Writes ``fig`` as a PNG of exactly ``figure_pixels(fig)``; makes parent folders.

    ``colors=k`` stores a ``k``-colour palette image instead of RGBA (Pillow's median-cut
    quantiser), which makes dense scatter plots several times smaller, e.g. for a README.
    Returns ``path``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if colors is None:
        fig.savefig(path, dpi=fig.dpi, format="png")
        return path
    Image = import_optional("PIL.Image", "tfp_flows.plot.save(colors=...)")
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    image.quantize(colors=int(colors)).save(path, format="PNG", optimize=True)
    return path


def limits(*arrays: ArrayLike, quantile: float = 0.005, pad: float = 0.1) -> Limits:
    """Square-free plot box ``((x0, x1), (y0, y1))`` covering the central mass of the arrays."""
    pts = np.concatenate([np.asarray(a, np.float64).reshape(-1, 2) for a in arrays])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    lo, hi = np.quantile(pts, quantile, axis=0), np.quantile(pts, 1 - quantile, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return (lo[0], hi[0]), (lo[1], hi[1])


_COMPILED = weakref.WeakKeyDictionary()


def _log_prob_fn(dist):
    """``tf.function(log_prob, jit_compile=True)``, compiled once per distribution."""
    try:
        return _COMPILED[dist]
    except (KeyError, TypeError):
        pass
    fn = _compat.one_trace_per_object(
        tf.function(dist.log_prob if hasattr(dist, "log_prob") else dist, jit_compile=True))
    try:
        _COMPILED[dist] = fn
    except TypeError:  # not weak-referenceable: compile per call
        pass
    return fn


def grid_log_prob(dist: Density, lims: Limits, grid: int = 200,
                  dtype=np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluates ``log p`` on a ``grid x grid`` mesh of ``lims``.

    Returns ``(xs [grid], ys [grid], log_p [grid, grid])`` with ``log_p[i, j]`` at
    ``(xs[j], ys[i])`` (image order for ``imshow(origin="lower")``).
    """
    (x0, x1), (y0, y1) = lims
    xs, ys = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
    mesh = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(dtype)
    log_p = np.asarray(_log_prob_fn(dist)(tf.constant(mesh)), np.float64)
    return xs, ys, log_p.reshape(grid, grid)


def draw_density(ax: Axes, dist: Density, lims: Limits, grid: int = 200, log: bool = False,
                 floor: float = 10.0, cmap: str = "viridis", relative: bool = False,
                 vmax: float | None = None) -> AxesImage:
    """Draws ``p`` (or ``log p`` clipped at ``max − floor`` when ``log=True``) into ``ax``.

    ``p`` is drawn in its own units, with the colour scale topped at its 99.5% quantile on the
    grid (or at ``vmax``), so that a few sharp peaks do not wash out the rest of the panel.
    ``relative=True`` divides by that quantile first (for unnormalised densities, whose units
    mean nothing). Non-finite values are shown at the bottom of the colour scale. Returns the
    image, for ``colorbar``.
    """
    _, _, log_p = grid_log_prob(dist, lims, grid)
    finite = np.isfinite(log_p)
    top = log_p[finite].max() if finite.any() else 0.0
    log_p = np.where(finite, log_p, -np.inf)
    if log:
        values, vmin, vmax = np.maximum(log_p, top - floor), top - floor, top
    else:
        values = np.exp(log_p - top)
        scale = np.quantile(values, 0.995)
        scale = scale if scale > 0 else 1.0
        if relative:
            values, vmax = values / scale, 1.0
        else:
            values, scale = values * np.exp(top), scale * np.exp(top)
            vmax = scale if vmax is None else vmax
        vmin = 0.0
    (x0, x1), (y0, y1) = lims
    image = ax.imshow(values, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap,
                      aspect="auto", interpolation="nearest", vmin=vmin, vmax=vmax)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    return image


def colorbar(fig: Figure, image: AxesImage, ax: Axes, label: str | None = None) -> Colorbar:
    """A slim colour bar for ``image`` beside ``ax`` (values above the top are marked)."""
    values = image.get_array()
    extend = "max" if np.nanmax(values) > image.norm.vmax * (1 + 1e-6) else "neither"
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, extend=extend)
    bar.ax.tick_params(labelsize=7)
    bar.locator = MaxNLocator(4)
    bar.update_ticks()
    if label:
        bar.set_label(label, fontsize=8)
    return bar


def draw_points(ax: Axes, points: ArrayLike, lims: Limits, color="k", size: float = 2.0,
                alpha: float = 0.6, **kwargs) -> None:
    """Scatter of ``points [N, 2]`` (rasterised, no edges) into ``ax``, limited to ``lims``."""
    points = np.asarray(points)
    ax.scatter(points[:, 0], points[:, 1], s=size, c=color, alpha=alpha, linewidths=0,
               rasterized=True, **kwargs)
    ax.set_xlim(*lims[0])
    ax.set_ylim(*lims[1])


def style_axes(ax: Axes, title: str | None = None, ticks: bool = True) -> None:
    """Small tick labels (a few per axis) and a title; ``ticks=False`` hides the ticks, for
    panels whose coordinates mean nothing."""
    if ticks:
        ax.tick_params(labelsize=7, length=2, pad=1)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)


def data_vs_samples(data: ArrayLike, samples: ArrayLike, lims: Limits | None = None,
                    titles: tuple[str, str] = ("data", "flow samples"),
                    size: tuple[float, float] = (10, 4.5)) -> Figure:
    """Two scatter panels side by side: ``data [N, 2]`` | ``samples [M, 2]``. Size 10 x 4.5 in."""
    lims = lims or limits(data)
    fig = new_figure(*size)
    axes = fig.subplots(1, 2)
    for ax, pts, title, color in zip(axes, (data, samples), titles, ("#1f77b4", "#d62728")):
        draw_points(ax, pts, lims, color=color)
        style_axes(ax, f"{title} (n={len(pts)})")
        ax.set_xlabel("x₁", fontsize=8, labelpad=1)
    axes[0].set_ylabel("x₂", fontsize=8, labelpad=1)
    fig.tight_layout()
    return fig


def log_density(dist: Density, lims: Limits, data: ArrayLike | None = None, grid: int = 200,
                floor: float = 10.0, title: str = "flow log-density",
                size: tuple[float, float] = (6, 4.5)) -> Figure:
    """Heat map of ``log p`` on ``lims`` (clipped at ``max − floor``), optional data overlay."""
    fig = new_figure(*size)
    ax = fig.subplots()
    image = draw_density(ax, dist, lims, grid=grid, log=True, floor=floor)
    if data is not None:
        draw_points(ax, np.asarray(data)[:2000], lims, color="w", size=0.5, alpha=0.3)
    colorbar(fig, image, ax, "log p(x)")
    style_axes(ax, title)
    ax.set_xlabel("x₁", fontsize=8, labelpad=1)
    ax.set_ylabel("x₂", fontsize=8, labelpad=1)
    fig.tight_layout()
    return fig


def training_curve(history, keys: tuple[str, ...] = ("loss", "val_loss"),
                   title: str = "training curve",
                   ylabel: str = "negative log-likelihood (nats)",
                   size: tuple[float, float] = (6, 4)) -> Figure:
    """Plots series of a Keras ``History`` (``history.history``) or of a dict of lists.

    ``keys`` selects the series (those present; ``None``: all of them). Series whose name
    starts with ``val_`` are dashed. The x axis is the epoch (1, 2, ...; integer ticks).
    """
    series = getattr(history, "history", history)
    if keys is not None:
        series = {k: series[k] for k in keys if k in series}
    fig = new_figure(*size)
    ax = fig.subplots()
    for name, values in series.items():
        values = np.asarray(values, np.float64).reshape(-1)
        if values.size == 0:
            continue
        ax.plot(np.arange(1, values.size + 1), values, "--" if name.startswith("val_") else "-",
                label=name, marker="." if values.size < 30 else None)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if ax.lines:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def layer_name(bijector: tfp.bijectors.Bijector) -> str:
    """Short type label of a bijector, e.g. ``RealNVP``, ``Invert(Sigmoid)``."""
    kind = type(bijector).__name__
    inner = getattr(bijector, "bijector", None)
    if kind == "Invert" and inner is not None:
        kind = f"Invert({type(inner).__name__})"
    return kind


def warp_stages(dist: tfp.distributions.TransformedDistribution, layers=None, n: int = 8000,
                seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Base samples pushed through the flow one layer at a time.

    Returns ``(stages, quadrant)``: ``stages[0]`` is ``n`` draws of ``N(0, I)`` (first two
    coordinates are plotted) and ``stages[i]`` is the output of ``layers[i - 1].forward``;
    ``quadrant [n]`` in ``0..3`` labels each point by the signs of its base coordinates.
    ``layers`` default to ``tfp_flows.flows.layers_of(dist)`` (base -> data order).
    """
    if layers is None:
        from tfp_flows.flows import layers_of

        layers = layers_of(dist)
    event_size = int(dist.event_shape[-1])
    z = np.random.default_rng(seed).standard_normal([n, event_size]).astype(
        dist.dtype.as_numpy_dtype if hasattr(dist.dtype, "as_numpy_dtype") else np.float32)
    quadrant = (z[:, 0] < 0).astype(int) + 2 * (z[:, 1] < 0).astype(int)
    stages = [z]
    for layer in layers:
        # A fresh tensor per call: TFP's bijector cache is keyed by the tensor object.
        stages.append(np.asarray(layer.forward(tf.constant(stages[-1]))))
    return stages, quadrant


def warp(dist: tfp.distributions.TransformedDistribution, layers=None, n: int = 8000,
         seed: int = 0, cols: int = 4, panel: float = 3.0, titles=None) -> Figure:
    """The layer-by-layer warp: one panel per stage of ``warp_stages``, coloured by quadrant.

    Panel 0 is the base ``N(0, I)``; panel ``i`` is titled ``"i: <layer type>"``. Each panel
    has its own axis box (the central 99% of its points), with ticks in that layer's
    coordinates. Size ``cols·panel x rows·panel`` in.
    """
    if layers is None:
        from tfp_flows.flows import layers_of

        layers = layers_of(dist)
    stages, quadrant = warp_stages(dist, layers, n=n, seed=seed)
    titles = titles or (["0: base N(0, I)"]
                        + [f"{i + 1}: {layer_name(b)}" for i, b in enumerate(layers)])
    rows = -(-len(stages) // cols)
    fig = new_figure(cols * panel, rows * panel)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, pts, title in zip(axes, stages, titles):
        pts = pts[:, :2]
        draw_points(ax, pts, limits(pts), color=quadrant, size=1.0, alpha=0.6,
                    cmap=_QUADRANT_CMAP, vmin=0, vmax=3)
        style_axes(ax, title)
    for ax in axes[len(stages):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def density_grid(rows, lims: Limits, grid: int = 150, panel: float = 2.6, row_labels=None,
                 relative: bool = False, label: str | None = None) -> Figure:
    """A grid of density panels: ``rows[r]`` is a list of ``(title, dist_or_log_prob_fn)``.

    Each row shares one colour scale, topped at the largest 99.5% grid quantile of its
    panels (``draw_density``), with one colour bar at its right end: normalised densities
    compare in their own units (``label`` defaults to ``"p(x)"``). With ``relative=True``
    every panel is divided by its own quantile first (``"relative density"``), for
    unnormalised targets. ``lims`` is one box for all panels or one per row.
    Size ``(max row length)·panel + bar x len(rows)·panel`` in.
    """
    cols = max(len(r) for r in rows)
    fig = new_figure(cols * panel + 0.6, len(rows) * panel)
    axes = np.asarray(fig.subplots(len(rows), cols, squeeze=False))
    per_row = np.ndim(lims) == 3
    label = label or ("relative density" if relative else "p(x)")
    for r, row in enumerate(rows):
        box = lims[r] if per_row else lims
        images = []
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(row):
                ax.set_axis_off()
                continue
            title, dist = row[c]
            images.append(draw_density(ax, dist, box, grid=grid, relative=relative))
            style_axes(ax, title)
        top = max(image.norm.vmax for image in images)
        for image in images:
            image.set_clim(0.0, top)
        colorbar(fig, images[-1], axes[r, len(row) - 1], label)
        if row_labels:
            axes[r, 0].set_ylabel(row_labels[r])
    fig.tight_layout()
    return fig


def density_comparison(true_log_prob: Density, flows: dict[str, Density], lims: Limits,
                       grid: int = 150, panel: float = 2.6, true_title: str = "true density",
                       relative: bool = False) -> Figure:
    """One row: the target ``true_log_prob`` | each flow of the dict ``{title: dist}``."""
    row = [(true_title, true_log_prob)] + list(flows.items())
    return density_grid([row], lims, grid=grid, panel=panel, relative=relative)


def gallery(rows, grid: int = 150, panel: float = 2.6, n_show: int = 4000,
            lims: Limits | None = None,
            titles: tuple = ("data", "flow density", "flow samples")) -> Figure:
    """One row per dataset: data | flow density (with its colour bar) | flow samples.

    ``rows`` is a list of ``(name, data [N, 2], dist, samples [M, 2])``. Each row shares
    the plot box of its data (or ``lims``, one box for every row); ticks are in data
    coordinates; ``titles`` head the three columns. Size ``3·panel + bar x len(rows)·panel`` in.
    """
    fig = new_figure(3 * panel + 0.6, len(rows) * panel)
    axes = np.asarray(fig.subplots(len(rows), 3, squeeze=False))
    box = lims
    for r, (name, data, dist, samples) in enumerate(rows):
        lims = box or limits(data, quantile=0.0, pad=0.05)
        draw_points(axes[r, 0], np.asarray(data)[:n_show], lims, color="#1f77b4")
        image = draw_density(axes[r, 1], dist, lims, grid=grid)
        colorbar(fig, image, axes[r, 1], "p(x)" if r == 0 else None)
        draw_points(axes[r, 2], np.asarray(samples)[:n_show], lims, color="#d62728")
        for c, title in enumerate(titles):
            style_axes(axes[r, c], title if r == 0 else None)
        axes[r, 0].set_ylabel(name)
    fig.tight_layout()
    return fig


__all__ = ["DPI", "colorbar", "data_vs_samples", "density_comparison", "density_grid",
           "draw_density", "draw_points", "figure_pixels", "gallery", "grid_log_prob",
           "layer_name", "limits", "log_density", "new_figure", "save", "style_axes",
           "training_curve", "warp", "warp_stages"]
__dir__ = public_dir(__all__)
