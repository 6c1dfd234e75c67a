"""networks/storage.py and DCGAN.load: the original's TensorFlow 1 checkpoints.

Each checkpoint here is written the way the original wrote it: its graph is built with
tf.compat.v1 in graph mode under the original's variable scopes (conv2d, deconv2d,
linear and tf.contrib.layers.batch_norm's variables), every variable gets random
values, and tf.compat.v1.train.Saver saves DIR/DCGAN.model-N. The same graph gives
G(z) and D(x) with moving batch-norm statistics, which the port must reproduce after
loading. Only this file uses tf.compat.v1.
"""
from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import convert_checkpoint  # noqa: E402
import train_dcgan  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402
from dcgan_completion.networks import layouts  # noqa: E402
from dcgan_completion.networks import storage  # noqa: E402
from dcgan_completion.networks.storage import CheckpointError  # noqa: E402
from dcgan_completion.networks.storage import infer_config, latest_checkpoint, read_config
from model import DCGAN  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
BAMOS = REFERENCE / "bamos_checkpoint"
ORIGINAL_NOTE = "(the original's format: optimiser state starts fresh)"
DEFAULTS = dict(image_size=64, z_dim=100, gf_dim=64, df_dim=64, c_dim=3)
SMALL = dict(image_size=16, z_dim=16, gf_dim=8, df_dim=8, c_dim=3)
GRAY = dict(image_size=32, z_dim=8, gf_dim=4, df_dim=4, c_dim=1)
RTOL = 1e-5


# ----------------------------------------------------------------------------
# The original's graph, in TensorFlow 1 graph mode
# ----------------------------------------------------------------------------

v1 = tf.compat.v1


def _conv2d(x, output_dim, name):
    """The original's conv2d: 5x5, stride 2, SAME; w truncated normal, biases."""
    with v1.variable_scope(name):
        w = v1.get_variable("w", [5, 5, x.shape[-1], output_dim],
                            initializer=v1.truncated_normal_initializer(stddev=0.02))
        conv = tf.nn.conv2d(x, w, strides=[1, 2, 2, 1], padding="SAME")
        biases = v1.get_variable("biases", [output_dim], initializer=v1.constant_initializer(0.0))
        return tf.reshape(tf.nn.bias_add(conv, biases), conv.shape)


def _deconv2d(x, output_shape, name):
    """The original's conv2d_transpose: w is [5, 5, out, in]."""
    with v1.variable_scope(name):
        w = v1.get_variable("w", [5, 5, output_shape[-1], x.shape[-1]],
                            initializer=v1.random_normal_initializer(stddev=0.02))
        deconv = tf.nn.conv2d_transpose(x, w, output_shape=output_shape, strides=[1, 2, 2, 1], padding="SAME")
        biases = v1.get_variable("biases", [output_shape[-1]], initializer=v1.constant_initializer(0.0))
        return tf.reshape(tf.nn.bias_add(deconv, biases), deconv.shape)


def _linear(x, output_size, scope):
    """The original's linear: Matrix, bias."""
    with v1.variable_scope(scope):
        matrix = v1.get_variable("Matrix", [x.shape[1], output_size], tf.float32,
                                 v1.random_normal_initializer(stddev=0.02))
        bias = v1.get_variable("bias", [output_size], initializer=v1.constant_initializer(0.0))
        return tf.matmul(x, matrix) + bias


def _batch_norm(x, name):
    """tf.contrib.layers.batch_norm(scale=True, epsilon=1e-5)'s variables, in inference mode."""
    with v1.variable_scope(name):
        channels = x.shape[-1]
        beta = v1.get_variable("beta", [channels], initializer=v1.zeros_initializer())
        gamma = v1.get_variable("gamma", [channels], initializer=v1.ones_initializer())
        moving_mean = v1.get_variable("moving_mean", [channels], initializer=v1.zeros_initializer(),
                                      trainable=False)
        moving_variance = v1.get_variable("moving_variance", [channels], initializer=v1.ones_initializer(),
                                          trainable=False)
        return (x - moving_mean) / tf.sqrt(moving_variance + 1e-5) * gamma + beta


def _lrelu(x, leak=0.2):
    return tf.maximum(x, leak * x)


