#!/usr/bin/env python3
"""Time the default completion (64 images, momentum, center mask) against an eager loop and a matmul.

    python bench/bench_complete.py [--nIter 1000] [--batchSize 64] [--xla] [--strategy mirrored]
                                   [--mixed_precision bfloat16]

Runs in chunks of --outInterval iterations on the device, as complete.py does, and
prints a JSON object on its last line.
"""
import argparse
import json
import time

from common import (add_device_flags, build_model, completion_iteration_flops, device_name, matmul_gflops, model,
                    print_flops, tf, torch_reference)

import completion
import masking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nIter", type=int, default=1000)
    parser.add_argument("--batchSize", type=int, default=64)
    parser.add_argument("--imgSize", type=int, default=64)
    parser.add_argument("--outInterval", type=int, default=50)
    parser.add_argument("--eager_iterations", type=int, default=5)
    parser.add_argument("--approach", default="momentum", choices=completion.APPROACHES)
    add_device_flags(parser, "the completion iteration")
    args = parser.parse_args()

    strategy, dcgan = build_model(args, args.imgSize)
    per_image = completion_iteration_flops(dcgan)
    print_flops(dcgan, per_image, "one completion iteration")
    mask = masking.make_mask("center", args.imgSize)
    completer = completion.Completer(dcgan, mask, approach=args.approach, seed=0, xla=args.xla)
    images = tf.random.uniform([args.batchSize, args.imgSize, args.imgSize, 3], -1.0, 1.0)

    def optimise(iterations: int):
        z = completer.initial_z(images)
        state = completer.initial_state(z)
        start = time.perf_counter()
        for first in range(0, iterations, args.outInterval):
            steps = min(args.outInterval, iterations - first)
            z, state, fake, losses, zs = completer.run(z, state, images, first, steps)
            losses.numpy()  # what complete.py fetches after each chunk
        return time.perf_counter() - start, z

    optimise(args.outInterval)  # warm-up: tracing
    seconds, final_z = optimise(args.nIter)
    compiled = args.nIter / seconds
    # Quality: the final z's loss, evaluated in float32 on one device whatever the run used.
    reference = dcgan if args.mixed_precision == "off" and dcgan.strategy is None else \
        model.DCGAN(image_size=args.imgSize, seed=0)
    final_loss, _ = completion.Completer(reference, mask, approach=args.approach, seed=0).loss(final_z, images)

    # The same iterations as a plain eager loop (one Python step per iteration).
    z = completer.initial_z(images)
    state = completer.initial_state(z)

    def eager_iteration(z, state, i):
        loss, grad, _ = completer.loss_and_gradient(z, images)
        return completer._momentum(z, grad, state, i)

    z, state = eager_iteration(z, state, 0)
    start = time.perf_counter()
    for i in range(args.eager_iterations):
        z, state = eager_iteration(z, state, i)
    z.numpy()
    eager = args.eager_iterations / (time.perf_counter() - start)

    matmul = matmul_gflops()
    gflops = compiled * args.batchSize * per_image / 1e9
    result = {
        "device": device_name(), "batch_size": args.batchSize, "image_size": args.imgSize, "nIter": args.nIter,
        "approach": args.approach, "xla": args.xla, "gflop_per_image_iteration": round(per_image / 1e9, 3),
        "strategy": args.strategy, "replicas": strategy.num_replicas_in_sync,
        "mixed_precision": args.mixed_precision, "final_loss_float32": round(float(tf.reduce_mean(final_loss)), 4),
        "seconds": round(seconds, 2),
        "iterations_per_s": round(compiled, 3),
        "eager_iterations_per_s": round(eager, 3),
        "model_gflops_per_s": round(gflops, 1),
        "matmul_gflops_per_s": round(matmul, 1),
        "fraction_of_matmul": round(gflops / matmul, 3),
        "speedup_vs_eager": round(compiled / eager, 2),
    }
    if args.torch_python:
        torch = torch_reference(args.torch_python, args.batchSize, 10, complete=True)
        result.update(torch, speed_vs_torch=round(compiled / torch["torch_iterations_per_s"], 2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
