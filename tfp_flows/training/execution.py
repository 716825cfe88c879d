"""Exact step counts and a progress bar that counts what ran, with ``steps_per_execution = k > 1``.

Keras 3.15's TensorFlow trainer runs ``fit`` in *executions*: each call of the train function
runs a ``tf.while_loop`` of ``k`` steps that stops early only when the data iterator runs out,
and the epoch loop starts executions at ``0, k, 2k, ... < steps_per_epoch``. Where an epoch has
no natural end (``steps_per_epoch`` over repeated data, the reverse-KL sample stream) the last
execution runs all ``k`` steps (``steps_per_epoch=100`` runs 128 steps with ``k = 32``), and the
progress bar counts ``begin + k`` per execution (``128/118``, a negative ETA).

Here:

* training: ``multi_step_function`` runs ``n = min(k, steps_per_epoch - begin)`` steps, with
  ``n`` a tensor argument (one trace serves every ``n``): the last execution of an epoch is
  short. ``StepPlan`` (a callback) sets ``n`` at ``on_train_batch_begin(begin)``;
* evaluation and prediction start a fresh iterator per call, so ``FlowModel`` applies their
  ``steps`` as ``dataset.take(steps)`` and Keras's own loop ends where the data end;
* ``Progress`` (a ``ProgbarLogger``) shows the number of steps that ran and hides the NaN guard's
  counters while they are 0 (they stay in the logs and ``history``);
* ``LastStepIndex`` hands a user's batch callbacks the index of the last step that ran;
* ``ArrayBatches``: ``fit`` on arrays slices and gathers each step's batch inside the
  execution's XLA computation instead of reading Keras's per-epoch ``tf.data`` pipeline.
"""

import keras
import tensorflow as tf

from tfp_flows.training import distributed
from tfp_flows.training.guards import NaNGuard


class Executions:
    """What the next training execution may run (``size``) and where the last one ended."""

    def __init__(self):
        self.size = None   # steps the next execution may run; None: steps_per_execution
        self.begin = 0     # index of its first step in the epoch
        self.end = None    # index of the last step that ran in the epoch (None: none yet)
        self.arrays = None  # ArrayBatches while fit trains arrays inside the compiled steps


class ArrayBatches:
    """Array data that ``fit`` trains batch by batch inside the compiled steps.

    Keras's array path makes a ``tf.data`` pipeline per epoch (a shuffled index permutation,
    a gather per batch) and the execution reads its batches from it one by one. Here the
    arrays stay where they are: once per epoch an order of the rows is drawn (Keras's:
    ``tf.random.shuffle(tf.range(N))``, or ``range(N)`` with ``shuffle=False``) and each step
    of an execution slices its ``batch_size`` indices out of the order and gathers its rows
    inside the execution's XLA computation (``multi_step_function``). Batch ``j`` of an
    epoch holds the rows ``order[j·B : (j+1)·B]``: ``ceil(N / B)`` batches, the last one
    short when ``B`` does not divide ``N``, in Keras's order. Keras's own epoch loop still
    counts the steps, calls the callbacks and validates: it is handed ``stand_in()``, a
    dataset of ``ceil(N / B)`` elements that is never read. The rows keep the dtype
    ``FlowModel`` checked them to (the flow's), where Keras's array path casts float64
    arrays to float32 (``floatx``) first.

    Args:
      data: the batch structure of the whole data, ``(x,)``, ``(x, c)`` or ``(x, c, w)``
        (arrays or tensors of ``N`` rows).
      batch_size: ``B``.
      shuffle: draw a new order every epoch (True) or keep ``range(N)`` (False).
    """

    def __init__(self, data, batch_size, shuffle):
        self.data = tuple(tf.convert_to_tensor(t) for t in data)
        self.rows = int(self.data[0].shape[0])
        self.batch_size = int(batch_size)
        self.num_batches = -(-self.rows // self.batch_size)
        self.shuffle = bool(shuffle)
        self.order = None

    def stand_in(self):
        """What Keras iterates instead: ``num_batches`` elements per epoch, never read."""
        return tf.data.Dataset.range(self.num_batches)

    def new_epoch(self):
        """Draws the epoch's order of the rows (int32 ``[N]``)."""
        order = tf.range(self.rows, dtype=tf.int32)
        self.order = tf.random.shuffle(order) if self.shuffle else order

    def spec(self):
        """The ``TensorSpec``s of a batch."""
        return tuple(tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in self.data)

    def runs(self, begin, size):
        """``[(first, count, rows)]``: the batches ``begin .. begin + size − 1`` (cut at the
        epoch's end) as runs of equal batch sizes (the short last batch is a run of its own)."""
        end = min(begin + size, self.num_batches)
        short = self.rows - (self.num_batches - 1) * self.batch_size
        full_end = self.num_batches - (short < self.batch_size)
        runs = []
        if begin < min(end, full_end):
            runs.append((begin, min(end, full_end) - begin, self.batch_size))
        if end > full_end:
            runs.append((full_end, 1, short))
        return runs


class StepPlan(keras.callbacks.Callback):
    """Sets ``Executions.size`` to ``min(k, steps_per_epoch - begin)`` before each execution."""

    def __init__(self, executions):
        super().__init__()
        self.executions = executions

    def on_train_batch_begin(self, batch, logs=None):
        k = self.model.steps_per_execution
        steps = self.params.get("steps")
        self.executions.begin = batch
        self.executions.size = k if not steps else max(1, min(k, steps - batch))

    def on_epoch_begin(self, epoch, logs=None):
        self.executions.end = None

    def on_train_end(self, logs=None):
        self.executions.size = None


class LastStepIndex(keras.callbacks.Callback):
    """A user's callback, called with the index of the last step that ran.

    Keras calls batch hooks once per execution (``on_train_batch_begin(begin)``,
    ``on_train_batch_end(end)``) and passes ``end = begin + k − 1`` even when the last
    execution of an epoch is short; through this wrapper ``on_train_batch_end`` gets
    ``Executions.end``, the last index a run with ``steps_per_execution=1`` passes too. Every
    other hook is forwarded unchanged.
    """

    def __init__(self, callback, executions):
        super().__init__()
        self.callback = callback
        self.executions = executions

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def on_train_batch_end(self, batch, logs=None):
        end = self.executions.end
        self.callback.on_train_batch_end(batch if end is None else end, logs)


def _forward(name):
    def hook(self, *args, **kwargs):
        return getattr(self.callback, name)(*args, **kwargs)
    hook.__name__ = name
    return hook


for _name in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_train_batch_begin", "on_test_begin", "on_test_end", "on_test_batch_begin",
              "on_test_batch_end", "on_predict_begin", "on_predict_end",
              "on_predict_batch_begin", "on_predict_batch_end"):
    setattr(LastStepIndex, _name, _forward(_name))


