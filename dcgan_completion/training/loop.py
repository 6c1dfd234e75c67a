"""Training, as train_dcgan.py runs it with its settings (training_settings.TrainingSettings): the
`tf.data` datasets, and `Trainer`, the loop around the model's step: the progress bar, sample grids,
TensorBoard, checkpoints on a schedule and on signals, the time limit, and resumption.

    trainer = Trainer(model, TrainingSettings(dataset="faces", epoch=5))  # model: a DCGAN
    exit_code = trainer.run()
"""
from __future__ import annotations

import itertools
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

import utils
from dcgan_completion import distribute
from dcgan_completion.networks.storage import latest_checkpoint
from dcgan_completion.training.settings import TrainingSettings, dataset_images
from model import DCGAN

# The host reads each step's losses back at least every READ_BACK_SECONDS, and at most
# READ_BACK_STEPS steps late: on a CPU a step takes longer, so every step is read as it ends;
# on a GPU, the device runs on while the host catches up, instead of waiting for it every step.
READ_BACK_STEPS, READ_BACK_SECONDS = 50, 0.5

# -- datasets ------------------------------------------------------------------

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


def streaming_dataset(paths: list, image_size: int, crop: bool | int, batch_size: int, errors: list,
                      seed: int | None = None, channels: int = 3) -> tf.data.Dataset:
    """For datasets too big to hold in memory: decode files on the fly, in parallel.

    Unreadable files are dropped and their errors appended to `errors`. The file list repeats
    (reshuffled on every pass), so every epoch gets its full count of batches however many
    files turn out unreadable; the caller has made sure that a batch's worth can be read.
    """

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
        self.model, self.settings, self.paths = model, settings, paths
        self.strategy = model.strategy
        self.chief = distribute.is_chief(self.strategy)
        self.deadline = time.monotonic() + 60.0 * settings.time_limit if settings.time_limit else None
        self.stop_signal = None      # the signal that asked to stop
        self.out_of_time = False     # --time_limit reached
        self.stopped_by_peer = False  # another worker stopped (signal or time limit)
        self.last_saved = 0          # the step of the last checkpoint written (or resumed from)
        self.finished = False        # trained to settings.epoch epochs (run)

    # -- data --------------------------------------------------------------
    def dataset(self) -> tuple[tf.data.Dataset, int]:
        """The shuffled batches of one epoch, and their count."""
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
            raise utils.UserError(f"dataset folder {settings.dataset} has {count} readable images, "
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
        dataset, steps_per_epoch = self.dataset()
        self._resume()
        dataset = self._distribute(dataset)
        total_steps = self.settings.epoch * steps_per_epoch
        if self._step() >= total_steps:
            print(f"Already trained for {self.settings.epoch} epochs ({self._step()} steps).")
            self.finished = True
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
        self.finished = self._step() >= total_steps
        return self._finish_message()

    def _step(self) -> int:
        return int(self.model.step.numpy())

    def _resume(self) -> None:
        """Load the newest checkpoint of settings.checkpoint_dir, if any, and say so."""
        folder = self.settings.checkpoint_dir
        if self.model.load(folder):
            step = self._step()
            note = (" (the original's format: optimiser state starts fresh)" if self.model.original_format else
                    "" if step else " (fine-tuning: its networks, with a fresh optimiser)")
            print(f"Resuming from {latest_checkpoint(folder)} at step {step}{note}")
        self.last_saved = self._step()

    def _distribute(self, dataset):
        """Under a strategy: every worker from the chief's state, and the dataset split over the replicas."""
        if self.strategy is None:
            return dataset
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
        """One epoch (its rest, when resuming mid-epoch); True when training stops early.

        The step's losses are read back in groups (see READ_BACK_STEPS), always before a checkpoint
        or a sample grid, so a non-finite loss still stops training before anything is saved."""
        settings = self.settings
        self.model.epoch.assign(epoch)
        step = self._step()  # counted on the host from here: every step adds one
        first = step - epoch * steps_per_epoch  # > 0 only when resuming mid-epoch
        bar = self._progress_bar(epoch, steps_per_epoch, first)
        pending, last_read = [], time.monotonic()
        try:
            for index, images in enumerate(self._batches(dataset, steps_per_epoch - first), start=first):
                out = self._train_step(images)
                step += 1
                pending.append((step, out))
                stopping = self._should_stop(out)
                if (stopping or len(pending) >= READ_BACK_STEPS or time.monotonic() - last_read >= READ_BACK_SECONDS
                        or self._due(step, settings.save_every, total_steps, stopping)
                        or self._due(step, settings.sample_every, total_steps, stopping)):
                    self._read_back(pending, bar)
                    pending, last_read = [], time.monotonic()
                self._maybe_save(step, total_steps, stopping)  # the checkpoint first: a failing grid must not lose it
                self._maybe_sample(out, step, total_steps, stopping, epoch, index)
                if stopping:
                    return True
            self._read_back(pending, bar)
            return False
        finally:
            bar.close()

    def _read_back(self, pending: list, bar) -> None:
        """The losses of the steps not yet read: checked finite (StopTraining), to TensorBoard and the bar."""
        for step, out in pending:
            losses = {k: float(out[k]) for k in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")}
            self._check_finite(losses, step)
            self._write_summaries(losses, step)
        if pending:
            bar.update(self.settings.batch_size * len(pending))
            bar.set_postfix(d_loss=f"{losses['d_loss']:.4f}", g_loss=f"{losses['g_loss']:.4f}", refresh=False)

    def _progress_bar(self, epoch: int, steps_per_epoch: int, first: int):
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
        folder = self.settings.checkpoint_dir
        kept = (f"The last good checkpoint (step {self.last_saved}) is in {folder}" if latest_checkpoint(folder)
                else "No checkpoint had been saved yet")
        raise StopTraining(f"{bad[0]} became {losses[bad[0]]} at step {step}; stopped without saving. "
                           f"{kept}; try a lower --learning_rate.")

    @staticmethod
    def _write_summaries(losses: dict, step: int) -> None:
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
        samples = self.model.generate().numpy()
        utils.save_grid(Path(self.settings.sample_dir) / f"train_{epoch:02d}_{index:04d}.png", samples)
        tf.summary.histogram("z", out["z"], step=step)
        tf.summary.histogram("d", out["d"], step=step)
