"""train_dcgan.py end to end: training, outputs, resuming, Ctrl-C, bad inputs, NaN.

The subprocesses are few (each costs a TensorFlow start-up): one training run and its
resumption share a module-scoped fixture.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import train_dcgan
import utils
from dcgan_completion.networks.storage import latest_checkpoint
from model import DCGAN

ROOT = Path(__file__).resolve().parents[1]
SCALARS = ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
SMALL = ["--image_size", "16", "--gf_dim", "8", "--df_dim", "8", "--z_dim", "16", "--batch_size", "8",
         "--sample_every", "2", "--save_every", "3", "--seed", "0"]


def make_dataset(folder: Path, count: int, size: int = 20, corrupt: bool = False, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        path = folder / ("sub" if i % 3 == 0 else "") / f"img_{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    if corrupt:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_dcgan.py", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def scalar_events(log_dir: Path) -> dict:
    """{event file name: {tag: {step: value}}} for the four loss scalars."""
    found = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        scalars = {}
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag in SCALARS:
                    scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
        found[path.name] = scalars
    return found


def check_scalars(scalars: dict, steps: list) -> None:
    assert set(scalars) == set(SCALARS)
    for tag in SCALARS:
        assert sorted(scalars[tag]) == steps, tag
        assert all(np.isfinite(v) for v in scalars[tag].values())
    for step in steps:
        assert scalars["d_loss"][step] == pytest.approx(scalars["d_loss_real"][step] + scalars["d_loss_fake"][step],
                                                        rel=1e-5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train 2 epochs (6 steps) on 24 images + 1 corrupt file, then resume to 3 epochs."""
    base = tmp_path_factory.mktemp("cli")
    data, ckpt, samples, logs = base / "D", base / "C", base / "S", base / "L"
    make_dataset(data, 24, corrupt=True)
    dirs = ["--dataset", str(data), "--checkpoint_dir", str(ckpt), "--sample_dir", str(samples),
            "--log_dir", str(logs)]
    first = cli(*SMALL, "--epoch", "2", *dirs)
    result = dict(base=base, data=data, ckpt=ckpt, samples=samples, logs=logs, first=first)
    result["first_checkpoints"] = sorted(p.name for p in ckpt.glob("*")) if ckpt.exists() else []
    result["first_samples"] = sorted(p.name for p in samples.glob("*")) if samples.exists() else []
    result["first_events"] = scalar_events(logs) if logs.exists() else {}
    encoder_json = ckpt / "encoder" / "encoder.json"
    result["first_encoder"] = json.loads(encoder_json.read_text()) if encoder_json.exists() else {}
    if first.returncode == 0:
        trained = DCGAN.from_checkpoint(ckpt)
        result["first_step"] = int(trained.step)
        result["first_sample_z"] = trained.sample_z.numpy()
        result["first_generated"] = trained.generate().numpy()
    result["second"] = cli(*SMALL, "--epoch", "3", *dirs)
    return result


