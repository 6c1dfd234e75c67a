#!/usr/bin/env python3
"""Train the DCGAN on a folder of aligned face images (the original's train-dcgan.py).

    python train_dcgan.py --dataset data/aligned --epoch 20

Checkpoints go to --checkpoint_dir (resumed automatically), 8x8 sample grids to
--sample_dir and TensorBoard logs to --log_dir; then an encoder for completion's start is
trained into --checkpoint_dir/encoder (--encoder_steps; 0: none).

Several devices: --strategy mirrored (every GPU of this machine) or --strategy
multiworker (the machines in TF_CONFIG; give every worker the same flags: only the
chief writes files). --batch_size stays the global batch.
"""
import argparse
import dataclasses
import json
import os

import utils
from dcgan_completion import runtime
from dcgan_completion.faces import framing
from dcgan_completion.networks.config import ModelConfig
from dcgan_completion.training.settings import DEFAULTS, TrainingSettings, dataset_images, flag_type

ORIGINAL = ModelConfig()  # the original's sizes


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    def flag(name: str, help: str, **extra) -> None:
        """--name: its default and the values it takes are TrainingSettings' (training/settings.py)."""
        parser.add_argument(f"--{name}", default=getattr(DEFAULTS, name), help=help,
                            **flag_type(name), **extra)

    # The original's flags and defaults.
    flag("epoch", "epochs to train")
    flag("learning_rate", "Adam learning rate")
    flag("beta1", "Adam beta1 (momentum term), in [0, 1)")
    flag("train_size", "use at most this many images")
    flag("batch_size", "images per step")
    flag("image_size", "image height and width, a power of two (default: the checkpoint's when resuming, "
                       f"else {ORIGINAL.image_size})")
    flag("dataset", "folder of .png/.jpg/.jpeg images (searched recursively)")
    flag("checkpoint_dir", "where checkpoints are saved and resumed")
    flag("sample_dir", "where 8x8 sample grids are written")
    # New in this port.
    flag("log_dir", "TensorBoard log folder")
    flag("z_dim", f"dimension of z (default: the checkpoint's when resuming, else {ORIGINAL.z_dim})")
    flag("gf_dim", f"generator filters in the last layer (default: the checkpoint's, else {ORIGINAL.gf_dim})")
    flag("df_dim", "discriminator filters in the first layer (default: the checkpoint's, else "
                   f"{ORIGINAL.df_dim})")
    flag("c_dim", "image channels: 3 (RGB) or 1 (grayscale) (default: the checkpoint's when resuming, "
                  "else 1 if every dataset image is single-channel, else 3)")
    flag("crop", "centre-crop images to a square before resizing (the largest, or --input_height's)")
    flag("input_height", "with --crop: the side of the centred square (DCGAN-tensorflow's; 108 for CelebA's "
                         "178x218 img_align_celeba)")
    flag("seed", "random seed, for reproducible runs")
    flag("sample_every", "write a sample grid every N steps")
    flag("save_every", "save a checkpoint every N steps")
    flag("xla", "compile the training step with XLA (helps on GPUs)")
    flag("time_limit", "stop (with a checkpoint) after this many minutes; run again to continue", metavar="MINUTES")
    flag("strategy", "default: one device; mirrored: all GPUs of this machine; multiworker: the machines in "
                     "TF_CONFIG (--batch_size is the global batch)")
    flag("mixed_precision", "auto: float32, as bfloat16-trained models filled faces worse (docs/distributed.md), "
                            "with the convolution kernels measured faster; "
                            "float16 uses dynamic loss scaling; variables stay float32")
    flag("ema_decay", "decay of the exponential moving average of G's weights kept beside G, which completion, "
                      "the web app and the export use (0: none, G itself, the original's recipe)")
    flag("encoder_steps", "then train an encoder for completion's start for this many steps (at most as many as "
                          "G trained; 0: none, train_encoder.py adds one later)")
    args = parser.parse_args(argv)
    if args.input_height is not None and not args.crop:
        parser.error("--input_height is the side of the centre crop: add --crop")
    return args


def settings_from_args(args: argparse.Namespace) -> TrainingSettings:
    """The parsed flags as typed settings, built once: nothing past main reads the Namespace."""
    return TrainingSettings(**vars(args))


def model_config(settings: TrainingSettings, paths: list[str]) -> ModelConfig:
    """The model to train. Resuming: the checkpoint's (layout included), and a flag that asks for
    another is an error; new: the original's, in gray when every image is."""
    from dcgan_completion.networks.storage import latest_checkpoint, read_config
    asked = dict(image_size=settings.image_size, z_dim=settings.z_dim, gf_dim=settings.gf_dim,
                 df_dim=settings.df_dim, c_dim=settings.c_dim)
    folder = settings.checkpoint_dir
    saved = read_config(folder) if latest_checkpoint(folder) else None
    differ = {k: (v, getattr(saved, k)) for k, v in asked.items()
              if v is not None and saved is not None and getattr(saved, k) != v}
    if differ:
        name, (value, found) = next(iter(differ.items()))
        raise utils.UserError(f"--{name} {value} does not match the checkpoint in {folder} ({name}={found}); "
                              f"use another --checkpoint_dir or the same {name}")
    if saved is None and settings.c_dim is None and utils.dataset_channels(paths) == 1:
        print(f"Every image in {settings.dataset} is single-channel: training a grayscale model (--c_dim 1).")
        asked["c_dim"] = 1
    return (saved or ORIGINAL).replace(**{k: v for k, v in asked.items() if v is not None})


