"""Training, as train_dcgan.py runs it: its typed settings (`TrainingSettings`, the one place for
each default and range), the `tf.data` datasets, and `Trainer`, the loop around the model's step:
the progress bar, sample grids, TensorBoard, checkpoints on a schedule and on signals, the time
limit, and resumption.

    trainer = Trainer(model, TrainingSettings(dataset="faces", epoch=5))  # model: a DCGAN
    exit_code = trainer.run()

TensorFlow is imported on first use, not with this module: train_dcgan.py reads the settings'
defaults to parse its flags, and fails on a bad flag or dataset folder, before TensorFlow starts.
"""
from __future__ import annotations

import argparse
import itertools
import math
import numbers
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import utils

if TYPE_CHECKING:
    import tensorflow as tf
    from model import DCGAN

STRATEGIES = ("default", "mirrored", "multiworker")  # distribute.STRATEGIES (a test checks they agree)
PRECISIONS = ("auto", "off", "float16", "bfloat16")  # auto, then distribute.PRECISIONS


def _tensorflow():
    """TensorFlow, imported (quietly) on first use."""
    utils.import_tensorflow_quietly()
    import tensorflow
    return tensorflow


# -- settings ------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """The values one setting takes. TrainingSettings checks its values by it, and
    train_dcgan.py's flag of the same name parses by it (`flag_type`)."""
    kind: type                      # int, float, str (a path or a choice) or bool
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    power_of_two: bool = False      # image sizes: powers of two >= 8
    optional: bool = False          # None allowed (the checkpoint's value, or no limit)

    def describe(self) -> str:
        if self.choices:
            what = f"one of {', '.join(map(str, self.choices))}"
        elif self.power_of_two:
            what = "a power of two >= 8"
        elif self.kind in (bool, str):
            what = "True or False" if self.kind is bool else "a path"
        elif self.kind is int:
            what = "an integer" + (f" >= {self.low:g}" if self.low > -math.inf else "")
        else:
            what = f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return f"{what} or None" if self.optional else what

    def admits(self, value) -> bool:
        if value is None:
            return self.optional
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, (str, os.PathLike)) and (not self.choices or value in self.choices)
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if self.kind is int and not integral:
            return False
        if not integral and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
            return False
        if self.choices:
            return value in self.choices
        if self.power_of_two:
            return utils.is_valid_image_size(value)
        return (self.low < value if self.low_open else self.low <= value) and \
            (value < self.high if self.high_open else value <= self.high)


POSITIVE_INT = Rule(int, low=1)
POSITIVE = Rule(float, low=0.0, low_open=True, high_open=True)  # finite and > 0
PATH = Rule(str)
FLAG = Rule(bool)
MODEL_SIZE = Rule(int, low=1, optional=True)  # None: the checkpoint's when resuming, else the original's


@dataclass(frozen=True)
class TrainingSettings:
    """What train_dcgan.py's flags say, typed and checked: the original's flags and defaults
    (epoch .. sample_dir), then this port's. The model's sizes (image_size .. c_dim) are what was
    asked: None takes the checkpoint's when resuming, else the original's (train_dcgan.py)."""
    epoch: int = 25
    learning_rate: float = 0.0002
    beta1: float = 0.5
    train_size: float = math.inf         # use at most this many images
    batch_size: int = 64                 # the global batch, over every replica
    image_size: int | None = None
    dataset: str = "lfw-aligned-64"
    checkpoint_dir: str = "checkpoint"
    sample_dir: str = "samples"
    log_dir: str = "logs"
    z_dim: int | None = None
    gf_dim: int | None = None
    df_dim: int | None = None
    c_dim: int | None = None
    crop: bool = False
    input_height: int | None = None      # the side of a centred square to crop (implies crop)
    seed: int | None = None
    sample_every: int = 100
    save_every: int = 500
    xla: bool = False
    time_limit: float | None = None      # minutes
    strategy: str = "default"
    mixed_precision: str = "auto"

    def __post_init__(self):
        for name, rule in RULES.items():
            value = getattr(self, name)
            if not rule.admits(value):
                raise ValueError(f"{name} must be {rule.describe()}, not {value!r}")

    @property
    def crop_side(self) -> bool | int:  # utils.load_image's crop: none, the largest square, or input_height's
        return self.input_height or self.crop


