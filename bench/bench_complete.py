#!/usr/bin/env python3
"""Time the article's completion (64 images, momentum, center mask) against PyTorch, an eager loop and a matmul.

    python bench/bench_complete.py [--nIter 100] [--batchSize 64] [--rounds 3] [--xla] [--strategy mirrored]
                                   [--mixed_precision auto|off|float16|bfloat16] [--torch_python PYTHON]

Runs in chunks of --outInterval iterations on the device, as complete.py does. Each round
times TensorFlow in a fresh process, then (with --torch_python) the same iteration in
PyTorch's best CPU configuration in another; figures are medians over the rounds. In a
lower precision, the first round also completes the same images from the same z in float32
and prints both final losses (each evaluated in float32). Prints a JSON object on its last line.
"""
import argparse
import time

import harness


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nIter", type=int, default=100, help="timed iterations per round")
    parser.add_argument("--batchSize", type=int, default=64)
    parser.add_argument("--imgSize", type=int, default=64)
    parser.add_argument("--outInterval", type=int, default=50)
    parser.add_argument("--eager_iterations", type=int, default=5, help="timed eager iterations (first round)")
    parser.add_argument("--torch_iterations", type=int, default=20, help="timed PyTorch iterations per round")
    parser.add_argument("--approach", default="momentum", choices=("momentum", "adam", "hmc"))
    harness.add_flags(parser, "the completion iteration")
    args = parser.parse_args(argv)
    if args.torch_python and args.approach != "momentum":
        parser.error("--torch_python: the PyTorch reference completes with momentum")
    return args


def worker(args) -> dict:
    """One round in this process: TensorFlow's figures (and, first round, the float32 run's final loss)."""
    from common import build_model, completion_iteration_flops, matmul_rates, model, print_flops, scale_generator, tf
    from dcgan_completion.completion import engine as completion
    from dcgan_completion.completion import masks as masking
    from dcgan_completion.completion.settings import CompletionSettings

    settings = CompletionSettings(approach=args.approach, seed=0, xla=args.xla)
    strategy, dcgan, precision = build_model(args, args.imgSize, "completion", args.batchSize, settings)
    per_image = completion_iteration_flops(dcgan)
    if args.first_round:
        print_flops(dcgan, per_image, "one completion iteration")
    mask = masking.make_mask("center", args.imgSize)
    images = tf.random.uniform([args.batchSize, args.imgSize, args.imgSize, 3], -1.0, 1.0, seed=1)

    def optimise(dcgan, iterations: int):
        """(seconds, final z) of `iterations` iterations from the seed's z."""
        completer = completion.LatentOptimizer(dcgan, mask, settings)
        z = completer.initial_z(images)
        completer.run(z, completer.initial_state(z), images, 0, args.outInterval)  # warm-up: tracing
        state = completer.initial_state(z)
        start = time.perf_counter()
        for first in range(0, iterations, args.outInterval):
            steps = min(args.outInterval, iterations - first)
            z, state, fake, losses, zs = completer.run(z, state, images, first, steps)
            losses.numpy()  # what complete.py fetches after each chunk
        return time.perf_counter() - start, z, completer

    seconds, final_z, completer = optimise(dcgan, args.nIter)
    result = dict(mixed_precision=precision, replicas=strategy.num_replicas_in_sync,
                  gflop_per_image_iteration=round(per_image / 1e9, 3), seconds=seconds,
                  iterations_per_s=args.nIter / seconds, **matmul_rates(precision))
    if not args.first_round:
        return result
    # Quality: each run's final z's loss, evaluated in float32 on one device.
    reference = scale_generator(model.DCGAN(image_size=args.imgSize, gf_dim=args.gf_dim, df_dim=args.df_dim, seed=0))
    evaluate = completion.LatentOptimizer(reference, mask, settings).loss
    result["final_loss"] = float(tf.reduce_mean(evaluate(final_z, images)[0]))
    if precision != "off":
        _, float32_z, _ = optimise(reference, args.nIter)
        result["final_loss_float32_run"] = float(tf.reduce_mean(evaluate(float32_z, images)[0]))

    # The same iterations as a plain eager loop (one Python step per iteration).
    z = completer.initial_z(images)
    state = completer.initial_state(z)

    def eager_iteration(z, state, i):
        loss, grad, _ = completer.loss_and_gradient(z, images)
        return completer.momentum_update(z, grad, state, i)

    z, state = eager_iteration(z, state, 0)
    start = time.perf_counter()
    for i in range(args.eager_iterations):
        z, state = eager_iteration(z, state, i)
    z.numpy()
    result["eager_iterations_per_s"] = args.eager_iterations / (time.perf_counter() - start)
    return result


def summarise(args, runs: list[dict]) -> tuple[dict, float]:
    """TensorFlow's figures over the rounds (the final losses from the first), and its iterations per second."""
    first = runs[0]
    rate, best = harness.summary(runs, "iterations_per_s")
    gflops = rate * args.batchSize * first["gflop_per_image_iteration"]
    figures = dict(batch_size=args.batchSize, image_size=args.imgSize, nIter=args.nIter, approach=args.approach,
                   gflop_per_image_iteration=first["gflop_per_image_iteration"],
                   final_loss=round(first["final_loss"], 4))
    if "final_loss_float32_run" in first:
        figures.update(final_loss_float32_run=round(first["final_loss_float32_run"], 4),
                       loss_vs_float32=round(first["final_loss"] / first["final_loss_float32_run"], 4))
    figures.update(iterations_per_s=round(rate, 3), iterations_per_s_best=round(best, 3),
                   eager_iterations_per_s=round(first["eager_iterations_per_s"], 3),
                   speedup_vs_eager=round(rate / first["eager_iterations_per_s"], 2),
                   model_gflops_per_s=round(gflops, 1), **harness.matmul_figures(runs, gflops))
    return figures, rate


def main() -> None:
    args = parse_args()
    torch_command = None
    if args.torch_python:
        torch_command = harness.torch_command(args.torch_python, args, args.batchSize, args.torch_iterations,
                                              args.imgSize, complete=True)
    harness.main(args, __file__, worker, summarise, torch_command, "torch_iterations_per_s", digits=3)


if __name__ == "__main__":
    main()
