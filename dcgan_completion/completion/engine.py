"""The completion: the contextual + perceptual objective of Yeh et al. and the update rules on z
(the article's momentum, the repository's Adam, HMC) run in compiled chunks on the device
(`LatentOptimizer`, the maths), and `CompletionEngine`, which completes any number of masked images
in padded batches and returns the results: no printing, no files (complete.py's writers and a
web server both drive it).
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

import utils
from dcgan_completion.completion import masks as masking
from dcgan_completion.completion.settings import CompletionSettings, Schedule
from model import DCGAN

JITTER = 0.1  # --zCandidates around the encoder's z: its spread (z's range is [-1, 1])


class LatentOptimizer:
    """Projected gradient descent (or HMC) on z for a batch of masked images, on the device.

    loss_i = sum |W_i * (G(z_i) - y_i)|  (+ sum |blockmean(G(z_i)) - blockmean(y_i)| for lowres)
             + lam * CE(D(G(z_i)), 1),
    with W_i image i's mask (1 = known) or its weighted version: the `weights` (N, S, S, 1) given
    with the images, so that a batch can mix masks, or else the mask given here, for every image.
    G and D use their moving batch-norm statistics, and only z moves. Iterations run in compiled
    chunks (`run`), so nothing goes back to the host between them.

    With a model built under a strategy's scope, `run` spreads the batch's images over the
    replicas (no image depends on another) and gathers them back: the results are those
    of one device, as z starts from the whole batch's draw and HMC's replicas each draw
    the whole batch's random numbers from their own copy of the generator and keep their
    rows. Build the LatentOptimizer itself outside the scope.
    """

    def __init__(self, model: DCGAN, mask: np.ndarray | None = None, settings: CompletionSettings | None = None,
                 weights: np.ndarray | None = None, **changes):
        """settings: the update rule's and the loss's constants (CompletionSettings() when None), with
        `changes` to its fields applied (LatentOptimizer(model, mask, approach="momentum", lr=0.001));
        the batching fields and weighted_mask are the engine's business, not the LatentOptimizer's."""
        settings = settings if settings is not None else CompletionSettings()
        self.settings = settings = dataclasses.replace(settings, **changes) if changes else settings
        self.model = model
        # Every image's W when a call gives none; one channel, as a mask is alike in every channel.
        default = mask if weights is None else weights
        self.weights = None if default is None else tf.constant(np.asarray(default, np.float32)[..., :1])
        self.rng = tf.random.Generator.from_seed(settings.seed) if settings.seed is not None else \
            tf.random.Generator.from_non_deterministic_state()
        # No autograph: the loops are tf.while_loop already, and converting G's and D's code to
        # graph code was most of a first trace's time (docs/speed.md#the-first-answer).
        self.compiled_loss = tf.function(self.loss, reduce_retracing=True, autograph=False)
        self.strategy, self._replica_rngs = model.strategy, None
        if self.strategy is None:
            self._run = tf.function(self._run_chunk, jit_compile=settings.xla, reduce_retracing=True,
                                    autograph=False)
            return
        self._chunk = tf.function(self._run_chunk, jit_compile=True, autograph=False) if settings.xla else \
            self._run_chunk
        self._run = tf.function(self._distributed_chunk, reduce_retracing=True, autograph=False)
        if settings.approach == "hmc":
            self._replica_rngs = []
            for device in self.strategy.extended.worker_devices:
                with tf.device(device):
                    # A copy of the state (given the variable itself, the generators would share it).
                    self._replica_rngs.append(tf.random.Generator.from_state(tf.identity(self.rng.state),
                                                                             self.rng.algorithm))

    # -- the objective -----------------------------------------------------
    def batch_weights(self, images: tf.Tensor, weights=None) -> tf.Tensor:
        """Each image's W, (N, S, S, 1): the `weights` given, or the LatentOptimizer's mask for every image."""
        if weights is not None:
            return tf.convert_to_tensor(weights, tf.float32)
        if self.weights is None:
            raise ValueError("no mask: give the LatentOptimizer one, or the weights of each batch")
        return tf.broadcast_to(self.weights, tf.concat([tf.shape(images)[:3], [1]], 0))

    def loss(self, z: tf.Tensor, images: tf.Tensor, weights=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Per-image loss (N,) and G(z) (N, S, S, C); weights: each image's W (see batch_weights)."""
        weights = self.batch_weights(images, weights)
        fake = self.model.sampler(z, training=False)
        _, logits = self.model.discriminator(fake, training=False)
        contextual = tf.reduce_sum(tf.abs(weights * fake - weights * images), axis=[1, 2, 3])
        if self.settings.lowres:
            contextual += tf.reduce_sum(tf.abs(block_mean(fake) - block_mean(images)), axis=[1, 2, 3])
        perceptual = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(logits), logits=logits)[:, 0]
        return contextual + self.settings.lam * perceptual, fake

    def loss_and_gradient(self, z: tf.Tensor, images: tf.Tensor, weights=None):
        """(loss (N,), d sum(loss) / dz (N, z_dim), G(z))."""
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss, fake = self.loss(z, images, weights)
            total = tf.reduce_sum(loss)  # image i's gradient is that of its own loss
        return loss, tape.gradient(total, z), fake

    # -- update rules --------------------------------------------------------
    def initial_state(self, z: tf.Tensor) -> tuple:
        zeros = tf.zeros_like(z)
        return {"momentum": (zeros,), "adam": (zeros, zeros), "hmc": ()}[self.settings.approach]

    def momentum_update(self, z: tf.Tensor, grad: tf.Tensor, state: tuple, i) -> tuple[tf.Tensor, tuple]:
        """The article's rule: v' = m v - lr g; z += -m v + (1 + m) v'; clip to [-1, 1]."""
        (velocity,) = state
        momentum, lr = self.settings.momentum, self.settings.lr
        new_velocity = momentum * velocity - lr * grad
        z = z - momentum * velocity + (1.0 + momentum) * new_velocity
        return tf.clip_by_value(z, -1.0, 1.0), (new_velocity,)

    def adam_update(self, z: tf.Tensor, grad: tf.Tensor, state: tuple, i) -> tuple[tf.Tensor, tuple]:
        """The original repository's Adam with bias correction by (1 - beta^(i+1)), i the global iteration."""
        m, v = state
        beta1, beta2 = self.settings.beta1, self.settings.beta2
        m = beta1 * m + (1.0 - beta1) * grad
        v = beta2 * v + (1.0 - beta2) * grad * grad
        t = tf.cast(i + 1, tf.float32)
        m_hat, v_hat = m / (1.0 - beta1 ** t), v / (1.0 - beta2 ** t)
        z = z - self.settings.lr * m_hat / (tf.sqrt(v_hat) + self.settings.eps)
        return tf.clip_by_value(z, -1.0, 1.0), (m, v)

    def hmc_update(self, z: tf.Tensor, grad: tf.Tensor, loss: tf.Tensor, images: tf.Tensor, weights: tf.Tensor,
                   i) -> tf.Tensor:
        """One Hamiltonian Monte Carlo proposal (hmcL leapfrog steps) and a per-image Metropolis test.

        Random numbers, in order: momentum v ~ N(0, I) (N, z_dim), then u ~ U(0, 1) (N,).
        """
        hmc = self.settings
        beta = hmc.hmc_beta * hmc.hmc_anneal ** tf.cast(i, tf.float32)
        half = hmc.hmc_eps / 2.0 * beta
        v_old = self._draw("normal", tf.shape(z))
        u = self._draw("uniform", tf.shape(loss))

        def leapfrog(z_new, v, g, new_loss):
            v = v - half * g
            z_new = tf.clip_by_value(z_new + hmc.hmc_eps * v, -1.0, 1.0)
            new_loss, g, _ = self.loss_and_gradient(z_new, images, weights)
            return z_new, v - half * g, g, new_loss

        z_new, v, _, new_loss = tf.while_loop(lambda *_: True, leapfrog, (z, v_old, grad, loss),
                                              maximum_iterations=hmc.hmc_l)
        energy_old = beta * loss + tf.reduce_sum(v_old ** 2, axis=1) / 2.0
        energy_new = beta * new_loss + tf.reduce_sum(v ** 2, axis=1) / 2.0
        accept = tf.exp(energy_old - energy_new)
        reject = u > accept  # never when accept >= 1, as u < 1
        return tf.where(reject[:, None], z, z_new)

    def _run_chunk(self, z, state, images, weights, start, steps):
        """`steps` iterations from global iteration `start`; returns the new z and state,
        G(z) at the chunk's first iteration, and every iteration's loss and z."""
        def iteration(k, z, state, first_fake, losses, zs):
            i = start + k
            loss, grad, fake = self.loss_and_gradient(z, images, weights)
            first_fake = tf.cond(k == 0, lambda: fake, lambda: first_fake)
            losses, zs = losses.write(k, loss), zs.write(k, z)
            if self.settings.approach == "hmc":
                z = self.hmc_update(z, grad, loss, images, weights, i)
            elif self.settings.approach == "adam":
                z, state = self.adam_update(z, grad, state, i)
            else:
                z, state = self.momentum_update(z, grad, state, i)
            return k + 1, z, state, first_fake, losses, zs

        start_values = (tf.constant(0), z, state, tf.zeros_like(images),
                        tf.TensorArray(tf.float32, size=steps), tf.TensorArray(tf.float32, size=steps))
        _, z, state, first_fake, losses, zs = tf.while_loop(lambda k, *_: k < steps, iteration, start_values)
        return z, state, first_fake, losses.stack(), zs.stack()

    def _draw(self, distribution: str, shape: tf.Tensor) -> tf.Tensor:
        """Random numbers of this shape; a replica's rows of the whole batch's under a strategy."""
        if self._replica_rngs is None:
            return getattr(self.rng, distribution)(shape)
        replica = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
        replicas = self.strategy.num_replicas_in_sync
        whole = getattr(self._replica_rngs[replica], distribution)(tf.concat([shape[:1] * replicas, shape[1:]], 0))
        return whole[replica * shape[0]:(replica + 1) * shape[0]]

    def run(self, z, state, images, start: int, steps: int, weights=None):
        """Run `steps` iterations on the device (see _run_chunk), or spread over the replicas;
        weights: each image's W (see batch_weights)."""
        start, steps = tf.constant(start, tf.int32), tf.constant(steps, tf.int32)
        weights = self.batch_weights(images, weights)
        if self.strategy is None:
            return self._run(z, state, images, weights, start, steps)
        for rng in self._replica_rngs or ():
            rng.reset(self.rng.state)
        split = self.model.distribute_batch
        out = self._run(split(z), tuple(split(s) for s in state), split(images), split(weights), start, steps)
        if self._replica_rngs:
            self.rng.reset(self._replica_rngs[0].state)
        z, state, fake, losses, zs = (self._gather(x, axis) for x, axis in zip(out, (0, 0, 0, 1, 1)))
        return z, state, fake, losses, zs

    def _distributed_chunk(self, *args):
        return self.strategy.run(self._chunk, args=args)

    def _gather(self, values, axis: int):
        """The replicas' rows, in order, as one tensor (or a tuple of them)."""
        if isinstance(values, tuple):
            return tuple(self._gather(v, axis) for v in values)
        return tf.concat(self.strategy.experimental_local_results(values), axis=axis)

    def best_of(self, images: tf.Tensor, candidates: int, weights=None, start=None) -> tf.Tensor:
        """Start z: for each image, the best by loss (one forward pass each) of `candidates` random z,
        or of `start` (an encoder's guess) and candidates - 1 draws around it (+ N(0, JITTER^2), clipped)."""
        if candidates <= 1 and start is not None:
            return tf.convert_to_tensor(start, tf.float32)  # no other candidate: no loss to compare
        weights = self.batch_weights(images, weights)
        shape = [images.shape[0], self.model.z_dim]
        draw = (lambda: self.rng.uniform(shape, -1.0, 1.0)) if start is None else \
            (lambda: tf.clip_by_value(start + JITTER * self.rng.normal(shape), -1.0, 1.0))
        best_z = draw() if start is None else tf.convert_to_tensor(start, tf.float32)
        best_loss, _ = self.compiled_loss(best_z, images, weights)
        for _ in range(candidates - 1):
            z = draw()
            loss, _ = self.compiled_loss(z, images, weights)
            better = loss < best_loss
            best_z, best_loss = tf.where(better[:, None], z, best_z), tf.minimum(loss, best_loss)
        return best_z

    def initial_z(self, images: tf.Tensor, candidates: int = 0, weights=None) -> tf.Tensor:
        if candidates > 1:
            return self.best_of(images, candidates, weights)
        return self.rng.uniform([images.shape[0], self.model.z_dim], -1.0, 1.0)

    def generate(self, z: tf.Tensor) -> tf.Tensor:
        return self.model.sampler(z, training=False)


