"""complete.py's job: read the inputs, run them in batches through the `Completer`, and
write every output (the original's before/masked/lowres/hats_imgs/completed/logs and GIF,
and final/ and fill/ under each input's name).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import masking
import utils
from completion import Completer
from model import DCGAN

utils.import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402


def read_inputs(paths: list, image_size: int, channels: int = 3) -> tuple[list, np.ndarray, list[str]]:
    """Read the images to complete as uint8 (N, S, S, channels); unreadable ones are named and
    skipped, images of another size are resized with one warning."""
    kept, images, errors, resized = [], [], [], []
    for path in paths:
        try:
            image = utils.read_image(path, channels)
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
    array = np.stack(images) if images else np.zeros((0, image_size, image_size, channels), np.uint8)
    return kept, array, errors


def unique_stems(paths: list) -> list[str]:
    """Output names from input names. A repeated name gets _1, _2, ..., skipping every name that
    is taken or that is another input's own name, so nothing is overwritten."""
    stems = [Path(path).stem for path in paths]
    own = {stem.casefold() for stem in stems}  # casefold: macOS and Windows file names ignore case
    used: set[str] = set()
    names = []
    for stem in stems:
        name, suffix = stem, 0
        while name.casefold() in used or (suffix and name.casefold() in own):
            suffix += 1
            name = f"{stem}_{suffix}"
        used.add(name.casefold())
        names.append(name)
    return names