def with_last_step_index(callbacks, executions):
    """``callbacks`` with each one that has its own ``on_train_batch_end`` / ``on_batch_end``
    wrapped in ``LastStepIndex`` (Keras's ``History`` and ``ProgbarLogger`` are left as they
    are: Keras looks for them by type)."""
    def needs(c):
        return (not isinstance(c, keras.callbacks.History | keras.callbacks.ProgbarLogger)
                and (type(c).on_train_batch_end is not keras.callbacks.Callback.on_train_batch_end
                     or type(c).on_batch_end is not keras.callbacks.Callback.on_batch_end))
    return [LastStepIndex(c, executions) if needs(c) else c for c in callbacks]


def _to_none(data):
    """Empty ``tf.experimental.Optional`` entries (Keras's encoding of ``None``) -> ``None``."""
    return tf.nest.map_structure(
        lambda v: None if isinstance(v, tf.experimental.Optional) else v, data)


def multi_step_function(model, step_function, fallback, executions, fuse=True):
    """A train function running ``executions.size`` steps of ``step_function`` per call.

    Args:
      model: the ``keras.Model`` (its ``distribute_strategy``, ``jit_compile`` and
        ``steps_per_execution`` are read).
      step_function: ``data -> logs`` (the model's ``train_step``).
      fallback: Keras's train function, used for inputs that are not ``tf.data`` iterators
        (``train_on_batch``).
      executions: the ``Executions`` record shared with ``StepPlan`` and ``Progress``.
      fuse: False to run each step as its own XLA call even where the steps could be fused.

    Returns:
      ``iterator -> logs`` of the last step that ran; raises ``StopIteration`` if the iterator
      was already exhausted (as Keras's does).

    With ``jit_compile``, ``fuse`` and no strategy, the steps of an execution run as one XLA
    computation (``fused_steps``); otherwise each step is one call in a graph loop.
    """
    strategy = model.distribute_strategy
    distributed_ = distributed.is_distributed(strategy)

    # Under a strategy XLA compiles each replica's gradients instead (training/distributed.py).
    @tf.function(reduce_retracing=True, jit_compile=model.jit_compile and not distributed_)
    def one_step(data):
        logs = strategy.run(lambda d: step_function(_to_none(d)), args=(data,))
        return tf.nest.map_structure(lambda v: distributed.mean_over_replicas(strategy, v), logs)

    @tf.function(reduce_retracing=True)
    def run(iterator, num_steps, initial_logs):
        def cond(i, inputs, logs):
            return (i < num_steps) & inputs.has_value()

        def body(i, inputs, logs):
            logs = one_step(inputs.get_value())
            # Pull the next batch only if it will be used: a pulled batch is consumed.
            inputs = tf.cond(i + 1 < num_steps, iterator.get_next_as_optional, lambda: inputs)
            return i + 1, inputs, logs

        ran, _, logs = tf.while_loop(
            cond, body, [tf.constant(0), iterator.get_next_as_optional(), initial_logs])
        return ran, logs

    initial = {}

    @tf.function(jit_compile=True, reduce_retracing=True)
    def train_arrays(data, order, first, count, batch_size, rows, initial_logs):
        """``count`` steps on the batches ``first, first + 1, ...`` (of ``batch_size`` rows
        in the order; these have ``rows`` rows each). All four are tensors: one trace serves
        every batch size (XLA compiles once per value of ``rows``, a compile-time constant)."""
        def body(i, logs):
            indices = tf.slice(order, [(first + i) * batch_size], [rows])
            return i + 1, initial["array_step"](tuple(tf.gather(t, indices) for t in data))

        _, logs = tf.while_loop(lambda i, logs: i < count, body, [tf.constant(0), initial_logs])
        return logs

    def run_arrays(arrays):
        """The execution's steps on ``arrays`` (``ArrayBatches``); ``(ran, logs)``."""
        if "array_logs" not in initial:  # the step's one trace, for every batch size
            step = initial["array_step"] = tf.function(step_function).get_concrete_function(
                arrays.spec())
            initial["array_logs"] = tf.nest.map_structure(
                lambda t: tf.zeros(t.shape, t.dtype), step.structured_outputs)
        if executions.begin == 0:
            arrays.new_epoch()
        logs, ran = initial["array_logs"], 0
        for first, count, rows in arrays.runs(executions.begin,
                                              executions.size or model.steps_per_execution):
            logs = train_arrays(arrays.data, arrays.order, tf.constant(first),
                                tf.constant(count), tf.constant(arrays.batch_size),
                                tf.constant(rows), logs)
            ran += count
        return ran, logs

    def function(iterator):
        if executions.arrays is not None:
            ran, logs = run_arrays(executions.arrays)
            if ran == 0:
                raise StopIteration
            executions.end = executions.begin + ran - 1
            return logs
        if not isinstance(iterator, tf.data.Iterator | tf.distribute.DistributedIterator):
            return fallback(iterator)
        if "logs" not in initial:  # the logs' structure, from the step's one trace
            spec = iterator.element_spec
            if (fuse and model.jit_compile and not distributed_
                    and isinstance(iterator, tf.data.Iterator) and _dense(spec)):
                # Tracing a flow's gradient can take tens of seconds (spline flows): the
                # fused loop calls this trace instead of tracing the step a second time.
                step = tf.function(lambda d: step_function(_to_none(d))).get_concrete_function(
                    spec)
                initial["run"] = fused_steps(step, spec, model.steps_per_execution)
            else:
                step = one_step.get_concrete_function(spec)  # `run` calls this trace
                initial["run"] = run
            initial["logs"] = tf.nest.map_structure(lambda t: tf.zeros(t.shape, t.dtype),
                                                    step.structured_outputs)
        size = executions.size or model.steps_per_execution
        ran, logs = initial["run"](iterator, tf.constant(size), initial["logs"])
        ran = int(ran)
        if ran == 0:
            raise StopIteration
        executions.end = executions.begin + ran - 1
        return logs

    function.array_steps = train_arrays  # for tests: its traces
    return function


