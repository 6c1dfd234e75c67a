"""Add an encoder to a trained model: python train_encoder.py --checkpointDir DIR.

The encoder guesses z from an image's known pixels and its mask, so that complete.py starts the
optimisation near its answer (`--zInit encoder`, the default where a checkpoint has one). It is
trained on the model's own samples G(z) under random masks, so it needs no data; it is saved in
DIR/encoder/ beside the networks, and the same command resumes it (or trains it on, with a
larger --steps). Works with this project's checkpoints and the original's TF1 ones.
"""
from __future__ import annotations

import argparse
import signal
import time

import utils
from dcgan_completion import runtime

DEFAULT_STEPS = 1500


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpointDir", required=True, help="the trained model; the encoder goes to DIR/encoder")
    parser.add_argument("--steps", type=utils.positive_int, default=DEFAULT_STEPS,
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

    import tensorflow as tf
    from tqdm import tqdm

    from dcgan_completion import encoder
    from model import DCGAN

    model = DCGAN.from_checkpoint(args.checkpointDir)  # a missing or broken checkpoint: one line
    utils.output_folder(Path(args.checkpointDir) / encoder.FOLDER, "the encoder's folder")
    log_dir = args.log_dir or str(Path(args.checkpointDir) / encoder.FOLDER / "logs")
    settings = encoder.EncoderSettings(batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed)
    trainer = encoder.EncoderTrainer(model, encoder.for_model(model), settings)
    if trainer.restore(args.checkpointDir):
        print(f"Resuming the encoder of {args.checkpointDir} at step {int(trainer.step.numpy())}")
    start = int(trainer.step.numpy())
    if start >= args.steps:
        print(f"The encoder of {args.checkpointDir} has trained {start} steps already; nothing to do.")
        return 0
    stop = []
    handlers = {s: signal.signal(s, lambda signum, frame: stop.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    deadline = None if args.time_limit is None else time.monotonic() + 60 * args.time_limit
    bar = tqdm(total=args.steps, initial=start, desc="Encoder", unit="step", dynamic_ncols=True, mininterval=0.5)
    writer = tf.summary.create_file_writer(log_dir)

    def on_step(step: int, losses: dict) -> bool:
        with writer.as_default():
            for name, value in losses.items():
                tf.summary.scalar(f"encoder/{name}", value, step=step)
        bar.update(1)
        bar.set_postfix(z_loss=f"{losses['z_loss']:.4f}", image_loss=f"{losses['image_loss']:.4f}", refresh=False)
        ending = bool(stop) or (deadline is not None and time.monotonic() > deadline)
        if step % args.save_every == 0 or step == args.steps or ending:
            trainer.save(args.checkpointDir, args.networks_only)
        return ending

    try:
        trainer.train(args.steps, on_step)
    finally:
        bar.close()
        writer.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    step = int(trainer.step.numpy())
    folder = Path(args.checkpointDir) / encoder.FOLDER
    if step < args.steps:
        print(f"Stopped at step {step}: the encoder is saved in {folder}; run the same command again to resume.")
        return 128 + stop[0] if stop else 0
    print(f"Done: the encoder trained {step} steps, saved in {folder}; complete.py starts from it.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