RULES = dict(
    epoch=POSITIVE_INT, learning_rate=POSITIVE, beta1=Rule(float, low=0.0, high=1.0, high_open=True),
    train_size=Rule(float, low=1.0), batch_size=POSITIVE_INT, image_size=Rule(int, power_of_two=True, optional=True),
    dataset=PATH, checkpoint_dir=PATH, sample_dir=PATH, log_dir=PATH,
    z_dim=MODEL_SIZE, gf_dim=MODEL_SIZE, df_dim=MODEL_SIZE, c_dim=Rule(int, choices=(1, 3), optional=True),
    crop=FLAG, input_height=Rule(int, low=1, optional=True), seed=Rule(int, optional=True), sample_every=POSITIVE_INT, save_every=POSITIVE_INT, xla=FLAG,
    time_limit=Rule(float, low=0.0, low_open=True, high_open=True, optional=True),
    strategy=Rule(str, choices=STRATEGIES), mixed_precision=Rule(str, choices=PRECISIONS))
DEFAULTS = TrainingSettings()


def flag_type(name: str) -> dict:
    """argparse keywords for the flag --name by its setting's rule: its type (and choices or action).
    The messages of a bad value are the scripts' usual ones (utils.positive_int, utils.number_in)."""
    rule = RULES[name]
    if rule.kind is bool:
        return dict(action="store_true")
    if rule.choices:
        return dict(type=rule.kind, choices=rule.choices)
    if rule.power_of_two:
        return dict(type=image_size)
    if rule.kind is int:
        return dict(type=utils.positive_int if rule.low == 1 else int)
    if rule.kind is float:
        return dict(type=utils.number_in(rule.low, rule.high, rule.low_open, rule.high_open))
    return {}


def image_size(text: str) -> int:
    """argparse type of --image_size."""
    if not utils.is_valid_image_size(value := int(text)):
        raise argparse.ArgumentTypeError(f"must be a power of two >= 8 (8, 16, 32, 64, 128, ...), not {value}")
    return value


def dataset_images(folder: str | os.PathLike) -> list[str]:
    """The dataset folder's images (searched recursively). Raises UserError when the folder is
    missing, is a file, or holds none."""
    if not os.path.isdir(folder):
        raise utils.UserError(f"dataset folder {folder} does not exist" if not os.path.exists(folder)
                              else f"{folder}: dataset folder is a file, not a folder")
    paths = utils.list_images(folder)
    if not paths:
        raise utils.UserError(f"no .png/.jpg/.jpeg images in dataset folder {folder}")
    return paths


# -- datasets ------------------------------------------------------------------

