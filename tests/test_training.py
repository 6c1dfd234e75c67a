"""training/loop.py: its settings; a dataset too big for memory is decoded on the fly, unreadable files
still counted and named."""
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import model
import train_dcgan
from dcgan_completion.training import loop as training
from dcgan_completion.training import settings as training_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def train_tiny(data, tmp_path) -> int:
    """Two epochs of an 8x8 model in batches of 4, in-process."""
    return train_dcgan.main(["--dataset", str(data), "--image_size", "8", "--gf_dim", "4", "--df_dim", "4",
                             "--z_dim", "4", "--batch_size", "4", "--epoch", "2", "--seed", "0",
                             "--checkpoint_dir", str(tmp_path / "ck"), "--sample_dir", str(tmp_path / "s"),
                             "--log_dir", str(tmp_path / "l")])


def test_training_streams_a_dataset_that_does_not_fit(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "person").mkdir(parents=True)
    for i in range(17):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(data / "person" / f"{i}.png")
    (data / "broken.png").write_bytes(b"not a png")
    monkeypatch.setattr(training, "memory_budget", lambda: 0)  # nothing fits: stream from disk
    code = train_tiny(data, tmp_path)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "decoding on the fly" in out
    # 18 files listed -> 4 steps per epoch (the broken one is only found while streaming)
    restored = model.DCGAN.from_checkpoint(tmp_path / "ck")
    assert int(restored.step) == 8
    assert "skipped 1 unreadable image file" in err and "broken.png" in err


def test_streaming_with_many_unreadable_files_still_finishes_its_epochs(tmp_path, monkeypatch, capsys):
    """15 readable files and 3 broken ones, batches of 4: 18 listed files make 4 steps an epoch,
    and every epoch gets them, so the last step is reached and its checkpoint written."""
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(15):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(data / f"{i}.png")
    for i in range(3):
        (data / f"broken{i}.png").write_bytes(b"not a png")
    monkeypatch.setattr(training, "memory_budget", lambda: 0)
    code = train_tiny(data, tmp_path)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Done: 8 steps" in out and "-" not in out.split("Done:")[1].split("steps")[0]
    assert int(model.DCGAN.from_checkpoint(tmp_path / "ck").step) == 8
    assert "skipped 3 unreadable image files" in err