def test_training_run(runs):
    first = runs["first"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    # The corrupt file: one warning naming it and counting it; the 24 others train.
    warnings = [line for line in first.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "skipped 1 unreadable image file" in warnings[0] and str(runs["data"] / "broken.png") in warnings[0]
    assert "Done: 6 steps" in first.stdout
    assert runs["first_step"] == 6
    # Then the encoder for completion's start: as many steps as G trained (6), its scalars in logs/encoder.
    assert f"Encoder: 6 steps on G's samples, in {runs['ckpt'] / 'encoder'}" in first.stdout
    assert runs["first_encoder"]["steps"] == 6
    # --mixed_precision auto (the default) keeps float32 for training, says why and which kernels it
    # measured faster (now, or earlier in this test session's cache), in one line.
    assert re.search(r"^precision: float32 \(auto: training keeps float32: a bfloat16-trained model.*; "
                     r"float32( \((phase convolutions|the image layer by phases)\))? "
                     r"measured (fastest|[0-9.]+x the speed of float32).*; "
                     r"measured (now|on \d{4}-\d{2}-\d{2}), remembered in ",
                     first.stdout, re.M), first.stdout


def test_training_checkpoints(runs):
    names = runs["first_checkpoints"]
    assert "checkpoint" in names and "dcgan.json" in names
    assert {"DCGAN.model-3.index", "DCGAN.model-6.index"} <= set(names)
    assert not [n for n in names if n.startswith(".") or "temp" in n]
    assert json.loads((runs["ckpt"] / "dcgan.json").read_text()) == dict(image_size=16, z_dim=16, gf_dim=8,
                                                                         df_dim=8, c_dim=3)


def test_training_samples(runs):
    # Every 2 steps: steps 2, 4 and 6 are (epoch 0, index 1), (1, 0) and (1, 2).
    assert runs["first_samples"] == ["train_00_0001.png", "train_01_0000.png", "train_01_0002.png"]
    grid = np.asarray(Image.open(runs["samples"] / "train_01_0002.png"))
    assert grid.shape == (128, 128, 3)  # 8x8 tiles of 16x16
    tiles = grid.reshape(8, 16, 8, 16, 3).transpose(0, 2, 1, 3, 4).reshape(64, 16, 16, 3)
    # 64 z's: after 6 steps the average of G's weights (the default) still gives near-flat tiles, some
    # of which round to the same bytes; most differ.
    assert len({t.tobytes() for t in tiles}) >= 32
    # It is the sampler's G(sample_z) (the average of G's weights) of the step-6 checkpoint.
    expected = utils.make_grid(utils.to_uint8(runs["first_generated"]))
    assert np.abs(grid.astype(int) - expected.astype(int)).max() <= 1


def test_training_events(runs):
    events = runs["first_events"]
    assert len(events) == 1
    (scalars,) = events.values()
    check_scalars(scalars, [1, 2, 3, 4, 5, 6])


def test_resume(runs):
    second = runs["second"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert re.search(r"Resuming from \S*DCGAN\.model-6 at step 6", second.stdout), second.stdout
    assert "Done: 9 steps" in second.stdout
    # The encoder resumes too, to the new model's 9 steps.
    assert f"Resuming the encoder of {runs['ckpt']} at step 6" in second.stdout
    assert json.loads((runs["ckpt"] / "encoder" / "encoder.json").read_text())["steps"] == 9
    assert len(list((runs["logs"] / "encoder").glob("events.out.tfevents.*"))) == 2
    events = scalar_events(runs["logs"])
    new = [scalars for name, scalars in events.items() if name not in runs["first_events"]]
    assert len(new) == 1
    check_scalars(new[0], [7, 8, 9])
    resumed = DCGAN.from_checkpoint(runs["ckpt"])
    assert int(resumed.step) == 9 and int(resumed.epoch) == 2
    np.testing.assert_array_equal(resumed.sample_z.numpy(), runs["first_sample_z"])
    assert sorted(p.name for p in runs["ckpt"].glob("*.index")) == \
        ["DCGAN.model-3.index", "DCGAN.model-6.index", "DCGAN.model-9.index"]
    assert {"train_02_0001.png", "train_02_0002.png"} <= {p.name for p in runs["samples"].glob("*.png")}


def test_ctrl_c_saves_a_checkpoint(tmp_path):
    data, ckpt, samples = tmp_path / "D", tmp_path / "C", tmp_path / "S"
    make_dataset(data, 4)
    out, err = open(tmp_path / "out.txt", "w"), open(tmp_path / "err.txt", "w")
    process = subprocess.Popen(
        [sys.executable, "train_dcgan.py", "--image_size", "8", "--gf_dim", "4", "--df_dim", "4", "--z_dim", "4",
         "--batch_size", "4", "--epoch", "100000", "--sample_every", "1", "--save_every", "100000",
         "--dataset", str(data), "--checkpoint_dir", str(ckpt), "--sample_dir", str(samples),
         "--log_dir", str(tmp_path / "L")], cwd=ROOT, env=ENV, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 90
        while not (samples / "train_00_0000.png").exists():
            assert process.poll() is None, (tmp_path / "err.txt").read_text()
            assert time.monotonic() < deadline, "no first sample"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        out.close()
        err.close()
    stdout, stderr = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    match = re.search(r"Stopped by SIGINT: checkpoint saved at step (\d+)", stdout)
    assert match, stdout
    step = int(match.group(1))
    assert step >= 1
    assert latest_checkpoint(ckpt) == str(ckpt / f"DCGAN.model-{step}")
    assert int(DCGAN.from_checkpoint(ckpt).step) == step


@pytest.mark.parametrize("case", ["missing", "empty", "image_size"])
def test_bad_inputs_fail_in_one_line(tmp_path, case):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    dataset = {"missing": tmp_path / "nowhere", "empty": tmp_path / "empty", "image_size": tmp_path / "empty"}[case]
    extra = ["--image_size", "12"] if case == "image_size" else []
    result = cli("--dataset", str(dataset), "--checkpoint_dir", str(tmp_path / "C"), *extra, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    if case == "image_size":
        assert "--image_size" in result.stderr and "power of two" in result.stderr
    else:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and str(dataset) in lines[0], result.stderr
    assert not (tmp_path / "C").exists()


def test_dataset_smaller_than_a_batch(tmp_path):
    make_dataset(tmp_path / "D", 3, size=8)
    result = cli("--dataset", str(tmp_path / "D"), "--batch_size", "4", "--image_size", "8", "--gf_dim", "2",
                 "--df_dim", "2", "--z_dim", "2", "--checkpoint_dir", str(tmp_path / "C"), timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fewer than one batch of 4" in errors[0] and str(tmp_path / "D") in errors[0]
    assert latest_checkpoint(tmp_path / "C") is None


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    """In process: the loss turns NaN at step 3, after the checkpoint of step 2."""
    original = DCGAN.train_step

    def train_step(self, images):
        out = original(self, images)
        if int(self.step) == 3:
            out = dict(out, d_loss=tf.constant(float("nan")))
        return out

    monkeypatch.setattr(DCGAN, "train_step", train_step)
    make_dataset(tmp_path / "D", 8, size=8)
    ckpt = tmp_path / "C"
    code = train_dcgan.main(["--image_size", "8", "--gf_dim", "2", "--df_dim", "2", "--z_dim", "2", "--batch_size",
                             "4", "--epoch", "5", "--save_every", "2", "--sample_every", "100", "--seed", "1",
                             "--dataset", str(tmp_path / "D"), "--checkpoint_dir", str(ckpt),
                             "--sample_dir", str(tmp_path / "S"), "--log_dir", str(tmp_path / "L")])
    captured = capsys.readouterr()
    assert code == 1
    message = [line for line in (captured.out + captured.err).splitlines() if "became nan" in line]
    assert len(message) == 1 and message[0].startswith("error: d_loss became nan at step 3; stopped without saving")
    assert "last good checkpoint (step 2)" in message[0] and str(ckpt) in message[0]
    assert sorted(p.name for p in ckpt.glob("*.index")) == ["DCGAN.model-2.index"]
    assert int(DCGAN.from_checkpoint(ckpt).step) == 2
    scalars = next(iter(scalar_events(tmp_path / "L").values()))
    assert sorted(scalars["d_loss"]) == [1, 2]


def test_real_nan_through_the_cli(tmp_path):
    """A learning rate of 1e30 blows the weights up in the first step's G updates."""
    make_dataset(tmp_path / "D", 4, size=8)
    result = cli("--dataset", str(tmp_path / "D"), "--learning_rate", "1e30", "--batch_size", "4", "--image_size",
                 "8", "--gf_dim", "2", "--df_dim", "2", "--z_dim", "2", "--epoch", "3", "--seed", "0",
                 "--checkpoint_dir", str(tmp_path / "C"), "--sample_dir", str(tmp_path / "S"),
                 "--log_dir", str(tmp_path / "L"), timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert re.search(r"error: [dg]_loss became (nan|-?inf) at step 1; stopped without saving\. No checkpoint had "
                     r"been saved yet; try a lower --learning_rate\.", result.stderr + result.stdout)
    assert latest_checkpoint(tmp_path / "C") is None
