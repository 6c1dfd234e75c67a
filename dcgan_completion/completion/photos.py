"""complete.py --photos: content-aware fill of whole photos (the article's motivating use).

For each face whose aligned crop covers or lies near a hole of the photo's mask: the face is
detected and cut the way the model's training faces were (its framing, framing.py;
align_faces.py's template when the model's is unknown), the mask is warped with the same
transform, the crop is completed in the aligned frame (all faces of all photos in batches, each
with its own mask), and the generator's fill is warped back with the inverse transform and
Poisson-blended into the hole at the photo's resolution. The part of a hole outside the face's
aligned crop, which the model never sees, is then filled with OpenCV's Telea inpainting,
continuing from the model's pixels. Pixels outside the hole keep the photo's values exactly.

Without files (a web server): `prepare_photo(image, hole, size, cut=framing)` gives the faces, their aligned
crops and masks go through a CompletionEngine, and `paste_fills(image, faces, fills)` the result.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from tqdm import tqdm

import utils
from dcgan_completion.completion import masks as masking
from dcgan_completion.completion.compositing import blend_into, limit_chroma, paste
from dcgan_completion.completion.engine import CompletionEngine
from dcgan_completion.completion.outputs import complete_in_folders
from dcgan_completion.completion.settings import OutputSettings
from dcgan_completion.faces import alignment as face_alignment
from dcgan_completion.faces import framing

PHOTO_SHARE = 0.8  # a face whose aligned square is under this share of the image's shorter side: a whole photo
SQUARE_TOLERANCE = 0.05  # an aligned face is square: sides this far apart (of the longer) still count
SMALL_IMAGE = 300  # longer side under which dlib's detector needs the image upsampled (faces under 80 px)
GREY_TOLERANCE = 8  # grey levels: a photo whose channels never differ by more is a black-and-white photo
TELEA_RADIUS = 5  # photo pixels: Telea's neighbourhood, OpenCV's usual; wider only blurs the fill more
UNKNOWN_NOTE = ("note: this model's framing is unknown (its dcgan.json does not say how its faces were cut): "
                "photos are cut with align_faces.py's innerEyesAndBottomLip template")


class PhotoError(Exception):
    """A photo that cannot be completed; the message says why (the caller names the photo)."""


@dataclass
class Face:
    """One face to complete: its transform, aligned crop, known pixels there, and the holes it fills."""
    matrix: np.ndarray  # 2 x 3 affine, photo pixels -> aligned frame
    crop: np.ndarray    # uint8 (S, S, 3), framed as the model's faces
    mask: np.ndarray    # float32 (S, S, 1): 1 = known in the aligned frame
    hole: np.ndarray    # bool (H, W): the photo pixels this face fills (its holes, whole)
    outside: np.ndarray  # bool (H, W): the part of `hole` outside the aligned crop, filled by Telea


@dataclass
class Photo:
    path: Path
    name: str
    image: np.ndarray   # uint8 (H, W, 3)
    known: np.ndarray   # bool (H, W)
    faces: list[Face] = field(default_factory=list)


# ----------------------------------------------------------------------------
# Geometry: the photo's holes in the aligned frame and back
# ----------------------------------------------------------------------------

def crop_region(matrix: np.ndarray, size: int, shape: tuple[int, int], margin: int = 0) -> np.ndarray:
    """bool (H, W): the photo pixels whose aligned position lies in the size x size crop, grown by
    margin aligned pixels on every side."""
    ones = np.ones((size + 2 * margin,) * 2, np.uint8)
    shifted = np.hstack([matrix[:, :2], matrix[:, 2:] + margin])
    return cv2.warpAffine(ones, shifted, (shape[1], shape[0]), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def aligned_mask(hole: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """float32 (S, S, 1): 0 for every aligned pixel whose footprint in the photo touches the hole or
    reaches outside the photo (both grown by a pixel, the reach of the crop's bilinear sampling), else 1.

    A crop pixel spans several photo pixels, so the hole is warped to a frame k times finer
    (k photo pixels per aligned pixel, rounded up) and each k x k block counts as hole if any of it is.
    """
    k, fine = face_alignment.finer(matrix)
    grown = cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8))
    grown[[0, -1], :] = grown[:, [0, -1]] = 1
    warped = cv2.warpAffine(grown, fine, (size * k, size * k), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=1)
    unknown = warped.reshape(size, k, size, k).max(axis=(1, 3)) > 0
    return (~unknown).astype(np.float32)[:, :, None]


def fill_to_photo(fill: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The aligned fill (uint8 (S, S, 3)) warped back to the photo's frame with the inverse transform."""
    return cv2.warpAffine(fill, matrix, (shape[1], shape[0]), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


# ----------------------------------------------------------------------------
# Planning a photo: which face fills which hole
# ----------------------------------------------------------------------------

def plan_faces(image: np.ndarray, hole: np.ndarray, size: int, detector, predictor,
               cut: dict | None = None) -> list[Face]:
    """The faces to complete, each cut with the framing `cut` (framing.py; None: unknown). Each hole
    (a connected region of pixels to fill, bool (H, W)) goes to a face near it: one whose aligned
    crop, grown by half its side on every side (a square twice as wide around the same centre),
    overlaps the hole. Of those, the one whose crop covers the most of the hole wins, the largest
    on a tie (so a hole that one crop covers whole goes to the largest such face). The part of the
    hole outside that crop is the face's `outside`. Raises PhotoError without a face, or for a
    hole near no face."""
    labels, count = ndimage.label(hole, structure=np.ones((3, 3)))
    rects = face_alignment.find_faces(image, detector)  # largest first
    if not rects:
        raise PhotoError("no face found")
    matrices = [framing.matrix(face_alignment.find_landmarks(image, rect, predictor), size, cut) for rect in rects]
    crops = [crop_region(matrix, size, hole.shape) for matrix in matrices]
    nears = [crop_region(matrix, size, hole.shape, size // 2) for matrix in matrices]
    owner = hole_owners(labels, count, crops, nears)
    lost = [label for label in range(1, count + 1) if owner[label] < 0]
    if lost:
        rows, cols = np.nonzero(labels == lost[0])
        raise PhotoError(f"{len(lost)} of {count} hole(s) lie away from every face (not within half a side of "
                         f"a face's aligned crop; {len(rects)} face(s) found), e.g. the one at "
                         f"x {cols.min()}-{cols.max()}, y {rows.min()}-{rows.max()}")
    faces = []
    for index, (matrix, crop) in enumerate(zip(matrices, crops)):
        mine = np.isin(labels, np.nonzero(owner == index)[0]) & hole
        if mine.any():
            pixels = face_alignment.cut_face(image, matrix, size)
            faces.append(Face(matrix, pixels, aligned_mask(hole, matrix, size), mine, mine & ~crop))
    return faces


def hole_owners(labels: np.ndarray, count: int, crops: list[np.ndarray], nears: list[np.ndarray]) -> np.ndarray:
    """owner[label]: the index of the face that fills that hole, -1 for none (label 0, the known
    pixels, and holes near no face). crops, nears: each face's crop and near region, largest face first."""
    covered = np.stack([np.bincount(labels[crop], minlength=count + 1) for crop in crops])
    near = np.stack([np.bincount(labels[region], minlength=count + 1) > 0 for region in nears])
    # argmax takes the first of equals: the largest face among those covering the most.
    owner = np.where(near, covered, -1).argmax(axis=0)
    owner[~near.any(axis=0)] = -1
    owner[0] = -1
    return owner


# ----------------------------------------------------------------------------
# One photo, without files: its faces in, the completed photo out
# ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def face_models():
    """dlib's face detector and landmark predictor, loaded once per process."""
    return face_alignment.load_models(face_alignment.default_predictor())


def prepare_photo(image: np.ndarray, hole: np.ndarray, size: int, models=None, cut: dict | None = None) -> list[Face]:
    """The faces of a photo (uint8 (H, W, 3)) to complete for its hole (bool or uint8 (H, W),
    nonzero = a pixel to fill), each with its crop and mask (Face.crop, Face.mask) at the model's
    size, cut with the model's framing `cut` (checkpoints.read_framing; None: unknown, align_faces.py's
    template). models: (detector, predictor), face_models() by default. Raises PhotoError when
    there is no hole, no face, or a hole near no face (plan_faces says what near is)."""
    hole = np.asarray(hole) != 0
    if hole.shape != image.shape[:2]:
        raise PhotoError(f"the hole mask is {hole.shape[1]}x{hole.shape[0]}, not the photo's "
                         f"{image.shape[1]}x{image.shape[0]}")
    if not hole.any():
        raise PhotoError("the hole mask marks no pixel to fill")
    detector, predictor = models if models is not None else face_models()
    return plan_faces(image, hole, size, detector, predictor, cut)


def looks_like_photo(image: np.ndarray, size: int, models=None, cut: dict | None = None) -> tuple[bool, str]:
    """Whether an image (uint8 (H, W, 3)) is a whole photo to fill through its faces (True) or an aligned
    face (False), and why (a clause): an aligned face when it is the model's size x size or no face is
    found; else a photo when it is not square (squeezed to the model's square, its face would be
    distorted) or its largest face's aligned square, cut with the model's framing `cut`, is under
    PHOTO_SHARE of its side."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return False, f"the image is the model's {size}x{size}"
    detector, predictor = models if models is not None else face_models()
    rects = face_alignment.find_faces(image, detector, upsample=int(max(height, width) < SMALL_IMAGE))
    if not rects:
        return False, f"no face was found in the {width}x{height} image"
    if abs(width - height) > SQUARE_TOLERANCE * max(width, height):
        return True, f"a face was found in the {width}x{height} image, which is not square"
    matrix = framing.matrix(face_alignment.find_landmarks(image, rects[0], predictor), size, cut)
    side = size / np.sqrt(abs(np.linalg.det(matrix[:, :2])))  # the aligned square's side in image pixels
    if side < PHOTO_SHARE * min(height, width):
        return True, f"its face's aligned square is {side:.0f} px wide, in a {width}x{height} image"
    return False, f"its face's aligned square ({side:.0f} px) fills the {width}x{height} image"


def decision_note(photo: bool, why: str) -> str:
    """The job's line on how it was completed when the request did not say."""
    return f"completed as {'a whole photo' if photo else 'an aligned face'}: {why}"


def photo_hint(paths: list, size: int, cut: dict | None = None, limit: int = 8) -> str | None:
    """One line when one of the first `limit` of complete.py's inputs (read as aligned faces) looks like
    a whole photo (looks_like_photo): which, why, and the flags that fill it through its faces."""
    for path in paths[:limit]:
        photo, why = looks_like_photo(utils.read_rgb(path), size, cut=cut)
        if photo:
            return (f"{path} looks like a whole photo ({why}) and was completed as an aligned face, squeezed to "
                    f"{size}x{size}: --photos {path} --mask MASK fills it through its faces")
    return None


def paste_fills(image: np.ndarray, faces: list[Face], fills: list[np.ndarray], blend: str = "poisson") -> np.ndarray:
    """The photo (uint8 (H, W, 3)) with each face's fill (G(z), uint8 (S, S, 3) or float in [-1, 1],
    as CompletionResult.fill's rows) warped back, its colours kept to those around the hole (grey in a
    black-and-white photo; compositing.limit_chroma), and Poisson-blended (blend "none": pasted) into
    that face's holes; then the holes' parts outside the aligned crops filled by Telea's inpainting."""
    result, grey = image, is_grey(image)
    for face, fill in zip(faces, fills):
        fill = fill if fill.dtype == np.uint8 else utils.to_uint8(fill)
        warped = fill_to_photo(fill, face.matrix, image.shape[:2])
        if grey:  # the model paints in colour: a black-and-white photo gets its fill in grey
            warped = np.repeat(np.rint(warped.mean(axis=2, keepdims=True)).astype(np.uint8), 3, axis=2)
        else:  # no colour its surroundings do not have (the model paints some irises teal)
            warped = limit_chroma(warped, image, face.hole)
        # The whole hole, so that the blend meets only the photo's own pixels, never the hidden ones.
        result = blend_into(result, warped, face.hole) if blend == "poisson" else paste(result, warped, face.hole)
    outside = np.zeros(image.shape[:2], bool)
    for face in faces:
        outside |= face.outside
    return telea_into(result, outside) if outside.any() else result


def is_grey(image: np.ndarray) -> bool:
    """Whether a photo (uint8 (H, W, 3)) is black and white: no pixel's channels differ by more than GREY_TOLERANCE."""
    pixels = image.astype(np.int16)
    return bool(np.abs(pixels - pixels[..., :1]).max() <= GREY_TOLERANCE)


def telea_into(image: np.ndarray, region: np.ndarray, radius: int = TELEA_RADIUS) -> np.ndarray:
    """image (uint8 (H, W, 3)) with region (bool (H, W)) filled by OpenCV's Telea inpainting from the
    pixels around it, the model's fill included; every other pixel is image's. Only a window around
    the region is inpainted: Telea reads no pixel farther than radius from it."""
    rows, cols = np.nonzero(region)
    reach = radius + 2
    window = (slice(max(rows.min() - reach, 0), rows.max() + reach + 1),
              slice(max(cols.min() - reach, 0), cols.max() + reach + 1))
    filled = cv2.inpaint(np.ascontiguousarray(image[window]), region[window].astype(np.uint8), radius,
                         cv2.INPAINT_TELEA)
    out = image.copy()
    out[window] = paste(image[window], filled, region[window])
    return out


def outside_note(faces: list[Face]) -> str | None:
    """One line for a photo whose holes reach outside the faces' aligned crops; None when none does."""
    outside = sum(int(face.outside.sum()) for face in faces)
    if not outside:
        return None
    total = sum(int(face.hole.sum()) for face in faces)
    squares = "the face's aligned square" if len(faces) == 1 else "the faces' aligned squares"
    return (f"{outside:,} of {total:,} hole pixels lie outside {squares} and were filled with "
            f"OpenCV's Telea inpainting")


# ----------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------

def photo_masks(paths: list, mask: str) -> list[Path]:
    """Each photo's mask file: `mask` itself, or the one named like the photo in the folder `mask`;
    every one found before any work starts."""
    if Path(mask).is_dir():
        return masking.find_masks(mask, paths)
    if Path(mask).is_file():
        return [Path(mask)] * len(paths)
    raise utils.UserError(f"mask {mask} does not exist")


class PhotoCompletion:
    """complete.py --photos: plan every photo, complete all faces in batches, blend, write."""

    def __init__(self, engine: CompletionEngine, output: OutputSettings, cut: dict | None = None):
        self.engine, self.output, self.cut = engine, output, cut  # cut: the model's framing

    def run(self, paths: list, masks: list[Path]) -> int:
        """Complete each photo with its mask (photo_masks); a photo that cannot be done is a one-line
        error, and the others are still done (exit 1)."""
        models = face_models()
        if not framing.known(self.cut):
            print(UNKNOWN_NOTE, file=sys.stderr)
        photos, failed = [], 0
        todo = list(zip(paths, utils.unique_names([Path(path).stem for path in paths]), masks))
        for path, name, mask_path in tqdm(todo, desc="Finding faces", unit="photo", disable=len(todo) < 2,
                                          leave=False):
            try:
                photos.append(self.prepare(Path(path), name, mask_path, models))
            except (utils.ImageError, PhotoError) as error:
                text = str(error)
                tqdm.write(f"error: {text if text.startswith(str(path)) else f'{path}: {text}'}", file=sys.stderr)
                failed += 1
        faces = [face for photo in photos for face in photo.faces]
        if faces:
            fills = iter(self.complete_faces(faces))
            for photo in photos:
                self.write(photo, paste_fills(photo.image, photo.faces, [next(fills) for _ in photo.faces],
                                              self.output.blend))
            out = self.output.out_dir
            print(f"Completed {len(faces)} face(s) in {len(photos)} photo(s): results in {out / 'final'}, "
                  f"side by side in {out / 'side_by_side'}, the aligned faces' optimisation in {out}.")
        if failed:
            print(f"error: {failed} of {len(paths)} photo(s) could not be completed", file=sys.stderr)
            return 1
        return 0

    def prepare(self, path: Path, name: str, mask_path: Path, models) -> Photo:
        image = utils.read_rgb(path)
        known = masking.read_photo_mask(mask_path, *image.shape[:2])[:, :, 0] > 0.5
        faces = prepare_photo(image, ~known, self.engine.model.image_size, models, self.cut)
        note = outside_note(faces)
        if note:
            tqdm.write(f"note: {path}: {note}", file=sys.stderr)
        return Photo(path, name, image, known, faces)

    def complete_faces(self, faces: list[Face]) -> list[np.ndarray]:
        """Every face's fill G(z), uint8 (S, S, 3), completed in batches of the batch size, with
        the original's outputs of each batch in the output folder."""
        # No wider than the faces: a photo or two would otherwise pay for a whole padded batch.
        pad_to = min(self.engine.settings.batch_size, len(faces))
        crops, masks = np.stack([f.crop for f in faces]), np.stack([f.mask for f in faces])
        results = complete_in_folders(self.engine, crops, masks, self.output.out_dir, pad_to)
        return [fill for _, result in results for fill in utils.to_uint8(result.fill)]

    def write(self, photo: Photo, result: np.ndarray) -> None:
        """final/<name>.png, and side_by_side/<name>.png: the photo with its hole in black | the result."""
        out = self.output.out_dir
        utils.save_png(out / "final" / f"{photo.name}.png", result)
        holed = np.where(photo.known[:, :, None], photo.image, 0).astype(np.uint8)
        gap = np.full((result.shape[0], 8, 3), 255, np.uint8)
        utils.save_png(out / "side_by_side" / f"{photo.name}.png", np.hstack([holed, gap, result]))