def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] on the device (utils.to_float's formula)."""
    tf = _tensorflow()
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def image_dataset(images: np.ndarray, batch_size: int, seed: int | None = None) -> tf.data.Dataset:
    """uint8 images in memory -> shuffled (every epoch), batched [-1, 1] floats, prefetched."""
    tf = _tensorflow()
    return (tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=True)
            .map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def streaming_dataset(paths: list, image_size: int, crop: bool | int, batch_size: int, errors: list,
                      seed: int | None = None, channels: int = 3) -> tf.data.Dataset:
    """For datasets too big to hold in memory: decode files on the fly, in parallel.

    Unreadable files are dropped and their errors appended to `errors`. The file list repeats
    (reshuffled on every pass), so every epoch gets its full count of batches however many
    files turn out unreadable; the caller has made sure that a batch's worth can be read.
    """
    tf = _tensorflow()

    def load(path):
        try:
            return utils.load_image(path.decode(), image_size, crop, channels), True
        except utils.ImageError as error:
            errors.append(str(error))
            return np.zeros((image_size, image_size, channels), np.uint8), False

    def decode(path):
        image, ok = tf.numpy_function(load, [path], [tf.uint8, tf.bool], stateful=False)
        return tf.ensure_shape(image, [image_size, image_size, channels]), ok

    return (tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
            .shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
            .repeat()
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


def count_readable(paths: list, image_size: int, crop: bool | int, channels: int, up_to: int) -> int:
    """How many of the files can be decoded, counting no further than up_to."""
    found = 0
    for path in paths:
        if found >= up_to:
            break
        try:
            utils.load_image(path, image_size, crop, channels)
            found += 1
        except utils.ImageError:
            pass
    return found


class StopTraining(Exception):
    """Raised inside the loop to stop early; its message is shown to the user."""


class Trainer:
    """The original's training loop around the model's step: progress, samples, TensorBoard,
    checkpoints, resumption. Under a strategy only the chief writes checkpoints, samples and logs."""

    def __init__(self, model: DCGAN, settings: TrainingSettings, paths: list[str] | None = None):
        """paths: the dataset's images, when the caller has listed them (dataset_images) already."""
        import distribute
        self.model, self.settings, self.paths = model, settings, paths
        self.strategy = model.strategy
        self.chief = distribute.is_chief(self.strategy)
        self.deadline = time.monotonic() + 60.0 * settings.time_limit if settings.time_limit else None
        self.stop_signal = None      # the signal that asked to stop
        self.out_of_time = False     # --time_limit reached
        self.stopped_by_peer = False  # another worker stopped (signal or time limit)
        self.last_saved = 0          # the step of the last checkpoint written (or resumed from)

    # -- data --------------------------------------------------------------
    def dataset(self) -> tuple[tf.data.Dataset, int]:
        """The shuffled batches of one epoch, and their count."""
        import distribute
        settings, size, channels = self.settings, self.model.image_size, self.model.c_dim
        paths = self.paths if self.paths is not None else dataset_images(settings.dataset)
        if settings.train_size < len(paths):
            paths = paths[:int(settings.train_size)]
        errors: list[str] = []
        self.streaming = len(paths) * size * size * channels > memory_budget()
        seed = settings.seed
        if seed is None and distribute.worker_count(self.strategy) > 1:
            # Workers must shuffle alike to shard the data: a seed from the generator's
            # state, which every worker received from the chief.
            seed = int(self.model.rng.state.numpy()[-1] % (2 ** 31))
        if not self.streaming:
            images, loaded, errors = utils.load_images(paths, size, crop=settings.crop_side, channels=channels)
            if errors:
                utils.warn(utils.describe_bad_files(errors))
            count = len(loaded)
        else:
            print(f"Dataset of {len(paths)} images does not fit in memory: decoding on the fly.")
            # A batch's worth of readable files must exist, or the endless stream would find none.
            readable = count_readable(paths, size, settings.crop_side, channels, up_to=settings.batch_size)
            count = len(paths) if readable == settings.batch_size else readable
        self.decode_errors = errors
        if count < settings.batch_size:
            utils.fail(f"dataset folder {settings.dataset} has {count} readable images, "
                       f"fewer than one batch of {settings.batch_size} (lower --batch_size)")
        dataset = (image_dataset(images, settings.batch_size, seed) if not self.streaming else
                   streaming_dataset(paths, size, settings.crop_side, settings.batch_size, errors, seed, channels))
        return dataset, count // settings.batch_size

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

    # -- the run -----------------------------------------------------------
    def run(self) -> int:
        """Train to settings.epoch epochs (or until stopped); returns the process exit code."""
        import distribute
        dataset, steps_per_epoch = self.dataset()
        self._resume()
        dataset = self._distribute(dataset)
        total_steps = self.settings.epoch * steps_per_epoch
        if self._step() >= total_steps:
            print(f"Already trained for {self.settings.epoch} epochs ({self._step()} steps); nothing to do.")
            return 0
        self.model.compile(xla=self.settings.xla)
        try:
            self._train(dataset, steps_per_epoch, total_steps)
        except StopTraining as stop:
            print(f"error: {stop}", file=sys.stderr, flush=True)
            return 1
        if distribute.worker_count(self.strategy) > 1:
            distribute.barrier(self.strategy)  # leave together: the chief hosts the cluster's coordination
        if self.streaming and self.decode_errors:
            utils.warn(utils.describe_bad_files(sorted(set(self.decode_errors))))
        return self._finish_message()

    def _step(self) -> int:
        return int(self.model.step.numpy())

    def _resume(self) -> None:
        """Load the newest checkpoint of settings.checkpoint_dir, if any, and say so."""
        from checkpoints import latest_checkpoint
        folder = self.settings.checkpoint_dir
        if self.model.load(folder):
            note = " (the original's format: optimiser state starts fresh)" if self.model.original_format else ""
            print(f"Resuming from {latest_checkpoint(folder)} at step {self._step()}{note}")
        self.last_saved = self._step()

    def _distribute(self, dataset):
        """Under a strategy: every worker from the chief's state, and the dataset split over the replicas."""
        if self.strategy is None:
            return dataset
        import distribute
        batch = self.settings.batch_size
        per_replica = distribute.per_replica_batch(self.strategy, batch)
        if distribute.worker_count(self.strategy) > 1:
            # Every worker starts from the chief's state, read from the checkpoint or not.
            distribute.broadcast_from_first_replica(self.strategy, self.model.state_variables)
        print(f"Training with {distribute.describe(self.strategy)}: {batch} images per step, "
              f"{per_replica} per replica.")
        return self.model.distribute_dataset(dataset)

    def _train(self, dataset, steps_per_epoch: int, total_steps: int) -> None:
        """The epochs, with the TensorBoard writer open and Ctrl-C (and SIGTERM) asking to stop."""
        tf = _tensorflow()
        writer = tf.summary.create_file_writer(self.settings.log_dir) if self.chief else \
            tf.summary.create_noop_writer()
        previous_handlers = self._install_signal_handlers()
        try:
            with writer.as_default():
                for epoch in range(self._step() // steps_per_epoch, self.settings.epoch):
                    if self._epoch(dataset, epoch, steps_per_epoch, total_steps):
                        break
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            writer.close()

    def _finish_message(self) -> int:
        """Say why training ended; returns the exit code (128 + the signal's number when stopped by one)."""
        settings, step = self.settings, self.last_saved
        if self.stop_signal is not None:
            name = signal.Signals(self.stop_signal).name
            print(f"Stopped by {name}: checkpoint saved at step {step} in {settings.checkpoint_dir}; "
                  f"run the same command again to resume.", flush=True)
            return 128 + self.stop_signal
        if self.out_of_time:
            print(f"Reached --time_limit of {settings.time_limit:g} min at step {step}: checkpoint saved in "
                  f"{settings.checkpoint_dir}; run the same command again to train on.")
        elif self.stopped_by_peer:
            print(f"Stopped at step {step} with the other workers (one was interrupted or reached its "
                  f"--time_limit): checkpoint saved in {settings.checkpoint_dir}; run the same command again to "
                  f"train on.")
        elif not self.chief:
            print(f"Done: {self._step()} steps (this worker writes no files; the chief does).")
        else:
            print(f"Done: {self._step()} steps; checkpoint in {settings.checkpoint_dir}, samples in "
                  f"{settings.sample_dir}, TensorBoard logs in {settings.log_dir}.")
        return 0

    # -- one epoch, one step -----------------------------------------------
    def _epoch(self, dataset, epoch: int, steps_per_epoch: int, total_steps: int) -> bool:
        """One epoch (its rest, when resuming mid-epoch); True when training stops early."""
        settings = self.settings
        self.model.epoch.assign(epoch)
        first = self._step() - epoch * steps_per_epoch  # > 0 only when resuming mid-epoch
        bar = self._progress_bar(epoch, steps_per_epoch, first)
        for index, images in enumerate(self._batches(dataset, steps_per_epoch - first), start=first):
            out = self._train_step(images)
            step = self._step()
            losses = {k: float(out[k]) for k in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")}
            try:
                self._check_finite(losses, step)
            except StopTraining:
                bar.close()
                raise
            self._write_summaries(losses, step)
            bar.update(settings.batch_size)
            bar.set_postfix(d_loss=f"{losses['d_loss']:.4f}", g_loss=f"{losses['g_loss']:.4f}", refresh=False)
            stopping = self._should_stop(out)
            self._maybe_save(step, total_steps, stopping)  # the checkpoint first: a failing grid must not lose it
            self._maybe_sample(out, step, total_steps, stopping, epoch, index)
            if stopping:
                bar.close()
                return True
        bar.close()
        return False

    def _progress_bar(self, epoch: int, steps_per_epoch: int, first: int):
        from tqdm import tqdm
        batch = self.settings.batch_size
        return tqdm(total=steps_per_epoch * batch, initial=first * batch, desc=f"Epoch {epoch + 1}/{self.settings.epoch}",
                    unit="img", unit_scale=True, dynamic_ncols=True, mininterval=0.5, disable=not self.chief)

    def _batches(self, dataset, count: int):
        """count batches: of a fresh pass over the dataset (reshuffled), as distributed values under a strategy."""
        return dataset.take(count) if self.strategy is None else itertools.islice(iter(dataset), count)

    def _late(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def _train_step(self, images) -> dict:
        if self.strategy is None:
            return self.model.train_step(images)
        # Every worker must stop at the same step: this worker's request goes into the step's
        # all-reduce, and all act on out["stop"] (_should_stop).
        return self.model.train_step(images, stop=self.stop_signal is not None or self._late())

    def _check_finite(self, losses: dict, step: int) -> None:
        """Raises StopTraining when D's or G's loss is not finite: stop without saving."""
        bad = [k for k in ("d_loss", "g_loss") if not math.isfinite(losses[k])]
        if not bad:
            return
        from checkpoints import latest_checkpoint
        folder = self.settings.checkpoint_dir
        kept = (f"The last good checkpoint (step {self.last_saved}) is in {folder}" if latest_checkpoint(folder)
                else "No checkpoint had been saved yet")
        raise StopTraining(f"{bad[0]} became {losses[bad[0]]} at step {step}; stopped without saving. "
                           f"{kept}; try a lower --learning_rate.")

    @staticmethod
    def _write_summaries(losses: dict, step: int) -> None:
        tf = _tensorflow()
        for name, value in losses.items():
            tf.summary.scalar(name, value, step=step)

    def _should_stop(self, out: dict) -> bool:
        """Whether to stop after this step: a signal or the time limit; under a strategy, any worker's."""
        if self.strategy is None:
            self.out_of_time = self.out_of_time or self._late()
            return self.stop_signal is not None or self.out_of_time
        stopping = float(out["stop"]) > 0
        if stopping and self.stop_signal is None:
            self.out_of_time = self._late()
            self.stopped_by_peer = not self.out_of_time
        return stopping

    @staticmethod
    def _due(step: int, every: int, total_steps: int, stopping: bool) -> bool:
        return step % every == 0 or step == total_steps or stopping

    def _maybe_save(self, step: int, total_steps: int, stopping: bool) -> None:
        if self._due(step, self.settings.save_every, total_steps, stopping):
            self._save()
            self.last_saved = step

    def _save(self) -> None:
        import distribute
        if self.strategy is None:
            self.model.save(self.settings.checkpoint_dir)
        else:
            distribute.save_everywhere(self.model, self.settings.checkpoint_dir, self.chief)

    def _maybe_sample(self, out: dict, step: int, total_steps: int, stopping: bool, epoch: int, index: int) -> None:
        if not (self._due(step, self.settings.sample_every, total_steps, stopping) and self.chief):
            return
        try:
            self._write_samples(out, step, epoch, index)
        except (OSError, utils.UserError):
            if self.last_saved != step and self.strategy is None:
                self._save()  # keep the steps trained so far, then report the failure
            raise

    def _write_samples(self, out: dict, step: int, epoch: int, index: int) -> None:
        """The 8x8 grid of G(sample z) and the original's histograms and image summary."""
        tf = _tensorflow()
        samples = self.model.generate().numpy()
        utils.save_grid(Path(self.settings.sample_dir) / f"train_{epoch:02d}_{index:04d}.png", samples)
        tf.summary.histogram("z", out["z"], step=step)
        tf.summary.histogram("d", out["d"], step=step)
