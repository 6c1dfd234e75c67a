"""encoder.py and train_encoder.py: the masks it trains under, that training moves E(x) towards z,
that the completion starts from it, and the command (resume, errors) end to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import train_encoder
from dcgan_completion import encoder
from dcgan_completion.completion.engine import CompletionEngine
from dcgan_completion.completion.settings import CompletionSettings
from model import DCGAN

ROOT = Path(__file__).resolve().parents[1]
SIZE, Z_DIM = 16, 16


def tiny_model() -> DCGAN:
    model = DCGAN(image_size=SIZE, gf_dim=8, df_dim=8, z_dim=Z_DIM, seed=3)
    for var in model.generator.trainable_variables:  # a G whose images vary with z (see test_completion)
        if var.name.split("/")[-1].split(":")[0] in ("w", "Matrix"):
            var.assign(var * 10.0)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model's checkpoint with an encoder trained 150 steps by the command, and the history."""
    folder = tmp_path_factory.mktemp("ck")
    model = tiny_model()
    model.save(folder)
    assert train_encoder.main(["--checkpointDir", str(folder), "--steps", "150", "--batch_size", "32",
                               "--save_every", "100", "--learning_rate", "0.001"]) == 0
    return folder, model


def test_the_masks_are_of_every_kind_and_binary():
    masks = encoder.random_masks(np.random.default_rng(0), 400, 32)
    assert masks.shape == (400, 32, 32, 1) and masks.dtype == np.float32
    assert set(np.unique(masks)) <= {0.0, 1.0}
    known = masks.mean(axis=(1, 2, 3))
    # A half: exactly 0.5 known; nothing missing: 1.0; the grid: every 4th pixel of every 4th row, 1/16.
    assert np.isclose(known, 0.5).sum() > 20 and np.isclose(known, 1.0).sum() > 20
    assert np.isclose(known, 1 / 16).sum() > 20
    # A centred square of side 0.3-0.7 S: 9-22 pixels of 32, so 51-91% known.
    center = encoder._mask(np.random.default_rng(1), "center", 32)
    side = int(np.sqrt((center == 0).sum()))
    assert 9 <= side <= 22 and (center == 0).sum() == side * side
    assert encoder._mask(np.random.default_rng(2), "strokes", 32).min() == 0.0


def test_training_moves_the_guess_towards_z_and_resumes(trained, capsys):
    folder, model = trained
    restored = encoder.load(folder, model)
    assert restored is not None
    rng = np.random.default_rng(5)
    z = rng.uniform(-1, 1, (64, Z_DIM)).astype(np.float32)
    images = model.generator(z, training=False)
    masks = encoder.random_masks(rng, 64, SIZE)
    untrained = encoder.for_model(model)
    error = lambda enc: float(np.mean((enc(images, masks).numpy() - z) ** 2))  # noqa: E731
    # An untrained encoder's tanh outputs sit near 0: its error is about E[z^2] = 1/3.
    assert error(untrained) == pytest.approx(1 / 3, abs=0.05)
    assert error(restored) < 0.8 * error(untrained)
    # The same command again, with more steps: it resumes at 150, not at 0.
    capsys.readouterr()
    assert train_encoder.main(["--checkpointDir", str(folder), "--steps", "160", "--batch_size", "32"]) == 0
    out = capsys.readouterr().out
    assert f"Resuming the encoder of {folder} at step 150" in out and "trained 160 steps" in out
    assert train_encoder.main(["--checkpointDir", str(folder), "--steps", "160"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_the_completion_starts_from_the_encoder(trained):
    """On G's own images with the center mask: the encoder's start already explains the known pixels
    better than a random z, and the engine's first recorded frame is that start's G(z)."""
    folder, model = trained
    enc = encoder.load(folder, model)
    rng = np.random.default_rng(7)
    truth = model.generator(rng.uniform(-1, 1, (16, Z_DIM)).astype(np.float32), training=False).numpy()
    masks = np.ones((16, SIZE, SIZE, 1), np.float32)
    masks[:, 4:12, 4:12] = 0.0
    settings = CompletionSettings(n_iter=0 + 10, out_interval=10, seed=0)
    from_encoder = CompletionEngine(model, settings, enc).complete(truth, masks, record=True)
    from_random = CompletionEngine(model, settings).complete(truth, masks, record=True)
    known_error = lambda fill: float(np.mean(np.abs(fill - truth) * masks))  # noqa: E731
    assert known_error(from_encoder.frames[0][1]) < 0.8 * known_error(from_random.frames[0][1])
    start = enc(truth, masks).numpy()
    np.testing.assert_allclose(from_encoder.zs[0], start, atol=1e-6)


def test_the_command_says_which_start_complete_uses(trained, tmp_path):
    folder, model = trained
    image = ((model.generator(np.zeros((1, Z_DIM), np.float32), training=False).numpy()[0] + 1) * 127.5)
    from PIL import Image
    Image.fromarray(image.astype(np.uint8)).save(tmp_path / "face.png")
    lines = {}
    for z_init in ("encoder", "random"):
        result = subprocess.run([sys.executable, "complete.py", "--checkpointDir", str(folder), "--nIter", "2",
                                 "--outInterval", "1", "--mixed_precision", "off", "--zInit", z_init,
                                 "--outDir", str(tmp_path / z_init), str(tmp_path / "face.png")],
                                cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        lines[z_init] = [line for line in result.stdout.splitlines() if line.startswith("start:")]
    assert lines["encoder"] == [f"start: z from the encoder in {folder / 'encoder'}, trained 160 steps on G's "
                                f"samples (--zInit random: U(-1, 1))"]
    assert lines["random"] == ["start: random z (--zInit random)"]


def test_a_checkpoint_without_an_encoder_starts_at_random_and_says_how_to_add_one(tmp_path):
    model = tiny_model()
    model.save(tmp_path)
    found, line = encoder.for_completion(tmp_path, model, "encoder")
    assert found is None and line == (f"start: random z ({tmp_path} has no encoder; "
                                      f"'python train_encoder.py --checkpointDir {tmp_path}' adds one)")


def test_bad_inputs_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, "train_encoder.py", "--checkpointDir", str(empty)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and str(empty) in errors[0]
    assert "Traceback" not in result.stderr
    # An encoder of another model's shape beside these networks.
    model = tiny_model()
    model.save(tmp_path / "ck")
    trainer = encoder.EncoderTrainer(model, encoder.for_model(model), encoder.EncoderSettings())
    trainer.save(tmp_path / "ck")
    config = tmp_path / "ck" / "encoder" / "encoder.json"
    config.write_text(config.read_text().replace(f'"z_dim": {Z_DIM}', '"z_dim": 100'))
    from dcgan_completion.networks.storage import CheckpointError
    with pytest.raises(CheckpointError, match="train it again with train_encoder.py"):
        encoder.load(tmp_path / "ck", model)
