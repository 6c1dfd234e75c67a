"""complete.py --photos end to end, in-process, on matplotlib's grace_hopper.jpg with a box over
one eye: the result has the photo's size, is the photo outside the box and new inside it; photos
with no face, a hole away from the face or a mask of another size are named, and the rest done."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import complete  # noqa: E402
import utils  # noqa: E402

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
EYE = (slice(175, 210), slice(200, 250))  # over the eye on the left; dlib finds it at x 210-238, y 184-196
CORNER = (slice(10, 60), slice(10, 60))   # on the flag, outside the face's aligned crop


def mask_with(box, shape=(600, 512)) -> Image.Image:
    mask = np.full(shape, 255, np.uint8)
    mask[box] = 0
    return Image.fromarray(mask, "L")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """An untrained 64x64 model (tiny widths); photos/ and masks/ named alike."""
    from model import DCGAN
    root = tmp_path_factory.mktemp("photos_cli")
    DCGAN(image_size=64, gf_dim=4, df_dim=4, z_dim=8, seed=0).save(root / "ckpt")
    photos, masks = root / "photos", root / "masks"
    photos.mkdir()
    masks.mkdir()
    shutil.copy(PHOTO, photos / "hopper.jpg")
    shutil.copy(PHOTO, photos / "flag.jpg")
    ramp = np.linspace(0, 255, 200, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (150, 1))] * 3, axis=2)).save(photos / "gradient.png")
    mask_with(EYE).save(masks / "hopper.png")
    mask_with(CORNER).save(masks / "flag.png")
    mask_with((slice(50, 80), slice(50, 90)), (150, 200)).save(masks / "gradient.png")
    return root


def main(work: Path, *args: str) -> int:
    return complete.main(["--checkpointDir", str(work / "ckpt"), "--seed", "0", "--nIter", "2", "--outInterval", "2",
                          *args])


def test_box_over_an_eye_and_photos_that_cannot_be_done(work, capsys):
    out = work / "out"
    photos = [work / "photos" / name for name in ("hopper.jpg", "gradient.png", "flag.jpg")]
    code = main(work, "--outDir", str(out), "--photos", *map(str, photos), "--mask", str(work / "masks"))
    printed = capsys.readouterr()
    err = printed.err
    assert code == 1 and "Traceback" not in err
    # An untrained model records no framing: the first line says so, and --photos says once how it cuts.
    assert printed.out.splitlines()[0] == (f"model: {work / 'ckpt'}; framing: unknown (photos are cut with "
                                           f"align_faces.py's innerEyesAndBottomLip)")
    assert err.count("this model's framing is unknown") == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, err
    assert errors[0].startswith(f"error: {photos[1]}: no face found")
    assert errors[1].startswith(f"error: {photos[2]}: 1 of 1 hole(s) lie outside every face's aligned crop")
    assert "x 10-59, y 10-59" in errors[1]
    assert "2 of 3 photo(s)" in errors[2]

    photo = utils.read_rgb(PHOTO)
    final = np.asarray(Image.open(out / "final" / "hopper.png"))
    assert final.shape == photo.shape
    hole = np.zeros(photo.shape[:2], bool)
    hole[EYE] = True
    np.testing.assert_array_equal(final[~hole], photo[~hole])     # every other pixel exactly the photo's
    assert (final[hole] != photo[hole]).any(axis=1).mean() > 0.9  # the eye is filled anew
    side = np.asarray(Image.open(out / "side_by_side" / "hopper.png"))
    width = photo.shape[1]
    np.testing.assert_array_equal(side[:, width + 8:], final)
    np.testing.assert_array_equal(side[:, :width][~hole], photo[~hole])
    assert side[:, :width][hole].max() == 0
    assert sorted(p.name for p in (out / "final").iterdir()) == ["hopper.png"]
    # The aligned face's optimisation: the eye is a hole in the aligned crop too.
    masked = np.asarray(Image.open(out / "masked.png"))
    assert masked.shape == (64, 64, 3) and 20 < (masked == 128).all(axis=2).sum() < 400  # the hole grey


def test_mask_file_of_another_size(work, capsys, tmp_path):
    small = tmp_path / "small.jpg"
    Image.open(PHOTO).resize((256, 300)).save(small)
    code = main(work, "--outDir", str(tmp_path / "out"), "--photos", str(small), "--mask",
                str(work / "masks" / "hopper.png"))
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 1
    assert err[0] == f"error: {small}: {work / 'masks' / 'hopper.png'}: mask is 512x600, not the photo's 256x300"
    assert not (tmp_path / "out" / "final").exists()


@pytest.mark.parametrize("args, words", [
    (["--photos", "PHOTOS/hopper.jpg"], ["--photos needs --mask"]),
    (["--photos", "PHOTOS/hopper.jpg", "PHOTOS/missing.jpg", "--mask", "MASKS"], ["no mask in", "missing.jpg"]),
    (["--photos", "PHOTOS/hopper.jpg", "--mask", "MASKS/nothing.png"], ["nothing.png does not exist"]),
])
def test_bad_arguments_stop_before_any_work(work, capsys, tmp_path, args, words):
    args = [a.replace("PHOTOS", str(work / "photos")).replace("MASKS", str(work / "masks")) for a in args]
    with pytest.raises(SystemExit) as exit_:
        main(work, "--outDir", str(tmp_path / "out"), *args)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: " in last  # argparse's "PROG: error: ..." or the one-line "error: ..."
    assert all(word in last for word in words), last
    assert not (tmp_path / "out").exists()


def test_one_photo_without_files_is_what_photos_writes(work, tmp_path, monkeypatch):
    """prepare_photo -> the engine -> paste_fills, in a folder that stays empty: the photo that
    --photos writes with the same settings; and a clear PhotoError for a photo it cannot do."""
    from dcgan_completion.completion import photos as photo_completion
    from dcgan_completion.completion.engine import CompletionEngine
    from model import DCGAN
    out = tmp_path / "out"
    # float32 with ops.py's kernels, as the engine below (auto may time other kernels faster: other rounding)
    assert main(work, "--outDir", str(out), "--photos", str(work / "photos" / "hopper.jpg"), "--mask",
                str(work / "masks" / "hopper.png"), "--mixed_precision", "off") == 0
    settings, _ = complete.settings_from_args(complete.parse_args(["--seed", "0", "--nIter", "2", "--outInterval",
                                                                   "2", "x.png"]))
    engine = CompletionEngine(DCGAN.from_checkpoint(work / "ckpt"), settings)
    photo, hole = utils.read_rgb(PHOTO), np.zeros((600, 512), bool)
    hole[EYE] = True
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    faces = photo_completion.prepare_photo(photo, hole, 64)
    assert len(faces) == 1 and faces[0].crop.shape == (64, 64, 3) and faces[0].mask.shape == (64, 64, 1)
    result = engine.complete(np.stack([f.crop for f in faces]), np.stack([f.mask for f in faces]), pad_to=len(faces))
    filled = photo_completion.paste_fills(photo, faces, result.fill)
    assert list(empty.iterdir()) == []
    np.testing.assert_array_equal(filled, np.asarray(Image.open(out / "final" / "hopper.png")))
    corner = np.zeros_like(hole)
    corner[CORNER] = True
    gradient = np.asarray(Image.open(work / "photos" / "gradient.png").convert("RGB"))
    for image, where, words in ((photo, corner, "outside every face's aligned crop"),
                                (gradient, np.ones(gradient.shape[:2], bool), "no face found"),
                                (photo, np.zeros_like(hole), "no pixel to fill")):
        with pytest.raises(photo_completion.PhotoError, match=words):
            photo_completion.prepare_photo(image, where, 64)