def _generator(z, batch, image_size, gf_dim, c_dim):
    s2, s4, s8, s16 = (image_size // f for f in (2, 4, 8, 16))  # 32, 16, 8, 4 at 64x64
    with v1.variable_scope("generator"):
        h0 = tf.reshape(_linear(z, gf_dim * 8 * s16 * s16, "g_h0_lin"), [-1, s16, s16, gf_dim * 8])
        h0 = tf.nn.relu(_batch_norm(h0, "g_bn0"))
        h1 = tf.nn.relu(_batch_norm(_deconv2d(h0, [batch, s8, s8, gf_dim * 4], "g_h1"), "g_bn1"))
        h2 = tf.nn.relu(_batch_norm(_deconv2d(h1, [batch, s4, s4, gf_dim * 2], "g_h2"), "g_bn2"))
        h3 = tf.nn.relu(_batch_norm(_deconv2d(h2, [batch, s2, s2, gf_dim], "g_h3"), "g_bn3"))
        return tf.nn.tanh(_deconv2d(h3, [batch, image_size, image_size, c_dim], "g_h4"))


def _discriminator(image, df_dim, batch_norms=("d_bn1", "d_bn2", "d_bn3"), last="d_h3_lin"):
    """The article's discriminator; the later revision names its batch norms and last layer otherwise."""
    with v1.variable_scope("discriminator"):
        h = _lrelu(_conv2d(image, df_dim, "d_h0_conv"))
        for i, batch_norm in enumerate(batch_norms, start=1):
            h = _lrelu(_batch_norm(_conv2d(h, df_dim * 2 ** i, f"d_h{i}_conv"), batch_norm))
        flat = int(np.prod(h.shape[1:]))  # the original's hard-coded 8192 at 64x64
        logits = _linear(tf.reshape(h, [-1, flat]), 1, last)
        return tf.nn.sigmoid(logits), logits


def _generator_later(z, batch, image_size, gf_dim, c_dim):
    """The later revision's generator: from 4x4, widths gf_dim * 8, 8, 4, 2, ... built in its loop."""
    with v1.variable_scope("generator"):
        h = tf.reshape(_linear(z, gf_dim * 8 * 4 * 4, "g_h0_lin"), [-1, 4, 4, gf_dim * 8])
        h = tf.nn.relu(_batch_norm(h, "g_bn0"))
        i, depth_mul, size = 1, 8, 8
        while size < image_size:
            h = _deconv2d(h, [batch, size, size, gf_dim * depth_mul], f"g_h{i}")
            h = tf.nn.relu(_batch_norm(h, f"g_bn{i}"))
            i, depth_mul, size = i + 1, depth_mul // 2, size * 2
        return tf.nn.tanh(_deconv2d(h, [batch, size, size, c_dim], f"g_h{i}"))


def _discriminator_later(image, df_dim):
    """The later revision's discriminator: batch norms d_bn0..d_bn2, last layer d_h4_lin."""
    return _discriminator(image, df_dim, batch_norms=("d_bn0", "d_bn1", "d_bn2"), last="d_h4_lin")


NETWORKS = {"article": (_generator, _discriminator), "later": (_generator_later, _discriminator_later)}


def _random_value(rng, name, shape):
    """Random values of a sensible scale for each kind of variable."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "moving_variance":
        return rng.uniform(0.5, 2.0, shape)
    if leaf == "gamma":
        return rng.uniform(0.5, 1.5, shape)
    if leaf in ("w", "Matrix"):
        fan_in = shape[0] if leaf == "Matrix" else (25 * shape[2] if "/d_" in name else 25 * shape[3] / 4)
        return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
    return rng.normal(0.0, 0.1, shape)  # biases, bias, beta, moving_mean


def write_tf1_checkpoint(folder: Path, step: int, image_size: int, z_dim: int, gf_dim: int, df_dim: int,
                         c_dim: int, batch: int = 2, seed: int = 0, layout: str = "article",
                         adam: bool = False) -> dict:
    """Save the original's model (of the article's or the later layout) with random values to
    folder/DCGAN.model-STEP; return its outputs. adam: also its Adam slots, as the original's
    Saver wrote them after training."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, (batch, z_dim)).astype(np.float32)
    x = rng.uniform(-1, 1, (batch, image_size, image_size, c_dim)).astype(np.float32)
    generator, discriminator = NETWORKS[layout]
    with tf.Graph().as_default() as graph:
        images = generator(tf.constant(z), batch, image_size, gf_dim, c_dim)
        _, logits = discriminator(tf.constant(x), df_dim)
        if adam:
            v1.train.AdamOptimizer(0.0002, beta1=0.5).minimize(tf.reduce_mean(logits) + tf.reduce_mean(images))
        variables = v1.global_variables()
        placeholders = [v1.placeholder(tf.float32, var.shape) for var in variables]
        assigns = [v1.assign(var, ph) for var, ph in zip(variables, placeholders)]
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            feed = {ph: _random_value(rng, var.op.name, var.shape.as_list())
                    for var, ph in zip(variables, placeholders)}
            sess.run(assigns, feed)
            images, logits = sess.run([images, logits])
            folder.mkdir(parents=True, exist_ok=True)
            prefix = saver.save(sess, str(folder / "DCGAN.model"), global_step=step)
    hparams = dict(image_size=image_size, z_dim=z_dim, gf_dim=gf_dim, df_dim=df_dim, c_dim=c_dim)
    return dict(folder=folder, prefix=prefix, step=step, z=z, x=x, images=images, logits=logits,
                hparams=hparams if layout == "article" else dict(hparams, layout=layout))


