"""Measures of a face, beside the pixels': identity distance and landmark error of a completion
against its ground truth, with dlib's models from the PyPI package face-recognition-models
(nothing is downloaded).

Both images are upscaled (bicubic) to UPSCALED x UPSCALED, where dlib's models work (they were
trained on faces of 80 pixels and more). Everything that decides *where* to look comes from the
truth alone, so that only the pixels differ between the truth and a completion:

- the face's rectangle: dlib's HOG detector's largest face on the upscaled truth, else the
  whole frame (an aligned face fills it);
- identity distance: the 128-d embedding of dlib's face-recognition ResNet
  (dlib_face_recognition_resnet_model_v1.dat) of the truth's face chip and of the completion's
  chip cut with the *same* transform (dlib.get_face_chip from the truth's 5 landmarks), and the
  Euclidean distance between the two. dlib calls two faces the same person below 0.6
  (IDENTITY_THRESHOLD); `same_person_rate` is the share of completions below it;
- landmark error: the 68-point predictor on the truth and on the completion in the truth's
  rectangle, the mean Euclidean distance over the inner-face points (17-67: brows, nose, eyes,
  mouth; the jaw line's 0-16 follow the face's outline more than its features), in pixels of
  the original image (the upscaled distance divided by the upscale factor).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

UPSCALED = 256               # side of the upscaled copy dlib's models see
IDENTITY_THRESHOLD = 0.6     # dlib's: embeddings closer than this are the same person
INNER_FACE = slice(17, 68)   # the 68-point model's brows, nose, eyes and mouth
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # the face chip the recognition model expects (dlib's defaults)


def identity_distance(embedding: np.ndarray, truth_embedding: np.ndarray) -> float:
    """Euclidean distance between two face embeddings (dlib: below 0.6, the same person)."""
    return float(np.linalg.norm(np.asarray(embedding, np.float64) - np.asarray(truth_embedding, np.float64)))


def same_person_rate(distances: Sequence[float], threshold: float = IDENTITY_THRESHOLD) -> float:
    """The share of distances strictly below the threshold."""
    return float(np.mean(np.asarray(distances, np.float64) < threshold))


def landmark_error(points: np.ndarray, truth_points: np.ndarray, scale: float = 1.0) -> float:
    """Mean Euclidean distance over the inner-face points of two (68, 2) landmark sets, divided by scale
    (the upscale factor: the result is in pixels of the original image)."""
    a = np.asarray(points, np.float64)[INNER_FACE]
    b = np.asarray(truth_points, np.float64)[INNER_FACE]
    return float(np.linalg.norm(a - b, axis=1).mean() / scale)


@dataclass
class FaceReference:
    """What the truth fixes for every completion of it: the rectangle, the chip's 5 landmarks,
    the truth's own embedding and 68 landmarks (upscaled coordinates)."""
    rect: object          # dlib.rectangle
    shape5: object        # dlib.full_object_detection
    embedding: np.ndarray  # (128,)
    landmarks: np.ndarray  # (68, 2)
    detected: bool        # whether the detector found the face (else the whole frame)


class FaceMeasures:
    """dlib's detector, 5- and 68-point predictors and recognition ResNet, loaded once."""

    def __init__(self, upscaled: int = UPSCALED):
        import dlib
        import face_recognition_models as models

        self.dlib, self.upscaled = dlib, upscaled
        self.detector = dlib.get_frontal_face_detector()
        self.five = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self.sixty_eight = dlib.shape_predictor(models.pose_predictor_model_location())
        self.recognition = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """uint8 (S, S, 3) (or (S, S) / (S, S, 1): grey, as RGB) at UPSCALED x UPSCALED, bicubic."""
        import cv2

        image = np.asarray(image, np.uint8)
        if image.ndim == 2 or image.shape[2] == 1:
            image = np.repeat(image.reshape(image.shape[:2] + (1,)), 3, axis=2)
        return np.ascontiguousarray(cv2.resize(image, (self.upscaled, self.upscaled), interpolation=cv2.INTER_CUBIC))

    def scale(self, image: np.ndarray) -> float:
        """The upscale factor of an image: upscaled pixels per original pixel."""
        return self.upscaled / np.asarray(image).shape[1]

    def reference(self, truth: np.ndarray) -> FaceReference:
        """The truth's rectangle, 5 landmarks, embedding and 68 landmarks."""
        big = self.upscale(truth)
        faces = sorted(self.detector(big, 0), key=lambda r: r.width() * r.height(), reverse=True)
        rect = faces[0] if faces else self.dlib.rectangle(0, 0, self.upscaled - 1, self.upscaled - 1)
        shape5 = self.five(big, rect)
        return FaceReference(rect, shape5, self._embedding(big, shape5), self._landmarks(big, rect), bool(faces))

    def measure(self, reference: FaceReference, image: np.ndarray) -> dict[str, float]:
        """A completion's identity distance and landmark error (pixels of `image`) against the truth's reference."""
        return self._compare(reference, self.upscale(image), self.scale(image))

    def photo_reference(self, truth: np.ndarray, rect) -> FaceReference:
        """reference() for a whole photo (uint8 (H, W, 3)) at its own size, not upscaled: the face in
        `rect` (a dlib.rectangle in the photo's pixels, e.g. its detected largest face)."""
        photo = np.ascontiguousarray(truth, np.uint8)
        shape5 = self.five(photo, rect)
        return FaceReference(rect, shape5, self._embedding(photo, shape5), self._landmarks(photo, rect), True)

    def measure_photo(self, reference: FaceReference, photo: np.ndarray) -> dict[str, float]:
        """measure() for a whole completed photo against photo_reference()'s (landmark error in photo pixels)."""
        return self._compare(reference, np.ascontiguousarray(photo, np.uint8), 1.0)

    def _compare(self, reference: FaceReference, image: np.ndarray, scale: float) -> dict[str, float]:
        return {"identity_distance": identity_distance(self._embedding(image, reference.shape5), reference.embedding),
                "landmark_error": landmark_error(self._landmarks(image, reference.rect), reference.landmarks, scale)}

    def _embedding(self, big: np.ndarray, shape5) -> np.ndarray:
        chip = self.dlib.get_face_chip(big, shape5, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.asarray(self.recognition.compute_face_descriptor(chip), np.float64)

    def _landmarks(self, big: np.ndarray, rect) -> np.ndarray:
        shape = self.sixty_eight(big, rect)
        return np.float64([(p.x, p.y) for p in shape.parts()])
