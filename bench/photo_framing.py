"""Photos cut as the model's faces were: a photo's largest face, its eyes, nose and mouth under the
hole of the model's center mask, completed with complete.py's defaults and measured in the model's
frame against the photo's own face (landmark error, identity distance, hole PSNR / SSIM):

- photo: `complete.py --photos PHOTO --mask HOLE`, a user's path (the face cut with the model's
  framing, filled, pasted back), its result cut again as the model's faces are cut;
- direct: that face's crop completed as an aligned image (`--maskType center`);
- OpenCV Telea and Navier-Stokes on the whole photo.

    python bench/photo_framing.py --checkpointDir DIR --outDir OUT PHOTO [PHOTO ...]

Prints the table; writes OUT/report.json and OUT/<photo>.png (around the face: the photo with its
hole | Telea | Navier-Stokes | DCGAN through --photos | the photo).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import face_measures  # noqa: E402  (bench/, beside this file)
import metrics  # noqa: E402
from eval_completion import eval_mask, fill_opencv  # noqa: E402

import utils  # noqa: E402
from dcgan_completion.completion import photos  # noqa: E402
from dcgan_completion.faces import alignment, framing  # noqa: E402
from dcgan_completion.networks import storage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WAYS = ("photo", "direct", "opencv_telea", "opencv_ns")
KEYS = ("landmark_error", "identity_distance", "hole_psnr", "hole_ssim")


def complete(args: list[str]) -> None:
    """complete.py with its defaults and these arguments; its last lines on failure."""
    done = subprocess.run([sys.executable, str(ROOT / "complete.py"), *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")] or ["failed"]
        raise utils.UserError(f"complete.py {' '.join(args)}: {errors[0]}")


def face_frame(path: Path, image: np.ndarray, size: int, cut: dict) -> np.ndarray:
    """The 2 x 3 transform from the photo to its largest face cut as the model's faces are."""
    detector, predictor = photos.face_models()
    rects = alignment.find_faces(image, detector)
    if not rects:
        raise utils.UserError(f"{path}: no face found")
    return framing.matrix(alignment.find_landmarks(image, rects[0], predictor), size, cut)


