#!/usr/bin/env python3
"""Completion quality on images whose ground truth is known: PSNR, SSIM and face measures per method.

    python bench/eval_completion.py --checkpointDir checkpoint --images data/faces/heldout --maskType center

Masks each image, fills the hole with every method, and prints PSNR (dB) and
SSIM over the filled region (the hole) and over the whole image, and two measures
of the face: the identity distance of dlib's face-recognition embedding (below 0.6:
the same person, whose share is the same-person rate) and the landmark error (68-point
model, inner-face points, pixels of the face), means over the images, as a table and
then as one JSON object on the last line. Methods:
  dcgan            complete.py with its defaults (adam, the weighted mask, Poisson blending)
  dcgan_article    complete.py as the article ran it: --approach momentum --no-weightedMask
                   --blend none --zInit random (the momentum update, the plain L1 loss, the fill
                   pasted in, 1000 iterations from a random z)
  opencv_telea     cv2.inpaint, INPAINT_TELEA, radius 3
  opencv_ns        cv2.inpaint, INPAINT_NS, radius 3
  mean_colour      the hole filled with the mean colour of the image's known pixels

The DCGAN methods run the completion command line in a subprocess; one that
fails is reported as failed and the others still run. The mask is
masking.make_mask(maskType, size, centerScale, rng=np.random.default_rng(seed)),
drawn once for all images, which is the call complete.py makes for --seed, so a
random mask is the same pixels in both. Every method's completions are written
to OUT/<method>/final/<stem>.png, a picture comparing them (rows: masked input,
OpenCV Telea, OpenCV Navier-Stokes, DCGAN as the article ran it, DCGAN, ground truth) to
OUT/comparison_<mask>.png and the results to OUT/results_<mask>.json.
Metrics are defined in bench/metrics.py (PSNR of identical images: 100 dB), the face
measures in bench/face_measures.py (identical images: 0 and 0).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import face_measures  # noqa: E402
import metrics  # noqa: E402
import utils  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402

COMPLETE_SCRIPT = "complete.py"   # run with cwd = the repository root
DCGAN_METHODS = {
    "dcgan": [],
    "dcgan_article": ["--approach", "momentum", "--no-weightedMask", "--blend", "none", "--zInit", "random"],
}
BASELINE_METHODS = ("opencv_telea", "opencv_ns", "mean_colour")
METHODS = tuple(DCGAN_METHODS) + BASELINE_METHODS
COMPARISON_ROWS = ("opencv_telea", "opencv_ns", "dcgan_article", "dcgan")
# Masks with both known pixels and a hole (full has no hole; lowres keeps no pixel).
EVAL_MASK_TYPES = tuple(m for m in masking.MASK_TYPES if m not in ("full", "lowres"))
METRIC_KEYS = ("psnr_hole", "ssim_hole", "psnr_full", "ssim_full")
FACE_KEYS = ("identity_distance", "same_person", "landmark_error")
KNOWN_TOLERANCE = 2.0  # mean absolute difference (0..255) allowed on known pixels of a completion


# ----------------------------------------------------------------------------
# Masks and the baselines (pure functions of uint8 images)
# ----------------------------------------------------------------------------

def eval_mask(mask_type: str, size: int, center_scale: float = 0.25, seed: int = 0) -> np.ndarray:
    """The mask every method and metric uses: float32 (S, S, 3), 1 = known, 0 = hole."""
    return masking.make_mask(mask_type, size, center_scale, rng=np.random.default_rng(seed))


def known_pixels(mask: np.ndarray) -> np.ndarray:
    """bool (H, W): the pixels a completion must keep."""
    return ~metrics.hole_region(mask)


def apply_mask(image: np.ndarray, mask: np.ndarray, fill: int = 0) -> np.ndarray:
    """The image (H, W, 3) or images (N, H, W, 3) with the hole set to fill (what a method may see)."""
    known = known_pixels(mask)[..., None]
    return np.where(known, np.asarray(image, dtype=np.uint8), np.uint8(fill)).astype(np.uint8)


def fill_opencv(image: np.ndarray, mask: np.ndarray, method: str = "telea", radius: float = 3) -> np.ndarray:
    """cv2.inpaint of the hole (Telea or Navier-Stokes); known pixels are returned unchanged."""
    import cv2

    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    known = known_pixels(mask)
    source = np.ascontiguousarray(apply_mask(image, mask))  # the hole's true pixels are never seen
    hole = np.ascontiguousarray((~known).astype(np.uint8) * 255)
    filled = cv2.inpaint(source, hole, radius, flags)
    return np.where(known[..., None], image, filled).astype(np.uint8)


def fill_mean_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The hole filled with the mean colour of the image's known pixels."""
    known = known_pixels(mask)
    out = np.array(image, dtype=np.uint8, copy=True)
    colour = np.asarray(image, dtype=np.float64)[known].mean(axis=0)
    out[~known] = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return out