@pytest.fixture(scope="module")
def tf1_64(tmp_path_factory):
    return write_tf1_checkpoint(tmp_path_factory.mktemp("tf1_64"), 60502, **DEFAULTS)


@pytest.fixture(scope="module")
def tf1_small(tmp_path_factory):
    return write_tf1_checkpoint(tmp_path_factory.mktemp("tf1_small"), 7, **SMALL, batch=3, seed=1)


@pytest.fixture(scope="module")
def tf1_gray(tmp_path_factory):
    return write_tf1_checkpoint(tmp_path_factory.mktemp("tf1_gray"), 12, **GRAY, seed=2)


@pytest.fixture(scope="module")
def tf1_later(tmp_path_factory):
    """The later revision's 64x64 model."""
    return write_tf1_checkpoint(tmp_path_factory.mktemp("tf1_later"), 12001, **DEFAULTS, seed=3, layout="later")


@pytest.fixture(scope="module")
def tf1_later_small(tmp_path_factory):
    """A small one, Adam's slots included, as the later revision's Saver wrote them after training."""
    return write_tf1_checkpoint(tmp_path_factory.mktemp("tf1_later_small"), 9, **SMALL, batch=3, seed=4,
                                layout="later", adam=True)


def assert_close(actual, expected, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    error = np.max(np.abs(actual - expected)) / np.max(np.abs(expected))
    assert error <= RTOL, f"{what}: relative difference {error:.2e} > {RTOL}"


def assert_same_outputs(model: DCGAN, ref: dict):
    images = model.generator(tf.constant(ref["z"]), training=False).numpy()
    _, logits = model.discriminator(tf.constant(ref["x"]), training=False)
    # The outputs are not degenerate: images neither constant nor saturated, logits differ per image.
    assert images.std() > 0.1 and np.mean(np.abs(ref["images"]) < 0.99) > 0.5
    assert np.ptp(ref["logits"]) > 1e-3
    assert_close(images, ref["images"], "G(z)")
    assert_close(logits.numpy(), ref["logits"], "D(x) logits")


def copy_checkpoint(ref: dict, folder: Path) -> Path:
    shutil.copytree(ref["folder"], folder)
    return folder


def run_script(*args, cwd=ROOT, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def error_line(stderr: str) -> str:
    """The one `error: ...` line of a failed command; no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def write_dataset(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------
# Names, shapes and hyper-parameters
# ----------------------------------------------------------------------------

def test_written_checkpoint_has_the_ports_names_and_shapes(tf1_64):
    written = dict(tf.train.list_variables(tf1_64["prefix"]))
    port = {storage.variable_name(v): v.shape.as_list() for v in DCGAN(**DEFAULTS).model_variables}
    assert written == port
    assert len(written) == 48 and written["discriminator/d_h3_lin/Matrix"] == [8192, 1]
    assert (tf1_64["folder"] / "checkpoint").exists()
    assert Path(tf1_64["prefix"]).name == "DCGAN.model-60502"


def test_written_checkpoint_matches_the_original_pretrained_index(tf1_64):
    if not (BAMOS / "DCGAN.model-60502.index").exists():
        pytest.skip(f"{BAMOS} is absent")
    assert dict(tf.train.list_variables(tf1_64["prefix"])) == \
        dict(tf.train.list_variables(str(BAMOS / "DCGAN.model-60502")))


def test_infer_config(tf1_64, tf1_small, tf1_gray):
    for ref in (tf1_64, tf1_small, tf1_gray):
        assert read_config(ref["folder"]).record() == ref["hparams"]
        assert infer_config(dict(tf.train.list_variables(ref["prefix"])), ref["prefix"]).record() == ref["hparams"]


def test_infer_config_of_the_original_pretrained_index():
    if not (BAMOS / "DCGAN.model-60502.index").exists():
        pytest.skip(f"{BAMOS} is absent")
    assert latest_checkpoint(BAMOS) == str(BAMOS / "DCGAN.model-60502")
    assert read_config(BAMOS).record() == DEFAULTS
    assert infer_config(dict(tf.train.list_variables(str(BAMOS / "DCGAN.model-60502")))).record() == DEFAULTS


# ----------------------------------------------------------------------------
# Same outputs after loading
# ----------------------------------------------------------------------------

def test_from_checkpoint_gives_the_originals_outputs(tf1_64):
    model = DCGAN.from_checkpoint(tf1_64["folder"])
    assert model.config.record() == DEFAULTS and model.original_format
    assert_same_outputs(model, tf1_64)


def test_load_into_a_built_model_gives_the_originals_outputs(tf1_small, tf1_gray):
    for ref in (tf1_small, tf1_gray):
        model = DCGAN(**ref["hparams"])
        assert model.load(ref["folder"]) is True and model.original_format
        assert int(model.step) == 0  # the original's checkpoints hold no step: training counts afresh
        assert_same_outputs(model, ref)


def test_a_moved_folder_loads_from_where_it_is_now(tf1_small, tmp_path):
    """tf.compat.v1 Saver records absolute paths; the folder's own files win."""
    moved = copy_checkpoint(tf1_small, tmp_path / "a")
    assert f'"{tf1_small["prefix"]}"' in (moved / "checkpoint").read_text()  # the old, absolute path
    (moved / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/checkpoint/DCGAN.model-7"\n')
    assert latest_checkpoint(moved) == str(moved / "DCGAN.model-7")
    (moved / "checkpoint").unlink()  # without a state file: the newest DCGAN.model-N.index
    assert latest_checkpoint(moved) == str(moved / "DCGAN.model-7")
    assert_same_outputs(DCGAN.from_checkpoint(moved), tf1_small)


# ----------------------------------------------------------------------------
# The later revision's layout
# ----------------------------------------------------------------------------

def test_the_later_layout_is_recognised_and_gives_the_originals_outputs(tf1_later):
    written = dict(tf.train.list_variables(tf1_later["prefix"]))
    # What the later revision wrote: renamed D layers and doubled G widths.
    assert written["generator/g_h1/w"] == [5, 5, 512, 512] and written["discriminator/d_h4_lin/Matrix"] == [8192, 1]
    assert "discriminator/d_bn0/beta" in written and "discriminator/d_bn3/beta" not in written
    assert read_config(tf1_later["folder"]).record() == dict(DEFAULTS, layout="later")
    model = DCGAN.from_checkpoint(tf1_later["folder"])
    assert model.original_format and model.layout == "later"
    assert repr(model) == "DCGAN(image_size=64, z_dim=100, gf_dim=64, df_dim=64, c_dim=3, layout=later)"
    assert_same_outputs(model, tf1_later)


def test_the_later_layout_at_16x16(tf1_later_small):
    written = dict(tf.train.list_variables(tf1_later_small["prefix"]))
    assert "generator/g_h1/w/Adam" in written and "beta1_power" in written  # ignored: this port's Adam starts afresh
    assert read_config(tf1_later_small["folder"]).record() == dict(SMALL, layout="later")
    model = DCGAN(**SMALL, layout="later")
    assert model.load(tf1_later_small["folder"])
    assert_same_outputs(model, tf1_later_small)
    with pytest.raises(CheckpointError) as error:
        DCGAN(**SMALL).load(tf1_later_small["folder"])  # the article's layout asked for explicitly
    assert str(error.value) == (f"{tf1_later_small['prefix']}: has the original's later layout, but "
                                f"DCGAN(image_size=16, z_dim=16, gf_dim=8, df_dim=8, c_dim=3) has the article layout "
                                f"(from_checkpoint builds the checkpoint's own)")


def test_fine_tuning_and_converting_keep_the_later_layout(tf1_later_small, tmp_path, capsys):
    folder = copy_checkpoint(tf1_later_small, tmp_path / "ckpt")
    data = tmp_path / "data"
    write_dataset(data, 8, 16)
    assert train_dcgan.main([str(a) for a in (
        "--dataset", data, "--batch_size", 8, "--epoch", 1, "--seed", 0, "--checkpoint_dir", folder,
        "--sample_dir", tmp_path / "samples", "--log_dir", tmp_path / "logs")]) == 0
    assert f"Resuming from {folder / 'DCGAN.model-9'} at step 0 {ORIGINAL_NOTE}" in capsys.readouterr().out
    assert json.loads((folder / "dcgan.json").read_text()) == dict(SMALL, layout="later")
    tuned = DCGAN.from_checkpoint(folder)
    assert not tuned.original_format and tuned.layout == "later" and int(tuned.step) == 1
    trained = tuned.generator(tf.constant(tf1_later_small["z"]), training=False).numpy()
    assert 0 < np.max(np.abs(trained - tf1_later_small["images"])) < 0.5
    dst = tmp_path / "converted"
    assert convert_checkpoint.main([str(tf1_later_small["folder"]), str(dst)]) == 0
    assert json.loads((dst / "dcgan.json").read_text()) == dict(SMALL, layout="later")
    assert_same_outputs(DCGAN.from_checkpoint(dst), tf1_later_small)


def test_complete_runs_on_a_later_layout_checkpoint(tf1_later_small, tmp_path, capsys):
    import complete
    images = write_dataset(tmp_path / "images", 2, 16)
    out = tmp_path / "out"
    assert complete.main([str(a) for a in ("--checkpointDir", tf1_later_small["folder"], "--outDir", out,
                                           "--nIter", 2, "--outInterval", 1, "--batchSize", 2, "--seed", 0,
                                           *images)]) == 0
    known = masking.make_mask("center", 16)[:, :, 0] > 0.5
    for path in images:
        completed = np.asarray(Image.open(out / "final" / f"{path.stem}.png")).astype(int)
        original = np.asarray(Image.open(path)).astype(int)
        assert np.abs(completed - original)[known].max() <= 1
        assert np.abs(completed - original)[~known].mean() > 10


def write_tf1_variables(folder: Path, shapes: dict) -> str:
    """A TF1 checkpoint holding zeros of these names and shapes."""
    with tf.Graph().as_default() as graph:
        for name, shape in shapes.items():
            v1.get_variable(name, shape, initializer=v1.zeros_initializer())
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            folder.mkdir(parents=True, exist_ok=True)
            return v1.train.Saver().save(sess, str(folder / "DCGAN.model"), global_step=3)


def test_a_checkpoint_of_neither_layout_says_what_each_expects(tmp_path, capsys):
    import complete

    # The article's names with the later revision's widths in G.
    shapes = dict(layouts.expected_shapes(**SMALL), **{"generator/g_h1/w": [5, 5, 64, 64]})
    prefix = write_tf1_variables(tmp_path / "hybrid", shapes)
    expected = (f"{prefix}: fits neither layout of the original's checkpoints: variable generator/g_h1/w has shape "
                f"[5, 5, 64, 64]; the article layout expects generator/g_h1/w [5, 5, 32, 64] "
                f"({layouts.SUMMARY['article']}); the later layout expects generator/g_h1/w [5, 5, 64, 64] "
                f"({layouts.SUMMARY['later']})")
    with pytest.raises(SystemExit) as exit_:
        complete.main(["--checkpointDir", str(tmp_path / "hybrid"), "--outDir", str(tmp_path / "out"), "x.png"])
    assert exit_.value.code == 2
    assert error_line(capsys.readouterr().err) == f"error: {expected}"
    assert not (tmp_path / "out").exists()
    # A missing variable: named, with what each layout has in its place.
    shapes = layouts.expected_shapes(**SMALL)
    del shapes["discriminator/d_h3_lin/Matrix"]
    with pytest.raises(CheckpointError) as error:
        infer_config(shapes, "ckpt")
    assert str(error.value) == (
        f"ckpt: fits neither layout of the original's checkpoints: no variable discriminator/d_h3_lin/Matrix; "
        f"the article layout expects discriminator/d_h3_lin/Matrix [64, 1] ({layouts.SUMMARY['article']}); "
        f"the later layout expects no discriminator/d_h3_lin/Matrix ({layouts.SUMMARY['later']})")
    with pytest.raises(CheckpointError, match=r"^ckpt: fits neither .*: no variable generator/g_h0_lin/Matrix; "
                                              r"the article layout needs generator/g_h0_lin/Matrix"):
        infer_config({"discriminator/d_bn0/beta": [8]}, "ckpt")


def test_dcgan_json_with_a_layout_that_cannot_be_built_is_a_clear_error(tmp_path):
    (tmp_path / "dcgan.json").write_text(json.dumps(dict(SMALL, layout="2018")))
    with pytest.raises(CheckpointError, match=r"dcgan\.json: layout must be one of article, later, not '2018'"):
        read_config(tmp_path)
    (tmp_path / "dcgan.json").write_text(json.dumps(dict(SMALL, image_size=256, layout="later")))
    with pytest.raises(CheckpointError, match=r": cannot build the model it describes \(the later layout works up "
                                              r"to 128x128, not 256"):
        DCGAN.from_checkpoint(tmp_path)


# ----------------------------------------------------------------------------
# Clear errors
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("hparams, variable, in_checkpoint, in_model", [
    (dict(SMALL, image_size=32), "generator/g_h0_lin/Matrix", [16, 64], [16, 256]),
    (dict(SMALL, gf_dim=16), "generator/g_bn0/beta", [64], [128]),
    (dict(SMALL, df_dim=4), "discriminator/d_bn1/beta", [16], [8]),
])
def test_a_checkpoint_that_does_not_fit_names_the_variable_and_shapes(tf1_small, hparams, variable,
                                                                      in_checkpoint, in_model):
    model = DCGAN(**hparams)
    before = [v.numpy() for v in model.model_variables]
    with pytest.raises(CheckpointError) as error:
        model.load(tf1_small["folder"])
    assert str(error.value) == (f"{tf1_small['prefix']}: variable {variable} has shape {in_checkpoint} in the "
                                f"checkpoint but {in_model} in {model!r}")
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.model_variables))


def test_a_folder_without_a_checkpoint_says_what_it_expected(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert DCGAN(**SMALL).load(empty) is False  # nothing to resume: training starts afresh
    for folder in (empty, tmp_path / "missing"):
        with pytest.raises(CheckpointError) as error:
            DCGAN.from_checkpoint(folder)
        message = str(error.value)
        assert str(folder) in message
    assert "does not exist" in message
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*empty: expected a `checkpoint` state file "
                                              r"naming DCGAN\.model-N, with DCGAN\.model-N\.index"):
        DCGAN.from_checkpoint(empty)


@pytest.mark.parametrize("content, expected", [
    ("garbage {{{ not a checkpoint state\n", "not a readable checkpoint state file (expected a line "
                                             "model_checkpoint_path: \"DCGAN.model-N\""),
    ("", "not a readable checkpoint state file"),
    ('model_checkpoint_path: "DCGAN.model-5"\n', "DCGAN.model-5, but "),
])
def test_a_junk_state_file_is_a_clear_error(tmp_path, content, expected):
    (tmp_path / "checkpoint").write_text(content)
    for call in (lambda: DCGAN(**SMALL).load(tmp_path), lambda: DCGAN.from_checkpoint(tmp_path),
                 lambda: latest_checkpoint(tmp_path)):
        with pytest.raises(CheckpointError) as error:
            call()
        assert str(tmp_path / "checkpoint") in str(error.value) and expected in str(error.value)


def test_an_index_without_its_data_file_is_a_clear_error(tf1_small, tmp_path):
    folder = copy_checkpoint(tf1_small, tmp_path / "ckpt")
    for data in folder.glob("DCGAN.model-7.data-*"):
        data.unlink()
    model = DCGAN(**SMALL)
    with pytest.raises(CheckpointError, match=r"DCGAN\.model-7: cannot read the checkpoint's values .*"
                                              r"is its \.data file missing or truncated\?"):
        model.load(folder)
    (folder / "DCGAN.model-7.index").write_bytes(b"not an index")
    with pytest.raises(CheckpointError, match=r"DCGAN\.model-7: not a readable checkpoint"):
        model.load(folder)


def test_the_original_pretrained_index_alone_is_a_clear_error(tmp_path):
    if not (BAMOS / "DCGAN.model-60502.index").exists():
        pytest.skip(f"{BAMOS} is absent")
    folder = shutil.copytree(BAMOS, tmp_path / "bamos")
    with pytest.raises(CheckpointError, match=r"DCGAN\.model-60502: cannot read the checkpoint's values"):
        DCGAN.from_checkpoint(folder)


def test_train_cli_errors_are_one_line(tf1_gray, tmp_path, capsys):
    data = tmp_path / "data"
    write_dataset(data, 8, 32)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "checkpoint").write_text("garbage\n")
    common = ["--dataset", data, "--image_size", 32, "--z_dim", 8, "--gf_dim", 4, "--df_dim", 4, "--batch_size", 4,
              "--epoch", 1, "--sample_dir", tmp_path / "samples", "--log_dir", tmp_path / "logs"]
    result = run_script("train_dcgan.py", *common, "--checkpoint_dir", junk)
    assert result.returncode != 0
    assert f"error: {junk / 'checkpoint'}: not a readable checkpoint state file" in error_line(result.stderr)
    # A grayscale original checkpoint asked to train in colour: the flag that disagrees.
    with pytest.raises(SystemExit) as exit_:  # in-process, to save a TensorFlow start-up
        train_dcgan.main([str(a) for a in common] + ["--c_dim", "3", "--checkpoint_dir", str(tf1_gray["folder"])])
    assert exit_.value.code == 2
    assert error_line(capsys.readouterr().err) == (f"error: --c_dim 3 does not match the checkpoint in "
                                                   f"{tf1_gray['folder']} (c_dim=1); use another --checkpoint_dir "
                                                   f"or the same c_dim")
    assert not list((tmp_path / "samples").glob("*"))  # made before the work starts, but nothing written


