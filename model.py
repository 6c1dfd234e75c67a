"""The DCGAN of the original (Kim's DCGAN-tensorflow as used by Amos, 2016) in TensorFlow 2.

`DCGAN` holds the generator, the discriminator, their two Adam optimisers and
the training bookkeeping (step and epoch counters, the fixed sample z, the
random generator), and knows how to train one step and save and load itself.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

import utils

if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") >= "2":
    with utils.silenced_stderr():  # quiet start-up unless the user asked for TensorFlow's logs
        import tensorflow as tf
        tf.config.list_physical_devices()
import tensorflow as tf  # noqa: E402

import distribute  # noqa: E402
from ops import BatchNorm, Conv2d, Conv2dTranspose, Linear, leaky_relu  # noqa: E402

HPARAMS_FILE = "dcgan.json"        # the model's hyper-parameters, beside its checkpoints
CHECKPOINT_NAME = "DCGAN.model"     # the original's checkpoint prefix: DCGAN.model-STEP
SAMPLE_COUNT = 64                   # the fixed sample z: an 8x8 grid
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # present in TF2 checkpoints only
STATE_FILE = "checkpoint"           # names the newest checkpoint, in both formats


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded into this model; the message says why."""


def is_valid_image_size(size: int) -> bool:
    return size >= 8 and size & (size - 1) == 0


def num_layers(image_size: int) -> int:
    """Stride-2 layers per network: 4 as in the original, 3 at 8x8."""
    return min(4, int(math.log2(image_size)))


LOSS_NAMES = ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")


def sigmoid_cross_entropy(logits: tf.Tensor, label: float) -> tf.Tensor:
    """Mean sigmoid cross-entropy of logits against a constant label (the original's losses)."""
    labels = tf.fill(tf.shape(logits), tf.cast(label, logits.dtype))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


# ----------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------

class Generator(tf.Module):
    """z (N, z_dim) in [-1, 1] -> images (N, S, S, c_dim) in [-1, 1].

    At 64x64: g_h0_lin 100 -> 4x4x512, then transposed convs to 8x8x256,
    16x16x128, 32x32x64 (each with batch norm and ReLU) and 64x64x3 (tanh).
    """

    def __init__(self, image_size: int, z_dim: int, gf_dim: int, c_dim: int, compute_dtype=None):
        super().__init__(name="generator")
        layers = num_layers(image_size)
        self.start_size = image_size // 2 ** layers
        self.start_channels = gf_dim * 2 ** (layers - 1)
        self.compute_dtype = compute_dtype
        dtype = dict(compute_dtype=compute_dtype)
        with self.name_scope:
            self.g_h0_lin = Linear(z_dim, self.start_size ** 2 * self.start_channels, "g_h0_lin", **dtype)
            self.g_bn0 = BatchNorm(self.start_channels, "g_bn0", **dtype)
            channels = self.start_channels
            for i in range(1, layers + 1):
                out = c_dim if i == layers else channels // 2
                setattr(self, f"g_h{i}", Conv2dTranspose(channels, out, f"g_h{i}", **dtype))
                if i < layers:
                    setattr(self, f"g_bn{i}", BatchNorm(out, f"g_bn{i}", **dtype))
                channels = out
        self.layers = layers

    def __call__(self, z: tf.Tensor, training: bool) -> tf.Tensor:
        h = self.g_h0_lin(z)
        h = tf.reshape(h, [-1, self.start_size, self.start_size, self.start_channels])
        h = tf.nn.relu(self.g_bn0(h, training))
        for i in range(1, self.layers):
            h = tf.nn.relu(getattr(self, f"g_bn{i}")(getattr(self, f"g_h{i}")(h), training))
        images = tf.tanh(getattr(self, f"g_h{self.layers}")(h))
        return images if self.compute_dtype is None else tf.cast(images, tf.float32)


class Discriminator(tf.Module):
    """images (N, S, S, c_dim) -> (probability, logit), each (N, 1).

    At 64x64: convs to 32x32x64 (leaky ReLU), 16x16x128, 8x8x256, 4x4x512 (each
    with batch norm and leaky ReLU), then d_h3_lin 8192 -> 1.
    """

    def __init__(self, image_size: int, df_dim: int, c_dim: int, compute_dtype=None):
        super().__init__(name="discriminator")
        layers = num_layers(image_size)
        self.layers = layers
        self.compute_dtype = compute_dtype
        dtype = dict(compute_dtype=compute_dtype)
        end_size = image_size // 2 ** layers
        with self.name_scope:
            channels = c_dim
            for i in range(layers):
                out = df_dim * 2 ** i
                setattr(self, f"d_h{i}_conv", Conv2d(channels, out, f"d_h{i}_conv", **dtype))
                if i > 0:
                    setattr(self, f"d_bn{i}", BatchNorm(out, f"d_bn{i}", **dtype))
                channels = out
            self.flat_dim = end_size ** 2 * channels
            setattr(self, f"d_h{layers - 1}_lin", Linear(self.flat_dim, 1, f"d_h{layers - 1}_lin", **dtype))

    def __call__(self, images: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        h = leaky_relu(self.d_h0_conv(images))
        for i in range(1, self.layers):
            h = leaky_relu(getattr(self, f"d_bn{i}")(getattr(self, f"d_h{i}_conv")(h), training))
        logits = getattr(self, f"d_h{self.layers - 1}_lin")(tf.reshape(h, [-1, self.flat_dim]))
        if self.compute_dtype is not None:
            logits = tf.cast(logits, tf.float32)  # losses in float32
        return tf.sigmoid(logits), logits


# ----------------------------------------------------------------------------
# Adam, exactly as TensorFlow 1's AdamOptimizer (epsilon 1e-8)
# ----------------------------------------------------------------------------

class Adam(tf.Module):
    """Adam over a fixed list of variables, with its moments as checkpointable slots.

    Under a tf.distribute strategy, `apply` runs in replica context: each replica applies
    the (all-reduced, hence identical) gradients to its own copy of the variables, slots
    and counter with the same kernel, so the mirrored copies stay identical without any
    further communication.
    """

    def __init__(self, variables, learning_rate: float, beta1: float, beta2: float = 0.999,
                 epsilon: float = 1e-8, name: str = "adam"):
        super().__init__(name=name)
        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        with self.name_scope:
            self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
            self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
            self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]

    def apply(self, variables, gradients) -> None:
        t = tf.cast(self.iterations.assign_add(1), tf.float32)
        beta1_power, beta2_power = self.beta1 ** t, self.beta2 ** t
        for var, m, v, grad in zip(variables, self.m, self.v, gradients):
            # The fused kernel: m, v moments, lr * sqrt(1 - b2^t) / (1 - b1^t) step.
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=beta1_power, beta2_power=beta2_power,
                lr=tf.constant(self.learning_rate, tf.float32), beta1=tf.constant(self.beta1, tf.float32),
                beta2=tf.constant(self.beta2, tf.float32), epsilon=tf.constant(self.epsilon, tf.float32),
                grad=grad)


