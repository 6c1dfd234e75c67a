"""The fit signal: completion.unexplained_share against hand-worked numbers, dcgan.json's known_fit
(storage.read_known_fit / write_known_fit) and completion_job.fit_warning's one line."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcgan_completion.completion import engine as completion  # noqa: E402
from dcgan_completion.completion import outputs as completion_job  # noqa: E402
from dcgan_completion.completion.settings import CompletionSettings  # noqa: E402
from dcgan_completion.networks import storage  # noqa: E402


def as_fill(values: np.ndarray) -> np.ndarray:
    """uint8-scale values as G's output in [-1, 1]."""
    return np.asarray(values, np.float64) / 127.5 - 1.0


def two_level_image() -> np.ndarray:
    """(1, 4, 4, 3): the left half 0, the right half 100, so the median is 50 and every pixel is 50 from it."""
    image = np.zeros((1, 4, 4, 3), np.uint8)
    image[:, :, 2:] = 100
    return image


# ----------------------------------------------------------------------------- unexplained_share, by hand

def test_an_exact_fit_leaves_nothing_unexplained_and_a_flat_colour_everything():
    image, weights = two_level_image(), np.ones((1, 4, 4, 1))
    assert completion.unexplained_share(image, weights, as_fill(image)) == pytest.approx([0.0])
    assert completion.unexplained_share(image, weights, as_fill(np.full(image.shape, 50))) == pytest.approx([1.0])


def test_an_error_of_10_against_a_spread_of_50_is_a_fifth():
    image, weights = two_level_image(), np.ones((1, 4, 4, 1))
    assert completion.unexplained_share(image, weights, as_fill(image + 10.0)) == pytest.approx([0.2])


def test_only_the_weighted_pixels_count_and_by_their_weight():
    image = two_level_image()
    weights = np.zeros((1, 4, 4, 1))
    weights[:, 0, :] = 1.0                   # the top row: 0, 0, 100, 100 (median 50, spread 50)
    weights[:, 1, :] = 0.5                   # the second row at half weight: the same values
    fill = image.astype(np.float64) + 10.0   # off by 10 on every weighted pixel
    fill[:, 2:] = 255.0                      # the unweighted rows: anything
    assert completion.unexplained_share(image, weights, as_fill(fill)) == pytest.approx([0.2])
    fill[:, 1] += 30.0                       # the half-weight row now off by 40: (1 * 10 + 0.5 * 40) / 1.5 = 20
    assert completion.unexplained_share(image, weights, as_fill(fill)) == pytest.approx([20.0 / 50.0])


def test_fitted_pixels_flatter_than_the_floor_are_measured_against_the_floor():
    image = np.full((1, 4, 4, 3), 100, np.uint8)  # no spread at all
    share = completion.unexplained_share(image, np.ones((1, 4, 4, 1)), as_fill(image + 4.0))
    assert completion.FLAT_FLOOR == 8.0 and share == pytest.approx([0.5])  # 4 grey levels of 8


# ----------------------------------------------------------------------------- known_fit in dcgan.json

FIT = {"mean": 0.36, "std": 0.14, "max": 0.8, "warn_above": 0.84, "faces": 32, "n_iter": 1000,
       "weighted_mask": True, "mask": "center", "knows": "drawn faces"}


