#!/usr/bin/env python3
"""The article's whole pipeline on data the project makes itself (`make demo`).

1. generate procedural 64x64 faces (data/make_faces.py): a training set and a held-out set;
2. align a real photo (matplotlib's grace_hopper.jpg) with align_faces.py, to show that step;
3. train the DCGAN on the generated faces for a fixed time on this machine (train_dcgan.py);
4. complete the held-out faces with the center and random masks (complete.py, run by
   bench/eval_completion.py) and compare with classical inpainting.

Every step is one of the project's own commands, printed before it runs.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


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
    parser.add_argument("--checkpoint_dir", default="checkpoints/demo", help="where the trained model goes")
    parser.add_argument("--train_minutes", type=float, default=15.0,
                        help="training time budget (the 25 epochs take about 15 minutes on a 2-core CPU)")
    parser.add_argument("--count", type=int, default=3000, help="generated training faces")
    parser.add_argument("--heldout", type=int, default=24, help="generated held-out faces to complete")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 16x16, tiny model, a few steps (used by the tests)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    out = Path(args.out).resolve()
    faces, aligned = out / "faces", out / "aligned"
    checkpoint, samples, logs = Path(args.checkpoint_dir).resolve(), out / "samples", out / "logs"
    if args.quick:
        size, dims, count, heldout, n_iter = 16, ["--gf_dim", "8", "--df_dim", "8"], 96, 8, ["--nIter", "6"]
        train_limit = ["--epoch", "2", "--batch_size", "16", "--sample_every", "4"]
    else:
        # Half the original's widths: four times fewer FLOPs, so a CPU trains it in minutes. At
        # these widths bfloat16 was not faster than float32 on a 2-core CPU with AMX (72 against
        # 97 images/s), and its model filled held-out faces less well after the same 1150 steps,
        # so the demo trains in float32 (README, Mixed precision).
        size, dims, count, heldout = 64, ["--gf_dim", "32", "--df_dim", "32"], args.count, args.heldout
        n_iter = []  # complete.py's own defaults, as a user runs it
        train_limit = ["--epoch", "25", "--time_limit", str(args.train_minutes), "--sample_every", "50",
                       "--mixed_precision", "off"]

    print("== 1. Generate procedural faces (the embedded default dataset)")
    run(["data/make_faces.py", faces, "--count", count, "--heldout", heldout, "--size", size, "--seed", 0])

    print("\n== 2. Align a real photo with dlib, as the article does with OpenFace")
    photo_dir = out / "photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib.cbook
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), photo_dir / "grace_hopper.jpg")
    run(["align_faces.py", photo_dir, "align", "innerEyesAndBottomLip", aligned, "--size", 64])

    print("\n== 3. Train the DCGAN (resumes if a checkpoint is there)")
    run(["train_dcgan.py", "--dataset", faces / "train", "--image_size", size, *dims, *train_limit, "--seed", 0,
         "--checkpoint_dir", checkpoint, "--sample_dir", samples, "--log_dir", logs])

    print("\n== 4. Complete the held-out faces and compare with classical inpainting")
    # complete.py with its default flags, and (center mask only) as the article ran it.
    reports = {}
    for mask, methods in (("center", "dcgan,dcgan_article,opencv_telea,opencv_ns,mean_colour"),
                          ("random", "dcgan,opencv_telea,opencv_ns,mean_colour")):
        output = run(["bench/eval_completion.py", "--checkpointDir", checkpoint, "--images", faces / "heldout",
                      "--maskType", mask, *n_iter, "--methods", methods, "--outDir", out / "eval" / mask,
                      "--seed", 0], quiet=True)
        print(output.rstrip())
        reports[mask] = json.loads(output.strip().splitlines()[-1])
    (out / "eval" / "report.json").write_text(json.dumps(reports, indent=2) + "\n")
    completions = out / "eval" / "center" / "dcgan"

    minutes = (time.monotonic() - started) / 60
    print(f"\nDemo finished in {minutes:.1f} min. Outputs in {out}:")
    print(f"  trained model       {checkpoint}   (complete.py --checkpointDir {checkpoint} ...)")
    print(f"  sample grids        {samples}")
    print(f"  TensorBoard logs    {logs}   (tensorboard --logdir {logs})")
    print(f"  aligned photo       {aligned}")
    print(f"  completions         {completions / 'final'}  and  {completions / 'completion.gif'}")
    print(f"  comparison pictures {out / 'eval'}/*/comparison_*.png  (rows: masked, Telea, Navier-Stokes, "
          f"the article's DCGAN, DCGAN, truth)")
    print(f"  quality report      {out / 'eval' / 'report.json'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
