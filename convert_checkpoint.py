#!/usr/bin/env python3
"""Convert the original's TensorFlow 1 checkpoint to this port's format.

    python convert_checkpoint.py checkpoint/ converted/

Reads the newest DCGAN.model-N in SRC (image size and widths are inferred from its
shapes) and writes DST/DCGAN.model-N and DST/dcgan.json, which complete.py and
train_dcgan.py load directly. The original's checkpoints hold no optimiser state, so
training resumed from the converted checkpoint starts Adam afresh.

    python convert_checkpoint.py --networks_only checkpoints/mine/ small/

keeps only what completion and fine-tuning need from any checkpoint (G's and D's weights
and batch-norm statistics, dcgan.json; no optimiser slots); with --average_as_g, G is written with
the average of G's weights, which completion uses, and no separate average (a third smaller): how
the shipped model was made.
"""
import argparse

import utils
from dcgan_completion import runtime


@utils.expected_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="folder holding the original's checkpoint (DCGAN.model-N, `checkpoint`)")
    parser.add_argument("dst", help="new folder for the converted checkpoint and dcgan.json")
    parser.add_argument("--networks_only", action="store_true",
                        help="from a checkpoint of either format, write only the networks (no optimiser state, step 0)")
    parser.add_argument("--average_as_g", action="store_true",
                        help="with --networks_only: write the average of G's weights as G, and no average")
    args = parser.parse_args(argv)
    if args.average_as_g and not args.networks_only:
        parser.error("--average_as_g goes with --networks_only")
    runtime.start()  # TensorFlow's environment, then TensorFlow, quietly

    from model import DCGAN, convert_checkpoint  # CheckpointError: a one-line error, by expected_errors
    if args.networks_only:
        from dcgan_completion.networks.storage import save_networks
        model = DCGAN.from_checkpoint(args.src)
        if args.average_as_g:
            model.fold_average()
        written = save_networks(model, args.dst)
    else:
        written = convert_checkpoint(args.src, args.dst)
    print(f"Wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
