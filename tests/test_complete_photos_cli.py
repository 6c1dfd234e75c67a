"""complete.py --photos end to end, in-process, on matplotlib's grace_hopper.jpg with a box over
one eye: the result has the photo's size, is the photo outside the box and new inside it; holes
that reach past the face's aligned square (above the brows, out into the background) are filled
there by Telea, with a note; photos with no face, a hole far from the face or a mask of another
size are named, and the rest done."""
from __future__ import annotations

import re
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
from dcgan_completion.faces import alignment as face_alignment  # noqa: E402

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
EYE = (slice(175, 210), slice(200, 250))  # over the eye on the left; dlib finds it at x 210-238, y 184-196
CORNER = (slice(10, 60), slice(10, 60))   # on the flag, far from the face's aligned crop
# The untrained model's framing is align_faces.py's template: its square spans about x 160-372,
# y 161-331 of this photo (the brows at y ~165, the cheeks' edges at x ~170 and ~365).
BROWS = (slice(142, 205), slice(200, 330))  # over both eyes up to the hat's brim: its top rows above the square
SIDE = (slice(235, 290), slice(330, 430))   # from the right cheek out into the blue background
NOTE = (r"(?P<outside>[\d,]+) of (?P<total>[\d,]+) hole pixels lie outside the face's aligned square and were "
        r"filled with OpenCV's Telea inpainting")


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
    assert "hole pixels lie outside" not in err  # the eye's box lies inside the face's square
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, err
    assert errors[0].startswith(f"error: {photos[1]}: no face found")
    assert errors[1].startswith(f"error: {photos[2]}: 1 of 1 hole(s) lie away from every face")
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


@pytest.mark.parametrize("blend", ["poisson", "none"])
def test_one_photo_without_files_is_what_photos_writes(work, tmp_path, monkeypatch, blend):
    """prepare_photo -> the engine -> paste_fills, in a folder that stays empty: the photo that
    --photos writes with the same settings (and --blend); and a clear PhotoError for a photo it cannot do."""
    from dcgan_completion.completion import photos as photo_completion
    from dcgan_completion.completion.engine import CompletionEngine
    from model import DCGAN
    out = tmp_path / "out"
    # float32 with ops.py's kernels, as the engine below (auto may time other kernels faster: other rounding)
    assert main(work, "--outDir", str(out), "--photos", str(work / "photos" / "hopper.jpg"), "--mask",
                str(work / "masks" / "hopper.png"), "--mixed_precision", "off", "--blend", blend) == 0
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
    filled = photo_completion.paste_fills(photo, faces, result.fill, blend)
    assert list(empty.iterdir()) == []
    np.testing.assert_array_equal(filled, np.asarray(Image.open(out / "final" / "hopper.png")))
    corner = np.zeros_like(hole)
    corner[CORNER] = True
    gradient = np.asarray(Image.open(work / "photos" / "gradient.png").convert("RGB"))
    for image, where, words in ((photo, corner, "away from every face"),
                                (gradient, np.ones(gradient.shape[:2], bool), "no face found"),
                                (photo, np.zeros_like(hole), "no pixel to fill")):
        with pytest.raises(photo_completion.PhotoError, match=words):
            photo_completion.prepare_photo(image, where, 64)


