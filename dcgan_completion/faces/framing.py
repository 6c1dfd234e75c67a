"""How a model's faces were cut out of their photos (their framing), and the transform that cuts a
photo's face the same way.

A framing is a small dict, as `align_faces.py` writes it beside its faces (framing.json) and
`train_dcgan.py` records it in the checkpoint's dcgan.json:
- {"kind": "openface", "landmarks": "innerEyesAndBottomLip", "template": ..., "size": 64, "padding": 0}:
  align_faces.py's, three landmarks sent onto OpenFace's mean face (an exact affine warp);
- {"kind": "celeba", "image": [178, 218], "crop": 108}: CelebA's aligned images (their eye centres and
  mouth centre where CelebA's alignment put them, a similarity), then the centred crop;
- {"kind": "drawn", "by": "data/make_faces.py", "eyes": [[x, y], [x, y]], "mouth": [x, y]}: drawn faces,
  the eyes and mouth in make_faces's unit coordinates (a similarity);
- {"kind": "portrait", "by": "data/portraits.py", "eyes": ..., "mouth": ..., "size": 64}: the same kind of
  similarity to PORTRAIT's points, a square that holds the whole face (forehead, brows, cheeks, chin);
- {"kind": "unknown"}: nothing recorded; photos are then cut as align_faces.py's default does.

Any of the first two may add "crop" (and "image", the side of the square or [W, H]): the centred
crop that train_dcgan.py's --crop/--input_height took before resizing. No dlib, no TensorFlow.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

import utils

FRAMING_FILE = "framing.json"  # align_faces.py's description of its faces, beside them
UNKNOWN = {"kind": "unknown"}

# OpenFace's 68-point mean face (openface/align_dlib.py, TEMPLATE), in OpenFace's units.
TEMPLATE = np.float32([
    (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943),
    (0.0967927109165, 0.575648016728), (0.122141515615, 0.691921601066),
    (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
    (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149),
    (0.531777802068, 1.06080371126), (0.641296298053, 1.03981924107),
    (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
    (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421),
    (0.96111933829, 0.562238253072), (0.970579841181, 0.441758925744),
    (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
    (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323),
    (0.367460241458, 0.203582210627), (0.4392945113, 0.233135599851),
    (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
    (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114),
    (0.8707571886, 0.235293377042), (0.51534533827, 0.31863546193),
    (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
    (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668),
    (0.475501237769, 0.62076344024), (0.520712933176, 0.634268222208),
    (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
    (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002),
    (0.355749724218, 0.303020650651), (0.403718978315, 0.33867711083),
    (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
    (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267),
    (0.73597236153, 0.294721285802), (0.782865376271, 0.321305281656),
    (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
    (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073),
    (0.477677654595, 0.706835892494), (0.522732900812, 0.717092275768),
    (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
    (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972),
    (0.576410514055, 0.835436670169), (0.525398405766, 0.841706377792),
    (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
    (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612),
    (0.523389793327, 0.748924302636), (0.571057789237, 0.74332894691),
    (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
    (0.5240106503, 0.783370783245), (0.477561227414, 0.778476346951),
])
# Min-max normalised per axis to [0, 1], as OpenFace does.
MINMAX_TEMPLATE = (TEMPLATE - TEMPLATE.min(axis=0)) / (TEMPLATE.max(axis=0) - TEMPLATE.min(axis=0))
TEMPLATE_NAME = "OpenFace's mean face, min-max normalised"

LANDMARKS = {  # align_faces.py's choices: three of dlib's 68 landmarks
    "innerEyesAndBottomLip": (39, 42, 57),
    "outerEyesAndNose": (36, 45, 33),
}
DEFAULT_LANDMARKS = "innerEyesAndBottomLip"  # the article's, and what an unknown framing gets
# The eye centres and the mouth's centre as groups of dlib's 68 landmarks: the points CelebA's alignment uses.
EYES_AND_MOUTH = (tuple(range(36, 42)), tuple(range(42, 48)), (48, 54))

# CelebA's alignment (align_face_celeba.m, distributed with the dataset) fits a nonreflective similarity
# that sends the left eye, the right eye and the midpoint of the mouth corners to these points of its
# 178x218 images (MATLAB's 1-based pixels there, 0-based here). The dataset's average landmarks
# (list_landmarks_align_celeba.txt: eyes (69, 111), (108, 111), mouth corners (72, 152), (105, 152)) agree.
CELEBA_IMAGE = (178, 218)
CELEBA_POINTS = ((69.745, 111.0), (107.237, 111.0), (88.432, 152.514))

# The portrait framing's eye centres and mouth centre, in units of the square's side. On 300 artflow.ai
# portraits (dlib's landmarks, in eye distances below the eyes' midpoint) the mouth lies 1.10 below
# the eyes, the brows' top 0.36 above (0.47 at the 5th percentile), the chin 1.81 below (2.24 at
# the 95th) and the jaw's sides 1.09 out (1.34): with the eyes 0.25 apart at height 0.42, the
# brows sit at 0.33, the chin at 0.87 (0.98) and the jaw within 0.16-0.84, the whole face inside.
PORTRAIT = {"eyes": [[0.375, 0.42], [0.625, 0.42]], "mouth": [0.5, 0.695]}


class FramingError(utils.UserError):
    """A framing description that cannot be used; the message says why."""


def openface(landmarks: str, size: int) -> dict:
    """align_faces.py's framing: `landmarks` (a key of LANDMARKS) onto OpenFace's template, size x size."""
    return {"kind": "openface", "landmarks": landmarks, "template": TEMPLATE_NAME, "size": size, "padding": 0}


def celeba(width: int, height: int, crop: int | None) -> dict:
    """CelebA's aligned images of width x height (178x218, or a resized copy), centre-cropped to crop."""
    return {"kind": "celeba", "image": [width, height], "crop": crop or min(width, height)}


