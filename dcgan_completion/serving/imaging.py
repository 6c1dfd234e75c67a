"""Uploads in, pictures out: decode an upload with the project's image reader, turn a mask
upload or a built-in mask type into the hole (at the input's size and at the model's), and put
the generator's fill back into the input (compositing.py's exact composite and Poisson blend,
as complete.py's final/ at the model's size; only inside the hole at any other size).

No TensorFlow here. Every bad input is a `BadInput` with an HTTP status and a one-line message.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

import utils
from dcgan_completion.completion import masks as masking
from dcgan_completion.completion.compositing import blend_into, composite, paste, poisson_blend

PREVIEW_SIDE = 512  # live frames and GIF frames of large inputs are shrunk to this longest side


class BadInput(Exception):
    """A request the server refuses: status (400, 413, 422, ...) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Upload(io.BytesIO):
    """An upload's bytes, read like a file; it prints as its field and file name, so that the
    project's image errors ('NAME: cannot read image (...)') name what the client sent."""

    def __init__(self, data: bytes, label: str):
        super().__init__(data)
        self.label = label

    def __str__(self) -> str:
        return self.label


def label(field: str, filename: str | None) -> str:
    name = (filename or "").replace("\n", " ").replace("\r", " ")[:80]
    return f"{field} {name!r}" if name else field


def image_size_of(data: bytes, what: str) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding it; 400 if it is not an image."""
    if not data:
        raise BadInput(400, f"{what}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError:  # Pillow refuses to open it: read the size it declares
        size = declared_size(data)
        if size is not None:
            return size
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        pass
    raise BadInput(400, f"{what}: cannot read image (not an image)")


def declared_size(data: bytes) -> tuple[int, int] | None:
    """The (width, height) an image's header declares, read by the Pillow plugin that accepts it,
    without Image.open's decompression-bomb check (which refuses huge images before their size is known)."""
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        accepted = accept(prefix) if accept is not None else True
        if not accepted or isinstance(accepted, str):
            continue
        try:
            with factory(io.BytesIO(data)) as image:  # parses the header only
                return image.size
        except Exception:  # noqa: BLE001 - not this format: try the next
            continue
    return None


def check_pixels(what: str, width: int, height: int, max_pixels: int) -> None:
    """413 for an image (or mask) that declares more than max_pixels, decoded or not."""
    if width * height > max_pixels:
        raise BadInput(413, f"{what}: {width}x{height} is {width * height / 1e6:.1f} megapixels, over this "
                            f"server's limit of {max_pixels / 1e6:.1f}")


def decode_image(data: bytes, what: str, channels: int, max_pixels: int) -> np.ndarray:
    """An uploaded image as uint8 (H, W, channels), read as complete.py reads its inputs
    (utils.read_image: EXIF orientation, grey, alpha and 16-bit handled). 413 above max_pixels
    (by the size its header declares), 400 for a file that is not an image or is cut short."""
    width, height = image_size_of(data, what)
    check_pixels(what, width, height, max_pixels)
    try:
        return utils.read_image(Upload(data, what), channels)
    except utils.ImageError as error:
        raise BadInput(400, str(error)) from None


def decode_mask(data: bytes, what: str, height: int, width: int, max_pixels: int) -> np.ndarray:
    """An uploaded mask (white = keep, black = fill) at the input's size: bool (H, W), True = keep,
    by masking's rule for a photo's mask. 400 if unreadable, 413 above max_pixels, 422 for another
    size, nothing to fill, or nothing known."""
    mask_width, mask_height = image_size_of(data, what)
    check_pixels(what, mask_width, mask_height, max_pixels)
    if (mask_height, mask_width) != (height, width):
        raise BadInput(422, f"{what}: mask is {mask_width}x{mask_height}, not the image's {width}x{height}")
    try:
        utils.read_rgb(Upload(data, what))  # unreadable (cut short, ...): the client's file is bad
    except utils.ImageError as error:
        raise BadInput(400, str(error)) from None
    try:
        return masking.read_photo_mask(Upload(data, what), height, width)[:, :, 0] > 0.5
    except utils.ImageError as error:  # all white or all black
        raise BadInput(422, str(error)) from None


