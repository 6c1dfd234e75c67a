"""data/make_faces.py: deterministic procedural faces, and its command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data"))
sys.path.insert(0, str(ROOT))

import make_faces  # noqa: E402

import utils  # noqa: E402

SCRIPT = ROOT / "data" / "make_faces.py"


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_shape_and_dtype():
    face = make_faces.render_face(0)
    assert face.shape == (64, 64, 3) and face.dtype == np.uint8
    assert make_faces.render_face(0, size=32).shape == (32, 32, 3)
    assert face.std() > 20  # a picture, not a flat colour


def test_deterministic():
    np.testing.assert_array_equal(make_faces.render_face(7, seed=3), make_faces.render_face(7, seed=3))
    faces = [make_faces.render_face(i) for i in range(6)]
    for i in range(len(faces)):
        for j in range(i + 1, len(faces)):
            assert np.abs(faces[i].astype(int) - faces[j].astype(int)).mean() > 5
    assert not np.array_equal(make_faces.render_face(7, seed=0), make_faces.render_face(7, seed=1))


def test_faces_are_roughly_aligned():
    # The mean of many faces still shows a face: the eyes' row is darker than the cheeks' row below.
    mean = np.mean([make_faces.render_face(i).astype(float).mean(axis=2) for i in range(40)], axis=0)
    eyes = mean[25:27, 18:46].mean()
    cheeks = mean[31:33, 18:46].mean()
    assert eyes < cheeks


def test_cli_counts_skip_and_heldout(tmp_path):
    out = tmp_path / "faces"
    result = run(out, "--count", 5, "--heldout", 3, "--workers", 2, "--quiet")
    assert result.returncode == 0, result.stderr
    train = sorted((out / "train").glob("*.png"))
    heldout = sorted((out / "heldout").glob("*.png"))
    assert [p.name for p in train] == [f"face_{i:05d}.png" for i in range(5)]
    assert [p.name for p in heldout] == [f"face_{i:05d}.png" for i in range(3)]
    # The files are render_face's images: train from index 0, held-out from HELDOUT_START.
    np.testing.assert_array_equal(utils.read_rgb(train[2]), make_faces.render_face(2))
    np.testing.assert_array_equal(utils.read_rgb(heldout[1]), make_faces.render_face(make_faces.HELDOUT_START + 1))
    train_images = [utils.read_rgb(p) for p in train]
    for path in heldout:
        image = utils.read_rgb(path)
        assert all(not np.array_equal(image, other) for other in train_images)

    # A second run writes nothing; a larger count adds only the new files.
    mtimes = {p: p.stat().st_mtime_ns for p in train + heldout}
    again = run(out, "--count", 5, "--heldout", 3, "--quiet")
    assert again.returncode == 0 and again.stdout.startswith("0 faces written, 8 already there")
    assert {p: p.stat().st_mtime_ns for p in train + heldout} == mtimes
    more = run(out, "--count", 7, "--heldout", 3, "--workers", 1, "--quiet")
    assert more.stdout.startswith("2 faces written, 8 already there")
    assert len(list((out / "train").glob("*.png"))) == 7
    assert not list(out.rglob("*.tmp*"))


def test_each_folder_says_how_its_faces_are_framed(tmp_path):
    """train_dcgan.py records a dataset folder's framing.json in its model: the drawn kind, at the size drawn,
    with the eyes level and either side of the centre line, the mouth below them."""
    from dcgan_completion.faces import framing
    assert run(tmp_path / "a", "--count", 2, "--heldout", 1, "--size", 16, "--quiet").returncode == 0
    for part in ("train", "heldout"):
        cut = framing.of_dataset(tmp_path / "a" / part, False, (16, 16))
        assert cut["kind"] == "drawn" and cut["size"] == 16 and framing.known(cut)
        (left, eye_y), (right, other_y) = cut["eyes"]
        assert eye_y == other_y and left < 0.5 < right and abs((left + right) / 2 - 0.5) < 0.02
        assert cut["mouth"][1] > eye_y + 0.3
    assert framing.describe(cut).startswith("drawn faces (data/make_faces.py")
    assert run(tmp_path / "b", "--count", 1, "--heldout", 0, "--quiet").returncode == 0
    assert not (tmp_path / "b" / "heldout" / framing.FRAMING_FILE).exists()


def test_cli_refuses_other_settings_in_the_same_folder(tmp_path):
    assert run(tmp_path, "--count", 1, "--heldout", 0, "--quiet").returncode == 0
    result = run(tmp_path, "--count", 1, "--heldout", 0, "--seed", 1, "--quiet")
    assert result.returncode == 2 and "seed=0" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--count", "-1"], ["--size", "4"], ["--workers", "0"]])
def test_cli_rejects_bad_arguments(tmp_path, args):
    result = run(tmp_path, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