def portrait(size: int) -> dict:
    """data/portraits.py's framing: eyes and mouth sent to PORTRAIT's points of a size x size square."""
    return {"kind": "portrait", "by": "data/portraits.py", **PORTRAIT, "size": size}


def is_celeba_shape(width: int, height: int) -> bool:
    """Whether images of this size have img_align_celeba's 178:218 shape (89x109 at half size)."""
    return abs(width * CELEBA_IMAGE[1] - height * CELEBA_IMAGE[0]) <= CELEBA_IMAGE[0] // 2


def known(framing: dict | None) -> bool:
    return bool(framing) and framing.get("kind", "unknown") != "unknown"


# ----------------------------------------------------------------------------
# A framing's points in the model's square
# ----------------------------------------------------------------------------

def _source_points(framing: dict) -> tuple[tuple, np.ndarray, tuple[int, int], bool]:
    """(landmark groups, their positions in the framing's own images in pixels (centres at integers, as
    OpenCV's), those images' (W, H), whether three points are sent exactly (affine) or fitted (similarity))."""
    kind = framing.get("kind", "unknown")
    if kind == "openface":
        name = framing.get("landmarks", DEFAULT_LANDMARKS)
        if name not in LANDMARKS:
            raise FramingError(f"framing landmarks must be one of {', '.join(LANDMARKS)}, not {name!r}")
        size, pad = int(framing["size"]), float(framing.get("padding", 0))
        points = size * (MINMAX_TEMPLATE[list(LANDMARKS[name])] + pad) / (1 + 2 * pad)
        return tuple((i,) for i in LANDMARKS[name]), points, (size, size), True
    if kind == "celeba":
        width, height = framing.get("image", CELEBA_IMAGE)
        scale = np.float32([width / CELEBA_IMAGE[0], height / CELEBA_IMAGE[1]])
        points = (np.float32(CELEBA_POINTS) + 0.5) * scale - 0.5  # a resized copy of the 178x218 images
        return EYES_AND_MOUTH, points, (width, height), False
    if kind in ("drawn", "portrait"):
        size = int(framing.get("size", 64))
        unit = np.float32([*framing["eyes"], framing["mouth"]])
        return EYES_AND_MOUTH, unit * size - 0.5, (size, size), False  # unit coordinates span pixel edges
    raise FramingError(f"framing kind must be openface, celeba, drawn, portrait or unknown, not {kind!r}")