def test_losses_are_read_back_in_groups_and_every_step_reaches_tensorboard(tmp_path, monkeypatch, capsys):
    """With the host reading back at most 3 steps late and no time limit on it: 4 steps an epoch,
    8 in all, are read in groups of 3, 1 (the epoch's end), 3, 1 (the last step, saved); every
    step's four losses are in the TensorBoard log, at their own step."""
    import tensorflow as tf
    rng = np.random.default_rng(2)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(data / f"{i}.png")
    monkeypatch.setattr(training, "READ_BACK_STEPS", 3)
    monkeypatch.setattr(training, "READ_BACK_SECONDS", math.inf)
    groups = []
    read_back = training.Trainer._read_back
    monkeypatch.setattr(training.Trainer, "_read_back",
                        lambda self, pending, bar: groups.append([s for s, _ in pending]) or read_back(self, pending, bar))
    assert train_tiny(data, tmp_path) == 0, capsys.readouterr().err
    assert [g for g in groups if g] == [[1, 2, 3], [4], [5, 6, 7], [8]]
    logged = {}
    for path in (tmp_path / "l").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss"):
                    logged.setdefault(value.tag, []).append(event.step)
    assert {tag: sorted(steps) for tag, steps in logged.items()} == \
        {tag: list(range(1, 9)) for tag in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")}


# -- TrainingSettings: the one place for each default and range -----------------------------

ORIGINAL_FLAGS = dict(epoch=25, learning_rate=0.0002, beta1=0.5, train_size=math.inf, batch_size=64, image_size=None,
                      dataset="lfw-aligned-64", checkpoint_dir="checkpoint", sample_dir="samples")
PORT_FLAGS = dict(log_dir="logs", z_dim=None, gf_dim=None, df_dim=None, c_dim=None, crop=False, input_height=None, seed=None,
                  sample_every=100, save_every=500, xla=False, time_limit=None, strategy="default",
                  mixed_precision="auto", ema_decay=0.999, encoder_steps=1500)


def test_the_flags_keep_their_names_and_defaults_and_become_the_settings():
    args = train_dcgan.parse_args([])
    assert vars(args) == {**ORIGINAL_FLAGS, **PORT_FLAGS}
    assert train_dcgan.settings_from_args(args) == training_settings.TrainingSettings()
    settings = train_dcgan.settings_from_args(train_dcgan.parse_args(
        ["--epoch", "3", "--beta1", "0", "--time_limit", "1.5", "--crop", "--c_dim", "1", "--strategy", "mirrored"]))
    assert (settings.epoch, settings.beta1, settings.time_limit, settings.crop, settings.c_dim, settings.strategy) == \
        (3, 0.0, 1.5, True, 1, "mirrored")


@pytest.mark.parametrize("name, value, message", [
    ("epoch", 0, "epoch must be an integer >= 1, not 0"),
    ("batch_size", 2.0, "batch_size must be an integer >= 1, not 2.0"),
    ("sample_every", True, "sample_every must be an integer >= 1, not True"),
    ("learning_rate", 0.0, "learning_rate must be a number in (0, inf), not 0.0"),
    ("learning_rate", math.nan, "learning_rate must be a number in (0, inf), not nan"),
    ("beta1", 1.0, "beta1 must be a number in [0, 1), not 1.0"),
    ("train_size", 0.5, "train_size must be a number in [1, inf], not 0.5"),
    ("image_size", 12, "image_size must be a power of two >= 8 or None, not 12"),
    ("z_dim", -3, "z_dim must be an integer >= 1 or None, not -3"),
    ("c_dim", 2, "c_dim must be one of 1, 3 or None, not 2"),
    ("seed", "0", "seed must be an integer or None, not '0'"),
    ("time_limit", 0, "time_limit must be a number in (0, inf) or None, not 0"),
    ("crop", 1, "crop must be True or False, not 1"),
    ("dataset", None, "dataset must be a path, not None"),
    ("strategy", "tpu", "strategy must be one of default, mirrored, multiworker, not 'tpu'"),
    ("mixed_precision", "float8", "mixed_precision must be one of auto, off, float16, bfloat16, not 'float8'"),
    ("encoder_steps", -1, "encoder_steps must be an integer >= 0, not -1"),
])
def test_settings_refuse_bad_values_in_one_line(name, value, message):
    with pytest.raises(ValueError) as error:
        training_settings.TrainingSettings(**{name: value})
    assert str(error.value) == message


def test_every_setting_has_a_rule_and_its_flag_refuses_what_the_rule_refuses(capsys):
    from dcgan_completion import distribute
    assert list(training_settings.RULES) == [f.name for f in dataclasses.fields(training_settings.TrainingSettings)]
    assert training_settings.STRATEGIES == distribute.STRATEGIES
    assert training_settings.PRECISIONS == ("auto", *distribute.PRECISIONS)
    for flag, text in [("--epoch", "0"), ("--beta1", "1"), ("--train_size", "0.5"), ("--image_size", "12"),
                       ("--time_limit", "0"), ("--c_dim", "2"), ("--strategy", "tpu"), ("--learning_rate", "inf")]:
        with pytest.raises(SystemExit):
            train_dcgan.parse_args([flag, text])
        assert f"argument {flag}: " in capsys.readouterr().err


def test_the_script_parses_its_flags_and_checks_the_dataset_before_tensorflow_starts(tmp_path):
    """training.py imports TensorFlow on first use: the settings' defaults cost no start-up."""
    code = ("import sys, train_dcgan\n"
            "try:\n    train_dcgan.main(['--dataset', sys.argv[1]])\n"
            "except SystemExit as exit_:\n    print(exit_.code, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert f"error: dataset folder {tmp_path / 'missing'} does not exist" in result.stderr
