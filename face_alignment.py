"""Face alignment after OpenFace's align-dlib.py: dlib's face detector and 68 landmarks, and the
affine warp that puts three landmarks where OpenFace's mean face has them in a size x size square.

dlib's models come from the PyPI package face-recognition-models, so nothing is downloaded at run time.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import dlib
import numpy as np


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

LANDMARKS = {
    "innerEyesAndBottomLip": (39, 42, 57),
    "outerEyesAndNose": (36, 45, 33),
}


# ----------------------------------------------------------------------------
# Alignment
# ----------------------------------------------------------------------------

def load_models(predictor_path: str, detector_kind: str = "hog"):
    """dlib's face detector and 68-point landmark predictor."""
    if detector_kind == "cnn":
        import face_recognition_models
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
    import face_recognition_models
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
