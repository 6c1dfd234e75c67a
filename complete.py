#!/usr/bin/env python3
"""Fill the missing parts of images with a trained DCGAN (the original's complete.py).

    python complete.py face.png                       # the shipped face model, center mask
    python complete.py --checkpointDir checkpoint --outDir completions --maskType center img1.png img2.png

Writes before.png, masked.png, hats_imgs/, completed/, logs/ and completion.gif (the
original's outputs) and final/<name>.png, each input's completion.

    python complete.py --checkpointDir checkpoint --outDir filled --photos photo.jpg --mask hole.png

fills the hole of a whole photo through the faces it lies on (final/ and side_by_side/).
"""
import argparse
import dataclasses
import os
import sys

import utils
from dcgan_completion import runtime
from dcgan_completion.completion import masks as masking
from dcgan_completion.completion.settings import (APPROACHES, BLENDS, ENCODER_N_ITER, Z_INITS, CompletionSettings,
                                                  OutputSettings, default_iterations)

DEFAULTS, OUTPUT_DEFAULTS = CompletionSettings(), OutputSettings()  # every completion flag's default


UNIT = utils.number_in(0.0, 1.0, high_open=True)  # Adam's betas and the momentum: in [0, 1)


def add_update_flags(parser: argparse.ArgumentParser, approach_help: str) -> None:
    """The update rule and the loss: the flags complete.py, serve.py and export_savedmodel.py share."""
    # The original's flags. Defaults chosen on held-out faces (README, Quality): the repository's
    # adam (its own default), the paper's weighted contextual loss.
    parser.add_argument("--approach", choices=APPROACHES, default=DEFAULTS.approach, help=approach_help)
    parser.add_argument("--lr", type=utils.positive_float, default=DEFAULTS.lr, help="step size (momentum, adam)")
    parser.add_argument("--beta1", type=UNIT, default=DEFAULTS.beta1, help="Adam beta1")
    parser.add_argument("--beta2", type=UNIT, default=DEFAULTS.beta2, help="Adam beta2")
    parser.add_argument("--eps", type=utils.positive_float, default=DEFAULTS.eps, help="Adam epsilon")
    parser.add_argument("--momentum", type=UNIT, default=DEFAULTS.momentum, help="momentum of the article's update")
    parser.add_argument("--lam", type=utils.non_negative_float, default=DEFAULTS.lam,
                        help="weight of the perceptual loss")
    parser.add_argument("--weightedMask", action=argparse.BooleanOptionalAction, default=DEFAULTS.weighted_mask,
                        help="weight known pixels by the share of missing pixels in their 7x7 window (the paper's "
                             "weighted contextual loss); --no-weightedMask: the article's plain L1")


