"""utils.py: reading images of every kind, the dataset listing, sample grids."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import utils
from dcgan_completion import runtime


def test_read_rgb_grayscale(tmp_path):
    gray = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    rgb = utils.read_rgb(tmp_path / "g.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 6, 3)
    np.testing.assert_array_equal(rgb, np.repeat(gray[:, :, None], 3, axis=2))


def test_read_rgb_rgba_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)   # opaque
    rgba[0, 1] = (200, 0, 0, 0)      # transparent: white
    rgba[0, 2] = (0, 0, 0, 0)        # transparent black: white too
    rgba[1, :] = (0, 100, 200, 128)  # half transparent: mixed with white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = utils.read_rgb(tmp_path / "a.png").astype(int)
    alpha = 128 / 255
    mixed = np.array([0, 100, 200]) * alpha + 255 * (1 - alpha)
    np.testing.assert_array_equal(rgb[0, 0], (10, 20, 30))
    np.testing.assert_array_equal(rgb[0, 1:], 255)
    assert np.abs(rgb[1] - mixed).max() <= 1


def test_read_rgb_palette(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 7, 8, 9]
    indices = np.array([[0, 1], [2, 3]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette + [0] * (768 - len(palette)))
    image.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as check:
        assert check.mode == "P"
    rgb = utils.read_rgb(tmp_path / "p.png")
    np.testing.assert_array_equal(rgb, np.array(palette, np.uint8).reshape(4, 3)[indices])


def test_read_rgb_16_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 25700], [32896, 65535, 1000]], np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as check:
        assert check.mode.startswith("I")
    rgb = utils.read_rgb(tmp_path / "d.png")
    assert rgb.dtype == np.uint8
    expected = np.rint(values / 65535 * 255).astype(np.uint8)  # 65535 -> 255, 25700 -> 100
    np.testing.assert_array_equal(rgb, np.repeat(expected[:, :, None], 3, axis=2))


def test_corrupt_files_raise_image_error_naming_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all")
    buffer = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer)
    (tmp_path / "cut.png").write_bytes(buffer.read_bytes()[:300])
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name in ("junk.png", "cut.png", "empty.jpg", "missing.png"):
        with pytest.raises(utils.ImageError, match=name):
            utils.read_rgb(tmp_path / name)
    array, loaded, errors = utils.load_images([tmp_path / "full.png", tmp_path / "junk.png"], 8, progress=False)
    assert array.shape == (1, 8, 8, 3) and loaded == [tmp_path / "full.png"]
    assert len(errors) == 1 and "junk.png" in errors[0]


def test_load_image_crop_and_resize(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)  # wide: the crop keeps columns 10..29
    image[:, :10] = (255, 0, 0)
    image[:, 30:] = (0, 0, 255)
    Image.fromarray(image).save(tmp_path / "wide.png")
    np.testing.assert_array_equal(utils.load_image(tmp_path / "wide.png", 20, crop=True), image[:, 10:30])
    tall = np.ascontiguousarray(image.transpose(1, 0, 2))
    Image.fromarray(tall).save(tmp_path / "tall.png")
    np.testing.assert_array_equal(utils.load_image(tmp_path / "tall.png", 20, crop=True), tall[10:30])
    # Without the crop the whole image is squeezed: red on the left, blue on the right.
    squeezed = utils.load_image(tmp_path / "wide.png", 8)
    assert squeezed.shape == (8, 8, 3) and squeezed.dtype == np.uint8
    np.testing.assert_array_equal(squeezed[:, 0], np.tile([255, 0, 0], (8, 1)))
    np.testing.assert_array_equal(squeezed[:, -1], np.tile([0, 0, 255], (8, 1)))
    # Uniform images stay uniform through the resize.
    Image.fromarray(np.full((30, 30, 3), 77, np.uint8)).save(tmp_path / "flat.png")
    np.testing.assert_array_equal(utils.load_image(tmp_path / "flat.png", 16, crop=True), 77)
    # crop=N: the centred N x N square (DCGAN-tensorflow's --input_height N --crop): CelebA's 218x178
    # images cropped to 108 keep rows 55..162 and columns 35..142; a side too big takes the largest square.
    celeba = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    Image.fromarray(celeba).save(tmp_path / "celeba.png")
    np.testing.assert_array_equal(utils.load_image(tmp_path / "celeba.png", 108, crop=108), celeba[55:163, 35:143])
    np.testing.assert_array_equal(utils.load_image(tmp_path / "celeba.png", 178, crop=500), celeba[20:198])


def test_gray_images_read_resize_and_write_in_one_channel(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    Image.fromarray(gray, "L").convert("I;16").save(tmp_path / "gray16.png")
    colour = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    assert np.array_equal(utils.read_image(tmp_path / "gray.png", 1)[:, :, 0], gray)  # values kept exactly
    # Colour to gray: ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B), rounded.
    luma = colour.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(utils.read_image(tmp_path / "colour.png", 1)[:, :, 0] - luma).max() <= 1
    assert [utils.is_single_channel(tmp_path / n) for n in ("gray.png", "gray16.png", "colour.png")] == \
        [True, True, False]
    loaded = utils.load_image(tmp_path / "gray.png", 8, crop=True, channels=1)
    assert loaded.shape == (8, 8, 1) and loaded.dtype == np.uint8
    utils.save_grid(tmp_path / "grid.png", np.stack([loaded, 255 - loaded]), rows=1)
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.mode == "L" and np.array_equal(np.asarray(grid), np.hstack([loaded, 255 - loaded])[:, :, 0])


def test_to_float():
    x = np.array([0, 1, 127, 128, 254, 255], np.uint8)
    y = utils.to_float(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x.astype(np.float64) / 127.5 - 1.0, rtol=0, atol=1e-7)
    assert y[0] == -1.0 and y[-1] == 1.0
    np.testing.assert_array_equal(utils.to_uint8(y), x)  # and back


def test_list_images(tmp_path):
    for name in ("a.png", "b.JPG", "c.jpeg", "notes.txt", "z.gif", ".hidden.png", "x.png.bak",
                 "sub/d.png", "sub/deeper/e.jpg", "sub/.f.png", ".git/g.png", "t/u.png"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    found = utils.list_images(tmp_path)
    expected = [tmp_path / n for n in ("a.png", "b.JPG", "c.jpeg", "sub/d.png", "sub/deeper/e.jpg", "t/u.png")]
    assert found == expected
    assert utils.list_images(tmp_path / "sub") == [tmp_path / "sub/d.png", tmp_path / "sub/deeper/e.jpg"]


def test_save_grid(tmp_path):
    images = np.zeros((64, 4, 5, 3), np.uint8)
    for i in range(64):
        images[i] = (i * 4, 255 - i, i % 7)
    images[5, 1, 2] = (1, 2, 3)
    utils.save_grid(tmp_path / "grid.png", images)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (32, 40, 3)  # 8 rows of 4 pixels, 8 columns of 5
    for i in range(64):
        row, col = divmod(i, 8)
        np.testing.assert_array_equal(grid[row * 4:(row + 1) * 4, col * 5:(col + 1) * 5], images[i])
    # Float images in [-1, 1] are rounded to uint8.
    floats = utils.to_float(images)
    utils.save_grid(tmp_path / "grid2.png", floats)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "grid2.png")), grid)
    # No temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "grid2.png"]


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a private temporary file, but the result is readable like any file."""
    import os
    import stat

    import utils
    path = tmp_path / "out.png"
    utils.save_png(path, np.zeros((4, 4, 3), np.uint8))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
    assert not [p for p in tmp_path.iterdir() if p.name != "out.png"]  # no temporary file left


