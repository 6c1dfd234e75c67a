"""Add an encoder to a trained model: python train_encoder.py --checkpointDir DIR.

The encoder guesses z from an image's known pixels and its mask, so that complete.py starts the
optimisation near its answer (`--zInit encoder`, the default where a checkpoint has one). It is
trained on the model's own samples G(z) under random masks, so it needs no data; it is saved in
DIR/encoder/ beside the networks, and the same command resumes it (or trains it on, with a
larger --steps). Works with this project's checkpoints and the original's TF1 ones.
"""
from __future__ import annotations

import argparse
import time

import utils
from dcgan_completion import runtime
from dcgan_completion.training.settings import DEFAULTS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpointDir", required=True, help="the trained model; the encoder goes to DIR/encoder")
    parser.add_argument("--steps", type=utils.positive_int, default=DEFAULTS.encoder_steps,
                        help="training steps in all (a resumed run trains up to this many)")
    parser.add_argument("--batch_size", type=utils.positive_int, default=64, help="G's samples per step")
    parser.add_argument("--learning_rate", type=utils.positive_float, default=0.0002, help="Adam's step")
    parser.add_argument("--seed", type=int, default=0, help="the samples' z and masks")
    parser.add_argument("--save_every", type=utils.positive_int, default=250, help="save every N steps")
    parser.add_argument("--time_limit", type=utils.positive_float, default=None,
                        help="stop (and save) after this many minutes")
    parser.add_argument("--log_dir", default=None, help="TensorBoard scalars (default: DIR/encoder/logs)")
    parser.add_argument("--networks_only", action="store_true",
                        help="save the encoder's weights without Adam's state (a third of the size; to ship)")
    return parser.parse_args(argv)


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    runtime.start()  # TensorFlow's environment, then TensorFlow, quietly
    from pathlib import Path

    from dcgan_completion import encoder
    from model import DCGAN

    model = DCGAN.from_checkpoint(args.checkpointDir)  # a missing or broken checkpoint: one line
    settings = encoder.EncoderSettings(batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed)
    deadline = None if args.time_limit is None else time.monotonic() + 60 * args.time_limit
    result = encoder.fit(model, args.checkpointDir, args.steps, settings, log_dir=args.log_dir,
                         save_every=args.save_every, networks_only=args.networks_only, deadline=deadline,
                         record=dict(generator_step=int(model.step.numpy()), target=args.steps))
    folder = Path(args.checkpointDir) / encoder.FOLDER
    if result.step < args.steps:
        print(f"Stopped at step {result.step}: the encoder is saved in {folder}; run the same command again to resume.")
    elif result.started >= args.steps:
        print(f"The encoder of {args.checkpointDir} has trained {result.step} steps already; nothing to do.")
    else:
        print(f"Done: the encoder trained {result.step} steps, saved in {folder}; complete.py starts from it.")
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
