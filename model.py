"""The DCGAN of the original (Kim's DCGAN-tensorflow as used by Amos, 2016) in TensorFlow 2.

`DCGAN` holds the generator, the discriminator, their two Adam optimisers and
the training bookkeeping (step and epoch counters, the fixed sample z, the
random generator), and knows how to train one step and save and load itself.
"""
from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import utils
from ops import BatchNorm, Conv2d, Conv2dTranspose, Linear, leaky_relu

HPARAMS_FILE = "dcgan.json"        # the model's hyper-parameters, beside its checkpoints
CHECKPOINT_NAME = "DCGAN.model"     # the original's checkpoint prefix: DCGAN.model-STEP
SAMPLE_COUNT = 64                   # the fixed sample z: an 8x8 grid
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # present in TF2 checkpoints only


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded into this model; the message says why."""


def is_valid_image_size(size: int) -> bool:
    return size >= 8 and size & (size - 1) == 0


def num_layers(image_size: int) -> int:
    """Stride-2 layers per network: 4 as in the original, 3 at 8x8."""
    return min(4, int(math.log2(image_size)))


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

    def __init__(self, image_size: int, z_dim: int, gf_dim: int, c_dim: int):
        super().__init__(name="generator")
        layers = num_layers(image_size)
        self.start_size = image_size // 2 ** layers
        self.start_channels = gf_dim * 2 ** (layers - 1)
        with self.name_scope:
            self.g_h0_lin = Linear(z_dim, self.start_size ** 2 * self.start_channels, "g_h0_lin")
            self.g_bn0 = BatchNorm(self.start_channels, "g_bn0")
            channels = self.start_channels
            for i in range(1, layers + 1):
                out = c_dim if i == layers else channels // 2
                setattr(self, f"g_h{i}", Conv2dTranspose(channels, out, f"g_h{i}"))
                if i < layers:
                    setattr(self, f"g_bn{i}", BatchNorm(out, f"g_bn{i}"))
                channels = out
        self.layers = layers

    def __call__(self, z: tf.Tensor, training: bool) -> tf.Tensor:
        h = self.g_h0_lin(z)
        h = tf.reshape(h, [-1, self.start_size, self.start_size, self.start_channels])
        h = tf.nn.relu(self.g_bn0(h, training))
        for i in range(1, self.layers):
            h = tf.nn.relu(getattr(self, f"g_bn{i}")(getattr(self, f"g_h{i}")(h), training))
        return tf.tanh(getattr(self, f"g_h{self.layers}")(h))


class Discriminator(tf.Module):
    """images (N, S, S, c_dim) -> (probability, logit), each (N, 1).

    At 64x64: convs to 32x32x64 (leaky ReLU), 16x16x128, 8x8x256, 4x4x512 (each
    with batch norm and leaky ReLU), then d_h3_lin 8192 -> 1.
    """

    def __init__(self, image_size: int, df_dim: int, c_dim: int):
        super().__init__(name="discriminator")
        layers = num_layers(image_size)
        self.layers = layers
        end_size = image_size // 2 ** layers
        with self.name_scope:
            channels = c_dim
            for i in range(layers):
                out = df_dim * 2 ** i
                setattr(self, f"d_h{i}_conv", Conv2d(channels, out, f"d_h{i}_conv"))
                if i > 0:
                    setattr(self, f"d_bn{i}", BatchNorm(out, f"d_bn{i}"))
                channels = out
            self.flat_dim = end_size ** 2 * channels
            setattr(self, f"d_h{layers - 1}_lin", Linear(self.flat_dim, 1, f"d_h{layers - 1}_lin"))

    def __call__(self, images: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        h = leaky_relu(self.d_h0_conv(images))
        for i in range(1, self.layers):
            h = leaky_relu(getattr(self, f"d_bn{i}")(getattr(self, f"d_h{i}_conv")(h), training))
        logits = getattr(self, f"d_h{self.layers - 1}_lin")(tf.reshape(h, [-1, self.flat_dim]))
        return tf.sigmoid(logits), logits


# ----------------------------------------------------------------------------
# Adam, exactly as TensorFlow 1's AdamOptimizer (epsilon 1e-8)
# ----------------------------------------------------------------------------

class Adam(tf.Module):
    """Adam over a fixed list of variables, with its moments as checkpointable slots."""

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
                 c_dim: int = 3, learning_rate: float = 0.0002, beta1: float = 0.5, seed: int | None = None):
        super().__init__(name="dcgan")
        if not is_valid_image_size(image_size):
            raise ValueError(f"image_size must be a power of two >= 8, not {image_size}")
        self.image_size, self.z_dim, self.gf_dim, self.df_dim, self.c_dim = image_size, z_dim, gf_dim, df_dim, c_dim
        if seed is not None:
            tf.random.set_seed(seed)
        self.generator = Generator(image_size, z_dim, gf_dim, c_dim)
        self.discriminator = Discriminator(image_size, df_dim, c_dim)
        self.d_optim = Adam(self.discriminator.trainable_variables, learning_rate, beta1, name="d_optim")
        self.g_optim = Adam(self.generator.trainable_variables, learning_rate, beta1, name="g_optim")
        # Training bookkeeping, checkpointed so that a restart continues where it stopped.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.rng = (tf.random.Generator.from_seed(seed) if seed is not None
                    else tf.random.Generator.from_non_deterministic_state())
        self.sample_z = tf.Variable(self.rng.uniform([SAMPLE_COUNT, z_dim], -1.0, 1.0), trainable=False,
                                    name="sample_z")
        self._checkpoint = tf.train.Checkpoint(
            generator=self.generator, discriminator=self.discriminator, d_optim=self.d_optim,
            g_optim=self.g_optim, step=self.step, epoch=self.epoch, rng=self.rng, sample_z=self.sample_z)
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
    def _train_step_fn(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        z = self.sample_noise(tf.shape(images)[0])
        # One D update. D sees the real and the fake batch separately, so each
        # gets its own batch-norm statistics, as in the original.
        fake = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            d_real, real_logits = self.discriminator(images, training=True)
            d_fake, fake_logits = self.discriminator(fake, training=True)
            d_losses = self.losses(real_logits, fake_logits)
        d_vars = self.discriminator.trainable_variables
        self.d_optim.apply(d_vars, tape.gradient(d_losses["d_loss"], d_vars))
        # Two G updates with the same z, "so that d_loss does not go to zero".
        g_vars = self.generator.trainable_variables
        for _ in range(2):
            with tf.GradientTape() as tape:
                _, fake_logits = self.discriminator(self.generator(z, training=True), training=True)
                g_loss = sigmoid_cross_entropy(fake_logits, 1.0)
            self.g_optim.apply(g_vars, tape.gradient(g_loss, g_vars))
        self.step.assign_add(1)
        return dict(d_loss=d_losses["d_loss"], d_loss_real=d_losses["d_loss_real"],
                    d_loss_fake=d_losses["d_loss_fake"], g_loss=g_loss, z=z, d=d_real, d_=d_fake)

    def compile(self, xla: bool = False) -> None:
        """Compile the training step into one graph (with XLA if asked)."""
        self._train_step = tf.function(self._train_step_fn, jit_compile=xla, reduce_retracing=True)

    def train_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """One D update, then two G updates with the same z ~ U(-1, 1); returns losses and summaries."""
        if self._train_step is None:
            self.compile()
        return self._train_step(images)

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
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        original = _OBJECT_GRAPH_KEY not in shapes
        for var in self.model_variables:
            name = variable_name(var)
            key = name if original else f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
            if key not in shapes:
                raise CheckpointError(f"{path}: has no variable {name} (is it a checkpoint of another model?)")
            if list(shapes[key]) != var.shape.as_list():
                raise CheckpointError(f"{path}: variable {name} has shape {list(shapes[key])} in the checkpoint "
                                      f"but {var.shape.as_list()} in {self!r}")
        if original:
            for var in self.model_variables:
                var.assign(reader.get_tensor(variable_name(var)))
            self.original_format = True
        else:
            self._checkpoint.read(path).expect_partial()
            self.original_format = False
        return True

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | os.PathLike, **kwargs) -> "DCGAN":
        """Rebuild the model that wrote checkpoint_dir (from dcgan.json, or from the TF1 shapes) and load it."""
        hparams = read_hparams(checkpoint_dir)
        model = cls(**hparams, **kwargs)
        if not model.load(checkpoint_dir):
            raise CheckpointError(f"no checkpoint in {checkpoint_dir}")
        return model


def variable_name(var: tf.Variable) -> str:
    """'generator/g_h1/w:0' -> 'generator/g_h1/w'."""
    return var.name.split(":")[0]


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint prefix in a folder, or None."""
    if not os.path.isdir(checkpoint_dir):
        return None
    path = tf.train.latest_checkpoint(str(checkpoint_dir))
    if path is None or not tf.io.gfile.glob(path + ".index"):
        return None
    return path


