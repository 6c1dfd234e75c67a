"""Real photos with holes drawn from each face's own landmarks, filled as a user fills them (`complete.py
--photos PHOTO --mask MASK` with its defaults) and by OpenCV's Telea and Navier-Stokes, measured in each
photo's own pixels:

    python bench/photo_holes.py --checkpointDir DIR [--checkpointDir DIR2 ...] [--run NAME="FLAGS" ...]
                                [--holes strokes,eyes_nose,glasses,mouth] --outDir OUT [--pictures 6] PHOTO ...

The holes, each on the photo's largest face (ED: the distance between the eye centres):
- eyes_nose: the brows, nose and eyes, the convex hull of dlib's landmarks 17-47 grown by 0.15 ED;
- strokes: 3 to 5 free-form brush strokes over the inner face, each 0.12-0.25 ED wide (a scratch, a pen);
- glasses: a band over both eyes, the eye line's length plus 0.5 ED long and 0.6 ED high (sunglasses);
- mouth: an ellipse over the mouth and chin's top, 1.6 x 0.9 ED (a hand over the mouth).
Strokes are drawn from a generator seeded by the photo's file stem, so every run draws the same ones.
Each model (and each --run: the first model with more complete.py flags) runs once a kind, as one
complete.py for every photo (OUT/<kind>/<method>/final/<stem>.png; the holes in OUT/<kind>/holes,
white keep, black fill); the photos it refuses are counted. Measures, per photo and method: hole PSNR
(the hole's pixels), hole SSIM (the hole's bounding box), identity distance (dlib's face embedding of
the result's chip cut with the truth's 5 landmarks, against the truth's; dlib calls below 0.6 the same
person: the same-person rate) and landmark error (68-point model in the truth's face rectangle,
inner-face points 17-67, as a share of the truth's inter-eye distance).

Prints a table a kind (means over the photos every method completed) and a last line of JSON; writes
OUT/report.json and OUT/<kind>/comparison.png (the first --pictures of those photos, around the face:
the photo with its hole in black | Telea | Navier-Stokes | each method | the photo).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import zlib
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


def eye_distance(landmarks: np.ndarray) -> float:
    """The distance between the eye centres (means of landmarks 36-41 and 42-47)."""
    left, right, _ = framing.centres(landmarks)
    return float(np.linalg.norm(left - right))


def eyes_and_nose(landmarks: np.ndarray, shape: tuple[int, int], rng=None) -> np.ndarray:
    """bool (H, W): the convex hull of the brows, nose and eyes, grown by MARGIN inter-eye distances."""
    hull = np.full(shape, 255, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(landmarks[HOLE_POINTS]).astype(np.int32)), 0)
    # The Euclidean distance of each pixel to the hull: a margin as wide all round.
    return cv2.distanceTransform(hull, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= MARGIN * eye_distance(landmarks)


def strokes(landmarks: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """bool (H, W): 3 to 5 brush strokes, each 0.12-0.25 ED wide, starting on an inner-face landmark
    (17-67) and bending through 3 more points 0.3-0.6 ED apart (a turn of up to 60 degrees at each)."""
    ed, canvas = eye_distance(landmarks), np.zeros(shape, np.uint8)
    for _ in range(rng.integers(3, 6)):
        width = max(1, int(round(rng.uniform(0.12, 0.25) * ed)))
        point, angle = landmarks[rng.integers(17, 68)].copy(), rng.uniform(0, 2 * np.pi)
        points = [point]
        for _ in range(3):
            angle += rng.uniform(-np.pi / 3, np.pi / 3)
            point = point + rng.uniform(0.3, 0.6) * ed * np.array([np.cos(angle), np.sin(angle)])
            points.append(point)
        # cv2 draws thick lines with round ends, so the joints are round as a brush's.
        cv2.polylines(canvas, [np.round(np.array(points)).astype(np.int32)], False, 1, width)
    return canvas > 0


def _rotated(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The eye line's centre, its angle in degrees and the inter-eye distance."""
    left, right, _ = framing.centres(landmarks)
    direction = right - left
    return (left + right) / 2, float(np.degrees(np.arctan2(direction[1], direction[0]))), eye_distance(landmarks)


def glasses(landmarks: np.ndarray, shape: tuple[int, int], rng=None) -> np.ndarray:
    """bool (H, W): a band over both eyes along the eye line, from outer corner to outer corner
    (landmarks 36 and 45) plus 0.25 ED each side, 0.6 ED high."""
    centre, angle, ed = _rotated(landmarks)
    length = float(np.linalg.norm(landmarks[45] - landmarks[36])) + 0.5 * ed
    box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (length, 0.6 * ed), angle))
    canvas = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(canvas, np.round(box).astype(np.int32), 1)
    return canvas > 0


