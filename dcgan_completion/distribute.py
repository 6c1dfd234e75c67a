"""Scaling past one device: tf.distribute strategies, mixed precision, loss scaling.

    strategy = distribute.make_strategy("mirrored")     # before TensorFlow touches a device
    with strategy.scope():
        model = DCGAN(..., compute_dtype=distribute.compute_dtype("bfloat16"))

* `default`: tf.distribute's default strategy, one device: the code paths of a plain run.
* `mirrored`: MirroredStrategy over every GPU of this machine (or every logical CPU that
  DCGAN_LOGICAL_CPUS made, a testing aid), one replica each.
* `multiworker`: MultiWorkerMirroredStrategy over the machines TF_CONFIG names.

DCGAN_LOGICAL_CPUS=N splits the CPU into N logical devices at start-up, so that the
mirrored paths can be run (and tested) on a machine without GPUs.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import tensorflow as tf

import utils

STRATEGIES = ("default", "mirrored", "multiworker")
PRECISIONS = ("off", "float16", "bfloat16")
LOGICAL_CPUS_ENV = "DCGAN_LOGICAL_CPUS"


def split_cpu() -> int:
    """Split the CPU into $DCGAN_LOGICAL_CPUS logical devices (once, before TensorFlow initialises them)."""
    text = os.environ.get(LOGICAL_CPUS_ENV, "").strip()
    if not text:
        return 1
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise utils.UserError(f"{LOGICAL_CPUS_ENV}={text}: must be a positive integer (the number of logical CPU "
                              f"devices), or unset")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if count > 1 and not current:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    return count


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The strategy a --strategy flag names; call it before any other TensorFlow work."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    logical_cpus = split_cpu()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devices or logical_cpus > 1:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if not os.environ.get("TF_CONFIG"):
        raise ValueError("--strategy multiworker needs TF_CONFIG (the cluster and this worker's task)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def start(strategy_name: str, xla: bool, mixed_precision: str) -> tf.distribute.Strategy:
    """A script's start-up, before TensorFlow initialises its devices: the strategy --strategy names,
    refused in one line when it cannot run (as with --xla on CPU replicas) or when --mixed_precision
    names no precision. The precision itself is chosen once the model is known (auto_precision)."""
    if mixed_precision != "auto" and mixed_precision not in PRECISIONS:
        raise utils.UserError(f"--mixed_precision {mixed_precision}: choose from auto, {', '.join(PRECISIONS)}")
    try:
        strategy = make_strategy(strategy_name)
    except ValueError as error:
        raise utils.UserError(str(error)) from None
    problem = xla_problem(strategy) if xla else None
    if problem:
        raise utils.UserError(problem)
    return strategy


def per_replica_batch(strategy, global_batch: int) -> int:
    """The images each replica takes of a global batch; UserError when they do not divide."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise utils.UserError(f"--batch_size {global_batch} (the global batch) does not divide over "
                              f"{replicas} replicas")
    return global_batch // replicas