def read_hparams(checkpoint_dir: str | os.PathLike) -> dict:
    """The model's hyper-parameters: dcgan.json, or inferred from an original TF1 checkpoint's shapes."""
    json_path = Path(checkpoint_dir) / HPARAMS_FILE
    if json_path.exists():
        import json
        with open(json_path) as handle:
            return json.load(handle)
    path = latest_checkpoint(checkpoint_dir)
    if path is None:
        raise CheckpointError(f"no checkpoint in {checkpoint_dir}")
    return infer_hparams(tf.train.load_checkpoint(path).get_variable_to_shape_map(), path)


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
# Training loop
# ----------------------------------------------------------------------------

def image_dataset(images: np.ndarray, batch_size: int, seed: int | None = None) -> tf.data.Dataset:
    """uint8 images in memory -> shuffled (every epoch), batched [-1, 1] floats, prefetched."""
    return (tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=True)
            .map(lambda x: tf.cast(x, tf.float32) / 127.5 - 1.0, num_parallel_calls=tf.data.AUTOTUNE)
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
            .map(lambda image, ok: tf.cast(image, tf.float32) / 127.5 - 1.0)
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
        if not self.streaming:
            images, loaded, errors = utils.load_images(paths, size, crop=config.crop)
            if errors:
                utils.warn(utils.describe_bad_files(errors))
            count, dataset = len(loaded), image_dataset(images, config.batch_size, config.seed)
        else:
            print(f"Dataset of {len(paths)} images does not fit in memory: decoding on the fly.")
            count, dataset = len(paths), streaming_dataset(paths, size, config.crop, config.batch_size, errors,
                                                           config.seed)
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
            print(f"Resuming from {latest_checkpoint(config.checkpoint_dir)} at step {int(model.step)}{note}")
        total_steps = config.epoch * steps_per_epoch
        if int(model.step) >= total_steps:
            print(f"Already trained for {config.epoch} epochs ({int(model.step)} steps); nothing to do.")
            return 0
        model.compile(xla=config.xla)
        writer = tf.summary.create_file_writer(config.log_dir)
        previous_handlers = self._install_signal_handlers()
        last_saved = int(model.step)
        try:
            with writer.as_default():
                last_saved = self._loop(dataset, steps_per_epoch, total_steps, last_saved)
        except StopTraining as stop:
            print(f"error: {stop}", flush=True)
            return 1
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            writer.close()
        if self.streaming and self.decode_errors:
            utils.warn(utils.describe_bad_files(sorted(set(self.decode_errors))))
        if self.stop_signal is not None:
            name = signal.Signals(self.stop_signal).name
            print(f"Stopped by {name}: checkpoint saved at step {last_saved} in {config.checkpoint_dir}; "
                  f"run the same command again to resume.", flush=True)
            return 128 + self.stop_signal
        print(f"Done: {int(model.step)} steps; checkpoint in {config.checkpoint_dir}, samples in "
              f"{config.sample_dir}, TensorBoard logs in {config.log_dir}.")
        return 0

    def _loop(self, dataset, steps_per_epoch: int, total_steps: int, last_saved: int) -> int:
        from tqdm import tqdm

        model, config = self.model, self.config
        step = int(model.step)
        for epoch in range(step // steps_per_epoch, config.epoch):
            model.epoch.assign(epoch)
            first = step - epoch * steps_per_epoch  # > 0 only when resuming mid-epoch
            bar = tqdm(total=steps_per_epoch * config.batch_size, initial=first * config.batch_size,
                       desc=f"Epoch {epoch + 1}/{config.epoch}", unit="img", unit_scale=True,
                       dynamic_ncols=True, mininterval=0.5)
            for index, images in enumerate(dataset.take(steps_per_epoch - first), start=first):
                out = model.train_step(images)
                step = int(model.step)
                losses = {k: float(out[k]) for k in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")}
                bad = [k for k in ("d_loss", "g_loss") if not math.isfinite(losses[k])]
                if bad:
                    bar.close()
                    raise StopTraining(
                        f"{bad[0]} became {losses[bad[0]]} at step {step}; stopped without saving. The last "
                        f"good checkpoint (step {last_saved}) is in {config.checkpoint_dir}; try a lower "
                        f"--learning_rate.")
                for name, value in losses.items():
                    tf.summary.scalar(name, value, step=step)
                bar.update(config.batch_size)
                bar.set_postfix(d_loss=f"{losses['d_loss']:.4f}", g_loss=f"{losses['g_loss']:.4f}", refresh=False)
                if step % config.sample_every == 0 or step == total_steps:
                    self._write_samples(out, step, epoch, index)
                if step % config.save_every == 0 or step == total_steps or self.stop_signal is not None:
                    model.save(config.checkpoint_dir)
                    last_saved = step
                if self.stop_signal is not None:
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
