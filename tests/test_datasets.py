"""The toy datasets: shapes, seeding, and the geometry each docstring states."""

import numpy as np
import pytest

from tfp_flows import datasets

N = 4000


@pytest.mark.parametrize("name", sorted(datasets.DATASETS))
def test_shape_dtype_seeding(name):
    a = datasets.load(name, N, seed=1)
    assert a.shape == (N, 2) and a.dtype == np.float32
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, datasets.load(name, N, seed=1))
    assert not np.allclose(a, datasets.load(name, N, seed=2))
    assert datasets.load(name, 0, seed=1).shape == (0, 2)


@pytest.mark.parametrize("name", sorted(datasets.DATASETS))
def test_rows_are_shuffled(name):
    # Both halves of a sample must look alike (no generator emits its components in order).
    a = datasets.load(name, N, seed=3)
    first, second = a[: N // 2], a[N // 2:]
    spread = a.std(axis=0)
    assert np.all(np.abs(first.mean(0) - second.mean(0)) < 0.15 * spread)


def test_train_test_split():
    train, test = datasets.train_test("two_moons", 300, 200, seed=5)
    assert train.shape == (300, 2) and test.shape == (200, 2)
    both = np.concatenate([train, test])
    np.testing.assert_array_equal(both, datasets.load("two_moons", 500, seed=5))


def test_unknown_name_and_bad_n():
    with pytest.raises(ValueError, match="Unknown dataset"):
        datasets.load("three_moons", 10)
    with pytest.raises(ValueError, match="non-negative"):
        datasets.load("two_moons", -1)


def test_two_moons_lie_on_the_arcs():
    noise = 0.05
    p = (datasets.two_moons(N, noise=noise, seed=0) - np.array([-1.0, -0.2])) / 2.0
    upper = np.abs(np.hypot(p[:, 0], p[:, 1]) - 1.0)
    lower = np.abs(np.hypot(p[:, 0] - 1.0, p[:, 1] - 0.5) - 1.0)
    assert np.quantile(np.minimum(upper, lower), 0.99) < 4 * noise
    # About half of the points on each moon.
    assert 0.4 < np.mean(upper < lower) < 0.6
    points, moon = datasets.two_moons(N, noise=noise, seed=0, labels=True)
    np.testing.assert_array_equal(points, datasets.two_moons(N, noise=noise, seed=0))
    assert moon.dtype == np.int32 and set(np.unique(moon)) == {0, 1}
    # The label names the arc a point lies on (up to the few noisy points where they cross).
    assert np.mean(moon == (upper >= lower)) > 0.95


def test_checkerboard_on_dark_squares():
    p = datasets.checkerboard(N, seed=0)
    assert np.all(np.abs(p) <= 4.0)
    col, row = np.floor((p[:, 0] + 4) / 2), np.floor((p[:, 1] + 4) / 2)
    assert np.all((col + row) % 2 == 0)
    counts = np.bincount((4 * col + row).astype(int), minlength=16)
    assert np.count_nonzero(counts) == 8
    assert counts[counts > 0].min() > 0.7 * N / 8


def test_eight_gaussians_modes():
    p = datasets.eight_gaussians(N, radius=2.0, std=0.25, seed=0)
    angles = np.pi / 4 * np.arange(8)
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    d = np.linalg.norm(p[:, None, :] - centres[None], axis=-1)
    nearest = d.argmin(1)
    assert np.all(np.bincount(nearest, minlength=8) > 0.8 * N / 8)
    residual = p - centres[nearest]
    np.testing.assert_allclose(residual.std(0), 0.25, rtol=0.1)


def test_pinwheel_has_five_arms():
    p = datasets.pinwheel(N, seed=0)
    r = np.hypot(p[:, 0], p[:, 1])
    assert np.all(r < 6.0)
    angle = np.arctan2(p[:, 1], p[:, 0])
    hist, _ = np.histogram(angle[r > 2.0], bins=60, range=(-np.pi, np.pi))
    peaks = np.sum((hist > np.roll(hist, 1)) & (hist >= np.roll(hist, -1)) & (hist > hist.mean()))
    assert peaks == 5


def test_two_spirals_point_symmetric_and_bounded():
    p = datasets.two_spirals(N, seed=0)
    assert np.all(np.abs(p) < 4.5)
    np.testing.assert_allclose(p.mean(0), 0.0, atol=0.15)
    # Radius grows with the angle along an arm: the radius distribution spans 0..~3.3.
    r = np.hypot(p[:, 0], p[:, 1])
    assert r.min() < 0.5 and r.max() > 3.0


def test_leaky_relu_toy_moments_and_density():
    p = datasets.leaky_relu_toy(20000, seed=0).astype(np.float64)
    x1, x2 = p[:, 0], p[:, 1]
    assert abs(x2.std() - 2.0) < 0.05
    residual = x1 - x2 ** 2 / 4.0
    assert abs(residual.mean()) < 0.03 and abs(residual.std() - 1.0) < 0.03
    assert abs(np.corrcoef(residual, x2)[0, 1]) < 0.03
    # The stated log-density integrates to 1.
    g1, g2 = np.linspace(-6, 30, 721), np.linspace(-12, 12, 481)
    mesh = np.stack(np.meshgrid(g1, g2), -1)
    mass = np.exp(datasets.leaky_relu_toy_log_prob(mesh)).sum() * (g1[1] - g1[0]) * (g2[1] - g2[0])
    assert abs(mass - 1.0) < 1e-3


def test_text_points_on_ink_and_in_box():
    mask = datasets.text_mask("Hi", font_size=64)
    assert mask.dtype == bool and mask.any() and not mask.all()
    p = datasets.text(N, text="Hi", jitter=0.0, seed=0)
    assert np.all(np.abs(p[:, 0]) <= 4.0 + 1e-5) and np.all(np.abs(p[:, 1]) <= 2.0 + 1e-5)
    h, w = mask.shape
    scale = min(8.0 / w, 4.0 / h)
    cols = np.clip(np.floor(p[:, 0] / scale + w / 2.0).astype(int), 0, w - 1)
    rows = np.clip(np.floor(h / 2.0 - p[:, 1] / scale).astype(int), 0, h - 1)
    assert mask[rows, cols].mean() > 0.99
    # Exactly one of the box constraints binds.
    span = p.max(0) - p.min(0)
    assert span[0] > 7.5 or span[1] > 3.5


def test_text_depends_on_the_text():
    a = datasets.text(N, text="AB", seed=0)
    b = datasets.text(N, text="ab", seed=0)
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="visible"):
        datasets.text(10, text="   ")