def mouth(landmarks: np.ndarray, shape: tuple[int, int], rng=None) -> np.ndarray:
    """bool (H, W): an ellipse 1.6 x 0.9 ED along the eye line, centred 0.1 ED below the mouth's
    centre (landmarks 48-67): a hand over the mouth."""
    _, angle, ed = _rotated(landmarks)
    centre = landmarks[48:68].mean(axis=0)
    theta = np.radians(angle)
    centre = centre + 0.1 * ed * np.array([-np.sin(theta), np.cos(theta)])  # down the face
    canvas = np.zeros(shape, np.uint8)
    cv2.ellipse(canvas, ((float(centre[0]), float(centre[1])), (1.6 * ed, 0.9 * ed), angle), 1, -1)
    return canvas > 0


HOLES = {"strokes": strokes, "eyes_nose": eyes_and_nose, "glasses": glasses, "mouth": mouth}


def draw_hole(kind: str, photo: Photo) -> np.ndarray:
    """The photo's hole of this kind; strokes from a generator seeded by the photo's stem."""
    rng = np.random.default_rng(zlib.crc32(photo.path.stem.encode()))
    return HOLES[kind](photo.landmarks, photo.image.shape[:2], rng)


def find_photo(path: Path, measures: face_measures.FaceMeasures) -> Photo | None:
    """The photo and its largest face; None without a face."""
    image = utils.read_rgb(path)
    # The HOG detector and 68-point model complete.py --photos loads (photos.face_models), here without
    # importing TensorFlow and loaded once with the measures' models.
    detector, predictor = measures.detector, measures.sixty_eight
    rects = alignment.find_faces(image, detector, upsample=int(max(image.shape[:2]) < SMALL_PHOTO))
    if not rects:
        return None
    return Photo(path, image, rects[0], alignment.find_landmarks(image, rects[0], predictor))


def run_model(checkpoint: Path, flags: list[str], out: Path, found: list[Photo], holes: Path) -> dict[str, np.ndarray]:
    """{photo name: its completion} from one complete.py over every photo; a refused photo is absent."""
    finals = {p.path.name: out / "final" / f"{p.path.stem}.png" for p in found}
    for final in finals.values():  # never read a stale result of an earlier run
        final.unlink(missing_ok=True)
    command = [sys.executable, str(ROOT / "complete.py"), "--checkpointDir", str(checkpoint), "--outDir", str(out),
               *flags, "--photos", *[str(p.path) for p in found], "--mask", str(holes)]
    print(f"[{holes.parent.name}/{out.name}] complete.py --photos: {len(found)} photo(s)", file=sys.stderr,
          flush=True)
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


def scores(photo: Photo, hole: np.ndarray, result: np.ndarray, reference,
           measures: face_measures.FaceMeasures) -> dict[str, float]:
    """One result's measures against its photo; the landmark error as a share of the inter-eye distance."""
    box = hole_box(hole)
    face = measures.measure_photo(reference, result)
    return {"hole_psnr": metrics.psnr(result, photo.image, hole),
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


def print_table(kind: str, methods: list[str], mean: dict, n: int, refused: dict) -> None:
    print(f"{kind}: {'method':<16} | {'n':>3} | {'refused':>7} | {'hole PSNR':>9} | {'hole SSIM':>9} | "
          f"{'identity distance':>17} | {'same person':>11} | {'landmark error':>14}")
    for method in methods:
        m = mean[method]
        print(f"{kind}: {method:<16} | {n:>3} | {refused.get(method, 0):>7} | {m['hole_psnr']:>9.2f} | "
              f"{m['hole_ssim']:>9.3f} | {m['identity_distance']:>17.3f} | {m['same_person_rate']:>11.2f} | "
              f"{m['landmark_error']:>14.3f}")


def parse_run(text: str) -> tuple[str, list[str]]:
    """--run NAME=FLAGS: a method named NAME, the first model with complete.py FLAGS added."""
    name, sep, flags = text.partition("=")
    if not sep or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"--run takes NAME=FLAGS, e.g. plain=\"--no-tuneG\", not {text!r}")
    return name, shlex.split(flags)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpointDir", action="append", required=True, help="a model (repeat for several)")
    parser.add_argument("--run", action="append", type=parse_run, default=[],
                        help="NAME=FLAGS: the first model again with these complete.py flags (repeat for several)")
    parser.add_argument("--holes", default="eyes_nose", help=f"comma-separated kinds of hole: {', '.join(HOLES)}")
    parser.add_argument("--outDir", default="completions/photo_holes", help="holes, completions, pictures, report")
    parser.add_argument("--pictures", type=int, default=6, help="photos in each comparison.png")
    parser.add_argument("photos", nargs="+", help="photos with a face (distinct file stems)")
    args = parser.parse_args(argv)
    stems = [Path(p).stem for p in args.photos]
    if len(set(stems)) != len(stems):
        parser.error("the photos' file stems must differ: holes and results are named by stem")
    args.holes = args.holes.split(",")
    unknown = [kind for kind in args.holes if kind not in HOLES]
    if unknown:
        parser.error(f"--holes: unknown kind {unknown[0]!r} (kinds: {', '.join(HOLES)})")
    return args


