"""The completion as a TensorFlow SavedModel: the whole optimisation of z in one graph, with a
serving signature, so that TensorFlow Serving (or any TensorFlow runtime) hosts it without this
project's Python (docs/serving.md).

The maths is the project's own: a `completion.LatentOptimizer` built for the settings gives the loss,
its gradient and the update rule (adam or momentum), `completion.weighted_masks` the paper's
weighted mask and `completion.draw_z_in_graph` complete.py's start z from the seed (or, where the
checkpoint has an encoder, its guess of z from the images and masks, and the seed is unused). The update
rule and its constants are fixed at export; the images, masks, iterations and seed are inputs.

    serving_default(images float32 (N, S, S, C) in [-1, 1], masks float32 (N, S, S, 1) 1 = keep,
                    iterations int32 (), seed int64 ())
      -> completed (N, S, S, C), fills (N, S, S, C), losses (N,), z (N, z_dim)
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import tensorflow as tf

import utils
from dcgan_completion import encoder
from dcgan_completion.completion import engine as completion
from dcgan_completion.completion.settings import CompletionSettings
from model import DCGAN

SIGNATURE = "serving_default"
EXPORTABLE_APPROACHES = ("adam", "momentum")  # HMC draws random numbers from a generator each iteration
SETTINGS_FILE = "assets.extra/completion.json"  # what was exported (TensorFlow Serving ignores assets.extra)


class ExportError(utils.UserError):
    """An export that cannot be done (HMC, an output folder in use); the message says why."""


def check_exportable(settings: CompletionSettings) -> None:
    if settings.approach not in EXPORTABLE_APPROACHES:
        raise ExportError(f"--approach {settings.approach} cannot be exported (its random draws need a generator's "
                          f"state); choose {' or '.join(EXPORTABLE_APPROACHES)}")


class CompletionModule(tf.Module):
    """G and D, and `complete`, the completion with the settings fixed: what the SavedModel holds."""

    def __init__(self, model: DCGAN, settings: CompletionSettings, start=None):
        """start: the checkpoint's encoder (encoder.py): z starts at its guess, and the seed is unused."""
        super().__init__(name="dcgan_completion")
        check_exportable(settings)
        if model.strategy is not None:
            raise ValueError("export a model built outside any tf.distribute strategy's scope")
        self.generator, self.discriminator = model.sampler, model.discriminator  # the variables saved
        self.encoder = start
        self.image_size, self.z_dim, self.channels = model.image_size, model.z_dim, model.c_dim
        self._settings = settings
        self._completer = completion.LatentOptimizer(model, settings=settings)  # the loss and the update rules
        size, channels = model.image_size, model.c_dim
        self.complete = tf.function(self._complete, input_signature=[
            tf.TensorSpec([None, size, size, channels], tf.float32, name="images"),
            tf.TensorSpec([None, size, size, 1], tf.float32, name="masks"),
            tf.TensorSpec([], tf.int32, name="iterations"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ])

    def _complete(self, images, masks, iterations, seed):
        """complete.py's completion of N images with --seed seed --nIter iterations (--zCandidates 1,
        all N in one batch): z from the seed, `iterations` updates, then the final loss and G(z)."""
        completer, settings = self._completer, self._settings
        tf.debugging.assert_equal(tf.shape(masks)[0], tf.shape(images)[0],
                                  message="images and masks must have the same number of rows")
        weights = completion.weighted_masks(masks) if settings.weighted_mask else masks
        if self.encoder is not None:
            z = self.encoder(images, masks)
        else:
            z = completion.draw_z_in_graph(seed, tf.shape(images)[0], self.z_dim)
        state = completer.initial_state(z)
        update = completer.adam_update if settings.approach == "adam" else completer.momentum_update
        for i in tf.range(iterations):
            _, grad, _ = completer.loss_and_gradient(z, images, weights)
            z, state = update(z, grad, state, i)
        losses, fills = completer.loss(z, images, weights)
        # Known pixels from the input, the rest from G(z): complete.py's final/ with --blend none.
        completed = tf.where(masks > 0.5, images, fills)
        return {"completed": completed, "fills": fills, "losses": losses, "z": z}


def export(checkpoint_dir: str | os.PathLike, out_dir: str | os.PathLike,
           settings: CompletionSettings | None = None) -> Path:
    """Save the completion of the model in checkpoint_dir with these settings (their update rule,
    lr, lam, betas, eps, momentum and weighted_mask; n_iter and seed are inputs of the signature)
    as a SavedModel in out_dir, which must not exist or be empty. Returns out_dir."""
    settings = settings if settings is not None else CompletionSettings()
    check_exportable(settings)
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"{out}: the folder is not empty; export into a new or empty folder "
                          f"(TensorFlow Serving reads MODEL_BASE/<version>/)")
    utils.output_folder(out, "SavedModel folder")  # before the slow work
    model = DCGAN.from_checkpoint(checkpoint_dir)  # float32, one device
    start = encoder.load(checkpoint_dir, model) if settings.z_init == "encoder" else None
    module = CompletionModule(model, settings, start)
    try:
        tf.saved_model.save(module, str(out), signatures={SIGNATURE: module.complete.get_concrete_function()})
        record = dict(model=model.config.record(), settings={name: value for name, value in
                                                     dataclasses.asdict(settings).items()
                                                     if name in ("approach", "lr", "momentum", "beta1", "beta2",
                                                                 "eps", "lam", "weighted_mask")},
                      start="encoder" if start is not None else "random")
        utils.save_json(out / SETTINGS_FILE, dict(record, checkpoint=str(checkpoint_dir)))
    except BaseException:
        for path in out.iterdir():  # it was empty: leave no half-written SavedModel behind
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise
    return out
