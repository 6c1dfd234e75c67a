"""Fair timing of TensorFlow against PyTorch, without importing either.

Each measurement runs in its own process, TensorFlow's and PyTorch's in alternating
rounds (TF, torch, TF, torch, ...), so that no framework's thread pools are alive while
the other is timed and a shared machine's drift hits both alike. Each framework's figure
is its median over the rounds (the best is printed too).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dcgan_completion import runtime  # noqa: E402  (no TensorFlow)

FLAGS_THAT_MATTER = ("amx_bf16", "avx512_bf16", "avx512f")


def cpu_description() -> dict:
    """The CPU model and whether it has the flags that decide bfloat16's speed."""
    name, flags = runtime.cpu_info()
    return {"cpu": name or "unknown", "cpu_cores": os.cpu_count(),
            **{flag: flag in flags for flag in FLAGS_THAT_MATTER},
            "onednn": os.environ.get(runtime.ONEDNN, "1") == "1"}  # the workers' kernels (utils.default_to_onednn)


def run_json(command: list[str], echo: bool = False) -> dict:
    """Run a command to its end and return the JSON object on its last line of output
    (echo: print the lines before it)."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command[:3])} ... failed:\n{result.stderr[-3000:]}")
    lines = result.stdout.strip().splitlines()
    if echo:
        print("\n".join(lines[:-1]), flush=True)
    return json.loads(lines[-1])


def alternate(tf_command: list[str], torch_command: list[str] | None, rounds: int,
              torch_after_first=None) -> tuple[list[dict], list[dict]]:
    """Run the TensorFlow and the PyTorch command in turn, `rounds` times each, one process at a time.

    torch_after_first(first TF result) -> extra PyTorch arguments (the precision TF resolved).
    """
    tf_results, torch_results = [], []
    for round_ in range(rounds):
        tf_results.append(run_json(tf_command + (["--first_round"] if round_ == 0 else []), echo=round_ == 0))
        if torch_command is not None:
            extra = torch_after_first(tf_results[0]) if torch_after_first else []
            torch_results.append(run_json(torch_command + extra))
    return tf_results, torch_results


def main(args, script: str, worker, summarise, torch_command: list[str] | None, torch_key: str,
         digits: int) -> None:
    """A benchmark's entry point. With --worker: one TensorFlow round in this process, its JSON printed.
    Else: the alternating rounds of `script --worker` and the PyTorch command, summarised as one JSON line.

    worker(args) -> one round's figures; summarise(args, runs) -> (TensorFlow's figures for the line,
    the rate speed_vs_torch divides by PyTorch's `torch_key`); digits: how figures are rounded.
    """
    if args.worker:
        print(json.dumps(worker(args)))
        return
    runs, torch_runs = alternate([sys.executable, script, "--worker"] + sys.argv[1:], torch_command, args.rounds,
                                 torch_precision)
    result = header(args, runs[0], len(runs))
    figures, rate = summarise(args, runs)
    result.update(figures)
    if torch_runs:
        torch_rate, torch_best = summary(torch_runs, torch_key)
        result.update(torch_header(torch_runs[0]))
        result.update({torch_key: round(torch_rate, digits), f"{torch_key}_best": round(torch_best, digits),
                       "speed_vs_torch": round(rate / torch_rate, 2)})
    print(json.dumps(result))


def summary(results: list[dict], key: str) -> tuple[float, float]:
    """(median, best) of one figure over the rounds."""
    values = [r[key] for r in results]
    return statistics.median(values), max(values)


PRECISION_CHOICES = ("auto", "off", "float16", "bfloat16")   # --mixed_precision, as the scripts


def add_flags(parser, what: str) -> None:
    """The flags both benchmarks share: how and where `what` runs, the rounds, the PyTorch reference."""
    parser.add_argument("--xla", action="store_true", help=f"compile {what} with XLA")
    parser.add_argument("--strategy", choices=("default", "mirrored"), default="default",
                        help="mirrored: all GPUs (or the logical CPUs of DCGAN_LOGICAL_CPUS); the batch is global")
    parser.add_argument("--mixed_precision", choices=PRECISION_CHOICES, default="auto",
                        help="as the script timed: training's auto keeps float32, completion's measures")
    parser.add_argument("--gf_dim", type=int, default=64, help="G's width (64: the article's; 32: the shipped model's)")
    parser.add_argument("--df_dim", type=int, default=64, help="D's width")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of TensorFlow and PyTorch")
    parser.add_argument("--torch_python", default=None, metavar="PYTHON",
                        help=f"also time {what} in PyTorch (bench/torch_reference.py) with this Python")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one round, in-process
    parser.add_argument("--first_round", action="store_true", help=argparse.SUPPRESS)


def torch_command(python: str, args, batch_size: int, steps: int, image_size: int = 64,
                  complete: bool = False) -> list[str]:
    """bench/torch_reference.py with another Python (one with torch), on as many threads as TensorFlow uses,
    for the model of args' widths at this size."""
    script = os.path.join(ROOT, "bench", "torch_reference.py")
    return [python, script, "--batch_size", str(batch_size), "--steps", str(steps), "--threads", str(os.cpu_count()),
            "--gf_dim", str(args.gf_dim), "--df_dim", str(args.df_dim), "--image_size", str(image_size)] + \
        (["--complete"] if complete else [])


def torch_precision(first_tf_result: dict) -> list[str]:
    """PyTorch runs in the precision TensorFlow resolved (autocast for bfloat16 and float16)."""
    return ["--precision", first_tf_result["mixed_precision"]]


def header(args, first: dict, rounds: int) -> dict:
    """The JSON line's first fields: where and how it ran."""
    return {"device": first["device"], **cpu_description(), "mixed_precision": first["mixed_precision"],
            "xla": args.xla, "strategy": args.strategy, "replicas": first["replicas"],
            "timing": f"median of {rounds} alternating rounds, each framework in a fresh process"}


def torch_header(first: dict) -> dict:
    return {k: first[k] for k in ("torch_version", "threads", "torch_precision", "torch_layout")}


def matmul_figures(runs: list[dict], model_gflops: float) -> dict:
    """The large-matmul rates (the run's precision and float32) and the fraction of the former reached."""
    rate = statistics.median(r["matmul_gflops_per_s"] for r in runs)
    return {"matmul_precision": runs[0]["matmul_precision"], "matmul_gflops_per_s": round(rate, 1),
            "matmul_float32_gflops_per_s": round(statistics.median(r["matmul_float32_gflops_per_s"] for r in runs), 1),
            "fraction_of_matmul": float(f"{model_gflops / rate:.3g}")}  # 3 significant digits, even when tiny
