"""Image I/O, dataset listing, sample grids, masks and small file helpers.

This module is the one place that reads and writes images and defines the
completion masks. It needs only numpy and Pillow (no TensorFlow), so that
align_faces.py and the tests of these pieces start fast.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MASK_TYPES = ("random", "center", "left", "right", "top", "bottom", "full", "grid", "lowres")
LOWRES_FACTOR = 8  # the lowres mask keeps an 8x-downsampled copy of the image


class ImageError(Exception):
    """An image file that cannot be read; the message names the file."""


# ----------------------------------------------------------------------------
# Messages
# ----------------------------------------------------------------------------

def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    import argparse
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit, never a traceback."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


# ----------------------------------------------------------------------------
# Reading images
# ----------------------------------------------------------------------------

def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3).

    EXIF orientation is applied; grayscale, RGBA, palette and 16-bit images
    are converted. Raises ImageError naming the file if it cannot be read.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        reason = "not an image" if isinstance(error, UnidentifiedImageError) else str(error) or type(error).__name__
        raise ImageError(f"{path}: cannot read image ({reason})") from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow clips these to 8 bits instead of scaling; scale by hand.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "F" and array.max(initial=0) > 255 else 255.0
        if image.mode == "F":
            top = max(float(array.max(initial=1.0)), 1.0)
        gray = np.clip(np.rint(array / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite transparent pixels onto white, as an image viewer shows them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def center_crop(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an image."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 image to size x size (bicubic, area-like when shrinking)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0), dtype=np.uint8)


def load_image(path: str | os.PathLike, image_size: int, crop: bool = False) -> np.ndarray:
    """Read an image as uint8 (image_size, image_size, 3): optional centre crop, then resize."""
    image = read_rgb(path)
    if crop:
        image = center_crop(image)
    return resize(image, image_size)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], as the original (x / 127.5 - 1)."""
    return images.astype(np.float32) / 127.5 - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255], rounded."""
    return np.clip(np.rint((np.asarray(images, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------
# Writing images and files, atomically
# ----------------------------------------------------------------------------

def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), then rename into place, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 image (H, W, 3) or float image in [-1, 1] as PNG, atomically."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = to_uint8(array)
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def save_json(path: str | os.PathLike, data: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
    atomic_write(path, write)


def make_grid(images: np.ndarray, rows: int | None = None) -> np.ndarray:
    """Tile a batch (N, H, W, C) into one image of rows x cols tiles (the original's merge())."""
    count, height, width, channels = images.shape
    rows = rows or int(np.ceil(np.sqrt(count)))
    cols = int(np.ceil(count / rows))
    grid = np.zeros((rows * height, cols * width, channels), dtype=images.dtype)
    for index, image in enumerate(images):
        row, col = divmod(index, cols)
        grid[row * height:(row + 1) * height, col * width:(col + 1) * width] = image
    return grid


def save_grid(path: str | os.PathLike, images: np.ndarray, rows: int | None = None) -> None:
    """Write a batch of images in [-1, 1] (or uint8) as one grid PNG; 64 images give 8x8."""
    array = np.asarray(images)
    if array.dtype != np.uint8:
        array = to_uint8(array)
    save_png(path, make_grid(array, rows))


# ----------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------

def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every .png/.jpg/.jpeg below folder (recursively, sorted), hidden files skipped."""
    folder = Path(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(root) / name)
    return found


def describe_bad_files(errors: Sequence[str], first: int = 3) -> str:
    """'N unreadable files skipped (a: why, b: why, ...)' for one warning line."""
    shown = "; ".join(errors[:first])
    more = f"; and {len(errors) - first} more" if len(errors) > first else ""
    plural = "s" if len(errors) != 1 else ""
    return f"skipped {len(errors)} unreadable image file{plural}: {shown}{more}"


# ----------------------------------------------------------------------------
# Completion masks: 1 = known pixel, 0 = to fill. The one definition of each.
# ----------------------------------------------------------------------------

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
    mask = (gray >= 128).astype(np.float32)
    if mask.min() == 1.0:
        raise ImageError(f"{path}: mask is all white, so there is nothing to fill (black marks the pixels to fill)")
    if mask.max() == 0.0:
        raise ImageError(f"{path}: mask is all black, so no pixel is known (white marks the pixels to keep)")
    return np.repeat(mask[:, :, None], 3, axis=2)


def block_mean(images: np.ndarray, factor: int = LOWRES_FACTOR) -> np.ndarray:
    """Mean over factor x factor blocks of (N, S, S, C) images (the lowres mask's known part)."""
    n, size, _, channels = images.shape
    blocks = images.reshape(n, size // factor, factor, size // factor, factor, channels)
    return blocks.mean(axis=(2, 4))


def load_images(paths: Sequence[str | os.PathLike], image_size: int, crop: bool = False,
                workers: int | None = None, progress: bool = True) -> tuple[np.ndarray, list[Path], list[str]]:
    """Decode many images in parallel threads (Pillow releases the GIL while decoding).

    Returns (uint8 array (N, S, S, 3), the paths that loaded, one error per file that did not).
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def load(path):
        try:
            return load_image(path, image_size, crop), None
        except ImageError as error:
            return None, str(error)

    images, loaded, errors = [], [], []
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        results = pool.map(load, paths)
        for path, (image, error) in tqdm(zip(paths, results), total=len(paths), desc="Loading images",
                                         unit="img", disable=not progress, leave=False):
            if error is None:
                images.append(image)
                loaded.append(Path(path))
            else:
                errors.append(error)
    array = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return array, loaded, errors


def weighted_mask(mask: np.ndarray, window: int = 7) -> np.ndarray:
    """Yeh et al.'s weighted mask: each known pixel weighs the share of missing pixels in the
    window x window square around it (so known pixels next to the hole count most); 0 in the hole."""
    from scipy.signal import convolve2d

    known = mask[:, :, 0]
    kernel = np.ones((window, window), dtype=np.float32) / window ** 2
    missing_share = convolve2d(1.0 - known, kernel, mode="same", boundary="symm")
    weights = (known * missing_share).astype(np.float32)
    return np.repeat(weights[:, :, None], mask.shape[2], axis=2)


def poisson_blend(image: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson-blend `fill` into the hole (mask == 0) of `image` (Perez et al. 2003, as in the paper).

    Inside the hole the result keeps fill's gradients, and meets image's known pixels at the
    hole's border; known pixels are unchanged. Solves one sparse linear system per image
    (the image border is a Neumann boundary, so holes that touch it work too).
    Returns uint8. A mask with no known pixel returns `fill` unchanged.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    hole = mask[:, :, 0] < 0.5
    if not hole.any() or hole.all():
        return np.where(hole[:, :, None], fill, image).astype(np.uint8)
    height, width = hole.shape
    index = -np.ones(hole.shape, dtype=np.int64)
    index[hole] = np.arange(hole.sum())
    target, source = image.astype(np.float64), fill.astype(np.float64)
    rows, cols, values = [], [], []
    rhs = np.zeros((int(hole.sum()), image.shape[2]))
    ys, xs = np.nonzero(hole)
    diagonal = np.zeros(len(ys))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        p, qy, qx = index[ys[inside], xs[inside]], ny[inside], nx[inside]
        diagonal[inside] += 1
        # Guidance field: the fill's own gradient.
        rhs[p] += source[ys[inside], xs[inside]] - source[qy, qx]
        neighbour_in_hole = hole[qy, qx]
        rows.append(p[neighbour_in_hole])
        cols.append(index[qy[neighbour_in_hole], qx[neighbour_in_hole]])
        values.append(-np.ones(neighbour_in_hole.sum()))
        # Dirichlet boundary: known neighbours take the image's values.
        known = ~neighbour_in_hole
        rhs[p[known]] += target[qy[known], qx[known]]
    n = len(ys)
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    values.append(diagonal)
    matrix = coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    solution = splu(matrix.tocsc()).solve(rhs)
    out = target.copy()
    out[hole] = solution
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class silenced_stderr:
    """Send file descriptor 2 to /dev/null for a while: TensorFlow's C++ start-up messages
    (oneDNN, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL in recent releases."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        return False


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """(model name, feature flags) of this machine's CPU as /proc/cpuinfo lists them ("", empty set if none)."""
    name, flags = "", set()
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up lines hidden, unless the user asked for its logs
    (TF_CPP_MIN_LOG_LEVEL below 2). Later `import tensorflow` statements then cost nothing."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") < "2":
        return
    with silenced_stderr():
        import tensorflow as tf
        tf.config.list_physical_devices()