# ----------------------------------------------------------------------------
# Training, conversion and completion from an original checkpoint
# ----------------------------------------------------------------------------

def test_training_resumes_from_an_original_checkpoint(tf1_small, tmp_path):
    folder = copy_checkpoint(tf1_small, tmp_path / "ckpt")
    data = tmp_path / "data"
    write_dataset(data, 16, 16)
    result = run_script("train_dcgan.py", "--dataset", data, "--image_size", 16, "--z_dim", 16, "--gf_dim", 8,
                        "--df_dim", 8, "--batch_size", 8, "--epoch", 1, "--seed", 0, "--checkpoint_dir", folder,
                        "--sample_dir", tmp_path / "samples", "--log_dir", tmp_path / "logs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Resuming from {folder / 'DCGAN.model-7'} at step 0 {ORIGINAL_NOTE}" in result.stdout
    assert "Done: 2 steps" in result.stdout
    # It continues in this port's format, from the original's weights.
    model = DCGAN.from_checkpoint(folder)
    assert not model.original_format and int(model.step) == 2
    assert json.loads((folder / "dcgan.json").read_text()) == SMALL
    trained = model.generator(tf.constant(tf1_small["z"]), training=False).numpy()
    assert 0 < np.max(np.abs(trained - tf1_small["images"])) < 0.5


def test_convert_checkpoint_script(tf1_small, tmp_path, capsys):
    dst = tmp_path / "converted"
    assert convert_checkpoint.main([str(tf1_small["folder"]), str(dst)]) == 0
    assert f"Wrote {dst / 'DCGAN.model-7'}" in capsys.readouterr().out
    assert json.loads((dst / "dcgan.json").read_text()) == SMALL
    assert latest_checkpoint(dst) == str(dst / "DCGAN.model-7")
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in dict(tf.train.list_variables(str(dst / "DCGAN.model-7")))
    model = DCGAN.from_checkpoint(dst)
    assert not model.original_format and int(model.step) == 7 and model.config.record() == SMALL
    assert_same_outputs(model, tf1_small)
    # Clean failures: no checkpoint, a destination that holds one, the source itself.
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [((empty, tmp_path / "out"), f"error: no checkpoint in {empty}: expected a `checkpoint`"),
                          ((tf1_small["folder"], dst), f"error: the destination {dst} already holds a checkpoint"),
                          ((tf1_small["folder"], tf1_small["folder"]), "is the source folder")]:
        with pytest.raises(SystemExit) as exit_:
            convert_checkpoint.main([str(a) for a in args])
        assert exit_.value.code == 2
        assert message in error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_convert_checkpoint_as_a_process(tf1_gray, tmp_path, capsys, monkeypatch):
    dst = tmp_path / "converted"
    result = run_script(ROOT / "convert_checkpoint.py", tf1_gray["folder"], dst)
    assert result.returncode == 0, result.stderr
    assert f"Wrote {dst / 'DCGAN.model-12'}" in result.stdout
    model = DCGAN.from_checkpoint(dst)
    assert not model.original_format and int(model.step) == 12 and model.config.record() == GRAY
    assert_same_outputs(model, tf1_gray)
    # The error path in-process (runpy runs the script's __main__ block as `python convert_checkpoint.py` does).
    monkeypatch.setattr(sys, "argv", ["convert_checkpoint.py", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "convert_checkpoint.py"), run_name="__main__")
    assert exit_.value.code == 2
    assert error_line(capsys.readouterr().err) == f"error: checkpoint folder {tmp_path / 'nowhere'} does not exist"
    assert not (tmp_path / "out").exists()


def test_complete_runs_on_an_original_checkpoint(tf1_small, tmp_path):
    if not (ROOT / "complete.py").exists():
        pytest.skip("complete.py is not written yet")
    images = write_dataset(tmp_path / "images", 2, 16)
    out = tmp_path / "out"
    result = run_script("complete.py", "--checkpointDir", tf1_small["folder"], "--outDir", out, "--imgSize", 16,
                        "--nIter", 3, "--outInterval", 1, "--batchSize", 4, *images)
    assert result.returncode == 0, result.stdout + result.stderr
    known = np.ones((16, 16), bool)
    known[4:12, 4:12] = False  # the default center mask, centerScale 0.25
    for path in images:
        completed = np.asarray(Image.open(out / "final" / f"{path.stem}.png")).astype(int)
        original = np.asarray(Image.open(path)).astype(int)
        assert completed.shape == (16, 16, 3)
        assert np.abs(completed - original)[known].max() <= 1  # known pixels kept
        assert np.abs(completed - original)[~known].mean() > 10  # the hole filled by G(z), not the input


def test_average_as_g_ships_the_average_as_the_only_generator(tmp_path):
    """convert_checkpoint.py --networks_only --average_as_g: the copy's G(z) is the source's average's
    (what completion used), not the source's G; the copy keeps no average and is smaller."""
    source = DCGAN(image_size=16, gf_dim=4, df_dim=4, z_dim=8, seed=3, ema_decay=0.9)
    for var in source.generator.trainable_variables:  # G moved on from its average, as in training
        var.assign_add(0.05 * tf.ones_like(var))
    source.save(tmp_path / "full")
    assert convert_checkpoint.main(["--networks_only", str(tmp_path / "full"), str(tmp_path / "both")]) == 0
    assert convert_checkpoint.main(["--networks_only", "--average_as_g", str(tmp_path / "full"),
                                    str(tmp_path / "folded")]) == 0
    assert not storage.has_average(storage.checkpoint_shapes(tmp_path / "folded"))
    copy = DCGAN.from_checkpoint(tmp_path / "folded")
    z = np.random.default_rng(1).uniform(-1, 1, (4, 8)).astype(np.float32)
    np.testing.assert_array_equal(copy.generate(z).numpy(), source.average_generator(z, training=False).numpy())
    assert np.abs(copy.generate(z).numpy() - source.generator(z, training=False).numpy()).max() > 1e-3
    size = {name: sum(p.stat().st_size for p in (tmp_path / name).glob("DCGAN.model-0.data*"))
            for name in ("both", "folded")}
    assert size["folded"] < size["both"]


def test_networks_only_copy_keeps_the_networks_and_drops_the_optimiser(tmp_path, capsys):
    """convert_checkpoint.py --networks_only: G and D give the same outputs from the copy; no Adam
    slot, no counter of the source's steps; a second write into the same folder is refused."""
    source = DCGAN(image_size=16, gf_dim=4, df_dim=4, z_dim=8, seed=3)
    source.step.assign(42)
    source.save(tmp_path / "full")
    assert convert_checkpoint.main(["--networks_only", str(tmp_path / "full"), str(tmp_path / "small")]) == 0
    names = [name for name, _ in tf.train.list_variables(latest_checkpoint(tmp_path / "small"))]
    assert not [n for n in names if "optim" in n or n.startswith("step") or n.startswith("rng")]
    assert any(n.startswith("generator/") for n in names) and any(n.startswith("discriminator/") for n in names)
    copy = DCGAN.from_checkpoint(tmp_path / "small")
    z = np.random.default_rng(0).uniform(-1, 1, (4, 8)).astype(np.float32)
    np.testing.assert_array_equal(copy.generate(z).numpy(), source.generate(z).numpy())
    images = source.generate(z)
    np.testing.assert_array_equal(copy.discriminator(images, training=False)[1].numpy(),
                                  source.discriminator(images, training=False)[1].numpy())
    assert int(copy.step.numpy()) == 0 and read_config(tmp_path / "small") == read_config(tmp_path / "full")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        convert_checkpoint.main(["--networks_only", str(tmp_path / "full"), str(tmp_path / "small")])
    assert exit_info.value.code == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    # Fine-tuning the copy (as the demo does the shipped model): its networks, a fresh optimiser, step 1 after.
    write_dataset(tmp_path / "data", 4, 16)
    copied = latest_checkpoint(tmp_path / "small")
    assert train_dcgan.main([str(a) for a in (
        "--dataset", tmp_path / "data", "--batch_size", 4, "--epoch", 1, "--seed", 0, "--mixed_precision", "off",
        "--checkpoint_dir", tmp_path / "small", "--sample_dir", tmp_path / "samples", "--log_dir", tmp_path / "logs")]) == 0
    assert (f"Resuming from {copied} at step 0 "
            f"(fine-tuning: its networks, with a fresh optimiser)") in capsys.readouterr().out
    tuned = DCGAN.from_checkpoint(tmp_path / "small")
    assert int(tuned.step.numpy()) == 1
    assert np.abs(tuned.generate(z).numpy() - copy.generate(z).numpy()).max() > 0


def test_default_model_dir_is_the_clones_checkpoints_folder():
    assert storage.default_model_dir() == ROOT / "checkpoints" / storage.SHIPPED_MODEL or \
        not (ROOT / "checkpoints" / storage.SHIPPED_MODEL).is_dir()
