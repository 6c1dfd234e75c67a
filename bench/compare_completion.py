#!/usr/bin/env python3
"""Which completion settings fill held-out faces best: the evidence behind complete.py's defaults.

    python bench/compare_completion.py --checkpointDir checkpoints/demo --images demo_out/faces/heldout

Runs every candidate (update rule, step size, lam, the weighted mask, restarts) on the same
images, mask and starting z, in one process, and prints the hole PSNR/SSIM of each after
each of --iters iterations, with the fill pasted into the hole and Poisson-blended, beside
OpenCV's Telea and Navier-Stokes inpainting; then one JSON object on the last line.
Restarts run R random z per image side by side in one batch and keep, per image, the one
with the lowest final loss.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import eval_completion  # noqa: E402
import utils  # noqa: E402
from dcgan_completion import runtime  # noqa: E402
from dcgan_completion.completion import compositing  # noqa: E402

# name -> CompletionSettings fields (weighted_mask: the paper's weighted contextual loss), and restarts.
CANDIDATES = {
    "article": dict(approach="momentum", lr=0.01),  # the article's update and loss (lr 0.01)
    "momentum_lr0.001": dict(approach="momentum", lr=0.001),
    "momentum_lr0.0001": dict(approach="momentum", lr=0.0001),
    "adam": dict(approach="adam", lr=0.01),
    "adam_weighted": dict(approach="adam", lr=0.01, weighted_mask=True),  # complete.py's defaults
    "adam_weighted_lam0.003": dict(approach="adam", lr=0.01, weighted_mask=True, lam=0.003),  # the paper's lambda
    "adam_weighted_4restarts": dict(approach="adam", lr=0.01, weighted_mask=True, restarts=4),
}


def complete(model, truth: np.ndarray, mask: np.ndarray, candidate: dict, iters: list[int], precision: str):
    """Yield (iterations, per-image fills as uint8, mean final loss, seconds) at each of iters."""
    from dcgan_completion.completion.engine import CompletionEngine
    from dcgan_completion.completion.settings import CompletionSettings

    fields = dict(candidate)
    restarts, count = fields.pop("restarts", 1), len(truth)
    # One batch of every restart; chunks that end at every reported iteration.
    settings = CompletionSettings(weighted_mask=fields.pop("weighted_mask", False), seed=0, n_iter=iters[-1],
                                  out_interval=math.gcd(*iters), batch_size=count * restarts, **fields)
    masks = np.broadcast_to(mask[..., :1], (count * restarts,) + mask.shape[:2] + (1,))
    seen, ends, started = {}, {}, time.perf_counter()

    def keep(progress) -> None:  # G(z) and its loss at a reported iteration, and when it was reached
        ends[progress.done] = time.perf_counter() - started
        if progress.frame_iteration in iters:
            seen[progress.frame_iteration] = (progress.frame, progress.frame_loss)

    result = CompletionEngine(model, settings).complete(np.tile(truth, (restarts, 1, 1, 1)), masks, keep)
    seen[iters[-1]] = (result.fill, result.loss)
    for target in iters:
        fake, loss = seen[target]
        loss = loss.reshape(restarts, count)
        fake = fake.reshape((restarts, count) + fake.shape[1:])
        best = loss.argmin(axis=0)
        yield target, utils.to_uint8(fake[best, np.arange(count)]), float(loss.min(axis=0).mean()), ends[target]


def scores(completed: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    result = eval_completion.score_method(completed, truth, mask)
    return round(result["psnr_hole"], 2), round(result["ssim_hole"], 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpointDir", required=True, help="the trained model")
    parser.add_argument("--images", required=True, help="folder of held-out ground-truth images")
    parser.add_argument("--maskType", default="center", choices=eval_completion.EVAL_MASK_TYPES)
    parser.add_argument("--limit", type=utils.positive_int, default=64, help="use the first K images (sorted)")
    parser.add_argument("--iters", default="300,1000", help="report after these many iterations")
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help="comma-separated names from: " + ", ".join(CANDIDATES))
    parser.add_argument("--mixed_precision", default="auto", help="as complete.py's")
    args = parser.parse_args(argv)
    iters = sorted(int(n) for n in args.iters.split(","))
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidate {unknown[0]!r}")

    runtime.start()
    from dcgan_completion import auto_precision
    from dcgan_completion.completion.settings import CompletionSettings
    from dcgan_completion.networks.storage import read_config
    from model import DCGAN
    model, precision, _ = auto_precision.completion_precision(
        args.mixed_precision, lambda p, phases: DCGAN.from_checkpoint(args.checkpointDir, compute_dtype=p, phases=phases),
        read_config(args.checkpointDir), min(args.limit, 64), CompletionSettings())
    truth, _, _ = utils.load_images(utils.list_images(args.images)[:args.limit], model.image_size, progress=False)
    mask = eval_completion.eval_mask(args.maskType, model.image_size)
    print(f"{len(truth)} images, {model.image_size}x{model.image_size}, mask {args.maskType}, precision {precision}; "
          f"hole PSNR (dB) / SSIM")
    rows = []
    for name in ("opencv_telea", "opencv_ns"):
        completed = np.stack([eval_completion.BASELINES[name](image, mask) for image in truth])
        rows.append(dict(candidate=name, iters=None, pasted=scores(completed, truth, mask)))
        print(f"{name:<24} {'':>6} {rows[-1]['pasted'][0]:>6.2f} / {rows[-1]['pasted'][1]:.4f}", flush=True)
    for name in names:
        for target, fill, loss, seconds in complete(model, truth, mask, CANDIDATES[name], iters, precision):
            pasted = np.where(mask[None] > 0.5, truth, fill).astype(np.uint8)
            blended = np.stack([compositing.poisson_blend(t, f, mask) for t, f in zip(truth, fill)])
            rows.append(dict(candidate=name, iters=target, pasted=scores(pasted, truth, mask),
                             poisson=scores(blended, truth, mask), loss=round(loss, 2), seconds=round(seconds, 1)))
            row = rows[-1]
            print(f"{name:<24} {target:>6} {row['pasted'][0]:>6.2f} / {row['pasted'][1]:.4f}   Poisson "
                  f"{row['poisson'][0]:>6.2f} / {row['poisson'][1]:.4f}   loss {loss:.2f}  {seconds:.0f}s", flush=True)
    print(json.dumps(dict(checkpoint=str(args.checkpointDir), images=len(truth), mask=args.maskType,
                          precision=precision, rows=rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
