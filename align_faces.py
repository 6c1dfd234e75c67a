#!/usr/bin/env python3
"""Align faces for training: a port of OpenFace's align-dlib.py (mode "align").

    python align_faces.py INPUT_DIR align innerEyesAndBottomLip OUTPUT_DIR --size 64

Every image below INPUT_DIR is searched for faces with dlib; the largest face's
68 landmarks are found, and an affine warp sends three of them (inner eye corners
and bottom lip, or outer eye corners and nose tip) to where OpenFace's mean face
template has them in a size x size square (or, with --framing portrait, the face is cut as the shipped
model's faces were). The result is OUTPUT_DIR/<sub-folders>/NAME.png, and framing.json says how.
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
from tqdm import tqdm

import utils
from dcgan_completion.faces import framing
from dcgan_completion.faces.alignment import cut_face, default_predictor, find_faces, find_landmarks, load_models, warp
from dcgan_completion.faces.framing import LANDMARKS

# ----------------------------------------------------------------------------
# One photo, in a worker process
# ----------------------------------------------------------------------------

class Alignment(NamedTuple):
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


def cut(rgb, landmarks, options: dict):
    """One face's square: OpenFace's warp of three landmarks, or the portrait framing (the shipped model's:
    eyes and mouth centres, each pixel the mean of the photo pixels under it, the edge reflected as
    data/portraits.py cuts the model's faces)."""
    if options["framing"] == "portrait":
        size = options["size"]
        return cut_face(rgb, framing.matrix(landmarks, size, framing.portrait(size)), size, cv2.BORDER_REFLECT_101)
    return warp(rgb, landmarks, options["size"], options["indices"])


def face_path(target: str, index: int) -> Path:
    path = Path(target)
    return path.with_name(f"{path.stem}_{index}{path.suffix}")


def process(job: Alignment) -> Result:
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
        aligned = [cut(rgb, find_landmarks(rgb, rect, options["predictor"]), options) for rect in faces]
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

def plan(input_dir: Path, output_dir: Path, flat: bool) -> list[Alignment]:
    """One Alignment per input image, each with its own output name.

    Names can collide (photo.jpg and photo.png in one folder; with --flat, the same
    file name in two folders): a later one gets a -1, -2, ... suffix (utils.unique_names).
    The list is sorted, so the same input folder gives the same names on every run.
    """
    output_resolved = output_dir.resolve()
    sources = [source for source in utils.list_images(input_dir)
               if output_resolved not in source.resolve().parents]  # the output folder may sit in the input folder
    relative = [source.relative_to(input_dir).with_suffix("") for source in sources]
    stems = ["__".join(path.parts) if flat else str(path) for path in relative]
    return [Alignment(str(source), str(output_dir / f"{name}.png"))
            for source, name in zip(sources, utils.unique_names(stems, separator="-"))]


def is_done(job: Alignment, all_faces: bool) -> bool:
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
    parser.add_argument("--framing", choices=["openface", "portrait"], default="openface",
                        help="openface: the three landmarks onto OpenFace's template (the article's); portrait: the "
                             "shipped model's cut, the whole face from forehead to chin by the eyes' and mouth's "
                             "centres (the landmarks argument is then unused), to fine-tune that model on your faces")
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


def record_framing(output_dir: Path, cut: dict) -> None:
    """framing.json beside the faces: how they were cut, which train_dcgan.py records in its model.
    A folder of faces cut another way stays as it is: one folder, one framing."""
    found = framing.read_file(output_dir)
    if found is not None and found != cut:
        raise utils.UserError(f"{output_dir} holds faces framed as {framing.describe(found)}, not as "
                              f"{framing.describe(cut)}: choose another output folder")
    if found is None:
        utils.save_json(output_dir / framing.FRAMING_FILE, cut)


@utils.expected_errors
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    input_dir, output_dir = Path(args.inputDir), Path(args.outputDir)
    if not input_dir.is_dir():
        raise utils.UserError(f"input folder {input_dir} does not exist" if not input_dir.exists()
                              else f"{input_dir}: input folder is a file, not a folder")
    if args.dlibFacePredictor is None:
        args.dlibFacePredictor = default_predictor()
    if not os.path.isfile(args.dlibFacePredictor):
        raise utils.UserError(f"dlib face predictor {args.dlibFacePredictor} not found")
    utils.output_folder(output_dir, "output folder")
    record_framing(output_dir, framing.portrait(args.size) if args.framing == "portrait"
                   else framing.openface(args.landmarks, args.size))

    jobs = plan(input_dir, output_dir, args.flat)
    todo = [job for job in jobs if not is_done(job, args.allFaces)]
    counts, faces = Counter(done=len(jobs) - len(todo)), 0
    options = dict(predictor=args.dlibFacePredictor, detector_kind=args.detector, upsample=args.upsample,
                   max_side=args.maxSide, size=args.size, indices=LANDMARKS[args.landmarks],
                   skip_multi=args.skipMulti, all_faces=args.allFaces, framing=args.framing)
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
                raise utils.UserError(result.message)
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
