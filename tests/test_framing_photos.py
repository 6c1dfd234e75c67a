"""A model trained on faces framed one way cuts a photo's face the same way: a tiny model trained by
train_dcgan.py on CelebA-framed copies of grace_hopper.jpg (89x109, --crop --input_height 54, as
docs/real_faces.md's half-resolution CelebA) records that framing; a held-out copy placed into a
larger picture at another scale and angle is cut by --photos as the training crop of that copy
(landmarks within 0.5 px of the direct crop's), where align_faces.py's template misses by pixels;
and a G that knows that face in that framing fills the photo's face as well as the aligned crop."""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion.faces import framing  # noqa: E402

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
W, H, CROP, SIZE = 89, 109, 54, 16   # half-resolution img_align_celeba, its centred 54x54, the model's side
SCALE, ANGLE, CANVAS = 2.5, 8.0, (400, 360)  # how the held-out face is placed into the picture


@pytest.fixture(scope="module")
def models():
    from dcgan_completion.faces import alignment as face_alignment
    return face_alignment.load_models(face_alignment.default_predictor())


def celeba_framed(photo: np.ndarray, models, rng) -> np.ndarray:
    """The photo's face as an 89x109 img_align_celeba image (CelebA's eye and mouth positions), with a
    little of the jitter and colour of a real alignment."""
    from dcgan_completion.faces import alignment as face_alignment
    landmarks = face_alignment.find_landmarks(photo, face_alignment.find_faces(photo, models[0])[0], models[1])
    source = np.float32([landmarks[list(group)].mean(axis=0) for group in framing.EYES_AND_MOUTH])
    target = (np.float32(framing.CELEBA_POINTS) + 0.5) * 0.5 - 0.5
    jitter = cv2.getRotationMatrix2D(tuple(map(float, target.mean(axis=0))), rng.normal(0, 2), 1 + rng.normal(0, 0.02))
    jitter[:, 2] += rng.normal(0, 0.7, 2)
    matrix = np.vstack([jitter, [0, 0, 1]]) @ np.vstack([framing.similarity(source, target), [0, 0, 1]])
    face = cv2.warpAffine(photo, matrix[:2], (W, H), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(face * rng.uniform(0.85, 1.15, 3) + rng.normal(0, 8), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, models) -> Path:
    """train_dcgan.py on 16 CelebA-framed copies (a few steps: the framing is what is checked here);
    held.png, a copy it never saw."""
    import train_dcgan
    root = tmp_path_factory.mktemp("framed")
    photo, rng = utils.read_rgb(PHOTO), np.random.default_rng(0)
    for index in range(16):
        utils.save_png(root / "faces" / f"{index:02d}.png", celeba_framed(photo, models, rng))
    utils.save_png(root / "held.png", celeba_framed(photo, models, np.random.default_rng(99)))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = train_dcgan.main(["--dataset", str(root / "faces"), "--crop", "--input_height", str(CROP),
                                 "--image_size", str(SIZE), "--gf_dim", "8", "--df_dim", "8", "--z_dim", "8",
                                 "--batch_size", "8", "--epoch", "1", "--mixed_precision", "off", "--seed", "0",
                                 "--checkpoint_dir", str(root / "ck"), "--sample_dir", str(root / "samples"),
                                 "--log_dir", str(root / "logs")])
    assert code == 0
    (root / "train.out").write_text(printed.getvalue())
    return root


@pytest.fixture(scope="module")
def knows_the_face(trained) -> Path:
    """The trained model with its G (the sampler) fitted to reproduce the 16 training crops from 16
    fixed z's, saved as a model of its own: a G that knows this face in this framing, which a few
    GAN steps of a tiny model do not reach."""
    import tensorflow as tf

    from dcgan_completion.networks import storage
    from model import DCGAN, Adam
    model = DCGAN.from_checkpoint(trained / "ck")
    crops = np.stack([utils.load_image(p, SIZE, CROP) for p in sorted((trained / "faces").glob("*.png"))])
    z = tf.constant(np.random.default_rng(0).uniform(-1, 1, (len(crops), model.z_dim)).astype(np.float32))
    target, sampler = tf.constant(crops / 127.5 - 1, tf.float32), model.sampler
    adam = Adam(sampler.trainable_variables, 0.01, 0.9)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(sampler(z, training=False) - target))
        adam.apply(sampler.trainable_variables, tape.gradient(loss, sampler.trainable_variables))
        return loss

    for _ in range(500):
        loss = step()
    assert float(loss) < 0.1  # of [-1, 1]: it draws her
    storage.save_networks(model, trained / "knows")
    return trained / "knows"


def placement() -> np.ndarray:
    """3 x 3: pixels of the held-out 89x109 image -> the picture's."""
    matrix = cv2.getRotationMatrix2D((W / 2, H / 2), ANGLE, SCALE)
    matrix[:, 2] += (CANVAS[1] / 2 - W / 2, CANVAS[0] / 2 - H / 2)
    return np.vstack([matrix, [0, 0, 1]])


def direct_frame() -> np.ndarray:
    """3 x 3: the picture's pixels -> the model's 16x16 square, as training cut the held-out image
    (utils.center_crop's offsets, then a resize whose pixel edges line up)."""
    left, top, k = (W - CROP) // 2, (H - CROP) // 2, SIZE / CROP
    crop = np.array([[k, 0, (0.5 - left) * k - 0.5], [0, k, (0.5 - top) * k - 0.5], [0, 0, 1]])
    return crop @ np.linalg.inv(placement())


