#!/usr/bin/env python3
"""Time `python complete.py face.png` from the shell's point of view, and where its seconds go.

    python bench/bench_startup.py [--image FACE] [--rounds 3] [-- complete.py's flags]

Each round runs, one process at a time: `python -c pass` (the interpreter alone), then
`python complete.py FACE --outDir TMP` (the wall time a person waits), then the same completion in
a process that timestamps complete.py's phases. A first, untimed run fills auto's cache of measured
precisions (and the page cache), as a person's second run finds them. The phases (median seconds):
python (the interpreter), imports (TensorFlow's, then the project's), build (G and D), restore (their
weights), precision (auto's decision, beside building), encoder (built and restored), inputs (images
read and checked, the folders made), start_z (the encoder's guess and the loss traced),
first_chunk (the chunk traced and run), other_chunks, outputs (PNGs and GIF written), exit.
Prints a JSON object on its last line. FACE defaults to a held-out portrait.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_IMAGE = os.path.join(ROOT, "data", "artflow", "heldout", "portrait_000.png")
PHASES = ("python", "imports", "build", "restore", "precision", "encoder", "inputs", "start_z", "first_chunk",
          "other_chunks", "outputs", "exit")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the face to complete (64x64)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeline", metavar="JSON", help=argparse.SUPPRESS)  # the timestamping child
    parser.add_argument("complete_flags", nargs=argparse.REMAINDER, help="more flags for complete.py, after --")
    args = parser.parse_args(argv)
    args.complete_flags = [f for f in args.complete_flags if f != "--"]
    return args


# -- the child: complete.main with its phases timestamped -------------------------------------------

def timeline_child(argv: list[str], out: str) -> None:
    """Run complete.main(argv) in this process, wrapping the functions that mark its phases, and
    write [(label, start, end)] in wall-clock seconds to `out`."""
    marks = [("main", time.time(), None)]
    sys.path.insert(0, ROOT)
    import complete
    from dcgan_completion import runtime

    def wrap(owner, name: str, label: str, first_only: bool = False) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            if first_only and any(m[0] == label for m in marks):
                return original(*args, **kwargs)
            begin = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                marks.append((label, begin, time.time()))
        setattr(owner, name, timed)

    wrap(runtime, "start", "import_tensorflow")
    runtime.start()  # complete.main's own call then costs nothing; its imports follow it
    from dcgan_completion import auto_precision, encoder
    from dcgan_completion.completion import engine, outputs
    from dcgan_completion.networks import storage
    import model
    wrap(storage, "resolve_model_dir", "imports_done")
    wrap(model.DCGAN, "load", "restore")
    wrap(auto_precision, "completion_precision", "precision")
    wrap(encoder, "for_completion", "encoder")
    wrap(outputs.FolderCompletion, "run", "completion")
    wrap(encoder.Encoder, "__call__", "encoder_guess")
    wrap(engine.LatentOptimizer, "best_of", "start_z")
    wrap(engine.LatentOptimizer, "run", "first_chunk", first_only=True)
    wrap(engine.LatentOptimizer, "run", "chunk")
    wrap(model.DCGAN, "__init__", "build")
    code = complete.main(argv)
    marks.append(("main_end", time.time(), time.time()))
    with open(out, "w", encoding="utf-8") as file:
        json.dump({"code": code, "marks": marks}, file)


def phases(launched: float, ended: float, marks: list) -> dict:
    """The phases' seconds from one timestamped run (launched/ended: the parent's clock around it)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for label, begin, end in marks:
        spans.setdefault(label, []).append((begin, end))

    def length(label: str) -> float:
        return sum(end - begin for begin, end in spans.get(label, []))

    def own(label: str) -> float:
        """label's span less the builds and restores inside it (DCGAN.__init__ and load run inside
        auto's decision; an encoder's own build is its own)."""
        begin, end = spans[label][0]
        inside = sum(e - b for name in ("build", "restore") for b, e in spans.get(name, [])
                     if begin <= b and e <= end)
        return end - begin - inside

    main_start, encoder_end = spans["main"][0][0], spans["encoder"][0][1]
    first_begin = min(begin for label in ("start_z", "encoder_guess", "first_chunk")
                      for begin, _ in spans.get(label, []))
    return {
        "python": main_start - launched,
        "imports": spans["imports_done"][0][0] - main_start,
        "build": length("build"),
        "restore": length("restore"),
        "precision": own("precision"),
        "encoder": own("encoder"),
        "inputs": first_begin - encoder_end,
        "start_z": length("start_z") + length("encoder_guess"),
        "first_chunk": length("first_chunk"),
        "other_chunks": length("chunk") - length("first_chunk"),  # "chunk" times every chunk, the first too
        "outputs": spans["completion"][0][1] - max(end for _, end in spans["chunk"]),
        "exit": ended - spans["main_end"][0][1],
    }


# -- the parent ----------------------------------------------------------------------------------

def wall(command: list[str]) -> float:
    start = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command[:3])} ... failed:\n{result.stderr[-3000:]}")
    return time.time() - start


def main() -> None:
    args = parse_args()
    if args.timeline:
        return timeline_child(args.complete_flags, args.timeline)
    if not os.path.isfile(args.image):
        raise SystemExit(f"error: {args.image}: no such image")
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench_startup-") as folder:
        argv = [args.image, "--outDir", os.path.join(folder, "out")] + args.complete_flags
        complete = [python, os.path.join(ROOT, "complete.py")] + argv
        wall(complete)  # auto's decision measured and cached, the files in the page cache
        walls, interpreter, rows = [], [], []
        for _ in range(args.rounds):
            interpreter.append(wall([python, "-c", "pass"]))
            walls.append(wall(complete))
            record = os.path.join(folder, "timeline.json")
            launched = time.time()
            subprocess.run([python, os.path.abspath(__file__), "--timeline", record, "--"] + argv,
                           check=True, capture_output=True)
            ended = time.time()
            with open(record, encoding="utf-8") as file:
                rows.append(phases(launched, ended, json.load(file)["marks"]))
    breakdown = {name: round(statistics.median(row[name] for row in rows), 3) for name in PHASES}
    result = {**harness.cpu_description(), "command": " ".join(["python complete.py FACE"] + args.complete_flags),
              "rounds": args.rounds, "wall_s": round(statistics.median(walls), 3), "wall_s_best": round(min(walls), 3),
              "python_alone_s": round(statistics.median(interpreter), 3),
              "timeline_total_s": round(sum(breakdown.values()), 3), "breakdown_s": breakdown}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