def _dense(spec):
    """True iff every entry of a batch is a dense tensor (or an empty ``Optional``)."""
    return all(isinstance(s, tf.TensorSpec | tf.OptionalSpec) for s in tf.nest.flatten(spec))


def fused_steps(step_function, element_spec, capacity):
    """``run(iterator, n, initial_logs) -> (ran, logs)``: up to ``n <= capacity`` steps of
    ``step_function``, as few XLA computations as the batches allow (one when they agree).

    ``step_function`` takes a batch structured as ``element_spec`` (empty
    ``tf.experimental.Optional``s where Keras encodes None); a ``tf.function``'s concrete
    function of that spec is called, not traced again, in the loop.

    The batches are pulled first, in order (a graph loop; a pulled batch is always used): a
    run of batches whose shapes agree with its first one is stacked into ``[capacity, B, ...]``
    tensors and trained by one ``jit_compile``'d ``tf.while_loop`` over its length, so the
    steps pay no per-step dispatch, iterator or host round trip. A batch of another shape
    (the short last batch of a dataset) starts the next run. The steps and their order are
    those of the per-step loop.
    """
    flat_spec = tf.nest.flatten(element_spec)
    dense = [i for i, s in enumerate(flat_spec) if isinstance(s, tf.TensorSpec)]

    def tensors(data):
        flat = tf.nest.flatten(data)
        return [flat[i] for i in dense]

    def rebuild(values):
        flat = [tf.experimental.Optional.empty(s.element_spec)
                if isinstance(s, tf.OptionalSpec) else None for s in flat_spec]
        for i, v in zip(dense, values):
            flat[i] = v
        return tf.nest.pack_sequence_as(element_spec, flat)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def train(stacked, count, initial_logs):
        def body(i, logs):
            return i + 1, step_function(rebuild([t[i] for t in stacked]))

        _, logs = tf.while_loop(lambda i, logs: i < count, body, [tf.constant(0), initial_logs])
        return logs

    def same_shapes(a, b):
        return tf.reduce_all([tf.reduce_all(tf.equal(tf.shape(x), tf.shape(y)))
                              for x, y in zip(a, b)])

    @tf.function(reduce_retracing=True)
    def run(iterator, num_steps, initial_logs):
        def gather(first, budget):
            """The batches of one run (from ``first``) and the next pulled batch."""
            arrays = [tf.TensorArray(t.dtype, size=capacity, element_shape=t.shape)
                      .write(0, t) for t in first]

            def cond(j, arrays, pending, agrees):
                return agrees & (j < budget) & pending.has_value()

            def body(j, arrays, pending, agrees):
                batch = tensors(pending.get_value())
                agrees = same_shapes(batch, first)
                arrays = [tf.cond(agrees, lambda a=a, t=t: a.write(j, t), lambda a=a: a)
                          for a, t in zip(arrays, batch)]
                j = j + tf.cast(agrees, tf.int32)
                pending = tf.cond(agrees & (j < budget), iterator.get_next_as_optional,
                                  lambda: pending)
                return j, arrays, pending, agrees

            pending = tf.cond(budget > 1, iterator.get_next_as_optional,
                              lambda: tf.experimental.Optional.empty(element_spec))
            count, arrays, pending, agrees = tf.while_loop(
                cond, body, [tf.constant(1), arrays, pending, tf.constant(True)])
            # Stop pulling once the budget is used: the last pulled batch then belongs to
            # the next run only if it disagreed (it was not written).
            return [a.stack() for a in arrays], count, pending, agrees

        def cond(ran, pending, logs):
            return (ran < num_steps) & pending.has_value()

        def body(ran, pending, logs):
            stacked, count, pending, agrees = gather(tensors(pending.get_value()),
                                                     num_steps - ran)
            logs = train(stacked, count, logs)
            if_used = tf.experimental.Optional.empty(element_spec)
            pending = tf.cond(agrees, lambda: if_used, lambda: pending)
            return ran + count, pending, logs

        ran, _, logs = tf.while_loop(
            cond, body, [tf.constant(0), iterator.get_next_as_optional(), initial_logs])
        return ran, logs

    return run


