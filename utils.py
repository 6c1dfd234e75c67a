"""Image I/O, dataset listing, sample grids, command-line conventions and small file helpers.

This module is the one place that reads and writes images and turns expected failures
into one-line errors. It needs only numpy and Pillow (no TensorFlow), so that
align_faces.py and the tests of these pieces start fast.
"""
from __future__ import annotations

import argparse
import errno
import functools
import io
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, NoReturn, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")  # Pillow's single-channel modes (LA: with alpha)


class UserError(Exception):
    """An expected failure (bad input, bad file, bad environment): the scripts print its
    message, which names the path and the problem, as one line; never a traceback."""


class ImageError(UserError):
    """An image file that cannot be read; the message names the file."""


# Exit codes of every script (README, "Exit codes").
EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


# ----------------------------------------------------------------------------
# Messages and argument types
# ----------------------------------------------------------------------------

def is_valid_image_size(size: int) -> bool:
    """The model's image sizes: powers of two >= 8."""
    return size >= 8 and size & (size - 1) == 0


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {value}")
    return value


def number_in(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in [low, high] ("(" / ")" ends with low_open / high_open)."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
        if value != value or value < low or value > high or (low_open and value == low) \
                or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"must be in {shown}, not {text}")
        return value
    parse.__name__ = "number"  # argparse names the type in its "invalid ... value" message
    return parse


positive_float = number_in(0.0, float("inf"), low_open=True, high_open=True)
non_negative_float = number_in(0.0, float("inf"), high_open=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print a one-line error and exit, never a traceback."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def describe_os_error(error: OSError) -> str:
    """'PATH: problem' for an OSError (a full disk, a file where a folder is meant, ...)."""
    problem = error.strerror or str(error) or type(error).__name__
    if error.errno == errno.ENOSPC:
        problem = "no space left on the device"
    path = error.filename if error.filename is not None else None
    return f"{path}: {problem}" if path is not None else problem


def expected_errors(main: Callable) -> Callable:
    """Decorate a script's main: the one place where every expected failure (UserError, an
    OSError such as a full disk) becomes a one-line `error: PATH: problem` and exit code 2.
    Unexpected errors (bugs) keep their traceback."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            fail(str(error).splitlines()[0] if str(error) else type(error).__name__)
        except OSError as error:
            fail(describe_os_error(error))
    return wrapper


def output_folder(path: str | os.PathLike, what: str) -> Path:
    """Create the folder a script will write (with its parents), and prove that a file can be
    written in it, before any long work starts. Raises UserError naming the path."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: is a file, not a folder ({what})")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".write-test"):
            pass
    except OSError as error:
        raise UserError(f"{folder}: cannot write the {what} here ({describe_os_error(error)})") from None
    return folder


def input_folder(path: str | os.PathLike, what: str) -> Path:
    """A folder the script reads: it must exist and be a folder. Raises UserError naming the path."""
    folder = Path(path)
    if not folder.exists():
        raise UserError(f"{folder}: {what} does not exist")
    if not folder.is_dir():
        raise UserError(f"{folder}: {what} is a file, not a folder")
    return folder


# ----------------------------------------------------------------------------
# Reading images
# ----------------------------------------------------------------------------

def all_of_size(paths: list, size: int) -> bool:
    """Whether every image file is size x size (read from the files' headers; EXIF rotation keeps a square
    square). Files that cannot be opened count as of that size: they were read, or refused, before."""
    for path in paths:
        try:
            with Image.open(path) as image:
                if image.size != (size, size):
                    return False
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
            continue
    return True


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


def read_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Read an image file as uint8 (H, W, channels): RGB (3), or gray (1) with Pillow's
    ITU-R 601 luma, which leaves a grayscale file's values as they are."""
    rgb = read_rgb(path)
    if channels == 3:
        return rgb
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint8)[:, :, None]


def is_single_channel(path: str | os.PathLike) -> bool:
    """Whether an image file is grayscale, from its header (no decoding); False if unreadable."""
    try:
        with Image.open(path) as image:
            return image.mode in GRAY_MODES
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return False


def dataset_channels(paths: Sequence[str | os.PathLike]) -> int:
    """1 when every image is single-channel, else 3 (stops at the first colour image)."""
    return 1 if paths and all(is_single_channel(path) for path in paths) else 3


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


def center_crop(image: np.ndarray, side: int | None = None) -> np.ndarray:
    """The centred side x side square of an image (the largest one when side is None or too big)."""
    height, width = image.shape[:2]
    side = min(height, width, side or height)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 image (H, W, C) to size x size (bicubic, area-like when shrinking)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    resized = np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0), dtype=np.uint8)
    return resized.reshape(size, size, image.shape[2])


