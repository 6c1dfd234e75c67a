"""data/portraits.py: the shipped model's data recipe, on a made-up snapshot of the portraits' repository
(Grace Hopper's photo, which matplotlib ships, cut and resized to a 256x256 portrait like artflow.ai's)."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data"))
sys.path.insert(0, str(ROOT))

import portraits  # noqa: E402

import utils  # noqa: E402
from dcgan_completion.faces import alignment, framing  # noqa: E402


def hopper_portrait() -> np.ndarray:
    """Grace Hopper as a 256x256 portrait: her face about 150 px wide (dlib's box), as artflow.ai's are."""
    from matplotlib import cbook
    from PIL import Image
    photo = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    return cv2.resize(photo[50:390, 103:443], (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The recipe run on a snapshot of four files: a person, an orc, a blank square, a green-faced person."""
    root = tmp_path_factory.mktemp("portraits")
    images = root / "snapshot" / "images"
    portrait = hopper_portrait()
    green = portrait.copy()
    green[..., 0] //= 3  # a painted green face: red and blue turned down
    green[..., 2] //= 3
    files = {"00/Grace-Hopper-in-uniform-1000.jpg": portrait, "00/An-orc-admiral-2000.jpg": portrait,
             "01/Empty-room-3001.jpg": np.full((256, 256, 3), 120, np.uint8), "02/A-green-admiral-4002.jpg": green}
    for name, image in files.items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(images / name), image[..., ::-1])
    done = subprocess.run([sys.executable, str(ROOT / "data" / "portraits.py"), str(root / "snapshot"),
                           str(root / "out"), "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return root, done.stdout


def test_prompt_words_leave_out_what_is_not_a_person():
    assert portraits.prompt_of(Path("A-tired-Frankenstein-that-wants-14800.jpg")) == (
        "A-tired-Frankenstein-that-wants", "14800")
    assert portraits.refused_word("A-tired-Frankenstein-that-wants") == "non-human: frankenstein"
    assert portraits.refused_word("Donald-Trump-pixar-character") == "stylised: pixar"
    assert portraits.refused_word("Young-polish-man-that-moved-to-norway") is None
    assert portraits.tags("Cute-woman-dark-hair-oil-painting") == {"person": "woman", "style": "painted"}
    assert portraits.tags("Bearded-man-photo") == {"person": "man", "style": "photographic"}


def test_the_held_out_share_is_one_in_fifty_and_fixed_by_the_name():
    names = [f"portrait-{index}.jpg" for index in range(5000)]
    share = np.mean([portraits.is_heldout(name) for name in names])
    assert 0.01 < share < 0.03
    assert [portraits.is_heldout(name) for name in names[:200]] == [portraits.is_heldout(n) for n in names[:200]]


def test_the_recipe_keeps_the_person_and_says_why_it_left_out_the_rest(recipe):
    root, stdout = recipe
    out = root / "out"
    record = json.loads((out / "manifest.json").read_text())
    outcomes = {Path(entry["file"]).name: entry["outcome"] for entry in record["files"]}
    assert outcomes["Grace-Hopper-in-uniform-1000.jpg"] == "kept"
    assert outcomes["An-orc-admiral-2000.jpg"] == "prompt (non-human: orc)"
    assert outcomes["Empty-room-3001.jpg"] == "0 faces found"
    assert outcomes["A-green-admiral-4002.jpg"].startswith("skin colour")
    assert "4 portraits: " in stdout
    kept = [p for split in ("train", "heldout") for p in (out / split).glob("Grace-Hopper*.png")]
    assert len(kept) == 1 and utils.read_rgb(kept[0]).shape == (64, 64, 3)
    assert framing.read_file(kept[0].parent) == framing.portrait(64)
    lines = gzip.decompress((out / "files.csv.gz").read_bytes()).decode().splitlines()
    assert lines[0] == "split,file"
    assert lines[1:] == [f"{kept[0].parent.name},images/00/Grace-Hopper-in-uniform-1000.jpg"]
    assert "CC BY 4.0" in (out / "CREDIT.md").read_text() and "artflow.ai" in (out / "CREDIT.md").read_text()


def test_the_portrait_framing_holds_the_whole_face(recipe):
    """dlib's landmarks on the aligned 64x64 face (upscaled, where dlib works): the brows and the chin
    are inside the square, and the eyes and mouth where the framing puts them."""
    root, _ = recipe
    square = utils.read_rgb(next((root / "out").glob("*/Grace-Hopper*.png")))
    big = cv2.resize(square, (256, 256), interpolation=cv2.INTER_CUBIC)
    detector, predictor = alignment.load_models(alignment.default_predictor())
    rects = alignment.find_faces(big, detector)
    assert len(rects) == 1
    points = alignment.find_landmarks(big, rects[0], predictor) / 256  # in units of the square
    assert points[17:27, 1].min() > 0.15 and points[8, 1] < 0.98  # brows and chin inside, with room
    assert points[:, 0].min() > 0.05 and points[:, 0].max() < 0.95
    eyes = [points[36:42].mean(axis=0), points[42:48].mean(axis=0)]
    np.testing.assert_allclose(eyes, framing.PORTRAIT["eyes"], atol=0.03)
    np.testing.assert_allclose(points[[48, 54]].mean(axis=0), framing.PORTRAIT["mouth"], atol=0.03)


def test_the_mark_is_inpainted_and_a_bad_face_shape_is_named():
    portrait = hopper_portrait()
    marked = portrait.copy()
    marked[portraits.MARK] = 255  # a white mark where artflow.ai's sits
    clean = portraits.unmarked(marked)
    assert (clean[portraits.MARK] < 250).mean() > 0.9
    np.testing.assert_array_equal(clean[:200], marked[:200])  # nothing else changes
    flat = np.zeros((68, 2), np.float32)
    flat[36:42], flat[42:48], flat[[48, 54]] = (100, 100), (160, 100), (130, 110)  # the mouth at the eyes' height
    assert portraits.face_shape_problem(flat).startswith("mouth 0.17 eye distances")