def eye_hole() -> np.ndarray:
    """bool CANVAS: the picture's pixels over her eyes (rows 7 to 10, columns 4 to 11 of the model's square)."""
    ys, xs = np.mgrid[0:CANVAS[0], 0:CANVAS[1]]
    u, v, _ = direct_frame() @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    return ((u > 3.5) & (u < 11.5) & (v > 6.5) & (v < 10.5)).reshape(CANVAS)


def test_the_model_records_its_framing_and_photos_are_cut_that_way(trained, models):
    from dcgan_completion.completion import photos as photo_completion
    from dcgan_completion.faces import alignment as face_alignment
    from dcgan_completion.networks import storage
    cut = storage.read_framing(trained / "ck")
    assert cut == {"kind": "celeba", "image": [W, H], "crop": CROP}
    assert json.loads((trained / "ck" / "dcgan.json").read_text())["framing"] == cut
    assert "framing: CelebA's aligned 89x109 images, then the centred 54x54\n" in (trained / "train.out").read_text()

    held = utils.read_rgb(trained / "held.png")
    picture = cv2.warpAffine(held, placement()[:2], CANVAS[::-1], flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REPLICATE)
    hole = eye_hole()
    landmarks = face_alignment.find_landmarks(picture, face_alignment.find_faces(picture, models[0])[0], models[1])
    points = np.hstack([np.float64([landmarks[list(g)].mean(axis=0) for g in framing.EYES_AND_MOUTH]
                                   + [landmarks[30]]), np.ones((4, 1))])  # eyes, mouth, nose tip
    direct = points @ direct_frame()[:2].T
    errors = {}
    for name, framed in (("model's", cut), ("unknown", None)):
        faces = photo_completion.prepare_photo(picture, hole, SIZE, models, framed)
        errors[name] = np.linalg.norm(points @ faces[0].matrix.T - direct, axis=1)
    assert errors["model's"].max() < 0.5, errors   # where the model's training faces have them
    assert errors["unknown"].min() > 2.0, errors   # align_faces.py's template: eyes high, face larger

    # The crop the photo gives is the held-out face as training cut it (what the model fits).
    truth = utils.load_image(trained / "held.png", SIZE, CROP).astype(float)
    psnr = {name: 10 * np.log10(255 ** 2 / np.mean((photo_completion.prepare_photo(
        picture, hole, SIZE, models, framed)[0].crop - truth) ** 2)) for name, framed in (("model's", cut), ("unknown", None))}
    assert psnr["model's"] > 22 and psnr["unknown"] < psnr["model's"] - 6, psnr


def test_complete_photos_names_the_framing_and_fills_through_it(trained, capsys):
    import complete
    picture = cv2.warpAffine(utils.read_rgb(trained / "held.png"), placement()[:2], CANVAS[::-1],
                             flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    utils.save_png(trained / "picture.png", picture)
    keep = np.where(eye_hole(), 0, 255).astype(np.uint8)
    Image.fromarray(keep, "L").save(trained / "hole.png")
    capsys.readouterr()
    assert complete.main(["--checkpointDir", str(trained / "ck"), "--outDir", str(trained / "out"), "--nIter", "2",
                          "--outInterval", "2", "--seed", "0", "--mixed_precision", "off",
                          "--photos", str(trained / "picture.png"), "--mask", str(trained / "hole.png")]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0] == (f"model: {trained / 'ck'}; framing: CelebA's aligned 89x109 images, "
                                           f"then the centred 54x54")
    assert "framing is unknown" not in printed.err
    final = np.asarray(Image.open(trained / "out" / "final" / "picture.png"))
    np.testing.assert_array_equal(final[keep > 0], picture[keep > 0])
    assert (final[keep == 0] != picture[keep == 0]).any(axis=1).mean() > 0.9


def test_the_photo_is_filled_as_well_as_the_aligned_crop(trained, knows_the_face, models):
    """The eye hole of the held-out face placed in the picture, completed through --photos' cut, has
    a fill as close to the truth (hole PSNR in the model's square) as completing the training crop
    directly, within 1 dB; cut with align_faces.py's template instead, G cannot fit it."""
    from dcgan_completion.completion import photos as photo_completion
    from dcgan_completion.completion.engine import CompletionEngine
    from dcgan_completion.completion.settings import CompletionSettings
    from dcgan_completion.networks import storage
    from model import DCGAN
    # G(z) alone: the cut is what is compared here, not the tuning of G to each crop.
    engine = CompletionEngine(DCGAN.from_checkpoint(knows_the_face), CompletionSettings(n_iter=200, seed=0,
                                                                                        tune_g=False))
    picture = cv2.warpAffine(utils.read_rgb(trained / "held.png"), placement()[:2], CANVAS[::-1],
                             flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)

    def hole_psnr(crop: np.ndarray, mask: np.ndarray) -> float:
        fill = utils.to_uint8(engine.complete(crop[None], mask[None]).fill[0]).astype(float)
        hole = mask[..., 0] < 0.5
        return 10 * np.log10(255 ** 2 / np.mean((fill - crop.astype(float))[hole] ** 2))

    psnr = {}
    for name, cut in (("model's", storage.read_framing(knows_the_face)), ("unknown", None)):
        face = photo_completion.prepare_photo(picture, eye_hole(), SIZE, models, cut)[0]
        psnr[name] = hole_psnr(face.crop, face.mask)
        if cut is not None:  # the training crop of the held-out image, under the same hole
            psnr["direct"] = hole_psnr(utils.load_image(trained / "held.png", SIZE, CROP), face.mask)
    assert psnr["direct"] > 20, psnr  # G fills her eyes
    assert psnr["model's"] > psnr["direct"] - 1.0, psnr
    assert psnr["unknown"] < psnr["direct"] - 6.0, psnr
