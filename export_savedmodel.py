#!/usr/bin/env python3
"""Export the completion as a TensorFlow SavedModel with a serving signature (docs/serving.md).

    python export_savedmodel.py --checkpointDir checkpoint --outDir models/dcgan/1

The update rule and its constants are fixed from complete.py's flags of the same names; the
images, masks, iterations and seed are the signature's inputs. TensorFlow Serving, or any
TensorFlow runtime, then completes images without this project's Python.
"""
import argparse
import json

import utils
from complete import add_update_flags
from dcgan_completion import runtime
from dcgan_completion.completion.settings import Z_INITS, CompletionSettings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpointDir", default=None,
                        help="the trained model (default: the shipped face model)")
    parser.add_argument("--outDir", required=True,
                        help="new or empty folder for the SavedModel (for TensorFlow Serving: MODEL_BASE/<version>)")
    add_update_flags(parser, "adam: the repository's; momentum: the article's (hmc cannot be exported)")
    parser.add_argument("--zInit", choices=Z_INITS, default=CompletionSettings.z_init,
                        help="encoder: z starts at the checkpoint's encoder's guess (where it has one; the seed "
                             "input is then unused); random: from the seed, as complete.py --zInit random")
    return parser.parse_args(argv)


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    runtime.start()  # TensorFlow's environment, then TensorFlow, quietly
    settings = CompletionSettings(approach=args.approach, lr=args.lr, momentum=args.momentum, beta1=args.beta1,
                                  beta2=args.beta2, eps=args.eps, lam=args.lam, weighted_mask=args.weightedMask,
                                  z_init=args.zInit)
    from dcgan_completion import export as saved_model_export
    from dcgan_completion.networks.storage import default_model_dir, require_checkpoint

    saved_model_export.check_exportable(settings)  # before any slow work
    checkpoint_dir = args.checkpointDir if args.checkpointDir is not None else str(default_model_dir())
    require_checkpoint(checkpoint_dir)
    out = saved_model_export.export(checkpoint_dir, args.outDir, settings)
    start = json.loads((out / saved_model_export.SETTINGS_FILE).read_text())["start"]
    print(f"Exported the completion of {checkpoint_dir} ({settings.approach}, z from the "
          f"{'encoder' if start == 'encoder' else 'seed'}) as a SavedModel in {out}: "
          f"signature {saved_model_export.SIGNATURE!r}, see docs/serving.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