BASELINES = {
    "opencv_telea": lambda image, mask: fill_opencv(image, mask, "telea"),
    "opencv_ns": lambda image, mask: fill_opencv(image, mask, "ns"),
    "mean_colour": fill_mean_colour,
}


# ----------------------------------------------------------------------------
# Comparison picture
# ----------------------------------------------------------------------------

def comparison_grid(rows: Sequence[np.ndarray | None], columns: int = 8) -> np.ndarray:
    """Stack rows of images (each (N, S, S, 3) uint8, or None for a black row) into one picture."""
    present = [row for row in rows if row is not None]
    if not present:
        raise ValueError("no rows to show")
    count = min(columns, min(len(row) for row in present))
    shape = present[0].shape[1:]
    tiles = [np.asarray(row[:count], dtype=np.uint8) if row is not None else np.zeros((count, *shape), np.uint8)
             for row in rows]
    return utils.make_grid(np.concatenate(tiles), rows=len(rows))


def save_comparison(path: str | os.PathLike, masked: np.ndarray, completions: dict[str, np.ndarray | None],
                    truth: np.ndarray, columns: int = 8) -> np.ndarray:
    """Write the comparison picture: masked input, OpenCV Telea, OpenCV NS, the article's DCGAN, DCGAN,
    ground truth (rows) for up to `columns` images (columns). A method without results is a black row."""
    rows = [masked] + [completions.get(name) for name in COMPARISON_ROWS] + [truth]
    grid = comparison_grid(rows, columns)
    utils.save_png(path, grid)
    return grid


# ----------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------

def score_method(completed: np.ndarray, truth: np.ndarray, mask: np.ndarray,
                 faces: tuple[face_measures.FaceMeasures, list] | None = None) -> dict[str, float]:
    """Means over images of PSNR/SSIM over the hole and the whole image, and the error on known pixels;
    with faces (the measures and each truth's reference), the identity distance, the same-person
    rate and the landmark error too."""
    per_image = [metrics.completion_scores(c, t, mask) for c, t in zip(completed, truth)]
    result = {key: float(np.mean([s[key] for s in per_image])) for key in METRIC_KEYS}
    known = known_pixels(mask)
    result["known_mae"] = float(np.mean(np.abs(completed.astype(np.float64) - truth.astype(np.float64))[:, known]))
    if faces is not None:
        result.update(score_faces(completed, *faces))
    return result


def score_faces(completed: np.ndarray, measures: face_measures.FaceMeasures, references: list) -> dict[str, float]:
    """Means over images of the identity distance and landmark error, and the same-person rate."""
    per_image = [measures.measure(reference, image) for reference, image in zip(references, completed)]
    distances = [s["identity_distance"] for s in per_image]
    return {"identity_distance": float(np.mean(distances)),
            "same_person": face_measures.same_person_rate(distances),
            "landmark_error": float(np.mean([s["landmark_error"] for s in per_image]))}


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no output"


