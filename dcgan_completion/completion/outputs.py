"""complete.py's outputs, written from the CompletionEngine's results: read the inputs, and write
the original's before/masked/lowres/hats_imgs/completed/logs and GIF of each batch (with the
"Completing" bar, for complete.py and --photos alike), and final/ and fill/ under each input's name.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

import utils
from dcgan_completion.completion import masks as masking
from dcgan_completion.completion.compositing import composite, poisson_blend
from dcgan_completion.completion.engine import CompletionEngine, CompletionResult, Progress, unexplained_share
from dcgan_completion.completion.settings import CompletionSettings, OutputSettings


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
        utils.warn(f"{len(resized)} image(s) are not {image_size}x{image_size} and were resized: "
                   f"{utils.first_few(resized)}")
    array = np.stack(images) if images else np.zeros((0, image_size, image_size, channels), np.uint8)
    return kept, array, errors


def complete_in_folders(engine: CompletionEngine, images: np.ndarray, masks: np.ndarray, out_dir: Path,
                        pad_to: int | None = None) -> Iterator[tuple[slice, CompletionResult]]:
    """Complete images (uint8 (N, S, S, C), masks (N, S, S, 1)) in the engine's batches under the
    "Completing" bar, writing each batch's optimisation into out_dir, or out_dir/batch_NNN when
    there are several; yields (the batch's rows, its result) as each batch is written."""
    batches = engine.batch_count(len(images), pad_to)
    # Tuning G takes about half a second a face (docs/speed.md): a bar of its own where there are several.
    tuning = tqdm(total=len(images), desc="Tuning G", unit="face", dynamic_ncols=True, mininterval=0.5,
                  disable=not engine.settings.tune_g or len(images) < 4, leave=False)
    with tuning, tqdm(total=batches * engine.settings.n_iter, desc="Completing", unit="it", dynamic_ncols=True,
                      mininterval=0.5) as bar:
        def advance(progress: Progress) -> None:
            bar.update(progress.done - bar.n)
            bar.set_postfix(loss=f"{float(np.mean(progress.loss)):.4f}", refresh=False)

        for number, (rows, result) in enumerate(engine.complete_batches(images, masks, advance, record=True,
                                                                        pad_to=pad_to, tuned=tuning.update)):
            folder = out_dir if batches == 1 else out_dir / f"batch_{number:03d}"
            write_batch(folder, images[rows], masks[rows], result, engine.settings.lowres)
            yield rows, result


def write_batch(folder: Path, batch: np.ndarray, masks: np.ndarray, result: CompletionResult, lowres: bool) -> None:
    """The original's outputs of one batch, from its recorded result: before.png, masked.png
    (lowres.png), hats_imgs/ and completed/ at every frame, logs/ and completion.gif."""
    utils.save_grid(folder / "before.png", batch)
    # The hole is 0 in [-1, 1], mid-grey, as the original's masked.png shows it.
    utils.save_grid(folder / "masked.png", utils.to_float(batch) * masks)
    if lowres:
        utils.save_grid(folder / "lowres.png", _lowres(utils.to_float(batch)))
    frames = [write_frame(folder, iteration, batch, masks, fill, lowres) for iteration, fill in result.frames]
    write_logs(folder / "logs", result.losses, result.zs)
    utils.save_gif(folder / "completion.gif", frames)


def write_frame(folder: Path, iteration: int, batch: np.ndarray, masks: np.ndarray, fill: np.ndarray,
                lowres: bool) -> np.ndarray:
    """hats_imgs/NNNN.png (G(z)) and completed/NNNN.png (known pixels kept); returns the latter."""
    utils.save_grid(folder / "hats_imgs" / f"{iteration:04d}.png", fill)
    if lowres:  # what the lowres loss compares: G(z)'s block means
        utils.save_grid(folder / "hats_imgs" / f"{iteration:04d}.lowres.png", _lowres(fill))
    completed = utils.make_grid(composite(batch, fill, masks))
    utils.save_png(folder / "completed" / f"{iteration:04d}.png", completed)
    return completed


def write_logs(folder: Path, losses: np.ndarray, zs: np.ndarray) -> None:
    """logs/hats_NN.log: the original's header line `iter loss z0 z1 ...`, then one line per
    iteration: iteration, loss, then z. losses (n_iter, N), zs (n_iter, N, z_dim)."""
    header = "iter loss " + " ".join(f"z{i}" for i in range(zs.shape[2])) + "\n"
    for image in range(losses.shape[1]):
        lines = [f"{i} {loss:.6f} " + " ".join(f"{value:.6e}" for value in z) + "\n"
                 for i, (loss, z) in enumerate(zip(losses[:, image], zs[:, image]))]
        text = header + "".join(lines)
        utils.atomic_write(folder / f"hats_{image:02d}.log", lambda tmp, text=text: Path(tmp).write_text(text))


@dataclass
class CompletionInputs:
    """complete.py's inputs, read and checked before any model is built: the readable images
    (uint8 (N, S, S, C)), each one's mask (float32 (N, S, S, 1)) and the unreadable ones' errors."""
    paths: list
    images: np.ndarray
    masks: np.ndarray
    errors: list

    @classmethod
    def read(cls, paths: list, mask: np.ndarray | dict, image_size: int, channels: int) -> CompletionInputs:
        """mask: one (S, S, C) mask for every image, or a dict from each input path to its own."""
        paths, images, errors = read_inputs(paths, image_size, channels)
        if len(paths) == 0:
            raise utils.UserError(f"no image could be read, nothing to complete ({utils.describe_bad_files(errors)})")
        if isinstance(mask, dict):
            masks = np.stack([mask[Path(path)][..., :1] for path in paths]).astype(np.float32)
        else:
            masks = np.broadcast_to(np.asarray(mask, np.float32)[..., :1], (len(paths), image_size, image_size, 1))
        return cls(paths, images, masks, errors)


def fit_warning(names: list, shares: np.ndarray, fit: dict | None, settings: CompletionSettings,
                start: str = "random") -> str | None:
    """One line when some images' known pixels are far less explained by G than those of the model's own
    held-out faces (fit: the checkpoint's known_fit), else None. Only for completions like the ones fit
    was measured on (the same start of z, as many iterations or more, the same contextual loss), as
    fewer explain less."""
    if fit is None or settings.lowres or settings.n_iter < fit.get("n_iter", 0) or \
            settings.weighted_mask != fit.get("weighted_mask", True) or start != fit.get("start", "random"):
        return None
    far = [(name, share) for name, share in zip(names, shares) if share > fit["warn_above"]]
    if not far:
        return None
    listed = ", ".join(f"{name} {share:.0%}" for name, share in far[:3]) + (", ..." if len(far) > 3 else "")
    knows = fit.get("knows", "the faces it was trained on")
    return (f"{len(far)} of {len(names)} image(s) far from what the model knows, the fill is a guess: G "
            f"leaves {listed} of the known pixels unexplained (its own held-out faces: {fit['mean']:.0%} on average, "
            f"above {fit['warn_above']:.0%} none); it knows {knows}")


class FolderCompletion:
    """complete.py's work: the inputs through the engine, and every output file. fit: the checkpoint's
    known_fit (checkpoints.read_known_fit), for the warning about faces far from what the model knows."""

    def __init__(self, engine: CompletionEngine, output: OutputSettings, fit: dict | None = None):
        self.engine, self.output, self.fit = engine, output, fit

    def run(self, inputs: CompletionInputs) -> int:
        images, masks = inputs.images, inputs.masks
        names = utils.unique_names([Path(path).stem for path in inputs.paths])
        outputs = self.output.out_dir
        final_losses, shares = [], []
        for rows, result in complete_in_folders(self.engine, images, masks, outputs):
            final_losses.append(result.loss)
            shares.append(unexplained_share(images[rows], self.engine.weights(masks[rows]),
                                             result.fill if result.search_fill is None else result.search_fill))
            self.write_finals(images[rows], masks[rows], result.fill, names[rows], outputs / "final")
        losses = np.concatenate(final_losses)
        batches = len(final_losses)
        where = outputs if batches == 1 else outputs / "batch_*"
        print(f"Completed {len(inputs.paths)} image(s) in {batches} batch(es), mean final loss {losses.mean():.4f}: "
              f"results in {outputs / 'final'}, the optimisation in {where} (completion.gif).")
        warning = fit_warning([Path(path).name for path in inputs.paths], np.concatenate(shares), self.fit,
                              self.engine.settings, "encoder" if self.engine.encoder is not None else "random")
        if warning:
            utils.warn(warning)
        if inputs.errors:
            print(f"error: {utils.describe_bad_files(inputs.errors)}; the other images were completed", file=sys.stderr)
            return utils.EXIT_PARTIAL
        return 0

    def write_finals(self, batch: np.ndarray, masks: np.ndarray, fake: np.ndarray, names: list,
                     folder: Path) -> None:
        """final/<name>.png: each input's completion (Poisson-blended with --blend poisson), and
        fill/<name>.png: the generator's whole image G(z) for it."""
        completed = composite(batch, fake, masks)
        for image, mask, fill, done, name in zip(batch, masks, utils.to_uint8(fake), completed, names):
            if self.output.blend == "poisson":
                done = poisson_blend(image, fill, mask)
            utils.save_png(folder / f"{name}.png", done)
            utils.save_png(folder.parent / "fill" / f"{name}.png", fill)


def _lowres(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] as the lowres mask sees them: block means, blown up to full size."""
    means = masking.block_mean(np.asarray(images, dtype=np.float32))
    return np.repeat(np.repeat(means, masking.LOWRES_FACTOR, 1), masking.LOWRES_FACTOR, 2)
