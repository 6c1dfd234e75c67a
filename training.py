"""The training loop of train_dcgan.py: the `tf.data` datasets, the progress bar, sample
grids, TensorBoard, checkpoints on a schedule and on signals, the time limit, and
resumption. `DCGAN.train` hands off to `Trainer`, as the original's DCGAN.train held it.
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

import distribute
import utils
from checkpoints import latest_checkpoint
from model import DCGAN

utils.import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402


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


def count_readable(paths: list, image_size: int, crop: bool, channels: int, up_to: int) -> int:
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
        config, size, channels = self.config, self.model.image_size, self.model.c_dim
        paths = utils.list_images(config.dataset)
        if not paths:
            utils.fail(f"no .png/.jpg/.jpeg images in dataset folder {config.dataset}")
        if config.train_size < len(paths):
            paths = paths[:int(config.train_size)]
        errors: list[str] = []
        self.streaming = len(paths) * size * size * channels > memory_budget()
        seed = config.seed
        if seed is None and distribute.worker_count(self.strategy) > 1:
            # Workers must shuffle alike to shard the data: a seed from the generator's
            # state, which every worker received from the chief.
            seed = int(self.model.rng.state.numpy()[-1] % (2 ** 31))
        if not self.streaming:
            images, loaded, errors = utils.load_images(paths, size, crop=config.crop, channels=channels)
            if errors:
                utils.warn(utils.describe_bad_files(errors))
            count = len(loaded)
        else:
            print(f"Dataset of {len(paths)} images does not fit in memory: decoding on the fly.")
            # A batch's worth of readable files must exist, or the endless stream would find none.
            readable = count_readable(paths, size, config.crop, channels, up_to=config.batch_size)
            count = len(paths) if readable == config.batch_size else readable
        self.decode_errors = errors
        if count < config.batch_size:
            utils.fail(f"dataset folder {config.dataset} has {count} readable images, "
                       f"fewer than one batch of {config.batch_size} (lower --batch_size)")
        dataset = (image_dataset(images, config.batch_size, seed) if not self.streaming else
                   streaming_dataset(paths, size, config.crop, config.batch_size, errors, seed, channels))
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
                # The checkpoint first: a failure to write the grid must not lose it.
                if step % config.save_every == 0 or step == total_steps or stopping:
                    self._save()
                    last_saved = step
                if (step % config.sample_every == 0 or step == total_steps or stopping) and self.chief:
                    try:
                        self._write_samples(out, step, epoch, index)
                    except (OSError, utils.UserError):
                        if last_saved != step and self.strategy is None:
                            self._save()  # keep the steps trained so far, then report the failure
                        raise
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
