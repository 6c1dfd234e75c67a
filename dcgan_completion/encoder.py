"""A learned start for z: an encoder E(masked image, mask) -> z.

Trained on G's own samples under random masks of every kind the completion meets (Chai et al.,
"Using latent space regression to analyze and leverage compositionality in GANs", ICLR 2021):
it needs no data and fits any trained G. The completion then starts at E(x) and optimises from
there (Zhu et al.'s In-Domain GAN inversion; Lahiri et al. 2019 start this very optimisation
near its answer), so fewer iterations reach the same fill.

It is saved beside the networks, in the checkpoint folder's encoder/ (a tf.train checkpoint of
its own and encoder.json), so the networks' checkpoint, the original's variable names and older
checkpoints stay as they are.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw
from tqdm import tqdm

import utils
from dcgan_completion.networks.storage import CheckpointError, first_line
from model import DCGAN, Adam
from ops import BatchNorm, Conv2d, Linear, leaky_relu

FOLDER = "encoder"              # inside the checkpoint folder
CONFIG_FILE = "encoder.json"
MASK_KINDS = ("center", "half", "box", "strokes", "pixels", "grid", "none")


class Encoder(tf.Module):
    """(images in [-1, 1] (N, S, S, C), masks (N, S, S, 1), 1 = known) -> z (N, z_dim) in (-1, 1).

    D's shape: 5x5 stride-2 convolutions to 4x4 (batch norm after the first), leaky ReLU, then a
    linear layer and tanh (z's range). Its input is the known pixels (the missing ones 0) and the
    mask as a fourth channel."""

    def __init__(self, image_size: int, z_dim: int, ef_dim: int, c_dim: int):
        super().__init__(name="encoder")
        self.image_size, self.z_dim, self.ef_dim, self.c_dim = image_size, z_dim, ef_dim, c_dim
        self.trained_steps: int | None = None  # as saved in encoder.json (load)
        self.layers = max(1, int(math.log2(image_size // 4)))
        end = image_size // 2 ** self.layers
        with self.name_scope:
            channels = c_dim + 1
            self.convs, self.norms = [], []
            for i in range(self.layers):
                self.convs.append(Conv2d(channels, ef_dim * 2 ** i, f"e_h{i}_conv"))
                self.norms.append(BatchNorm(ef_dim * 2 ** i, f"e_bn{i}") if i > 0 else None)
                channels = ef_dim * 2 ** i
            self.flat_dim = end * end * channels
            self.linear = Linear(self.flat_dim, z_dim, "e_lin")

    @property
    def config(self) -> dict:
        return dict(image_size=self.image_size, z_dim=self.z_dim, ef_dim=self.ef_dim, c_dim=self.c_dim)

    def __call__(self, images: tf.Tensor, masks: tf.Tensor, training: bool = False) -> tf.Tensor:
        masks = tf.cast(masks[..., :1], tf.float32)
        h = tf.concat([tf.cast(images, tf.float32) * masks, masks], axis=-1)
        for conv, norm in zip(self.convs, self.norms):
            h = conv(h)
            h = leaky_relu(h if norm is None else norm(h, training))
        return tf.tanh(self.linear(tf.reshape(h, [-1, self.flat_dim])))


def for_model(model: DCGAN, ef_dim: int | None = None) -> Encoder:
    """An encoder for this model's G: its image size, z and channels; D's width unless told."""
    return Encoder(model.image_size, model.z_dim, ef_dim or model.df_dim, model.c_dim)


# ----------------------------------------------------------------------------
# Random masks of every kind the completion meets
# ----------------------------------------------------------------------------

def random_masks(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """count masks (count, S, S, 1) float32, 1 = known: each of a kind drawn from MASK_KINDS: a
    centred square of random size and offset (complete.py's center), a half (left, right, top,
    bottom), a random box (a user's mask file), brush strokes (the page's), missing pixels (the
    original's random, at a random rate), the grid, or nothing missing (G(z) itself)."""
    return np.stack([_mask(rng, rng.choice(MASK_KINDS), size) for _ in range(count)])[..., None]


def _mask(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    mask = np.ones((size, size), np.float32)
    if kind == "center":
        side = int(size * rng.uniform(0.3, 0.7))
        top, left = (np.clip(size // 2 - side // 2 + rng.integers(-size // 8, size // 8 + 1, 2), 0, size - side))
        mask[top:top + side, left:left + side] = 0.0
    elif kind == "half":
        axis, first = rng.integers(2), rng.integers(2)
        part = (slice(None, size // 2) if first else slice(size // 2, None))
        mask[(part, slice(None)) if axis == 0 else (slice(None), part)] = 0.0
    elif kind == "box":
        height, width = (rng.uniform(0.2, 0.6, 2) * size).astype(int) + 1
        top, left = rng.integers(0, size - height + 1), rng.integers(0, size - width + 1)
        mask[top:top + height, left:left + width] = 0.0
    elif kind == "strokes":
        canvas = Image.new("L", (size, size), 255)
        draw = ImageDraw.Draw(canvas)
        for _ in range(rng.integers(1, 5)):
            points = [tuple(p) for p in rng.uniform(0, size, (rng.integers(2, 5), 2))]
            draw.line(points, fill=0, width=max(1, int(size * rng.uniform(0.05, 0.15))), joint="curve")
        mask = np.asarray(canvas, np.float32) / 255.0
    elif kind == "pixels":
        mask[rng.random((size, size)) < rng.uniform(0.2, 0.8)] = 0.0
    elif kind == "grid":
        mask[:, :] = 0.0
        mask[::4, ::4] = 1.0
    return mask


# ----------------------------------------------------------------------------
# Training on G's samples
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class EncoderSettings:
    batch_size: int = 64            # G's samples per step, each under a fresh mask
    learning_rate: float = 0.0002
    beta1: float = 0.5
    image_weight: float = 1.0       # the loss: mean (E(x) - z)^2 + image_weight * mean |G(E(x)) - G(z)|
    seed: int = 0


class EncoderTrainer:
    """Trains an encoder for a model's G: z ~ U(-1, 1), x = G(z), a random mask m per image; the
    loss is mean (E(x * m, m) - z)^2 + image_weight * mean |G(E(x * m, m)) - x| (G fixed, its moving
    batch-norm statistics). The state (encoder, Adam, step) is one checkpoint, so training resumes."""

    def __init__(self, model: DCGAN, encoder: Encoder, settings: EncoderSettings):
        self.model, self.encoder, self.settings = model, encoder, settings
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.optimizer = Adam(encoder.trainable_variables, settings.learning_rate, settings.beta1)
        self.checkpoint = tf.train.Checkpoint(encoder=encoder, optimizer=self.optimizer, step=self.step)
        self._train_step = tf.function(self._step_fn)

    def _step_fn(self, z: tf.Tensor, masks: tf.Tensor) -> dict[str, tf.Tensor]:
        images = self.model.sampler(z, training=False)
        with tf.GradientTape() as tape:
            z_hat = self.encoder(images, masks, training=True)
            z_loss = tf.reduce_mean(tf.square(z_hat - z))
            fit = tf.cast(self.model.sampler(z_hat, training=False), tf.float32) - tf.cast(images, tf.float32)
            image_loss = tf.reduce_mean(tf.abs(fit))
            loss = z_loss + self.settings.image_weight * image_loss
        variables = self.encoder.trainable_variables
        self.optimizer.apply(variables, tape.gradient(loss, variables))
        self.step.assign_add(1)
        return {"loss": loss, "z_loss": z_loss, "image_loss": image_loss}

    def batches(self) -> Callable[[], tuple[tf.Tensor, tf.Tensor]]:
        """Each step's z and masks, from the seed and the step (so a resumed run draws what it would have)."""
        def draw() -> tuple[tf.Tensor, tf.Tensor]:
            step = int(self.step.numpy())
            rng = np.random.default_rng([self.settings.seed, step])
            z = rng.uniform(-1.0, 1.0, (self.settings.batch_size, self.model.z_dim)).astype(np.float32)
            return tf.constant(z), tf.constant(random_masks(rng, self.settings.batch_size, self.model.image_size))
        return draw

    def train(self, steps: int, on_step: Callable[[int, dict], bool] | None = None) -> list[dict]:
        """Train up to `steps` steps in all; on_step(step, losses) after each, True to stop. Returns the history."""
        history, draw = [], self.batches()
        while int(self.step.numpy()) < steps:
            out = {k: float(v) for k, v in self._train_step(*draw()).items()}
            step = int(self.step.numpy())
            history.append({"step": step, **out})
            if on_step is not None and on_step(step, out):
                break
        return history

    # -- saving ------------------------------------------------------------
    def save(self, checkpoint_dir: str | os.PathLike, networks_only: bool = False, record: dict | None = None) -> str:
        """DIR/encoder/encoder-STEP and encoder.json (its sizes, steps and `record`); networks_only:
        without Adam's state (a third of the size, as a shipped model; training it on starts a fresh Adam)."""
        folder = Path(checkpoint_dir) / FOLDER
        utils.save_json(folder / CONFIG_FILE, {**self.encoder.config, "steps": int(self.step.numpy()), **(record or {})})
        state = tf.train.Checkpoint(encoder=self.encoder, step=self.step) if networks_only else self.checkpoint
        return tf.train.CheckpointManager(state, str(folder), max_to_keep=1, checkpoint_name="encoder").save(
            checkpoint_number=int(self.step.numpy()))

    def restore(self, checkpoint_dir: str | os.PathLike) -> bool:
        """Resume from checkpoint_dir's encoder, if it has one of this shape; False when it has none."""
        path = tf.train.latest_checkpoint(str(Path(checkpoint_dir) / FOLDER))
        if path is None:
            return False
        _read(self.checkpoint, path)
        return True


@dataclass(frozen=True)
class FitResult:
    started: int               # the encoder's steps before this call (0: a new one)
    step: int                  # its steps in all, when it stopped
    stop_signal: int | None    # the signal that stopped it (SIGINT, SIGTERM), or None

    @property
    def exit_code(self) -> int:
        return 0 if self.stop_signal is None else 128 + self.stop_signal


def fit(model: DCGAN, checkpoint_dir: str | os.PathLike, steps: int, settings: EncoderSettings = EncoderSettings(),
        log_dir: str | os.PathLike | None = None, save_every: int = 250, networks_only: bool = False,
        deadline: float | None = None, record: dict | None = None) -> FitResult:
    """Train checkpoint_dir's encoder (resumed where it has one) up to `steps` steps in all, with a
    progress bar and TensorBoard scalars (encoder/...); saved (with `record` in encoder.json) every
    save_every steps, at the end, on Ctrl-C or SIGTERM and past `deadline` (time.monotonic()), so the
    same call resumes it."""
    utils.output_folder(Path(checkpoint_dir) / FOLDER, "the encoder's folder")
    trainer = EncoderTrainer(model, for_model(model), settings)
    if trainer.restore(checkpoint_dir):
        print(f"Resuming the encoder of {checkpoint_dir} at step {int(trainer.step.numpy())}")
    start, stop = int(trainer.step.numpy()), []
    if start >= steps:
        return FitResult(start, start, None)
    handlers = {s: signal.signal(s, lambda signum, frame: stop.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(total=steps, initial=start, desc="Encoder", unit="step", dynamic_ncols=True, mininterval=0.5)
    writer = tf.summary.create_file_writer(str(log_dir or Path(checkpoint_dir) / FOLDER / "logs"))

    def on_step(step: int, losses: dict) -> bool:
        with writer.as_default():
            for name, value in losses.items():
                tf.summary.scalar(f"encoder/{name}", value, step=step)
        bar.update(1)
        bar.set_postfix(z_loss=f"{losses['z_loss']:.4f}", image_loss=f"{losses['image_loss']:.4f}", refresh=False)
        ending = bool(stop) or (deadline is not None and time.monotonic() > deadline)
        if step % save_every == 0 or step == steps or ending:
            trainer.save(checkpoint_dir, networks_only, record)
        return ending

    try:
        trainer.train(steps, on_step)
    finally:
        bar.close()
        writer.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return FitResult(start, int(trainer.step.numpy()), stop[0] if stop else None)


def _read(checkpoint: tf.train.Checkpoint, path: str) -> None:
    try:
        checkpoint.read(path).expect_partial()
    except (tf.errors.OpError, ValueError, TypeError, IndexError) as error:
        raise CheckpointError(f"{path}: cannot read the encoder ({first_line(error)}); "
                              f"train it again with train_encoder.py") from None


def _config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read the encoder's description ({first_line(error)})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return config


def saved_record(checkpoint_dir: str | os.PathLike) -> dict:
    """checkpoint_dir's encoder.json ({} without one): sizes, steps, and what its trainer recorded."""
    return _config(Path(checkpoint_dir) / FOLDER / CONFIG_FILE)


def load(checkpoint_dir: str | os.PathLike, model: DCGAN) -> Encoder | None:
    """The encoder saved with checkpoint_dir's model (None when it has none)."""
    folder = Path(checkpoint_dir) / FOLDER
    path = tf.train.latest_checkpoint(str(folder))
    if path is None:
        return None
    config = _config(folder / CONFIG_FILE)
    encoder = for_model(model, config.get("ef_dim"))
    encoder.trained_steps = config.get("steps")  # for the start line
    if config and (config.get("z_dim"), config.get("image_size")) != (model.z_dim, model.image_size):
        raise CheckpointError(f"{folder}: its encoder is for a {config.get('image_size')}x{config.get('image_size')} "
                              f"model with z of {config.get('z_dim')}, not this one; train it again with "
                              f"train_encoder.py")
    _read(tf.train.Checkpoint(encoder=encoder), path)
    return encoder


def for_completion(checkpoint_dir: str | os.PathLike, model: DCGAN, z_init: str) -> tuple[Encoder | None, str]:
    """The completion's start: (the encoder, or None for random z) and the line that says which."""
    if z_init == "random":
        return None, "start: random z (--zInit random)"
    found = load(checkpoint_dir, model)
    if found is None:
        return None, (f"start: random z ({checkpoint_dir} has no encoder; "
                      f"'python train_encoder.py --checkpointDir {checkpoint_dir}' adds one)")
    trained = f", trained {found.trained_steps} steps on G's samples" if found.trained_steps else ""
    return found, f"start: z from the encoder in {Path(checkpoint_dir) / FOLDER}{trained} (--zInit random: U(-1, 1))"
