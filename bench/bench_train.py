#!/usr/bin/env python3
"""Time the full training step (one D and two G updates) against PyTorch, an eager run and a matmul.

    python bench/bench_train.py [--batch_size 64] [--image_size 64] [--steps 10] [--rounds 3] [--xla]
                                [--strategy mirrored] [--mixed_precision auto|off|float16|bfloat16] [--torch_python PYTHON]

Each round times TensorFlow in a fresh process, then (with --torch_python) the same step in
PyTorch's best CPU configuration in another (bench/torch_reference.py); figures are medians
over the rounds. Prints the analytic FLOP count, then a JSON object on its last line.
"""
import argparse
import time

import harness


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed compiled steps per round")
    parser.add_argument("--eager_steps", type=int, default=3, help="timed eager steps (first round)")
    harness.add_flags(parser, "the training step")
    args = parser.parse_args(argv)
    return args


def time_steps(step, images, steps: int, batch_size: int) -> float:
    """Images per second over `steps` steps, waiting for the last to finish."""
    start = time.perf_counter()
    for _ in range(steps):
        out = step(images)
    float(out["d_loss"])
    return steps * batch_size / (time.perf_counter() - start)


def worker(args) -> dict:
    """One round in this process: TensorFlow's figures."""
    from common import build_model, matmul_rates, print_flops, tf, train_step_flops

    strategy, dcgan, precision = build_model(args, args.image_size, "training", args.batch_size)
    per_image = train_step_flops(dcgan)
    if args.first_round:
        print_flops(dcgan, per_image, "one training step")
    images = tf.random.uniform([args.batch_size, args.image_size, args.image_size, 3], -1.0, 1.0)
    if dcgan.strategy is None:
        batch, eager_step = images, dcgan._train_step_fn
    else:
        batch = dcgan.distribute_batch(images)
        eager_step = lambda b: dcgan._distributed_step_fn(dcgan._replica_step, b, tf.constant(0.0))  # noqa: E731
    dcgan.compile(xla=args.xla)
    time_steps(dcgan.train_step, batch, 2, args.batch_size)  # warm-up: tracing and compilation
    result = dict(mixed_precision=precision, replicas=strategy.num_replicas_in_sync,
                  gflop_per_image=round(per_image / 1e9, 3),
                  train_images_per_s=time_steps(dcgan.train_step, batch, args.steps, args.batch_size),
                  **matmul_rates(precision))
    if args.first_round:
        time_steps(eager_step, batch, 1, args.batch_size)
        result["eager_images_per_s"] = time_steps(eager_step, batch, args.eager_steps, args.batch_size)
    return result


def summarise(args, runs: list[dict]) -> tuple[dict, float]:
    """TensorFlow's figures over the rounds, and its images per second."""
    first = runs[0]
    images_per_s, best = harness.summary(runs, "train_images_per_s")
    gflops = images_per_s * first["gflop_per_image"]
    figures = dict(batch_size=args.batch_size, image_size=args.image_size, gflop_per_image=first["gflop_per_image"],
                   train_images_per_s=round(images_per_s, 2), train_images_per_s_best=round(best, 2),
                   eager_images_per_s=round(first["eager_images_per_s"], 2),
                   speedup_vs_eager=round(images_per_s / first["eager_images_per_s"], 2),
                   model_gflops_per_s=round(gflops, 1), **harness.matmul_figures(runs, gflops))
    return figures, images_per_s


def main() -> None:
    args = parse_args()
    torch_command = None
    if args.torch_python:
        torch_command = harness.torch_command(args.torch_python, args, args.batch_size, args.steps, args.image_size)
    harness.main(args, __file__, worker, summarise, torch_command, "torch_images_per_s", digits=2)


if __name__ == "__main__":
    main()
