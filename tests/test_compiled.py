"""CompiledDistribution: chunked, compiled log_prob/sample equal the distribution's own."""

import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows import CompiledDistribution, flows
from tfp_flows.flows import multiscale_realnvp

FLOWS = {
    "realnvp": lambda dtype: flows.realnvp(3, 3, [16], seed=0, dtype=dtype),
    "realnvp_batch_norm": lambda dtype: flows.realnvp(3, 2, [16], batch_norm=True, seed=0,
                                                      dtype=dtype),
    "planar": lambda dtype: flows.planar(3, 3, seed=0, dtype=dtype),
    "lu_piecewise_linear": lambda dtype: flows.lu_piecewise_linear(3, 2, seed=0, dtype=dtype),
    "multiscale": lambda dtype: multiscale_realnvp((4, 4, 1), num_scales=1,
                                                   couplings_per_scale=1, final_couplings=1,
                                                   hidden_layers=[8], seed=0, dtype=dtype),
}


def _trained_like(dist, seed=0):
    """Moves every parameter off its initial value (zero-initialised couplings are the identity,
    which would make the comparison vacuous); BatchNorm statistics too."""
    rng = np.random.default_rng(seed)
    for v in dist.variables:
        if "moving_variance" in v.name:
            v.assign(np.exp(0.3 * rng.normal(size=v.shape)))
        elif v.dtype.is_floating:
            v.assign(v + 0.2 * rng.normal(size=v.shape))
    return dist


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("jit", [True, False], ids=["xla", "graph"])
@pytest.mark.parametrize("name", list(FLOWS))
def test_log_prob_and_sample_match_the_distribution(name, jit, dtype):
    dist = FLOWS[name](dtype)
    d = int(dist.event_shape[0])
    with tfp_flows.training_mode(False):
        dist.log_prob(tf.zeros([1, d], dtype))
    _trained_like(dist)
    compiled = CompiledDistribution(dist, chunk_size=64, jit_compile=jit)
    x = np.random.default_rng(1).normal(size=[150, d]).astype(dtype.as_numpy_dtype)
    if name == "lu_piecewise_linear":
        x = 0.5 * x
    with tfp_flows.training_mode(False):
        expected = dist.log_prob(tf.constant(x)).numpy()
    assert np.all(np.isfinite(expected)) and np.ptp(expected) > 0.1
    rtol = 1e-4 if dtype == tf.float32 else 1e-10
    got = compiled.log_prob(x).numpy()  # 150 = 2 full chunks + 3 tail chunks of 8
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(compiled.log_prob(x.reshape(3, 50, d)).numpy(),
                               expected.reshape(3, 50), rtol=rtol, atol=rtol)
    assert compiled.log_prob(x[:0]).shape == (0,)

    seed = tf.constant([3, 4], tf.int32)
    samples = compiled.sample(150, seed=seed).numpy()  # 2 full chunks + 3 tail chunks of 8
    assert samples.shape == (150, d) and samples.dtype == dtype.as_numpy_dtype
    np.testing.assert_allclose(samples, _documented_samples(dist, 150, seed, 64), rtol=rtol,
                               atol=rtol)
    assert compiled._sample.experimental_get_tracing_count() == 1  # the compiled chunked path
    assert compiled.sample(0).shape == (0, d)