# ----------------------------------------------------------------------------
# The DCGAN
# ----------------------------------------------------------------------------

class DCGAN(tf.Module):
    """Generator, discriminator, their optimisers and the training state."""

    def __init__(self, image_size: int = 64, z_dim: int = 100, gf_dim: int = 64, df_dim: int = 64,
                 c_dim: int = 3, learning_rate: float = 0.0002, beta1: float = 0.5, seed: int | None = None,
                 compute_dtype=None):
        """Build it under `strategy.scope()` to train or complete with a tf.distribute strategy;
        compute_dtype "float16" or "bfloat16" computes in that type (variables stay float32)."""
        super().__init__(name="dcgan")
        if not is_valid_image_size(image_size):
            raise ValueError(f"image_size must be a power of two >= 8, not {image_size}")
        self.image_size, self.z_dim, self.gf_dim, self.df_dim, self.c_dim = image_size, z_dim, gf_dim, df_dim, c_dim
        # The strategy whose scope built the model; None: the default strategy (one device).
        self.strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
        self.compute_dtype = distribute.compute_dtype(compute_dtype.name if isinstance(compute_dtype, tf.DType)
                                                      else compute_dtype)
        if seed is not None:
            tf.random.set_seed(seed)
        self.generator = Generator(image_size, z_dim, gf_dim, c_dim, compute_dtype=self.compute_dtype)
        self.discriminator = Discriminator(image_size, df_dim, c_dim, compute_dtype=self.compute_dtype)
        self.d_optim = Adam(self.discriminator.trainable_variables, learning_rate, beta1, name="d_optim")
        self.g_optim = Adam(self.generator.trainable_variables, learning_rate, beta1, name="g_optim")
        # Training bookkeeping, checkpointed so that a restart continues where it stopped.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.rng = (tf.random.Generator.from_seed(seed) if seed is not None
                    else tf.random.Generator.from_non_deterministic_state())
        self.sample_z = tf.Variable(self.rng.uniform([SAMPLE_COUNT, z_dim], -1.0, 1.0), trainable=False,
                                    name="sample_z")
        # float16: dynamic loss scaling of each optimiser's loss (checkpointed only then).
        self.d_loss_scale = self.g_loss_scale = None
        scales = {}
        if self.compute_dtype == tf.float16:
            self.d_loss_scale = distribute.LossScale(name="d_loss_scale")
            self.g_loss_scale = distribute.LossScale(name="g_loss_scale")
            scales = dict(d_loss_scale=self.d_loss_scale, g_loss_scale=self.g_loss_scale)
        self._checkpoint = tf.train.Checkpoint(
            generator=self.generator, discriminator=self.discriminator, d_optim=self.d_optim,
            g_optim=self.g_optim, step=self.step, epoch=self.epoch, rng=self.rng, sample_z=self.sample_z, **scales)
        self._train_step = None

    # -- description -------------------------------------------------------
    @property
    def hparams(self) -> dict:
        return dict(image_size=self.image_size, z_dim=self.z_dim, gf_dim=self.gf_dim,
                    df_dim=self.df_dim, c_dim=self.c_dim)

    @property
    def model_variables(self) -> list[tf.Variable]:
        """The networks' variables (weights and batch-norm statistics), as the original saved them."""
        return list(self.generator.variables) + list(self.discriminator.variables)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hparams.items())
        return f"DCGAN({args})"

    # -- networks and losses ----------------------------------------------
    def sample_noise(self, batch_size: int) -> tf.Tensor:
        return self.rng.uniform([batch_size, self.z_dim], -1.0, 1.0)

    def losses(self, real_logits: tf.Tensor, fake_logits: tf.Tensor) -> dict[str, tf.Tensor]:
        """d_loss = CE(D(x), 1) + CE(D(G(z)), 0); g_loss = CE(D(G(z)), 1)."""
        d_loss_real = sigmoid_cross_entropy(real_logits, 1.0)
        d_loss_fake = sigmoid_cross_entropy(fake_logits, 0.0)
        return dict(d_loss_real=d_loss_real, d_loss_fake=d_loss_fake, d_loss=d_loss_real + d_loss_fake,
                    g_loss=sigmoid_cross_entropy(fake_logits, 1.0))

    # -- training ----------------------------------------------------------
    def _train_step_fn(self, images: tf.Tensor, z: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        if z is None:
            z = self.sample_noise(tf.shape(images)[0])
        # One D update. D sees the real and the fake batch separately, so each
        # gets its own batch-norm statistics, as in the original.
        fake = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            d_real, real_logits = self.discriminator(images, training=True)
            d_fake, fake_logits = self.discriminator(fake, training=True)
            d_losses = self.losses(real_logits, fake_logits)
        d_vars = self.discriminator.trainable_variables
        self._minimize(tape, d_losses["d_loss"], d_vars, self.d_optim, self.d_loss_scale)
        # Two G updates with the same z, "so that d_loss does not go to zero".
        g_vars = self.generator.trainable_variables
        for _ in range(2):
            with tf.GradientTape() as tape:
                _, fake_logits = self.discriminator(self.generator(z, training=True), training=True)
                g_loss = sigmoid_cross_entropy(fake_logits, 1.0)
            self._minimize(tape, g_loss, g_vars, self.g_optim, self.g_loss_scale)
        self.step.assign_add(1)
        return dict(d_loss=d_losses["d_loss"], d_loss_real=d_losses["d_loss_real"],
                    d_loss_fake=d_losses["d_loss_fake"], g_loss=g_loss, z=z, d=d_real, d_=d_fake)

    @staticmethod
    def _minimize(tape, loss, variables, optimizer, loss_scale) -> None:
        """One optimiser update: gradients (loss-scaled for float16), averaged over replicas, applied."""
        if loss_scale is None:
            gradients = tape.gradient(loss, variables)
        else:
            gradients = tape.gradient(loss, variables, output_gradients=tf.identity(loss_scale.scale))
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # Each replica's loss is the mean over its equal share of the batch: the global
            # batch's gradient is the mean of the replicas' (one batched all-reduce).
            gradients = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, gradients)
        if loss_scale is None:
            optimizer.apply(variables, gradients)
        else:
            loss_scale.apply(optimizer, variables, gradients)

    def _replica_step(self, images: tf.Tensor, z: tf.Tensor, stop: tf.Tensor) -> dict[str, tf.Tensor]:
        """One replica's share of a distributed step: its rows of the global z, its images."""
        ctx = tf.distribute.get_replica_context()
        count = tf.shape(images)[0]
        first = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * count
        out = self._train_step_fn(images, z[first:first + count])
        scalars = tf.stack([out[k] for k in LOSS_NAMES] + [stop])
        return dict(scalars=scalars, d=out["d"], d_=out["d_"])

    def _distributed_step_fn(self, replica_step, images, stop: tf.Tensor) -> dict[str, tf.Tensor]:
        """The training step under a strategy (cross-replica context, in one tf.function).

        The global batch's z is drawn here, from the model's generator (all its copies
        advance alike), and each replica takes its rows: the z of a one-device run with
        the same seed. Losses are the mean over replicas (the global batch's losses);
        `stop` is positive when any worker asked to stop.
        """
        strategy = self.strategy
        local = strategy.experimental_local_results(images)[0]
        z = self.sample_noise(tf.shape(local)[0] * strategy.num_replicas_in_sync)
        out = strategy.run(replica_step, args=(images, z, stop))
        scalars = strategy.reduce(tf.distribute.ReduceOp.MEAN, out["scalars"], axis=None)
        result = {name: scalars[i] for i, name in enumerate(LOSS_NAMES)}
        result.update(stop=scalars[len(LOSS_NAMES)], z=z,
                      d=tf.concat(strategy.experimental_local_results(out["d"]), axis=0),
                      d_=tf.concat(strategy.experimental_local_results(out["d_"]), axis=0))
        return result

    def compile(self, xla: bool = False) -> None:
        """Compile the training step into one graph (with XLA if asked).

        Under a strategy, XLA compiles each replica's step (TensorFlow supports collectives
        inside XLA on GPU replicas).
        """
        if self.strategy is None:
            self._train_step = tf.function(self._train_step_fn, jit_compile=xla, reduce_retracing=True)
            return
        replica_step = tf.function(self._replica_step, jit_compile=True) if xla else self._replica_step
        self._train_step = tf.function(functools.partial(self._distributed_step_fn, replica_step),
                                       reduce_retracing=True)

    def train_step(self, images, stop: bool = False) -> dict[str, tf.Tensor]:
        """One D update, then two G updates with the same z ~ U(-1, 1); returns losses and summaries.

        Under a strategy, images is the global batch, as distributed values (from
        distribute_dataset) or one tensor; `stop` is this worker's request to stop, and
        out["stop"] > 0 when any worker made one.
        """
        if self._train_step is None:
            self.compile()
        if self.strategy is None:
            return self._train_step(images)
        if isinstance(images, (tf.Tensor, np.ndarray)):
            images = self.distribute_batch(images)
        return self._train_step(images, tf.constant(1.0 if stop else 0.0))

    def distribute_batch(self, images) -> tf.distribute.DistributedValues:
        """A global batch (tensor) -> each replica's rows, in order of replica id."""
        strategy = self.strategy
        count = images.shape[0]
        if count % strategy.num_replicas_in_sync:
            raise ValueError(f"a batch of {count} does not split over {strategy.num_replicas_in_sync} replicas")
        share = count // strategy.num_replicas_in_sync
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.convert_to_tensor(images[ctx.replica_id_in_sync_group * share:
                                           (ctx.replica_id_in_sync_group + 1) * share]))

    def distribute_dataset(self, dataset: tf.data.Dataset):
        """A dataset of global batches -> the strategy's distributed dataset (sharded by data across workers)."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    @property
    def state_variables(self) -> list[tf.Variable]:
        """Every variable the checkpoint holds."""
        seen, result = set(), []
        for var in list(self.variables) + [self.rng.state]:
            if id(var) not in seen:
                seen.add(id(var))
                result.append(var)
        return result

    def generate(self, z: tf.Tensor | None = None, training: bool = False) -> tf.Tensor:
        """G(z) with moving batch-norm statistics; the fixed sample z by default."""
        return self.generator(self.sample_z if z is None else z, training=training)

    def train(self, config) -> int:
        """Train on config.dataset as train_dcgan.py describes; returns the process exit code."""
        return Trainer(self, config).run()

    # -- checkpoints -------------------------------------------------------
    def _manager(self, checkpoint_dir: str | os.PathLike) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(self._checkpoint, str(checkpoint_dir), max_to_keep=3,
                                          checkpoint_name=CHECKPOINT_NAME)

    def save(self, checkpoint_dir: str | os.PathLike, step: int | None = None) -> str:
        """Write DCGAN.model-STEP and dcgan.json; the previous checkpoint stays valid until this one is whole."""
        if step is not None:
            self.step.assign(step)
        utils.save_json(Path(checkpoint_dir) / HPARAMS_FILE, self.hparams)
        return self._manager(checkpoint_dir).save(checkpoint_number=int(self.step.numpy()))

    def load(self, checkpoint_dir: str | os.PathLike) -> bool:
        """Restore the newest checkpoint in checkpoint_dir (this port's or the original's TF1 format).

        Returns False when there is none; raises CheckpointError when one does not fit.
        """
        path = latest_checkpoint(checkpoint_dir)
        if path is None:
            return False
        try:
            reader = tf.train.load_checkpoint(path)
            shapes = reader.get_variable_to_shape_map()
        except (tf.errors.OpError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(error)})") from None
        original = _OBJECT_GRAPH_KEY not in shapes
        for var in self.model_variables:
            name = variable_name(var)
            key = name if original else f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
            if key not in shapes:
                raise CheckpointError(f"{path}: has no variable {name} (is it a checkpoint of another model?)")
            if list(shapes[key]) != var.shape.as_list():
                raise CheckpointError(f"{path}: variable {name} has shape {list(shapes[key])} in the checkpoint "
                                      f"but {var.shape.as_list()} in {self!r}")
        try:
            if original:
                # Read every value before assigning any, so that a failure leaves the model as it was.
                values = [reader.get_tensor(variable_name(var)) for var in self.model_variables]
                for var, value in zip(self.model_variables, values):
                    var.assign(value)
            else:
                self._checkpoint.read(path).expect_partial()
        except (tf.errors.OpError, ValueError, TypeError, IndexError) as error:  # IndexError: a truncated .data file
            raise CheckpointError(f"{path}: cannot read the checkpoint's values ({_first_line(error)}); "
                                  f"is its .data file missing or truncated?") from None
        self.original_format = original
        return True

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | os.PathLike, **kwargs) -> "DCGAN":
        """Rebuild the model that wrote checkpoint_dir (from dcgan.json, or from the TF1 shapes) and load it."""
        hparams = read_hparams(checkpoint_dir)
        model = cls(**hparams, **kwargs)
        if not model.load(checkpoint_dir):
            raise CheckpointError(_no_checkpoint(checkpoint_dir))
        return model


def variable_name(var: tf.Variable) -> str:
    """'generator/g_h1/w:0' -> 'generator/g_h1/w'."""
    return var.name.split(":")[0]


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint prefix in a folder (this port's or the original's format), or None.

    The `checkpoint` state file names it. A path recorded elsewhere (the original's state
    files hold absolute paths, or paths relative to where it ran) is looked up by its file
    name in this folder first. Without a state file: the DCGAN.model-N.index with the
    largest N. Raises CheckpointError for a state file that cannot be read or that names
    a checkpoint that is not there.
    """
    import re
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    state_file = folder / STATE_FILE
    if not state_file.exists():
        steps = {int(m.group(1)): str(folder / m.group(0)[:-len(".index")]) for m in
                 (re.fullmatch(rf"{re.escape(CHECKPOINT_NAME)}-(\d+)\.index", p.name) for p in folder.iterdir())
                 if m}
        return steps[max(steps)] if steps else None
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # TensorFlow would log its own warnings about a bad state file
    try:
        state = tf.train.get_checkpoint_state(str(folder))
    except (ValueError, tf.errors.OpError):
        state = None
    finally:
        logger.setLevel(level)
    if state is None:
        raise CheckpointError(f"{state_file}: not a readable checkpoint state file (expected a line "
                              f'model_checkpoint_path: "{CHECKPOINT_NAME}-N" naming the {CHECKPOINT_NAME}-N.index '
                              f"and .data files beside it)")
    recorded = state.model_checkpoint_path
    local = str(folder / re.split(r"[\\/]", recorded)[-1])
    for path in (local, recorded):
        if tf.io.gfile.exists(path + ".index"):
            return path
    raise CheckpointError(f"{state_file} names the checkpoint {recorded}, but {local}.index is not there")