def run_dcgan(method: str, args, paths: Sequence[Path], size: int, out_dir: Path) -> tuple[np.ndarray | None, str | None]:
    """Run complete.py for one method; (completions in the order of paths, None) or (None, why it failed)."""
    method_dir = out_dir / method
    finals = [method_dir / "final" / f"{path.stem}.png" for path in paths]
    for final in finals:  # never score a stale file from an earlier run
        if final.exists():
            final.unlink()
    command = [sys.executable, COMPLETE_SCRIPT, "--checkpointDir", str(Path(args.checkpointDir).resolve()),
               "--outDir", str(method_dir.resolve()), "--maskType", args.maskType,
               *(["--nIter", str(args.nIter)] if args.nIter is not None else []),
               "--seed", str(args.seed), "--centerScale", str(args.centerScale), *DCGAN_METHODS[method],
               *(["--mixed_precision", args.mixed_precision] if args.mixed_precision else []),
               *[str(path.resolve()) for path in paths]]
    print(f"[{method}] {' '.join(command[1:9])} ... ({len(paths)} images)", file=sys.stderr, flush=True)
    # Show the command's progress as it runs, and keep its last output for the report.
    tail = bytearray()
    try:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as error:
        return None, f"cannot run {COMPLETE_SCRIPT}: {error}"
    while True:
        chunk = process.stdout.read1(4096) if hasattr(process.stdout, "read1") else process.stdout.read(4096)
        if not chunk:
            break
        if not args.quiet:
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
        tail = (tail + chunk)[-8192:]
    code = process.wait()
    text = tail.decode("utf-8", "replace")
    if code != 0:
        return None, f"{COMPLETE_SCRIPT} exited with status {code}: {_tail(text)}"
    images = []
    for final in finals:
        if not final.exists():
            return None, f"{COMPLETE_SCRIPT} wrote no {final.relative_to(out_dir)}"
        try:
            image = utils.read_rgb(final)
        except utils.ImageError as error:
            return None, str(error)
        if image.shape != (size, size, 3):
            return None, f"{final} is {image.shape[1]}x{image.shape[0]}, expected {size}x{size}"
        images.append(image)
    return np.stack(images), None


