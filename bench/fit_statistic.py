#!/usr/bin/env python3
"""Measure how well a model's G explains the known pixels of faces it knows, and store it with the model.

    python bench/fit_statistic.py --checkpointDir checkpoints/face64 --images demo_out/heldout_faces/heldout --write

Completes the held-out faces (truth known, never trained on) with complete.py's defaults (its start
of z and iterations) and the center mask, and prints each face's unexplained share (completion.unexplained_share: 0 = G explains
the pixels the completion fits exactly, 1 = no better than their flat colour), their mean, spread
and largest. --write records them as known_fit in the checkpoint's dcgan.json, with warn_above =
5% above the largest: complete.py warns about inputs above it (docs/real_faces.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion import runtime  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402

MARGIN = 1.05  # warn_above: this much above the largest share among the model's own held-out faces


def summarise(shares: np.ndarray, n_iter: int, knows: str, start: str = "random") -> dict:
    """known_fit as dcgan.json records it."""
    return {"mean": round(float(np.mean(shares)), 4), "std": round(float(np.std(shares)), 4),
            "max": round(float(np.max(shares)), 4), "warn_above": round(float(np.max(shares)) * MARGIN, 4),
            "faces": int(len(shares)), "n_iter": n_iter, "start": start, "weighted_mask": True, "mask": "center",
            "knows": knows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpointDir", required=True, help="the model")
    parser.add_argument("--images", required=True, help="held-out faces of the model's kind (e.g. make_faces heldout/)")
    parser.add_argument("--limit", type=int, default=32, help="use only the first K images (sorted)")
    parser.add_argument("--seed", type=int, default=0, help="complete.py's --seed")
    parser.add_argument("--knows", default="the faces it was trained on", help="what the model knows, in words")
    parser.add_argument("--write", action="store_true", help="record known_fit in the checkpoint's dcgan.json")
    args = parser.parse_args(argv)

    runtime.start()
    from dcgan_completion import encoder
    from dcgan_completion.completion.engine import CompletionEngine, unexplained_share
    from dcgan_completion.completion.settings import CompletionSettings, default_iterations
    from dcgan_completion.networks import storage
    from model import DCGAN

    model = DCGAN.from_checkpoint(args.checkpointDir)
    size = model.image_size
    images, paths, _ = utils.load_images(utils.list_images(args.images)[:args.limit], size, progress=False)
    mask = masking.make_mask("center", size, 0.25)[..., :1]
    masks = np.broadcast_to(mask, (len(images), size, size, 1)).astype(np.float32)
    start = encoder.load(args.checkpointDir, model)  # complete.py's default start, and its iterations
    settings = CompletionSettings(seed=args.seed, n_iter=default_iterations(start is not None))
    engine = CompletionEngine(model, settings, start)
    result = engine.complete(images, masks)
    shares = unexplained_share(images, engine.weights(masks), result.fill)
    for path, share in zip(paths, shares):
        print(f"{Path(path).name} {share:.4f}")
    fit = summarise(shares, settings.n_iter, args.knows, "encoder" if start is not None else "random")
    print(fit)
    if args.write:
        storage.write_known_fit(args.checkpointDir, fit)
        print(f"known_fit written to {Path(args.checkpointDir) / storage.HPARAMS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