def _documented_samples(dist, n, seed, chunk_size):
    """The docstring's formula, eagerly: ``n // chunk_size`` chunks of ``chunk_size`` rows,
    then chunks of ``chunk_size // 8`` for the rest; chunk ``i`` is ``forward(base.sample(rows,
    seed=stateless_fold_in(seed, i)))``; the first ``n`` rows."""
    k, tail = n // chunk_size, max(1, chunk_size // 8)
    rows = [chunk_size] * k + [tail] * -(-(n - k * chunk_size) // tail)
    chunks = []
    with tfp_flows.training_mode(False):
        for i, r in enumerate(rows):
            z = dist.distribution.sample(
                r, seed=tf.random.experimental.stateless_fold_in(seed, i))
            chunks.append(dist.bijector.forward(z).numpy())
    return np.concatenate(chunks)[:n]


def test_sample_is_reproducible_under_a_seed():
    dist = _trained_like(flows.realnvp(2, 2, [8], seed=0))
    compiled = CompiledDistribution(dist, chunk_size=32)
    a = compiled.sample(100, seed=7).numpy()  # 3 full chunks, 1 tail chunk of 4
    np.testing.assert_array_equal(a, compiled.sample(100, seed=7))
    np.testing.assert_array_equal(a, compiled.sample(100, seed=[0, 7]))  # int s == [0, s]
    np.testing.assert_allclose(a, _documented_samples(dist, 100, tf.constant([0, 7]), 32),
                               rtol=1e-5, atol=1e-5)
    assert not np.any(np.isclose(a, compiled.sample(100, seed=8)))
    assert not np.any(np.isclose(a[:32], a[32:64]))  # chunks get their own seeds
    fresh = compiled.sample(100), compiled.sample(100)  # None: fresh randomness
    assert not np.any(np.isclose(*fresh))
    with pytest.raises(TypeError, match="`seed` must be None, an int or a stateless seed"):
        compiled.sample(10, seed=1.5)


@pytest.mark.parametrize("chunk_size", [64, 32768])
def test_sample_has_the_distributions_law(chunk_size):
    # Two-sample checks of 20k compiled samples against 20k of the distribution's own sample
    # (fixed seeds, so the outcome is deterministic): means and covariance within 0.05 of
    # the scale (~5 standard errors), and each coordinate's Kolmogorov-Smirnov distance
    # below 0.02 (its 0.1 % critical value for 20k vs 20k is 0.0195).
    dist = _trained_like(flows.realnvp(2, 4, [16], seed=0), seed=3)
    n = 20_000
    ours = CompiledDistribution(dist, chunk_size=chunk_size).sample(n, seed=11).numpy()
    with tfp_flows.training_mode(False):
        theirs = dist.sample(n, seed=tf.constant([5, 6])).numpy()
    scale = theirs.std(0)
    assert np.all(scale > 0.3) and abs(np.corrcoef(theirs.T)[0, 1]) > 0.1  # not a plain normal
    np.testing.assert_array_less(np.abs(ours.mean(0) - theirs.mean(0)), 0.05 * scale)
    np.testing.assert_array_less(np.abs(np.cov(ours.T) - np.cov(theirs.T)),
                                 0.05 * np.outer(scale, scale))
    for j in range(2):
        assert _ks_distance(ours[:, j], theirs[:, j]) < 0.02


def _ks_distance(a, b):
    """Two-sample Kolmogorov-Smirnov statistic ``max |F_a - F_b|``."""
    grid = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(np.sort(a), grid, side="right") / len(a)
                         - np.searchsorted(np.sort(b), grid, side="right") / len(b)))


def test_instances_do_not_count_as_retracing(caplog):
    # TF's frequent-retracing warning is process-global (whether it fires depends on earlier
    # tests), so the test checks the flag that silences it on every function, then the log.
    dists = [flows.realnvp(2, 1, [8], seed=i) for i in range(6)]
    compiled = [CompiledDistribution(d, chunk_size=16) for d in dists]
    fns = [getattr(c, name) for c in compiled
           for name in ("_log_prob", "_log_prob_chunk", "_log_prob_tail", "_sample",
                        "_forward_chunk", "_forward_tail")]
    assert all(fn._omit_frequent_tracing_warning is True for fn in fns)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for c in compiled:
            c.log_prob(np.zeros([3, 2], np.float32))
            c.sample(3, seed=0)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_bad_input_is_refused():
    dist = flows.realnvp(2, 1, [8], seed=0)
    with pytest.raises(ValueError, match="`chunk_size` must be a positive integer, got 0"):
        CompiledDistribution(dist, chunk_size=0)
    compiled = CompiledDistribution(dist)
    with pytest.raises(ValueError, match="expected event size 2.*got 3"):
        compiled.log_prob(np.zeros([4, 3], np.float32))
    with pytest.raises(TypeError, match="float64 does not match.*float32"):
        compiled.log_prob(np.zeros([4, 2], np.float64))
    with pytest.raises(ValueError, match="`n` must be a non-negative integer, got -1"):
        compiled.sample(-1)
    with pytest.raises(ValueError, match="event shape \\[D\\]"):
        CompiledDistribution(tfp_flows.flows.standard_normal(2).distribution)


@pytest.mark.parametrize("jit", [True, False], ids=["xla", "graph"])
def test_one_compiled_function_serves_every_number_of_points(jit):
    dist = _trained_like(flows.realnvp(2, 2, [8], seed=0))
    compiled = CompiledDistribution(dist, chunk_size=32, jit_compile=jit)
    rng = np.random.default_rng(0)
    for n in (1, 31, 32, 33, 100, 7, 64):  # tail chunks only, full chunks only, both
        x = rng.normal(size=[n, 2]).astype("float32")
        with tfp_flows.training_mode(False):
            expected = dist.log_prob(tf.constant(x)).numpy()
        np.testing.assert_allclose(compiled.log_prob(x).numpy(), expected, rtol=1e-4,
                                   atol=1e-4)
        assert compiled.sample(n, seed=n).shape == (n, 2)
    for fn in (compiled._log_prob, compiled._log_prob_chunk, compiled._log_prob_tail,
               compiled._sample, compiled._forward_chunk, compiled._forward_tail):
        assert fn.experimental_get_tracing_count() == 1, fn