def image_size_for(checkpoint_dir: str, asked: int | None) -> int:
    """--imageSize, else the checkpoint's dcgan.json image_size, else 64."""
    if asked:
        return asked
    try:
        with open(Path(checkpoint_dir) / "dcgan.json") as handle:
            return int(json.load(handle)["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return 64


def format_table(results: dict[str, dict]) -> str:
    header = (f"{'method':<16} {'PSNR hole':>10} {'SSIM hole':>10} {'PSNR full':>10} {'SSIM full':>10} "
              f"{'ID dist':>8} {'same':>5} {'LM err':>7} {'time':>8}")
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        if result["status"] != "ok":
            lines.append(f"{name:<16} {result['status']}: {result.get('error', '')}")
            continue
        face = (f"{result['identity_distance']:>8.3f} {result['same_person']:>5.0%} {result['landmark_error']:>7.2f}"
                if "identity_distance" in result else f"{'-':>8} {'-':>5} {'-':>7}")
        lines.append(f"{name:<16} {result['psnr_hole']:>10.2f} {result['ssim_hole']:>10.4f} "
                     f"{result['psnr_full']:>10.2f} {result['ssim_full']:>10.4f} {face} {result['seconds']:>7.1f}s")
    return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpointDir", default="checkpoint", help="the DCGAN checkpoint complete.py loads")
    parser.add_argument("--images", required=True, help="folder of ground-truth images (e.g. data/faces/heldout)")
    parser.add_argument("--maskType", required=True, choices=EVAL_MASK_TYPES, help="the hole to fill")
    parser.add_argument("--nIter", type=int, default=None, help="complete.py's optimisation steps (default: its own)")
    parser.add_argument("--outDir", default="completions/eval", help="where completions and reports go")
    parser.add_argument("--limit", type=int, default=None, help="use only the first K images (sorted)")
    parser.add_argument("--centerScale", type=float, default=0.25, help="the centre mask's margin")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random mask (and of complete.py)")
    parser.add_argument("--imageSize", type=int, default=None,
                        help="image size (default: the checkpoint's dcgan.json, else 64)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated methods to run, from " + ", ".join(METHODS))
    parser.add_argument("--mixed_precision", choices=("auto", "off", "float16", "bfloat16"), default=None,
                        help="complete.py's precision (default: its own; off: float32 everywhere, no per-CPU choice)")
    parser.add_argument("--quiet", action="store_true", help="do not show complete.py's output while it runs")
    parser.add_argument("--faceMeasures", action=argparse.BooleanOptionalAction, default=True,
                        help="measure identity distance and landmark error (dlib's models; --no-faceMeasures: "
                             "PSNR and SSIM only)")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        parser.error(f"unknown method {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}")
    if args.nIter is not None and args.nIter < 0:
        parser.error("--nIter must be >= 0")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    if not 0.0 < args.centerScale < 0.5:
        parser.error("--centerScale must be between 0 and 0.5")
    return args


def image_paths(folder: str) -> list[Path]:
    if not os.path.isdir(folder):
        raise utils.UserError(f"image folder {folder} does not exist")
    paths = utils.list_images(folder)
    if not paths:
        raise utils.UserError(f"no .png/.jpg/.jpeg images in {folder}")
    return paths


def read_truth(args: argparse.Namespace, paths: list[Path], size: int) -> tuple[np.ndarray, list[Path]]:
    """The images to complete, at the model's size; UserError when none is readable or two share a stem."""
    truth, paths, errors = utils.load_images(paths[:args.limit] if args.limit else paths, size, progress=False)
    if errors:
        utils.warn(utils.describe_bad_files(errors))
    if not paths:
        raise utils.UserError(f"no readable images in {args.images}")
    stems = [path.stem for path in paths]
    if len(set(stems)) != len(stems):
        duplicate = next(s for s in stems if stems.count(s) > 1)
        raise utils.UserError(f"two images in {args.images} are named {duplicate}.*; completions are named by stem")
    return truth, paths


def run_methods(args, truth, paths, mask, size, faces) -> tuple[dict[str, dict], dict[str, np.ndarray | None]]:
    """(each method's scores or failure, its completions), in METHODS' order; every completion saved."""
    results: dict[str, dict] = {}
    completions: dict[str, np.ndarray | None] = {}
    out_dir = Path(args.outDir)
    for method in [m for m in METHODS if m in args.methods]:
        start = time.perf_counter()
        if method in DCGAN_METHODS:
            completed, error = run_dcgan(method, args, paths, size, out_dir)
        else:
            completed = np.stack([BASELINES[method](image, mask) for image in truth])
            error = None
            for path, image in zip(paths, completed):
                utils.save_png(out_dir / method / "final" / f"{path.stem}.png", image)
        seconds = time.perf_counter() - start
        if error is not None:
            results[method] = {"status": "failed", "error": error, "seconds": seconds}
            completions[method] = None
            continue
        completions[method] = completed
        results[method] = {"status": "ok", **score_method(completed, truth, mask, faces), "seconds": seconds}
        if results[method]["known_mae"] > KNOWN_TOLERANCE:
            utils.warn(f"{method} changed the known pixels (mean abs difference "
                       f"{results[method]['known_mae']:.1f}); is its mask the same as this one?")
    return results, completions


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    paths = image_paths(args.images)
    size = image_size_for(args.checkpointDir, args.imageSize)
    truth, paths = read_truth(args, paths, size)
    mask = eval_mask(args.maskType, size, args.centerScale, args.seed)
    hole = metrics.hole_region(mask)
    if hole.all() or not hole.any():
        raise utils.UserError(f"mask {args.maskType} at size {size} leaves no hole or no known pixel")
    out_dir = Path(args.outDir)
    faces = None
    if args.faceMeasures:  # the truth's rectangle, landmarks and chip, once for every method
        measures = face_measures.FaceMeasures()
        faces = (measures, [measures.reference(image) for image in truth])
    results, completions = run_methods(args, truth, paths, mask, size, faces)

    comparison = out_dir / f"comparison_{args.maskType}.png"
    save_comparison(comparison, apply_mask(truth, mask, fill=128), completions, truth)
    report = {
        "mask": args.maskType, "images": len(paths), "image_size": size, "nIter": args.nIter,
        "seed": args.seed, "centerScale": args.centerScale, "psnr_cap": metrics.PSNR_CAP,
        "identity_threshold": face_measures.IDENTITY_THRESHOLD if faces else None,
        "faces_detected": sum(r.detected for r in faces[1]) if faces else None,
        "mask_call": f"masking.make_mask({args.maskType!r}, {size}, {args.centerScale}, "
                     f"rng=np.random.default_rng({args.seed}))",
        "comparison": str(comparison), "methods": results,
    }
    utils.save_json(out_dir / f"results_{args.maskType}.json", _json_safe(report))
    print(f"{len(paths)} images, {size}x{size}, mask {args.maskType}, hole {hole.mean():.0%} of the pixels; "
          f"PSNR in dB (100 = exact), SSIM in [-1, 1]; means over images")
    if faces:
        print(f"ID dist: identity distance to the truth (dlib's face embedding, 0 = identical), same: the share "
              f"below {face_measures.IDENTITY_THRESHOLD} (the same person); LM err: inner-face landmark error in "
              f"pixels of the {size}x{size} face")
    print(format_table(results))
    print(f"comparison: {comparison}")
    print(json.dumps(_json_safe(report), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
