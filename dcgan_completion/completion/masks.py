"""Completion masks (1 = known pixel, 0 = fill): the original's mask types, users' mask files
(one for every image, one per image in a folder, or one at a whole photo's size), the
lowres block means and the paper's weighted mask.
Needs only numpy and Pillow (no TensorFlow).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from utils import IMAGE_EXTENSIONS, ImageError, first_few, read_rgb

MASK_TYPES = ("random", "center", "left", "right", "top", "bottom", "full", "grid", "lowres")
LOWRES_FACTOR = 8  # the lowres mask keeps an 8x-downsampled copy of the image
WEIGHTED_MASK_WINDOW = 7  # the weighted mask's square window (symmetric boundary), here and in completion


def make_mask(mask_type: str, image_size: int, center_scale: float = 0.25,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """The original's masks (plus right, top, bottom) as float32 (S, S, 3)."""
    size = image_size
    mask = np.ones((size, size), dtype=np.float32)
    if mask_type == "random":
        rng = rng if rng is not None else np.random.default_rng()
        mask[rng.random((size, size)) < 0.2] = 0.0  # each pixel missing with probability 0.2
    elif mask_type == "center":
        low, high = int(size * center_scale), int(size * (1.0 - center_scale))
        mask[low:high, low:high] = 0.0
    elif mask_type == "left":
        mask[:, :size // 2] = 0.0
    elif mask_type == "right":
        mask[:, size // 2:] = 0.0
    elif mask_type == "top":
        mask[:size // 2, :] = 0.0
    elif mask_type == "bottom":
        mask[size // 2:, :] = 0.0
    elif mask_type == "full":
        pass
    elif mask_type == "grid":
        mask[:, :] = 0.0
        mask[::4, ::4] = 1.0
    elif mask_type == "lowres":
        mask[:, :] = 0.0  # no pixel is known, only the block means
    else:
        raise ValueError(f"unknown mask type {mask_type!r}; choose from {', '.join(MASK_TYPES)}")
    return np.repeat(mask[:, :, None], 3, axis=2)


def read_mask(path: str | os.PathLike, image_size: int) -> np.ndarray:
    """A user's mask image: white = keep, black = fill, resized to image_size; float32 (S, S, 3)."""
    gray = read_rgb(path).mean(axis=2)
    if gray.shape != (image_size, image_size):
        gray = np.asarray(Image.fromarray(gray.astype(np.uint8)).resize((image_size, image_size), Image.Resampling.NEAREST))
    return _binary_mask(path, gray)


def read_photo_mask(path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """A whole photo's mask image (white = keep, black = fill), which must be at the photo's size;
    float32 (H, W, 3)."""
    gray = read_rgb(path).mean(axis=2)
    if gray.shape != (height, width):
        raise ImageError(f"{path}: mask is {gray.shape[1]}x{gray.shape[0]}, not the photo's {width}x{height}")
    return _binary_mask(path, gray)


def _binary_mask(path: str | os.PathLike, gray: np.ndarray) -> np.ndarray:
    """1 where gray >= 128 (keep), 0 elsewhere (fill), as (H, W, 3); a mask with nothing to fill
    or nothing known is an ImageError."""
    mask = (gray >= 128).astype(np.float32)
    if mask.min() == 1.0:
        raise ImageError(f"{path}: mask is all white, so there is nothing to fill (black marks the pixels to fill)")
    if mask.max() == 0.0:
        raise ImageError(f"{path}: mask is all black, so no pixel is known (white marks the pixels to keep)")
    return np.repeat(mask[:, :, None], 3, axis=2)


def find_masks(folder: str | os.PathLike, images: Sequence[str | os.PathLike]) -> list[Path]:
    """Each image's mask in folder: the file of the same name, else the one image file of the same
    stem (masks/hopper.png for photos/hopper.jpg). Raises ImageError naming every image without one."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_EXTENSIONS))
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    found, missing = [], []
    for image in map(Path, images):
        same_name = folder / image.name
        candidates = [same_name] if same_name in files else by_stem.get(image.stem, [])
        if len(candidates) != 1:
            missing.append(f"{image}" + (f" (several: {', '.join(p.name for p in candidates)})" if candidates else ""))
        found.extend(candidates[:1])
    if missing:
        raise ImageError(f"no mask in {folder} for {len(missing)} image(s): {first_few(missing)} "
                         f"(a mask has the image's file name, or its name with another image extension)")
    return found


def read_masks(folder: str | os.PathLike, images: Sequence[str | os.PathLike], image_size: int) -> dict:
    """{Path(image): its mask from folder (see find_masks), as read_mask reads it}."""
    paths = find_masks(folder, images)
    masks = {path: read_mask(path, image_size) for path in sorted(set(paths))}
    return {Path(image): masks[path] for image, path in zip(images, paths)}


def block_mean(images, factor: int = LOWRES_FACTOR, reshape=np.reshape, mean=np.mean):
    """Mean over factor x factor blocks of (N, S, S, C) images (the lowres mask's known part).
    The one definition of the rule: numpy arrays by default, TensorFlow tensors given
    reshape=tf.reshape, mean=tf.reduce_mean (completion's loss)."""
    size, channels = images.shape[1], images.shape[-1]
    blocks = reshape(images, [-1, size // factor, factor, size // factor, factor, channels])
    return mean(blocks, axis=(2, 4))


def weighted_mask(mask: np.ndarray, window: int = WEIGHTED_MASK_WINDOW) -> np.ndarray:
    """Yeh et al.'s weighted mask: each known pixel weighs the share of missing pixels in the
    window x window square around it (so known pixels next to the hole count most); 0 in the hole."""

    known = np.asarray(mask[:, :, 0], np.float64)
    # The window's mean over the border mirrored (..., 1, 0 | 0, 1, ...), as SciPy's
    # convolve2d(mode="same", boundary="symm") takes it (scipy.signal's import costs 0.7 s of each start).
    before, after = window // 2, (window - 1) // 2
    padded = np.pad(1.0 - known, ((before, after), (before, after)), mode="symmetric")
    missing_share = np.lib.stride_tricks.sliding_window_view(padded, (window, window)).mean(axis=(2, 3))
    weights = (known * missing_share).astype(np.float32)
    return np.repeat(weights[:, :, None], mask.shape[2], axis=2)


