"""``CompiledDistribution``: ``log_prob`` and ``sample`` of a flow on many points, fast.

Both walk the points in chunks (a graph-mode loop) through compiled functions of one chunk
each: ``N // chunk_size`` chunks of ``chunk_size`` points, then the rest in chunks of
``tail_size = max(1, chunk_size // 8)`` points, the last one padded. So two XLA programs serve
every number of points (a new ``N`` neither retraces nor recompiles), at most
``tail_size - 1`` padding points are computed, and peak memory is bounded by the chunk size,
not ``N``. Chunk sizes, measured on 2 cores for an 8-coupling 2×64 RealNVP (98304 points,
``benchmarks/README.md``): with the machine to itself, chunks of 4096 ran ``log_prob`` at 0.72×
one whole-array XLA call and 32768 at 1.02× (each op of a small chunk is split over both
cores, and that costs per op); under load (≈ 7 on 2 cores) every chunk size beat the whole
call (1.6–2.4×), 32768 included.

``sample`` draws each chunk's base samples inside the same loop, from a per-chunk stateless
seed, so no ``[N, D]`` base array is made. The draw runs in the graph, not in the XLA
program: on CPU, XLA's stateless normal with TF's default algorithm ran ~20x slower than TF's
kernel (200k normals: 175 vs 8 ms, loaded 2-core machine).
"""

import numbers

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _checks, _compat
from tfp_flows._mode import training_mode
from tfp_flows._namespace import public_dir


