#!/usr/bin/env python3
"""Completion quality along a training run: each kept checkpoint's average G on held-out faces.

    python bench/epoch_curve.py --kept run/kept --images data/artflow/heldout128 --limit 16 --outDir OUT

KEPT holds checkpoints DCGAN.model-STEP saved along one run (copied aside as it saves them: the run
keeps only its last three) and the run's dcgan.json. For each, the average of G's weights is written
as a model of its own (convert_checkpoint.py --networks_only --average_as_g) and
bench/eval_completion.py fills the centre hole of the first --limit images with complete.py's
defaults from a random z, --nIter iterations (there is no encoder yet: the curve compares the
generators alone). Prints a line per checkpoint (step, epoch, hole PSNR, hole SSIM), then writes
OUT/curve.json and OUT/curve.png.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402

CHECKPOINT = re.compile(r"DCGAN\.model-(\d+)\.index")


def kept_steps(kept: Path) -> list[int]:
    """The steps of the checkpoints in kept, in order."""
    steps = sorted(int(m.group(1)) for m in map(CHECKPOINT.fullmatch, (p.name for p in kept.iterdir())) if m)
    if not steps:
        raise utils.UserError(f"{kept}: no DCGAN.model-STEP.index")
    if not (kept / "dcgan.json").is_file():
        raise utils.UserError(f"{kept}: no dcgan.json (copy the run's beside its checkpoints)")
    return steps


def model_at(kept: Path, step: int, out: Path) -> Path:
    """The average G (and D) of the checkpoint at `step`, as a model folder under out."""
    source = out / "checkpoints" / str(step)
    source.mkdir(parents=True, exist_ok=True)
    for path in kept.glob(f"DCGAN.model-{step}.*"):
        target = source / path.name
        if not target.exists():
            target.symlink_to(path.resolve())
    (source / "dcgan.json").write_text((kept / "dcgan.json").read_text())
    (source / "checkpoint").write_text(f'model_checkpoint_path: "DCGAN.model-{step}"\n')
    model = out / "models" / str(step)
    if not (model / "checkpoint").exists():
        run([sys.executable, str(ROOT / "convert_checkpoint.py"), "--networks_only", "--average_as_g",
             str(source), str(model)])
    return model


def run(command: list[str]) -> None:
    """Runs a script of the project's; its failure is a one-line error with the last lines it printed."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-2:])
        raise utils.UserError(f"{Path(command[1]).name} failed (exit {done.returncode}): {tail}")


def evaluate(model: Path, images: str, limit: int, n_iter: int, out: Path) -> dict:
    """Hole PSNR and SSIM of the model's completions (eval_completion.py's 'dcgan' method); a checkpoint
    already scored in out (a run evaluated as it goes) is not scored again."""
    if not (out / "results_center.json").exists():
        run([sys.executable, str(ROOT / "bench" / "eval_completion.py"), "--checkpointDir", str(model),
             "--images", images, "--maskType", "center", "--limit", str(limit), "--nIter", str(n_iter),
             "--methods", "dcgan", "--no-faceMeasures", "--quiet", "--outDir", str(out)])
    result = json.loads((out / "results_center.json").read_text())["methods"]["dcgan"]
    return {"psnr_hole": result["psnr_hole"], "ssim_hole": result["ssim_hole"]}


def plot(points: list[dict], path: Path) -> None:
    figure, psnr = plt.subplots(figsize=(6, 3.2), dpi=100)
    epochs = [p["epoch"] for p in points]
    psnr.plot(epochs, [p["psnr_hole"] for p in points], "o-", color="tab:blue")
    psnr.set_xlabel("epoch")
    psnr.set_ylabel("hole PSNR (dB)", color="tab:blue")
    ssim = psnr.twinx()
    ssim.plot(epochs, [p["ssim_hole"] for p in points], "s--", color="tab:orange")
    ssim.set_ylabel("hole SSIM", color="tab:orange")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", required=True, help="checkpoints saved along one run, with its dcgan.json")
    parser.add_argument("--images", required=True, help="held-out faces at the model's size")
    parser.add_argument("--limit", type=utils.positive_int, default=16, help="the first K images (sorted)")
    parser.add_argument("--nIter", type=utils.positive_int, default=300, help="complete.py's iterations")
    parser.add_argument("--stepsPerEpoch", type=utils.positive_int, required=True,
                        help="the run's steps per epoch (its images // batch size)")
    parser.add_argument("--outDir", default="completions/epoch_curve", help="models, completions, curve")
    return parser.parse_args(argv)


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    kept, out = Path(args.kept), Path(args.outDir)
    points = []
    for step in kept_steps(kept):
        scores = evaluate(model_at(kept, step, out), args.images, args.limit, args.nIter,
                          out / "eval" / str(step))
        points.append({"step": step, "epoch": round(step / args.stepsPerEpoch, 2), **scores})
        print(f"step {step:6d}  epoch {points[-1]['epoch']:5.2f}  hole PSNR {scores['psnr_hole']:.2f} dB  "
              f"SSIM {scores['ssim_hole']:.3f}", flush=True)
    utils.save_json(out / "curve.json", {"images": args.images, "limit": args.limit, "nIter": args.nIter,
                                         "points": points})
    plot(points, out / "curve.png")
    print(f"curve: {out / 'curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
