"""Seeded 2-D toy densities, generated in code (nothing is downloaded).

Every generator has the signature ``fn(n, seed=None, **options) -> np.ndarray`` of shape
``[n, 2]`` and dtype float32; the same ``seed`` gives the same array, and rows come in a
random order (so any slice of them is an i.i.d. sample). The layouts follow the toy
benchmarks popularised by FFJORD (Grathwohl et al., 2019) and the NAF/NSF papers, so that
pictures are comparable; the exact formula and scale are stated on each function.

Use ``DATASETS[name](n, seed=...)``, ``load(name, n, seed)`` or
``train_test(name, n_train, n_test, seed)``.
"""

import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from tfp_flows._namespace import public_dir
from tfp_flows._optional import import_optional

_TEXT_CACHE = {}

Seed = int | np.random.Generator | None
"""An int seed, a NumPy ``Generator`` to draw from, or ``None`` for fresh entropy."""


def _rng(seed):
    return np.random.default_rng(seed)


def _finish(points, rng):
    """Shuffles the rows and casts to float32 ``[n, 2]``."""
    points = np.asarray(points, dtype=np.float64)
    return points[rng.permutation(len(points))].astype(np.float32)


def _check_n(n):
    n = int(n)
    if n < 0:
        raise ValueError(f"`n` must be a non-negative number of points, got {n}.")
    return n


def two_moons(n: int, noise: float = 0.05, seed: Seed = None, labels: bool = False):
    """Two interleaved half circles, roughly on ``[-3, 3] x [-1.2, 1.8]``.

    Upper moon: ``(cos t, sin t)``; lower moon: ``(1 − cos t, 0.5 − sin t)``,
    ``t ~ U[0, π]``, each point on one moon with probability ½; then isotropic Gaussian
    noise of std ``noise`` and the affine map ``2·p + (−1, −0.2)`` (FFJORD's scale),
    which centres the pair near the origin.

    ``labels=True`` returns ``(points, moon)`` with ``moon [n]`` int32, 0 for the upper and
    1 for the lower moon (the points are the same as without labels).
    """
    n, rng = _check_n(n), _rng(seed)
    t = rng.uniform(0.0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x, y], axis=1) + noise * rng.standard_normal([n, 2])
    order = rng.permutation(n)
    points = (2.0 * points + np.array([-1.0, -0.2]))[order].astype(np.float32)
    return (points, (~upper[order]).astype(np.int32)) if labels else points


def checkerboard(n: int, seed: Seed = None) -> np.ndarray:
    """Uniform on the 8 dark squares of a 4 x 4 checkerboard covering ``[-4, 4]²``.

    Squares have side 2; the square with lower-left corner ``(2i − 4, 2j − 4)`` is dark
    when ``i + j`` is even (FFJORD's layout). Density ``1/32`` on the dark squares.
    """
    n, rng = _check_n(n), _rng(seed)
    x1 = rng.uniform(-2.0, 2.0, n)
    # Pick a row of the same parity as floor(x1) so that (column + row) is even.
    x2 = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return _finish(2.0 * np.stack([x1, x2], axis=1), rng)


def pinwheel(n: int, num_arms: int = 5, radial_std: float = 0.3, tangential_std: float = 0.1,
             rate: float = 0.25, seed: Seed = None) -> np.ndarray:
    """``num_arms`` curved arms (the pinwheel of Johnson et al., 2016), within about ``[-4, 4]²``.

    A point of arm ``k`` starts as ``(1 + radial_std·ε₁, tangential_std·ε₂)``,
    ``ε ~ N(0, I)``, and is rotated by ``θ = 2πk/num_arms + rate · exp(r)`` where ``r`` is
    its first coordinate (so arms bend outwards), then scaled by 2.
    """
    n, rng = _check_n(n), _rng(seed)
    arm = rng.integers(0, num_arms, n)
    r = 1.0 + radial_std * rng.standard_normal(n)
    s = tangential_std * rng.standard_normal(n)
    theta = 2.0 * np.pi * arm / num_arms + rate * np.exp(r)
    c, sn = np.cos(theta), np.sin(theta)
    points = np.stack([c * r - sn * s, sn * r + c * s], axis=1)
    return _finish(2.0 * points, rng)


