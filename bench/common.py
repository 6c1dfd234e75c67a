"""Shared TensorFlow pieces of the benchmarks' rounds: analytic FLOP counts, matmul references, the model."""
from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dcgan_completion import runtime  # noqa: E402

runtime.start()  # as the scripts start TensorFlow
import tensorflow as tf  # noqa: E402

import model  # noqa: E402
from dcgan_completion.networks import layouts  # noqa: E402
from dcgan_completion.networks.config import ModelConfig  # noqa: E402


def layer_macs(dcgan: model.DCGAN) -> dict[str, list[int]]:
    """Multiply-accumulates per image of each layer's forward pass, for G and D, from the widths
    layouts.py gives the model's layout (every conv and transposed conv is KERNEL x KERNEL, stride 2)."""
    kernel = layouts.KERNEL ** 2
    start, widths = layouts.generator_plan(dcgan.layout, dcgan.image_size, dcgan.gf_dim, dcgan.c_dim)
    g, spatial = [dcgan.z_dim * start ** 2 * widths[0]], start
    for inputs, out in zip(widths, widths[1:]):
        g.append(spatial * spatial * kernel * inputs * out)  # transposed conv: every input pixel x kernel
        spatial *= 2
    d_widths, end = layouts.discriminator_widths(dcgan.image_size, dcgan.df_dim)
    d, spatial, channels = [], dcgan.image_size, dcgan.c_dim
    for out in d_widths:
        spatial //= 2
        d.append(spatial * spatial * kernel * channels * out)
        channels = out
    d.append(end * end * channels)  # the linear layer
    return {"G": g, "D": d}


def train_step_flops(dcgan: model.DCGAN) -> float:
    """FLOPs per image of one training step: one D update, two G updates.

    Backward passes cost one forward for the weight gradients and one for the input
    gradients, except where an input gradient is not needed (D's input in the D update,
    z in the G update).
    """
    macs = layer_macs(dcgan)
    g, d = sum(macs["G"]), sum(macs["D"])
    d_update = g + 2 * d + 2 * (d + d - macs["D"][0])
    g_update = g + d + d + g + (g - macs["G"][0])
    return 2.0 * (d_update + 2 * g_update)


def completion_iteration_flops(dcgan: model.DCGAN) -> float:
    """FLOPs per image of one completion iteration: G and D forward, input gradients back to z."""
    macs = layer_macs(dcgan)
    g, d = sum(macs["G"]), sum(macs["D"])
    return 2.0 * (g + d + d + g)


def matmul_gflops(n: int = 4096, repeats: int = 5, dtype=tf.float32) -> float:
    """GFLOP/s of a large matmul in `dtype`: what this device can do at best in that precision."""
    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


def matmul_rates(precision: str) -> dict:
    """The large-matmul rate in the run's precision and in float32, and this device's name."""
    dtype = tf.float32 if precision == "off" else tf.as_dtype(precision)
    float32 = matmul_gflops()
    rate = float32 if dtype == tf.float32 else matmul_gflops(dtype=dtype)
    return {"device": device_name(), "matmul_precision": dtype.name, "matmul_gflops_per_s": rate,
            "matmul_float32_gflops_per_s": float32}


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    return f"CPU ({os.cpu_count()} cores)"


def print_flops(dcgan: model.DCGAN, per_image: float, what: str) -> None:
    macs = layer_macs(dcgan)
    print(f"Analytic FLOP count of {what} at {dcgan.image_size}x{dcgan.image_size}:")
    for net, values in macs.items():
        print(f"  {net} forward: " + ", ".join(f"{2 * v / 1e6:.1f}" for v in values)
              + f" MFLOP per layer, {2 * sum(values) / 1e9:.3f} GFLOP per image")
    print(f"  {what}: {per_image / 1e9:.2f} GFLOP per image")


def scale_generator(dcgan: model.DCGAN, gain: float = 3.0) -> model.DCGAN:
    """Multiply G's weights by `gain`: an untrained G (stddev 0.02, moving statistics 0 and 1) gives
    ~1e-5 for every z; at 64x64 a gain of 3 gives images of std ~0.6 that vary with z, like a trained
    G's, so that the completion's final loss means something."""
    for var in dcgan.generator.trainable_variables:
        if var.name.split("/")[-1].split(":")[0] in ("w", "Matrix"):
            var.assign(var * gain)
    return dcgan


def build_model(args, image_size: int, job: str = "training", batch: int = 64, settings=None):
    """(strategy, DCGAN, precision) for the benchmark's flags, with random weights (seed 0; G scaled for a
    completion); precision is what --mixed_precision resolves to in train_dcgan.py (job "training") or
    complete.py (job "completion": auto measures this model at `batch` with `settings`)."""
    from dcgan_completion import auto_precision, distribute
    strategy = distribute.make_strategy(args.strategy)
    config = ModelConfig(image_size=image_size, gf_dim=args.gf_dim, df_dim=args.df_dim)

    def build(precision: str, phases: bool | None) -> model.DCGAN:
        with strategy.scope():
            dcgan = model.DCGAN(**dataclasses.asdict(config), seed=0, compute_dtype=precision, phases=phases)
        return scale_generator(dcgan) if job == "completion" else dcgan

    choose = auto_precision.training_precision if job == "training" else \
        functools.partial(auto_precision.completion_precision, settings=settings)
    dcgan, precision, why = choose(args.mixed_precision, build, config, batch,
                                   replicas=strategy.num_replicas_in_sync)
    print(f"precision: {why}", flush=True)
    return strategy, dcgan, precision