def test_known_fit_is_written_beside_the_hyper_parameters_and_read_back(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(ROOT / "checkpoints" / "face64", folder)
    before = storage.read_config(folder)
    storage.write_known_fit(folder, FIT)
    assert json.loads((folder / "dcgan.json").read_text())["known_fit"] == FIT
    assert storage.read_config(folder) == before   # the model's configuration only
    assert storage.read_known_fit(folder) == FIT


def test_a_model_without_known_fit_has_none_and_a_bad_one_is_an_error(tmp_path):
    utils_json = {"image_size": 16, "z_dim": 8, "gf_dim": 8, "df_dim": 8, "c_dim": 3}
    (tmp_path / "dcgan.json").write_text(json.dumps(utils_json))
    assert storage.read_known_fit(tmp_path) is None
    assert storage.read_known_fit(tmp_path / "nowhere") is None
    (tmp_path / "dcgan.json").write_text(json.dumps({**utils_json, "known_fit": {"mean": 0.3}}))
    with pytest.raises(storage.CheckpointError, match="known_fit"):
        storage.read_known_fit(tmp_path)


# ----------------------------------------------------------------------------- the warning line

def test_the_warning_names_the_far_images_in_one_line():
    settings = CompletionSettings()
    line = completion_job.fit_warning(["a.png", "b.png", "c.png"], np.array([0.3, 0.9, 0.95]), FIT, settings)
    assert "\n" not in line and line.startswith("2 of 3 image(s) far from what the model knows")
    assert "b.png 90%, c.png 95%" in line and "a.png" not in line and "36% on average" in line
    assert line.endswith("it knows drawn faces")
    assert completion_job.fit_warning(["a.png"], np.array([0.84]), FIT, settings) is None  # not above


def test_no_warning_without_a_known_fit_or_for_other_completions_than_the_measured_ones():
    far = (["a.png"], np.array([0.99]))
    assert completion_job.fit_warning(*far, None, CompletionSettings()) is None
    assert completion_job.fit_warning(*far, FIT, CompletionSettings(n_iter=999)) is None       # explains less
    assert completion_job.fit_warning(*far, FIT, CompletionSettings(weighted_mask=False)) is None  # other pixels
    assert completion_job.fit_warning(*far, FIT, CompletionSettings(n_iter=2000)) is not None
    # Measured from the encoder's start: a completion from a random z is not compared with it.
    from_encoder = {**FIT, "start": "encoder"}
    assert completion_job.fit_warning(*far, from_encoder, CompletionSettings(n_iter=2000)) is None
    assert completion_job.fit_warning(*far, from_encoder, CompletionSettings(n_iter=2000), "encoder") is not None


# ----------------------------------------------------------------------------- what the model knows, said

def test_what_the_model_knows_the_shipped_one_and_others(tmp_path):
    assert storage.model_knows(storage.default_model_dir()) == storage.SHIPPED_KNOWS
    assert "portraits of people" in storage.SHIPPED_KNOWS and "artflow.ai, CC BY 4.0" in storage.SHIPPED_KNOWS
    assert "checkpoints/README.md" in storage.SHIPPED_KNOWS and (ROOT / "checkpoints" / "README.md").exists()
    (tmp_path / "dcgan.json").write_text(json.dumps({"image_size": 16, "z_dim": 8, "gf_dim": 8, "df_dim": 8}))
    assert storage.model_knows(tmp_path) is None
    storage.write_known_fit(tmp_path, FIT)
    assert storage.model_knows(tmp_path) == "drawn faces"
    line = storage.resolve_model_dir(None)[1]
    assert line.startswith("model: the shipped face model, which knows portraits of people") and "CC BY 4.0" in line
    # Named by its folder, a shipped model is still said to be one; another folder is named as given.
    shipped = ROOT / "checkpoints" / storage.SHIPPED_MODEL
    assert storage.resolve_model_dir(shipped) == (str(shipped), line.replace(str(storage.default_model_dir()),
                                                                            str(shipped)))
    assert storage.resolve_model_dir(tmp_path)[1].startswith(f"model: {tmp_path}; framing:")


def test_api_model_says_what_the_model_knows():
    sys.path.insert(0, str(ROOT / "tests"))
    import webapp_support
    from dcgan_completion.serving.service import Defaults, Limits, Service

    def knows(checkpoint: str):
        made = Service(webapp_support.model(), Defaults(webapp_support.DEFAULTS), Limits(), None,
                       checkpoint=checkpoint, engines=webapp_support.ENGINES)
        return made.model_info()["knows"]

    assert knows(str(storage.default_model_dir())) == storage.SHIPPED_KNOWS
    assert knows(str(webapp_support.model_dir())) is None  # a model that says nothing of itself
