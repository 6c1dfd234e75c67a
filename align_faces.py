#!/usr/bin/env python3
"""Align faces for training: a port of OpenFace's align-dlib.py (mode "align").

    python align_faces.py INPUT_DIR align innerEyesAndBottomLip OUTPUT_DIR --size 64

Every image below INPUT_DIR is searched for faces with dlib; the largest face's
68 landmarks are found, and an affine warp sends three of them (inner eye corners
and bottom lip, or outer eye corners and nose tip) to where OpenFace's mean face
template has them in a size x size square. The result is OUTPUT_DIR/<sub-folders>/NAME.png.
Needs dlib and OpenCV, not OpenFace or Torch; dlib's models come from the PyPI
package face-recognition-models, so nothing is downloaded at run time.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import dlib
import numpy as np
from tqdm import tqdm

import utils

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


def warp(rgb: np.ndarray, landmarks: np.ndarray, size: int, landmark_indices: Sequence[int]) -> np.ndarray:
    """OpenFace's warp: three landmarks go to size * MINMAX_TEMPLATE at the same indices."""
    indices = np.array(landmark_indices)
    matrix = cv2.getAffineTransform(landmarks[indices], size * MINMAX_TEMPLATE[indices])
    return cv2.warpAffine(rgb, matrix, (size, size))


def align_face(rgb: np.ndarray, size: int, landmark_indices: Sequence[int], detector, predictor,
               upsample: int = 1, max_side: int = 1024) -> np.ndarray | None:
    """The largest face of an RGB photo, aligned to size x size; None if there is no face."""
    faces = find_faces(rgb, detector, upsample, max_side)
    if not faces:
        return None
    return warp(rgb, find_landmarks(rgb, faces[0], predictor), size, landmark_indices)


# ----------------------------------------------------------------------------
# One photo, in a worker process
# ----------------------------------------------------------------------------

class Job(NamedTuple):
    source: str
    target: str  # NAME.png; with --allFaces, NAME_0.png, NAME_1.png, ... are written instead


class Result(NamedTuple):
    status: str  # aligned, no_face, multi, unreadable, failed
    source: str
    faces: int = 0
    message: str = ""


_worker: dict = {}


def init_worker(options: dict) -> None:
    """Load the dlib models once per worker process, not once per photo. Never raises: a pool
    restarts a worker whose initializer fails, forever; process() reports the error instead."""
    _worker.update(options)
    cv2.setNumThreads(1)  # the parallelism comes from the worker processes
    try:
        _worker["detector"], _worker["predictor"] = load_models(options["predictor"], options["detector_kind"])
    except Exception as error:  # a corrupt model file: dlib raises RuntimeError
        _worker["model_error"] = model_error(options["predictor"], error)


def model_error(predictor: str, error: Exception) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{predictor}: cannot load the dlib models ({reason})"


def face_path(target: str, index: int) -> Path:
    path = Path(target)
    return path.with_name(f"{path.stem}_{index}{path.suffix}")


def process(job: Job) -> Result:
    """Align one photo; every failure becomes a counted Result, never a traceback."""
    options = _worker
    if "model_error" in options:
        return Result("model_error", job.source, message=options["model_error"])
    try:
        rgb = utils.read_rgb(job.source)
    except utils.ImageError as error:
        return Result("unreadable", job.source, message=str(error))
    try:
        faces = find_faces(rgb, options["detector"], options["upsample"], options["max_side"])
        if not faces:
            return Result("no_face", job.source)
        if len(faces) > 1 and options["skip_multi"]:
            return Result("multi", job.source, message=f"{len(faces)} faces")
        if not options["all_faces"]:
            faces = faces[:1]
        aligned = [warp(rgb, find_landmarks(rgb, rect, options["predictor"]), options["size"], options["indices"])
                   for rect in faces]
        if options["all_faces"]:
            # NAME_0.png last: its presence is what marks the photo as done on a rerun.
            for index in reversed(range(len(aligned))):
                utils.save_png(face_path(job.target, index), aligned[index])
        else:
            utils.save_png(job.target, aligned[0])
        return Result("aligned", job.source, faces=len(aligned))
    except Exception as error:  # a dlib/OpenCV failure or a full disk: report it, go on with the rest
        return Result("failed", job.source, message=f"{job.source}: {type(error).__name__}: {error}")


# ----------------------------------------------------------------------------
# Planning the run
# ----------------------------------------------------------------------------

def plan(input_dir: Path, output_dir: Path, flat: bool) -> list[Job]:
    """One Job per input image, each with its own output name.

    Names can collide (photo.jpg and photo.png in one folder; with --flat, the same
    file name in two folders): a later one gets a -1, -2, ... suffix. The list is
    sorted, so the same input folder gives the same names on every run.
    """
    output_resolved = output_dir.resolve()
    jobs, taken = [], set()
    for source in utils.list_images(input_dir):
        if output_resolved in source.resolve().parents:
            continue  # the output folder may sit inside the input folder
        relative = source.relative_to(input_dir).with_suffix("")
        stem = "__".join(relative.parts) if flat else str(relative)
        name, suffix = stem, 0
        while name.casefold() in taken:  # casefold: macOS and Windows file names ignore case
            suffix += 1
            name = f"{stem}-{suffix}"
        taken.add(name.casefold())
        jobs.append(Job(str(source), str(output_dir / f"{name}.png")))
    return jobs


