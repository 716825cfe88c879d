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
    Coupling,
    Elementwise,
    LULinear,
    MultiScaleRealNVP,
    PiecewiseLinearCDF,
    Planar,
    random_permute,
    transformers,
)
from tfp_flows.bijectors.autoregressive import (
    MaskedAutoregressiveFlow,
    inverse_autoregressive_flow,
)

tfb, tfd = tfp.bijectors, tfp.distributions


def _concrete_seed(seed):
    """``seed``, or a fresh random int when None, so ``flow_config`` always records one.

    Permutations (and ``LULinear``'s ``P``) are constants drawn from the seed, not variables:
    rebuilding a flow from its config must draw the same ones for saved weights to fit.
    """
    if seed is None:
        return int(np.random.default_rng().integers(2**31))
    return _checks.non_negative_int(seed, "seed")


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


def _mixing(event_size, seed, i, mixing, dtype):
    """The layer between couplings ``i`` and ``i + 1``: the permutation (``"permute"``), or
    (``"lu"``) an ``LULinear`` that starts at that permutation and learns ``W = P·L·V``."""
    permute = _mixing_permutation(event_size, seed, i)
    if mixing == "permute":
        return permute
    return LULinear(event_size, init="identity", permutation=tf.get_static_value(
        permute.permutation), dtype=dtype, name=f"lu_linear_{i}")


def _hidden_layers(hidden_layers):
    """``hidden_layers`` as a list of positive ints, or a ``ValueError`` naming it."""
    try:
        widths = list(hidden_layers)
    except TypeError:
        widths = None
    if not widths or not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool)
                             and h > 0 for h in widths):
        raise ValueError("`hidden_layers` must be a non-empty sequence of positive ints "
                         f"(e.g. [64, 64]), got {hidden_layers!r}.")
    return [int(h) for h in widths]