def _no_checkpoint(checkpoint_dir: str | os.PathLike) -> str:
    """Why there is nothing to load in checkpoint_dir, and what was expected there."""
    if not os.path.isdir(checkpoint_dir):
        return f"checkpoint folder {checkpoint_dir} does not exist"
    return (f"no checkpoint in {checkpoint_dir}: expected a `{STATE_FILE}` state file naming {CHECKPOINT_NAME}-N, "
            f"with {CHECKPOINT_NAME}-N.index and {CHECKPOINT_NAME}-N.data-* beside it (this port's format or the "
            f"original's TensorFlow 1 format)")


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "message", "") or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Convert the newest checkpoint in src (the original's TF1 format) to this port's format in dst.

    The step is the original's global step (DCGAN.model-N); dst gets dcgan.json too, and
    must not hold a checkpoint already. Returns the written checkpoint's prefix. The
    optimiser state, which the original's checkpoints do not hold, starts fresh.
    """
    import re
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise CheckpointError(f"the destination {dst} is the source folder; choose another folder")
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise CheckpointError(f"the destination {dst} is not a folder")
    if latest_checkpoint(dst) is not None:
        raise CheckpointError(f"the destination {dst} already holds a checkpoint; choose an empty folder")
    model = DCGAN.from_checkpoint(src)
    match = re.search(r"-(\d+)$", latest_checkpoint(src))
    step = int(match.group(1)) if model.original_format and match else int(model.step)
    try:
        return model.save(dst, step)
    except (OSError, tf.errors.OpError) as error:
        raise CheckpointError(f"cannot write the checkpoint to {dst} ({_first_line(error)})") from None


def read_hparams(checkpoint_dir: str | os.PathLike) -> dict:
    """The model's hyper-parameters: dcgan.json, or inferred from an original TF1 checkpoint's shapes."""
    json_path = Path(checkpoint_dir) / HPARAMS_FILE
    if json_path.exists():
        import json
        keys = ("image_size", "z_dim", "gf_dim", "df_dim")
        try:
            with open(json_path) as handle:
                hparams = json.load(handle)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{json_path}: unreadable ({_first_line(error)})") from None
        if not isinstance(hparams, dict) or not all(isinstance(hparams.get(k), int) for k in keys):
            raise CheckpointError(f"{json_path}: expected integers {', '.join(keys)} (and c_dim)")
        return hparams
    path = latest_checkpoint(checkpoint_dir)
    if path is None:
        raise CheckpointError(_no_checkpoint(checkpoint_dir))
    try:
        shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(error)})") from None
    return infer_hparams(shapes, path)


def infer_hparams(shapes: dict, path: str = "checkpoint") -> dict:
    """Hyper-parameters from the variable shapes of an original (TF1) checkpoint."""
    try:
        z_dim, start_units = shapes["generator/g_h0_lin/Matrix"]
        _, _, c_dim, df_dim = shapes["discriminator/d_h0_conv/w"]
        _, _, _, start_channels = shapes["generator/g_h1/w"]
    except KeyError as missing:
        raise CheckpointError(f"{path}: not a DCGAN checkpoint (no variable {missing})") from None
    layers = sum(1 for name in shapes if name.startswith("generator/g_h") and name.endswith("/w"))
    start_size = int(round(math.sqrt(start_units // start_channels)))
    return dict(image_size=start_size * 2 ** layers, z_dim=z_dim, gf_dim=start_channels // 2 ** (layers - 1),
                df_dim=df_dim, c_dim=c_dim)


# ----------------------------------------------------------------------------
# Completion: find z so that G(z) fits the known pixels and fools D
# ----------------------------------------------------------------------------

APPROACHES = ("momentum", "adam", "hmc")


class Completer:
    """Projected gradient descent (or HMC) on z for a batch of masked images, on the device.

    loss_i = sum |W * (G(z_i) - y_i)|  (+ sum |blockmean(G(z_i)) - blockmean(y_i)| for lowres)
             + lam * CE(D(G(z_i)), 1),
    with W the mask (1 = known) or its weighted version. G and D use their moving batch-norm
    statistics, and only z moves. Iterations run in compiled chunks (`run`), so nothing
    goes back to the host between them.

    With a model built under a strategy's scope, `run` spreads the batch's images over the
    replicas (no image depends on another) and gathers them back: the results are those
    of one device, as z starts from the whole batch's draw and HMC's replicas each draw
    the whole batch's random numbers from their own copy of the generator and keep their
    rows. Build the Completer itself outside the scope.
    """

    def __init__(self, model: DCGAN, mask: np.ndarray, approach: str = "momentum", lam: float = 0.1,
                 lr: float = 0.01, momentum: float = 0.9, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, hmc_beta: float = 0.2, hmc_eps: float = 0.001, hmc_l: int = 100,
                 hmc_anneal: float = 1.0, lowres: bool = False, weights: np.ndarray | None = None,
                 seed: int | None = None, xla: bool = False):
        if approach not in APPROACHES:
            raise ValueError(f"unknown approach {approach!r}; choose from {', '.join(APPROACHES)}")
        self.model, self.approach, self.lam = model, approach, lam
        self.lr, self.momentum, self.beta1, self.beta2, self.eps = lr, momentum, beta1, beta2, eps
        self.hmc_beta, self.hmc_eps, self.hmc_l, self.hmc_anneal = hmc_beta, hmc_eps, hmc_l, hmc_anneal
        self.lowres = lowres
        self.mask = tf.constant(mask, tf.float32)
        self.weights = tf.constant(mask if weights is None else weights, tf.float32)
        self.rng = tf.random.Generator.from_seed(seed) if seed is not None else \
            tf.random.Generator.from_non_deterministic_state()
        self._loss = tf.function(self.loss, reduce_retracing=True)
        self.strategy, self._replica_rngs = model.strategy, None
        if self.strategy is None:
            self._run = tf.function(self._run_chunk, jit_compile=xla, reduce_retracing=True)
            return
        self._chunk = tf.function(self._run_chunk, jit_compile=True) if xla else self._run_chunk
        self._run = tf.function(self._distributed_chunk, reduce_retracing=True)
        if approach == "hmc":
            self._replica_rngs = []
            for device in self.strategy.extended.worker_devices:
                with tf.device(device):
                    # A copy of the state (given the variable itself, the generators would share it).
                    self._replica_rngs.append(tf.random.Generator.from_state(tf.identity(self.rng.state),
                                                                             self.rng.algorithm))

    # -- the objective -----------------------------------------------------
    def loss(self, z: tf.Tensor, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Per-image loss (N,) and G(z) (N, S, S, C)."""
        fake = self.model.generator(z, training=False)
        _, logits = self.model.discriminator(fake, training=False)
        contextual = tf.reduce_sum(tf.abs(self.weights * fake - self.weights * images), axis=[1, 2, 3])
        if self.lowres:
            contextual += tf.reduce_sum(tf.abs(_block_mean(fake) - _block_mean(images)), axis=[1, 2, 3])
        perceptual = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(logits), logits=logits)[:, 0]
        return contextual + self.lam * perceptual, fake

    def loss_and_gradient(self, z: tf.Tensor, images: tf.Tensor):
        """(loss (N,), d sum(loss) / dz (N, z_dim), G(z))."""
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss, fake = self.loss(z, images)
            total = tf.reduce_sum(loss)  # image i's gradient is that of its own loss
        return loss, tape.gradient(total, z), fake

    # -- update rules --------------------------------------------------------
    def initial_state(self, z: tf.Tensor) -> tuple:
        zeros = tf.zeros_like(z)
        return {"momentum": (zeros,), "adam": (zeros, zeros), "hmc": ()}[self.approach]

    def _momentum(self, z, grad, state, i):
        """The article's rule: v' = m v - lr g; z += -m v + (1 + m) v'; clip to [-1, 1]."""
        (velocity,) = state
        new_velocity = self.momentum * velocity - self.lr * grad
        z = z - self.momentum * velocity + (1.0 + self.momentum) * new_velocity
        return tf.clip_by_value(z, -1.0, 1.0), (new_velocity,)

    def _adam(self, z, grad, state, i):
        """The original repository's Adam with bias correction by (1 - beta^(i+1))."""
        m, v = state
        m = self.beta1 * m + (1.0 - self.beta1) * grad
        v = self.beta2 * v + (1.0 - self.beta2) * grad * grad
        t = tf.cast(i + 1, tf.float32)
        m_hat, v_hat = m / (1.0 - self.beta1 ** t), v / (1.0 - self.beta2 ** t)
        z = z - self.lr * m_hat / (tf.sqrt(v_hat) + self.eps)
        return tf.clip_by_value(z, -1.0, 1.0), (m, v)

    def _hmc(self, z, grad, loss, images, i):
        """One Hamiltonian Monte Carlo proposal (hmcL leapfrog steps) and a per-image Metropolis test.

        Random numbers, in order: momentum v ~ N(0, I) (N, z_dim), then u ~ U(0, 1) (N,).
        """
        beta = self.hmc_beta * self.hmc_anneal ** tf.cast(i, tf.float32)
        half = self.hmc_eps / 2.0 * beta
        v_old = self._draw("normal", tf.shape(z))
        u = self._draw("uniform", tf.shape(loss))
        z_new, v, g = z, v_old, grad
        new_loss = loss
        for _ in tf.range(self.hmc_l):
            v = v - half * g
            z_new = tf.clip_by_value(z_new + self.hmc_eps * v, -1.0, 1.0)
            new_loss, g, _ = self.loss_and_gradient(z_new, images)
            v = v - half * g
        energy_old = beta * loss + tf.reduce_sum(v_old ** 2, axis=1) / 2.0
        energy_new = beta * new_loss + tf.reduce_sum(v ** 2, axis=1) / 2.0
        accept = tf.exp(energy_old - energy_new)
        reject = u > accept  # never when accept >= 1, as u < 1
        return tf.where(reject[:, None], z, z_new)

    def _run_chunk(self, z, state, images, start, steps):
        """`steps` iterations from global iteration `start`; returns the new z and state,
        G(z) at the chunk's first iteration, and every iteration's loss and z."""
        losses = tf.TensorArray(tf.float32, size=steps)
        zs = tf.TensorArray(tf.float32, size=steps)
        first_fake = tf.zeros_like(images)
        for k in tf.range(steps):
            i = start + k
            loss, grad, fake = self.loss_and_gradient(z, images)
            first_fake = tf.cond(k == 0, lambda: fake, lambda: first_fake)
            losses, zs = losses.write(k, loss), zs.write(k, z)
            if self.approach == "hmc":
                z = self._hmc(z, grad, loss, images, i)
            elif self.approach == "adam":
                z, state = self._adam(z, grad, state, i)
            else:
                z, state = self._momentum(z, grad, state, i)
        return z, state, first_fake, losses.stack(), zs.stack()

    def _draw(self, distribution: str, shape: tf.Tensor) -> tf.Tensor:
        """Random numbers of this shape; a replica's rows of the whole batch's under a strategy."""
        if self._replica_rngs is None:
            return getattr(self.rng, distribution)(shape)
        replica = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
        replicas = self.strategy.num_replicas_in_sync
        whole = getattr(self._replica_rngs[replica], distribution)(tf.concat([shape[:1] * replicas, shape[1:]], 0))
        return whole[replica * shape[0]:(replica + 1) * shape[0]]

    def run(self, z, state, images, start: int, steps: int):
        """Run `steps` iterations on the device (see _run_chunk), or spread over the replicas."""
        start, steps = tf.constant(start, tf.int32), tf.constant(steps, tf.int32)
        if self.strategy is None:
            return self._run(z, state, images, start, steps)
        for rng in self._replica_rngs or ():
            rng.reset(self.rng.state)
        split = self.model.distribute_batch
        out = self._run(split(z), tuple(split(s) for s in state), split(images), start, steps)
        if self._replica_rngs:
            self.rng.reset(self._replica_rngs[0].state)
        z, state, fake, losses, zs = (self._gather(x, axis) for x, axis in zip(out, (0, 0, 0, 1, 1)))
        return z, state, fake, losses, zs

    def _distributed_chunk(self, *args):
        return self.strategy.run(self._chunk, args=args)

    def _gather(self, values, axis: int):
        """The replicas' rows, in order, as one tensor (or a tuple of them)."""
        if isinstance(values, tuple):
            return tuple(self._gather(v, axis) for v in values)
        return tf.concat(self.strategy.experimental_local_results(values), axis=axis)

    def best_of(self, images: tf.Tensor, candidates: int) -> tf.Tensor:
        """Start z: for each image, the best of `candidates` random z by loss (one forward pass each)."""
        best_z = self.rng.uniform([images.shape[0], self.model.z_dim], -1.0, 1.0)
        best_loss, _ = self._loss(best_z, images)
        for _ in range(candidates - 1):
            z = self.rng.uniform(best_z.shape, -1.0, 1.0)
            loss, _ = self._loss(z, images)
            better = loss < best_loss
            best_z, best_loss = tf.where(better[:, None], z, best_z), tf.minimum(loss, best_loss)
        return best_z

    def initial_z(self, images: tf.Tensor, candidates: int = 0) -> tf.Tensor:
        if candidates > 1:
            return self.best_of(images, candidates)
        return self.rng.uniform([images.shape[0], self.model.z_dim], -1.0, 1.0)

    def generate(self, z: tf.Tensor) -> tf.Tensor:
        return self.model.generator(z, training=False)


