"""The DCGAN of the original (Kim's DCGAN-tensorflow as used by Amos, 2016) in TensorFlow 2.

`DCGAN` holds the generator, the discriminator, their two Adam optimisers and
the training bookkeeping (step and epoch counters, the fixed sample z, the
random generator), and knows how to train one step and save and load itself.
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

import utils
from dcgan_completion import distribute
from dcgan_completion.networks import layouts
from dcgan_completion.networks.config import ModelConfig
from dcgan_completion.networks.storage import (AVERAGE_NAME, CHECKPOINT_NAME, HPARAMS_FILE, OBJECT_GRAPH_KEY,
                                               CheckpointError, checkpoint_shapes, first_line, has_average, json_record,
                                               latest_checkpoint, no_checkpoint_message, read_config, read_framing,
                                               variable_name)
from ops import BatchNorm, Conv2d, Conv2dTranspose, Linear, leaky_relu

SAMPLE_COUNT = 64                   # the fixed sample z: an 8x8 grid
DEFAULT = ModelConfig()             # the original's sizes and layout

LOSS_NAMES = ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")


def sigmoid_cross_entropy(logits: tf.Tensor, label: float) -> tf.Tensor:
    """Mean sigmoid cross-entropy of logits against a constant label (the original's losses)."""
    labels = tf.fill(tf.shape(logits), tf.cast(label, logits.dtype))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


# ----------------------------------------------------------------------------
# Networks (layer names and widths: layouts.py)
# ----------------------------------------------------------------------------

class Generator(tf.Module):
    """z (N, z_dim) in [-1, 1] -> images (N, S, S, c_dim) in [-1, 1].

    At 64x64 in the article's layout: g_h0_lin 100 -> 4x4x512, then transposed convs to
    8x8x256, 16x16x128, 32x32x64 (each with batch norm and ReLU) and 64x64x3 (tanh).
    """

    def __init__(self, image_size: int, z_dim: int, gf_dim: int, c_dim: int, compute_dtype=None,
                 layout: str = layouts.DEFAULT_LAYOUT, phases: bool | None = None, name: str = "generator"):
        super().__init__(name=name)
        self.start_size, widths = layouts.generator_plan(layout, image_size, gf_dim, c_dim)
        self.start_channels = widths[0]
        self.compute_dtype = compute_dtype
        dtype = dict(compute_dtype=compute_dtype)
        self.layers = len(widths) - 1
        with self.name_scope:
            self.g_h0_lin = Linear(z_dim, self.start_size ** 2 * widths[0], "g_h0_lin", **dtype)
            self.g_bn0 = BatchNorm(widths[0], "g_bn0", **dtype)
            for i in range(1, self.layers + 1):
                setattr(self, f"g_h{i}", Conv2dTranspose(widths[i - 1], widths[i], f"g_h{i}", phases=phases, **dtype))
                if i < self.layers:
                    setattr(self, f"g_bn{i}", BatchNorm(widths[i], f"g_bn{i}", **dtype))

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

    At 64x64: convs to 32x32x64 (leaky ReLU), 16x16x128, 8x8x256, 4x4x512 (each with batch
    norm and leaky ReLU), then a linear layer 8192 -> 1 (d_h3_lin in the article's layout).
    """

    def __init__(self, image_size: int, df_dim: int, c_dim: int, compute_dtype=None,
                 layout: str = layouts.DEFAULT_LAYOUT, phases: bool | None = None):
        super().__init__(name="discriminator")
        widths, end_size = layouts.discriminator_widths(image_size, df_dim)
        self.layers = len(widths)
        self.bn_names, self.linear_name = layouts.discriminator_names(layout, self.layers)
        self.compute_dtype = compute_dtype
        dtype = dict(compute_dtype=compute_dtype)
        with self.name_scope:
            channels = c_dim
            for i, out in enumerate(widths):
                setattr(self, f"d_h{i}_conv", Conv2d(channels, out, f"d_h{i}_conv", phases=phases, **dtype))
                if i > 0:
                    setattr(self, self.bn_names[i - 1], BatchNorm(out, self.bn_names[i - 1], **dtype))
                channels = out
            self.flat_dim = end_size ** 2 * channels
            setattr(self, self.linear_name, Linear(self.flat_dim, 1, self.linear_name, **dtype))

    def __call__(self, images: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        h = leaky_relu(self.d_h0_conv(images))
        for i in range(1, self.layers):
            h = leaky_relu(getattr(self, self.bn_names[i - 1])(getattr(self, f"d_h{i}_conv")(h), training))
        logits = getattr(self, self.linear_name)(tf.reshape(h, [-1, self.flat_dim]))
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

    def apply(self, variables, gradients, learning_rate: tf.Tensor | None = None) -> None:
        """One step on each variable; learning_rate (a tensor) for this step instead of the optimiser's own."""
        lr = tf.constant(self.learning_rate, tf.float32) if learning_rate is None else learning_rate
        t = tf.cast(self.iterations.assign_add(1), tf.float32)
        beta1_power, beta2_power = self.beta1 ** t, self.beta2 ** t
        for var, m, v, grad in zip(variables, self.m, self.v, gradients):
            # The fused kernel: m, v moments, lr * sqrt(1 - b2^t) / (1 - b1^t) step.
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=beta1_power, beta2_power=beta2_power,
                lr=lr, beta1=tf.constant(self.beta1, tf.float32),
                beta2=tf.constant(self.beta2, tf.float32), epsilon=tf.constant(self.epsilon, tf.float32),
                grad=grad)

    def reset(self) -> None:
        """Back to the start: no step taken, zero moments."""
        self.iterations.assign(0)
        for slot in self.m + self.v:
            slot.assign(tf.zeros_like(slot))


# ----------------------------------------------------------------------------
# The DCGAN
# ----------------------------------------------------------------------------

class DCGAN(tf.Module):
    """Generator, discriminator, their optimisers and the training state."""

    def __init__(self, image_size: int = DEFAULT.image_size, z_dim: int = DEFAULT.z_dim, gf_dim: int = DEFAULT.gf_dim,
                 df_dim: int = DEFAULT.df_dim, c_dim: int = DEFAULT.c_dim, learning_rate: float = 0.0002,
                 beta1: float = 0.5, seed: int | None = None, compute_dtype=None, layout: str = DEFAULT.layout,
                 phases: bool | None = None, ema_decay: float = 0.0):
        """Build it under `strategy.scope()` to train or complete with a tf.distribute strategy;
        compute_dtype "float16" or "bfloat16" computes in that type (variables stay float32);
        layout "article" (the default) or "later": the original's two eras (layouts.py);
        phases: the CPU's stride-2 convolutions by phases (True), by TensorFlow's kernels (False),
        or as ops.phase_method's rule (None); the same maths and variables either way;
        ema_decay > 0 keeps an exponential moving average of G's weights beside G (`average_generator`,
        extra variables: G's own and the original's names stay as they are), which `sampler` is."""
        super().__init__(name="dcgan")
        layouts.check(layout, image_size)
        self.image_size, self.z_dim, self.gf_dim, self.df_dim, self.c_dim = image_size, z_dim, gf_dim, df_dim, c_dim
        self.layout, self.phases = layout, phases
        self.framing_json = ""  # how the training faces were cut (framing.py), as JSON text: a tf.Module wraps dicts
        # The strategy whose scope built the model; None: the default strategy (one device).
        self.strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
        self.compute_dtype = distribute.compute_dtype(compute_dtype.name if isinstance(compute_dtype, tf.DType)
                                                      else compute_dtype)
        if seed is not None:
            tf.random.set_seed(seed)
        networks = dict(compute_dtype=self.compute_dtype, layout=layout, phases=phases)
        self.generator = Generator(image_size, z_dim, gf_dim, c_dim, **networks)
        self.ema_decay = float(ema_decay)
        self.average_generator = None
        if self.ema_decay > 0:
            self.average_generator = Generator(image_size, z_dim, gf_dim, c_dim, **networks, name=AVERAGE_NAME)
            self.reset_average()
        self.discriminator = Discriminator(image_size, df_dim, c_dim, **networks)
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
        self._checkpoint = tf.train.Checkpoint(**self.networks(), d_optim=self.d_optim, g_optim=self.g_optim,
                                               step=self.step, epoch=self.epoch, rng=self.rng, **scales)
        self._train_step = None

    def networks(self) -> dict[str, tf.Module | tf.Variable]:
        """The checkpoint's parts that completion and fine-tuning need, by their checkpoint names:
        G, D, the fixed sample z and the average of G's weights where the model keeps one."""
        average = {AVERAGE_NAME: self.average_generator} if self.average_generator is not None else {}
        return dict(generator=self.generator, discriminator=self.discriminator, sample_z=self.sample_z, **average)

    # -- description -------------------------------------------------------
    @property
    def config(self) -> ModelConfig:
        """Its size and layout, as dcgan.json records them."""
        return ModelConfig(self.image_size, self.z_dim, self.gf_dim, self.df_dim, self.c_dim, self.layout)

    @property
    def model_variables(self) -> list[tf.Variable]:
        """The networks' variables (weights and batch-norm statistics), as the original saved them."""
        return list(self.generator.variables) + list(self.discriminator.variables)

    @property
    def sampler(self) -> Generator:
        """The generator that completion, the encoder, the export and the sample grids use: the
        average of G's weights where the model keeps one, else G."""
        return self.generator if self.average_generator is None else self.average_generator

    def reset_average(self) -> None:
        """Start the average of G's weights (and its batch-norm statistics) at G's."""
        for average, var in zip(self.average_generator.variables, self.generator.variables):
            average.assign(var)

    def fold_average(self) -> None:
        """Make G the average of G's weights and keep no average: the sampler's weights stay the same,
        the checkpoint holds one generator instead of two, and fine-tuning starts from the average."""
        if self.average_generator is None:
            return
        for var, average in zip(self.generator.variables, self.average_generator.variables):
            var.assign(average)
        self.average_generator = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config.record().items())
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
        if self.average_generator is not None:
            self._update_average(z)
        self.step.assign_add(1)
        return dict(d_loss=d_losses["d_loss"], d_loss_real=d_losses["d_loss_real"],
                    d_loss_fake=d_losses["d_loss_fake"], g_loss=g_loss, z=z, d=d_real, d_=d_fake)

    def _update_average(self, z: tf.Tensor) -> None:
        """Move the average of G's weights towards G's (Yazici et al. 2019), with the decay warmed up as
        tf.train.ExponentialMovingAverage's num_updates does, so early steps follow G closely. Its batch-norm
        statistics are its own, moved as G's are: by a forward pass in training mode on the step's z."""
        t = tf.cast(self.step, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
        for average, var in zip(self.average_generator.trainable_variables, self.generator.trainable_variables):
            average.assign_sub((average - var) * (1.0 - decay))
        self.average_generator(z, training=True)

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
        """The sampler's G(z) with moving batch-norm statistics; the fixed sample z by default."""
        return self.sampler(self.sample_z if z is None else z, training=training)

    # -- checkpoints -------------------------------------------------------
    def _manager(self, checkpoint_dir: str | os.PathLike) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(self._checkpoint, str(checkpoint_dir), max_to_keep=3,
                                          checkpoint_name=CHECKPOINT_NAME)

    def save(self, checkpoint_dir: str | os.PathLike, step: int | None = None) -> str:
        """Write DCGAN.model-STEP and dcgan.json; the previous checkpoint stays valid until this one is whole."""
        if step is not None:
            self.step.assign(step)
        number = int(self.step.numpy())
        try:
            utils.save_json(Path(checkpoint_dir) / HPARAMS_FILE, json_record(self))
            return self._manager(checkpoint_dir).save(checkpoint_number=number)
        except (OSError, tf.errors.OpError) as error:  # a full disk, a folder that went away, ...
            _remove_partial_checkpoint(checkpoint_dir, number)
            full = getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error)
            reason = "no space left on the device" if full else first_line(error)
            raise CheckpointError(f"{checkpoint_dir}: cannot save the checkpoint of step {number} ({reason}); "
                                  f"the previous checkpoint there is kept") from None

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
            raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(error)})") from None
        original = OBJECT_GRAPH_KEY not in shapes
        if original and layouts.likely_layout(shapes) != self.layout:
            raise CheckpointError(f"{path}: has the original's {layouts.likely_layout(shapes)} layout, but {self!r} "
                                  f"has the {self.layout} layout (from_checkpoint builds the checkpoint's own)")
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
            if self.average_generator is not None and not has_average(shapes):
                self.reset_average()  # a checkpoint without one (the original's, older ones): start at its G
        except (tf.errors.OpError, ValueError, TypeError, IndexError) as error:  # IndexError: a truncated .data file
            raise CheckpointError(f"{path}: cannot read the checkpoint's values ({first_line(error)}); "
                                  f"is its .data file missing or truncated?") from None
        self.original_format = original
        return True

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | os.PathLike, **kwargs) -> "DCGAN":
        """Rebuild the model that wrote checkpoint_dir (from dcgan.json, or from the TF1 shapes) and load it."""
        config = read_config(checkpoint_dir)
        if "ema_decay" not in kwargs and has_average(checkpoint_shapes(checkpoint_dir)):
            kwargs["ema_decay"] = 1.0  # build the average to read it; only training moves it, at its own decay
        try:
            model = cls(**dataclasses.asdict(config), **kwargs)
        except (ValueError, TypeError) as error:  # a hand-edited dcgan.json
            raise CheckpointError(f"{checkpoint_dir}: cannot build the model it describes "
                                  f"({first_line(error)})") from None
        if not model.load(checkpoint_dir):
            raise CheckpointError(no_checkpoint_message(checkpoint_dir))
        model.framing_json = json.dumps(read_framing(checkpoint_dir))
        return model




def _remove_partial_checkpoint(checkpoint_dir: str | os.PathLike, number: int) -> None:
    """Delete what a failed save of DCGAN.model-NUMBER left (its temporary folder, a part of its
    files), unless the state file names that checkpoint, so that a full disk gets its space back."""
    folder, prefix = Path(checkpoint_dir), f"{CHECKPOINT_NAME}-{number}"
    shutil.rmtree(folder / f"{prefix}_temp", ignore_errors=True)
    try:
        if latest_checkpoint(folder) == str(folder / prefix):
            return
    except CheckpointError:
        pass
    for path in folder.glob(f"{prefix}.*"):
        path.unlink(missing_ok=True)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Convert the newest checkpoint in src (the original's TF1 format) to this port's format in dst.

    The step is the original's global step (DCGAN.model-N); dst gets dcgan.json too, and
    must not hold a checkpoint already. Returns the written checkpoint's prefix. The
    optimiser state, which the original's checkpoints do not hold, starts fresh.
    """
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
        raise CheckpointError(f"cannot write the checkpoint to {dst} ({first_line(error)})") from None