def photo_hole(matrix: np.ndarray, known: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool (H, W): the photo pixels that the aligned frame's hole covers."""
    hole = (known[:, :, 0] < 0.5).astype(np.uint8)
    return cv2.warpAffine(hole, matrix, (shape[1], shape[0]), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


@dataclass
class Face:
    path: Path
    image: np.ndarray   # the photo
    matrix: np.ndarray  # photo -> its largest face, cut as the model's faces are
    hole: np.ndarray    # bool (H, W): the photo pixels of the aligned frame's hole
    truth: np.ndarray   # the face's aligned crop


def prepare(path: Path, size: int, cut: dict, work: Path) -> Face:
    """One photo's face and hole, with work/holes/<stem>.png (complete.py --mask) and work/aligned/<stem>.png."""
    image = utils.read_rgb(path)
    matrix = face_frame(path, image, size, cut)
    hole = photo_hole(matrix, eval_mask("center", size), image.shape[:2])
    truth = alignment.cut_face(image, matrix, size)
    utils.save_png(work / "holes" / f"{path.stem}.png", np.where(hole, 0, 255).astype(np.uint8))
    utils.save_png(work / "aligned" / f"{path.stem}.png", truth)
    return Face(path, image, matrix, hole, truth)


def complete_all(faces: list[Face], checkpoint: Path, work: Path) -> dict[str, list[np.ndarray]]:
    """{way: each photo completed}: the photo path on the whole photos, and the aligned crops directly."""
    complete(["--checkpointDir", str(checkpoint), "--outDir", str(work / "photo"), "--photos",
              *[str(f.path) for f in faces], "--mask", str(work / "holes")])
    complete(["--checkpointDir", str(checkpoint), "--outDir", str(work / "direct"), "--maskType", "center",
              *[str(work / "aligned" / f"{f.path.stem}.png") for f in faces]])
    found = {way: [utils.read_rgb(work / way / "final" / f"{f.path.stem}.png") for f in faces]
             for way in ("photo", "direct")}
    for method in ("telea", "ns"):
        found[f"opencv_{method}"] = [fill_opencv(f.image, np.repeat((~f.hole)[:, :, None], 3, 2).astype(np.float32),
                                                 method) for f in faces]
    return found


def picture_row(matrix: np.ndarray, size: int, pictures: list[np.ndarray], side: int = 192) -> np.ndarray:
    """The pictures around the face (1.5 times the model's crop, centred on it), side x side each, in a row."""
    centre = cv2.invertAffineTransform(matrix) @ np.float64([size / 2, size / 2, 1])
    span = 1.5 * size / np.sqrt(abs(np.linalg.det(matrix[:, :2])))  # photo pixels across the view
    view = np.float64([[side / span, 0, 0], [0, side / span, 0]])
    view[:, 2] = side / 2 - view[:, :2] @ centre
    gap = np.full((side, 6, 3), 255, np.uint8)
    tiles = [cv2.warpAffine(p, view, (side, side), flags=cv2.INTER_AREA) for p in pictures]
    return np.hstack([x for tile in tiles for x in (tile, gap)][:-1])


def scores(truth: np.ndarray, crops: dict, size: int, measures: face_measures.FaceMeasures) -> dict:
    known = eval_mask("center", size)
    reference = measures.reference(truth)
    found = {}
    for way in WAYS:
        pixels = metrics.completion_scores(crops[way], truth, known)
        found[way] = {"hole_psnr": float(pixels["psnr_hole"]), "hole_ssim": float(pixels["ssim_hole"]),
                      **measures.measure(reference, crops[way])}
    return found


@utils.expected_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpointDir", required=True, help="a model trained on faces of a known framing")
    parser.add_argument("--outDir", default="completions/photo_framing", help="completions, pictures, report.json")
    parser.add_argument("--pictures", type=int, default=4, help="write the comparison picture of the first N photos")
    parser.add_argument("photos", nargs="+", help="photos with a face (distinct file stems)")
    args = parser.parse_args(argv)
    checkpoint, out = Path(args.checkpointDir).resolve(), Path(args.outDir)
    size, cut = storage.read_config(checkpoint).image_size, storage.read_framing(checkpoint)
    print(f"framing: {framing.describe(cut)}")
    faces = []
    for path in map(Path, args.photos):
        try:
            faces.append(prepare(path, size, cut, out))
        except utils.UserError as error:  # a photo without a face: left out, and said
            utils.warn(f"{error}; left out")
    if not faces:
        raise utils.UserError("no face found in any photo")
    done, measures, report = complete_all(faces, checkpoint, out), face_measures.FaceMeasures(), {}
    for index, face in enumerate(faces):
        crops = {way: alignment.cut_face(images[index], face.matrix, size) if way != "direct" else images[index]
                 for way, images in done.items()}
        report[face.path.name] = scores(face.truth, crops, size, measures)
        if index < args.pictures:
            holed = np.where(face.hole[:, :, None], 0, face.image).astype(np.uint8)
            utils.save_png(out / f"{face.path.stem}.png", picture_row(face.matrix, size, [
                holed, done["opencv_telea"][index], done["opencv_ns"][index], done["photo"][index], face.image]))
    print(f"{len(faces)} of {len(args.photos)} photos with a face")
    report["mean"] = {way: {key: float(np.mean([r[way][key] for r in report.values()])) for key in KEYS}
                      for way in WAYS}
    print("photo | way | landmark error (px) | identity distance | hole PSNR | hole SSIM")
    for name, ways in report.items():
        for way, s in ways.items():
            print(f"{name} | {way} | {s['landmark_error']:.2f} | {s['identity_distance']:.3f} | "
                  f"{s['hole_psnr']:.2f} | {s['hole_ssim']:.3f}")
    utils.save_json(out / "report.json", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
