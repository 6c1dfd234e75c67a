"""The completion maths on the device: the contextual + perceptual objective of Yeh et al.
and the update rules on z (the article's momentum, the repository's Adam, HMC), run in
compiled chunks so that nothing goes back to the host between iterations.
"""
from __future__ import annotations

import numpy as np

import masking
import utils
from model import DCGAN

utils.import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402

APPROACHES = ("momentum", "adam", "hmc")


class Completer:
    """Projected gradient descent (or HMC) on z for a batch of masked images, on the device.

    loss_i = sum |W_i * (G(z_i) - y_i)|  (+ sum |blockmean(G(z_i)) - blockmean(y_i)| for lowres)
             + lam * CE(D(G(z_i)), 1),
    with W_i image i's mask (1 = known) or its weighted version: the `weights` (N, S, S, 1) given
    with the images, so that a batch can mix masks, or else the mask given here, for every image.
    G and D use their moving batch-norm statistics, and only z moves. Iterations run in compiled chunks (`run`), so nothing
    goes back to the host between them.

    With a model built under a strategy's scope, `run` spreads the batch's images over the
    replicas (no image depends on another) and gathers them back: the results are those
    of one device, as z starts from the whole batch's draw and HMC's replicas each draw
    the whole batch's random numbers from their own copy of the generator and keep their
    rows. Build the Completer itself outside the scope.
    """

    def __init__(self, model: DCGAN, mask: np.ndarray | None = None, approach: str = "momentum", lam: float = 0.1,
                 lr: float = 0.01, momentum: float = 0.9, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, hmc_beta: float = 0.2, hmc_eps: float = 0.001, hmc_l: int = 100,
                 hmc_anneal: float = 1.0, lowres: bool = False, weights: np.ndarray | None = None,
                 seed: int | None = None, xla: bool = False):
        if approach not in APPROACHES:
            raise ValueError(f"unknown approach {approach!r}; choose from {', '.join(APPROACHES)}")
        self.model, self.approach, self.lam = model, approach, lam
        self.lr, self.momentum, self.beta1, self.beta2, self.eps = lr, momentum, beta1, beta2, eps
        self.hmc_beta, self.hmc_eps, self.hmc_l, self.hmc_anneal = hmc_beta, hmc_eps, hmc_l, hmc_anneal
        self.lowres = lowres
        # Every image's W when a call gives none; one channel, as a mask is alike in every channel.
        default = mask if weights is None else weights
        self.weights = None if default is None else tf.constant(np.asarray(default, np.float32)[..., :1])
        self.rng = tf.random.Generator.from_seed(seed) if seed is not None else \
            tf.random.Generator.from_non_deterministic_state()
        self._loss = tf.function(self.loss, reduce_retracing=True)
        self.strategy, self._replica_rngs = model.strategy, None
        if self.strategy is None:
            self._run = tf.function(self._run_chunk, jit_compile=xla, reduce_retracing=True)
            return
        self._chunk = tf.function(self._run_chunk, jit_compile=True) if xla else self._run_chunk
        self._run = tf.function(self._distributed_chunk, reduce_retracing=True)
        if approach == "hmc":
            self._replica_rngs = []
            for device in self.strategy.extended.worker_devices:
                with tf.device(device):
                    # A copy of the state (given the variable itself, the generators would share it).
                    self._replica_rngs.append(tf.random.Generator.from_state(tf.identity(self.rng.state),
                                                                             self.rng.algorithm))

    # -- the objective -----------------------------------------------------
    def batch_weights(self, images: tf.Tensor, weights=None) -> tf.Tensor:
        """Each image's W, (N, S, S, 1): the `weights` given, or the Completer's mask for every image."""
        if weights is not None:
            return tf.convert_to_tensor(weights, tf.float32)
        if self.weights is None:
            raise ValueError("no mask: give the Completer one, or the weights of each batch")
        return tf.broadcast_to(self.weights, tf.concat([tf.shape(images)[:3], [1]], 0))

    def loss(self, z: tf.Tensor, images: tf.Tensor, weights=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Per-image loss (N,) and G(z) (N, S, S, C); weights: each image's W (see batch_weights)."""
        weights = self.batch_weights(images, weights)
        fake = self.model.generator(z, training=False)
        _, logits = self.model.discriminator(fake, training=False)
        contextual = tf.reduce_sum(tf.abs(weights * fake - weights * images), axis=[1, 2, 3])
        if self.lowres:
            contextual += tf.reduce_sum(tf.abs(_block_mean(fake) - _block_mean(images)), axis=[1, 2, 3])
        perceptual = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(logits), logits=logits)[:, 0]
        return contextual + self.lam * perceptual, fake

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
        return {"momentum": (zeros,), "adam": (zeros, zeros), "hmc": ()}[self.approach]

    def _momentum(self, z, grad, state, i):
        """The article's rule: v' = m v - lr g; z += -m v + (1 + m) v'; clip to [-1, 1]."""
        (velocity,) = state
        new_velocity = self.momentum * velocity - self.lr * grad
        z = z - self.momentum * velocity + (1.0 + self.momentum) * new_velocity
        return tf.clip_by_value(z, -1.0, 1.0), (new_velocity,)

    def _adam(self, z, grad, state, i):
        """The original repository's Adam with bias correction by (1 - beta^(i+1))."""
        m, v = state
        m = self.beta1 * m + (1.0 - self.beta1) * grad
        v = self.beta2 * v + (1.0 - self.beta2) * grad * grad
        t = tf.cast(i + 1, tf.float32)
        m_hat, v_hat = m / (1.0 - self.beta1 ** t), v / (1.0 - self.beta2 ** t)
        z = z - self.lr * m_hat / (tf.sqrt(v_hat) + self.eps)
        return tf.clip_by_value(z, -1.0, 1.0), (m, v)

    def _hmc(self, z, grad, loss, images, weights, i):
        """One Hamiltonian Monte Carlo proposal (hmcL leapfrog steps) and a per-image Metropolis test.

        Random numbers, in order: momentum v ~ N(0, I) (N, z_dim), then u ~ U(0, 1) (N,).
        """
        beta = self.hmc_beta * self.hmc_anneal ** tf.cast(i, tf.float32)
        half = self.hmc_eps / 2.0 * beta
        v_old = self._draw("normal", tf.shape(z))
        u = self._draw("uniform", tf.shape(loss))
        z_new, v, g = z, v_old, grad
        new_loss = loss
        for _ in tf.range(self.hmc_l):
            v = v - half * g
            z_new = tf.clip_by_value(z_new + self.hmc_eps * v, -1.0, 1.0)
            new_loss, g, _ = self.loss_and_gradient(z_new, images, weights)
            v = v - half * g
        energy_old = beta * loss + tf.reduce_sum(v_old ** 2, axis=1) / 2.0
        energy_new = beta * new_loss + tf.reduce_sum(v ** 2, axis=1) / 2.0
        accept = tf.exp(energy_old - energy_new)
        reject = u > accept  # never when accept >= 1, as u < 1
        return tf.where(reject[:, None], z, z_new)

    def _run_chunk(self, z, state, images, weights, start, steps):
        """`steps` iterations from global iteration `start`; returns the new z and state,
        G(z) at the chunk's first iteration, and every iteration's loss and z."""
        losses = tf.TensorArray(tf.float32, size=steps)
        zs = tf.TensorArray(tf.float32, size=steps)
        first_fake = tf.zeros_like(images)
        for k in tf.range(steps):
            i = start + k
            loss, grad, fake = self.loss_and_gradient(z, images, weights)
            first_fake = tf.cond(k == 0, lambda: fake, lambda: first_fake)
            losses, zs = losses.write(k, loss), zs.write(k, z)
            if self.approach == "hmc":
                z = self._hmc(z, grad, loss, images, weights, i)
            elif self.approach == "adam":
                z, state = self._adam(z, grad, state, i)
            else:
                z, state = self._momentum(z, grad, state, i)
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

    def best_of(self, images: tf.Tensor, candidates: int, weights=None) -> tf.Tensor:
        """Start z: for each image, the best of `candidates` random z by loss (one forward pass each)."""
        weights = self.batch_weights(images, weights)
        best_z = self.rng.uniform([images.shape[0], self.model.z_dim], -1.0, 1.0)
        best_loss, _ = self._loss(best_z, images, weights)
        for _ in range(candidates - 1):
            z = self.rng.uniform(best_z.shape, -1.0, 1.0)
            loss, _ = self._loss(z, images, weights)
            better = loss < best_loss
            best_z, best_loss = tf.where(better[:, None], z, best_z), tf.minimum(loss, best_loss)
        return best_z

    def initial_z(self, images: tf.Tensor, candidates: int = 0, weights=None) -> tf.Tensor:
        if candidates > 1:
            return self.best_of(images, candidates, weights)
        return self.rng.uniform([images.shape[0], self.model.z_dim], -1.0, 1.0)

    def generate(self, z: tf.Tensor) -> tf.Tensor:
        return self.model.generator(z, training=False)


def _block_mean(images: tf.Tensor, factor: int = masking.LOWRES_FACTOR) -> tf.Tensor:
    """Means of factor x factor blocks, as the original's lowres images."""
    size, channels = images.shape[1], images.shape[-1]
    blocks = tf.reshape(images, [-1, size // factor, factor, size // factor, factor, channels])
    return tf.reduce_mean(blocks, axis=[2, 4])