def bench_kind(kind: str, found: list[Photo], runs: list[tuple[str, Path, list[str]]], out: Path,
               measures: face_measures.FaceMeasures, references: dict, pictures: int) -> dict:
    """One kind of hole on every photo, every run and both OpenCV methods: prints its table, writes its
    holes, completions and picture, and returns its report."""
    holes = {p.path.name: draw_hole(kind, p) for p in found}
    for p in found:
        utils.save_png(out / "holes" / f"{p.path.stem}.png", np.where(holes[p.path.name], 0, 255).astype(np.uint8))
    results = {name: run_model(checkpoint, flags, out / name, found, out / "holes") for name, checkpoint, flags in runs}
    for method in BASELINES:
        results[method] = {p.path.name: fill_opencv(p.image, np.repeat(~holes[p.path.name][:, :, None], 3, 2)
                                                    .astype(np.float32), method.removeprefix("opencv_"))
                           for p in found}
    methods = [*BASELINES, *(name for name, _, _ in runs)]
    per_photo = {p.path.name: {method: scores(p, holes[p.path.name], results[method][p.path.name],
                                              references[p.path.name], measures)
                               for method in methods if p.path.name in results[method]} for p in found}
    # Means over the photos every method completed, so that the rows compare the same photos.
    common = [p for p in found if len(per_photo[p.path.name]) == len(methods)]
    if not common:
        raise utils.UserError(f"{kind}: no photo was completed by every method")
    mean = {}
    for method in methods:
        values = {key: [per_photo[p.path.name][method][key] for p in common] for key in KEYS}
        mean[method] = {key: float(np.mean(v)) for key, v in values.items()}
        mean[method]["same_person_rate"] = face_measures.same_person_rate(values["identity_distance"])
    refused = {name: len(found) - len(results[name]) for name, _, _ in runs}
    rows = [[tile(image, p.rect) for image in (np.where(holes[p.path.name][:, :, None], 0, p.image).astype(np.uint8),
                                               *(results[m][p.path.name] for m in methods), p.image)]
            for p in common[:pictures]]
    if rows:
        utils.save_png(out / "comparison.png", picture(rows))
    print_table(kind, methods, mean, len(common), refused)
    return {"n": len(common), "refused": refused, "mean": mean, "methods": methods, "photo": per_photo,
            "holes": {p.path.name: {"eye_distance": eye_distance(p.landmarks), "pixels": int(holes[p.path.name].sum())}
                      for p in found}}


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.outDir)
    checkpoints = [Path(c).resolve() for c in args.checkpointDir]
    names = utils.unique_names([c.name for c in checkpoints])  # OUT/<kind>/<method>: two runs/checkpoint differ
    runs = [(name, checkpoint, []) for name, checkpoint in zip(names, checkpoints)]
    taken = set(names) | set(BASELINES)
    for name, flags in args.run:
        if name in taken:
            raise utils.UserError(f"--run {name}: the name is taken (by a model, OpenCV or another --run)")
        taken.add(name)
        runs.append((name, checkpoints[0], flags))
    measures, found = face_measures.FaceMeasures(), []
    for path in map(Path, args.photos):
        photo = find_photo(path, measures)
        if photo is None:
            utils.warn(f"{path}: no face found; left out")
        else:
            found.append(photo)
    if not found:
        raise utils.UserError("no face found in any photo")
    references = {p.path.name: measures.photo_reference(p.image, p.rect) for p in found}
    print(f"{len(found)} of {len(args.photos)} photos with a face; means over the photos every method completed; "
          f"PSNR in dB over the hole, SSIM over its box, landmark error in inter-eye distances, same person: "
          f"the share of identity distances below {face_measures.IDENTITY_THRESHOLD}")
    kinds = {kind: bench_kind(kind, found, runs, out / kind, measures, references, args.pictures)
             for kind in args.holes}
    print(f"comparisons: {out}/<kind>/comparison.png (the photo with its hole | "
          f"{' | '.join(kinds[args.holes[0]]['methods'])} | the photo)")
    summary = {"bench": "photo_holes", "photos": len(args.photos), "no_face": len(args.photos) - len(found),
               "kinds": {kind: {key: report[key] for key in ("n", "refused", "mean")}
                         for kind, report in kinds.items()}}
    utils.save_json(out / "report.json", {**summary, "kinds": kinds,
                                          "runs": {name: [str(checkpoint), *flags]
                                                   for name, checkpoint, flags in runs}})
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
