"""Dequantisation of discrete images and the likelihood bound in bits per dimension.

Space. A pixel ``p ∈ {0, …, L−1}`` (``L = levels``) plus noise ``v ∈ [0, 1)`` is scaled to
``u = (p + v) / L ∈ [0, 1)`` and mapped to logit space,

    y = logit(α + (1 − 2α)·u),    log|dy/du| = Σ_d [log(1 − 2α) − log w_d − log(1 − w_d)],

with ``w = α + (1 − 2α)·u``. A flow models the density ``p_Y(y)`` of events ``[..., D]``.

Bound (Theis et al., 2016; Ho et al., 2019). With ``x = p + v`` the density on ``[0, L)^D`` is
``p_X(x) = p_Y(y)·|dy/du|·L^{−D}``, and for any noise density ``q(v | p)`` on ``[0, 1)^D``

    log P(p) ≥ E_q[ log p_Y(y) + log|dy/du| − D·log L − log q(v | p) ].

Uniform dequantisation is ``q = 1`` (``log q = 0``). The bound in bits per dimension is

    bits/dim = E[ −log p_Y(y) − log|dy/du| + log q(v | p) + D·log L ] / (D·log 2),

issue 6's formula (plus the ``log q`` term of variational dequantisation).
"""

import numbers
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks
from tfp_flows._namespace import public_dir
from tfp_flows.bijectors import Coupling, random_permute

tfb, tfd = tfp.bijectors, tfp.distributions


def check_discrete(pixels, levels: int):
    """Checks that ``pixels`` holds integers in ``{0, …, levels − 1}``; returns an int32 array.

    Args:
      pixels: array-like (NumPy, list or eager tensor) of any shape.
      levels: number of grey levels ``L`` (an int ≥ 2).

    Raises:
      ValueError: on non-integer values or values outside ``[0, levels − 1]``, naming them.
    """
    levels = _levels(levels)
    arr = np.asarray(pixels.numpy() if hasattr(pixels, "numpy") else pixels)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"Discrete pixels must be numeric integers, got dtype {arr.dtype}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("Discrete pixels must be finite integers; got NaN or inf.")
    if not np.issubdtype(arr.dtype, np.integer):
        bad = arr[arr != np.round(arr)]
        if bad.size:
            raise ValueError(
                f"Discrete pixels must be integers (the discrete path takes grey levels, not "
                f"dequantised values); got non-integer values such as {bad.flat[0]!r}.")
    low, high = arr.min(initial=0), arr.max(initial=0)
    if low < 0 or high > levels - 1:
        raise ValueError(
            f"Pixel values must lie in {{0, …, {levels - 1}}} for levels={levels}; got values in "
            f"[{low}, {high}].")
    return arr.astype(np.int32)


def _check_if_eager(pixels, levels):
    """``check_discrete`` on concrete inputs; symbolic ones (tf.data, tf.function) pass."""
    if tf.executing_eagerly():
        check_discrete(pixels, levels)


def _levels(levels):
    if isinstance(levels, bool) or not isinstance(levels, numbers.Integral) or levels < 2:
        raise ValueError(f"`levels` must be an integer >= 2, got {levels!r}.")
    return int(levels)


def to_logit(u: tf.Tensor, alpha: float = 0.05) -> tf.Tensor:
    """``y = logit(α + (1 − 2α)·u)`` elementwise; ``u`` in ``[0, 1]``."""
    u = tf.convert_to_tensor(u)
    w = alpha + (1.0 - 2.0 * alpha) * u
    return tf.math.log(w) - tf.math.log1p(-w)


def from_logit(y: tf.Tensor, alpha: float = 0.05) -> tf.Tensor:
    """Inverse of ``to_logit``: ``u = (sigmoid(y) − α) / (1 − 2α)``."""
    return (tf.sigmoid(tf.convert_to_tensor(y)) - alpha) / (1.0 - 2.0 * alpha)


def logit_log_det(u: tf.Tensor, alpha: float = 0.05) -> tf.Tensor:
    """``log|dy/du|`` of ``to_logit`` summed over the last axis: ``[..., D] -> [...]``."""
    u = tf.convert_to_tensor(u)
    w = alpha + (1.0 - 2.0 * alpha) * u
    per_dim = np.log(1.0 - 2.0 * alpha) - tf.math.log(w) - tf.math.log1p(-w)
    return tf.reduce_sum(per_dim, axis=-1)


