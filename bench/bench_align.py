#!/usr/bin/env python3
"""Faces aligned per second by align_faces.py, with 1 worker and with every core.

Runs the real command line on COPIES copies of matplotlib's grace_hopper.jpg
(512x600, one face) in a temporary folder, so the time includes start-up and
loading dlib's models in each worker, as a user's run does. Prints JSON last.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from matplotlib import cbook

ROOT = Path(__file__).resolve().parents[1]


def faces_per_second(source: Path, out: Path, workers: int, count: int) -> float:
    command = [sys.executable, str(ROOT / "align_faces.py"), str(source), "align", "innerEyesAndBottomLip",
               str(out), "--size", "64", "--workers", str(workers)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or f"{count} aligned" not in result.stdout:
        sys.exit(f"align_faces.py failed:\n{result.stdout}{result.stderr}")
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=32, help="copies of the photo to align")
    args = parser.parse_args()
    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in"
        source.mkdir()
        for index in range(args.copies):
            shutil.copy(photo, source / f"{index:03d}.jpg")
        one = faces_per_second(source, Path(tmp) / "out1", 1, args.copies)
        many = faces_per_second(source, Path(tmp) / "outN", cores, args.copies)
    print(json.dumps({"faces_per_s_1_worker": round(one, 2), "faces_per_s_all_workers": round(many, 2),
                      "workers": cores, "speedup": round(many / one, 2), "copies": args.copies}))


if __name__ == "__main__":
    main()
