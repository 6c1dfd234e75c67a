"""framing.py: where each framing puts a face's points in the model's square (checked against the
crop and resize that training applies to a real image), which framing a dataset folder gives, and
how dcgan.json records it (old checkpoints read as unknown, the shipped model as drawn)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion.faces import framing  # noqa: E402


def landmarks_at(eyes_and_mouth: np.ndarray) -> np.ndarray:
    """68 landmarks whose eye centres and mouth-corner midpoint are the three points given (N, 2):
    OpenFace's template, its eyes and mouth corners moved there, the rest left where they are."""
    points = framing.TEMPLATE.astype(np.float64) * 100
    for group, target in zip(framing.EYES_AND_MOUTH, eyes_and_mouth):
        points[list(group)] += target - points[list(group)].mean(axis=0)
    return points


def test_celeba_framing_is_the_training_crop_of_celeba_positions(tmp_path):
    """An img_align_celeba-shaped image with a dot at each of CelebA's three points, centre-cropped
    to 108 and resized to 64 as train_dcgan.py --crop --input_height 108 does: the dots land where
    framing.matrix sends those points of a photo holding that image at another scale and angle."""
    image = np.zeros((218, 178, 3), np.uint8)
    for x, y in framing.CELEBA_POINTS:
        cv2.circle(image, (round(x * 8), round(y * 8)), 16, (255, 255, 255), -1, cv2.LINE_AA, shift=3)
    path = tmp_path / "celeba.png"
    utils.save_png(path, image)
    trained = utils.load_image(path, 64, crop=108)[:, :, 0].astype(float)
    labels, count = ndimage.label(trained > 40)
    assert count == 3
    ys, xs = np.mgrid[0:64, 0:64]
    dots = sorted(((xs * trained)[labels == k].sum() / trained[labels == k].sum(),
                   (ys * trained)[labels == k].sum() / trained[labels == k].sum()) for k in range(1, 4))

    placed = np.array([[1.7 * np.cos(0.3), -1.7 * np.sin(0.3), 40], [1.7 * np.sin(0.3), 1.7 * np.cos(0.3), 25]])
    photo_points = np.hstack([np.float64(framing.CELEBA_POINTS), np.ones((3, 1))]) @ placed.T
    matrix = framing.matrix(landmarks_at(photo_points), 64, framing.celeba(178, 218, 108))
    mapped = sorted(map(tuple, np.hstack([photo_points, np.ones((3, 1))]) @ matrix.T))
    np.testing.assert_allclose(mapped, dots, atol=0.15)  # pixels of the 64x64 model


def test_openface_framing_is_align_faces_warp():
    from dcgan_completion.faces import alignment as face_alignment
    rng = np.random.default_rng(0)
    landmarks = np.float32(framing.TEMPLATE * 180 + rng.normal(0, 3, (68, 2)) + 40)
    for name, indices in framing.LANDMARKS.items():
        expected = face_alignment.alignment_matrix(landmarks, 64, indices)
        np.testing.assert_allclose(framing.matrix(landmarks, 64, framing.openface(name, 64)), expected, atol=1e-3)
        # Faces aligned at 96 and trained at 64: the same face, two thirds the size.
        at_96 = framing.matrix(landmarks, 64, framing.openface(name, 96))
        np.testing.assert_allclose(at_96[:, :2], expected[:, :2], atol=1e-3)
    # An unknown framing cuts as align_faces.py's default does.
    np.testing.assert_allclose(framing.matrix(landmarks, 64, framing.UNKNOWN),
                               face_alignment.alignment_matrix(landmarks, 64, framing.LANDMARKS["innerEyesAndBottomLip"]),
                               atol=1e-3)


def test_similarity_is_exact_for_points_that_fit_one():
    source = np.float64([[10, 20], [50, 22], [31, 70]])
    angle, scale = 0.2, 0.6
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = source @ rotation.T + [5, -3]
    np.testing.assert_allclose(framing.similarity(source, target), np.hstack([rotation, [[5], [-3]]]), atol=1e-9)


