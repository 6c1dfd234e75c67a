"""Shared pieces of the benchmarks: analytic FLOP counts, a matmul reference, timing, device name."""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import model  # noqa: E402  (imports TensorFlow quietly)

import tensorflow as tf  # noqa: E402


def layer_macs(dcgan: model.DCGAN) -> dict[str, list[int]]:
    """Multiply-accumulates per image of each layer's forward pass, for G and D."""
    size, layers = dcgan.image_size, model.num_layers(dcgan.image_size)
    g = [dcgan.z_dim * dcgan.generator.start_size ** 2 * dcgan.generator.start_channels]
    spatial, channels = dcgan.generator.start_size, dcgan.generator.start_channels
    for i in range(1, layers + 1):
        out = dcgan.c_dim if i == layers else channels // 2
        g.append(spatial * spatial * 25 * channels * out)  # transposed conv: every input pixel x kernel
        spatial, channels = spatial * 2, out
    d, spatial, channels = [], size, dcgan.c_dim
    for i in range(layers):
        out = dcgan.df_dim * 2 ** i
        spatial //= 2
        d.append(spatial * spatial * 25 * channels * out)
        channels = out
    d.append(dcgan.discriminator.flat_dim)
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


def matmul_gflops(n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of a large float32 matmul: what this device can do at best."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


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


def torch_reference(python: str, batch_size: int, steps: int, complete: bool = False) -> dict:
    """bench/torch_reference.py's JSON: the same step (or completion iteration) in PyTorch, run in a
    subprocess with a Python that has torch (not a dependency of this project)."""
    import json
    import subprocess
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.py")
    command = [python, script, "--batch_size", str(batch_size), "--steps", str(steps)] + (["--complete"] if complete else [])
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def add_device_flags(parser, what: str) -> None:
    """The flags both benchmarks share: how and where `what` runs, and the PyTorch reference."""
    import distribute
    parser.add_argument("--xla", action="store_true", help=f"compile {what} with XLA")
    parser.add_argument("--strategy", choices=("default", "mirrored"), default="default",
                        help="mirrored: all GPUs (or the logical CPUs of DCGAN_LOGICAL_CPUS); the batch is global")
    parser.add_argument("--mixed_precision", choices=distribute.PRECISIONS, default="off")
    parser.add_argument("--torch_python", default=None, metavar="PYTHON",
                        help=f"also time {what} in PyTorch (bench/torch_reference.py) with this Python")


def build_model(args, image_size: int):
    """(strategy, DCGAN) for the benchmark's flags, with random weights (seed 0)."""
    import distribute
    strategy = distribute.make_strategy(args.strategy)
    with strategy.scope():
        return strategy, model.DCGAN(image_size=image_size, seed=0, compute_dtype=args.mixed_precision)
