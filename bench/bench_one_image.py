#!/usr/bin/env python3
"""Time one 64x64 image's completion at batch 1, what a web page's user waits for, start-up apart.

    python bench/bench_one_image.py [--gf_dim 32 --df_dim 32] [--mixed_precision auto|off|bfloat16]
                                    [--rounds 3] [--torch_python PYTHON]

Each round, in a fresh process: start-up (TensorFlow's import, the model, auto's precision
decision, tracing the compiled chunk) apart, then the engine's complete() of one image
with the center mask, as the web app calls it, for 300 and for 1000 iterations (momentum,
chunks of --outInterval). With --torch_python, the same iteration at batch 1 in PyTorch's best
CPU configuration in another process. Prints a JSON object on its last line.
"""
import argparse
import copy
import dataclasses
import time

import harness

START = time.perf_counter()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", default="300,1000", help="comma-separated iteration counts to time")
    parser.add_argument("--outInterval", type=int, default=50, help="iterations per compiled chunk, as complete.py")
    parser.add_argument("--torch_iterations", type=int, default=200, help="timed PyTorch iterations per round")
    harness.add_flags(parser, "the completion")
    return parser.parse_args(argv)


def worker(args) -> dict:
    """One round in this process: start-up, then each iteration count's seconds."""
    import numpy as np

    from common import build_model, matmul_rates
    from dcgan_completion.completion import engine as completion
    from dcgan_completion.completion import masks as masking
    from dcgan_completion.completion.settings import CompletionSettings

    counts = [int(n) for n in args.iterations.split(",")]
    settings = CompletionSettings(approach="momentum", seed=0, xla=args.xla, out_interval=args.outInterval,
                                  batch_size=1)
    strategy, dcgan, precision = build_model(args, 64, "completion", 1, settings)
    image = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    mask = masking.make_mask("center", 64)[None, :, :, :1].astype(np.float32)
    engine = completion.CompletionEngine(dcgan, settings)
    # Tracing, part of the start-up (the web app does it before serving): a short run, as the
    # chunk's length is a tensor (one trace for every length).
    warm_up = copy.copy(engine)
    warm_up.settings = dataclasses.replace(settings, n_iter=2)
    warm_up.complete(image, mask)
    result = dict(mixed_precision=precision, replicas=strategy.num_replicas_in_sync,
                  startup_s=time.perf_counter() - START)
    for count in counts:
        # The web app's way to run another iteration count on the same compiled functions.
        timed = copy.copy(engine)
        timed.settings = dataclasses.replace(settings, n_iter=count)
        start = time.perf_counter()
        timed.complete(image, mask)
        result[f"seconds_{count}"] = time.perf_counter() - start
    result["iterations_per_s"] = counts[-1] / result[f"seconds_{counts[-1]}"]
    return {**result, **matmul_rates(precision)}


def summarise(args, runs: list[dict]) -> tuple[dict, float]:
    """Medians over the rounds of the start-up and of each count's seconds."""
    figures = dict(batch_size=1, image_size=64, gf_dim=args.gf_dim, df_dim=args.df_dim, approach="momentum",
                   out_interval=args.outInterval)
    for key in ["startup_s"] + [k for k in runs[0] if k.startswith("seconds_")]:
        median, _ = harness.summary(runs, key)
        best = min(r[key] for r in runs)
        figures.update({key: round(median, 3), f"{key}_best": round(best, 3)})
    rate, best = harness.summary(runs, "iterations_per_s")
    figures.update(iterations_per_s=round(rate, 1), iterations_per_s_best=round(best, 1))
    return figures, rate


def main() -> None:
    args = parse_args()
    torch_command = None
    if args.torch_python:
        torch_command = harness.torch_command(args.torch_python, args, 1, args.torch_iterations, complete=True)
    harness.main(args, __file__, worker, summarise, torch_command, "torch_iterations_per_s", digits=1)


if __name__ == "__main__":
    main()