def _couplings(builder, transformer, event_size, num_layers, hidden_layers, batch_norm,
               context_size, seed, dtype, name, config, marginal=None, data_affine=None,
               mixing="permute", bias_init="zeros", network_init="identity"):
    """``num_layers`` couplings of the first ``D // 2`` entries to the rest, with a permutation
    (and optionally ``BatchNorm``) between them; records ``config`` as ``flow_config``.

    ``marginal``: a transformer applied by ``Elementwise`` to the conditioning entries after
    each coupling; ``data_affine``: an ``Elementwise`` affine transformer as the last
    (data-side) layer; ``mixing``: ``"permute"`` or ``"lu"`` (see ``_mixing``)."""
    seed = _concrete_seed(seed)
    config = dict(builder=builder, event_size=event_size, num_layers=num_layers,
                  hidden_layers=hidden_layers, **config, seed=seed,
                  dtype=tf.as_dtype(dtype).name, name=name)
    hidden_layers = config["hidden_layers"] = _hidden_layers(hidden_layers)
    event_size = _checks.positive_int(event_size, "event_size")
    if event_size < 2:
        raise ValueError(f"{builder} needs `event_size` >= 2 to split the event, got "
                         f"{event_size}.")
    num_layers = _checks.positive_int(num_layers, "num_layers")
    if context_size is not None:
        config["context_size"] = _checks.positive_int(context_size, "context_size")
    dtype = _checks.float_dtype(dtype)
    layers = []
    for i in range(num_layers):
        layers.append(Coupling(event_size, transformer, hidden_layers=hidden_layers,
                               context_size=context_size, seed=_seed(seed, i),
                               bias_init=bias_init, network_init=network_init, dtype=dtype,
                               name=f"coupling_{i}"))
        if marginal is not None:
            layers.append(Elementwise(event_size, marginal, indices=np.arange(event_size // 2),
                                      dtype=dtype, name=f"marginal_{i}"))
        if batch_norm:
            layers.append(BatchNorm(event_size, dtype=dtype, name=f"batch_norm_{i}"))
        if i < num_layers - 1:
            layers.append(_mixing(event_size, seed, i, mixing, dtype))
    if data_affine is not None:
        layers.append(Elementwise(event_size, data_affine, dtype=dtype, name="data_affine"))
    return _finish(layers, event_size, dtype, name, config)


def realnvp(event_size: int, num_layers: int = 8, hidden_layers: Sequence[int] = (64, 64),
            batch_norm: bool = False, shift_only: bool = False, log_scale_bound: float = 2.0,
            hidden_bias_init: str = "uniform", network_init: str = "uniform",
            context_size: int | None = None, seed: int | None = None,
            dtype: tf.DType = tf.float32, name: str = "realnvp") -> tfd.TransformedDistribution:
    """RealNVP (Dinh et al., 2017): affine couplings with a permutation between them.

    Base -> data: ``[coupling_i, (BatchNorm_i), permutation_i]`` for ``i < num_layers``
    (no permutation after the last coupling). Each ``Coupling`` maps the second half of the
    event by ``y = x · exp(s) + t`` (``transformers.Affine``: ``s = c·tanh(r/c)``,
    ``c = log_scale_bound``; ``s = 0`` with ``shift_only``), ``(t, r)`` from an MLP of the first
    ``event_size // 2`` entries (and the context ``[..., context_size]`` when given: ``p(x | c)``,
    see ``context_kwargs``).

    ``network_init``: ``"uniform"`` (every kernel and output bias from ``U(±1/√fan_in)``,
    PyTorch's ``nn.Linear`` default, what zuko's flows start from: a fresh flow is near
    ``N(0, I)``, not at it) or ``"identity"`` (Glorot-uniform kernels, zero last layers: a
    fresh flow is ``N(0, I)``). ``hidden_bias_init``: the MLPs' hidden biases, ``"uniform"``
    (``U(±1/√fan_in)``) or ``"zeros"``.

    Measured (issue 10's protocol: 3000 steps of ``fit`` + ``flow_optimizer``, 8 couplings of
    2×64; ``benchmarks/README.md``): these defaults (since 2026-12-07) minus the previous
    ones (``"identity"``, ``"zeros"``), test NLL paired per seed, means over seeds 0–2:
    checkerboard −0.051, pinwheel −0.047, two moons −0.005 (better on every seed), leaky-ReLU
    toy 0.000; over seeds 0–4: 8 gaussians −0.016 (better on four), two spirals −0.033 nats
    (better on three; its per-seed differences spread ±0.07).
    """
    transformer = transformers.Affine(log_scale_bound, shift_only=shift_only)
    return _couplings("realnvp", transformer, event_size, num_layers, hidden_layers, batch_norm,
                      context_size, seed, dtype, name,
                      dict(batch_norm=batch_norm, shift_only=shift_only,
                           log_scale_bound=log_scale_bound, hidden_bias_init=hidden_bias_init,
                           network_init=network_init),
                      bias_init=hidden_bias_init, network_init=network_init)


def nsf(event_size: int, num_layers: int = 8, num_bins: int = 8,
        hidden_layers: Sequence[int] = (64, 64), bound: float = 5.0,
        marginal_splines: bool = True, data_affine: bool = True, invert_splines: bool = True,
        hidden_bias_init: str = "uniform", softclip_knots: bool = False, mixing: str = "permute",
        network_init: str = "identity", context_size: int | None = None,
        seed: int | None = None, dtype: tf.DType = tf.float32,
        name: str = "nsf") -> tfd.TransformedDistribution:
    """Neural spline flow (Durkan et al., 2019): rational-quadratic spline couplings.

    As ``realnvp``, with ``transformers.RationalQuadraticSpline(num_bins, bound)`` as the
    elementwise map: monotone splines on ``[-bound, bound]`` with identity tails outside, knots
    from an MLP of the conditioning half (and the context). A fresh flow is ``N(0, I)`` (the
    MLPs' last layers and every learned constant start at zero: every layer is the identity).

    Data -> base, with the defaults, each of the ``num_layers`` layers is: the coupling
    ``x_T ← s(x_T; θ(x_K))`` with ``s`` the rational-quadratic map itself
    (``invert_splines``), then ``x_K ← s(x_K; φ)`` with learned constant knots ``φ``
    (``marginal_splines``), then the permutation; ahead of all of them (the data-side layer)
    ``x ← (x − t) · exp(−σ)`` (``data_affine``). At ``D = 2`` a layer thus moves both
    coordinates, the first by a learned constant spline and the second by a spline conditioned
    on the first: the structure of an autoregressive NSF layer (zuko's ``NSF``).

    ``invert_splines``: the splines are ``RationalQuadraticSpline(invert=True)``, so ``log_prob``
    evaluates the rational-quadratic maps data -> base (knots fixed in the data's coordinates)
    and ``sample`` solves their quadratics. ``marginal_splines``: after each coupling (base ->
    data), an ``Elementwise`` spline (learned constant knots) on the entries the coupling
    conditioned on. ``hidden_bias_init="uniform"``: the conditioner MLPs' hidden biases start
    at ``U(±1/√fan_in)`` (``nn.MLP``), not 0: with zero biases a ReLU network of the one
    conditioning coordinate (``D = 2``) has all its kinks at 0 until training moves them.
    ``data_affine``: a learned elementwise ``y = x · exp(s) + t`` (``transformers.Affine``,
    ``|s| ≤ 2``) as the data-side layer, so the splines' ``[-bound, bound]`` can follow the
    data's scale (without it, data past ``bound`` keep the base density's cost: leaky-ReLU toy
    test NLL 4.427 without, 3.548 with). ``softclip_knots``: zuko's knot parametrisation
    (``RationalQuadraticSpline(softclip=True)``); ``mixing="lu"``: an ``LULinear`` that starts
    at the permutation instead of the permutation (both off: neither helped, ``benchmarks/``).
    ``network_init``: as ``realnvp``'s, but ``"identity"`` by default here (``"uniform"``, the
    default of ``realnvp``, ``maf`` and ``iaf``, was not better for splines at seed 0).

    Measured (``benchmarks/README.md``, issue 10: 3000 steps of ``fit`` + ``flow_optimizer``,
    8 layers of 2×64, 8 bins): these defaults (since 2026-12-07) against the previous ones
    (``invert_splines=False, marginal_splines=False, hidden_bias_init="zeros"``), test NLL
    paired per seed (seeds 0, 1, 2; better on every seed on the first four): two moons −0.005,
    pinwheel −0.008, 8 gaussians −0.005, two spirals −0.015, checkerboard +0.0005 (−0.003 to
    +0.004), leaky-ReLU toy +0.000 nats (means). Per step ``fit`` runs 0.96× as
    fast (two moons, 8 interleaved rounds); the XLA compile takes longer. Against
    zuko's ``NSF`` (same protocol, seeds 0, 1, 2, paired): two moons +0.0003, checkerboard
    −0.0025, pinwheel −0.0010, 8 gaussians +0.0015 (behind on all three seeds), two spirals
    −0.0005 (the others within one standard deviation of their per-seed differences),
    leaky-ReLU toy −0.79: level with zuko, not ahead of it by more than the seeds' spread.
    """
    transformer = transformers.RationalQuadraticSpline(num_bins, bound, invert=invert_splines,
                                                       softclip=softclip_knots)
    return _couplings("nsf", transformer, event_size, num_layers, hidden_layers, False,
                      context_size, seed, dtype, name,
                      dict(num_bins=num_bins, bound=bound, marginal_splines=bool(marginal_splines),
                           data_affine=bool(data_affine), invert_splines=bool(invert_splines),
                           hidden_bias_init=hidden_bias_init, softclip_knots=bool(softclip_knots),
                           mixing=_checks.one_of(mixing, ("permute", "lu"), "mixing"),
                           network_init=network_init),
                      marginal=transformer if marginal_splines else None,
                      data_affine=transformers.Affine() if data_affine else None, mixing=mixing,
                      bias_init=hidden_bias_init, network_init=network_init)


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
    (the piecewise-linear map acts in the unit cube, so the composite is a bijection of R^D),
    evaluated as one ``PiecewiseLinearCDF(real_line=True)``: with separate ``tfb.Sigmoid``
    layers float32 rounds ``sigmoid`` to 1 far from the data and ``log_prob`` became NaN.
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
        layers.append(tfb.Invert(PiecewiseLinearCDF(event_size, num_bins=num_bins,
                                                    real_line=True, dtype=dtype,
                                                    name=f"piecewise_linear_{i}")))
    return _finish(layers, event_size, dtype, name, config)


def multiscale_realnvp(image_shape: tuple[int, int, int] = (8, 8, 1), num_scales: int = 2,
                       couplings_per_scale: int = 3, final_couplings: int = 4,
                       hidden_layers: Sequence[int] = (128, 128), log_scale_bound: float = 2.0,
                       seed: int | None = None, network: str = "mlp", filters: int = 32,
                       transformer="affine", dtype: tf.DType = tf.float32,
                       name: str = "multiscale_realnvp") -> tfd.TransformedDistribution:
    """``MultiScaleRealNVP`` over ``N(0, I_{H·W·C})`` (Dinh et al., 2017); ``transformer``
    ``"affine"`` (RealNVP) or ``"spline"`` (rational-quadratic, Durkan et al., 2019)."""
    if not isinstance(transformer, str):
        raise TypeError("multiscale_realnvp records its arguments in flow_config, so "
                        f"`transformer` must be 'affine' or 'spline', got {transformer!r}.")
    dtype = _checks.float_dtype(dtype)
    bijector = MultiScaleRealNVP(image_shape, num_scales, couplings_per_scale, final_couplings,
                                 _hidden_layers(hidden_layers), log_scale_bound, seed, network,
                                 filters, transformer, dtype, name=name)
    config = dict(builder="multiscale_realnvp", image_shape=list(bijector.image_shape),
                  num_scales=num_scales, couplings_per_scale=couplings_per_scale,
                  final_couplings=final_couplings, hidden_layers=list(hidden_layers),
                  log_scale_bound=log_scale_bound, seed=seed, network=network, filters=filters,
                  transformer=transformer, dtype=dtype.name, name=name)
    dist = tfd.TransformedDistribution(standard_normal(bijector.event_size, dtype), bijector,
                                       name=name)
    dist.flow_config = config
    return dist


def _autoregressive_transformer(transformer, num_bins, bound, log_scale_bound):
    if transformer == "affine":
        return transformers.Affine(log_scale_bound=log_scale_bound)
    if transformer == "spline":
        return transformers.RationalQuadraticSpline(num_bins=num_bins, bound=bound)
    raise ValueError(f"`transformer` must be 'affine' or 'spline', got {transformer!r}.")


def _autoregressive(builder, make_layer, event_size, num_layers, hidden_layers, transformer,
                    num_bins, bound, log_scale_bound, hidden_bias_init, network_init, context_size,
                    seed, dtype, name):
    seed = _concrete_seed(seed)
    config = dict(builder=builder, event_size=event_size, num_layers=num_layers,
                  hidden_layers=list(hidden_layers), transformer=transformer, num_bins=num_bins,
                  bound=bound, log_scale_bound=log_scale_bound,
                  hidden_bias_init=hidden_bias_init, network_init=network_init,
                  context_size=context_size,
                  seed=seed, dtype=tf.as_dtype(dtype).name, name=name)
    event_size = _checks.positive_int(event_size, "event_size")
    num_layers = _checks.positive_int(num_layers, "num_layers")
    dtype = _checks.float_dtype(dtype)
    layers = []
    for i in range(num_layers):
        layers.append(make_layer(
            event_size, transformer=_autoregressive_transformer(transformer, num_bins, bound,
                                                                log_scale_bound),
            hidden_layers=hidden_layers, context_size=context_size, seed=_seed(seed, i),
            bias_init=hidden_bias_init, network_init=network_init, name=f"{builder}_{i}"))
        if i < num_layers - 1 and event_size > 1:
            layers.append(_mixing_permutation(event_size, seed, i))
    return _finish(layers, event_size, dtype, name, config)


def maf(event_size: int, num_layers: int = 5, hidden_layers: Sequence[int] = (64, 64),
        transformer="affine", num_bins: int = 8, bound: float = 5.0,
        log_scale_bound: float = 2.0, hidden_bias_init: str = "uniform",
        network_init: str = "uniform", context_size: int | None = None, seed: int | None = None,
        dtype: tf.DType = tf.float32, name: str = "maf") -> tfd.TransformedDistribution:
    """Masked autoregressive flow (Papamakarios et al., 2017): fast density, slow sampling.

    Base -> data: ``[maf_i, permutation_i]`` for ``i < num_layers`` (no permutation after the
    last), each ``maf_i`` a ``MaskedAutoregressiveFlow`` with a MADE of ``hidden_layers``.
    ``log_prob`` costs one MADE pass per layer; ``sample`` costs ``event_size`` passes per layer.

    Args:
      transformer: ``"affine"`` (log-scale softly bounded by ``log_scale_bound``) or
        ``"spline"`` (rational-quadratic, ``num_bins`` bins on ``[-bound, bound]``, identity
        tails; Durkan et al., 2019).
      hidden_bias_init: the MADEs' hidden biases, ``"uniform"`` (``U(±1/√fan_in)``,
        ``nn.MADE``) or ``"zeros"``.
      network_init: the MADEs' other weights, ``"uniform"`` (every kernel and output bias from
        ``U(±1/√fan_in)``, PyTorch's ``nn.Linear`` default, what zuko's ``MAF`` starts from: a
        fresh flow is near the base distribution) or ``"identity"`` (Glorot-uniform kernels,
        zero last layers: a fresh flow is the base distribution). Measured (issue 10's
        protocol, 8 affine layers of 2×64, ``benchmarks/README.md``): these defaults (since
        2026-12-07) minus the previous ones (``"identity"``, ``"zeros"``), test NLL paired per
        seed, means over seeds 0–2: pinwheel −0.038, checkerboard −0.023, two moons −0.006
        (better on every seed), leaky-ReLU toy 0.000; over seeds 0–4: 8 gaussians −0.009
        (better on four), two spirals +0.023 nats (worse on three; per-seed differences
        +0.114 to −0.028, inside their spread). The hidden biases alone (``"identity"``,
        ``"uniform"``) had been worse on both (+0.015, +0.013 over seeds 0–4). ``iaf``, seed
        0: better on five sets (−0.012 to −0.076), level on the leaky-ReLU toy.
      context_size: ``C`` for a conditional flow ``p(x | c)``: pass the context with
        ``bijector_kwargs=flows.context_kwargs(dist, c)`` (or ``FlowModel.fit(x, c)``).
      seed: seeds the MADE initialisations and the permutations (recorded in ``flow_config``).
    """
    return _autoregressive("maf", MaskedAutoregressiveFlow, event_size, num_layers,
                           hidden_layers, transformer, num_bins, bound, log_scale_bound,
                           hidden_bias_init, network_init, context_size, seed, dtype, name)


def iaf(event_size: int, num_layers: int = 5, hidden_layers: Sequence[int] = (64, 64),
        transformer="affine", num_bins: int = 8, bound: float = 5.0,
        log_scale_bound: float = 2.0, hidden_bias_init: str = "uniform",
        network_init: str = "uniform", context_size: int | None = None, seed: int | None = None,
        dtype: tf.DType = tf.float32, name: str = "iaf") -> tfd.TransformedDistribution:
    """Inverse autoregressive flow (Kingma et al., 2016): fast sampling, slow density.

    ``maf`` with every layer inverted (``tfb.Invert(MaskedAutoregressiveFlow)``): ``sample`` and
    ``experimental_sample_and_log_prob`` cost one MADE pass per layer (what reverse KL needs);
    ``log_prob`` of a given point costs ``event_size`` passes per layer. Arguments as ``maf``.
    """
    return _autoregressive("iaf", inverse_autoregressive_flow, event_size, num_layers,
                           hidden_layers, transformer, num_bins, bound, log_scale_bound,
                           hidden_bias_init, network_init, context_size, seed, dtype, name)


BUILDERS = {"realnvp": realnvp, "nsf": nsf, "planar": planar,
            "lu_piecewise_linear": lu_piecewise_linear, "multiscale_realnvp": multiscale_realnvp,
            "maf": maf, "iaf": iaf}


# Per builder, the value of each option before the option was recorded in its flow_config (or
# before its default changed), so that a config saved earlier rebuilds the flow it described.
# nsf: data_affine (default True since 2026-12-03), invert_splines, marginal_splines and
# hidden_bias_init (defaults changed 2026-12-07); realnvp, maf, iaf: hidden_bias_init
# (recorded for maf and iaf since 2026-12-07, realnvp since its second session, default
# "uniform" since then); network_init for all four (recorded since that second session).
_BEFORE_KEYS = {"nsf": {"data_affine": False, "invert_splines": False,
                        "marginal_splines": False, "hidden_bias_init": "zeros",
                        "network_init": "identity"},
                **{builder: {"hidden_bias_init": "zeros", "network_init": "identity"}
                   for builder in ("realnvp", "maf", "iaf")}}


def build(builder: str, **kwargs) -> tfd.TransformedDistribution:
    """Rebuilds a flow from its ``flow_config``: ``build(**dist.flow_config)``."""
    if builder not in BUILDERS:
        raise ValueError(f"Unknown flow builder {builder!r}; expected one of {sorted(BUILDERS)}.")
    # configs recorded before these keys existed: the flow they described
    for key, value in _BEFORE_KEYS.get(builder, {}).items():
        kwargs.setdefault(key, value)
    return BUILDERS[builder](**kwargs)


def _route(bijector, kwargs):
    """``bijector_kwargs`` that hand ``kwargs`` to every conditional bijector inside
    ``bijector`` (None if there is none). Conditional bijectors carry ``context_size``."""
    if getattr(bijector, "context_size", None) is not None:
        return dict(kwargs)
    # tfb.Invert of a non-composite bijector is a `_Invert`, not a `tfb.Invert`: go by `.bijector`.
    if isinstance(getattr(bijector, "bijector", None), tfb.Bijector):
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


__all__ = ["BUILDERS", "build", "context_kwargs", "iaf", "layers_of", "lu_piecewise_linear", "maf",
           "multiscale_realnvp", "nsf", "planar", "realnvp", "standard_normal"]
__dir__ = public_dir(__all__)
