#!/usr/bin/env python3
"""Time one 64x64 image's completion at batch 1, what a web page's user waits for, start-up apart.

    python bench/bench_one_image.py [--gf_dim 32 --df_dim 32] [--mixed_precision auto|off|bfloat16]
                                    [--zInit encoder|random] [--rounds 3] [--torch_python PYTHON]

Each round, in a fresh process: start-up (TensorFlow's import, the model, auto's precision
decision, tracing the compiled chunk) apart, then the engine's complete() of one image with
the center mask, as the web app calls it, for each of --iterations (by default complete.py's
defaults: adam from the encoder's start, 200 iterations; and 1000, the random start's), in
chunks of --outInterval. The weights are random (the speed is the same for a trained model),
the encoder too. With --torch_python, the article's momentum iteration at batch 1 in PyTorch's
best CPU configuration in another process (an update of z costs nothing beside G's and D's
passes). Prints a JSON object on its last line.
"""
import argparse
import dataclasses
import time

import harness

START = time.perf_counter()


def parse_args(argv=None) -> argparse.Namespace:
    from dcgan_completion.completion.settings import APPROACHES, Z_INITS, CompletionSettings
    defaults = CompletionSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", default="200,1000", help="comma-separated iteration counts to time")
    parser.add_argument("--outInterval", type=int, default=defaults.out_interval,
                        help="iterations per compiled chunk, as complete.py")
    parser.add_argument("--approach", choices=APPROACHES, default=defaults.approach, help="as complete.py's")
    parser.add_argument("--zInit", choices=Z_INITS, default=defaults.z_init,
                        help="encoder: z starts at an encoder's guess (an untrained one: the same cost); "
                             "random: U(-1, 1)")
    parser.add_argument("--torch_iterations", type=int, default=200, help="timed PyTorch iterations per round")
    harness.add_flags(parser, "the completion")
    return parser.parse_args(argv)


def worker(args) -> dict:
    """One round in this process: start-up, then each iteration count's seconds."""
    import numpy as np

    from common import build_model, matmul_rates
    from dcgan_completion import encoder
    from dcgan_completion.completion import masks as masking
    from dcgan_completion.completion.engine import CompletionEngine
    from dcgan_completion.completion.settings import CompletionSettings, Schedule

    counts = [int(n) for n in args.iterations.split(",")]
    settings = CompletionSettings(approach=args.approach, seed=0, xla=args.xla, out_interval=args.outInterval,
                                  batch_size=1, z_init=args.zInit)
    strategy, dcgan, precision = build_model(args, 64, "completion", 1, settings)
    image = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    mask = masking.make_mask("center", 64)[None, :, :, :1].astype(np.float32)
    start = encoder.for_model(dcgan) if args.zInit == "encoder" else None
    engine = CompletionEngine(dcgan, settings, start)

    def schedule(count: int) -> Schedule:  # the web app's way to run any count on the same compiled functions
        return Schedule.of(dataclasses.replace(settings, n_iter=count))

    # Tracing, part of the start-up (the web app does it before serving): a short run, as the
    # chunk's length is a tensor (one trace for every length).
    engine.complete(image, mask, schedule=schedule(2))
    result = dict(mixed_precision=precision, replicas=strategy.num_replicas_in_sync,
                  startup_s=time.perf_counter() - START)
    for count in counts:
        began = time.perf_counter()
        engine.complete(image, mask, schedule=schedule(count))
        result[f"seconds_{count}"] = time.perf_counter() - began
    result["iterations_per_s"] = counts[-1] / result[f"seconds_{counts[-1]}"]
    return {**result, **matmul_rates(precision)}


def summarise(args, runs: list[dict]) -> tuple[dict, float]:
    """Medians over the rounds of the start-up and of each count's seconds."""
    figures = dict(batch_size=1, image_size=64, gf_dim=args.gf_dim, df_dim=args.df_dim, approach=args.approach,
                   z_init=args.zInit, out_interval=args.outInterval)
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