def builtin_mask(mask_type: str, size: int, center_scale: float, seed: int | None) -> np.ndarray:
    """complete.py's --maskType mask at the model's size: float32 (S, S, 1), 1 = keep (the same
    random mask as complete.py's for the same --seed)."""
    if mask_type not in masking.MASK_TYPES:
        raise BadInput(422, f"mask_type: unknown mask type {mask_type!r}; choose from {', '.join(MASK_TYPES)}")
    if mask_type == "full":
        raise BadInput(422, "mask_type: the full mask keeps every pixel, so there is nothing to fill")
    if mask_type == "lowres" and size % masking.LOWRES_FACTOR:
        raise BadInput(422, f"mask_type: the lowres mask needs an image size divisible by "
                            f"{masking.LOWRES_FACTOR}, not {size}")
    return masking.make_mask(mask_type, size, center_scale, rng=np.random.default_rng(seed))[:, :, :1]


MASK_TYPES = tuple(t for t in masking.MASK_TYPES if t != "full")  # the types a job may ask for


def resize_to(image: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    """uint8 (h, w, C) to (height, width, C): bicubic, or nearest for masks."""
    if image.shape[:2] == (height, width):
        return image
    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    return np.asarray(pil.resize((width, height), method), np.uint8).reshape(height, width, image.shape[2])


def hole_at(model_mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A model-size mask (S, S, 1) blown up to the input's size: bool (H, W), True = fill."""
    keep = (model_mask[:, :, :1] > 0.5).astype(np.uint8) * 255
    return resize_to(keep, height, width, nearest=True)[:, :, 0] < 128


def shrink_keep(keep: np.ndarray, size: int) -> np.ndarray:
    """The input-size mask (bool (H, W), True = keep) at the model's size: float32 (S, S, 1), where a
    model pixel is known only if all of the input pixels it covers are (so no hidden pixel leaks in)."""
    if keep.shape == (size, size):
        return keep.astype(np.float32)[:, :, None]
    hole = Image.fromarray((~keep).astype(np.float32), mode="F")
    share = np.asarray(hole.resize((size, size), Image.Resampling.BOX), np.float32)
    return (share <= 1e-6).astype(np.float32)[:, :, None]


def finish_face(image: np.ndarray, keep: np.ndarray, model_mask: np.ndarray, fill: np.ndarray,
                blend: str) -> np.ndarray:
    """The completed input: at the model's size what complete.py writes to final/ (known pixels
    exactly, the fill Poisson-blended into the hole, or pasted with blend none); at another size the
    fill, resized to the input's, only in the hole (blended there), the input's pixels elsewhere.
    image uint8 (H, W, C); keep bool (H, W); model_mask (S, S, 1); fill (S, S, C) in [-1, 1]."""
    size = fill.shape[0]
    if image.shape[:2] == (size, size):
        if blend == "poisson":
            return poisson_blend(image, utils.to_uint8(fill), np.repeat(model_mask, image.shape[2], 2))
        return composite(image[None], fill[None], model_mask[None])[0]

    hole = ~keep
    upscaled = resize_to(utils.to_uint8(fill), *image.shape[:2])
    if blend == "poisson" and hole.any():
        return blend_into(image, upscaled, hole)
    return paste(image, upscaled, hole)


def face_frame(image: np.ndarray, keep: np.ndarray, model_mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """One live frame: the input with the current fill in its hole (complete.py's completed/ frame
    at the model's size), no larger than PREVIEW_SIDE."""
    size = fill.shape[0]
    if image.shape[:2] == (size, size):
        return composite(image[None], fill[None], model_mask[None])[0]
    return preview(paste(image, resize_to(utils.to_uint8(fill), *image.shape[:2]), ~keep))


def preview(image: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    height, width = image.shape[:2]
    if max(height, width) <= side:
        return image
    scale = side / max(height, width)
    return resize_to(image, max(1, round(height * scale)), max(1, round(width * scale)))


def mask_png(keep: np.ndarray) -> bytes:
    """A mask as the project draws it: white = keep, black = fill."""
    return utils.png_bytes(np.where(keep, 255, 0).astype(np.uint8))