def eight_gaussians(n: int, radius: float = 2.0, std: float = 0.25,
                    seed: Seed = None) -> np.ndarray:
    """Equal mixture of 8 isotropic Gaussians with means on a circle of radius ``radius``.

    Means ``radius · (cos(πk/4), sin(πk/4))``, ``k = 0..7``, std ``std`` per axis. The
    defaults are FFJORD's layout (radius 2√2, std 0.5/√2) rescaled to radius 2, keeping
    the ratio std/radius = 1/8.
    """
    n, rng = _check_n(n), _rng(seed)
    angle = np.pi / 4.0 * rng.integers(0, 8, n)
    means = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _finish(means + std * rng.standard_normal([n, 2]), rng)


def two_spirals(n: int, noise: float = 0.1, seed: Seed = None) -> np.ndarray:
    """Two interleaved Archimedean spirals, within about ``[-4, 4]²`` (FFJORD's "2spirals").

    With ``s = 3π · sqrt(u)``, ``u ~ U[0, 1]`` (1.5 turns, uniform along the area), a point is
    ``(−s cos s + 0.5 v₁, s sin s + 0.5 v₂) / 3``, ``v ~ U[0, 1]²``, mirrored through the
    origin with probability ½, plus Gaussian noise of std ``noise``.
    """
    n, rng = _check_n(n), _rng(seed)
    s = 3.0 * np.pi * np.sqrt(rng.random(n))
    points = np.stack([-np.cos(s) * s, np.sin(s) * s], axis=1) + 0.5 * rng.random([n, 2])
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    points = sign * points / 3.0 + noise * rng.standard_normal([n, 2])
    return _finish(points, rng)


def leaky_relu_toy(n: int, seed: Seed = None) -> np.ndarray:
    """``x₂ ~ N(0, 4)`` (std 2) and ``x₁ | x₂ ~ N(x₂²/4, 1)``: a banana opening to the right.

    Columns are ``[x₁, x₂]``; the exact log-density is
    ``log N(x₂; 0, 2²) + log N(x₁; x₂²/4, 1)`` (see ``leaky_relu_toy_log_prob``).
    """
    n, rng = _check_n(n), _rng(seed)
    x2 = 2.0 * rng.standard_normal(n)
    x1 = x2 ** 2 / 4.0 + rng.standard_normal(n)
    return _finish(np.stack([x1, x2], axis=1), rng)


def leaky_relu_toy_log_prob(x: ArrayLike) -> ArrayLike:
    """Exact log-density of ``leaky_relu_toy`` at ``x [..., 2]`` -> ``[...]``.

    Plain arithmetic, so it accepts a NumPy array or a TF tensor (and traces in a
    ``tf.function``); lists are converted to float64 arrays.
    """
    if not hasattr(x, "shape"):
        x = np.asarray(x, dtype=np.float64)
    x1, x2 = x[..., 0], x[..., 1]
    log_norm = -0.5 * math.log(2.0 * math.pi)
    return (2.0 * log_norm - math.log(2.0) - 0.5 * (x2 / 2.0) ** 2
            - 0.5 * (x1 - x2 ** 2 / 4.0) ** 2)