def dequantize(pixels, noise: tf.Tensor, levels: int,
               alpha: float = 0.05) -> tuple[tf.Tensor, tf.Tensor]:
    """Maps discrete ``pixels`` and noise ``v ∈ [0, 1)`` to ``(y, log|dy/du|)``.

    Shapes: ``pixels``, ``noise`` ``[..., D]`` -> ``y [..., D]``, log-det ``[...]``.
    ``pixels`` are cast to the noise dtype (checked by ``check_discrete`` upstream).
    """
    noise = tf.convert_to_tensor(noise)
    u = (tf.cast(pixels, noise.dtype) + noise) / levels
    return to_logit(u, alpha), logit_log_det(u, alpha)


def uniform_dequantize(pixels, levels: int, alpha: float = 0.05, seed=None,
                       dtype: tf.DType = tf.float32) -> tuple[tf.Tensor, tf.Tensor]:
    """Uniform dequantisation as a data transform: ``v ~ U[0, 1)^D``, returns ``(y, log_det)``.

    Concrete (eager) ``pixels`` are checked by ``check_discrete``; inside
    ``tf.data.Dataset.map`` or a ``tf.function`` they are symbolic and unchecked, so validate
    the array once with ``check_discrete`` before building the pipeline.

    Args:
      pixels: integer grey levels ``[..., D]``.
      levels: number of levels ``L``.
      alpha: logit margin ``α``.
      seed: None (stateful random op) or a stateless seed ``[2]``.
      dtype: floating dtype of the output.
    """
    dtype = _checks.float_dtype(dtype)
    _check_if_eager(pixels, levels)
    shape = tf.shape(pixels)
    if seed is None:
        noise = tf.random.uniform(shape, dtype=dtype)
    else:
        noise = tf.random.stateless_uniform(shape, seed=seed, dtype=dtype)
    return dequantize(pixels, noise, _levels(levels), alpha)


def bound_in_nats(log_prob_y: tf.Tensor, log_det: tf.Tensor, event_size: int, levels: int,
                  log_q: tf.Tensor | float = 0.0) -> tf.Tensor:
    """Per-image negative bound ``−log p_Y(y) − log|dy/du| + log q + D·log L`` (nats).

    All tensor arguments broadcast; shape ``[...]``.
    """
    return -log_prob_y - log_det + log_q + event_size * np.log(_levels(levels))


def bits_per_dim(log_prob_y: tf.Tensor, log_det: tf.Tensor, event_size: int, levels: int,
                 log_q: tf.Tensor | float = 0.0) -> tf.Tensor:
    """Mean of ``bound_in_nats`` over all entries, divided by ``D·log 2`` (a scalar)."""
    nats = bound_in_nats(log_prob_y, log_det, event_size, levels, log_q)
    return tf.reduce_mean(nats) / (event_size * np.log(2.0))


