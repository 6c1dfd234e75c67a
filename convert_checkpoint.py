#!/usr/bin/env python3
"""Convert the original's TensorFlow 1 checkpoint to this port's format.

    python convert_checkpoint.py checkpoint/ converted/

Reads the newest DCGAN.model-N in SRC (image size and widths are inferred from its
shapes) and writes DST/DCGAN.model-N and DST/dcgan.json, which complete.py and
train_dcgan.py load directly. The original's checkpoints hold no optimiser state, so
training resumed from the converted checkpoint starts Adam afresh.
"""
import argparse

import utils


@utils.expected_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="folder holding the original's checkpoint (DCGAN.model-N, `checkpoint`)")
    parser.add_argument("dst", help="new folder for the converted checkpoint and dcgan.json")
    args = parser.parse_args(argv)

    from model import convert_checkpoint  # CheckpointError: a one-line error, by expected_errors
    print(f"Wrote {convert_checkpoint(args.src, args.dst)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