def text_mask(text: str = "tfp_flows", font_size: int = 64, stroke: int = 1) -> np.ndarray:
    """Rasterises ``text`` with Pillow's built-in font; returns a bool ``[H, W]`` ink mask.

    Needs Pillow, the ``[plot]`` extra: ``pip install "tfp_flows[plot]"``.

    Uses ``ImageFont.load_default(size=font_size)`` (a scalable font when Pillow has
    FreeType, else Pillow's small bitmap font), black on white, each glyph outlined by
    ``stroke`` extra pixels (a bold face: thicker strokes are easier to fit and read),
    cropped to the ink.
    """
    key = (text, font_size, stroke)
    if key not in _TEXT_CACHE:
        pil = "PIL.Image", "PIL.ImageDraw", "PIL.ImageFont"
        Image, ImageDraw, ImageFont = (import_optional(m, "tfp_flows.datasets.text") for m in pil)
        if not text or not text.strip():
            raise ValueError(f"`text` must contain at least one visible character, got {text!r}.")
        try:
            font = ImageFont.load_default(size=font_size)
        except TypeError:  # Pillow < 10.1 has no size argument.
            font = ImageFont.load_default()
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        pad = 4
        image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), color=255)
        ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=0, font=font,
                                   stroke_width=stroke, stroke_fill=0)
        ink = np.asarray(image) < 128
        if not ink.any():
            raise ValueError(f"Rendering {text!r} produced no dark pixels.")
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        _TEXT_CACHE[key] = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return _TEXT_CACHE[key]


def text(n: int, text: str = "tfp_flows", font_size: int = 64, stroke: int = 1,
         jitter: float = 0.02, seed: Seed = None) -> np.ndarray:
    """Points on the dark pixels of ``text`` rendered by ``text_mask(text, font_size, stroke)``.

    Each point picks a dark pixel uniformly, a uniform position inside it, and Gaussian
    jitter of std ``jitter`` (in output units). Pixel ``(row, col)`` of an ``H x W`` mask
    maps to ``x = s·(col − W/2)``, ``y = s·(H/2 − row)`` (text reads left to right,
    upright), with the single scale ``s = min(8/W, 4/H)``: the text keeps its aspect
    ratio and fills ``[-4, 4]`` horizontally or ``[-2, 2]`` vertically, whichever binds.
    """
    n, rng = _check_n(n), _rng(seed)
    mask = text_mask(text, font_size, stroke)
    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    pick = rng.integers(0, len(rows), n)
    scale = min(8.0 / w, 4.0 / h)
    x = scale * (cols[pick] + rng.random(n) - w / 2.0)
    y = scale * (h / 2.0 - rows[pick] - rng.random(n))
    points = np.stack([x, y], axis=1) + jitter * rng.standard_normal([n, 2])
    return _finish(points, rng)


def _text_geometry(text, font_size, stroke):
    """``(mask [H, W], s, x_edges [W + 1], y_edges [H + 1])``: ``text``'s pixels in the plane.

    Column ``c`` spans ``x_edges[c:c + 2]``; row ``r`` spans ``[y_edges[r + 1], y_edges[r]]``.
    """
    mask = text_mask(text, font_size, stroke)
    h, w = mask.shape
    s = min(8.0 / w, 4.0 / h)
    return mask, s, s * (np.arange(w + 1) - w / 2.0), s * (h / 2.0 - np.arange(h + 1))


def _box_blur(points, lower, upper, jitter):
    """``P(lower <= p + N(0, jitter²) < upper)`` for every point and interval: ``[N, K]``."""
    points = np.asarray(points, np.float64)[:, None]
    if jitter == 0:
        return ((points >= lower) & (points < upper)).astype(np.float64)
    # Φ(b) − Φ(a) = ½(erfc(−b/√2) − erfc(−a/√2)); erfc keeps the tails' tiny masses accurate.
    root2 = math.sqrt(2.0) * jitter
    return 0.5 * (tf.math.erfc((points - upper) / root2).numpy()
                  - tf.math.erfc((points - lower) / root2).numpy())


