"""model.py: networks, losses, one training step, Adam and checkpoints ."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dcgan_completion.networks.storage import CheckpointError, latest_checkpoint, variable_name
from model import DCGAN, Adam, Discriminator, Generator, sigmoid_cross_entropy

REFERENCE_INDEX = (Path(__file__).resolve().parents[2] / "shared" / "reference" / "bamos_checkpoint"
                   / "DCGAN.model-60502")
TINY = dict(image_size=8, z_dim=8, gf_dim=4, df_dim=4)

# tf.train.list_variables of the original's pretrained face model (bamos_checkpoint/DCGAN.model-60502).
ORIGINAL_VARIABLES = [
    ("discriminator/d_bn1/beta", [128]),
    ("discriminator/d_bn1/gamma", [128]),
    ("discriminator/d_bn1/moving_mean", [128]),
    ("discriminator/d_bn1/moving_variance", [128]),
    ("discriminator/d_bn2/beta", [256]),
    ("discriminator/d_bn2/gamma", [256]),
    ("discriminator/d_bn2/moving_mean", [256]),
    ("discriminator/d_bn2/moving_variance", [256]),
    ("discriminator/d_bn3/beta", [512]),
    ("discriminator/d_bn3/gamma", [512]),
    ("discriminator/d_bn3/moving_mean", [512]),
    ("discriminator/d_bn3/moving_variance", [512]),
    ("discriminator/d_h0_conv/biases", [64]),
    ("discriminator/d_h0_conv/w", [5, 5, 3, 64]),
    ("discriminator/d_h1_conv/biases", [128]),
    ("discriminator/d_h1_conv/w", [5, 5, 64, 128]),
    ("discriminator/d_h2_conv/biases", [256]),
    ("discriminator/d_h2_conv/w", [5, 5, 128, 256]),
    ("discriminator/d_h3_conv/biases", [512]),
    ("discriminator/d_h3_conv/w", [5, 5, 256, 512]),
    ("discriminator/d_h3_lin/Matrix", [8192, 1]),
    ("discriminator/d_h3_lin/bias", [1]),
    ("generator/g_bn0/beta", [512]),
    ("generator/g_bn0/gamma", [512]),
    ("generator/g_bn0/moving_mean", [512]),
    ("generator/g_bn0/moving_variance", [512]),
    ("generator/g_bn1/beta", [256]),
    ("generator/g_bn1/gamma", [256]),
    ("generator/g_bn1/moving_mean", [256]),
    ("generator/g_bn1/moving_variance", [256]),
    ("generator/g_bn2/beta", [128]),
    ("generator/g_bn2/gamma", [128]),
    ("generator/g_bn2/moving_mean", [128]),
    ("generator/g_bn2/moving_variance", [128]),
    ("generator/g_bn3/beta", [64]),
    ("generator/g_bn3/gamma", [64]),
    ("generator/g_bn3/moving_mean", [64]),
    ("generator/g_bn3/moving_variance", [64]),
    ("generator/g_h0_lin/Matrix", [100, 8192]),
    ("generator/g_h0_lin/bias", [8192]),
    ("generator/g_h1/biases", [256]),
    ("generator/g_h1/w", [5, 5, 256, 512]),
    ("generator/g_h2/biases", [128]),
    ("generator/g_h2/w", [5, 5, 128, 256]),
    ("generator/g_h3/biases", [64]),
    ("generator/g_h3/w", [5, 5, 64, 128]),
    ("generator/g_h4/biases", [3]),
    ("generator/g_h4/w", [5, 5, 3, 64]),
]


def np_sigmoid_ce(logits, label):
    """Mean of -label log(sigmoid(x)) - (1 - label) log(1 - sigmoid(x)), in float64."""
    x = np.asarray(logits, np.float64)
    log_p, log_not_p = -np.logaddexp(0.0, -x), -np.logaddexp(0.0, x)
    return float(np.mean(-label * log_p - (1.0 - label) * log_not_p))


def snapshot(module: tf.Module) -> dict:
    return {variable_name(v) + f"#{i}": v.numpy().copy() for i, v in enumerate(module.variables)}


def images_batch(rng, n=4, size=8):
    return tf.constant(rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32))


# ----------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [8, 16, 32, 64, 128])
def test_network_shapes(size):
    tf.random.set_seed(size)
    gen, disc = Generator(size, z_dim=6, gf_dim=4, c_dim=3), Discriminator(size, df_dim=4, c_dim=3)
    z = tf.random.uniform([2, 6], -1, 1)
    for training in (True, False):
        fake = gen(z, training=training)
        assert fake.shape == (2, size, size, 3)
        assert np.all(np.abs(fake.numpy()) <= 1.0)
        prob, logits = disc(fake, training=training)
        assert prob.shape == (2, 1) and logits.shape == (2, 1)
        np.testing.assert_allclose(prob.numpy(), 1 / (1 + np.exp(-logits.numpy())), rtol=1e-5)
    # 4 stride-2 layers as the original (3 at 8x8): G starts at size / 16, D ends there.
    layers = 3 if size == 8 else 4
    assert gen.g_h0_lin.Matrix.shape == (6, (size // 2 ** layers) ** 2 * 4 * 2 ** (layers - 1))
    assert getattr(disc, f"d_h{layers - 1}_lin").Matrix.shape == ((size // 2 ** layers) ** 2 * 4 * 2 ** (layers - 1), 1)


@pytest.mark.parametrize("size", [0, 4, 12, 48, 100])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="power of two"):
        DCGAN(image_size=size, z_dim=4, gf_dim=2, df_dim=2)


def test_default_model_matches_the_original_checkpoint():
    dcgan = DCGAN(seed=0)
    names = sorted((variable_name(v), v.shape.as_list()) for v in dcgan.model_variables)
    assert len(names) == 48
    assert names == ORIGINAL_VARIABLES
    trainable = {variable_name(v) for v in dcgan.generator.trainable_variables + dcgan.discriminator.trainable_variables}
    assert trainable == {n for n, _ in ORIGINAL_VARIABLES if not n.endswith(("moving_mean", "moving_variance"))}


@pytest.mark.skipif(not Path(f"{REFERENCE_INDEX}.index").exists(),
                    reason="../shared/reference is not here")
def test_default_model_matches_the_real_index():
    listed = [(name, list(shape)) for name, shape in tf.train.list_variables(str(REFERENCE_INDEX))]
    assert listed == ORIGINAL_VARIABLES


# ----------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------

def test_sigmoid_cross_entropy():
    logits = np.array([[-30.0], [-2.5], [-0.1], [0.0], [0.7], [4.0], [40.0]], np.float32)
    for label in (0.0, 1.0):
        assert float(sigmoid_cross_entropy(tf.constant(logits), label)) == pytest.approx(
            np_sigmoid_ce(logits, label), rel=1e-5)


def test_losses():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(0, 2, (8, 1)).astype(np.float32), rng.normal(0, 2, (8, 1)).astype(np.float32)
    dcgan = DCGAN(image_size=8, z_dim=2, gf_dim=2, df_dim=2, seed=0)
    losses = {k: float(v) for k, v in dcgan.losses(tf.constant(real), tf.constant(fake)).items()}
    expected = dict(d_loss_real=np_sigmoid_ce(real, 1), d_loss_fake=np_sigmoid_ce(fake, 0),
                    g_loss=np_sigmoid_ce(fake, 1))
    expected["d_loss"] = expected["d_loss_real"] + expected["d_loss_fake"]
    assert set(losses) == set(expected)
    for key, value in expected.items():
        assert losses[key] == pytest.approx(value, rel=1e-5), key


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------

def test_train_step():
    rng = np.random.default_rng(0)
    lr = 0.01
    dcgan = DCGAN(**TINY, learning_rate=lr, beta1=0.5, seed=3)
    images = images_batch(rng)
    before = {id(v): v.numpy().copy() for v in dcgan.variables}
    sample_z = dcgan.sample_z.numpy().copy()
    out = dcgan.train_step(images)
    after = {id(v): v.numpy().copy() for v in dcgan.variables}

    assert int(dcgan.step) == 1 and int(dcgan.epoch) == 0
    assert int(dcgan.d_optim.iterations) == 1 and int(dcgan.g_optim.iterations) == 2
    np.testing.assert_array_equal(dcgan.sample_z.numpy(), sample_z)

    def changed(v):
        return not np.array_equal(before[id(v)], after[id(v)])

    for net in (dcgan.generator, dcgan.discriminator):
        for v in net.trainable_variables:
            name = variable_name(v)
            # Biases right before a batch norm get no gradient (the mean cancels them).
            last = f"generator/g_h{dcgan.generator.layers}/biases"
            before_bn = name.endswith("biases") and name not in ("discriminator/d_h0_conv/biases", last) \
                or name == "generator/g_h0_lin/bias"
            if not before_bn:
                assert changed(v), name
        for v in net.variables:
            if not v.trainable:
                assert changed(v), variable_name(v)  # the moving statistics
    # D got exactly one Adam step: |delta| = lr (sign of the gradient) at most; the G
    # updates did not touch it.
    d_delta = np.concatenate([(after[id(v)] - before[id(v)]).ravel() for v in dcgan.discriminator.trainable_variables])
    assert np.abs(d_delta).max() == pytest.approx(lr, rel=1e-3)
    g_delta = np.concatenate([(after[id(v)] - before[id(v)]).ravel() for v in dcgan.generator.trainable_variables])
    assert np.abs(g_delta).max() > lr * 1.2  # two steps
    # Everything else, the optimisers' slots aside, is as it was.
    optimiser_vars = {id(v) for v in dcgan.d_optim.variables + dcgan.g_optim.variables}
    network_vars = {id(v) for v in dcgan.model_variables}
    for v in dcgan.variables:
        if id(v) not in optimiser_vars | network_vars and v is not dcgan.step:
            np.testing.assert_array_equal(after[id(v)], before[id(v)], err_msg=v.name)

    # The losses it reports: D on the real and the fake batch separately, before the update.
    for v in dcgan.variables:
        v.assign(before[id(v)])
    fake = dcgan.generator(out["z"], training=True)
    d_real, real_logits = dcgan.discriminator(images, training=True)
    d_fake, fake_logits = dcgan.discriminator(fake, training=True)
    np.testing.assert_allclose(out["d"].numpy(), d_real.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["d_"].numpy(), d_fake.numpy(), rtol=1e-4, atol=1e-6)
    assert float(out["d_loss_real"]) == pytest.approx(np_sigmoid_ce(real_logits.numpy(), 1), rel=1e-4)
    assert float(out["d_loss_fake"]) == pytest.approx(np_sigmoid_ce(fake_logits.numpy(), 0), rel=1e-4)
    assert float(out["d_loss"]) == pytest.approx(float(out["d_loss_real"]) + float(out["d_loss_fake"]), rel=1e-6)
    z = out["z"].numpy()
    assert z.shape == (4, 8) and np.all(np.abs(z) <= 1.0)


def test_adam_matches_tf1():
    rng = np.random.default_rng(0)
    lr, b1, b2, eps = 0.05, 0.5, 0.999, 1e-8
    # The reference in float64, with the hyper-parameters as the float32 that TensorFlow holds.
    rb1, rb2 = float(np.float32(b1)), float(np.float32(b2))
    init = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
    variables = [tf.Variable(x.astype(np.float32)) for x in init]
    adam = Adam(variables, lr, b1, b2, eps)
    params = [x.astype(np.float32).astype(np.float64) for x in init]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, 4):
        # Some gradients tiny, so that epsilon matters.
        grads = [rng.normal(size=p.shape) * rng.choice([1.0, 1e-3, 1e-8], size=p.shape) for p in params]
        grads = [g.astype(np.float32) for g in grads]
        adam.apply(variables, [tf.constant(g) for g in grads])
        lr_t = lr * np.sqrt(1 - rb2 ** t) / (1 - rb1 ** t)
        for i, g in enumerate(grads):
            m[i] = rb1 * m[i] + (1 - rb1) * g
            v[i] = rb2 * v[i] + (1 - rb2) * g.astype(np.float64) ** 2
            params[i] = params[i] - lr_t * m[i] / (np.sqrt(v[i]) + eps)
        for i in range(2):
            np.testing.assert_allclose(variables[i].numpy(), params[i], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(adam.m[i].numpy(), m[i], rtol=1e-5, atol=1e-12)
            np.testing.assert_allclose(adam.v[i].numpy(), v[i], rtol=1e-5, atol=1e-20)
    assert int(adam.iterations) == 3


# ----------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------

def all_state(dcgan: DCGAN) -> list:
    return [(v.name, v.numpy().copy()) for v in dcgan.variables]


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    a = DCGAN(**TINY, seed=1)
    # Optimiser state and bookkeeping as after a training step (without tracing one).
    for optim, net, times in ((a.d_optim, a.discriminator, 1), (a.g_optim, a.generator, 2)):
        for _ in range(times):
            optim.apply(net.trainable_variables,
                        [tf.constant(rng.normal(size=v.shape).astype(np.float32)) for v in net.trainable_variables])
    for v in a.model_variables:
        if not v.trainable:
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype(np.float32))
    a.step.assign(1)
    a.epoch.assign(3)
    path = a.save(tmp_path)
    assert Path(path).name == "DCGAN.model-1"
    assert json.loads((tmp_path / "dcgan.json").read_text()) == dict(TINY, c_dim=3)
    b = DCGAN(**TINY, seed=2)
    assert not np.array_equal(a.sample_z.numpy(), b.sample_z.numpy())
    assert b.load(tmp_path) is True
    state_a, state_b = all_state(a), all_state(b)
    assert [n for n, _ in state_a] == [n for n, _ in state_b]
    for (name, x), (_, y) in zip(state_a, state_b):
        np.testing.assert_array_equal(x, y, err_msg=name)
    # Including both optimisers' moments and counters, and the bookkeeping.
    assert int(b.step) == 1 and int(b.epoch) == 3
    assert int(b.d_optim.iterations) == 1 and int(b.g_optim.iterations) == 2
    assert np.abs(b.d_optim.m[0].numpy()).max() > 0 and np.abs(b.g_optim.v[0].numpy()).max() > 0
    # And the random generator: both go on with the same numbers.
    np.testing.assert_array_equal(a.sample_noise(3).numpy(), b.sample_noise(3).numpy())
    # An empty folder has nothing to load.
    assert DCGAN(**TINY).load(tmp_path / "nothing") is False


def test_from_checkpoint_rebuilds_the_dims(tmp_path):
    dims = dict(image_size=8, z_dim=5, gf_dim=3, df_dim=6)
    a = DCGAN(**dims, seed=4)
    a.save(tmp_path, step=7)
    b = DCGAN.from_checkpoint(tmp_path)
    assert b.config.record() == dict(dims, c_dim=3) and int(b.step) == 7
    z = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 5)).astype(np.float32))
    np.testing.assert_array_equal(a.generate(z).numpy(), b.generate(z).numpy())
    np.testing.assert_array_equal(a.generate().numpy(), b.generate().numpy())
    with pytest.raises(CheckpointError):
        DCGAN.from_checkpoint(tmp_path / "missing")


def test_keeps_three_checkpoints(tmp_path):
    dcgan = DCGAN(image_size=8, z_dim=2, gf_dim=2, df_dim=2, seed=0)
    for step in range(1, 6):
        dcgan.save(tmp_path, step=step)
    indexes = sorted(p.name for p in tmp_path.glob("DCGAN.model-*.index"))
    assert indexes == ["DCGAN.model-3.index", "DCGAN.model-4.index", "DCGAN.model-5.index"]
    assert not list(tmp_path.glob("DCGAN.model-[12].*"))
    assert latest_checkpoint(tmp_path) == str(tmp_path / "DCGAN.model-5")


def test_kill_mid_save_leaves_the_previous_checkpoint(tmp_path):
    """A kill while writing step 3 leaves temp files and a partial data file, no index, and
    the `checkpoint` state file still naming step 2 (TensorFlow updates it last, atomically)."""
    dcgan = DCGAN(image_size=8, z_dim=2, gf_dim=2, df_dim=2, seed=0)
    dcgan.save(tmp_path, step=1)
    dcgan.generator.g_h0_lin.bias.assign_add(tf.ones_like(dcgan.generator.g_h0_lin.bias))
    dcgan.save(tmp_path, step=2)
    good = dcgan.generator.g_h0_lin.bias.numpy().copy()
    state = (tmp_path / "checkpoint").read_text()
    data = (tmp_path / "DCGAN.model-2.data-00000-of-00001").read_bytes()
    # What a kill mid-write of DCGAN.model-3 leaves behind.
    temp = tmp_path / "DCGAN.model-3_temp"
    temp.mkdir()
    (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(data[: len(data) // 3])
    (tmp_path / "DCGAN.model-3.data-00000-of-00001").write_bytes(data[: len(data) // 2])
    (tmp_path / ".dcgan.json.abc.tmp.json").write_text('{"image_si')
    assert latest_checkpoint(tmp_path) == str(tmp_path / "DCGAN.model-2")
    fresh = DCGAN(image_size=8, z_dim=2, gf_dim=2, df_dim=2, seed=9)
    assert fresh.load(tmp_path) and int(fresh.step) == 2
    np.testing.assert_array_equal(fresh.generator.g_h0_lin.bias.numpy(), good)
    assert DCGAN.from_checkpoint(tmp_path).step.numpy() == 2
    # Saving again over the debris works, and becomes the newest.
    fresh.save(tmp_path, step=3)
    assert (tmp_path / "checkpoint").read_text() != state
    assert int(DCGAN.from_checkpoint(tmp_path).step) == 3


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    dcgan = DCGAN(image_size=8, z_dim=2, gf_dim=2, df_dim=2, seed=0)
    dcgan.save(tmp_path, step=1)
    data = tmp_path / "DCGAN.model-1.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="DCGAN.model-1"):
        DCGAN(image_size=8, z_dim=2, gf_dim=2, df_dim=2).load(tmp_path)
