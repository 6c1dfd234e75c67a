"""Tuning G to one image after the z search (completion/tuning.py): the held-out pixels against a
brute-force reference, the tuner's stopping rule and its returned fill against numpy recomputations,
the model left untouched, and the engine's tuned results beside its untuned ones."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcgan_completion.completion import tuning  # noqa: E402
from dcgan_completion.completion.engine import CompletionEngine  # noqa: E402
from dcgan_completion.completion.settings import CompletionSettings  # noqa: E402
from model import DCGAN  # noqa: E402

SIZE, Z_DIM = 16, 8


@pytest.fixture(scope="module")
def model() -> DCGAN:
    """A tiny DCGAN whose G depends on z (weights scaled up, as an untrained G's outputs are ~0)."""
    model = DCGAN(image_size=SIZE, gf_dim=8, df_dim=8, z_dim=Z_DIM, seed=3)
    for var in model.generator.trainable_variables:
        if var.name.split("/")[-1].split(":")[0] in ("w", "Matrix"):
            var.assign(var * 10.0)
    return model


def centre_hole(size: int = SIZE, low: int = 5, high: int = 11) -> np.ndarray:
    known = np.ones((size, size, 1), np.float32)
    known[low:high, low:high] = 0.0
    return known


def test_held_out_is_the_checkerboard_of_known_pixels_near_the_hole():
    known = centre_hole()
    held = tuning.held_out(known, ring=3, block=2)
    hole = np.argwhere(known[..., 0] == 0)
    expected = np.zeros((SIZE, SIZE), bool)
    for r in range(SIZE):
        for c in range(SIZE):
            nearest = np.sqrt(((hole - [r, c]) ** 2).sum(axis=1)).min()
            expected[r, c] = known[r, c, 0] == 1 and nearest <= 3 and (r // 2 + c // 2) % 2 == 0
    assert held.shape == (SIZE, SIZE, 1) and held.dtype == np.float32
    assert (held[..., 0] == expected).all() and expected.sum() > 10


def test_held_out_covers_the_same_share_of_a_larger_face():
    """At 128 the ring and blocks are twice 64's: the held-out pixels of a hole scaled up by 2 are those
    of the 64x64 hole scaled up by 2."""
    small = np.ones((64, 64, 1), np.float32)
    small[20:40, 24:44] = 0.0
    large = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    held_small, held_large = tuning.held_out(small), tuning.held_out(large)
    assert held_small.sum() > 100
    assert (held_large[::2, ::2] == held_small).mean() > 0.97  # the ring's rounding apart
    assert held_large.sum() == pytest.approx(4 * held_small.sum(), rel=0.1)


def test_held_out_is_empty_without_a_hole_or_without_known_pixels():
    assert not tuning.held_out(np.ones((SIZE, SIZE, 1), np.float32)).any()
    assert not tuning.held_out(np.zeros((SIZE, SIZE, 1), np.float32)).any()


def test_one_step_gives_the_untuned_fill_and_leaves_the_model_alone(model):
    tuner = tuning.GeneratorTuner(model, lam=0.1)
    before = [v.numpy() for v in model.variables]
    z = np.random.default_rng(0).uniform(-1, 1, Z_DIM).astype(np.float32)
    image = np.random.default_rng(1).uniform(-1, 1, (SIZE, SIZE, 3)).astype(np.float32)
    known = centre_hole()
    result = tuner.tune(z, image, known, tuning.held_out(known), steps=1, lr=1e-3)
    untuned = model.sampler(tf.constant(z[None]), training=False).numpy()[0]
    np.testing.assert_allclose(result.fill, untuned, atol=1e-6)
    assert result.best_step == 0 and result.steps == 1
    # A longer tuning changes only the copy: the model's own weights are as they were.
    tuner.tune(z, image, known, tuning.held_out(known), steps=20, lr=1e-2)
    assert all((v.numpy() == b).all() for v, b in zip(model.variables, before))


def test_the_fill_is_the_best_held_out_step_and_the_tuning_stops_after_its_patience(model):
    """Towards an image G nearly makes (G(z) brightened), tuning lowers the held-out error; the fill
    returned has the lowest recorded held-out error (recomputed here from the fill), and the run
    stops PATIENCE steps after that step or at the step limit."""
    tuner = tuning.GeneratorTuner(model, lam=0.1)
    z = np.random.default_rng(2).uniform(-1, 1, Z_DIM).astype(np.float32)
    target = np.clip(model.sampler(tf.constant(z[None]), training=False).numpy()[0] + 0.3, -1, 1)
    known = centre_hole()
    held = tuning.held_out(known)
    result = tuner.tune(z, target, known, held, steps=60, lr=3e-3)
    errors = result.held_errors
    assert len(errors) == result.steps and result.best_step == int(np.argmin(errors))
    assert errors[result.best_step] < 0.8 * errors[0]
    mine = np.abs(held * (result.fill - target)).sum() / (held.sum() * 3)
    assert mine == pytest.approx(errors[result.best_step], rel=1e-4)
    assert result.steps == min(60, result.best_step + tuning.PATIENCE + 1)


def test_the_engine_tunes_each_image_and_keeps_the_untuned_fill(model):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.stack([centre_hole(), np.ones((SIZE, SIZE, 1), np.float32)])  # the second has no hole
    z = rng.uniform(-1, 1, (2, Z_DIM)).astype(np.float32)
    tuned = CompletionEngine(model, CompletionSettings(n_iter=4, out_interval=2, seed=0, tune_g=True,
                                                       tune_steps=30, tune_lr=3e-3)).complete(images, masks, z=z)
    plain = CompletionEngine(model, CompletionSettings(n_iter=4, out_interval=2, seed=0,
                                                       tune_g=False)).complete(images, masks, z=z)
    assert plain.search_fill is None and plain.tuned_steps is None
    np.testing.assert_allclose(tuned.search_fill, plain.fill, atol=1e-5)
    np.testing.assert_allclose(tuned.z, plain.z, atol=1e-6)
    assert tuned.tuned_steps.shape == (2,) and tuned.tuned_steps[1] == 0  # no hole: nothing to tune by
    np.testing.assert_allclose(tuned.fill[1], plain.fill[1], atol=1e-6)
    if tuned.tuned_steps[0] > 0:
        assert np.abs(tuned.fill[0] - plain.fill[0]).max() > 1e-3