def load_image(path: str | os.PathLike, image_size: int, crop: bool | int = False, channels: int = 3) -> np.ndarray:
    """Read an image as uint8 (image_size, image_size, channels): optional centre crop, then resize.
    crop: False, True (the largest centred square) or N (the centred N x N square, as DCGAN-tensorflow's
    --input_height N --crop)."""
    image = read_image(path, channels)
    if crop:
        image = center_crop(image, None if crop is True else int(crop))
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


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 image (H, W, 3) or (H, W, 1) / (H, W) (a grayscale PNG), or a float image in [-1, 1], as PNG bytes:
    the one PNG encoder of complete.py's files and the web app's results."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = to_uint8(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """png_bytes(image), written atomically."""
    data = png_bytes(image)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def gif_bytes(frames: Sequence[np.ndarray]) -> bytes:
    """uint8 frames as the article's ImageMagick GIF of completed/*.png: 100 ms a frame, looping."""
    images = [Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame) for frame in frames]
    out = io.BytesIO()  # Pillow itself (imageio's GIF writer gave the same bytes, and its import 0.15 s)
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def save_gif(path: str | os.PathLike, frames: Sequence[np.ndarray]) -> None:
    """gif_bytes(frames), written atomically."""
    data = gif_bytes(frames)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def save_json(path: str | os.PathLike, data: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
    atomic_write(path, write)


GRID_COLUMNS = 8  # the original's save_images: 8 images to a row


def make_grid(images: np.ndarray, rows: int | None = None) -> np.ndarray:
    """Tile a batch (N, H, W, C) into one image (the original's merge()): 8 tiles to a row
    (fewer when there are fewer images), or `rows` rows of equal length when given."""
    count, height, width, channels = images.shape
    if rows:
        cols = int(np.ceil(count / rows))
    else:
        cols = max(1, min(GRID_COLUMNS, count))
        rows = max(1, int(np.ceil(count / cols)))
    grid = np.zeros((rows * height, cols * width, channels), dtype=images.dtype)
    for index, image in enumerate(images):
        row, col = divmod(index, cols)
        grid[row * height:(row + 1) * height, col * width:(col + 1) * width] = image
    return grid


def save_grid(path: str | os.PathLike, images: np.ndarray, rows: int | None = None) -> None:
    """Write a batch of images in [-1, 1] (or uint8) as one grid PNG, 8 to a row; 64 images give 8x8."""
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


def first_few(items: Sequence[str], first: int = 3, separator: str = ", ", before_more: str = " ") -> str:
    """The first items and how many more, for one line: 'a, b, c and 2 more'."""
    shown = separator.join(items[:first])
    return shown + (f"{before_more}and {len(items) - first} more" if len(items) > first else "")


def describe_bad_files(errors: Sequence[str], first: int = 3) -> str:
    """'skipped N unreadable image files: a: why; b: why; ...' for one warning line."""
    plural = "s" if len(errors) != 1 else ""
    return f"skipped {len(errors)} unreadable image file{plural}: {first_few(errors, first, '; ', '; ')}"


def unique_names(stems: Sequence[str], separator: str = "_") -> list[str]:
    """Output names from input names, in order. A repeated name gets _1, _2, ... (with this
    separator), skipping every name already given or that is another input's own name, so
    nothing is overwritten and each input keeps its own name where it can. Names compare
    casefolded, as macOS and Windows file names ignore case."""
    own = {stem.casefold() for stem in stems}
    used: set[str] = set()
    names = []
    for stem in stems:
        name, suffix = stem, 0
        while name.casefold() in used or (suffix and name.casefold() in own):
            suffix += 1
            name = f"{stem}{separator}{suffix}"
        used.add(name.casefold())
        names.append(name)
    return names


# ----------------------------------------------------------------------------
# Completion masks: 1 = known pixel, 0 = to fill. The one definition of each.
# ----------------------------------------------------------------------------

def load_images(paths: Sequence[str | os.PathLike], image_size: int, crop: bool | int = False,
                workers: int | None = None, progress: bool = True,
                channels: int = 3) -> tuple[np.ndarray, list[Path], list[str]]:
    """Decode many images in parallel threads (Pillow releases the GIL while decoding).

    Returns (uint8 array (N, S, S, channels), the paths that loaded, one error per file that did not).
    """

    def load(path):
        try:
            return load_image(path, image_size, crop, channels), None
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
    array = np.stack(images) if images else np.zeros((0, image_size, image_size, channels), np.uint8)
    return array, loaded, errors
