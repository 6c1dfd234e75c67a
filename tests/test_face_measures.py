"""bench/face_measures.py: identity distance and landmark error against hand-worked numbers, on real
faces shipped by installed packages (matplotlib's Grace Hopper, scikit-image's astronaut, aligned
to 64x64 as align_faces.py aligns them) and the demo's drawn faces."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import face_measures  # noqa: E402


@pytest.fixture(scope="module")
def measures() -> face_measures.FaceMeasures:
    return face_measures.FaceMeasures()


@pytest.fixture(scope="module")
def real_faces() -> dict[str, np.ndarray]:
    """Two people, aligned to 64x64 (inner eyes and bottom lip) from photos that installed packages ship."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data as skimage_data  # a test extra (setup.py): its wheel ships astronaut.png

    from dcgan_completion.faces import alignment as face_alignment
    from dcgan_completion.faces import framing

    detector, predictor = face_alignment.load_models(face_alignment.default_predictor())
    photos = {"hopper": np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")),
              "astronaut": skimage_data.astronaut()}
    indices = framing.LANDMARKS["innerEyesAndBottomLip"]
    return {name: face_alignment.align_face(photo, 64, indices, detector, predictor) for name, photo in photos.items()}


# ----------------------------------------------------------------------------- the maths, by hand

def test_identity_distance_is_the_euclidean_distance():
    a, b = np.zeros(128), np.zeros(128)
    b[:2] = 0.3, 0.4   # a 3-4-5 triangle, scaled by 0.1
    assert face_measures.identity_distance(a, b) == pytest.approx(0.5)
    assert face_measures.identity_distance(b, b) == 0.0


def test_same_person_rate_counts_distances_strictly_below_the_threshold():
    assert face_measures.IDENTITY_THRESHOLD == 0.6
    assert face_measures.same_person_rate([0.3, 0.59, 0.6, 0.9]) == 0.5  # 0.6 itself is not the same person
    assert face_measures.same_person_rate([0.3, 0.59, 0.6, 0.9], threshold=0.95) == 1.0


def test_landmark_error_over_the_inner_face_in_original_pixels():
    truth = np.random.default_rng(0).uniform(0, 256, (68, 2))
    moved = truth + (3.0, 4.0)          # every point 5 upscaled pixels away
    moved[:17] += 100.0                 # the jaw line does not count
    assert face_measures.landmark_error(moved, truth) == pytest.approx(5.0)
    assert face_measures.landmark_error(moved, truth, scale=4.0) == pytest.approx(1.25)
    half = truth.copy()
    half[17:42] += (0.0, 8.0)           # 25 of the 51 inner points 8 away, the others exact
    assert face_measures.landmark_error(half, truth) == pytest.approx(8.0 * 25 / 51)


# ----------------------------------------------------------------------------- on faces

def test_identical_images_measure_zero(measures, real_faces):
    for face in real_faces.values():
        reference = measures.reference(face)
        assert reference.detected  # the detector finds an aligned real face at 256x256
        assert measures.measure(reference, face) == {"identity_distance": 0.0, "landmark_error": 0.0}


def test_another_person_is_far_and_not_the_same_person(measures, real_faces):
    hopper, astronaut = real_faces["hopper"], real_faces["astronaut"]
    for truth, other in ((hopper, astronaut), (astronaut, hopper)):
        scores = measures.measure(measures.reference(truth), other)
        assert scores["identity_distance"] > face_measures.IDENTITY_THRESHOLD, scores  # measured: 0.70 both ways
        assert scores["landmark_error"] > 2.0, scores  # measured: 3.1 and 2.7 pixels of 64


@pytest.mark.parametrize("shift", [2, 3])
def test_the_same_face_shifted_is_the_same_person_with_landmarks_moved_by_the_shift(measures, real_faces, shift):
    hopper = real_faces["hopper"]
    shifted = np.roll(hopper, shift, axis=1)
    shifted[:, :shift] = hopper[:, :1]   # the new left columns: the edge repeated
    scores = measures.measure(measures.reference(hopper), shifted)
    assert scores["identity_distance"] < 0.3, scores           # the same person (measured: 0.13, 0.18)
    assert scores["landmark_error"] == pytest.approx(shift, rel=0.25), scores  # measured: 1.97, 3.32


def test_a_grey_hole_over_the_eyes_nose_and_mouth_loses_the_identity(measures, real_faces):
    hopper = real_faces["hopper"]
    holed = hopper.copy()
    holed[16:48, 16:48] = 128
    scores = measures.measure(measures.reference(hopper), holed)
    assert scores["identity_distance"] > 0.5, scores  # measured: 0.61


def test_grey_images_are_measured_as_rgb(measures, real_faces):
    grey = real_faces["hopper"].mean(axis=2).astype(np.uint8)
    reference = measures.reference(grey)
    assert measures.measure(reference, grey[..., None]) == {"identity_distance": 0.0, "landmark_error": 0.0}