def composite(images: np.ndarray, fill: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Known pixels from `images` (uint8, exactly), the rest from `fill` ([-1, 1] floats);
    masks: each image's, (N, S, S, 1)."""
    return np.where(masks > 0.5, images, utils.to_uint8(fill)).astype(np.uint8)


class CompletionJob:
    """complete.py's work: batches of images through the Completer, and every output file."""

    def __init__(self, model: DCGAN, config, mask: np.ndarray | dict | None = None):
        """mask: for `run`, one (S, S, C) mask for every image, or a dict from each input path to its own."""
        self.model, self.config, self.mask = model, config, mask
        self.lowres = config.maskType == "lowres" and config.mask is None
        self.completer = Completer(  # given each batch's masks, which may differ from image to image
            model, approach=config.approach, lam=config.lam, lr=config.lr, momentum=config.momentum,
            beta1=config.beta1, beta2=config.beta2, eps=config.eps, hmc_beta=config.hmcBeta,
            hmc_eps=config.hmcEps, hmc_l=config.hmcL, hmc_anneal=config.hmcAnneal,
            lowres=self.lowres, seed=config.seed,
            xla=getattr(config, "xla", False))

    def run(self, paths: list) -> int:
        from tqdm import tqdm

        config = self.config
        paths, images, errors = read_inputs(paths, self.model.image_size, self.model.c_dim)
        if len(paths) == 0:
            utils.fail(f"no image could be read, nothing to complete ({utils.describe_bad_files(errors)})")
        names = unique_stems(paths)
        masks = self.masks_of(paths)
        batches = range(0, len(paths), config.batchSize)
        outputs = Path(config.outDir)
        total = len(batches) * config.nIter
        bar = tqdm(total=total, desc="Completing", unit="it", dynamic_ncols=True, mininterval=0.5)
        final_losses = []
        for number, start in enumerate(batches):
            folder = outputs if len(batches) == 1 else outputs / f"batch_{number:03d}"
            batch, batch_masks = images[start:start + config.batchSize], masks[start:start + config.batchSize]
            final_losses.append(self.complete_batch(batch, batch_masks, folder, bar))
            self.write_finals(batch, batch_masks, self.last_fill, names[start:start + config.batchSize],
                              outputs / "final")
        bar.close()
        losses = np.concatenate(final_losses)
        where = outputs if len(batches) == 1 else outputs / "batch_*"
        print(f"Completed {len(paths)} image(s) in {len(batches)} batch(es), mean final loss {losses.mean():.4f}: "
              f"results in {outputs / 'final'}, the optimisation in {where} (completion.gif).")
        if errors:
            print(f"error: {utils.describe_bad_files(errors)}; the other images were completed", file=sys.stderr)
            return utils.EXIT_PARTIAL
        return 0

    def masks_of(self, paths: list) -> np.ndarray:
        """Each input's mask, float32 (N, S, S, 1)."""
        size = self.model.image_size
        if not isinstance(self.mask, dict):
            return np.broadcast_to(np.asarray(self.mask, np.float32)[..., :1], (len(paths), size, size, 1))
        return np.stack([self.mask[Path(path)][..., :1] for path in paths]).astype(np.float32)

    def complete_batch(self, batch: np.ndarray, masks: np.ndarray, folder: Path, bar) -> np.ndarray:
        """Optimise one batch, each image with its mask (N, S, S, 1), writing the original's outputs
        into folder; returns the final losses (G(z) is left in self.last_fill)."""
        config, count = self.config, len(batch)
        # Pad a short batch to the batch size (one compiled shape; under a strategy, a multiple
        # of the replicas); the padding is discarded.
        replicas = self.model.strategy.num_replicas_in_sync if self.model.strategy is not None else 1
        padded = np.zeros((-(-config.batchSize // replicas) * replicas,) + batch.shape[1:], np.uint8)
        padded[:count] = batch
        y = tf.constant(utils.to_float(padded))
        weights = np.zeros(padded.shape[:3] + (1,), np.float32)
        weights[:count] = [masking.weighted_mask(m) for m in masks] if config.weightedMask else masks
        w = tf.constant(weights)
        utils.save_grid(folder / "before.png", batch)
        # The hole is 0 in [-1, 1], mid-grey, as the original's masked.png shows it.
        utils.save_grid(folder / "masked.png", utils.to_float(batch) * masks)
        if self.lowres:
            utils.save_grid(folder / "lowres.png", _lowres(utils.to_float(batch)))
        z = self.completer.initial_z(y, config.zCandidates, w)
        state = self.completer.initial_state(z)
        frames, logs = [], [[] for _ in range(count)]
        for start in range(0, config.nIter, config.outInterval):
            steps = min(config.outInterval, config.nIter - start)
            z, state, fake, losses, zs = self.completer.run(z, state, y, start, steps, w)
            frames.append(self.write_frame(folder, start, batch, masks, fake.numpy()[:count]))
            self.append_logs(logs, start, losses.numpy()[:, :count], zs.numpy()[:, :count])
            bar.update(steps)
            bar.set_postfix(loss=f"{float(np.mean(losses.numpy()[-1, :count])):.4f}", refresh=False)
        final_loss, fake = self.completer._loss(z, y, w)
        fake = fake.numpy()[:count]
        frames.append(self.write_frame(folder, config.nIter, batch, masks, fake))
        self.write_logs(folder / "logs", logs, self.model.z_dim)
        _write_gif(folder / "completion.gif", frames)
        self.last_fill = fake
        return final_loss.numpy()[:count]

    def write_frame(self, folder: Path, iteration: int, batch: np.ndarray, masks: np.ndarray,
                    fake: np.ndarray) -> np.ndarray:
        utils.save_grid(folder / "hats_imgs" / f"{iteration:04d}.png", fake)
        if self.lowres:  # what the lowres loss compares: G(z)'s block means
            utils.save_grid(folder / "hats_imgs" / f"{iteration:04d}.lowres.png", _lowres(fake))
        completed = utils.make_grid(composite(batch, fake, masks))
        utils.save_png(folder / "completed" / f"{iteration:04d}.png", completed)
        return completed

    @staticmethod
    def append_logs(logs: list, start: int, losses: np.ndarray, zs: np.ndarray) -> None:
        for image, lines in enumerate(logs):
            for k in range(losses.shape[0]):
                z_text = " ".join(f"{value:.6e}" for value in zs[k, image])
                lines.append(f"{start + k} {losses[k, image]:.6f} {z_text}\n")

    @staticmethod
    def write_logs(folder: Path, logs: list, z_dim: int) -> None:
        """logs/hats_NN.log: the original's header line `iter loss z0 z1 ...`, then one line per
        iteration: iteration, loss, then z (written once, in bulk)."""
        header = "iter loss " + " ".join(f"z{i}" for i in range(z_dim)) + "\n"
        for image, lines in enumerate(logs):
            path = folder / f"hats_{image:02d}.log"
            utils.atomic_write(path, lambda tmp, lines=lines: Path(tmp).write_text(header + "".join(lines)))

    def write_finals(self, batch: np.ndarray, masks: np.ndarray, fake: np.ndarray, names: list,
                     folder: Path) -> None:
        """final/<name>.png: each input's completion (Poisson-blended with --blend poisson), and
        fill/<name>.png: the generator's whole image G(z) for it."""
        completed = composite(batch, fake, masks)
        for image, mask, fill, done, name in zip(batch, masks, utils.to_uint8(fake), completed, names):
            if self.config.blend == "poisson":
                done = masking.poisson_blend(image, fill, mask)
            utils.save_png(folder / f"{name}.png", done)
            utils.save_png(folder.parent / "fill" / f"{name}.png", fill)


def _lowres(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] as the lowres mask sees them: block means, blown up to full size."""
    means = masking.block_mean(np.asarray(images, dtype=np.float32))
    return np.repeat(np.repeat(means, masking.LOWRES_FACTOR, 1), masking.LOWRES_FACTOR, 2)


def _write_gif(path: Path, frames: list) -> None:
    """The article's ImageMagick GIF of completed/*.png, with imageio."""
    import imageio.v3 as iio
    stack = np.stack(frames)
    stack = stack[..., 0] if stack.shape[-1] == 1 else stack  # grayscale frames: (T, H, W)
    utils.atomic_write(path, lambda tmp: iio.imwrite(tmp, stack, extension=".gif", duration=100, loop=0,
                                                     is_batch=True))