def is_default(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether strategy is None or tf.distribute's default (one device, the plain code paths)."""
    if strategy is None:
        return True
    with strategy.scope():
        return not tf.distribute.has_strategy()


def xla_problem(strategy) -> str | None:
    """Why --xla cannot run under this strategy (None: it can).

    XLA compiles each replica's step, collectives included, for GPU replicas only; on
    logical CPUs it cannot place one computation per device.
    """
    if is_default(strategy) or all("GPU" in device.upper() for device in strategy.extended.worker_devices):
        return None
    return "--xla with a --strategy other than default needs GPU replicas (TensorFlow's XLA runs one " \
           "computation per GPU, not per logical CPU)"


def task(strategy) -> tuple[str | None, int]:
    """(task type, task id) of this process in a multi-worker cluster; (None, 0) otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy) -> bool:
    """The process that writes files: the chief task, else worker 0, else the only process."""
    task_type, task_id = task(strategy)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_count(strategy) -> int:
    task_type, _ = task(strategy)
    if task_type is None:
        return 1
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def save_everywhere(model, checkpoint_dir, chief: bool) -> str:
    """Every worker saves (saving may run collective ops); the others into a temporary folder they delete."""
    if chief:
        return model.save(checkpoint_dir)
    scratch = tempfile.mkdtemp(prefix="dcgan-worker-checkpoint-")
    try:
        return model.save(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def broadcast_from_first_replica(strategy, variables) -> None:
    """Give every replica (on every worker) the first replica's values of `variables`.

    A sum all-reduce to which only replica 0 contributes: after a restore, workers that
    could not read the checkpoint still start from the chief's state.
    """
    groups: dict = {}
    for var in variables:
        groups.setdefault(var.dtype, []).append(var)

    def replica_fn():
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        for group in groups.values():
            values = [tf.where(first, tf.identity(v), tf.zeros_like(v)) for v in group]
            summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)
            for var, value in zip(group, summed):
                var.assign(value)  # replica context, no aggregation: this replica's copy

    tf.function(lambda: strategy.run(replica_fn), autograph=False)()


def barrier(strategy) -> None:
    """Wait until every replica (every worker) gets here: a one-number all-reduce."""
    ones = tf.function(lambda: strategy.run(lambda: tf.constant(1.0)), autograph=False)()
    strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None).numpy()


# ----------------------------------------------------------------------------
# Mixed precision
# ----------------------------------------------------------------------------

def choose_precision(asked: str) -> tuple[str, str]:
    """A forced --mixed_precision (off, float16, bfloat16) -> (it, "as asked"); auto is measured by
    auto_precision, not decided here."""
    if asked not in PRECISIONS:
        raise ValueError(f"unknown precision {asked!r}; choose from {', '.join(PRECISIONS)} "
                         f"(auto is auto_precision's)")
    return asked, "as asked"


def precision_line(chosen: str, why: str) -> str:
    """The start-up line that says which precision runs and why."""
    name = "float32" if chosen == "off" else f"{chosen} (variables float32)"
    return f"precision: {name} ({why})"


def compute_dtype(name: str | None) -> tf.DType | None:
    """--mixed_precision off|float16|bfloat16 -> the layers' compute dtype (None: float32 graphs as before)."""
    if name in (None, "off", "float32"):
        return None
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose from {', '.join(PRECISIONS)}")
    return tf.as_dtype(name)


class LossScale(tf.Module):
    """Dynamic loss scaling for float16 training, for our own Adam.

    The loss's gradient is computed times `scale`; the gradients are divided by it again.
    A step whose gradients are not all finite is skipped and halves the scale; 2000
    good steps in a row double it (the usual schedule, as Keras's LossScaleOptimizer).
    Every replica holds the same all-reduced gradients, so takes the same decision and
    updates its own copy of `scale` alike.
    """

    def __init__(self, initial: float = 2.0 ** 15, growth_interval: int = 2000, name: str = "loss_scale"):
        super().__init__(name=name)
        self.growth_interval = growth_interval
        with self.name_scope:
            self.scale = tf.Variable(initial, dtype=tf.float32, trainable=False, name="scale")
            self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

    def apply(self, optimizer, variables, scaled_gradients) -> tf.Tensor:
        """Unscale, apply with optimizer if all finite, update the scale; returns whether it applied."""
        scale = tf.identity(self.scale)
        gradients = [g / scale for g in scaled_gradients]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])

        def step():
            optimizer.apply(variables, gradients)
            return tf.constant(True)

        tf.cond(finite, step, lambda: tf.constant(False))
        good = tf.where(finite, self.good_steps + 1, tf.zeros([], tf.int64))
        grow = good >= self.growth_interval
        self.scale.assign(tf.where(finite, tf.where(grow, scale * 2.0, scale), tf.maximum(scale / 2.0, 1.0)))
        self.good_steps.assign(tf.where(grow, tf.zeros([], tf.int64), good))
        return finite


def describe(strategy) -> str:
    """One line for the logs: the strategy, its replicas and (multi-worker) this task."""
    if is_default(strategy):
        return "one device"
    name = type(strategy).__name__
    task_type, task_id = task(strategy)
    where = f", {task_type} {task_id} of {worker_count(strategy)} workers" if task_type else ""
    return f"{name}, {strategy.num_replicas_in_sync} replica(s){where}"
