"""Plot helpers: figure sizes, PNG output, and that the pictures show the right numbers."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfp_flows import datasets, flows, plot


@pytest.fixture(scope="module")
def flow():
    dist = flows.realnvp(2, num_layers=2, hidden_layers=[8], seed=0)
    dist.log_prob(tf.zeros([1, 2]))
    # Move off the identity so that the layers do something.
    for v in dist.trainable_variables:
        v.assign(v + 0.3 * tf.random.stateless_normal(v.shape, [1, v.shape.num_elements() or 1]))
    return dist


def _saved(fig, tmp_path, name, **kwargs):
    path = plot.save(fig, str(tmp_path / "sub" / name), **kwargs)
    image = Image.open(path)
    assert image.size == plot.figure_pixels(fig)
    assert np.asarray(image.convert("L"), np.float64).var() > 50.0
    return image


def test_data_vs_samples_and_save(tmp_path):
    data = datasets.two_moons(500, seed=0)
    fig = plot.data_vs_samples(data, data + 1.0, size=(8, 3))
    assert plot.figure_pixels(fig) == (800, 300)
    image = _saved(fig, tmp_path, "scatter.png")
    assert image.mode in ("RGBA", "RGB")
    assert _saved(fig, tmp_path, "scatter_p.png", colors=16).mode == "P"


def test_grid_log_prob_matches_log_prob(flow):
    xs, ys, log_p = plot.grid_log_prob(flow, ((-2.0, 2.0), (-1.0, 3.0)), grid=11)
    assert log_p.shape == (11, 11)
    i, j = 7, 2
    expected = flow.log_prob(tf.constant([[xs[j], ys[i]]], tf.float32))
    np.testing.assert_allclose(log_p[i, j], expected.numpy()[0], rtol=1e-4, atol=1e-4)


def test_log_density_and_density_grid(flow, tmp_path):
    lims = ((-3.0, 3.0), (-3.0, 3.0))
    _saved(plot.log_density(flow, lims, data=datasets.two_moons(200, seed=0), grid=40),
           tmp_path, "log_density.png")
    rows = [[("gauss", lambda z: -0.5 * tf.reduce_sum(z ** 2, -1)), ("flow", flow)]]
    fig = plot.density_grid(rows, lims, grid=30, panel=2.0)
    assert plot.figure_pixels(fig) == (460, 200)
    # Two density panels with ticks in data coordinates, one shared colour scale and bar.
    panels, bars = fig.axes[:2], fig.axes[2:]
    assert len(bars) == 1 and bars[0].get_ylabel() == "p(x)"
    assert all(len(ax.get_xticks()) >= 3 and len(ax.get_yticks()) >= 3 for ax in panels)
    clims = [ax.images[0].get_clim() for ax in panels]
    assert clims[0] == clims[1] and clims[0][0] == 0.0
    # In its own units: the standard normal's top is 1/(2π) (the flow's is larger here).
    assert clims[0][1] >= 0.9 / (2 * np.pi)
    _saved(fig, tmp_path, "grid.png")
    relative = plot.density_grid(rows, lims, grid=30, panel=2.0, relative=True)
    assert relative.axes[0].images[0].get_clim() == (0.0, 1.0)
    assert relative.axes[2].get_ylabel() == "relative density"


def test_training_curve_selects_series(tmp_path):
    history = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.5, 2.0], "skipped_steps": [0, 0, 0]}
    fig = plot.training_curve(history)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["loss", "val_loss"]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), history["loss"])
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks

    class History:  # a Keras History carries its series in `.history`
        pass

    keras_like = History()
    keras_like.history = history
    assert len(plot.training_curve(keras_like, keys=None).axes[0].lines) == 3
    _saved(fig, tmp_path, "curve.png")


def test_warp_follows_every_layer(flow, tmp_path):
    layers = flows.layers_of(flow)
    stages, quadrant = plot.warp_stages(flow, n=500, seed=3)
    assert len(stages) == len(layers) + 1
    assert set(np.unique(quadrant)) == {0, 1, 2, 3}
    z = stages[0]
    np.testing.assert_array_equal(quadrant, (z[:, 0] < 0) + 2 * (z[:, 1] < 0))
    # Composing the panels is the flow's forward map.
    np.testing.assert_allclose(stages[-1], flow.bijector.forward(tf.constant(z)).numpy(),
                               rtol=1e-5, atol=1e-5)
    fig = plot.warp(flow, n=500, seed=3, cols=2, panel=2.0)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["0: base N(0, I)"] + [f"{i + 1}: {plot.layer_name(b)}"
                                            for i, b in enumerate(layers)]
    assert titles[1] == "1: Coupling" and titles[2] == "2: Permute"
    _saved(fig, tmp_path, "warp.png")


def test_gallery_rows(flow, tmp_path):
    data = datasets.eight_gaussians(300, seed=0)
    fig = plot.gallery([("a", data, flow, data), ("b", data, flow, data)], grid=20, panel=2.0)
    assert plot.figure_pixels(fig) == (660, 400)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_ylabel() for ax in panels[::3]] == ["a", "b"]
    assert len(fig.axes) - len(panels) == 2  # one colour bar per density panel
    assert all(len(ax.get_xticks()) >= 3 for ax in panels)
    _saved(fig, tmp_path, "gallery.png")


def test_limits_cover_the_data():
    data = np.array([[0.0, 0.0], [1.0, 10.0]] * 50)
    (x0, x1), (y0, y1) = plot.limits(data, quantile=0.0, pad=0.1)
    assert x0 < 0.0 < 1.0 < x1 and y0 < 0.0 < 10.0 < y1
    assert y1 - y0 > x1 - x0