def test_grids_are_8_to_a_row_as_the_originals_save_images():
    images = np.arange(9 * 2 * 2 * 3, dtype=np.uint8).reshape(9, 2, 2, 3)
    grid = utils.make_grid(images)
    assert grid.shape == (4, 16, 3)  # 2 rows of 8 tiles, not 2 rows of 5
    np.testing.assert_array_equal(grid[2:4, 0:2], images[8])
    assert not grid[2:4, 2:].any()  # the rest of the last row is empty
    assert utils.make_grid(images[:3]).shape == (2, 6, 3)  # fewer than 8: one row


@pytest.mark.parametrize("setting, enabled", [(None, True), ("0", False)])
def test_tensorflow_runs_onednn_kernels_unless_the_user_says_not(setting, enabled):
    """runtime.start() (every script's first step) imports TensorFlow with oneDNN's CPU kernels on (TensorFlow alone turns
    them on only on AVX-512/AMX CPUs); TF_ENABLE_ONEDNN_OPTS=0 from the user keeps TensorFlow's own."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = {k: v for k, v in os.environ.items() if k != runtime.ONEDNN}
    if setting is not None:
        env[runtime.ONEDNN] = setting
    code = ("from dcgan_completion import runtime\nruntime.start()\nfrom tensorflow.python.util import _pywrap_util_port as port\n"
            "print(port.IsMklEnabled())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=Path(utils.__file__).parent, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == str(enabled)


def test_tensorflow_starts_without_keras_which_still_imports_when_used():
    """runtime.start() skips the Keras (and Matplotlib) import that `import tensorflow` makes, a second of
    every start; tf.keras still imports it when something uses it, and TensorFlow works."""
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys\nfrom dcgan_completion import runtime\nruntime.start()\nimport tensorflow as tf\n"
            "print('keras' in sys.modules, 'matplotlib' in sys.modules)\n"
            "print(float(tf.reduce_sum(tf.ones([2, 3]))), tf.keras.layers.Dense(2)(tf.ones([1, 3])).shape)\n"
            "print('keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(utils.__file__).parent, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["False False", "6.0 (1, 2)", "True"]