class Progress(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, counting the steps that ran.

    Training: the bar shows ``Executions.end + 1``; evaluation and prediction (whose last
    execution ends with the data): at most the known number of steps. The NaN guard's counters
    are shown only once one of them is non-zero, evaluation's ``skipped_batches`` only when
    non-zero, and a ``kl`` equal to ``loss`` is not repeated.
    """

    def __init__(self, executions):
        super().__init__()
        self.executions = executions

    @staticmethod
    def _shown(logs):
        if not logs:
            return logs
        acted = any(float(logs.get(k, 0)) != 0 for k in NaNGuard.LOG_KEYS)
        return {k: v for k, v in logs.items()
                if (acted or k not in NaNGuard.LOG_KEYS)
                and not (k.endswith("skipped_batches") and float(v) == 0)
                and not (k == "kl" and "loss" in logs and float(v) == float(logs["loss"]))}

    def _ran(self, batch):
        return min(batch, self.target - 1) if self.target else batch  # target: the steps

    def on_train_batch_end(self, batch, logs=None):
        end = self.executions.end
        super().on_train_batch_end(self._ran(batch if end is None else end), self._shown(logs))

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(self._ran(batch), self._shown(logs))

    def on_predict_batch_end(self, batch, logs=None):
        super().on_predict_batch_end(self._ran(batch), logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self._shown(logs))

    def on_test_end(self, logs=None):
        super().on_test_end(self._shown(logs))
