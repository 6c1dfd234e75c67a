"""Tuning G's weights to one image after the z search, so that the fill is this face, not a face.

z alone reaches only what G makes; after the search, a copy of G is tuned to the image by Adam on
the completion's own loss with z fixed (as PTI, Roich et al. 2022, and Deep Generative Prior,
Pan et al. 2020, tune theirs). Tuned too long, G learns the known pixels and forgets faces (coloured
speckles in the hole), so the image itself decides when to stop: a share of the known pixels next
to the hole is kept out of the loss, and the fill returned is the one of the step where G's error
on those held-out pixels was lowest (step 0, the untuned G, when tuning never helps there).

The model's own G is never changed: each image is tuned on a copy, reset from the model's sampler.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from scipy import ndimage

from model import DCGAN, Adam, Generator

HELD_RING = 6        # pixels of a 64x64 face (scaled with larger sides): known pixels this close to the hole
                     # may be held out
HELD_BLOCK = 4       # held out in a checkerboard of blocks this wide (64x64; a gap the size of a thin hole)
PATIENCE = 10        # steps without a better held-out error before the tuning stops
BETA1 = 0.9          # Adam's (TensorFlow 1's, as training's: model.Adam), the z search's beta1


@dataclass
class TuneResult:
    fill: np.ndarray     # (S, S, C) float32 in [-1, 1]: the tuned G(z) at its best step
    best_step: int       # the step whose held-out error was lowest (0: the untuned G's)
    steps: int           # the steps run (the tuning stops PATIENCE steps after its best)
    held_errors: np.ndarray  # (steps,) the mean absolute held-out error at each step, in [-1, 1] units


def held_out(known: np.ndarray, ring: int | None = None, block: int | None = None) -> np.ndarray:
    """float32 (S, S, 1): 1 for the known pixels (known (S, S, 1), 1 = known) within `ring` pixels of
    the hole that fall on the dark squares of a checkerboard of block x block squares; zeros when the
    image has no hole or no such pixel. ring and block default to HELD_RING and HELD_BLOCK, scaled from
    64 up to S (the same share of the face at 128 as at 64)."""
    keep = np.asarray(known)[..., 0] > 0.5
    scale = max(keep.shape[0], 64) / 64
    ring = max(1, round(HELD_RING * scale)) if ring is None else ring
    block = max(1, round(HELD_BLOCK * scale)) if block is None else block
    if keep.all() or not keep.any():
        return np.zeros(keep.shape + (1,), np.float32)
    near = ndimage.distance_transform_edt(keep) <= ring
    rows, cols = np.indices(keep.shape)
    board = ((rows // block + cols // block) % 2) == 0
    return (keep & near & board).astype(np.float32)[..., None]


class GeneratorTuner:
    """Tunes a copy of the model's sampler to one image at a time (batch 1, one compiled function)."""

    def __init__(self, model: DCGAN, lam: float):
        self.model, self.lam = model, lam
        source = model.sampler
        self.source = source.variables
        self.copy = Generator(model.image_size, model.z_dim, model.gf_dim, model.c_dim,
                              compute_dtype=model.compute_dtype, layout=model.layout, phases=model.phases,
                              name="tuned_generator")
        self.targets = self.copy.variables
        if [v.shape for v in self.source] != [v.shape for v in self.targets]:
            raise ValueError("the tuned copy of G does not match the model's sampler")
        self.trainable = self.copy.trainable_variables
        self.adam = Adam(self.trainable, learning_rate=0.0, beta1=BETA1, name="tuning_adam")  # lr: each call's
        self._tune = tf.function(self._tune_one, autograph=False, reduce_retracing=True)

    def tune(self, z: np.ndarray, image: np.ndarray, weights: np.ndarray, held: np.ndarray, steps: int,
             lr: float) -> TuneResult:
        """z (z_dim,), image (S, S, C) in [-1, 1], weights (S, S, 1): the contextual loss's W, held
        (S, S, 1): the pixels kept out of it that decide when to stop. At most `steps` Adam steps."""
        fill, best, done, errors = self._tune(tf.constant(z[None], tf.float32), tf.constant(image[None], tf.float32),
                                              tf.constant(weights[None], tf.float32),
                                              tf.constant(held[None], tf.float32), tf.constant(steps, tf.int32),
                                              tf.constant(lr, tf.float32))
        done = int(done)
        return TuneResult(fill.numpy()[0], int(best), done, errors.numpy()[:done])

    def warm(self) -> None:
        """Trace and optimise the tuning's graph (a run of no step), about 0.7 s on 2 cores: the engine
        does it in a thread while the z search runs, so that the first image does not wait for it."""
        size, channels = self.model.image_size, self.model.c_dim
        zeros = np.zeros((size, size, 1), np.float32)
        self.tune(np.zeros(self.model.z_dim, np.float32), np.zeros((size, size, channels), np.float32), zeros, zeros,
                  steps=0, lr=0.0)

    def _tune_one(self, z, image, weights, held, steps, lr):
        for target, source in zip(self.targets, self.source):
            target.assign(source)
        self.adam.reset()
        fit = weights * (1.0 - held)
        held_count = tf.maximum(tf.reduce_sum(held) * image.shape[-1], 1.0)

        def step(k, best_error, best_k, best_fill, errors):
            with tf.GradientTape() as tape:
                fake = self.copy(z, training=False)
                _, logits = self.model.discriminator(fake, training=False)
                contextual = tf.reduce_sum(tf.abs(fit * (fake - image)))
                perceptual = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(logits),
                                                                                   logits=logits))
                loss = contextual + self.lam * perceptual
            error = tf.reduce_sum(tf.abs(held * (fake - image))) / held_count
            better = error < best_error
            best_error = tf.where(better, error, best_error)
            best_k = tf.where(better, k, best_k)
            best_fill = tf.where(better, fake, best_fill)
            self.adam.apply(self.trainable, tape.gradient(loss, self.trainable), lr)
            return k + 1, best_error, best_k, best_fill, errors.write(k, error)

        def go_on(k, best_error, best_k, *_):
            return tf.logical_and(k < steps, k - best_k <= PATIENCE)

        start = (tf.constant(0), tf.constant(np.inf, tf.float32), tf.constant(0), tf.zeros_like(image),
                 tf.TensorArray(tf.float32, size=0, dynamic_size=True))
        k, _, best_k, best_fill, errors = tf.while_loop(go_on, step, start)
        return best_fill, best_k, k, errors.stack()