def holed(box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo, a hole (bool) and the photo with that hole black, as a photo with its part to fill blacked out."""
    photo = utils.read_rgb(PHOTO)
    hole = np.zeros(photo.shape[:2], bool)
    hole[box] = True
    return photo, hole, np.where(hole[:, :, None], 0, photo).astype(np.uint8)


def test_a_hole_above_the_brows_is_filled_past_the_square(work, capsys, tmp_path):
    photo, hole, black = holed(BROWS)
    path = tmp_path / "brows.png"
    utils.save_png(path, black)
    mask_with(BROWS).save(tmp_path / "brows_mask.png")
    code = main(work, "--outDir", str(tmp_path / "out"), "--photos", str(path), "--mask",
                str(tmp_path / "brows_mask.png"))
    err = capsys.readouterr().err
    assert code == 0 and "error" not in err, err
    notes = [re.fullmatch(f"note: {re.escape(str(path))}: {NOTE}", line) for line in err.splitlines()
             if "hole pixels" in line]
    assert len(notes) == 1 and notes[0], err
    assert int(notes[0]["total"].replace(",", "")) == hole.sum()
    # The square's top edge crosses the hole between y 155 and 185 (the brows are at y ~165; dlib's
    # landmarks move a little with the eyes blacked out): the rows above it are Telea's.
    assert (155 - 142) * 130 <= int(notes[0]["outside"].replace(",", "")) <= (185 - 142) * 130

    final = np.asarray(Image.open(tmp_path / "out" / "final" / "brows.png"))
    np.testing.assert_array_equal(final[~hole], photo[~hole])
    # The forehead between the hat's brim and the brows, all above the square: no longer black, and
    # close to the photo's own (hidden) pixels there: smooth skin, which Telea continues from the
    # forehead's edge within a quarter of a black hole's error (the brows and wrinkles it cannot know).
    band = (slice(142, 155), slice(200, 330))
    assert final[band].astype(int).sum(axis=2).min() > 150
    error = np.abs(final[band].astype(int) - photo[band]).mean()
    assert error < np.abs(black[band].astype(int) - photo[band]).mean() / 4, error


def test_a_hole_across_the_face_edge_into_the_background_is_filled():
    """prepare_photo and paste_fills without files: the background beyond the square is filled by
    Telea from the pixels around it, with the fill of a model that knows this face (its own aligned
    crop) and with a checkerboard fill, whose texture would streak across it if stretched there."""
    from dcgan_completion.completion import photos as photo_completion
    photo, hole, black = holed(SIDE)
    faces = photo_completion.prepare_photo(black, hole, 64)
    assert len(faces) == 1 and (faces[0].hole == hole).all()
    outside = faces[0].outside
    assert outside[235:290, 400:430].all() and not outside[235:290, 330:350].any()  # the background; the cheek
    note = re.fullmatch(NOTE, photo_completion.outside_note(faces))
    assert note and int(note["total"].replace(",", "")) == hole.sum()
    assert int(note["outside"].replace(",", "")) == outside.sum()
    u, v = np.meshgrid(np.arange(64), np.arange(64))
    checker = np.repeat(np.where((u // 2 + v // 2) % 2 == 1, 255, 0).astype(np.uint8)[:, :, None], 3, axis=2)
    own = face_alignment.cut_face(photo, faces[0].matrix, 64)
    far = (slice(235, 290), slice(395, 430))  # the background, 20 pixels and more beyond the square
    for fill in (own, checker):
        result = photo_completion.paste_fills(black, faces, [fill])
        np.testing.assert_array_equal(result[~hole], photo[~hole])
        # The blue background varies by a few levels there: Telea continues it within 15 (black: ~150
        # off; the checkerboard's stripes, ~85).
        assert result[far].astype(int).sum(axis=2).min() > 150
        assert np.abs(result[far].astype(int) - photo[far]).mean() < 15
    result = photo_completion.paste_fills(black, faces, [own])  # and all of it, next to the face's own pixels
    assert result[outside].astype(int).sum(axis=1).min() > 150
    assert np.abs(result[outside].astype(int) - photo[outside]).mean() < 15


def test_a_hole_near_a_face_is_taken_and_one_far_from_it_refused():
    """Near: within half the square's side (about 105 photo pixels here) of the aligned square."""
    from dcgan_completion.completion import photos as photo_completion
    photo = utils.read_rgb(PHOTO)
    near, far = (slice(250, 270), slice(390, 410)), (slice(250, 270), slice(490, 510))  # the square ends at x ~372
    hole = np.zeros(photo.shape[:2], bool)
    hole[near] = True
    faces = photo_completion.prepare_photo(photo, hole, 64)
    assert len(faces) == 1 and (faces[0].outside == hole).all()  # all of it Telea's
    hole[far] = True
    with pytest.raises(photo_completion.PhotoError) as error:
        photo_completion.prepare_photo(photo, hole, 64)
    assert str(error.value).startswith("1 of 2 hole(s) lie away from every face")
    assert str(error.value).endswith("e.g. the one at x 490-509, y 250-269") and "\n" not in str(error.value)


def test_an_input_that_looks_like_a_whole_photo_gets_a_line_saying_so(tmp_path, capsys):
    """complete.py without --photos reads its inputs as aligned faces (the original's meaning); Grace Hopper's
    whole photo among them gets one note naming it and the flags that fill it through its face, while an
    input at the model's size gets none."""
    photo = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    portrait = ROOT / "data" / "artflow" / "heldout" / "portrait_000.png"
    assert complete.main(["--outDir", str(tmp_path / "a"), "--nIter", "2", "--no-tuneG", str(portrait)]) == 0
    assert "looks like a whole photo" not in capsys.readouterr().err
    assert complete.main(["--outDir", str(tmp_path / "b"), "--nIter", "2", "--no-tuneG", str(portrait), photo]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "looks like a whole photo" in line]
    assert notes == [f"note: {photo} looks like a whole photo (a face was found in the 512x600 image, which is not "
                     f"square) and was completed as an aligned face, squeezed to 64x64: --photos {photo} --mask MASK "
                     f"fills it through its faces"]