def is_done(job: Job, all_faces: bool) -> bool:
    return (face_path(job.target, 0) if all_faces else Path(job.target)).exists()


def summary(counts: Counter, faces: int) -> str:
    line = (f"summary: {counts['aligned']} aligned ({faces} faces written), {counts['no_face']} no face found, "
            f"{counts['multi']} several faces skipped, {counts['unreadable']} unreadable, "
            f"{counts['done']} already done")
    if counts["failed"]:
        line += f", {counts['failed']} failed"
    return line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputDir", help="folder of photos (searched recursively for .png/.jpg/.jpeg)")
    parser.add_argument("mode", choices=["align"], help="only 'align', as in the article's command")
    parser.add_argument("landmarks", choices=list(LANDMARKS), help="which three landmarks the warp uses")
    parser.add_argument("outputDir", help="aligned faces go here, keeping the input's sub-folders")
    parser.add_argument("--size", type=utils.positive_int, default=96, help="output side in pixels (default: %(default)s; the article uses 64)")
    multi = parser.add_mutually_exclusive_group()
    multi.add_argument("--skipMulti", action="store_true", help="skip photos with more than one face")
    multi.add_argument("--allFaces", action="store_true",
                       help="write every face of a photo as NAME_0.png, NAME_1.png, ... (largest first)")
    parser.add_argument("--dlibFacePredictor", default=None,
                        help="dlib 68-point shape predictor (default: the one in face-recognition-models)")
    parser.add_argument("--detector", choices=["hog", "cnn"], default="hog",
                        help="dlib's HOG frontal detector (default, as OpenFace) or its slower CNN detector")
    parser.add_argument("--upsample", type=utils.non_negative_int, default=1, help="times the detector upsamples, to find smaller faces (default: %(default)s)")
    parser.add_argument("--maxSide", type=utils.non_negative_int, default=1024,
                        help="detect faces on a copy shrunk to this longest side; 0: never shrink (default: %(default)s)")
    parser.add_argument("--flat", action="store_true",
                        help="write all faces into outputDir itself, named after their relative path")
    parser.add_argument("--workers", type=utils.positive_int, default=os.cpu_count() or 1, help="parallel processes (default: %(default)s, the CPU count)")
    parser.add_argument("--verbose", action="store_true", help="name every photo that was not aligned")
    return parser.parse_args(argv)


@utils.expected_errors
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    input_dir, output_dir = Path(args.inputDir), Path(args.outputDir)
    if not input_dir.is_dir():
        utils.fail(f"input folder {input_dir} does not exist" if not input_dir.exists()
                   else f"{input_dir}: input folder is a file, not a folder")
    if args.dlibFacePredictor is None:
        import face_recognition_models
        args.dlibFacePredictor = face_recognition_models.pose_predictor_model_location()
    if not os.path.isfile(args.dlibFacePredictor):
        utils.fail(f"dlib face predictor {args.dlibFacePredictor} not found")
    utils.output_folder(output_dir, "output folder")

    jobs = plan(input_dir, output_dir, args.flat)
    todo = [job for job in jobs if not is_done(job, args.allFaces)]
    counts, faces = Counter(done=len(jobs) - len(todo)), 0
    options = dict(predictor=args.dlibFacePredictor, detector_kind=args.detector, upsample=args.upsample,
                   max_side=args.maxSide, size=args.size, indices=LANDMARKS[args.landmarks],
                   skip_multi=args.skipMulti, all_faces=args.allFaces)
    workers = min(args.workers, len(todo)) or 1
    pool = None
    try:
        if workers == 1:
            init_worker(options)
            results = map(process, todo)
        else:
            pool = multiprocessing.Pool(workers, initializer=init_worker, initargs=(options,))
            results = pool.imap_unordered(process, todo)
        for result in tqdm(results, total=len(todo), unit="photo", disable=not todo):
            if result.status == "model_error":
                if pool is not None:
                    pool.terminate()
                utils.fail(result.message)
            counts[result.status] += 1
            faces += result.faces
            if result.status == "failed":
                utils.warn(result.message)
            elif args.verbose and result.status != "aligned":
                reason = {"no_face": "no face found", "multi": f"skipped, {result.message}"}.get(result.status)
                tqdm.write(f"{result.source}: {reason}" if reason else result.message, file=sys.stderr)
    except KeyboardInterrupt:
        if pool is not None:
            pool.terminate()
        print(summary(counts, faces) + " (interrupted; run again to resume)", flush=True)
        return 130
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    print(summary(counts, faces), flush=True)
    return utils.EXIT_PARTIAL if counts["failed"] else utils.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
