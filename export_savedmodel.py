#!/usr/bin/env python3
"""Export the completion as a TensorFlow SavedModel with a serving signature (docs/serving.md).

    python export_savedmodel.py --checkpointDir checkpoint --outDir models/dcgan/1

The update rule and its constants are fixed from complete.py's flags of the same names; the
images, masks, iterations and seed are the signature's inputs. TensorFlow Serving, or any
TensorFlow runtime, then completes images without this project's Python.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

import utils
from completion_settings import APPROACHES, CompletionSettings

DEFAULTS = CompletionSettings()
UNIT = utils.number_in(0.0, 1.0, high_open=True)  # Adam's betas and the momentum: in [0, 1)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpointDir", default=None,
                        help="the trained model (default: the shipped face model)")
    parser.add_argument("--outDir", required=True,
                        help="new or empty folder for the SavedModel (for TensorFlow Serving: MODEL_BASE/<version>)")
    parser.add_argument("--approach", choices=APPROACHES, default=DEFAULTS.approach,
                        help="adam: the repository's; momentum: the article's (hmc cannot be exported)")
    parser.add_argument("--lr", type=utils.positive_float, default=DEFAULTS.lr, help="step size")
    parser.add_argument("--beta1", type=UNIT, default=DEFAULTS.beta1, help="Adam beta1")
    parser.add_argument("--beta2", type=UNIT, default=DEFAULTS.beta2, help="Adam beta2")
    parser.add_argument("--eps", type=utils.positive_float, default=DEFAULTS.eps, help="Adam epsilon")
    parser.add_argument("--momentum", type=UNIT, default=DEFAULTS.momentum, help="momentum of the article's update")
    parser.add_argument("--lam", type=utils.non_negative_float, default=DEFAULTS.lam,
                        help="weight of the perceptual loss")
    parser.add_argument("--weightedMask", action=argparse.BooleanOptionalAction, default=DEFAULTS.weighted_mask,
                        help="the paper's weighted contextual loss; --no-weightedMask: the article's plain L1")
    return parser.parse_args(argv)


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    settings = CompletionSettings(approach=args.approach, lr=args.lr, momentum=args.momentum, beta1=args.beta1,
                                  beta2=args.beta2, eps=args.eps, lam=args.lam, weighted_mask=args.weightedMask)
    from checkpoints import default_model_dir, latest_checkpoint  # imports TensorFlow quietly
    import saved_model_export

    saved_model_export.check_exportable(settings)  # before any slow work
    checkpoint_dir = args.checkpointDir if args.checkpointDir is not None else str(default_model_dir())
    if latest_checkpoint(checkpoint_dir) is None:
        utils.fail(f"no checkpoint in {checkpoint_dir}; train one first with "
                   f"'python train_dcgan.py --dataset DIR --checkpoint_dir {checkpoint_dir}'")
    out = saved_model_export.export(checkpoint_dir, args.outDir, settings)
    print(f"Exported the completion of {checkpoint_dir} ({settings.approach}) as a SavedModel in {out}: "
          f"signature {saved_model_export.SIGNATURE!r}, see docs/serving.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
