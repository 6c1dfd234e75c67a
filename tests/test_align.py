"""align_faces.py: the command line end to end (the alignment itself: test_face_alignment.py)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from test_face_alignment import two_faces  # noqa: E402

import utils  # noqa: E402

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
SIZE = 64


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return utils.read_rgb(PHOTO)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "align_faces.py", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def counts(stdout: str) -> dict[str, int]:
    line = [line for line in stdout.splitlines() if line.startswith("summary:")][-1]
    pattern = (r"(\d+) aligned \((\d+) faces written\), (\d+) no face found, (\d+) several faces skipped, "
               r"(\d+) unreadable, (\d+) already done")
    keys = ("aligned", "faces", "no_face", "multi", "unreadable", "done")
    return dict(zip(keys, map(int, re.search(pattern, line).groups())))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, photo) -> Path:
    """a/hopper.jpg (one face), b/two.png (two faces), gradient.png (none), broken.jpg (not an image)."""
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    Image.fromarray(photo).save(folder / "a" / "hopper.jpg", quality=95)
    Image.fromarray(two_faces(photo)).save(folder / "b" / "two.png")
    ramp = np.linspace(0, 255, 200, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (150, 1))] * 3, axis=2)).save(folder / "gradient.png")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    return folder


def test_cli_counts_and_resume(mixed, tmp_path):
    out = tmp_path / "out"
    result = run(mixed, "align", "innerEyesAndBottomLip", out, "--size", SIZE, "--workers", 2, "--verbose")
    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == dict(aligned=2, faces=2, no_face=1, multi=0, unreadable=1, done=0)
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a/hopper.png", "b/two.png"]  # sub-folders kept, NAME.png
    face = np.asarray(Image.open(out / "a" / "hopper.png"))
    assert face.shape == (SIZE, SIZE, 3) and face.std() > 20

    stamp = (out / "a" / "hopper.png").stat().st_mtime_ns
    again = run(mixed, "align", "innerEyesAndBottomLip", out, "--size", SIZE, "--workers", 1)
    assert again.returncode == 0, again.stderr
    # Aligned photos are skipped, not rewritten; photos that gave nothing are tried again.
    assert counts(again.stdout) == dict(aligned=0, faces=0, no_face=1, multi=0, unreadable=1, done=2)
    assert (out / "a" / "hopper.png").stat().st_mtime_ns == stamp
    # How the faces were cut, beside them, for train_dcgan.py to record in its model.
    assert json.loads((out / "framing.json").read_text()) == {
        "kind": "openface", "landmarks": "innerEyesAndBottomLip", "template": "OpenFace's mean face, min-max normalised",
        "size": SIZE, "padding": 0}


def test_cli_refuses_a_folder_of_faces_cut_another_way(mixed, tmp_path):
    out = tmp_path / "out"
    assert run(mixed / "a", "align", "innerEyesAndBottomLip", out, "--size", SIZE, "--workers", 1).returncode == 0
    other = run(mixed / "a", "align", "outerEyesAndNose", out, "--size", SIZE, "--workers", 1)
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert other.stderr.strip().splitlines()[-1] == (
        f"error: {out} holds faces framed as align_faces.py's innerEyesAndBottomLip (OpenFace's template) at "
        f"{SIZE}px, not as align_faces.py's outerEyesAndNose (OpenFace's template) at {SIZE}px: choose another "
        f"output folder")


def test_cli_portrait_framing_cuts_faces_as_the_shipped_models(mixed, tmp_path):
    """--framing portrait: framing.json is the shipped model's framing at the size, so train_dcgan.py can
    fine-tune that model on the faces; dlib finds the aligned face's eyes and mouth where that framing puts
    them (within 2.5 px at 128 px), and the face is cut as complete.py --photos cuts it for the model."""
    from dcgan_completion.faces import alignment, framing
    from dcgan_completion.networks import storage
    size = 128
    out = tmp_path / "out"
    result = run(mixed / "a", "align", "innerEyesAndBottomLip", out, "--size", size, "--workers", 1,
                 "--framing", "portrait")
    assert result.returncode == 0, result.stderr
    recorded = json.loads((out / "framing.json").read_text())
    assert recorded == framing.portrait(size)
    shipped = storage.read_framing(ROOT / "checkpoints" / "face64")
    assert {key: recorded[key] for key in ("kind", "eyes", "mouth")} == {key: shipped[key] for key in ("kind", "eyes",
                                                                                                       "mouth")}
    face = utils.read_rgb(out / "hopper.png")
    detector, predictor = alignment.load_models(alignment.default_predictor())
    points = alignment.find_landmarks(face, alignment.find_faces(face, detector)[0], predictor)
    left, right, mouth = framing.centres(points)
    (eye_x0, eye_y), (eye_x1, _) = recorded["eyes"]
    expected = np.array([[eye_x0, eye_y], [eye_x1, eye_y], recorded["mouth"]]) * size
    assert np.abs(np.array([left, right, mouth]) - expected).max() < 2.5


def test_cli_skip_multi(mixed, tmp_path):
    out = tmp_path / "out"
    result = run(mixed, "align", "innerEyesAndBottomLip", out, "--size", SIZE, "--workers", 1, "--skipMulti")
    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == dict(aligned=1, faces=1, no_face=1, multi=1, unreadable=1, done=0)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a/hopper.png"]


def test_cli_all_faces(mixed, tmp_path):
    out = tmp_path / "out"
    result = run(mixed, "align", "outerEyesAndNose", out, "--size", 32, "--workers", 1, "--allFaces")
    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == dict(aligned=2, faces=3, no_face=1, multi=0, unreadable=1, done=0)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a/hopper_0.png", "b/two_0.png", "b/two_1.png"]
    assert all(Image.open(out / name).size == (32, 32) for name in written)


def test_cli_flat_names_do_not_collide(tmp_path, photo):
    source = tmp_path / "in"
    for person in ("x", "y"):
        (source / person).mkdir(parents=True)
    Image.fromarray(photo).save(source / "x" / "0001.jpg", quality=95)
    Image.fromarray(np.ascontiguousarray(photo[:, ::-1])).save(source / "y" / "0001.jpg", quality=95)  # mirrored
    Image.fromarray(photo).save(source / "y" / "0001.png")  # same stem, other extension
    out = tmp_path / "out"
    result = run(source, "align", "innerEyesAndBottomLip", out, "--size", SIZE, "--workers", 1, "--flat")
    assert result.returncode == 0, result.stderr
    assert counts(result.stdout)["aligned"] == 3
    names = sorted(p.name for p in out.iterdir())
    assert names == ["framing.json", "x__0001.png", "y__0001-1.png", "y__0001.png"]
    x, y = (np.asarray(Image.open(out / name), dtype=int) for name in ("x__0001.png", "y__0001.png"))
    assert np.abs(x - y).mean() > 1  # two different faces, neither overwrote the other


def test_cli_missing_input_folder(tmp_path):
    result = run(tmp_path / "nowhere", "align", "innerEyesAndBottomLip", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error:")
    assert "nowhere" in result.stderr


def test_cli_missing_predictor(tmp_path):
    result = run(tmp_path, "align", "innerEyesAndBottomLip", tmp_path / "out",
                 "--dlibFacePredictor", tmp_path / "missing.dat")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "missing.dat" in result.stderr
    assert not (tmp_path / "out").exists()
