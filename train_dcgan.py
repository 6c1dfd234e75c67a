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


MODEL_DEFAULTS = dict(image_size=64, z_dim=100, gf_dim=64, df_dim=64)  # the original's


def image_size(text: str) -> int:
    value = int(text)
    if value < 8 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two >= 8 (8, 16, 32, 64, 128, ...), not {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # The original's flags and defaults.
    parser.add_argument("--epoch", type=utils.positive_int, default=25, help="epochs to train")
    parser.add_argument("--learning_rate", type=float, default=0.0002, help="Adam learning rate")
    parser.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (momentum term)")
    parser.add_argument("--train_size", type=float, default=math.inf, help="use at most this many images")
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
    parser.add_argument("--crop", action="store_true", help="centre-crop images to a square before resizing")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for reproducible runs")
    parser.add_argument("--sample_every", type=utils.positive_int, default=100, help="write a sample grid every N steps")
    parser.add_argument("--save_every", type=utils.positive_int, default=500, help="save a checkpoint every N steps")
    parser.add_argument("--xla", action="store_true", help="compile the training step with XLA (helps on GPUs)")
    parser.add_argument("--time_limit", type=float, default=None, metavar="MINUTES",
                        help="stop (with a checkpoint) after this many minutes; run again to continue")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                        help="default: one device; mirrored: all GPUs of this machine; multiworker: the "
                             "machines in TF_CONFIG (--batch_size is the global batch)")
    parser.add_argument("--mixed_precision", choices=("auto", "off", "float16", "bfloat16"), default="auto",
                        help="auto: bfloat16 on CPUs with AMX and GPUs of compute capability >= 8.0, else off "
                             "(float32); float16 uses dynamic loss scaling; variables stay float32")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isdir(args.dataset):
        utils.fail(f"dataset folder {args.dataset} does not exist")
    if not utils.list_images(args.dataset):
        utils.fail(f"no .png/.jpg/.jpeg images in dataset folder {args.dataset}")

    from checkpoints import CheckpointError, latest_checkpoint, read_hparams  # imports TensorFlow quietly
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
    asked = dict(image_size=args.image_size, z_dim=args.z_dim, gf_dim=args.gf_dim, df_dim=args.df_dim)
    try:
        # Resuming: the checkpoint's shape unless a flag asks for another (an error); new: the original's.
        saved = read_hparams(args.checkpoint_dir) if latest_checkpoint(args.checkpoint_dir) else MODEL_DEFAULTS
        differ = {k: (v, saved[k]) for k, v in asked.items() if v is not None and saved is not MODEL_DEFAULTS
                  and saved.get(k) != v}
        if differ:
            name, (value, found) = next(iter(differ.items()))
            utils.fail(f"--{name} {value} does not match the checkpoint in {args.checkpoint_dir} "
                       f"({name}={found}); use another --checkpoint_dir or the same {name}")
        hparams = {k: saved[k] if v is None else v for k, v in asked.items()}
        with strategy.scope():  # the model's variables, its optimisers' slots and its counters
            model = DCGAN(**hparams, learning_rate=args.learning_rate, beta1=args.beta1, seed=args.seed,
                          compute_dtype=precision)
        return model.train(args)
    except CheckpointError as error:
        utils.fail(str(error))


if __name__ == "__main__":
    raise SystemExit(main())
