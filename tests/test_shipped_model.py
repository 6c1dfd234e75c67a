"""The shipped face model (checkpoints/face64): complete.py finds it with no --checkpointDir, says what it
knows (portraits of people, artflow.ai, CC BY 4.0), and fills held-out portraits (data/artflow/heldout,
never trained on) better than OpenCV's Telea and Navier-Stokes inpainting on hole PSNR and SSIM, center
mask. The drawn-face model (checkpoints/drawn64, the demo's) does the same on held-out drawn faces."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))
sys.path.insert(0, str(ROOT / "bench"))

import make_faces  # noqa: E402

import complete  # noqa: E402
import eval_completion  # noqa: E402
import metrics  # noqa: E402
import utils  # noqa: E402
from dcgan_completion.faces import framing  # noqa: E402
from dcgan_completion.networks import storage  # noqa: E402

FACES = 8
ITERATIONS = 200  # complete.py's default from the encoder's start
PORTRAITS = ROOT / "data" / "artflow" / "heldout"


def drawn_faces(folder: Path) -> list[Path]:
    """Held-out drawn faces of make_faces seed 1 (the drawn-face model saw seed 0)."""
    paths = [folder / f"face_{index:02d}.png" for index in range(FACES)]
    for index, path in enumerate(paths):
        utils.save_png(path, make_faces.render_face(make_faces.HELDOUT_START + index, seed=1, size=64))
    return paths


def test_the_shipped_model_is_in_the_clone_with_its_description_and_credit():
    folder = storage.default_model_dir()
    assert folder == ROOT / "checkpoints" / storage.SHIPPED_MODEL
    assert storage.latest_checkpoint(folder) is not None and (folder / "encoder").is_dir()
    assert json.loads((folder / "dcgan.json").read_text())["image_size"] == 64
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 20 * 2 ** 20  # small enough for git
    assert storage.read_framing(folder) == framing.portrait(64)
    fit = storage.read_known_fit(folder)  # measured on held-out portraits 64-95
    assert (fit["n_iter"], fit["start"], fit["faces"]) == (200, "encoder", 32)  # complete.py's defaults
    assert 0 < fit["mean"] < fit["max"] < fit["warn_above"] < 1 and fit["knows"] == storage.SHIPPED_KNOWS
    notice = (folder / "NOTICE").read_text()  # the credit travels with the weights (and the wheel)
    assert "artflow.ai" in notice and "CC BY 4.0" in notice and "creativecommons.org/licenses/by/4.0" in notice


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (ROOT / "checkpoints").glob("*/checkpoint")))
def test_each_committed_checkpoint_names_files_that_are_there(name):
    """A folder's `checkpoint` file is what resuming and loading read: every checkpoint it names must be
    in the clone, whole (a resumable run committed with a stale `checkpoint` file does not resume)."""
    import tensorflow as tf
    folder = ROOT / "checkpoints" / name
    latest = storage.latest_checkpoint(folder)  # what loading reads: raises for a named index that is not there
    for prefix in {latest, *tf.train.get_checkpoint_state(str(folder)).all_model_checkpoint_paths}:
        stem = Path(prefix).name
        assert (folder / f"{stem}.index").is_file(), f"checkpoints/{name}: {stem}.index is missing"
        assert list(folder.glob(f"{stem}.data-*")), f"checkpoints/{name}: {stem}'s data is missing"


def test_the_held_out_portraits_are_not_in_the_training_list():
    import gzip
    used = gzip.decompress((ROOT / "data" / "artflow" / "files.csv.gz").read_bytes()).decode().splitlines()
    training = {Path(line.split(",", 1)[1]).stem for line in used[1:] if line.startswith("train,")}
    sources = (PORTRAITS / "sources.csv").read_text().splitlines()[1:]
    held_out = {Path(line.rsplit(",", 1)[1]).stem for line in sources}
    assert len(training) > 30_000 and len(held_out) == 96 and not training & held_out


def test_it_warns_about_a_cat_and_a_drawn_face_and_not_about_real_photos(tmp_path, capsys):
    """Grace Hopper and the astronaut, cut with the model's framing as --photos cuts them, are faces it
    knows; a drawn face (data/make_faces.py) and a cat (scikit-image's Chelsea) are not."""
    import cv2
    import skimage.data
    from matplotlib import cbook
    from PIL import Image

    from dcgan_completion.faces import alignment

    detector, predictor = alignment.load_models(alignment.default_predictor())
    photos = {"hopper": np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")),
              "astronaut": skimage.data.astronaut()}
    for name, photo in photos.items():
        landmarks = alignment.find_landmarks(photo, alignment.find_faces(photo, detector)[0], predictor)
        matrix = framing.matrix(landmarks, 64, framing.portrait(64))
        utils.save_png(tmp_path / f"{name}.png", alignment.cut_face(photo, matrix, 64))
    utils.save_png(tmp_path / "cat.png", cv2.resize(skimage.data.chelsea()[:, 50:350], (64, 64),
                                                    interpolation=cv2.INTER_AREA))
    drawn_faces(tmp_path)
    names = ["hopper.png", "astronaut.png", "cat.png", "face_00.png"]
    code = complete.main(["--outDir", str(tmp_path / "out"), "--seed", "0", "--mixed_precision", "off",
                          *[str(tmp_path / name) for name in names]])  # the defaults, as known_fit measured
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "far from what the model knows" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 2 of 4 image(s)"), warnings
    assert "cat.png" in warnings[0] and "face_00.png" in warnings[0]
    assert "hopper.png" not in warnings[0] and "astronaut.png" not in warnings[0]


@pytest.mark.parametrize("model", ["face64", "drawn64"])
def test_each_model_beats_opencv_on_its_held_out_faces(model, tmp_path, capsys):
    faces = sorted(PORTRAITS.glob("portrait_*.png"))[:FACES] if model == "face64" else drawn_faces(tmp_path)
    flags = [] if model == "face64" else ["--checkpointDir", str(ROOT / "checkpoints" / model)]
    code = complete.main([*flags, "--outDir", str(tmp_path / "out"), "--seed", "0", "--batchSize", str(FACES),
                          "--mixed_precision", "off", *map(str, faces)])
    assert code == 0
    first = capsys.readouterr().out.splitlines()[0]  # the first line says which model, and what it knows
    if model == "face64":
        assert first.startswith("model: the shipped face model, which knows portraits of people") and "CC BY" in first
    mask = eval_completion.eval_mask("center", 64)
    scores: dict[str, list] = {"dcgan": [], "opencv_telea": [], "opencv_ns": []}
    for path in faces:
        truth = utils.read_rgb(path)
        filled = {"dcgan": utils.read_rgb(tmp_path / "out" / "final" / path.name),
                  "opencv_telea": eval_completion.fill_opencv(truth, mask, "telea"),
                  "opencv_ns": eval_completion.fill_opencv(truth, mask, "ns")}
        for name, image in filled.items():
            scores[name].append(metrics.completion_scores(image, truth, mask))
    mean = {name: {key: float(np.mean([s[key] for s in values])) for key in ("psnr_hole", "ssim_hole")}
            for name, values in scores.items()}
    for baseline in ("opencv_telea", "opencv_ns"):
        for key in ("psnr_hole", "ssim_hole"):
            assert mean["dcgan"][key] > mean[baseline][key], (key, mean)


def test_it_fills_the_eyes_and_nose_of_public_domain_photos_better_than_opencv(tmp_path):
    """The four Congress portraits in data/congress (public domain, never trained on), each with a hole over
    its eyes and nose drawn from its own landmarks (bench/photo_holes.py's), filled through complete.py
    --photos with its defaults (G tuned to each face): every photo is done, the pixels outside the hole are
    the photo's, and the fill is closer to the truth than both OpenCV methods' (mean hole PSNR)."""
    import face_measures
    import photo_holes

    photos = sorted((ROOT / "data" / "congress").glob("*.jpg"))
    assert len(photos) == 4
    measures = face_measures.FaceMeasures()
    found = [photo_holes.find_photo(path, measures) for path in photos]
    assert all(photo is not None for photo in found)
    holes = {p.path.name: photo_holes.draw_hole("eyes_nose", p) for p in found}
    for p in found:
        utils.save_png(tmp_path / "holes" / f"{p.path.stem}.png", np.where(holes[p.path.name], 0, 255).astype(np.uint8))
    code = complete.main(["--outDir", str(tmp_path / "out"), "--photos", *map(str, photos),
                          "--mask", str(tmp_path / "holes")])
    assert code == 0
    psnr = {"model": [], "telea": [], "ns": []}
    for p in found:
        hole = holes[p.path.name]
        result = utils.read_rgb(tmp_path / "out" / "final" / f"{p.path.stem}.png")
        assert (result[~hole] == p.image[~hole]).all()
        psnr["model"].append(metrics.psnr(result, p.image, hole))
        keep = np.repeat(~hole[:, :, None], 3, 2).astype(np.float32)
        for method in ("telea", "ns"):
            psnr[method].append(metrics.psnr(eval_completion.fill_opencv(p.image, keep, method), p.image, hole))
    means = {method: float(np.mean(values)) for method, values in psnr.items()}
    assert means["model"] > max(means["telea"], means["ns"]) + 1.0, means
