"""Quality against iterations for both starts of z: hole PSNR and SSIM (and, on real faces, identity
distance) of the fill at iterations 0, 25, 50, ... for --zInit random and encoder, over seeds.

    python bench/start_curves.py --images demo_out/heldout_faces/heldout --limit 32 --seeds 0,1,2

One completion per start and seed records every frame (the fill G(z) at the start of each chunk
and at the end), pasted into the known pixels; prints a Markdown table (mean over the seeds, and
their spread) and one JSON line per start, seed and iteration.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import metrics  # noqa: E402
import utils  # noqa: E402
from dcgan_completion import runtime  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402

ITERATIONS = (0, 25, 50, 100, 200, 300, 1000)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpointDir", default=None, help="the model (default: the shipped face model)")
    parser.add_argument("--images", required=True, help="folder of ground-truth faces at the model's size")
    parser.add_argument("--limit", type=utils.positive_int, default=32, help="the first K images (sorted)")
    parser.add_argument("--maskType", choices=("center", "left", "right", "top", "bottom"), default="center")
    parser.add_argument("--seeds", default="0,1,2", help="complete.py's seeds, comma-separated")
    parser.add_argument("--iterations", default=",".join(map(str, ITERATIONS)), help="where to score")
    parser.add_argument("--faceMeasures", action="store_true", help="also identity distance (real faces)")
    return parser.parse_args(argv)


def curves(engine_for, images: np.ndarray, mask: np.ndarray, iterations: list[int], seed: int,
           measure=None) -> dict[str, dict[int, dict[str, float]]]:
    """{start: {iteration: scores}} for one seed; engine_for(z_init, n_iter, out_interval, seed) -> engine."""
    step = math.gcd(*[i for i in iterations if i > 0])
    masks = np.repeat(mask[None, ..., :1], len(images), axis=0)
    found = {}
    for start in ("random", "encoder"):
        result = engine_for(start, max(iterations), step, seed).complete(images, masks, record=True)
        frames = dict(result.frames)
        found[start] = {i: score(frames[i], images, mask, measure) for i in iterations}
    return found


def score(fill: np.ndarray, truth: np.ndarray, mask: np.ndarray, measure=None) -> dict[str, float]:
    """The mean scores of fills (float, [-1, 1]) pasted into the truth's known pixels."""
    completed = np.where(mask[None, ..., :1] > 0, truth, utils.to_uint8(fill))
    rows = [metrics.completion_scores(c, t, mask) for c, t in zip(completed, truth)]
    scores = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_hole", "ssim_hole")}
    if measure is not None:
        scores.update(measure(completed, truth))
    return scores


def face_scores(truth: np.ndarray):
    """measure(completed, truth) -> mean identity distance and landmark error (bench/face_measures.py),
    the truth's references found once."""
    import face_measures
    measures = face_measures.FaceMeasures()
    references = [measures.reference(t) for t in truth]

    def measure(completed: np.ndarray, _truth: np.ndarray) -> dict[str, float]:
        found = [measures.measure(r, c) for r, c in zip(references, completed)]
        return {k: float(np.mean([f[k] for f in found])) for k in ("identity_distance", "landmark_error")}
    return measure


def table(per_seed: list[dict], iterations: list[int]) -> str:
    keys = [k for k in per_seed[0]["random"][iterations[0]]]
    lines = ["| start | iterations | " + " | ".join(keys) + " |", "| --- | --- |" + " --- |" * len(keys)]
    for start in ("random", "encoder"):
        for i in iterations:
            cells = []
            for k in keys:
                values = [seed[start][i][k] for seed in per_seed]
                cells.append(f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})")
            lines.append(f"| {start} | {i} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    runtime.start()
    from dcgan_completion import encoder
    from dcgan_completion.completion.engine import CompletionEngine
    from dcgan_completion.completion.settings import CompletionSettings
    from dcgan_completion.networks.storage import resolve_model_dir
    from model import DCGAN
    checkpoint_dir, line = resolve_model_dir(args.checkpointDir)
    print(line, file=sys.stderr)
    model = DCGAN.from_checkpoint(checkpoint_dir)
    start_encoder = encoder.load(checkpoint_dir, model)
    if start_encoder is None:
        utils.fail(f"{checkpoint_dir} has no encoder; add one with python train_encoder.py --checkpointDir DIR")
    paths = utils.list_images(args.images)[:args.limit]
    images = np.stack([utils.load_image(p, model.image_size) for p in paths])
    images = utils.to_uint8(images) if images.dtype != np.uint8 else images
    mask = masking.make_mask(args.maskType, model.image_size)
    iterations = sorted({int(i) for i in args.iterations.split(",")})
    measure = face_scores(images) if args.faceMeasures else None

    def engine_for(z_init: str, n_iter: int, out_interval: int, seed: int) -> CompletionEngine:
        settings = CompletionSettings(n_iter=n_iter, out_interval=out_interval, seed=seed, z_init=z_init,
                                      batch_size=len(images))
        return CompletionEngine(model, settings, start_encoder if z_init == "encoder" else None)

    per_seed = []
    for seed in (int(s) for s in args.seeds.split(",")):
        found = curves(engine_for, images, mask, iterations, seed, measure)
        for start, by_iteration in found.items():
            for i, scores in by_iteration.items():
                print(json.dumps({"seed": seed, "start": start, "iterations": i, **scores}), flush=True)
        per_seed.append(found)
    print(f"\n{len(images)} images of {args.images}, {args.maskType} mask, seeds {args.seeds}; "
          f"mean (min-max over seeds):\n")
    print(table(per_seed, iterations))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
