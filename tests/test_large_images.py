"""128x128 end to end with tiny widths: train_dcgan.py trains and saves, complete.py completes
from that checkpoint; the 256x256 model's shapes (the same four stride-2 layers, from 16x16)."""
from __future__ import annotations

import json

import numpy as np
import tensorflow as tf
from PIL import Image

import complete
import train_dcgan
from dcgan_completion.completion import masks as masking
from model import DCGAN

SIZE = 128


def test_train_and_complete_at_128(tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(tmp_path / "data" / f"{i}.png")
    checkpoint = tmp_path / "ckpt"
    assert train_dcgan.main(["--dataset", str(tmp_path / "data"), "--image_size", str(SIZE), "--z_dim", "4",
                             "--gf_dim", "2", "--df_dim", "2", "--batch_size", "2", "--epoch", "1", "--seed", "0",
                             "--checkpoint_dir", str(checkpoint), "--sample_dir", str(tmp_path / "samples"),
                             "--log_dir", str(tmp_path / "logs")]) == 0
    assert "Done: 1 steps" in capsys.readouterr().out
    assert json.loads((checkpoint / "dcgan.json").read_text()) == dict(image_size=SIZE, z_dim=4, gf_dim=2, df_dim=2,
                                                                       c_dim=3)
    with Image.open(tmp_path / "samples" / "train_00_0000.png") as grid:
        assert grid.size == (8 * SIZE, 8 * SIZE)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "out"
    assert complete.main(["--checkpointDir", str(checkpoint), "--outDir", str(out), "--nIter", "2",
                          "--outInterval", "2", "--maskType", "left", "--seed", "0", str(photo)]) == 0
    done = np.asarray(Image.open(out / "final" / "photo.png")).astype(int)
    original = np.asarray(Image.open(photo)).astype(int)
    assert done.shape == (SIZE, SIZE, 3)
    assert np.array_equal(done[:, SIZE // 2:], original[:, SIZE // 2:])  # the known right half kept
    assert np.abs(done - original)[:, :SIZE // 2].mean() > 10  # the left half filled by G(z)


def test_the_256_model_starts_at_16x16_and_runs():
    model = DCGAN(image_size=256, z_dim=4, gf_dim=2, df_dim=2)
    assert model.generator.g_h0_lin.Matrix.shape == (4, 16 * 16 * 16)  # 16x16 x gf_dim*8
    assert model.discriminator.d_h3_lin.Matrix.shape == (16 * 16 * 16, 1)  # 16x16 x df_dim*8, flattened
    images = model.generate(tf.random.uniform([2, 4], -1, 1))
    assert images.shape == (2, 256, 256, 3) and float(tf.reduce_max(tf.abs(images))) <= 1.0
    assert model.discriminator(images, training=False)[1].shape == (2, 1)
    assert masking.make_mask("center", 256).shape[:2] == (256, 256)
