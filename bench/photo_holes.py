"""Real photos with a hole over their eyes and nose, filled as a user fills them (`complete.py --photos PHOTO
--mask MASK` with its defaults) and by OpenCV's Telea and Navier-Stokes, measured in each photo's own pixels:

    python bench/photo_holes.py --checkpointDir DIR [--checkpointDir DIR2 ...] --outDir OUT [--pictures 6] PHOTO ...

The hole is each photo's largest face's brows, nose and eyes: the convex hull of dlib's landmarks 17-47,
grown by 0.15 of the inter-eye distance (OUT/holes/<stem>.png, white keep, black fill). Each model runs
once, as one complete.py for every photo (OUT/<model>/final/<stem>.png); the photos it refuses are
counted. Measures, per photo and method: hole PSNR (the hole's pixels), hole SSIM (the hole's bounding
box), identity distance (dlib's face embedding of the result's chip cut with the truth's 5 landmarks,
against the truth's; dlib calls below 0.6 the same person) and landmark error (68-point model in the
truth's face rectangle, inner-face points 17-67, as a share of the truth's inter-eye distance).

Prints the table (means over the photos every method completed) and a last line of JSON; writes
OUT/report.json and OUT/comparison.png (the first --pictures of those photos, around the face: the
photo with its hole in black | Telea | Navier-Stokes | each model | the photo).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import face_measures  # noqa: E402  (bench/, beside this file)
import metrics  # noqa: E402
from eval_completion import fill_opencv  # noqa: E402

import utils  # noqa: E402
from dcgan_completion.faces import alignment, framing  # noqa: E402

BASELINES = ("opencv_telea", "opencv_ns")
KEYS = ("hole_psnr", "hole_ssim", "identity_distance", "landmark_error")
HOLE_POINTS = slice(17, 48)        # the 68-point model's brows, nose and eyes
MARGIN = 0.15                      # the hole's growth, in inter-eye distances
SMALL_PHOTO = 300                  # longer side under which dlib's detector needs the photo upsampled
VIEW, TILE, GAP = 1.6, 160, 6      # the picture: face boxes per tile side, tile and gap in pixels


@dataclass
class Photo:
    path: Path
    image: np.ndarray      # uint8 (H, W, 3): the truth
    rect: object           # dlib.rectangle: its largest face
    landmarks: np.ndarray  # (68, 2)
    hole: np.ndarray       # bool (H, W): the pixels to fill


def eye_distance(landmarks: np.ndarray) -> float:
    """The distance between the eye centres (means of landmarks 36-41 and 42-47)."""
    left, right, _ = framing.centres(landmarks)
    return float(np.linalg.norm(left - right))


def eyes_and_nose(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool (H, W): the convex hull of the brows, nose and eyes, grown by MARGIN inter-eye distances."""
    hull = np.full(shape, 255, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(landmarks[HOLE_POINTS]).astype(np.int32)), 0)
    # The Euclidean distance of each pixel to the hull: a margin as wide all round.
    return cv2.distanceTransform(hull, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= MARGIN * eye_distance(landmarks)


def find_photo(path: Path, holes: Path, measures: face_measures.FaceMeasures) -> Photo | None:
    """The photo, its largest face and its hole (written to holes/<stem>.png); None without a face."""
    image = utils.read_rgb(path)
    # The HOG detector and 68-point model complete.py --photos loads (photos.face_models), here without
    # importing TensorFlow and loaded once with the measures' models.
    detector, predictor = measures.detector, measures.sixty_eight
    rects = alignment.find_faces(image, detector, upsample=int(max(image.shape[:2]) < SMALL_PHOTO))
    if not rects:
        return None
    landmarks = alignment.find_landmarks(image, rects[0], predictor)
    hole = eyes_and_nose(landmarks, image.shape[:2])
    utils.save_png(holes / f"{path.stem}.png", np.where(hole, 0, 255).astype(np.uint8))
    return Photo(path, image, rects[0], landmarks, hole)


def run_model(checkpoint: Path, out: Path, found: list[Photo], holes: Path) -> dict[str, np.ndarray]:
    """{photo name: its completion} from one complete.py over every photo; a refused photo is absent."""
    finals = {p.path.name: out / "final" / f"{p.path.stem}.png" for p in found}
    for final in finals.values():  # never read a stale result of an earlier run
        final.unlink(missing_ok=True)
    command = [sys.executable, str(ROOT / "complete.py"), "--checkpointDir", str(checkpoint), "--outDir", str(out),
               "--photos", *[str(p.path) for p in found], "--mask", str(holes)]
    print(f"[{out.name}] complete.py --photos: {len(found)} photo(s)", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)  # here, where the photos' paths hold
    refused = {p.path.name for p in found if any(line.startswith(f"error: {p.path}:")
                                                 for line in done.stderr.splitlines())}
    missing = [name for name, final in finals.items() if name not in refused and not final.exists()]
    if done.returncode not in (0, 1) or missing:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise utils.UserError(f"complete.py --checkpointDir {checkpoint} failed (exit {done.returncode}): {tail}")
    return {name: utils.read_rgb(final) for name, final in finals.items() if name not in refused}


def hole_box(hole: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(hole)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def scores(photo: Photo, result: np.ndarray, reference, measures: face_measures.FaceMeasures) -> dict[str, float]:
    """One result's measures against its photo; the landmark error as a share of the inter-eye distance."""
    box = hole_box(photo.hole)
    face = measures.measure_photo(reference, result)
    return {"hole_psnr": metrics.psnr(result, photo.image, photo.hole),
            "hole_ssim": metrics.ssim(result[box], photo.image[box]),
            "identity_distance": face["identity_distance"],
            "landmark_error": face["landmark_error"] / eye_distance(reference.landmarks)}


def tile(image: np.ndarray, rect) -> np.ndarray:
    """TILE x TILE around the face: a square VIEW times the face box's side, centred on it."""
    span = int(round(VIEW * max(rect.width(), rect.height())))
    left, top = (rect.left() + rect.right() - span) // 2, (rect.top() + rect.bottom() - span) // 2
    square = cv2.warpAffine(image, np.float64([[1, 0, -left], [0, 1, -top]]), (span, span),
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))
    return cv2.resize(square, (TILE, TILE), interpolation=cv2.INTER_AREA if span > TILE else cv2.INTER_CUBIC)


def picture(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of tiles, GAP white pixels between tiles and between rows."""
    def spaced(parts: list[np.ndarray], axis: int) -> np.ndarray:
        gap = np.full((TILE, GAP, 3) if axis == 1 else (GAP, parts[0].shape[1], 3), 255, np.uint8)
        return np.concatenate([x for part in parts for x in (part, gap)][:-1], axis=axis)
    return spaced([spaced(row, 1) for row in rows], 0)


def print_table(methods: list[str], mean: dict, n: int, refused: dict) -> None:
    print(f"{'method':<16} | {'n':>3} | {'refused':>7} | {'hole PSNR':>9} | {'hole SSIM':>9} | "
          f"{'identity distance':>17} | {'landmark error':>14}")
    for method in methods:
        m = mean[method]
        print(f"{method:<16} | {n:>3} | {refused.get(method, 0):>7} | {m['hole_psnr']:>9.2f} | "
              f"{m['hole_ssim']:>9.3f} | {m['identity_distance']:>17.3f} | {m['landmark_error']:>14.3f}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpointDir", action="append", required=True, help="a model (repeat for several)")
    parser.add_argument("--outDir", default="completions/photo_holes", help="holes, completions, pictures, report")
    parser.add_argument("--pictures", type=int, default=6, help="photos in comparison.png")
    parser.add_argument("photos", nargs="+", help="photos with a face (distinct file stems)")
    args = parser.parse_args(argv)
    stems = [Path(p).stem for p in args.photos]
    if len(set(stems)) != len(stems):
        parser.error("the photos' file stems must differ: holes and results are named by stem")
    return args


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.outDir)
    checkpoints = [Path(c).resolve() for c in args.checkpointDir]
    models = utils.unique_names([c.name for c in checkpoints])  # OUT/<model>: two runs/checkpoint differ
    measures, found = face_measures.FaceMeasures(), []
    for path in map(Path, args.photos):
        photo = find_photo(path, out / "holes", measures)
        if photo is None:
            utils.warn(f"{path}: no face found; left out")
        else:
            found.append(photo)
    if not found:
        raise utils.UserError("no face found in any photo")
    results = {model: run_model(checkpoint, out / model, found, out / "holes")
               for model, checkpoint in zip(models, checkpoints)}
    for method in BASELINES:
        results[method] = {p.path.name: fill_opencv(p.image, np.repeat(~p.hole[:, :, None], 3, 2).astype(np.float32),
                                                    method.removeprefix("opencv_")) for p in found}
    methods = [*BASELINES, *models]
    per_photo = {}
    for photo in found:
        reference = measures.photo_reference(photo.image, photo.rect)
        per_photo[photo.path.name] = {method: scores(photo, results[method][photo.path.name], reference, measures)
                                      for method in methods if photo.path.name in results[method]}
    # Means over the photos every method completed, so that the rows compare the same photos.
    common = [p for p in found if len(per_photo[p.path.name]) == len(methods)]
    if not common:
        raise utils.UserError("no photo was completed by every model")
    mean = {method: {key: float(np.mean([per_photo[p.path.name][method][key] for p in common])) for key in KEYS}
            for method in methods}
    refused = {model: len(found) - len(results[model]) for model in models}
    rows = [[tile(image, p.rect) for image in (np.where(p.hole[:, :, None], 0, p.image).astype(np.uint8),
                                               *(results[m][p.path.name] for m in methods), p.image)]
            for p in common[:args.pictures]]
    if rows:
        utils.save_png(out / "comparison.png", picture(rows))
    summary = {"bench": "photo_holes", "photos": len(args.photos), "no_face": len(args.photos) - len(found),
               "n": len(common), "refused": refused, "mean": mean}
    utils.save_json(out / "report.json", {**summary, "methods": methods, "photo": per_photo, "holes": {
        p.path.name: {"eye_distance": eye_distance(p.landmarks), "pixels": int(p.hole.sum()),
                      "box": dict(zip("yx", ([int(a.start), int(a.stop)] for a in hole_box(p.hole))))}
        for p in found},
                                          "checkpoints": dict(zip(models, map(str, checkpoints)))})
    print(f"{len(found)} of {len(args.photos)} photos with a face; means over the {len(common)} every method "
          f"completed; PSNR in dB over the hole, SSIM over its box, landmark error in inter-eye distances")
    print_table(methods, mean, len(common), refused)
    print(f"comparison: {out / 'comparison.png'} (the photo with its hole | {' | '.join(methods)} | the photo)")
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
