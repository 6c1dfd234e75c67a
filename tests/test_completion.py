"""Completion maths, in-process: the objective and its gradient, the update
rules against numpy reimplementations of the original's formulas, range recovery, zCandidates;
the engine (results without files, its record, progress, padding, draw_z) and the settings' ranges.

The references here are written from the original's formulas (its complete.py and the
article), not from the port's code.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcgan_completion.completion import masks as masking  # noqa: E402
from dcgan_completion.completion.engine import LatentOptimizer  # noqa: E402
from dcgan_completion.completion.engine import CompletionEngine, draw_z
from dcgan_completion.completion.settings import CompletionSettings  # noqa: E402
from model import DCGAN  # noqa: E402

SIZE, Z_DIM, N = 16, 16, 4
GAIN = 10.0  # see scaled_model


def scaled_model(seed: int, compute_dtype: str | None = None) -> DCGAN:
    """A tiny DCGAN whose generator actually depends on z.

    With the original's initialisation (stddev 0.02) and moving batch-norm statistics
    (mean 0, variance 1) an untrained G(z) is ~1e-5 everywhere; multiplying each weight
    of G by GAIN gives outputs of std ~0.5 that vary with z, like a trained generator's.
    """
    model = DCGAN(image_size=SIZE, gf_dim=8, df_dim=8, z_dim=Z_DIM, seed=seed, compute_dtype=compute_dtype)
    for var in model.generator.trainable_variables:
        if var.name.split("/")[-1].split(":")[0] in ("w", "Matrix"):
            var.assign(var * GAIN)
    return model


@pytest.fixture(scope="module")
def model() -> DCGAN:
    return scaled_model(seed=3)


@pytest.fixture(scope="module")
def images() -> tf.Tensor:
    """N target images in [-1, 1]: smooth-ish random pictures."""
    rng = np.random.default_rng(11)
    return tf.constant(rng.uniform(-0.9, 0.9, (N, SIZE, SIZE, 3)).astype(np.float32))


def random_z(seed: int, n: int = N, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, (n, Z_DIM)).astype(np.float32)



# ----------------------------------------------------------------------------
# The objective and its gradient
# ----------------------------------------------------------------------------

def softplus(x):
    return np.logaddexp(0.0, x)


@pytest.mark.parametrize("variant", ["center", "weighted", "lowres"])
def test_loss_matches_numpy(model, images, variant):
    lam = 0.37
    if variant == "lowres":
        mask = masking.make_mask("lowres", SIZE)
        weights = mask
    else:
        mask = masking.make_mask("center", SIZE)
        weights = masking.weighted_mask(mask) if variant == "weighted" else mask
    completer = LatentOptimizer(model, mask, lam=lam, lowres=variant == "lowres",
                          weights=weights if variant == "weighted" else None)
    z = tf.constant(random_z(1))
    fake = model.generator(z, training=False).numpy()
    logits = model.discriminator(tf.constant(fake), training=False)[1].numpy()[:, 0]
    y = images.numpy()
    expected = np.abs(weights * fake - weights * y).sum(axis=(1, 2, 3)) + lam * softplus(-logits)
    if variant == "lowres":
        expected += np.abs(masking.block_mean(fake) - masking.block_mean(y)).sum(axis=(1, 2, 3))
    loss, fake_out = completer.loss(z, images)
    np.testing.assert_allclose(fake_out.numpy(), fake, atol=1e-6)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    assert np.ptp(logits) > 0  # the perceptual term is not a constant here


def test_gradient_matches_finite_differences_and_is_per_image(model, images):
    mask = masking.make_mask("center", SIZE)
    completer = LatentOptimizer(model, mask, lam=0.5)
    z0 = random_z(2)
    loss, grad, _ = completer.loss_and_gradient(tf.constant(z0), images)
    grad = grad.numpy()
    assert grad.shape == (N, Z_DIM) and np.abs(grad).max() > 1.0
    h = 1e-3
    for image, coord in [(0, 0), (1, 7), (3, 15)]:
        plus, minus = z0.copy(), z0.copy()
        plus[image, coord] += h
        minus[image, coord] -= h
        total = lambda z: float(tf.reduce_sum(completer.loss(tf.constant(z), images)[0]))  # noqa: E731
        numeric = (total(plus) - total(minus)) / (2 * h)
        assert numeric == pytest.approx(grad[image, coord], rel=0.03, abs=0.05)
    # Image i's gradient is that of its own loss: d loss_0 / dz is zero for the others...
    z = tf.constant(z0)
    with tf.GradientTape() as tape:
        tape.watch(z)
        first = completer.loss(z, images)[0][0]
    own = tape.gradient(first, z).numpy()
    np.testing.assert_allclose(own[0], grad[0], rtol=1e-5, atol=1e-5)
    assert np.all(own[1:] == 0)
    # ...and changing another image's z and target leaves image 0's loss and gradient alone.
    z1, y1 = z0.copy(), images.numpy().copy()
    z1[1:] = random_z(3)[1:]
    y1[1:] = -y1[1:]
    loss1, grad1, _ = completer.loss_and_gradient(tf.constant(z1), tf.constant(y1))
    assert loss1.numpy()[0] == pytest.approx(loss.numpy()[0], rel=1e-6)
    np.testing.assert_allclose(grad1.numpy()[0], grad[0], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------
# Update rules: numpy reimplementations of the original's formulas
# ----------------------------------------------------------------------------

ITERS, CHUNKS = 5, (2, 3)


def reference_trajectory(completer: LatentOptimizer, images, z0: np.ndarray, approach: str, params: dict,
                         seed: int | None = None):
    """[(z before iteration i, loss at it)] for i < ITERS, and the final z, in numpy.
    Gradients come from LatentOptimizer.loss_and_gradient (eager) at the numpy z."""
    def loss_grad(z):
        loss, grad, _ = completer.loss_and_gradient(tf.constant(z, tf.float32), images)
        return loss.numpy().astype(np.float64), grad.numpy().astype(np.float64)

    z = z0.astype(np.float64)
    trajectory, decisions = [], []
    v = np.zeros_like(z)
    m1, m2 = np.zeros_like(z), np.zeros_like(z)
    rng = tf.random.Generator.from_seed(seed) if seed is not None else None
    for i in range(ITERS):
        loss, g = loss_grad(z)
        trajectory.append((z.copy(), loss))
        if approach == "momentum":
            mom, lr = params["momentum"], params["lr"]
            v_new = mom * v - lr * g
            z = np.clip(z - mom * v + (1 + mom) * v_new, -1, 1)
            v = v_new
        elif approach == "adam":
            b1, b2, lr, eps = params["beta1"], params["beta2"], params["lr"], params["eps"]
            m1 = b1 * m1 + (1 - b1) * g
            m2 = b2 * m2 + (1 - b2) * g * g
            m_hat, v_hat = m1 / (1 - b1 ** (i + 1)), m2 / (1 - b2 ** (i + 1))
            z = np.clip(z - lr * m_hat / (np.sqrt(v_hat) + eps), -1, 1)
        else:  # hmc
            beta = params["hmc_beta"] * params["hmc_anneal"] ** i
            eps = params["hmc_eps"]
            p0 = rng.normal(z.shape).numpy().astype(np.float64)
            u = rng.uniform((z.shape[0],)).numpy().astype(np.float64)
            z_new, p, g_new, new_loss = z.copy(), p0.copy(), g, loss
            for _ in range(params["hmc_l"]):
                p = p - eps / 2 * beta * g_new
                z_new = np.clip(z_new + eps * p, -1, 1)
                new_loss, g_new = loss_grad(z_new)
                p = p - eps / 2 * beta * g_new
            e_old = beta * loss + (p0 ** 2).sum(axis=1) / 2
            e_new = beta * new_loss + (p ** 2).sum(axis=1) / 2
            accept = u <= np.exp(e_old - e_new)
            decisions.append(accept)
            z = np.where(accept[:, None], z_new, z)
    return trajectory, z, decisions


def run_in_chunks(completer: LatentOptimizer, images, z0: np.ndarray):
    z = tf.constant(z0)
    state = completer.initial_state(z)
    zs, losses, ends, start = [], [], [], 0
    for steps in CHUNKS:
        z, state, _, chunk_losses, chunk_zs = completer.run(z, state, images, start, steps)
        zs.extend(chunk_zs.numpy())
        losses.extend(chunk_losses.numpy())
        ends.append((start + steps, z.numpy()))
        start += steps
    return zs, losses, ends


UPDATE_CASES = {
    "momentum": dict(lr=0.001, momentum=0.9),
    "adam": dict(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8),
    # A large leapfrog step and inverse temperature: some proposals are accepted, some rejected.
    "hmc": dict(hmc_beta=1.0, hmc_eps=0.1, hmc_l=3, hmc_anneal=0.8),
}


@pytest.mark.parametrize("approach", list(UPDATE_CASES))
def test_update_rule_matches_numpy_reference(model, images, approach):
    params = UPDATE_CASES[approach]
    seed = 21
    mask = masking.make_mask("center", SIZE)
    completer = LatentOptimizer(model, mask, approach=approach, lam=0.1, seed=seed, **params)
    z0 = random_z(4, low=-0.95, high=0.95)
    trajectory, z_end, decisions = reference_trajectory(completer, images, z0, approach, params, seed)
    zs, losses, ends = run_in_chunks(completer, images, z0)
    for i, ((z_ref, loss_ref), z_port, loss_port) in enumerate(zip(trajectory, zs, losses)):
        np.testing.assert_allclose(z_port, z_ref, atol=2e-5, err_msg=f"z before iteration {i}")
        np.testing.assert_allclose(loss_port, loss_ref, rtol=1e-4, err_msg=f"loss at iteration {i}")
    np.testing.assert_allclose(ends[0][1], trajectory[CHUNKS[0]][0], atol=2e-5)
    np.testing.assert_allclose(ends[-1][1], z_end, atol=2e-5)
    # The test means something: z moved, and clipping or acceptance were exercised.
    assert np.abs(z_end - z0).max() > 0.02
    if approach == "hmc":
        decisions = np.array(decisions)
        assert decisions.any() and not decisions.all(), decisions
        # Annealing: hmcBeta * anneal^i, with i the global iteration across chunks.
        assert params["hmc_anneal"] != 1.0


def test_adam_bias_correction_uses_the_global_iteration(model, images):
    """Restarting the count at each chunk (i = 0 again) would give another trajectory."""
    params = UPDATE_CASES["adam"]
    mask = masking.make_mask("center", SIZE)
    completer = LatentOptimizer(model, mask, approach="adam", lam=0.1, **params)
    z0 = tf.constant(random_z(4, low=-0.95, high=0.95))
    z, state, *_ = completer.run(z0, completer.initial_state(z0), images, 0, 2)
    right, *_ = completer.run(z, state, images, 2, 1)
    wrong, *_ = completer.run(z, state, images, 0, 1)
    assert np.abs(right.numpy() - wrong.numpy()).max() > 1e-3


def test_batch_with_a_mask_per_image(model, images):
    """Four images with four masks in one batch: each image's loss is the numpy objective with its
    own mask, and its trajectory is the one it follows alone with that mask as the LatentOptimizer's mask;
    one mask given for every image is the LatentOptimizer's mask."""
    user = np.ones((SIZE, SIZE, 3), np.float32)
    user[2:7, 9:15] = 0.0
    masks = [masking.make_mask("center", SIZE), masking.make_mask("left", SIZE),
             masking.make_mask("random", SIZE, rng=np.random.default_rng(2)), user]
    weights = np.stack(masks)[..., :1]
    lam, params = 0.3, UPDATE_CASES["adam"]
    z0 = random_z(8, low=-0.95, high=0.95)
    batch = LatentOptimizer(model, approach="adam", lam=lam, **params)
    fake = model.generator(tf.constant(z0), training=False).numpy()
    logits = model.discriminator(tf.constant(fake), training=False)[1].numpy()[:, 0]
    expected = np.array([np.abs(m * (f - y)).sum() for m, f, y in zip(masks, fake, images.numpy())])
    loss, _ = batch.loss(tf.constant(z0), images, weights)
    np.testing.assert_allclose(loss.numpy(), expected + lam * softplus(-logits), rtol=1e-5)
    assert len({float(e) for e in expected}) == N

    z = tf.constant(z0)
    z_batch, _, _, losses, _ = batch.run(z, batch.initial_state(z), images, 0, 3, weights)
    for i, mask in enumerate(masks):
        alone = LatentOptimizer(model, mask, approach="adam", lam=lam, **params)
        zi = tf.constant(z0[i:i + 1])
        z_alone, _, _, losses_alone, _ = alone.run(zi, alone.initial_state(zi), images[i:i + 1], 0, 3)
        np.testing.assert_allclose(z_batch.numpy()[i], z_alone.numpy()[0], atol=1e-5)
        np.testing.assert_allclose(losses.numpy()[:, i], losses_alone.numpy()[:, 0], rtol=1e-5)
    assert np.abs(z_batch.numpy() - z0).max() > 0.02

    shared = LatentOptimizer(model, masks[0], lam=lam)
    same = np.repeat(weights[:1], N, axis=0)
    np.testing.assert_allclose(batch.loss(tf.constant(z0), images, same)[0].numpy(),
                               shared.loss(tf.constant(z0), images)[0].numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------
# Range recovery: the optimiser finds z* again from G(z*)'s known pixels
# ----------------------------------------------------------------------------

def hole_psnr(a: np.ndarray, b: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Per-image PSNR over the hole, images in [-1, 1] (peak-to-peak 2)."""
    diff = (a - b)[:, hole]
    mse = (diff ** 2).reshape(len(a), -1).mean(axis=1)
    return 10 * np.log10(4.0 / mse)


def flip_gradient(completer: LatentOptimizer) -> None:
    """Make the update rule climb the loss (a negative lr, which the settings refuse)."""
    descend = completer.loss_and_gradient

    def ascend(z, images, weights=None):
        loss, grad, fake = descend(z, images, weights)
        return loss, -grad, fake
    completer.loss_and_gradient = ascend


def test_range_recovery_from_known_pixels():
    """Targets y = G(z*), z* in [-0.8, 0.8]; center mask; lam = 0; the article's momentum rule.

    Measured: ~30 dB after 400 iterations, 10-13 dB at the random start (a zero gradient),
    ~8 dB with the gradient's sign flipped, so 22 dB separates working from broken.
    (The contextual loss sums |.| over the pixels, so its gradient is large for a 16x16
    image: the step is lr 0.0005 here rather than the article's 0.01 at 64x64.)
    """
    bound, iters, lr = 22.0, 400, 0.0005
    model = scaled_model(seed=3)
    mask = masking.make_mask("center", SIZE)
    hole = mask[:, :, 0] < 0.5
    z_star = random_z(1, low=-0.8, high=0.8)
    y = model.generate(tf.constant(z_star))
    z0 = tf.constant(random_z(2))
    psnr = {}
    for name in ("descent", "ascent"):
        completer = LatentOptimizer(model, mask, approach="momentum", lam=0.0, lr=lr, seed=0)
        if name == "ascent":
            flip_gradient(completer)
        z, *_ = completer.run(z0, completer.initial_state(z0), y, 0, iters)
        psnr[name] = hole_psnr(model.generate(z).numpy(), y.numpy(), hole)
    psnr["start"] = hole_psnr(model.generate(z0).numpy(), y.numpy(), hole)
    assert np.all(psnr["descent"] > bound), psnr
    assert np.all(psnr["start"] < bound), psnr    # a zero gradient never moves from here
    assert np.all(psnr["ascent"] < bound), psnr   # a wrong sign walks away


def test_bfloat16_completion_reaches_the_float32_loss_within_one_percent():
    """Same weights, images, mask and start z: the bfloat16 run's final z is as good as float32's.

    The images are random, so that (as with real photographs) G cannot match them exactly and
    the loss settles well above bfloat16's rounding; both final z are scored by the float32
    model. Measured: the loss falls from ~326 to ~249.5 in both, within 0.05% of each other.
    """
    iters, lr = 200, 0.0005
    mask = masking.make_mask("center", SIZE)
    float32 = scaled_model(seed=3)
    y = tf.constant(np.random.default_rng(11).uniform(-0.9, 0.9, (8, SIZE, SIZE, 3)).astype(np.float32))
    z0 = tf.constant(random_z(2, n=8))
    score = LatentOptimizer(float32, mask).loss
    final = {}
    for precision in ("off", "bfloat16"):
        completer = LatentOptimizer(float32 if precision == "off" else scaled_model(seed=3, compute_dtype=precision),
                              mask, approach="momentum", lr=lr, seed=0)
        z, *_ = completer.run(z0, completer.initial_state(z0), y, 0, iters)
        final[precision] = float(tf.reduce_mean(score(z, y)[0]))
    start = float(tf.reduce_mean(score(z0, y)[0]))
    assert final["off"] < 0.85 * start, (start, final)  # the optimisation did something to compare
    assert final["bfloat16"] == pytest.approx(final["off"], rel=0.01), final


# ----------------------------------------------------------------------------
# zCandidates
# ----------------------------------------------------------------------------

def test_best_of_candidates_is_the_per_image_minimum(model, images):
    candidates, seed = 5, 8
    mask = masking.make_mask("center", SIZE)
    completer = LatentOptimizer(model, mask, lam=0.1, seed=seed)
    best = completer.best_of(images, candidates).numpy()
    # The same draws, in the same order, from a copy of the generator.
    rng = tf.random.Generator.from_seed(seed)
    draws = [rng.uniform([N, Z_DIM], -1.0, 1.0).numpy() for _ in range(candidates)]
    losses = np.stack([completer.loss(tf.constant(z), images)[0].numpy() for z in draws])
    pick = losses.argmin(axis=0)
    assert len(set(pick)) > 1  # different images prefer different candidates here
    np.testing.assert_array_equal(best, np.stack([draws[k][i] for i, k in enumerate(pick)]))
    best_loss = completer.loss(tf.constant(best), images)[0].numpy()
    np.testing.assert_allclose(best_loss, losses.min(axis=0), rtol=1e-6)
    assert np.all(best_loss <= losses[0])  # never worse than a single random start drawn the same way
    # initial_z uses best_of for more than one candidate, a plain draw otherwise.
    again = LatentOptimizer(model, mask, lam=0.1, seed=seed)
    np.testing.assert_array_equal(again.initial_z(images, candidates).numpy(), best)
    single = LatentOptimizer(model, mask, lam=0.1, seed=seed)
    np.testing.assert_array_equal(single.initial_z(images, 1).numpy(), draws[0])


# ----------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------

def test_engine_records_the_reference_trajectory_in_padded_batches_without_files(model, images, tmp_path,
                                                                                  monkeypatch):
    """Adam from a given z, 4 images in batches of 3 (the second padded): the record is the numpy
    reference's trajectory, the frames are G(z) at 0, 2, 4 and 5, progress comes once per chunk."""
    params = UPDATE_CASES["adam"]
    mask = masking.make_mask("center", SIZE)
    settings = CompletionSettings(approach="adam", lam=0.1, n_iter=ITERS, out_interval=2, batch_size=3,
                                  weighted_mask=False, seed=0, tune_g=False, **params)  # the fill: G(z) itself
    z0 = random_z(4, low=-0.95, high=0.95)
    trajectory, z_end, _ = reference_trajectory(LatentOptimizer(model, mask, settings), images, z0, "adam", params)
    engine, calls = CompletionEngine(model, settings), []
    monkeypatch.chdir(tmp_path)
    masks = np.broadcast_to(mask[..., :1], (N, SIZE, SIZE, 1))
    result = engine.complete(images.numpy(), masks, progress=calls.append, record=True, z=z0, start_frame=True)
    assert list(tmp_path.iterdir()) == []  # no file, anywhere the engine could write one
    assert result.losses.shape == (ITERS, N) and result.zs.shape == (ITERS, N, Z_DIM)
    for i, (z_ref, loss_ref) in enumerate(trajectory):
        np.testing.assert_allclose(result.zs[i], z_ref, atol=2e-5, err_msg=f"z before iteration {i}")
        np.testing.assert_allclose(result.losses[i], loss_ref, rtol=1e-4, err_msg=f"loss at iteration {i}")
    np.testing.assert_allclose(result.z, z_end, atol=2e-5)
    assert [iteration for iteration, _ in result.frames] == [0, 2, 4, ITERS]
    for iteration, fill in result.frames:
        z_at = z_end if iteration == ITERS else trajectory[iteration][0]
        expected = model.generate(tf.constant(z_at, tf.float32)).numpy()
        assert fill.shape == (N, SIZE, SIZE, 3) and fill.dtype == np.float32
        np.testing.assert_allclose(fill, expected, atol=1e-4, err_msg=f"frame {iteration}")
    np.testing.assert_array_equal(result.fill, result.frames[-1][1])
    np.testing.assert_allclose(result.loss, LatentOptimizer(model, mask, settings).loss(tf.constant(result.z), images)[0],
                               rtol=1e-5)
    # Progress: at each batch's start (its start's fill, asked for with start_frame), then once per
    # chunk (3 chunks in each of 2 batches), with the batch's rows.
    assert [(p.batch_index, p.done, p.frame_iteration) for p in calls] == \
        [(0, 0, 0), (0, 2, 0), (0, 4, 2), (0, 5, 4), (1, 5, 0), (1, 7, 0), (1, 9, 2), (1, 10, 4)]
    assert all(p.total == 10 and p.batches == 2 for p in calls)
    assert [len(p.loss) for p in calls] == [3, 3, 3, 3, 1, 1, 1, 1]
    np.testing.assert_allclose(calls[6].frame_loss, result.losses[2, 3:], rtol=1e-6)
    np.testing.assert_array_equal(calls[2].frame, result.frames[1][1][:3])
    for start, rows in ((calls[0], slice(0, 3)), (calls[4], slice(3, 4))):
        np.testing.assert_allclose(start.frame, result.frames[0][1][rows], atol=1e-5)
        np.testing.assert_allclose(start.loss, result.losses[0, rows], rtol=1e-5)
    plain = []  # without start_frame: once per chunk only
    engine.complete(images.numpy()[:3], masks[:3], progress=plain.append, z=z0[:3])
    assert [(p.done, p.frame_iteration) for p in plain] == [(2, 0), (4, 2), (5, 4)]


def test_padded_batches_give_each_image_its_result_alone(model, images):
    """Momentum with the weighted mask, a mask per image, 4 images in batches of 3: each image's
    final z and loss are those of completing it alone from the same z."""
    user = np.ones((SIZE, SIZE, 1), np.float32)
    user[2:7, 9:15] = 0.0
    masks = np.stack([masking.make_mask("center", SIZE), masking.make_mask("left", SIZE),
                      masking.make_mask("top", SIZE), np.repeat(user, 3, axis=2)])[..., :1]
    settings = CompletionSettings(approach="momentum", lr=0.001, n_iter=3, out_interval=2, batch_size=3)
    z0 = random_z(9, low=-0.95, high=0.95)
    together = CompletionEngine(model, settings).complete(images.numpy(), masks, z=z0)
    alone = CompletionEngine(model, settings)
    for i in range(N):
        one = alone.complete(images.numpy()[i:i + 1], masks[i:i + 1], z=z0[i:i + 1], pad_to=1)
        np.testing.assert_allclose(together.z[i], one.z[0], atol=1e-5)
        np.testing.assert_allclose(together.loss[i], one.loss[0], rtol=1e-5)
    assert np.abs(together.z - z0).max() > 0.01


def test_draw_z_is_the_z_that_complete_draws_for_one_image(model, images):
    """complete.py's settings with --seed 5: the engine's start z for one image (padded to the
    default 64 rows) is draw_z(5, 1, z_dim), and giving the engine that z changes nothing; the
    engine's compiled functions are traced once for both calls."""
    import complete
    settings, _ = complete.settings_from_args(complete.parse_args(["--seed", "5", "--nIter", "2", "x.png"]))
    engine = CompletionEngine(model, settings)
    mask = masking.make_mask("center", SIZE)[None, ..., :1]
    drawn = engine.complete(images.numpy()[:1], mask, record=True)
    np.testing.assert_array_equal(drawn.zs[0], draw_z(5, 1, Z_DIM))
    traced = engine.optimizer._run.experimental_get_tracing_count()
    given = engine.complete(images.numpy()[:1], mask, z=draw_z(5, 1, Z_DIM))
    np.testing.assert_array_equal(given.z, drawn.z)
    assert engine.optimizer._run.experimental_get_tracing_count() == traced
    assert not np.array_equal(draw_z(5, 1, Z_DIM), draw_z(6, 1, Z_DIM))


def test_uint8_images_are_read_as_the_original_reads_them(model):
    """uint8 in, [-1, 1] inside: the same result as the float images x / 127.5 - 1."""
    pixels = np.random.default_rng(4).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.broadcast_to(masking.make_mask("center", SIZE)[..., :1], (2, SIZE, SIZE, 1))
    settings = CompletionSettings(n_iter=1, batch_size=2, weighted_mask=False)
    z0 = random_z(5, n=2)
    engine = CompletionEngine(model, settings)
    as_uint8 = engine.complete(pixels, masks, z=z0)
    as_float = engine.complete(pixels.astype(np.float32) / 127.5 - 1.0, masks, z=z0)
    np.testing.assert_array_equal(as_uint8.loss, as_float.loss)
    with pytest.raises(ValueError, match="masks must be"):
        engine.complete(pixels, masks[:1])


@pytest.mark.parametrize("field, value", [
    ("approach", "sgd"), ("n_iter", 0), ("n_iter", 2.5), ("lr", 0.0), ("lr", -0.01), ("lr", float("nan")),
    ("momentum", 1.0), ("beta2", -0.1), ("eps", 0), ("hmc_l", 0), ("hmc_anneal", float("inf")), ("lam", -1.0),
    ("out_interval", 0), ("batch_size", True), ("z_candidates", 0), ("seed", "1"), ("weighted_mask", 1),
    ("xla", None)])
def test_settings_refuse_bad_values_in_one_line(field, value):
    with pytest.raises(ValueError) as error:
        CompletionSettings(**{field: value})
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{field} must be ") and repr(value) in message