def tail_size(chunk_size):
    """Points per chunk for the rest after the full chunks: ``max(1, chunk_size // 8)``."""
    return max(1, chunk_size // 8)


def _split(n, chunk_size):
    """``(k, t)``: ``k = n // chunk_size`` full chunks, then ``t`` chunks of
    ``tail_size(chunk_size)`` covering the other ``n - k·chunk_size`` points."""
    tail = tail_size(chunk_size)
    k = n // chunk_size
    return k, (n - k * chunk_size + tail - 1) // tail


def _map(fn, chunks, rows, dtype, event_shape=()):
    """``fn`` on each ``chunks[i]`` (``[rows, ...] -> [rows, *event_shape]``), one at a time;
    the results concatenated: ``[len(chunks) · rows, *event_shape]``."""
    spec = tf.TensorSpec([rows, *event_shape], dtype)
    out = tf.map_fn(fn, chunks, parallel_iterations=1, fn_output_signature=spec)
    return tf.reshape(out, [-1, *event_shape])


def _chunked(full_fn, tail_fn, x, chunk_size, dtype):
    """``[N, D] -> [N]``: ``full_fn`` on ``N // chunk_size`` chunks of ``chunk_size`` rows,
    ``tail_fn`` on the rest in chunks of ``tail_size(chunk_size)`` rows, the last one padded
    with copies of the first row (a valid input for any flow; the padding's results are
    dropped), so each compiled function sees one shape and is compiled once for every ``N``.
    """
    tail = tail_size(chunk_size)
    n, d = tf.shape(x)[0], x.shape[-1]
    k, t = _split(n, chunk_size)
    head = tf.reshape(x[:k * chunk_size], [k, chunk_size, d])
    rest = x[k * chunk_size:]
    pad = tf.repeat(x[:1], t * tail - tf.shape(rest)[0], axis=0)
    tails = tf.reshape(tf.concat([rest, pad], 0), [t, tail, d])
    return tf.concat([_map(full_fn, head, chunk_size, dtype),
                      _map(tail_fn, tails, tail, dtype)], 0)[:n]


class CompiledDistribution:
    """Compiled, chunked ``log_prob`` and ``sample`` of a distribution over vectors ``[D]``.

    Args:
      distribution: a distribution with event shape ``[D]`` (any tfp_flows flow). It is
        evaluated in inference mode (``BatchNorm`` uses its moving statistics).
      chunk_size: points per full chunk, a positive integer; the points after the last full
        chunk go in chunks of ``max(1, chunk_size // 8)``.
      jit_compile: compile with XLA (the fast path on CPU); False: graph mode.

    ``log_prob(x)``: ``x [..., D] -> [...]``, equal to ``distribution.log_prob(x)`` up to
    floating-point rounding. ``sample(n, seed)``: ``[n, D]`` (``seed``: an int ``s``, taken as
    the stateless seed ``[0, s]``, a stateless ``[2]`` integer seed, or None: fresh
    randomness). The ``n`` rows are ``k = n // chunk_size`` full chunks, then ``t`` tail chunks
    of ``tail = max(1, chunk_size // 8)`` rows (the last one cut); chunk ``i`` (in that order)
    is ``bijector.forward(base.sample(rows_i, seed=tf.random.experimental.stateless_fold_in(
    seed, i)))``. So a seed reproduces its samples for a given ``n`` and ``chunk_size``; the
    values depend on both (their distribution does not) and differ from
    ``distribution.sample(n, seed)``'s (a distribution without ``.distribution`` and
    ``.bijector`` is sampled by its own eager ``sample``). Conditioning kwargs are not
    supported.
    """

    def __init__(self, distribution: tfp.distributions.Distribution, chunk_size: int = 32768,
                 jit_compile: bool = True):
        self.event_size = _checks.vector_event_size(distribution, "CompiledDistribution")
        self.distribution = distribution
        self.dtype = tf.as_dtype(distribution.dtype)
        self.chunk_size = _checks.positive_int(chunk_size, "chunk_size")
        self.jit_compile = bool(jit_compile)
        sizes = (self.chunk_size, tail_size(self.chunk_size))
        # Per direction one compiled function of a full chunk and one of a tail chunk, and a
        # graph-mode loop over the chunks around them, traced once for every N
        # (input_signature). Every instance's functions wrap the same code, so TF's
        # frequent-retracing detector would count one trace per instance as retracing:
        # one_trace_per_object.
        self._log_prob_chunk, self._log_prob_tail = (
            self._compiled(distribution.log_prob, rows) for rows in sizes)
        self._log_prob = _compat.one_trace_per_object(tf.function(
            lambda x: _chunked(self._log_prob_chunk, self._log_prob_tail, x, self.chunk_size,
                               self.dtype),
            input_signature=[tf.TensorSpec([None, self.event_size], self.dtype)]))
        # Duck-typed: tfd.TransformedDistribution(...) returns a private non-subclass type.
        self._base = getattr(distribution, "distribution", None)
        bijector = getattr(distribution, "bijector", None)
        self._sample = None
        self._released = set()
        if self._base is not None and bijector is not None:
            self._forward_chunk, self._forward_tail = (
                self._compiled(bijector.forward, rows) for rows in sizes)
            self._sample = _compat.one_trace_per_object(tf.function(
                self._sample_chunks, input_signature=[tf.TensorSpec([], tf.int32),
                                                      tf.TensorSpec([2], tf.int32)]))

    def _compiled(self, fn, rows):
        """``fn`` in inference mode, compiled for ``[rows, D]`` inputs."""
        return _compat.one_trace_per_object(tf.function(
            self._inference(fn), jit_compile=self.jit_compile,
            input_signature=[tf.TensorSpec([rows, self.event_size], self.dtype)]))

    def _sample_chunks(self, n, seed):
        """``[n, D]``: ``k`` full chunks then ``t`` tail chunks (``_split``); chunk ``i`` (in
        that order) is the compiled forward map of base samples drawn in the graph with the
        seed ``stateless_fold_in(seed, i)``."""
        k, t = _split(n, self.chunk_size)

        def chunks(forward, rows, first, count):
            def chunk(i):
                with training_mode(False):
                    z = self._base.sample(
                        rows, seed=tf.random.experimental.stateless_fold_in(seed, i))
                return forward(z)
            return _map(chunk, tf.range(first, first + count), rows, self.dtype,
                        [self.event_size])

        return tf.concat([chunks(self._forward_chunk, self.chunk_size, 0, k),
                          chunks(self._forward_tail, tail_size(self.chunk_size), k, t)],
                         0)[:n]

    def _release_trace(self, method):
        """After ``method``'s one trace, lets TFP's bijector cache forget its graph
        (``_compat.release_traced_bijector_cache``), which then goes with ``self``."""
        if method not in self._released:
            self._released.add(method)
            _compat.release_traced_bijector_cache()

    @staticmethod
    def _inference(fn):
        def in_inference_mode(x):
            with training_mode(False):
                return fn(x)
        return in_inference_mode

    def log_prob(self, x) -> tf.Tensor:
        """``log p(x)``: ``[..., D] -> [...]``."""
        x = tf.convert_to_tensor(x)
        if x.dtype != self.dtype:
            raise TypeError(f"CompiledDistribution: input dtype {x.dtype.name} does not match "
                            f"the distribution's {self.dtype.name}; cast it first.")
        _checks.event_shape(x, self.event_size, "CompiledDistribution")
        batch_shape = tf.shape(x)[:-1]
        if x.shape.num_elements() == 0:
            return tf.zeros(batch_shape, self.dtype)
        flat = self._log_prob(tf.reshape(x, [-1, self.event_size]))
        self._release_trace("log_prob")
        return tf.reshape(flat, batch_shape)

    def sample(self, n: int, seed: int | tf.Tensor | None = None) -> tf.Tensor:
        """``n`` samples ``[n, D]``."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"`n` must be a non-negative integer, got {n!r}.")
        seed = _checks.stateless_seed(seed)
        if self._sample is None:
            with training_mode(False):
                return self.distribution.sample(int(n), seed=seed)
        if int(n) == 0:
            return tf.zeros([0, self.event_size], self.dtype)
        seed = tfp.random.sanitize_seed(seed)  # None: a fresh stateless seed
        samples = self._sample(tf.constant(int(n), tf.int32), seed)
        self._release_trace("sample")
        return samples


__all__ = ["CompiledDistribution"]
__dir__ = public_dir(__all__)