def block_mean(images: tf.Tensor) -> tf.Tensor:
    """masking.block_mean on tensors: the original's lowres images, in the loss."""
    return masking.block_mean(images, reshape=tf.reshape, mean=tf.reduce_mean)


def weighted_masks(masks: tf.Tensor, window: int = masking.WEIGHTED_MASK_WINDOW) -> tf.Tensor:
    """masking.weighted_mask on a batch of tensors (N, S, S, 1) -> (N, S, S, 1), in the graph (an
    exported SavedModel's): the same rule, the window's mean of the missing share taken by a
    convolution over the symmetrically padded masks, as scipy's convolve2d(mode="same", boundary="symm")."""
    known = tf.convert_to_tensor(masks, tf.float32)[..., :1]
    padded = tf.pad(1.0 - known, [[0, 0], [window // 2, (window - 1) // 2], [window // 2, (window - 1) // 2], [0, 0]],
                    mode="SYMMETRIC")
    kernel = tf.fill([window, window, 1, 1], 1.0 / window ** 2)
    missing_share = tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
    return known * missing_share


# ----------------------------------------------------------------------------
# The engine: masked images in, results out
# ----------------------------------------------------------------------------

def draw_z(seed: int, count: int, z_dim: int) -> np.ndarray:
    """The start z (count, z_dim) that complete.py draws for `count` images with --seed seed and
    --zCandidates 1 in one batch (a padded batch's first rows are the same numbers): a web
    server gives each job the z of its own seed, so that its result does not depend on the other
    jobs that share its batch (except under HMC, whose draws come from the engine's generator)."""
    return tf.random.Generator.from_seed(seed).uniform([count, z_dim], -1.0, 1.0).numpy()


def draw_z_in_graph(seed: tf.Tensor, count, z_dim) -> tf.Tensor:
    """draw_z's numbers from a seed tensor (int64 scalar), without a generator variable: in a
    graph (an exported SavedModel's), where the seed is an input. Generator.from_seed(seed) holds
    the Philox state [seed, s, s] (the integer's 64-bit words, s = -1 for a negative seed, else 0:
    counter = the first two, key = the last), and its first uniform draw is the stateless Philox
    draw of that key and counter, scaled to [-1, 1) as Generator.uniform scales it."""
    seed = tf.cast(seed, tf.int64)
    high = tf.where(seed < 0, tf.constant(-1, tf.int64), tf.constant(0, tf.int64))
    counter = tf.bitcast(tf.stack([seed, high]), tf.uint64)
    key = tf.bitcast(tf.reshape(high, [1]), tf.uint64)
    unit = tf.raw_ops.StatelessRandomUniformV2(shape=tf.stack([tf.cast(count, tf.int64), tf.cast(z_dim, tf.int64)]),
                                               key=key, counter=counter, alg=tf.random.Algorithm.PHILOX.value,
                                               dtype=tf.float32)
    minval, maxval = tf.constant(-1.0), tf.constant(1.0)
    return tf.add(unit * (maxval - minval), minval)


@dataclass(frozen=True)
class Progress:
    """What the engine reports after each compiled chunk (and, asked for a start frame, before a batch's
    first, with the start's fill as frame 0): for a progress bar, or a live preview."""
    batch_index: int          # this batch, of `batches`
    batches: int
    done: int                 # iterations done in all batches so far, of `total` (batches * n_iter)
    total: int
    loss: np.ndarray          # (N_batch,) each image's loss at the chunk's last iteration
    frame_iteration: int      # the chunk's first iteration
    frame: np.ndarray         # (N_batch, S, S, C) float32 G(z) in [-1, 1] at frame_iteration
    frame_loss: np.ndarray    # (N_batch,) the loss of that frame


@dataclass
class CompletionResult:
    """The completion of N images; the record fields only with complete(..., record=True)."""
    z: np.ndarray                     # (N, z_dim) the final z
    fill: np.ndarray                  # (N, S, S, C) float32 G(z) in [-1, 1] at the end
    loss: np.ndarray                  # (N,) each image's final loss
    losses: np.ndarray | None = None  # (n_iter, N) the loss at the start of each iteration
    zs: np.ndarray | None = None      # (n_iter, N, z_dim) z at the start of each iteration
    frames: list[tuple[int, np.ndarray]] | None = None  # (iteration, fill (N, S, S, C)) at 0,
    # out_interval, 2 * out_interval, ... and n_iter: the frames complete.py writes
    tuned_steps: np.ndarray | None = None  # (N,) with tune_g: the tuning step each fill is from (0: untuned)
    search_fill: np.ndarray | None = None  # with tune_g: G(z) before the tuning (how well G alone explains the image)

    @staticmethod
    def concatenate(parts: list[CompletionResult]) -> CompletionResult:
        """The batches' results as one, in order."""
        join = (lambda name, axis=0: None if getattr(parts[0], name) is None else
                np.concatenate([getattr(p, name) for p in parts], axis=axis))
        frames = None
        if parts[0].frames is not None:
            frames = [(iteration, np.concatenate([p.frames[k][1] for p in parts]))
                      for k, (iteration, _) in enumerate(parts[0].frames)]
        return CompletionResult(join("z"), join("fill"), join("loss"), join("losses", 1), join("zs", 1), frames,
                                join("tuned_steps"), join("search_fill"))


class CompletionEngine:
    """Completes masked images with a model and CompletionSettings; reusable (the compiled
    functions are built once per engine, and traced once per batch shape), prints nothing and
    writes no file. The z draws, zCandidates and HMC's draws come from one generator seeded
    with settings.seed, in complete.py's order, so the same settings give complete.py's results."""

    def __init__(self, model: DCGAN, settings: CompletionSettings | None = None, encoder=None):
        """encoder: an encoder.Encoder for model's G: each batch's z starts at its guess from the known
        pixels (jittered candidates around it with settings.z_candidates), unless a z is given."""
        self.model, self.encoder = model, encoder
        self.optimizer = LatentOptimizer(model, settings=settings)
        self.settings = self.optimizer.settings
        self.schedule = Schedule.of(self.settings)  # complete()'s, unless it is given another
        self.replicas = model.strategy.num_replicas_in_sync if model.strategy is not None else 1
        self._tuner = None    # built at the first tuning (a copy of G and its Adam slots)
        self._warming = None  # the thread tracing the tuner's graph, until the first tuning waits for it

    def batch_count(self, count: int, pad_to: int | None = None) -> int:
        return -(-count // (pad_to or self.schedule.batch_size))

    def complete(self, images: np.ndarray, masks: np.ndarray, progress: Callable[[Progress], None] | None = None,
                 record: bool = False, z: np.ndarray | None = None, pad_to: int | None = None,
                 schedule: Schedule | None = None, start_frame: bool = False,
                 tuned: Callable[[int], None] | None = None) -> CompletionResult:
        """Complete N images: uint8 (N, S, S, C), or float in [-1, 1]; masks float (N, S, S, 1),
        1 = keep (weighted as the paper does with settings.weighted_mask). z: the start (N, z_dim),
        else drawn from the engine's generator. pad_to: images per compiled batch (default
        settings.batch_size, or N when N is smaller); each batch is padded to it, rounded up to a
        multiple of the replicas. schedule: the iterations, start and weights (default: the engine's
        settings'), so that one engine's compiled functions serve every schedule.
        progress is called after every compiled chunk, and with start_frame (a live view) also before
        a batch's first chunk, with the start's fill as frame 0 (one more forward pass a batch).
        tuned is called with 1 after each image's tuning of G (schedule.tune_g), for a progress bar."""
        return CompletionResult.concatenate([result for _, result in
                                             self.complete_batches(images, masks, progress, record, z, pad_to,
                                                                   schedule, start_frame, tuned)])

    def complete_batches(self, images: np.ndarray, masks: np.ndarray,
                         progress: Callable[[Progress], None] | None = None, record: bool = False,
                         z: np.ndarray | None = None,
                         pad_to: int | None = None, schedule: Schedule | None = None,
                         start_frame: bool = False,
                         tuned: Callable[[int], None] | None = None) -> Iterator[tuple[slice, CompletionResult]]:
        """complete(), one batch at a time: (the batch's rows of the input, its result)."""
        images, masks = self._check(images, masks, z)
        schedule = schedule or self.schedule
        # Fewer images than a batch: a batch of just them (16 faces must not cost 64).
        size = pad_to or min(schedule.batch_size, len(images))
        batches = self.batch_count(len(images), size)
        for index in range(batches):
            rows = slice(index * size, (index + 1) * size)
            start_z = None if z is None else np.asarray(z, np.float32)[rows]
            yield rows, self._complete_batch(images[rows], masks[rows], start_z, size, (index, batches),
                                             progress, record, schedule, start_frame, tuned)

    def _check(self, images, masks, z) -> tuple[np.ndarray, np.ndarray]:
        images, masks = np.asarray(images), np.asarray(masks, np.float32)
        size, channels = self.model.image_size, self.model.c_dim
        if images.ndim != 4 or images.shape[1:] != (size, size, channels) or len(images) == 0:
            raise ValueError(f"images must be (N, {size}, {size}, {channels}) with N >= 1, not {images.shape}")
        if masks.shape[:3] != images.shape[:3]:
            raise ValueError(f"masks must be (N, {size}, {size}, 1) for images {images.shape}, not {masks.shape}")
        if z is not None and np.shape(z) != (len(images), self.model.z_dim):
            raise ValueError(f"z must be ({len(images)}, {self.model.z_dim}), not {np.shape(z)}")
        return images, masks[..., :1]

    def weights(self, masks: np.ndarray, schedule: Schedule | None = None) -> np.ndarray:
        """Each image's W of the contextual loss (N, S, S, 1): its mask, or the paper's weighted mask."""
        if not (schedule or self.schedule).weighted_mask:
            return masks
        return np.stack([masking.weighted_mask(mask) for mask in masks]).astype(np.float32)

    def _complete_batch(self, images, masks, z, size, where, progress, record, schedule: Schedule,
                        start_frame: bool, tuned) -> CompletionResult:
        """One batch, padded to `size` rows rounded up to the replicas (one compiled shape; the
        padding, -1 images with zero weights, is dropped)."""
        count = len(images)
        rows = -(-size // self.replicas) * self.replicas
        y = tf.constant(_pad(_as_float(images), rows, -1.0))
        w = tf.constant(_pad(self.weights(masks, schedule), rows, 0.0))
        if z is not None:
            z = tf.constant(_pad(z, rows, 0.0))
        elif self.encoder is not None and schedule.z_init == "encoder":
            known = tf.constant(_pad(masks[..., :1], rows, 0.0))
            z = self.optimizer.best_of(y, schedule.z_candidates, w, start=self.encoder(y, known))
        else:
            z = self.optimizer.initial_z(y, schedule.z_candidates, w)
        state = self.optimizer.initial_state(z)
        if progress is not None and start_frame:  # the start's fill at once: a live view need not wait a chunk
            loss, fake = (value.numpy()[:count] for value in self.optimizer.loss(z, y, w))
            done = where[0] * schedule.n_iter
            progress(Progress(where[0], where[1], done, where[1] * schedule.n_iter, loss, 0, fake, loss))
        record_parts = ([], [], []) if record else None
        for start in range(0, schedule.n_iter, schedule.out_interval):
            steps = min(schedule.out_interval, schedule.n_iter - start)
            z, state, fake, losses, zs = self.optimizer.run(z, state, y, start, steps, w)
            if schedule.tune_g and self._tuner is None:  # after the first chunk's own trace, beside the others
                self._start_tuner()
            if record_parts is None and progress is None:
                continue  # nothing leaves the device
            fake, losses = fake.numpy()[:count], losses.numpy()[:, :count]
            if record_parts is not None:
                for part, value in zip(record_parts, ((start, fake), losses, zs.numpy()[:, :count])):
                    part.append(value)
            if progress is not None:
                done = where[0] * schedule.n_iter + start + steps
                progress(Progress(where[0], where[1], done, where[1] * schedule.n_iter, losses[-1], start, fake,
                                  losses[0]))
        # One forward pass, eagerly: tracing it would cost more than it does (docs/speed.md#the-first-answer).
        loss, fake = self.optimizer.loss(z, y, w)
        result = CompletionResult(z.numpy()[:count], fake.numpy()[:count], loss.numpy()[:count])
        if schedule.tune_g:
            result.search_fill = result.fill
            result.fill, result.tuned_steps = self._tune(result, y.numpy()[:count], w.numpy()[:count],
                                                         masks[:count], schedule, tuned)
        if record_parts is not None:
            frames, losses, zs = record_parts
            result.frames = frames + [(schedule.n_iter, result.fill)]
            result.losses, result.zs = np.concatenate(losses), np.concatenate(zs)
        return result

    def _start_tuner(self) -> None:
        """Build the tuner and trace its graph in a thread (tuning.GeneratorTuner.warm), which overlaps
        the z search: tracing is Python's work, while the search's chunks run in TensorFlow's."""
        from dcgan_completion.completion import tuning  # only where tuning runs

        self._tuner = tuning.GeneratorTuner(self.model, self.settings.lam)
        self._warming = threading.Thread(target=self._tuner.warm, daemon=True)
        self._warming.start()

    def _tune(self, result: CompletionResult, images: np.ndarray, weights: np.ndarray, masks: np.ndarray,
              schedule: Schedule, tuned: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each image's fill from a copy of G tuned to it (tuning.py), and the step it is from."""
        from dcgan_completion.completion import tuning

        if self._warming is not None:
            self._warming.join()
            self._warming = None
        fills, steps = result.fill.copy(), np.zeros(len(images), np.int32)
        for i in range(len(images)):
            held = tuning.held_out(masks[i])
            if not held.any():
                continue  # nothing to decide when to stop: the untuned fill
            outcome = self._tuner.tune(result.z[i], images[i], weights[i], held, schedule.tune_steps, schedule.tune_lr)
            fills[i], steps[i] = outcome.fill, outcome.best_step
            if tuned is not None:
                tuned(1)
        return fills, steps


def unexplained_share(images: np.ndarray, weights: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """How much of the fitted known pixels G(z) leaves unexplained, per image (N,): the mean absolute
    error of G(z) on them, weighted by the contextual loss's W (the pixels the completion fits), over
    that of the flat median colour of those pixels. 0: G explains them exactly; 1: no better than
    a flat colour. A face far from what the model knows stays near 1. images uint8 (N, S, S, C),
    weights (N, S, S, 1) (CompletionEngine.weights), fill G(z) in [-1, 1]."""
    truth = np.asarray(images, np.float64)
    fitted = (np.asarray(fill, np.float64) + 1.0) * 127.5
    w = np.asarray(weights, np.float64)[..., :1]
    total = w.sum(axis=(1, 2, 3)) * truth.shape[3]
    median = np.stack([np.median(t[m[..., 0] > 0], axis=0) if (m > 0).any() else t.reshape(-1, t.shape[2]).mean(0)
                       for t, m in zip(truth, w)])
    error = (w * np.abs(fitted - truth)).sum(axis=(1, 2, 3)) / np.maximum(total, 1e-12)
    flat = (w * np.abs(truth - median[:, None, None, :])).sum(axis=(1, 2, 3)) / np.maximum(total, 1e-12)
    return error / np.maximum(flat, FLAT_FLOOR)


FLAT_FLOOR = 8.0  # grey levels: fitted pixels flatter than this say little about the fit, so no share of it


def _as_float(images: np.ndarray) -> np.ndarray:
    """uint8 images as the original reads them ([-1, 1]), float ones as they are."""
    return utils.to_float(images) if images.dtype == np.uint8 else images.astype(np.float32)


def _pad(values: np.ndarray, rows: int, fill: float) -> np.ndarray:
    padded = np.full((rows,) + values.shape[1:], fill, np.float32)
    padded[:len(values)] = values
    return padded