def model_points(framing: dict | None, size: int = 64) -> tuple[tuple, np.ndarray, bool]:
    """(landmark groups, where the framing puts them in units of the model's side, exact?). Units span
    pixel edges: a model of side S has the point at pixel S * unit - 0.5, wherever the faces were cropped
    and resized to S. An unknown framing gets align_faces.py's default for a model of side `size`:
    innerEyesAndBottomLip on OpenFace's template."""
    if not known(framing):
        framing = openface(DEFAULT_LANDMARKS, size)
    try:
        groups, points, (width, height), exact = _source_points(framing)
        crop = framing.get("crop")
        side = min(width, height, int(crop)) if crop else None
    except (KeyError, TypeError, ValueError) as error:
        raise FramingError(f"framing {json.dumps(framing)} is incomplete ({error})") from None
    if side is None:
        if width != height:
            raise FramingError(f"framing {json.dumps(framing)}: {width}x{height} images need a square crop")
        return groups, (points + 0.5) / width, exact
    offset = np.float32([(width - side) // 2, (height - side) // 2])  # utils.center_crop's
    return groups, (points - offset + 0.5) / side, exact


def matrix(landmarks: np.ndarray, size: int, framing: dict | None) -> np.ndarray:
    """The affine transform (2 x 3) from photo pixels to the model's size x size square that puts the
    face's landmarks (dlib's 68, float (68, 2)) where the framing has them."""
    groups, points, exact = model_points(framing, size)
    source = centres(landmarks, groups)
    target = np.float32(size * points - 0.5)
    if exact:
        return cv2.getAffineTransform(source, target)
    return similarity(source, target)


def centres(landmarks: np.ndarray, groups: tuple = EYES_AND_MOUTH) -> np.ndarray:
    """float32 (len(groups), 2): the mean of each group of dlib's 68 landmarks ((68, 2)); by default the
    left eye's centre, the right eye's and the midpoint of the mouth corners."""
    return np.float32([landmarks[list(group)].mean(axis=0) for group in groups])


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares nonreflective similarity (2 x 3) taking source points (N, 2) to target points."""
    x, y = source[:, 0].astype(float), source[:, 1].astype(float)
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    # u = a x - b y + tx, v = b x + a y + ty
    rows = np.vstack([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([target[:, 0], target[:, 1]]).astype(float), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


# ----------------------------------------------------------------------------
# Words, and where a framing is written down
# ----------------------------------------------------------------------------

def describe(framing: dict | None) -> str:
    """The framing in a few words, for a first line."""
    kind = (framing or UNKNOWN).get("kind", "unknown")
    crop = f", then the centred {framing['crop']}x{framing['crop']}" if known(framing) and framing.get("crop") else ""
    if kind == "openface":
        return f"align_faces.py's {framing.get('landmarks')} (OpenFace's template) at {framing.get('size')}px{crop}"
    if kind == "celeba":
        width, height = framing.get("image", CELEBA_IMAGE)
        return f"CelebA's aligned {width}x{height} images{crop}"
    if kind in ("drawn", "portrait"):
        (lx, ly), (rx, _), (_, my) = framing["eyes"][0], framing["eyes"][1], framing["mouth"]
        what, by = ("drawn faces", "data/make_faces.py") if kind == "drawn" else ("portraits", "data/portraits.py")
        return (f"{what} ({framing.get('by', by)}: eyes at x {lx:g} and {rx:g}, y {ly:g}; "
                f"mouth at y {my:g}){crop}")
    return f"unknown (photos are cut with align_faces.py's {DEFAULT_LANDMARKS})"


def read_file(folder: str | os.PathLike) -> dict | None:
    """align_faces.py's framing.json in folder, or None if there is none (or it is unreadable)."""
    try:
        framing = json.loads((Path(folder) / FRAMING_FILE).read_text())
    except (OSError, ValueError):
        return None
    return framing if isinstance(framing, dict) and "kind" in framing else None


def of_dataset(folder: str | os.PathLike, crop: bool | int, first_image_size: tuple[int, int] | None) -> dict:
    """The framing of the faces train_dcgan.py trains on: the folder's framing.json, then the
    centre crop; CelebA's when the images are img_align_celeba-shaped and cropped; else unknown."""
    described = read_file(folder)
    side = None if crop is True or not crop else int(crop)
    if described is not None:
        if crop and known(described):
            size = described.get("size")
            described = {**described, "crop": side or size}
        return described
    if crop and first_image_size and is_celeba_shape(*first_image_size):
        return celeba(*first_image_size, side)
    why = "centre-cropped images without a framing.json" if crop else f"no {FRAMING_FILE} in the dataset folder"
    return {**UNKNOWN, "why": why}
