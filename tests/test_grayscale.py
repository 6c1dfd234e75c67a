"""Grayscale end to end at 16x16: train_dcgan.py detects a dataset of single-channel images
(or takes --c_dim 1), and complete.py completes in gray on the 1-channel model: grids, masks,
the GIF and final/ are all grayscale, and colour inputs are converted to gray.
"""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

import complete
import train_dcgan
import utils
from dcgan_completion.completion import masks as masking
from model import DCGAN

TINY = ["--image_size", "16", "--z_dim", "4", "--gf_dim", "2", "--df_dim", "2", "--batch_size", "4",
        "--epoch", "1", "--seed", "0", "--sample_every", "1"]
DETECTED = "is single-channel: training a grayscale model (--c_dim 1)."


def write_images(folder: Path, count: int, mode: str, size: int = 16, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        shape = (size, size) if mode == "L" else (size, size, 3)
        path = folder / f"{mode}_{i}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
        paths.append(path)
    return paths


def train(tmp_path: Path, name: str, dataset: Path, *extra: str) -> Path:
    folder = tmp_path / name
    args = TINY + ["--dataset", str(dataset), "--checkpoint_dir", str(folder / "ckpt"),
                   "--sample_dir", str(folder / "samples"), "--log_dir", str(folder / "logs"), *extra]
    assert train_dcgan.main(args) == 0
    return folder


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory):
    """A grayscale dataset (PNG and JPEG), trained without --c_dim."""
    tmp = tmp_path_factory.mktemp("gray")
    write_images(tmp / "data", 3, "L")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L").save(tmp / "data" / "photo.jpg")
    return tmp


def test_a_grayscale_dataset_trains_a_grayscale_model(gray_run, capsys):
    folder = train(gray_run, "run", gray_run / "data")
    out = capsys.readouterr().out
    assert f"Every image in {gray_run / 'data'} {DETECTED}" in out
    assert json.loads((folder / "ckpt" / "dcgan.json").read_text())["c_dim"] == 1
    assert DCGAN.from_checkpoint(folder / "ckpt").c_dim == 1
    with Image.open(folder / "samples" / "train_00_0000.png") as grid:
        assert grid.mode == "L" and grid.size == (8 * 16, 8 * 16)  # the 8x8 grid of G(sample z), in gray


def test_complete_in_gray_on_a_grayscale_model(gray_run, tmp_path):
    checkpoint = gray_run / "run" / "ckpt"
    if not checkpoint.exists():
        pytest.skip("needs test_a_grayscale_dataset_trains_a_grayscale_model's model")
    inputs = write_images(tmp_path / "in", 2, "L", seed=3) + write_images(tmp_path / "in", 1, "RGB", seed=4)
    out = tmp_path / "out"
    assert complete.main(["--checkpointDir", str(checkpoint), "--outDir", str(out), "--nIter", "2",
                          "--outInterval", "1", "--seed", "0", *map(str, inputs)]) == 0
    known = masking.make_mask("center", 16)[:, :, 0] > 0.5
    for path in inputs:
        with Image.open(path) as image:
            truth = np.asarray(image.convert("L"), dtype=int)  # a colour input: Pillow's luma
        with Image.open(out / "final" / f"{path.stem}.png") as done:
            assert done.mode == "L" and done.size == (16, 16)
            done = np.asarray(done, dtype=int)
        assert np.array_equal(done[known], truth[known])  # known pixels kept exactly
        assert np.abs(done - truth)[~known].mean() > 10  # the hole filled by G(z)
        with Image.open(out / "fill" / f"{path.stem}.png") as fill:
            assert fill.mode == "L"
    with Image.open(out / "masked.png") as masked:
        assert masked.mode == "L" and masked.size == (3 * 16, 16)
        assert set(np.unique(np.asarray(masked)[:, :16][~known])) == {128}  # the hole grey, 0 in [-1, 1]
    for grid in ("before.png", "hats_imgs/0000.png", "completed/0002.png"):
        with Image.open(out / grid) as image:
            assert image.mode == "L", grid
    # The lowres mask's block means, in one channel.
    lowres = tmp_path / "lowres"
    assert complete.main(["--checkpointDir", str(checkpoint), "--outDir", str(lowres), "--nIter", "1",
                          "--maskType", "lowres", "--seed", "0", str(inputs[0])]) == 0
    with Image.open(lowres / "lowres.png") as image, Image.open(inputs[0]) as source:
        means = np.asarray(source, dtype=float).reshape(2, 8, 2, 8).mean(axis=(1, 3))
        assert image.mode == "L" and np.abs(np.asarray(image, dtype=float)[::8, ::8] - means).max() <= 0.5
    frames = iio.imread(out / "completion.gif", index=None)  # (Pillow merges frames that did not change)
    assert frames.shape[-3:-1] == (16, 3 * 16)
    if frames.ndim == 4:  # GIF readers may give RGB(A): every frame is still gray
        assert np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(frames[..., 1], frames[..., 2])


def test_c_dim_1_reads_a_colour_dataset_in_gray_and_mixed_datasets_stay_colour(tmp_path, capsys):
    from dcgan_completion.training.loop import Trainer
    colour = tmp_path / "colour"
    paths = write_images(colour, 4, "RGB", size=8)
    args = train_dcgan.parse_args(TINY + ["--image_size", "8", "--c_dim", "1", "--dataset", str(colour)])
    assert args.c_dim == 1
    model = DCGAN(image_size=8, z_dim=4, gf_dim=2, df_dim=2, c_dim=1, seed=0)
    dataset, steps = Trainer(model, train_dcgan.settings_from_args(args)).dataset()
    batch = np.concatenate([b.numpy() for b in dataset.take(steps)])
    assert batch.shape == (4, 8, 8, 1)
    lumas = {np.asarray(Image.open(p).convert("L")).astype(np.float32).tobytes() for p in paths}
    assert {np.rint((image[:, :, 0] + 1) * 127.5).astype(np.float32).tobytes() for image in batch} == lumas
    mixed = tmp_path / "mixed"
    write_images(mixed, 3, "L", size=8)
    assert utils.dataset_channels(utils.list_images(mixed)) == 1
    write_images(mixed, 1, "RGB", size=8)
    assert utils.dataset_channels(utils.list_images(mixed)) == 3
    with pytest.raises(SystemExit):
        train_dcgan.parse_args(["--c_dim", "2"])
    assert "--c_dim: invalid choice: 2" in capsys.readouterr().err
