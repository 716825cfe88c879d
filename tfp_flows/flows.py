"""Builders returning ready ``tfd.TransformedDistribution``s over a standard-normal base.

Every builder records its own arguments as ``dist.flow_config`` (a dict with the key
``"builder"``), so ``build(**dist.flow_config)`` rebuilds the same architecture; ``FlowModel``
uses this to serialise a model.
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks
from tfp_flows._namespace import public_dir
from tfp_flows.bijectors import (
    BatchNorm,
    FusedRealNVP,
    LULinear,
    PiecewiseLinearCDF,
    Planar,
    random_permute,
    real_nvp_template,
)

tfb, tfd = tfp.bijectors, tfp.distributions


def _concrete_seed(seed):
    """``seed``, or a fresh random int when None, so ``flow_config`` always records one.

    Permutations (and ``LULinear``'s ``P``) are constants drawn from the seed, not variables:
    rebuilding a flow from its config must draw the same ones for saved weights to fit.
    """
    return int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)


def _seed(seed, i):
    """Seed of the ``i``-th layer, derived from the flow's seed."""
    return [seed, i]


def standard_normal(event_size: int, dtype: tf.DType = tf.float32) -> tfd.Distribution:
    """``N(0, I)`` over events of shape ``[event_size]``."""
    dtype = _checks.float_dtype(dtype)
    return tfd.Sample(tfd.Normal(tf.zeros([], dtype), tf.ones([], dtype)), [event_size])


def _finish(bijectors, event_size, dtype, name, config):
    # tfb.Chain applies its list last-to-first; `bijectors` is listed base -> data.
    dist = tfd.TransformedDistribution(standard_normal(event_size, dtype),
                                       tfb.Chain(list(reversed(bijectors)), name=name), name=name)
    dist.flow_config = config
    return dist


def _mixing_permutation(event_size, seed, i):
    if event_size == 2:
        return tfb.Permute([1, 0], name=f"permute_{i}")
    return random_permute(event_size, seed=_seed(seed, 1000 + i), name=f"permute_{i}")


def realnvp(event_size: int, num_layers: int = 8, hidden_layers: Sequence[int] = (64, 64),
            batch_norm: bool = False, shift_only: bool = False, log_scale_bound: float = 2.0,
            seed: int | None = None, dtype: tf.DType = tf.float32,
            name: str = "realnvp") -> tfd.TransformedDistribution:
    """RealNVP (Dinh et al., 2017): affine couplings with a permutation between them.

    Base -> data: ``[coupling_i, (BatchNorm_i), permutation_i]`` for ``i < num_layers``
    (no permutation after the last coupling). Each coupling conditions the second half
    of the event on the first ``event_size // 2`` entries via ``real_nvp_template``.
    """
    seed = _concrete_seed(seed)
    config = dict(builder="realnvp", event_size=event_size, num_layers=num_layers,
                  hidden_layers=list(hidden_layers), batch_norm=batch_norm, shift_only=shift_only,
                  log_scale_bound=log_scale_bound, seed=seed, dtype=tf.as_dtype(dtype).name,
                  name=name)
    event_size = _checks.positive_int(event_size, "event_size")
    if event_size < 2:
        raise ValueError(f"realnvp needs `event_size` >= 2 to split the event, got {event_size}.")
    num_layers = _checks.positive_int(num_layers, "num_layers")
    dtype = _checks.float_dtype(dtype)
    layers = []
    for i in range(num_layers):
        template = real_nvp_template(hidden_layers, shift_only=shift_only,
                                     log_scale_bound=log_scale_bound, seed=_seed(seed, i),
                                     name=f"template_{i}")
        layers.append(FusedRealNVP(num_masked=event_size // 2, shift_and_log_scale_fn=template,
                                  name=f"coupling_{i}"))
        if batch_norm:
            layers.append(BatchNorm(event_size, dtype=dtype, name=f"batch_norm_{i}"))
        if i < num_layers - 1:
            layers.append(_mixing_permutation(event_size, seed, i))
    return _finish(layers, event_size, dtype, name, config)


def planar(event_size: int, num_layers: int = 8, seed: int | None = None,
           dtype: tf.DType = tf.float32, name: str = "planar_flow") -> tfd.TransformedDistribution:
    """A stack of ``num_layers`` ``Planar`` layers (Rezende & Mohamed, 2015)."""
    seed = _concrete_seed(seed)
    config = dict(builder="planar", event_size=event_size, num_layers=num_layers, seed=seed,
                  dtype=tf.as_dtype(dtype).name, name=name)
    num_layers = _checks.positive_int(num_layers, "num_layers")
    layers = [Planar(event_size, seed=_seed(seed, i), dtype=dtype, name=f"planar_{i}")
              for i in range(num_layers)]
    return _finish(layers, event_size, _checks.float_dtype(dtype), name, config)


def lu_piecewise_linear(event_size: int, num_layers: int = 4, num_bins: int = 16,
                        seed: int | None = None, dtype: tf.DType = tf.float32,
                        name: str = "lu_piecewise_linear") -> tfd.TransformedDistribution:
    """Alternates ``LULinear`` mixing with elementwise piecewise-linear CDFs.

    Base -> data per layer: ``LULinear``, then ``logit ∘ PiecewiseLinearCDF⁻¹ ∘ sigmoid``
    (the piecewise-linear map acts in the unit cube, so the composite is a bijection of R^D).
    The CDF is inverted so that data (``log_prob``) go through its forward map, whose bins
    are fixed in the input: the other way the bin edges move across data points as the masses
    change, each point's log-det jumps there, and autodiff misses that part of the gradient.
    """
    seed = _concrete_seed(seed)
    config = dict(builder="lu_piecewise_linear", event_size=event_size, num_layers=num_layers,
                  num_bins=num_bins, seed=seed, dtype=tf.as_dtype(dtype).name, name=name)
    num_layers = _checks.positive_int(num_layers, "num_layers")
    dtype = _checks.float_dtype(dtype)
    layers = []
    for i in range(num_layers):
        layers.append(LULinear(event_size, seed=_seed(seed, i), dtype=dtype, name=f"lu_linear_{i}"))
        layers += [tfb.Sigmoid(name=f"sigmoid_{i}"),
                   tfb.Invert(PiecewiseLinearCDF(event_size, num_bins=num_bins, dtype=dtype,
                                                 name=f"piecewise_linear_{i}")),
                   tfb.Invert(tfb.Sigmoid(), name=f"logit_{i}")]
    return _finish(layers, event_size, dtype, name, config)


BUILDERS = {"realnvp": realnvp, "planar": planar, "lu_piecewise_linear": lu_piecewise_linear}


def build(builder: str, **kwargs) -> tfd.TransformedDistribution:
    """Rebuilds a flow from its ``flow_config``: ``build(**dist.flow_config)``."""
    if builder == "multiscale_realnvp":  # imported here: tfp_flows.multiscale imports this module
        from tfp_flows.multiscale import multiscale_realnvp
        return multiscale_realnvp(**kwargs)
    if builder not in BUILDERS:
        raise ValueError(f"Unknown flow builder {builder!r}; expected one of "
                         f"{sorted(BUILDERS) + ['multiscale_realnvp']}.")
    return BUILDERS[builder](**kwargs)


def _route(bijector, kwargs):
    """``bijector_kwargs`` that hand ``kwargs`` to every conditional bijector inside
    ``bijector`` (None if there is none). Conditional bijectors carry ``context_size``."""
    if getattr(bijector, "context_size", None) is not None:
        return dict(kwargs)
    if isinstance(bijector, tfb.Invert):
        return _route(bijector.bijector, kwargs)
    if isinstance(bijector, tfb.Composition):
        routed = {}
        for b in bijector.bijectors:
            sub = _route(b, kwargs)
            if sub is None:
                continue
            if b.name in routed:
                raise ValueError(f"{bijector.name}: two conditional bijectors are both named "
                                 f"{b.name!r}; TFP routes bijector_kwargs by name, so give "
                                 "each a unique name.")
            routed[b.name] = sub
        return routed or None
    return None


def context_kwargs(dist: tfd.TransformedDistribution, context) -> dict:
    """The ``bijector_kwargs`` that route a context to every conditional bijector of ``dist``.

    ``dist.log_prob(x, bijector_kwargs=context_kwargs(dist, c))`` and
    ``dist.sample(n, bijector_kwargs=context_kwargs(dist, c))`` evaluate ``p(x | c)``;
    ``c [..., C]`` broadcasts against the batch axes of ``x``. A bijector is conditional when
    its ``context_size`` is not None (TFP's keyword ``conditional_input`` reaches it).

    Args:
      dist: a ``tfd.TransformedDistribution`` (e.g. from a builder with ``context_size``).
      context: tensor ``[..., C]``.

    Raises:
      ValueError: if ``dist`` has no conditional bijector.
    """
    routed = _route(dist.bijector, {"conditional_input": context})
    if routed is None:
        raise ValueError(f"{dist.name}: the flow has no conditional bijector (build it with "
                         "`context_size=C` to model p(x | c)).")
    return routed


def layers_of(dist: tfd.TransformedDistribution) -> list[tfb.Bijector]:
    """Returns the bijectors of a builder's flow in base -> data order."""
    return list(reversed(dist.bijector.bijectors))


__all__ = ["BUILDERS", "build", "context_kwargs", "layers_of", "lu_piecewise_linear", "planar",
           "realnvp", "standard_normal"]
__dir__ = public_dir(__all__)
