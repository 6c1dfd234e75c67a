#!/usr/bin/env python3
"""Train the DCGAN on a folder of aligned face images (the original's train-dcgan.py).

    python train_dcgan.py --dataset data/aligned --epoch 20

Checkpoints go to --checkpoint_dir (resumed automatically), 8x8 sample grids to
--sample_dir and TensorBoard logs to --log_dir.

Several devices: --strategy mirrored (every GPU of this machine) or --strategy
multiworker (the machines in TF_CONFIG; give every worker the same flags: only the
chief writes files). --batch_size stays the global batch.
"""
import argparse
import math
import os

import utils

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter


MODEL_DEFAULTS = dict(image_size=64, z_dim=100, gf_dim=64, df_dim=64, c_dim=3)  # the original's


def image_size(text: str) -> int:
    value = int(text)
    if not utils.is_valid_image_size(value):
        raise argparse.ArgumentTypeError(f"must be a power of two >= 8 (8, 16, 32, 64, 128, ...), not {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # The original's flags and defaults.
    parser.add_argument("--epoch", type=utils.positive_int, default=25, help="epochs to train")
    parser.add_argument("--learning_rate", type=utils.positive_float, default=0.0002, help="Adam learning rate")
    parser.add_argument("--beta1", type=utils.number_in(0.0, 1.0, high_open=True), default=0.5,
                        help="Adam beta1 (momentum term), in [0, 1)")
    parser.add_argument("--train_size", type=utils.number_in(1.0, math.inf), default=math.inf,
                        help="use at most this many images")
    parser.add_argument("--batch_size", type=utils.positive_int, default=64, help="images per step")
    parser.add_argument("--image_size", type=image_size, default=None,
                        help="image height and width, a power of two (default: the checkpoint's when resuming, else 64)")
    parser.add_argument("--dataset", default="lfw-aligned-64",
                        help="folder of .png/.jpg/.jpeg images (searched recursively)")
    parser.add_argument("--checkpoint_dir", default="checkpoint", help="where checkpoints are saved and resumed")
    parser.add_argument("--sample_dir", default="samples", help="where 8x8 sample grids are written")
    # New in this port.
    parser.add_argument("--log_dir", default="logs", help="TensorBoard log folder")
    parser.add_argument("--z_dim", type=utils.positive_int, default=None,
                        help="dimension of z (default: the checkpoint's when resuming, else 100)")
    parser.add_argument("--gf_dim", type=utils.positive_int, default=None,
                        help="generator filters in the last layer (default: the checkpoint's, else 64)")
    parser.add_argument("--df_dim", type=utils.positive_int, default=None,
                        help="discriminator filters in the first layer (default: the checkpoint's, else 64)")
    parser.add_argument("--c_dim", type=int, choices=(1, 3), default=None,
                        help="image channels: 3 (RGB) or 1 (grayscale) (default: the checkpoint's when resuming, "
                             "else 1 if every dataset image is single-channel, else 3)")
    parser.add_argument("--crop", action="store_true", help="centre-crop images to a square before resizing")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for reproducible runs")
    parser.add_argument("--sample_every", type=utils.positive_int, default=100, help="write a sample grid every N steps")
    parser.add_argument("--save_every", type=utils.positive_int, default=500, help="save a checkpoint every N steps")
    parser.add_argument("--xla", action="store_true", help="compile the training step with XLA (helps on GPUs)")
    parser.add_argument("--time_limit", type=utils.positive_float, default=None, metavar="MINUTES",
                        help="stop (with a checkpoint) after this many minutes; run again to continue")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                        help="default: one device; mirrored: all GPUs of this machine; multiworker: the "
                             "machines in TF_CONFIG (--batch_size is the global batch)")
    parser.add_argument("--mixed_precision", choices=("auto", "off", "float16", "bfloat16"), default="auto",
                        help="auto: bfloat16 on CPUs with AMX and GPUs of compute capability >= 8.0, else off "
                             "(float32); float16 uses dynamic loss scaling; variables stay float32")
    return parser.parse_args(argv)


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isdir(args.dataset):
        utils.fail(f"dataset folder {args.dataset} does not exist" if not os.path.exists(args.dataset)
                   else f"{args.dataset}: dataset folder is a file, not a folder")
    paths = utils.list_images(args.dataset)
    if not paths:
        utils.fail(f"no .png/.jpg/.jpeg images in dataset folder {args.dataset}")

    from checkpoints import latest_checkpoint, read_hparams  # imports TensorFlow quietly
    from model import DCGAN
    import distribute
    try:
        strategy = distribute.make_strategy(args.strategy)  # before TensorFlow initialises its devices
    except ValueError as error:
        utils.fail(str(error))
    problem = distribute.xla_problem(strategy) if args.xla else None
    if problem:
        utils.fail(problem)
    precision, why = distribute.choose_precision(args.mixed_precision)
    print(distribute.precision_line(precision, why))
    if args.batch_size % strategy.num_replicas_in_sync:
        utils.fail(f"--batch_size {args.batch_size} (the global batch) does not divide over "
                   f"{strategy.num_replicas_in_sync} replicas")
    asked = dict(image_size=args.image_size, z_dim=args.z_dim, gf_dim=args.gf_dim, df_dim=args.df_dim,
                 c_dim=args.c_dim)
    # Resuming: the checkpoint's model (layout included) unless a flag asks for another (an error);
    # new: the original's, in gray when every image is.
    saved = read_hparams(args.checkpoint_dir) if latest_checkpoint(args.checkpoint_dir) else {}
    differ = {k: (v, saved[k]) for k, v in asked.items() if v is not None and k in saved and saved[k] != v}
    if differ:
        name, (value, found) = next(iter(differ.items()))
        utils.fail(f"--{name} {value} does not match the checkpoint in {args.checkpoint_dir} "
                   f"({name}={found}); use another --checkpoint_dir or the same {name}")
    if not saved and args.c_dim is None and utils.dataset_channels(paths) == 1:
        print(f"Every image in {args.dataset} is single-channel: training a grayscale model (--c_dim 1).")
        asked["c_dim"] = 1
    hparams = {**MODEL_DEFAULTS, **saved, **{k: v for k, v in asked.items() if v is not None}}
    # Every folder the run writes, made (and found writable) before the long work starts.
    for folder, what in ((args.checkpoint_dir, "checkpoint folder"), (args.sample_dir, "sample folder"),
                         (args.log_dir, "TensorBoard log folder")):
        utils.output_folder(folder, what)
    with strategy.scope():  # the model's variables, its optimisers' slots and its counters
        model = DCGAN(**hparams, learning_rate=args.learning_rate, beta1=args.beta1, seed=args.seed,
                      compute_dtype=precision)
    return model.train(args)


if __name__ == "__main__":
    raise SystemExit(main())
