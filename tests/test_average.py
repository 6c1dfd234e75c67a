"""The average of G's weights (DCGAN ema_decay): how it moves, where it is saved, and who uses it."""
import numpy as np
import pytest
import tensorflow as tf

from dcgan_completion.completion.engine import LatentOptimizer
from dcgan_completion.networks.storage import variable_name
from model import DCGAN

TINY = dict(image_size=8, z_dim=8, gf_dim=4, df_dim=4)


def values(module: tf.Module) -> dict:
    return {variable_name(v).split("/", 1)[1]: v.numpy().copy() for v in module.trainable_variables}


@pytest.fixture(scope="module")
def trained():
    """A tiny model with an average, after three steps, and the averages worked out by hand at each."""
    dcgan = DCGAN(**TINY, seed=3, ema_decay=0.2, learning_rate=0.01)  # steps large enough to tell apart
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32))
    average = values(dcgan.generator)  # it starts at G
    for name, value in values(dcgan.average_generator).items():
        np.testing.assert_array_equal(value, average[name])
    outs, means = [], []
    for step in range(3):
        means.append(dcgan.average_generator.g_bn0.moving_mean.numpy().copy())
        outs.append(dcgan.train_step(images))
        decay = min(0.2, (1 + step) / (10 + step))  # 0.1, 0.1818..., then the asked-for 0.2
        now = values(dcgan.generator)
        average = {k: decay * a + (1 - decay) * now[k] for k, a in average.items()}
    return dcgan, average, outs, means


def test_the_average_moves_towards_g_with_a_warmed_up_decay(trained):
    dcgan, expected, _, _ = trained
    got = values(dcgan.average_generator)
    assert got.keys() == expected.keys()
    for name in got:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)
    # It is not G: the three steps moved G further than its average.
    far = [np.abs(values(dcgan.generator)[k] - got[k]).max() for k in got]
    assert max(far) > 1e-3


def test_its_batch_norm_statistics_are_its_own(trained):
    dcgan, _, outs, means = trained
    # The last step moved the average's first moving mean by 0.1 (BN decay 0.9) towards the batch mean
    # of its own first layer, with its new weights, on that step's z: worked out here with numpy.
    avg = dcgan.average_generator
    z = outs[-1]["z"].numpy()
    h = z @ avg.g_h0_lin.Matrix.numpy() + avg.g_h0_lin.bias.numpy()
    batch_mean = h.reshape(len(z), avg.start_size, avg.start_size, avg.start_channels).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(avg.g_bn0.moving_mean.numpy(), 0.9 * means[-1] + 0.1 * batch_mean, rtol=1e-4,
                               atol=1e-6)
    # Not G's statistics.
    assert np.abs(dcgan.generator.g_bn0.moving_mean.numpy() - avg.g_bn0.moving_mean.numpy()).max() > 1e-6


def test_saved_beside_g_and_used_where_present(trained, tmp_path):
    dcgan, _, _, _ = trained
    dcgan.save(tmp_path)
    shapes = tf.train.load_checkpoint(str(tmp_path / f"DCGAN.model-{int(dcgan.step)}")).get_variable_to_shape_map()
    assert any(k.startswith("average_generator/g_h0_lin/") for k in shapes)
    assert any(k.startswith("generator/g_h0_lin/") for k in shapes)  # G under its own names, as before
    loaded = DCGAN.from_checkpoint(tmp_path)
    assert loaded.average_generator is not None and loaded.sampler is loaded.average_generator
    assert [variable_name(v) for v in loaded.model_variables] == [variable_name(v) for v in dcgan.model_variables]
    z = tf.constant(np.random.default_rng(1).uniform(-1, 1, (3, 8)).astype(np.float32))
    averaged = dcgan.average_generator(z, training=False).numpy()
    raw = dcgan.generator(z, training=False).numpy()
    assert np.abs(averaged - raw).max() > 1e-4
    # Completion and the sample grids draw from the average.
    np.testing.assert_allclose(LatentOptimizer(loaded, np.ones((8, 8, 1), np.float32)).generate(z).numpy(), averaged,
                               atol=1e-6)
    np.testing.assert_allclose(loaded.generate(z).numpy(), averaged, atol=1e-6)
    # Without asking for one, a model reads G only, and completes with it.
    plain = DCGAN(**TINY)
    assert plain.load(tmp_path) and plain.average_generator is None
    np.testing.assert_allclose(plain.generate(z).numpy(), raw, atol=1e-6)


def test_a_checkpoint_without_one_starts_the_average_at_its_g(tmp_path):
    plain = DCGAN(**TINY, seed=5)
    plain.save(tmp_path)
    assert DCGAN.from_checkpoint(tmp_path).average_generator is None
    averaged = DCGAN(**TINY, seed=6, ema_decay=0.999)
    assert averaged.load(tmp_path)
    for a, g in zip(averaged.average_generator.variables, plain.generator.variables):
        np.testing.assert_array_equal(a.numpy(), g.numpy())
