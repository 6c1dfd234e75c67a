#!/usr/bin/env python3
"""The article's whole pipeline on data the project makes itself (`make demo`, under 10 minutes on 2 cores).

1. generate procedural 64x64 faces (data/make_faces.py): a small training set, and held-out
   faces from another seed, which the drawn-face model never saw;
2. align a real photo (matplotlib's grace_hopper.jpg) with align_faces.py, to show that step;
3. train: fine-tune a copy of the drawn-face model (checkpoints/drawn64, trained on make_faces.py's
   faces) for a few minutes that you can watch (sample grids, TensorBoard logs), or with
   --from_scratch train a new model for --train_minutes;
4. complete the held-out faces with the drawn-face model (center mask, float32: the same pictures
   and table on every machine) and compare with classical inpainting (bench/eval_completion.py).

The demo uses the drawn-face model because it runs on drawn faces; the model complete.py uses by
default (checkpoints/face64) knows portraits of people.

Every step is one of the project's own commands, printed before it runs.
"""
import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DRAWN = ROOT / "checkpoints" / "drawn64"  # the drawn-face model: what the demo's faces are


def run(command: list, quiet: bool = False) -> str:
    """Run one of the project's commands from the repository root, showing it; stop the demo if it fails."""
    shown = " ".join(str(part) for part in command)
    print(f"\n$ {shown}", flush=True)
    result = subprocess.run([sys.executable, *map(str, command)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE if quiet else None)
    if result.returncode != 0:
        print(f"error: the demo stopped because this command failed (exit {result.returncode}): {shown}",
              file=sys.stderr)
        raise SystemExit(result.returncode)
    return result.stdout or ""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="where every output goes")
    parser.add_argument("--checkpoint_dir", default="demo_out/model",
                        help="the model step 3 trains: a copy of the drawn-face model, fine-tuned")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of step 3 over the generated training faces")
    parser.add_argument("--from_scratch", action="store_true",
                        help="step 3 trains a new half-width model instead (25 epochs within --train_minutes)")
    parser.add_argument("--train_minutes", type=float, default=15.0, help="time budget of --from_scratch")
    parser.add_argument("--count", type=int, default=2000, help="generated training faces")
    parser.add_argument("--heldout", type=int, default=16, help="generated held-out faces to complete")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 16x16, tiny model trained from scratch, a few steps (used by the tests)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    out = Path(args.out).resolve()
    train_faces, heldout_faces, aligned = out / "faces" / "train", out / "heldout_faces" / "heldout", out / "aligned"
    checkpoint, samples, logs = Path(args.checkpoint_dir).resolve(), out / "samples", out / "logs"
    scratch = args.quick or args.from_scratch
    if not scratch and not DRAWN.is_dir():
        print(f"error: the drawn-face model {DRAWN} is missing; run with --from_scratch", file=sys.stderr)
        return 2
    size, count, heldout = (16, 96, 8) if args.quick else (64, args.count, args.heldout)

    print("== 1. Generate procedural faces: training faces, and held-out faces of another seed")
    run(["data/make_faces.py", train_faces.parent, "--count", count, "--heldout", 0, "--size", size, "--seed", 0])
    run(["data/make_faces.py", heldout_faces.parent, "--count", 0, "--heldout", heldout, "--size", size, "--seed", 1])

    print("\n== 2. Align a real photo with dlib, as the article does with OpenFace")
    photo_dir = out / "photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib.cbook
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), photo_dir / "grace_hopper.jpg")
    run(["align_faces.py", photo_dir, "align", "innerEyesAndBottomLip", aligned, "--size", 64])

    print("\n== 3. Train the DCGAN: " + ("a new model" if scratch else "fine-tune a copy of the drawn-face model") +
          " (run again to resume)")
    run(["train_dcgan.py", "--dataset", train_faces, *training_flags(args, checkpoint), "--seed", 0,
         "--checkpoint_dir", checkpoint, "--sample_dir", samples, "--log_dir", logs])

    completing = checkpoint if scratch else DRAWN
    print(f"\n== 4. Complete the held-out faces with {'this' if scratch else 'the drawn-face'} model and compare "
          f"with classical inpainting")
    # complete.py with its default flags, and as the article ran it (float32 on every machine).
    n_iter = ["--nIter", "6"] if args.quick else []
    output = run(["bench/eval_completion.py", "--checkpointDir", completing, "--images", heldout_faces,
                  "--maskType", "center", *n_iter, "--methods", "dcgan,dcgan_article,opencv_telea,opencv_ns,mean_colour",
                  "--mixed_precision", "off", "--outDir", out / "eval" / "center", "--seed", 0], quiet=True)
    print(output.rstrip())
    report = {"center": json.loads(output.strip().splitlines()[-1])}
    (out / "eval" / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    completions = out / "eval" / "center" / "dcgan"

    minutes = (time.monotonic() - started) / 60
    print(f"\nDemo finished in {minutes:.1f} min. Outputs in {out}:")
    print(f"  trained model       {checkpoint}   (complete.py --checkpointDir {checkpoint} ...)")
    print(f"  sample grids        {samples}")
    print(f"  TensorBoard logs    {logs}   (tensorboard --logdir {logs})")
    print(f"  aligned photo       {aligned}")
    print(f"  completions         {completions / 'final'}  and  {completions / 'completion.gif'}")
    print(f"  comparison picture  {out / 'eval' / 'center'}/comparison_center.png  (rows: masked, Telea, "
          f"Navier-Stokes, the article's DCGAN, DCGAN, truth)")
    print(f"  quality report      {out / 'eval' / 'report.json'}")
    return 0


def training_flags(args: argparse.Namespace, checkpoint: Path) -> list:
    """train_dcgan.py's flags for step 3: a tiny model (--quick), a new half-width one (--from_scratch),
    or fine-tuning a copy of the drawn-face model (its size and widths come from the copy's dcgan.json)."""
    if args.quick:
        return ["--image_size", 16, "--gf_dim", 8, "--df_dim", 8, "--epoch", 2, "--batch_size", 16,
                "--sample_every", 4]
    if args.from_scratch:
        # Half the original's widths, float32 (training's auto, with the faster kernels measured):
        # what the drawn-face model is (checkpoints/README.md).
        return ["--image_size", 64, "--gf_dim", 32, "--df_dim", 32, "--epoch", 25, "--time_limit",
                args.train_minutes, "--sample_every", 50, "--mixed_precision", "auto"]
    if not (checkpoint / "dcgan.json").exists():
        shutil.copytree(DRAWN, checkpoint, dirs_exist_ok=True)
    return ["--epoch", args.epochs, "--sample_every", 10, "--mixed_precision", "off"]


if __name__ == "__main__":
    raise SystemExit(main())