def test_text_log_prob_is_a_density_and_matches_the_sampler():
    kwargs = dict(text="Hi", font_size=32, jitter=0.05)
    xs, ys = np.linspace(-4.5, 4.5, 451), np.linspace(-2.5, 2.5, 251)
    mesh = np.stack(np.meshgrid(xs, ys), -1)
    p = np.exp(datasets.text_log_prob(mesh, **kwargs))
    assert p.shape == (251, 451)
    assert abs(p.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]) - 1.0) < 2e-3
    # Samples land where the density is high: their mean log-density (a Monte-Carlo entropy
    # estimate) agrees with the quadrature entropy, and another text's points score lower.
    lp = datasets.text_log_prob(datasets.text(20000, seed=0, **kwargs), **kwargs)
    entropy = datasets.text_entropy(**kwargs)
    assert abs(-lp.mean() - entropy) < 4 * lp.std() / np.sqrt(len(lp))
    other = datasets.text(2000, text="Oo", font_size=32, jitter=0.05, seed=0)
    assert datasets.text_log_prob(other, **kwargs).mean() < lp.mean() - 1.0


def test_text_entropy_is_the_log_area_plus_edge_blur():
    mask = datasets.text_mask("Hi", font_size=32)
    h, w = mask.shape
    scale = min(8.0 / w, 4.0 / h)
    log_area = np.log(mask.sum() * scale ** 2)
    assert datasets.text_entropy("Hi", font_size=32, jitter=0.0) == pytest.approx(log_area)
    blurred = [datasets.text_entropy("Hi", font_size=32, jitter=j) for j in (0.01, 0.02, 0.05)]
    assert log_area < blurred[0] < blurred[1] < blurred[2]
    assert np.isinf(datasets.text_log_prob([[10.0, 10.0]], text="Hi", font_size=32, jitter=0.0))