def test_drawn_framing_sends_the_eyes_to_where_make_faces_draws_them():
    drawn = {"kind": "drawn", "size": 64, "eyes": [[0.34, 0.41], [0.66, 0.41]], "mouth": [0.5, 0.77]}
    photo = np.float64([[200, 300], [280, 300], [240, 390]])
    matrix = framing.matrix(landmarks_at(photo), 64, drawn)
    mapped = np.hstack([photo, np.ones((3, 1))]) @ matrix.T
    # Unit coordinates span pixel edges: 0.34 of 64 pixels is pixel 21.26 (centres at integers).
    np.testing.assert_allclose(mapped[:2], [[0.34 * 64 - 0.5, 0.41 * 64 - 0.5], [0.66 * 64 - 0.5, 0.41 * 64 - 0.5]],
                               atol=1.0)
    assert "eyes at x 0.34 and 0.66, y 0.41" in framing.describe(drawn)


def test_portrait_framing_sends_the_eyes_and_mouth_to_its_points_and_names_them():
    portrait = framing.portrait(64)
    # A face whose eyes and mouth fit a similarity exactly: 80 px between the eyes, the mouth 88 px below.
    photo = np.float64([[200, 300], [280, 300], [240, 388]])
    mapped = np.hstack([photo, np.ones((3, 1))]) @ framing.matrix(landmarks_at(photo), 64, portrait).T
    expected = 64 * np.float64([*framing.PORTRAIT["eyes"], framing.PORTRAIT["mouth"]]) - 0.5
    np.testing.assert_allclose(mapped, expected, atol=0.5)
    assert framing.describe(portrait).startswith("portraits (data/portraits.py: eyes at x 0.375 and 0.625, y 0.42")


def test_the_dataset_decides_the_framing(tmp_path):
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    utils.save_json(aligned / framing.FRAMING_FILE, framing.openface("outerEyesAndNose", 96))
    assert framing.of_dataset(aligned, False, (96, 96)) == framing.openface("outerEyesAndNose", 96)
    assert framing.of_dataset(aligned, 64, (96, 96))["crop"] == 64  # --crop --input_height 64 of them
    assert framing.of_dataset(tmp_path, 108, (178, 218)) == {"kind": "celeba", "image": [178, 218], "crop": 108}
    assert framing.of_dataset(tmp_path, 54, (89, 109)) == {"kind": "celeba", "image": [89, 109], "crop": 54}
    assert framing.of_dataset(tmp_path, True, (178, 218))["crop"] == 178
    assert framing.of_dataset(tmp_path, 100, (250, 250))["kind"] == "unknown"
    assert framing.of_dataset(tmp_path, False, (178, 218))["kind"] == "unknown"  # squashed, not cropped


def test_dcgan_json_records_it(tmp_path):
    from dcgan_completion.networks import storage
    from model import DCGAN
    model = DCGAN(image_size=8, z_dim=4, gf_dim=4, df_dim=4)
    model.save(tmp_path / "old")
    assert storage.read_framing(tmp_path / "old") == framing.UNKNOWN  # a model from before: unknown
    model.framing_json = json.dumps(framing.celeba(178, 218, 108))
    model.save(tmp_path / "new")
    assert json.loads((tmp_path / "new" / "dcgan.json").read_text())["framing"]["kind"] == "celeba"
    assert storage.read_config(tmp_path / "new") == model.config  # not part of the configuration
    loaded = DCGAN.from_checkpoint(tmp_path / "new")
    storage.save_networks(loaded, tmp_path / "copy")  # convert_checkpoint.py --networks_only keeps it
    assert storage.read_framing(tmp_path / "copy") == framing.celeba(178, 218, 108)
    storage.write_known_fit(tmp_path / "copy", {"mean": 0.3, "std": 0.1, "warn_above": 0.6})
    assert storage.read_framing(tmp_path / "copy")["kind"] == "celeba"
    assert storage.resolve_model_dir(tmp_path / "copy")[1] == (
        f"model: {tmp_path / 'copy'}; framing: CelebA's aligned 178x218 images, then the centred 108x108")

    shipped = storage.read_framing(storage.default_model_dir())
    assert shipped == framing.portrait(64)  # data/portraits.py's faces
    assert storage.read_framing(ROOT / "checkpoints" / "drawn64")["kind"] == "drawn"  # the demo's model

    record = json.loads((tmp_path / "copy" / "dcgan.json").read_text())
    utils.save_json(tmp_path / "copy" / "dcgan.json", {**record, "framing": {"kind": "sideways"}})
    with pytest.raises(storage.CheckpointError,
                       match="framing kind must be openface, celeba, drawn, portrait or unknown"):
        storage.read_framing(tmp_path / "copy")