class VariationalDequantizer(tf.Module):
    """A small conditional flow ``q(v | p)`` on ``(0, 1)^D`` (Ho et al., 2019, Flow++).

    ``ε ~ N(0, I_D)``; ``h = ε`` followed by an elementwise conditional affine map
    ``h ← μ(c) + exp(s(c))·h`` and ``num_couplings`` affine couplings whose networks see the
    untouched half of ``h`` and ``c``; then ``v = sigmoid(h)``. The condition is
    ``c = 2p/(L − 1) − 1`` ∈ [−1, 1]. Every layer is an affine ``Coupling`` with the condition
    as its context and a zero-initialised MLP, so a fresh dequantiser is the logistic-normal
    ``sigmoid(ε)``.

    ``log q(v | p) = log N(ε) − log|det ∂v/∂ε|`` is returned with each sample.
    """

    def __init__(self, event_size: int, levels: int, num_couplings: int = 2,
                 hidden_layers: Sequence[int] = (128,), seed: int | None = None,
                 dtype: tf.DType = tf.float32, name: str = "variational_dequantizer"):
        super().__init__(name=name)
        self.event_size = _checks.positive_int(event_size, "event_size")
        self.levels = _levels(levels)
        self.dtype = _checks.float_dtype(dtype)
        num_couplings = int(num_couplings)
        if num_couplings < 0:
            raise ValueError(f"`num_couplings` must be >= 0, got {num_couplings}.")

        def seed_of(i):
            return None if seed is None else [int(seed), i]

        d = self.event_size
        # The condition c [..., D] is every layer's context; the first layer has no
        # conditioning entries: h <- μ(c) + exp(s(c))·h elementwise.
        layers = [Coupling(d, "affine", split=([], np.arange(d)), hidden_layers=hidden_layers,
                           context_size=d, seed=seed_of(0), dtype=self.dtype,
                           name="conditional_affine")]
        for i in range(num_couplings):
            layers.append(random_permute(d, seed=seed_of(100 + i), name=f"permute_{i}"))
            layers.append(Coupling(d, "affine", split=max(d // 2, 1) if d > 1 else ([], [0]),
                                   hidden_layers=hidden_layers, context_size=d,
                                   seed=seed_of(i + 1), dtype=self.dtype, name=f"coupling_{i}"))
        self._conditioned = [b.name for b in layers if isinstance(b, Coupling)]
        layers.append(tfb.Sigmoid(name="sigmoid"))
        base = tfd.Sample(tfd.Normal(tf.zeros([], self.dtype), tf.ones([], self.dtype)),
                          [self.event_size])
        self.flow = tfd.TransformedDistribution(base, tfb.Chain(list(reversed(layers))))

    def condition(self, pixels):
        """The ``bijector_kwargs`` of ``self.flow`` for ``pixels [..., D]``: every coupling's
        ``conditional_input`` is ``c = 2p/(L − 1) − 1``."""
        c = 2.0 * tf.cast(pixels, self.dtype) / (self.levels - 1) - 1.0
        return {name: {"conditional_input": c} for name in self._conditioned}

    def sample_and_log_prob(self, pixels, seed=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Draws ``v ~ q(· | pixels)``: returns ``(v [..., D], log q(v | pixels) [...])``."""
        pixels = tf.convert_to_tensor(pixels)
        return self.flow.experimental_sample_and_log_prob(
            tf.shape(pixels)[:-1], seed=seed, bijector_kwargs=self.condition(pixels))

    def log_prob(self, noise: tf.Tensor, pixels) -> tf.Tensor:
        """``log q(noise | pixels)`` for ``noise`` in ``(0, 1)^D``."""
        return self.flow.log_prob(noise, bijector_kwargs=self.condition(pixels))


def negative_bound(log_prob_fn, pixels, levels, alpha=0.05, dequantizer=None, seed=None,
                   dtype=tf.float32, noise=None):
    """One-sample estimate of the per-image negative bound in nats, ``[...]``.

    Args:
      log_prob_fn: ``y [..., D] -> log p_Y(y) [...]`` (e.g. ``dist.log_prob``).
      pixels: integer grey levels ``[..., D]`` (checked when eager, see ``check_discrete``).
      levels, alpha: the space (see the module docstring).
      dequantizer: None for uniform noise, or a ``VariationalDequantizer``.
      seed: None or a stateless seed ``[2]`` for the noise.
      noise: None, or ``(v, log q(v | pixels))`` drawn by the caller (``v [..., D]`` in
        ``[0, 1)``); then ``dequantizer`` and ``seed`` are not used.
    """
    _check_if_eager(pixels, levels)
    pixels = tf.convert_to_tensor(pixels)
    event_size = pixels.shape[-1]
    if noise is not None:
        v, log_q = noise
        y, log_det = dequantize(pixels, v, levels, alpha)
    elif dequantizer is None:
        y, log_det = uniform_dequantize(pixels, levels, alpha, seed=seed, dtype=dtype)
        log_q = tf.zeros_like(log_det)
    else:
        noise, log_q = dequantizer.sample_and_log_prob(pixels, seed=seed)
        y, log_det = dequantize(pixels, noise, levels, alpha)
    return bound_in_nats(log_prob_fn(y), log_det, event_size, levels, log_q)


def evaluate_bits_per_dim(log_prob_fn, pixels, levels, alpha=0.05, dequantizer=None,
                          num_samples=4, batch_size=512, seed=0, dtype=tf.float32):
    """Test bits/dim of discrete ``pixels [N, D]``: the bound averaged over images and
    ``num_samples`` noise draws per image (a Python float).

    Raises:
      ValueError: if ``pixels`` are not integers in ``{0, …, levels − 1}``.
    """
    pixels = check_discrete(pixels, levels)
    if pixels.ndim != 2:
        raise ValueError(f"Expected pixels of shape [N, D], got {pixels.shape}.")
    n, d = pixels.shape
    total = 0.0
    for k in range(num_samples):
        for start in range(0, n, batch_size):
            batch = pixels[start:start + batch_size]
            nats = negative_bound(log_prob_fn, batch, levels, alpha, dequantizer,
                                  seed=[int(seed), k * n + start], dtype=dtype)
            total += float(tf.reduce_sum(nats))
    return total / (num_samples * n * d * np.log(2.0))


__all__ = ["VariationalDequantizer", "bits_per_dim", "bound_in_nats", "check_discrete",
           "dequantize", "evaluate_bits_per_dim", "from_logit", "logit_log_det",
           "negative_bound", "to_logit", "uniform_dequantize"]
__dir__ = public_dir(__all__)
