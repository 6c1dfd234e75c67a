#!/usr/bin/env python3
"""Time the full training step (one D and two G updates) against an eager run and a matmul.

    python bench/bench_train.py [--batch_size 64] [--steps 10] [--xla] [--strategy mirrored]
                                [--mixed_precision bfloat16]

Prints the analytic FLOP count, then a JSON object on its last line.
"""
import argparse
import json
import time

from common import (add_device_flags, build_model, device_name, matmul_gflops, print_flops, tf, torch_reference,
                    train_step_flops)


def time_steps(step, images, steps: int, batch_size: int) -> float:
    """Images per second over `steps` steps, waiting for the last to finish."""
    start = time.perf_counter()
    for _ in range(steps):
        out = step(images)
    float(out["d_loss"])
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed compiled steps")
    parser.add_argument("--eager_steps", type=int, default=3, help="timed eager steps")
    add_device_flags(parser, "the training step")
    args = parser.parse_args()

    strategy, dcgan = build_model(args, args.image_size)
    per_image = train_step_flops(dcgan)
    print_flops(dcgan, per_image, "one training step")
    images = tf.random.uniform([args.batch_size, args.image_size, args.image_size, 3], -1.0, 1.0)
    if dcgan.strategy is None:
        batch, eager_step = images, dcgan._train_step_fn
    else:
        batch = dcgan.distribute_batch(images)
        eager_step = lambda b: dcgan._distributed_step_fn(dcgan._replica_step, b, tf.constant(0.0))  # noqa: E731

    dcgan.compile(xla=args.xla)
    time_steps(dcgan.train_step, batch, 2, args.batch_size)  # warm-up: tracing and compilation
    compiled = time_steps(dcgan.train_step, batch, args.steps, args.batch_size)
    time_steps(eager_step, batch, 1, args.batch_size)
    eager = time_steps(eager_step, batch, args.eager_steps, args.batch_size)
    matmul = matmul_gflops()
    result = {
        "device": device_name(), "batch_size": args.batch_size, "image_size": args.image_size, "xla": args.xla,
        "strategy": args.strategy, "replicas": strategy.num_replicas_in_sync,
        "mixed_precision": args.mixed_precision,
        "gflop_per_image": round(per_image / 1e9, 3),
        "train_images_per_s": round(compiled, 2),
        "eager_images_per_s": round(eager, 2),
        "model_gflops_per_s": round(compiled * per_image / 1e9, 1),
        "matmul_gflops_per_s": round(matmul, 1),
        "fraction_of_matmul": round(compiled * per_image / 1e9 / matmul, 3),
        "speedup_vs_eager": round(compiled / eager, 2),
    }
    if args.torch_python:
        torch = torch_reference(args.torch_python, args.batch_size, args.steps)
        result.update(torch, speed_vs_torch=round(compiled / torch["torch_images_per_s"], 2))
    print(json.dumps(result))



if __name__ == "__main__":
    main()