def dataset_framing(settings: TrainingSettings, paths: list[str]) -> dict:
    """How the training faces were cut (framing.py), for dcgan.json: the dataset folder's framing.json
    (align_faces.py's), then the centre crop (CelebA's framing for img_align_celeba-shaped images)."""
    from PIL import Image
    try:
        with Image.open(paths[0]) as image:
            first = image.size
    except (OSError, IndexError):
        first = None
    return framing.of_dataset(settings.dataset, settings.crop_side, first)


@utils.expected_errors
def main(argv=None) -> int:
    settings = settings_from_args(parse_args(argv))
    paths = dataset_images(settings.dataset)
    runtime.start()  # TensorFlow's environment, then TensorFlow, quietly
    from dcgan_completion import auto_precision, distribute
    from dcgan_completion.training.loop import Trainer
    from model import DCGAN
    strategy = distribute.start(settings.strategy, settings.xla, settings.mixed_precision)
    distribute.per_replica_batch(strategy, settings.batch_size)  # the global batch divides, or say so now
    config = model_config(settings, paths)
    # Every folder the run writes, made (and found writable) before the long work starts.
    for folder, what in ((settings.checkpoint_dir, "checkpoint folder"), (settings.sample_dir, "sample folder"),
                         (settings.log_dir, "TensorBoard log folder")):
        utils.output_folder(folder, what)

    def build(precision: str, phases: bool | None) -> DCGAN:
        with strategy.scope():  # the model's variables, its optimisers' slots and its counters
            return DCGAN(**dataclasses.asdict(config), learning_rate=settings.learning_rate, beta1=settings.beta1,
                         seed=settings.seed, compute_dtype=precision, phases=phases, ema_decay=settings.ema_decay)

    # auto times the step's kernels on models of its own; several workers would have to time in step.
    model, precision, why = auto_precision.training_precision(
        settings.mixed_precision, build, config, settings.batch_size,
        strategy.num_replicas_in_sync, measure=distribute.task(strategy)[0] is None, xla=settings.xla)
    print(distribute.precision_line(precision, why))
    cut = dataset_framing(settings, paths)
    model.framing_json = json.dumps(cut)
    print(f"framing: {framing.describe(cut)}" + (f" ({cut['why']})" if "why" in cut else ""))
    trainer = Trainer(model, settings, paths)
    code = trainer.run()
    if code == 0 and trainer.finished and settings.encoder_steps:
        if distribute.worker_count(strategy) > 1:  # the others would wait for the chief in every collective
            print(f"No encoder trained with several workers: 'python train_encoder.py --checkpointDir "
                  f"{settings.checkpoint_dir}' adds one.")
        else:  # on one device, outside any strategy: the checkpoint just saved
            plain = model if model.strategy is None else DCGAN.from_checkpoint(settings.checkpoint_dir)
            code = train_encoder(plain, settings, trainer.deadline)
    return code


def train_encoder(model, settings: TrainingSettings, deadline: float | None) -> int:
    """The trained model's encoder, completion's start (encoder.py): as many steps as G's, at most
    --encoder_steps (a short run's model gets a short run's encoder). Resumed like the networks; when
    G has trained on since, it trains on as many steps as G did since, at most --encoder_steps."""
    from dcgan_completion import encoder
    g_step, saved = int(model.step.numpy()), encoder.saved_record(settings.checkpoint_dir)
    if saved.get("generator_step") == g_step:
        steps = saved.get("target", saved.get("steps", 0))  # this G's encoder, perhaps interrupted
    else:
        since = g_step - saved.get("generator_step", 0)  # G's steps since its encoder trained (all: none yet)
        steps = saved.get("steps", 0) + min(settings.encoder_steps, max(since, 0))
    result = encoder.fit(model, settings.checkpoint_dir, steps, encoder.EncoderSettings(seed=settings.seed or 0),
                         log_dir=os.path.join(settings.log_dir, encoder.FOLDER), deadline=deadline,
                         record=dict(generator_step=g_step, target=steps))
    where = os.path.join(settings.checkpoint_dir, encoder.FOLDER)
    if result.step < steps:
        print(f"Stopped the encoder at step {result.step} of {steps}: saved in {where}; run the same command "
              f"again to resume.")
    else:
        print(f"Encoder: {result.step} steps on G's samples, in {where}; complete.py starts from it.")
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
