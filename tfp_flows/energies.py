"""2-D unnormalised target log-densities for reverse-KL training.

Each function maps ``z [..., 2] -> log p̃(z) [...]`` (``-U(z)``, up to an unknown constant).
U1–U4 are the test energies of Rezende & Mohamed (2015, "Variational Inference with Normalizing
Flows", Table 1), with ``w1(z) = sin(2π z1 / 4)``, ``w2(z) = 3 exp(-½((z1 − 1)/0.6)²)``,
``w3(z) = 3 σ((z1 − 1)/0.3)``.
"""

import math

import tensorflow as tf

from tfp_flows._namespace import public_dir


def _norm(z):
    # sqrt with a floor: finite gradient at the origin.
    sq = tf.reduce_sum(tf.square(z), axis=-1)
    return tf.sqrt(tf.maximum(sq, tf.constant(1e-12, z.dtype)))


def _split(z):
    z = tf.convert_to_tensor(z)
    return z, z[..., 0], z[..., 1]


def _w1(z1):
    return tf.sin(2.0 * math.pi * z1 / 4.0)


def _w2(z1):
    return 3.0 * tf.exp(-0.5 * tf.square((z1 - 1.0) / 0.6))


def _w3(z1):
    return 3.0 * tf.sigmoid((z1 - 1.0) / 0.3)


def _log_sum_exp2(a, b):
    return tf.reduce_logsumexp(tf.stack([a, b], axis=-1), axis=-1)


def ring(z: tf.Tensor, radius: float = 2.0, width: float = 0.3) -> tf.Tensor:
    """``log p̃(z) = −½ ((‖z‖ − radius) / width)²``: a thin ring of the given radius."""
    z, _, _ = _split(z)
    return -0.5 * tf.square((_norm(z) - radius) / width)


def u1(z: tf.Tensor) -> tf.Tensor:
    """``−U1``: ``U1 = ½((‖z‖ − 2)/0.4)² − log(e^{−½((z1−2)/0.6)²} + e^{−½((z1+2)/0.6)²})``."""
    z, z1, _ = _split(z)
    modes = _log_sum_exp2(-0.5 * tf.square((z1 - 2.0) / 0.6), -0.5 * tf.square((z1 + 2.0) / 0.6))
    return -0.5 * tf.square((_norm(z) - 2.0) / 0.4) + modes


def u2(z: tf.Tensor) -> tf.Tensor:
    """``−U2``: ``U2 = ½((z2 − w1(z))/0.4)²``."""
    _, z1, z2 = _split(z)
    return -0.5 * tf.square((z2 - _w1(z1)) / 0.4)


def u3(z: tf.Tensor) -> tf.Tensor:
    """``−U3``: ``U3 = −log(e^{−½((z2−w1)/0.35)²} + e^{−½((z2−w1+w2)/0.35)²})``."""
    _, z1, z2 = _split(z)
    w1 = _w1(z1)
    return _log_sum_exp2(-0.5 * tf.square((z2 - w1) / 0.35),
                         -0.5 * tf.square((z2 - w1 + _w2(z1)) / 0.35))


def u4(z: tf.Tensor) -> tf.Tensor:
    """``−U4``: ``U4 = −log(e^{−½((z2−w1)/0.4)²} + e^{−½((z2−w1+w3)/0.35)²})``."""
    _, z1, z2 = _split(z)
    w1 = _w1(z1)
    return _log_sum_exp2(-0.5 * tf.square((z2 - w1) / 0.4),
                         -0.5 * tf.square((z2 - w1 + _w3(z1)) / 0.35))


ENERGIES = {"ring": ring, "u1": u1, "u2": u2, "u3": u3, "u4": u4}

__all__ = ["ENERGIES", "ring", "u1", "u2", "u3", "u4"]
__dir__ = public_dir(__all__)