def add_completion_flags(parser: argparse.ArgumentParser) -> None:
    """The completion's flags, shared by complete.py and serve.py (there, every job's defaults): the model,
    the update rule and the loss, the batching, the blend, the built-in mask and the precision."""
    add_update_flags(parser, "adam and hmc: the repository's; momentum: the article's projected gradient descent")
    # The original's other flags; Poisson blending (the paper's) chosen on held-out faces.
    parser.add_argument("--hmcBeta", type=utils.positive_float, default=DEFAULTS.hmc_beta,
                        help="HMC inverse temperature")
    parser.add_argument("--hmcEps", type=utils.positive_float, default=DEFAULTS.hmc_eps, help="HMC leapfrog step")
    parser.add_argument("--hmcL", type=utils.positive_int, default=DEFAULTS.hmc_l,
                        help="HMC leapfrog steps per iteration")
    parser.add_argument("--hmcAnneal", type=utils.positive_float, default=DEFAULTS.hmc_anneal,
                        help="HMC: hmcBeta *= hmcAnneal each iteration")
    parser.add_argument("--nIter", type=utils.positive_int, default=None,
                        help=f"iterations (default: {DEFAULTS.n_iter} from random z, {ENCODER_N_ITER} from the "
                             f"encoder's start)")
    parser.add_argument("--checkpointDir", default=None,
                        help="the trained model (default: the shipped face model; checkpoints/README.md says which)")
    parser.add_argument("--outInterval", type=utils.positive_int, default=DEFAULTS.out_interval,
                        help="write images every N iterations")
    parser.add_argument("--maskType", choices=masking.MASK_TYPES, default="center", help="which pixels to fill")
    parser.add_argument("--centerScale", type=utils.number_in(0.0, 0.5), default=0.25,
                        help="center mask: the hole spans [S*scale, S*(1-scale))")
    parser.add_argument("--batchSize", type=utils.positive_int, default=DEFAULTS.batch_size,
                        help="images optimised together")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="random seed (z, random mask, HMC)")
    parser.add_argument("--blend", choices=BLENDS, default=OUTPUT_DEFAULTS.blend,
                        help="poisson: blend the fill into the image as the paper does (final/ only); none: paste it")
    parser.add_argument("--zCandidates", type=utils.positive_int, default=DEFAULTS.z_candidates,
                        help="start each image from the best of N z (random, or jittered around the encoder's)")
    parser.add_argument("--zInit", choices=Z_INITS, default=DEFAULTS.z_init,
                        help="encoder: start z at the checkpoint's encoder's guess from the known pixels "
                             "(train_encoder.py adds one; random where there is none); random: z ~ U(-1, 1)")
    parser.add_argument("--xla", action="store_true", default=DEFAULTS.xla,
                        help="compile the iterations with XLA (helps on GPUs)")
    parser.add_argument("--tuneG", action=argparse.BooleanOptionalAction, default=DEFAULTS.tune_g,
                        help="after the z search, tune a copy of G to each image (stopped where its error on "
                             "held-out known pixels next to the hole is lowest), so that the fill keeps the "
                             "person; --no-tuneG: the original's fill, G(z)")
    parser.add_argument("--tuneSteps", type=utils.positive_int, default=DEFAULTS.tune_steps,
                        help="at most this many tuning steps an image")
    parser.add_argument("--tuneLr", type=utils.positive_float, default=DEFAULTS.tune_lr, help="the tuning's Adam step")
    parser.add_argument("--mixed_precision", choices=("auto", "off", "float16", "bfloat16"), default="auto",
                        help="compute G and D in float16 or bfloat16 (z and the losses stay float32); auto: the "
                             "fastest that this device measured to complete as well as float32 (measured once, "
                             "then remembered in $XDG_CACHE_HOME)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("imgs", nargs="*", help="images to complete (aligned faces at the model's size)")
    add_completion_flags(parser)
    parser.add_argument("--imgSize", type=utils.positive_int, default=None,
                        help="image size; must match the checkpoint's model (default: the checkpoint's, 64 "
                             "for the original's)")
    parser.add_argument("--outDir", default=str(OUTPUT_DEFAULTS.out_dir), help="output folder")
    # New in this port.
    parser.add_argument("--photos", nargs="+", metavar="PHOTO", default=None,
                        help="whole photos of any size to fill through their faces, with --mask at each photo's "
                             "size (or a folder of masks named like the photos)")
    parser.add_argument("--mask", metavar="FILE|DIR", default=None,
                        help="your own mask image (white = keep, black = fill), or a folder with one per image "
                             "(same file name, or same name with another image extension); overrides --maskType")
    parser.add_argument("--strategy", choices=("default", "mirrored"), default="default",
                        help="mirrored: spread each batch's images over all GPUs of this machine")
    args = parser.parse_args(argv)
    if bool(args.imgs) == bool(args.photos):
        parser.error("give the images to complete, or --photos PHOTO..., not both" if args.imgs else
                     "give the images to complete, or --photos PHOTO...")
    if args.photos and args.mask is None:
        parser.error("--photos needs --mask: white = keep, black = fill, at the photo's size")
    return args


def settings_from_args(args: argparse.Namespace) -> tuple[CompletionSettings, OutputSettings]:
    """The parsed flags as typed settings, built once; nothing past main reads the Namespace."""
    settings = CompletionSettings(
        approach=args.approach, n_iter=DEFAULTS.n_iter if args.nIter is None else args.nIter, lr=args.lr,
        momentum=args.momentum, beta1=args.beta1, beta2=args.beta2, eps=args.eps, hmc_beta=args.hmcBeta,
        hmc_eps=args.hmcEps, hmc_l=args.hmcL, hmc_anneal=args.hmcAnneal, lam=args.lam,
        out_interval=args.outInterval, batch_size=args.batchSize, seed=args.seed, weighted_mask=args.weightedMask,
        z_candidates=args.zCandidates, z_init=args.zInit, lowres=args.maskType == "lowres" and args.mask is None,
        xla=args.xla, tune_g=args.tuneG, tune_steps=args.tuneSteps, tune_lr=args.tuneLr)
    return settings, OutputSettings(args.outDir, args.blend)


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    settings, output = settings_from_args(args)
    runtime.start()  # TensorFlow's environment, then TensorFlow, quietly
    from dcgan_completion import auto_precision, distribute, encoder
    from dcgan_completion.completion.engine import CompletionEngine
    from dcgan_completion.completion.outputs import FolderCompletion
    from dcgan_completion.networks.storage import (read_config, read_framing, read_known_fit, require_checkpoint,
                                                   resolve_model_dir)
    from model import DCGAN

    checkpoint_dir, model_line = resolve_model_dir(args.checkpointDir)
    print(model_line)
    strategy = distribute.start(args.strategy, args.xla, args.mixed_precision)  # before TF's devices start
    require_checkpoint(checkpoint_dir)  # none, or a bad state file: a CheckpointError, one line

    def build(precision: str, phases: bool | None) -> DCGAN:
        with strategy.scope():  # under mirrored: a copy of G and D on every device
            return DCGAN.from_checkpoint(checkpoint_dir, compute_dtype=precision, phases=phases)

    config = read_config(checkpoint_dir)
    size = config.image_size
    if args.imgSize is not None and args.imgSize != size:
        raise utils.UserError(f"--imgSize {args.imgSize} does not match the checkpoint in {checkpoint_dir}, "
                              f"whose model is {size}x{size}")
    work = read_work(args, size, config.c_dim)  # every input checked before any long work
    if not args.photos and config.c_dim == 3 and not utils.all_of_size(work.paths[:8], size):
        from dcgan_completion.completion.photos import photo_hint  # dlib's models: only for other sizes
        hint = photo_hint(work.paths, size, read_framing(checkpoint_dir))
        if hint:
            print(f"note: {hint}", file=sys.stderr)
    model, precision, why = auto_precision.completion_precision(
        args.mixed_precision, build, config, min(settings.batch_size, len(args.photos or work.paths)), settings,
        strategy.num_replicas_in_sync)
    print(distribute.precision_line(precision, why))
    start, start_line = encoder.for_completion(checkpoint_dir, model, settings.z_init)
    print(start_line)
    if args.nIter is None:
        settings = dataclasses.replace(settings, n_iter=default_iterations(start is not None))
    engine = CompletionEngine(model, settings, start)
    if args.photos:
        from dcgan_completion.completion.photos import PhotoCompletion
        return PhotoCompletion(engine, output, read_framing(checkpoint_dir)).run(args.photos, work)
    return FolderCompletion(engine, output, read_known_fit(checkpoint_dir)).run(work)


def read_work(args: argparse.Namespace, size: int, channels: int):
    """What complete.py will work on, read and checked before the model is built: the photos' mask
    files (--photos), or the images and their masks; and a writable output folder."""
    if args.photos:
        from dcgan_completion.completion.photos import photo_masks
        work = photo_masks(args.photos, args.mask)
    else:
        from dcgan_completion.completion.outputs import CompletionInputs
        work = CompletionInputs.read(args.imgs, read_mask(args, size), size, channels)
    utils.output_folder(args.outDir, "output folder")
    return work


def read_mask(args: argparse.Namespace, size: int):
    """--mask (a file, or a folder with each image's), or the --maskType mask, at the model's size."""
    import numpy as np
    if args.mask is not None:
        if os.path.isdir(args.mask):  # each image's own mask, all read before any work starts
            return masking.read_masks(args.mask, args.imgs, size)
        return masking.read_mask(args.mask, size)
    if args.maskType == "lowres" and size % masking.LOWRES_FACTOR:
        raise utils.UserError(f"the lowres mask needs an image size divisible by {masking.LOWRES_FACTOR}, not {size}")
    return masking.make_mask(args.maskType, size, args.centerScale, rng=np.random.default_rng(args.seed))


if __name__ == "__main__":
    raise SystemExit(main())
