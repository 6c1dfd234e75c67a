"""face_alignment: landmark placement on a real photo (OpenFace's template, both landmark
sets, rotation and scale, large photos, several faces, EXIF orientation)."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion.faces import alignment as face_alignment
from dcgan_completion.faces import framing  # noqa: E402

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
INNER = framing.LANDMARKS["innerEyesAndBottomLip"]
OUTER = framing.LANDMARKS["outerEyesAndNose"]
SIZE = 64


@pytest.fixture(scope="module")
def models():
    import face_recognition_models
    return face_alignment.load_models(face_recognition_models.pose_predictor_model_location())


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return utils.read_rgb(PHOTO)


@pytest.fixture(scope="module")
def aligned(photo, models) -> np.ndarray:
    result = face_alignment.align_face(photo, SIZE, INNER, *models)
    assert result is not None and result.shape == (SIZE, SIZE, 3) and result.dtype == np.uint8
    return result


def landmarks_of(face: np.ndarray, models, factor: int = 4) -> np.ndarray:
    """Find the 68 landmarks again on a factor-x upscaled copy; return them in face pixels."""
    detector, predictor = models
    big = cv2.resize(face, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    rects = face_alignment.find_faces(big, detector)
    assert len(rects) == 1, "the aligned face should be found again"
    points = face_alignment.find_landmarks(big, rects[0], predictor)
    return (points + 0.5) / factor - 0.5  # pixel centres: x_big = (x + 0.5) * factor - 0.5


def assert_at_template(face: np.ndarray, models, indices=INNER, tolerance: float = 2.0) -> None:
    found = landmarks_of(face, models)[list(indices)]
    expected = face.shape[0] * framing.MINMAX_TEMPLATE[list(indices)]
    distances = np.linalg.norm(found - expected, axis=1)
    assert distances.max() < tolerance, f"landmarks {found.tolist()} vs template {expected.tolist()}"


def test_minmax_template():
    template = framing.MINMAX_TEMPLATE
    assert template.shape == (68, 2)
    np.testing.assert_allclose(template.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(template.max(axis=0), 1.0, atol=1e-6)
    # OpenFace's MINMAX_TEMPLATE at the six landmarks the warps use (from its template CSV).
    expected = {33: (0.494951, 0.514441), 36: (0.194157, 0.169267), 39: (0.363785, 0.177947),
                42: (0.618963, 0.172778), 45: (0.788859, 0.158171), 57: (0.500204, 0.750584)}
    for index, point in expected.items():
        np.testing.assert_allclose(template[index], point, atol=1e-6)


def test_aligned_landmarks_match_template(aligned, models):
    assert_at_template(aligned, models)


def test_outer_eyes_and_nose(photo, models):
    face = face_alignment.align_face(photo, SIZE, OUTER, *models)
    assert_at_template(face, models, OUTER)


def test_rotated_and_rescaled_photo_aligns_to_same_place(photo, models):
    height, width = photo.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 20, 1.0)
    rotated = cv2.warpAffine(photo, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    rotated = cv2.resize(rotated, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    face = face_alignment.align_face(rotated, SIZE, INNER, *models)
    assert face is not None
    assert_at_template(face, models)


def test_large_photo_is_detected_downscaled_but_warped_at_full_resolution(photo, aligned, models):
    big = cv2.resize(photo, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 2048 x 2400
    rects = face_alignment.find_faces(big, models[0], max_side=600)
    small = face_alignment.find_faces(photo, models[0], max_side=0)
    assert len(rects) == 1 and len(small) == 1
    # Rectangles come back in full-resolution coordinates.
    assert abs(rects[0].left() - 4 * small[0].left()) < 12 and abs(rects[0].width() - 4 * small[0].width()) < 24
    face = face_alignment.align_face(big, SIZE, INNER, *models, max_side=600)
    assert_at_template(face, models)


def test_largest_face_first(photo, models):
    two = two_faces(photo)
    rects = face_alignment.find_faces(two, models[0])
    assert len(rects) == 2
    assert rects[0].width() * rects[0].height() > rects[1].width() * rects[1].height()
    assert rects[0].right() < photo.shape[1]  # the full-size copy is the left one


def test_exif_rotated_photo(tmp_path, aligned, models):
    # Stored turned 90 degrees, with an EXIF Orientation tag (6: rotate 90 CW to view) undoing it.
    stored = Image.open(PHOTO).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "tagged.jpg", quality=95, exif=exif.tobytes())
    stored.save(tmp_path / "tagged.png", exif=exif.tobytes())
    stored.save(tmp_path / "untagged.jpg", quality=95)
    face = face_alignment.align_face(utils.read_rgb(tmp_path / "tagged.jpg"), SIZE, INNER, *models)
    assert face is not None
    assert_at_template(face, models)
    # Lossless: the upright pixels are the original's, so the very same face comes out.
    face = face_alignment.align_face(utils.read_rgb(tmp_path / "tagged.png"), SIZE, INNER, *models)
    np.testing.assert_array_equal(face, aligned)
    # Without the tag the face lies on its side, and the frontal detector misses it.
    assert face_alignment.align_face(utils.read_rgb(tmp_path / "untagged.jpg"), SIZE, INNER, *models) is None


def two_faces(photo: np.ndarray) -> np.ndarray:
    """The photo and a 0.75x copy side by side on grey."""
    height, width = photo.shape[:2]
    smaller = cv2.resize(photo, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width + smaller.shape[1], 3), 128, np.uint8)
    canvas[:, :width] = photo
    canvas[:smaller.shape[0], width:] = smaller
    return canvas
