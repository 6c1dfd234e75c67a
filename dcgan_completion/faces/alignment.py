"""Face alignment after OpenFace's align-dlib.py: dlib's face detector and 68 landmarks, and the
affine warp that puts three landmarks where OpenFace's mean face has them in a size x size square.

dlib's models come from the PyPI package face-recognition-models, so nothing is downloaded at run time.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import dlib
import face_recognition_models
import numpy as np

# OpenFace's mean face lives in framing.py (no dlib there).
from dcgan_completion.faces.framing import MINMAX_TEMPLATE

# ----------------------------------------------------------------------------
# Alignment
# ----------------------------------------------------------------------------

def load_models(predictor_path: str, detector_kind: str = "hog"):
    """dlib's face detector and 68-point landmark predictor."""
    if detector_kind == "cnn":
        detector = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
    else:
        detector = dlib.get_frontal_face_detector()
    return detector, dlib.shape_predictor(predictor_path)


def find_faces(rgb: np.ndarray, detector, upsample: int = 1, max_side: int = 1024) -> list[dlib.rectangle]:
    """Face rectangles in full-resolution coordinates, largest first.

    Photos longer than max_side are searched at a reduced size (HOG time and memory
    grow with the pixel count, doubled again by upsampling); the rectangles are scaled
    back so that landmarks and the warp still use every pixel of the photo.
    """
    scale = 1.0
    image = rgb
    if max_side and max(rgb.shape[:2]) > max_side:
        scale = max_side / max(rgb.shape[:2])
        image = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found = detector(np.ascontiguousarray(image), upsample)
    rects = [getattr(face, "rect", face) for face in found]  # the CNN detector wraps its rectangles
    rects = [dlib.rectangle(*(int(round(v / scale)) for v in (r.left(), r.top(), r.right(), r.bottom())))
             for r in rects]
    return sorted(rects, key=lambda r: r.width() * r.height(), reverse=True)


def find_landmarks(rgb: np.ndarray, rect: dlib.rectangle, predictor) -> np.ndarray:
    """The 68 landmarks (x, y) of the face in rect, float32 (68, 2)."""
    shape = predictor(rgb, rect)
    return np.float32([(point.x, point.y) for point in shape.parts()])


def default_predictor() -> str:
    """The path of dlib's 68-point landmark model, from the face-recognition-models package."""
    return face_recognition_models.pose_predictor_model_location()


def alignment_matrix(landmarks: np.ndarray, size: int, landmark_indices: Sequence[int]) -> np.ndarray:
    """OpenFace's affine transform, photo pixels -> the size x size aligned frame (2 x 3): three
    landmarks go to size * MINMAX_TEMPLATE at the same indices."""
    indices = np.array(landmark_indices)
    return cv2.getAffineTransform(landmarks[indices], size * MINMAX_TEMPLATE[indices])


def warp(rgb: np.ndarray, landmarks: np.ndarray, size: int, landmark_indices: Sequence[int]) -> np.ndarray:
    """OpenFace's warp: the photo in the aligned frame of alignment_matrix."""
    return cv2.warpAffine(rgb, alignment_matrix(landmarks, size, landmark_indices), (size, size))


def align_face(rgb: np.ndarray, size: int, landmark_indices: Sequence[int], detector, predictor,
               upsample: int = 1, max_side: int = 1024) -> np.ndarray | None:
    """The largest face of an RGB photo, aligned to size x size; None if there is no face."""
    faces = find_faces(rgb, detector, upsample, max_side)
    if not faces:
        return None
    return warp(rgb, find_landmarks(rgb, faces[0], predictor), size, landmark_indices)


def finer(matrix: np.ndarray) -> tuple[int, np.ndarray]:
    """(k, the transform to a frame k times finer than matrix's square): k photo pixels per aligned
    pixel, rounded up, so that each aligned pixel is a k x k block covering its photo pixels."""
    k = max(1, math.ceil(1.0 / math.sqrt(abs(np.linalg.det(matrix[:, :2])))))
    return k, np.hstack([k * matrix[:, :2], k * matrix[:, 2:] + (k - 1) / 2.0])  # pixel centres line up


def cut_face(image: np.ndarray, matrix: np.ndarray, size: int, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """The photo's size x size crop through matrix (2 x 3, photo pixels -> the square), each pixel the mean
    of the photo pixels under it (as training's resize makes its faces), not one bilinear sample of a face
    many photo pixels wide. border: how the square is filled where it reaches past the photo's edge."""
    k, fine = finer(matrix)
    warped = cv2.warpAffine(image, fine, (size * k, size * k), flags=cv2.INTER_LINEAR, borderMode=border)
    return cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA)