def _block_mean(images: tf.Tensor, factor: int = utils.LOWRES_FACTOR) -> tf.Tensor:
    """Means of factor x factor blocks, as the original's lowres images."""
    size, channels = images.shape[1], images.shape[-1]
    blocks = tf.reshape(images, [-1, size // factor, factor, size // factor, factor, channels])
    return tf.reduce_mean(blocks, axis=[2, 4])


def read_inputs(paths: list, image_size: int) -> tuple[list, np.ndarray, list[str]]:
    """Read the images to complete as uint8 (N, S, S, 3); unreadable ones are named and skipped,
    images of another size are resized with one warning."""
    kept, images, errors, resized = [], [], [], []
    for path in paths:
        try:
            image = utils.read_rgb(path)
        except utils.ImageError as error:
            errors.append(str(error))
            utils.warn(f"{error}; skipped")
            continue
        if image.shape[:2] != (image_size, image_size):
            resized.append(f"{path} ({image.shape[1]}x{image.shape[0]})")
        kept.append(Path(path))
        images.append(utils.resize(image, image_size))
    if resized:
        shown = ", ".join(resized[:3]) + (f" and {len(resized) - 3} more" if len(resized) > 3 else "")
        utils.warn(f"{len(resized)} image(s) are not {image_size}x{image_size} and were resized: {shown}")
    array = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return kept, array, errors


def unique_stems(paths: list) -> list[str]:
    """Output names from input names; a repeated name gets _1, _2, ... so nothing is overwritten."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = Path(path).stem
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(stem if count == 0 else f"{stem}_{count}")
    return names


def composite(images: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Known pixels from `images` (uint8, exactly), the rest from `fill` ([-1, 1] floats)."""
    return np.where(mask[None] > 0.5, images, utils.to_uint8(fill)).astype(np.uint8)


class CompletionJob:
    """complete.py's work: batches of images through the Completer, and every output file."""

    def __init__(self, model: DCGAN, config, mask: np.ndarray):
        self.model, self.config, self.mask = model, config, mask
        weights = utils.weighted_mask(mask) if config.weightedMask else None
        self.completer = Completer(
            model, mask, approach=config.approach, lam=config.lam, lr=config.lr, momentum=config.momentum,
            beta1=config.beta1, beta2=config.beta2, eps=config.eps, hmc_beta=config.hmcBeta,
            hmc_eps=config.hmcEps, hmc_l=config.hmcL, hmc_anneal=config.hmcAnneal,
            lowres=config.maskType == "lowres" and config.mask is None, weights=weights, seed=config.seed,
            xla=getattr(config, "xla", False))

    def run(self, paths: list) -> int:
        from tqdm import tqdm

        config = self.config
        paths, images, errors = read_inputs(paths, self.model.image_size)
        if len(paths) == 0:
            utils.fail("no image could be read; nothing to complete", code=1)
        names = unique_stems(paths)
        batches = range(0, len(paths), config.batchSize)
        outputs = Path(config.outDir)
        total = len(batches) * config.nIter
        bar = tqdm(total=total, desc="Completing", unit="it", dynamic_ncols=True, mininterval=0.5)
        final_losses = []
        for number, start in enumerate(batches):
            folder = outputs if len(batches) == 1 else outputs / f"batch_{number:03d}"
            batch = images[start:start + config.batchSize]
            final_losses.append(self.complete_batch(batch, folder, bar))
            self.write_finals(batch, self.last_fill, names[start:start + config.batchSize], outputs / "final")
        bar.close()
        losses = np.concatenate(final_losses)
        where = outputs if len(batches) == 1 else outputs / "batch_*"
        print(f"Completed {len(paths)} image(s) in {len(batches)} batch(es), mean final loss {losses.mean():.4f}: "
              f"results in {outputs / 'final'}, the optimisation in {where} (completion.gif).")
        if errors:
            print(f"error: {len(errors)} image(s) could not be read and were skipped", file=sys.stderr)
            return 1
        return 0

    def complete_batch(self, batch: np.ndarray, folder: Path, bar) -> np.ndarray:
        """Optimise one batch, writing the original's outputs into folder; returns the final losses."""
        config, mask, count = self.config, self.mask, len(batch)
        # Pad a short batch to the batch size (one compiled shape; under a strategy, a multiple
        # of the replicas); the padding is discarded.
        replicas = self.model.strategy.num_replicas_in_sync if self.model.strategy is not None else 1
        padded = np.zeros((-(-config.batchSize // replicas) * replicas,) + batch.shape[1:], np.uint8)
        padded[:count] = batch
        y = tf.constant(utils.to_float(padded))
        utils.save_grid(folder / "before.png", batch, rows=_rows(count))
        utils.save_grid(folder / "masked.png", (batch * mask).astype(np.uint8), rows=_rows(count))
        if config.maskType == "lowres" and config.mask is None:
            lowres = np.repeat(np.repeat(utils.block_mean(batch.astype(np.float32)), utils.LOWRES_FACTOR, 1),
                               utils.LOWRES_FACTOR, 2)
            utils.save_grid(folder / "lowres.png", np.rint(lowres).astype(np.uint8), rows=_rows(count))
        z = self.completer.initial_z(y, config.zCandidates)
        state = self.completer.initial_state(z)
        frames, logs = [], [[] for _ in range(count)]
        for start in range(0, config.nIter, config.outInterval):
            steps = min(config.outInterval, config.nIter - start)
            z, state, fake, losses, zs = self.completer.run(z, state, y, start, steps)
            frames.append(self.write_frame(folder, start, batch, fake.numpy()[:count]))
            self.append_logs(logs, start, losses.numpy()[:, :count], zs.numpy()[:, :count])
            bar.update(steps)
            bar.set_postfix(loss=f"{float(np.mean(losses.numpy()[-1, :count])):.4f}", refresh=False)
        final_loss, fake = self.completer._loss(z, y)
        fake = fake.numpy()[:count]
        frames.append(self.write_frame(folder, config.nIter, batch, fake))
        self.write_logs(folder / "logs", logs)
        _write_gif(folder / "completion.gif", frames)
        self.last_fill = fake
        return final_loss.numpy()[:count]

    def write_frame(self, folder: Path, iteration: int, batch: np.ndarray, fake: np.ndarray) -> np.ndarray:
        rows = _rows(len(batch))
        utils.save_grid(folder / "hats_imgs" / f"{iteration:04d}.png", fake, rows=rows)
        completed = utils.make_grid(composite(batch, fake, self.mask), rows)
        utils.save_png(folder / "completed" / f"{iteration:04d}.png", completed)
        return completed

    @staticmethod
    def append_logs(logs: list, start: int, losses: np.ndarray, zs: np.ndarray) -> None:
        for image, lines in enumerate(logs):
            for k in range(losses.shape[0]):
                z_text = " ".join(f"{value:.6e}" for value in zs[k, image])
                lines.append(f"{start + k} {losses[k, image]:.6f} {z_text}\n")

    @staticmethod
    def write_logs(folder: Path, logs: list) -> None:
        """logs/hats_NN.log: one line per iteration: iteration, loss, then z (written once, in bulk)."""
        for image, lines in enumerate(logs):
            path = folder / f"hats_{image:02d}.log"
            utils.atomic_write(path, lambda tmp, lines=lines: Path(tmp).write_text("".join(lines)))

    def write_finals(self, batch: np.ndarray, fake: np.ndarray, names: list, folder: Path) -> None:
        """final/<name>.png: each input's completion (Poisson-blended with --blend poisson), and
        fill/<name>.png: the generator's whole image G(z) for it."""
        completed = composite(batch, fake, self.mask)
        for image, fill, done, name in zip(batch, utils.to_uint8(fake), completed, names):
            if self.config.blend == "poisson":
                done = utils.poisson_blend(image, fill, self.mask)
            utils.save_png(folder / f"{name}.png", done)
            utils.save_png(folder.parent / "fill" / f"{name}.png", fill)


def _rows(count: int) -> int:
    """Grid rows for count images in 8 columns, as the original's save_images."""
    return max(1, int(math.ceil(count / 8)))


def _write_gif(path: Path, frames: list) -> None:
    """The article's ImageMagick GIF of completed/*.png, with imageio."""
    import imageio.v3 as iio
    utils.atomic_write(path, lambda tmp: iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=100, loop=0))


# ----------------------------------------------------------------------------
# Training loop
# ----------------------------------------------------------------------------

def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] on the device (utils.to_float's formula)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def image_dataset(images: np.ndarray, batch_size: int, seed: int | None = None) -> tf.data.Dataset:
    """uint8 images in memory -> shuffled (every epoch), batched [-1, 1] floats, prefetched."""
    return (tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=True)
            .map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def streaming_dataset(paths: list, image_size: int, crop: bool, batch_size: int, errors: list,
                      seed: int | None = None) -> tf.data.Dataset:
    """For datasets too big to hold in memory: decode files on the fly, in parallel.

    Unreadable files are dropped and their errors appended to `errors`.
    """
    def load(path):
        try:
            return utils.load_image(path.decode(), image_size, crop), True
        except utils.ImageError as error:
            errors.append(str(error))
            return np.zeros((image_size, image_size, 3), np.uint8), False

    def decode(path):
        image, ok = tf.numpy_function(load, [path], [tf.uint8, tf.bool], stateful=False)
        return tf.ensure_shape(image, [image_size, image_size, 3]), ok

    return (tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
            .shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
            .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
            .filter(lambda image, ok: ok)
            .map(lambda image, ok: to_unit_range(image))
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def memory_budget() -> int:
    """Bytes of decoded images we are willing to hold in memory: half of what is free."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 2 ** 31


class StopTraining(Exception):
    """Raised inside the loop to stop early; its message is shown to the user."""


class Trainer:
    """The original's training loop: progress, samples, TensorBoard, checkpoints, resumption."""

    def __init__(self, model: DCGAN, config):
        self.model, self.config = model, config
        self.stop_signal = None
        limit = getattr(config, "time_limit", None)
        self.deadline = time.monotonic() + 60.0 * limit if limit else None
        self.out_of_time = False
        # Under a strategy: only the chief writes checkpoints, samples and logs.
        self.strategy = model.strategy
        self.chief = distribute.is_chief(self.strategy)
        self.stopped_by_peer = False

    # -- data --------------------------------------------------------------
    def dataset(self) -> tuple[tf.data.Dataset, int]:
        config, size = self.config, self.model.image_size
        paths = utils.list_images(config.dataset)
        if not paths:
            utils.fail(f"no .png/.jpg/.jpeg images in dataset folder {config.dataset}")
        if config.train_size < len(paths):
            paths = paths[:int(config.train_size)]
        errors: list[str] = []
        self.streaming = len(paths) * size * size * 3 > memory_budget()
        seed = config.seed
        if seed is None and distribute.worker_count(self.strategy) > 1:
            # Workers must shuffle alike to shard the data: a seed from the generator's
            # state, which every worker received from the chief.
            seed = int(self.model.rng.state.numpy()[-1] % (2 ** 31))
        if not self.streaming:
            images, loaded, errors = utils.load_images(paths, size, crop=config.crop)
            if errors:
                utils.warn(utils.describe_bad_files(errors))
            count, dataset = len(loaded), image_dataset(images, config.batch_size, seed)
        else:
            print(f"Dataset of {len(paths)} images does not fit in memory: decoding on the fly.")
            count, dataset = len(paths), streaming_dataset(paths, size, config.crop, config.batch_size, errors,
                                                           seed)
        self.decode_errors = errors
        if count < config.batch_size:
            utils.fail(f"dataset folder {config.dataset} has {count} readable images, "
                       f"fewer than one batch of {config.batch_size} (lower --batch_size)")
        return dataset, count // config.batch_size

    # -- signals -----------------------------------------------------------
    def _request_stop(self, signum, frame):
        self.stop_signal = signum

    def _install_signal_handlers(self):
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[signum] = signal.signal(signum, self._request_stop)
            except ValueError:  # not the main thread
                pass
        return previous

    # -- the loop ----------------------------------------------------------
    def run(self) -> int:
        model, config = self.model, self.config
        dataset, steps_per_epoch = self.dataset()
        if model.load(config.checkpoint_dir):
            note = " (the original's format: optimiser state starts fresh)" if model.original_format else ""
            print(f"Resuming from {latest_checkpoint(config.checkpoint_dir)} at step {int(model.step.numpy())}{note}")
        if self.strategy is not None:
            if config.batch_size % self.strategy.num_replicas_in_sync:
                utils.fail(f"--batch_size {config.batch_size} (the global batch) does not divide over "
                           f"{self.strategy.num_replicas_in_sync} replicas")
            if distribute.worker_count(self.strategy) > 1:
                # Every worker starts from the chief's state, read from the checkpoint or not.
                distribute.broadcast_from_first_replica(self.strategy, model.state_variables)
            print(f"Training with {distribute.describe(self.strategy)}: {config.batch_size} images per step, "
                  f"{config.batch_size // self.strategy.num_replicas_in_sync} per replica.")
            dataset = model.distribute_dataset(dataset)
        total_steps = config.epoch * steps_per_epoch
        if int(model.step.numpy()) >= total_steps:
            print(f"Already trained for {config.epoch} epochs ({int(model.step.numpy())} steps); nothing to do.")
            return 0
        model.compile(xla=config.xla)
        writer = tf.summary.create_file_writer(config.log_dir) if self.chief else tf.summary.create_noop_writer()
        previous_handlers = self._install_signal_handlers()
        last_saved = int(model.step.numpy())
        try:
            with writer.as_default():
                last_saved = self._loop(dataset, steps_per_epoch, total_steps, last_saved)
        except StopTraining as stop:
            print(f"error: {stop}", file=sys.stderr, flush=True)
            return 1
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            writer.close()
        if distribute.worker_count(self.strategy) > 1:
            distribute.barrier(self.strategy)  # leave together: the chief hosts the cluster's coordination
        if self.streaming and self.decode_errors:
            utils.warn(utils.describe_bad_files(sorted(set(self.decode_errors))))
        if self.stop_signal is not None:
            name = signal.Signals(self.stop_signal).name
            print(f"Stopped by {name}: checkpoint saved at step {last_saved} in {config.checkpoint_dir}; "
                  f"run the same command again to resume.", flush=True)
            return 128 + self.stop_signal
        if self.out_of_time:
            print(f"Reached --time_limit of {config.time_limit:g} min at step {last_saved}: checkpoint saved in "
                  f"{config.checkpoint_dir}; run the same command again to train on.")
            return 0
        if self.stopped_by_peer:
            print(f"Stopped at step {last_saved} with the other workers (one was interrupted or reached its "
                  f"--time_limit): checkpoint saved in {config.checkpoint_dir}; run the same command again to "
                  f"train on.")
            return 0
        if not self.chief:
            print(f"Done: {int(model.step.numpy())} steps (this worker writes no files; the chief does).")
            return 0
        print(f"Done: {int(model.step.numpy())} steps; checkpoint in {config.checkpoint_dir}, samples in "
              f"{config.sample_dir}, TensorBoard logs in {config.log_dir}.")
        return 0

    def _batches(self, dataset, count: int):
        """count batches: of a fresh pass over the dataset (reshuffled), as distributed values under a strategy."""
        if self.strategy is None:
            return dataset.take(count)
        return itertools.islice(iter(dataset), count)

    def _save(self) -> None:
        if self.strategy is None:
            self.model.save(self.config.checkpoint_dir)
        else:
            distribute.save_everywhere(self.model, self.config.checkpoint_dir, self.chief)

    def _loop(self, dataset, steps_per_epoch: int, total_steps: int, last_saved: int) -> int:
        from tqdm import tqdm

        model, config = self.model, self.config
        step = int(model.step.numpy())
        for epoch in range(step // steps_per_epoch, config.epoch):
            model.epoch.assign(epoch)
            first = step - epoch * steps_per_epoch  # > 0 only when resuming mid-epoch
            bar = tqdm(total=steps_per_epoch * config.batch_size, initial=first * config.batch_size,
                       desc=f"Epoch {epoch + 1}/{config.epoch}", unit="img", unit_scale=True,
                       dynamic_ncols=True, mininterval=0.5, disable=not self.chief)
            for index, images in enumerate(self._batches(dataset, steps_per_epoch - first), start=first):
                if self.strategy is None:
                    out = model.train_step(images)
                else:
                    # Every worker must stop at the same step: this worker's request goes into
                    # the step's all-reduce, and all act on out["stop"].
                    late = self.deadline is not None and time.monotonic() > self.deadline
                    out = model.train_step(images, stop=self.stop_signal is not None or late)
                step = int(model.step.numpy())
                losses = {k: float(out[k]) for k in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")}
                bad = [k for k in ("d_loss", "g_loss") if not math.isfinite(losses[k])]
                if bad:
                    bar.close()
                    kept = (f"The last good checkpoint (step {last_saved}) is in {config.checkpoint_dir}"
                            if latest_checkpoint(config.checkpoint_dir) else "No checkpoint had been saved yet")
                    raise StopTraining(f"{bad[0]} became {losses[bad[0]]} at step {step}; stopped without saving. "
                                       f"{kept}; try a lower --learning_rate.")
                for name, value in losses.items():
                    tf.summary.scalar(name, value, step=step)
                bar.update(config.batch_size)
                bar.set_postfix(d_loss=f"{losses['d_loss']:.4f}", g_loss=f"{losses['g_loss']:.4f}", refresh=False)
                if self.strategy is not None:
                    stopping = float(out["stop"]) > 0
                    if stopping and self.stop_signal is None:
                        self.out_of_time = self.deadline is not None and time.monotonic() > self.deadline
                        self.stopped_by_peer = not self.out_of_time
                else:
                    if self.deadline is not None and time.monotonic() > self.deadline:
                        self.out_of_time = True
                    stopping = self.stop_signal is not None or self.out_of_time
                if (step % config.sample_every == 0 or step == total_steps or stopping) and self.chief:
                    self._write_samples(out, step, epoch, index)
                if step % config.save_every == 0 or step == total_steps or stopping:
                    self._save()
                    last_saved = step
                if stopping:
                    bar.close()
                    return last_saved
            bar.close()
        return last_saved

    def _write_samples(self, out: dict, step: int, epoch: int, index: int) -> None:
        """The 8x8 grid of G(sample z) and the original's histograms and image summary."""
        samples = self.model.generate().numpy()
        utils.save_grid(Path(self.config.sample_dir) / f"train_{epoch:02d}_{index:04d}.png", samples)
        tf.summary.histogram("z", out["z"], step=step)
        tf.summary.histogram("d", out["d"], step=step)
        tf.summary.histogram("d_", out["d_"], step=step)
        tf.summary.image("G", (samples[:8] + 1.0) / 2.0, step=step, max_outputs=8)


if __name__ == "__main__":
    # python -m model convert SRC DST: the original's TF1 checkpoint -> this port's format.
    import argparse
    _parser = argparse.ArgumentParser(prog="python -m model", description="DCGAN checkpoint tools.")
    _commands = _parser.add_subparsers(dest="command", required=True)
    _convert = _commands.add_parser("convert", help="convert the original's TensorFlow 1 checkpoint to this "
                                                    "port's format (as convert_checkpoint.py)")
    _convert.add_argument("src", help="folder holding the original's checkpoint (DCGAN.model-N)")
    _convert.add_argument("dst", help="new folder for the converted checkpoint and dcgan.json")
    _args = _parser.parse_args()
    try:
        print(f"Wrote {convert_checkpoint(_args.src, _args.dst)}")
    except CheckpointError as _error:
        utils.fail(str(_error))