def text_log_prob(x, text="tfp_flows", font_size=64, stroke=1, jitter=0.02):
    """Exact log-density of ``text(n, text, font_size, stroke, jitter)`` at ``x [..., 2]``.

    The data are ``u + ε`` with ``u`` uniform on the ``K`` dark pixels (squares of side ``s``,
    total area ``A = K s²``) and ``ε ~ N(0, jitter² I)``, so the density is separable per pixel:

        p(x, y) = (1/A) Σ_{dark (r, c)} [Φ((x₁ᶜ − x)/σ) − Φ((x₀ᶜ − x)/σ)]
                                         · [Φ((y₁ʳ − y)/σ) − Φ((y₀ʳ − y)/σ)],

    a product ``Gy · mask · Gxᵀ`` of per-row and per-column factors (``σ = jitter``).
    Returns float64 ``[...]`` (``-inf`` off the ink when ``jitter = 0``).
    """
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1, 2)
    mask, s, xe, ye = _text_geometry(text, font_size, stroke)
    gx = _box_blur(flat[:, 0], xe[:-1], xe[1:], jitter)       # [N, W]
    gy = _box_blur(flat[:, 1], ye[1:], ye[:-1], jitter)       # [N, H]
    density = np.sum((gy @ mask.astype(np.float64)) * gx, axis=1) / (mask.sum() * s * s)
    with np.errstate(divide="ignore"):
        return np.log(density).reshape(x.shape[:-1])


def text_entropy(text="tfp_flows", font_size=64, stroke=1, jitter=0.02):
    """Differential entropy ``H = −∫ p log p`` (nats) of ``text(...)``: the floor of any
    model's expected test NLL on these data.

    Without jitter it is ``log A`` (uniform on the ink of area ``A``); jitter adds a little
    at the glyphs' edges. ``p = Gy · mask · Gxᵀ / A`` (see ``text_log_prob``) is evaluated on
    a grid of spacing ``σ/8`` reaching ``8σ`` past the text; the Riemann sum is then exact
    to far below 1e-6 nats (for the default text it moved by 6e-13 when the spacing was halved,
    and ``p`` sums to 1 within 1e-12). The default data have ``H = 1.7567`` (``log A = 1.5835``).
    """
    mask, s, xe, ye = _text_geometry(text, font_size, stroke)
    area = mask.sum() * s * s
    if jitter == 0:
        return float(np.log(area))
    step = jitter / 8.0
    reach = 8.0 * jitter
    xs = np.arange(xe[0] - reach, xe[-1] + reach, step)
    ys = np.arange(ye[-1] - reach, ye[0] + reach, step)
    gx = _box_blur(xs, xe[:-1], xe[1:], jitter)               # [nx, W]
    gy = _box_blur(ys, ye[1:], ye[:-1], jitter)               # [ny, H]
    p = gy @ mask.astype(np.float64) @ gx.T / area            # [ny, nx]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return float(-terms.sum() * step * step)


DATASETS: dict[str, Callable[..., np.ndarray]] = {
    "two_moons": two_moons,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
    "eight_gaussians": eight_gaussians,
    "two_spirals": two_spirals,
    "leaky_relu_toy": leaky_relu_toy,
    "text": text,
}


def load(name: str, n: int, seed: Seed = None, **options) -> np.ndarray:
    """Returns ``DATASETS[name](n, seed=seed, **options)``: float32 ``[n, 2]``."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {sorted(DATASETS)}.")
    return DATASETS[name](n, seed=seed, **options)


def train_test(name: str, n_train: int, n_test: int, seed: Seed = None,
               **options) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(train [n_train, 2], test [n_test, 2])``: disjoint i.i.d. draws of one sample."""
    n_train, n_test = _check_n(n_train), _check_n(n_test)
    data = load(name, n_train + n_test, seed=seed, **options)
    return data[:n_train], data[n_train:]


__all__ = ["DATASETS", "checkerboard", "eight_gaussians", "leaky_relu_toy",
           "leaky_relu_toy_log_prob", "load", "pinwheel", "text", "text_entropy",
           "text_log_prob", "text_mask", "train_test", "two_moons", "two_spirals"]
__dir__ = public_dir(__all__)
