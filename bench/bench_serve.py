#!/usr/bin/env python3
"""The web app's throughput: completions per minute and time to result with 1, 4 and 16 concurrent
clients on loopback, beside the same completions as sequential complete.py runs (a process each).

    python bench/bench_serve.py                               # a tiny model (16x16), made here
    python bench/bench_serve.py --checkpointDir CK --nIter 100

Every client submits aligned faces with a center hole and its own seed, follows the job's
server-sent events until it is done (as the page does), and fetches the result PNG; a request's
time to result runs from its POST to the result in hand. The server runs in this process (uvicorn in a thread, on 127.0.0.1), with its
--batchSize, so waiting jobs are completed together. Prints a table and one JSON line; the
machine is named from `lscpu`.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dcgan_completion import runtime  # noqa: E402


def machine() -> str:
    """'MODEL, N CPUs' from lscpu (and the GPU, if TensorFlow sees one)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown CPU").strip()
    cpus = fields.get("CPU(s)", "?").strip()
    return f"{name}, {cpus} CPUs"


def face_png(seed: int, size: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(out, format="PNG")
    return out.getvalue()


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def complete_one(base: str, image: bytes, seed: int, n_iter: int | None, fields: dict | None = None) -> float:
    """POST a job, follow its server-sent events (as the page does) until done, GET its result;
    the seconds it took."""
    return follow_job(base, image, seed, n_iter, fields)[1]


def follow_job(base: str, image: bytes, seed: int, n_iter: int | None,
               fields: dict | None = None, mask: bytes | None = None) -> tuple[float | None, float]:
    """complete_one's job: (seconds to its first live frame (None if none came), seconds to its result);
    with a mask (PNG bytes), that hole instead of the center mask."""
    start = time.perf_counter()
    form = {"seed": seed, **({"mask_type": "center"} if mask is None else {}),
            **({"n_iter": n_iter} if n_iter else {}), **(fields or {})}
    body, kind = multipart(form, {"image": ("face.png", image), **({"mask": ("mask.png", mask)} if mask else {})})
    request = urllib.request.Request(f"{base}/api/jobs", data=body, headers={"Content-Type": kind}, method="POST")
    with urllib.request.urlopen(request, timeout=600) as response:
        job = json.load(response)
    state, first_frame = job, None
    with urllib.request.urlopen(f"{base}/api/jobs/{job['id']}/events", timeout=600) as stream:
        for raw in stream:
            line = raw.decode("utf-8").strip()
            if line.startswith("data: "):
                state = json.loads(line[6:])
                if first_frame is None and state.get("frame"):
                    first_frame = time.perf_counter() - start
                if state["state"] in ("done", "failed"):
                    break
    if state["state"] != "done":
        raise RuntimeError(state.get("error", f"job {job['id']} ended {state['state']}"))
    with urllib.request.urlopen(f"{base}/api/jobs/{job['id']}/result.png", timeout=600) as response:
        response.read()
    return first_frame, time.perf_counter() - start


def first_previews(base: str, jobs: int, size: int, defaults: dict) -> dict:
    """One client at a time, each job with the completion's defaults (n_iter and out_interval): the
    seconds from Complete (the POST) to the first live frame, and to the result; after one job
    that traces the defaults' functions (a warm server)."""
    follow_job(base, face_png(998, size), 998, None, defaults)
    timed = [follow_job(base, face_png(900 + k, size), 900 + k, None, defaults) for k in range(jobs)]
    previews = [first for first, _ in timed if first is not None]
    return {"jobs": jobs, "first_preview_s": round(statistics.median(previews), 3) if previews else None,
            "first_preview_s_worst": round(max(previews), 3) if previews else None,
            "result_s": round(statistics.median(total for _, total in timed), 3)}


PHOTO_HOLE = (slice(175, 210), slice(200, 250))  # over Grace Hopper's right eye, in her 512x600 photo


def photo_with_hole() -> tuple[bytes, bytes]:
    """matplotlib's grace_hopper.jpg (512x600) and a PNG mask with PHOTO_HOLE black (to fill)."""
    from matplotlib import cbook

    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
    keep = np.full((600, 512), 255, np.uint8)
    keep[PHOTO_HOLE] = 0
    buffer = io.BytesIO()
    Image.fromarray(keep).save(buffer, format="PNG")
    return photo, buffer.getvalue()


def photo_jobs(base: str, jobs: int, defaults: dict) -> dict:
    """One client at a time, a whole photo (photo_with_hole: a hole over an eye), posted as the page posts
    it with the switch untouched (no `photo`: the server decides) and the completion's defaults: the
    seconds from Complete to the result, after one job that traces them."""
    photo, mask = photo_with_hole()
    timed = [follow_job(base, photo, 700 + k, None, defaults, mask)[1] for k in range(jobs + 1)][1:]
    return {"jobs": jobs, "photo_result_s": round(statistics.median(timed), 3),
            "photo_result_s_worst": round(max(timed), 3)}


def run_clients(base: str, clients: int, total: int, size: int, n_iter: int) -> dict:
    """`clients` threads share `total` completions; completions per minute and time to result."""
    times: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def client():
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            took = complete_one(base, face_png(index, size), index, n_iter)
            with lock:
                times.append(took)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return summary(f"server, {clients} client(s)", times, wall)


def summary(name: str, times: list[float], wall: float) -> dict:
    ordered = sorted(times)
    return {"run": name, "completions": len(times), "wall_s": round(wall, 2),
            "per_minute": round(60.0 * len(times) / wall, 1), "median_s": round(statistics.median(ordered), 3),
            "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3)}


def sequential_cli(checkpoint: str, runs: int, size: int, n_iter: int, work: Path) -> dict:
    """The same completions as `runs` complete.py processes, one after another."""
    times = []
    start = time.perf_counter()
    for index in range(runs):
        image = work / f"face_{index}.png"
        image.write_bytes(face_png(index, size))
        began = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "complete.py"), "--checkpointDir", checkpoint, "--outDir",
                        str(work / f"out_{index}"), "--nIter", str(n_iter), "--outInterval", str(n_iter),
                        "--batchSize", "1", "--seed", str(index), str(image)],
                       check=True, capture_output=True, timeout=900)
        times.append(time.perf_counter() - began)
    return summary(f"complete.py x{runs}, sequential", times, time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpointDir", default=None, help="the model (default: a tiny 16x16 one, made here)")
    parser.add_argument("--nIter", type=int, default=20, help="iterations per completion")
    parser.add_argument("--batchSize", type=int, default=16, help="the server's --batchSize")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients, comma-separated")
    parser.add_argument("--completions", type=int, default=16, help="completions per run")
    parser.add_argument("--sequentialRuns", type=int, default=16, help="complete.py runs (0: none)")
    parser.add_argument("--photoJobs", type=int, default=0,
                        help="whole-photo jobs with the completion's defaults, one at a time, timed to their result")
    parser.add_argument("--previewJobs", type=int, default=5,
                        help="jobs with the completion's defaults, one at a time, timed to their first live frame")
    args = parser.parse_args(argv)

    runtime.start()
    from dcgan_completion import encoder
    from dcgan_completion.completion.settings import CompletionSettings, default_iterations
    from dcgan_completion.serving.app import create_app
    from dcgan_completion.serving.server import in_thread
    from dcgan_completion.serving.service import Defaults, Service
    from model import DCGAN

    work = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    checkpoint = args.checkpointDir
    if checkpoint is None:
        checkpoint = str(work / "model")
        DCGAN(image_size=16, gf_dim=4, df_dim=4, z_dim=8, seed=0).save(checkpoint)
    model = DCGAN.from_checkpoint(checkpoint)
    size = model.image_size
    settings = CompletionSettings(n_iter=args.nIter, out_interval=args.nIter, batch_size=args.batchSize)
    start_z, _ = encoder.for_completion(checkpoint, model, "encoder")  # as serve.py: the model's encoder, if any
    service = Service(model, Defaults(settings), checkpoint=checkpoint, encoder=start_z)
    began = time.perf_counter()
    service.start(warm_up=True)
    warm = time.perf_counter() - began

    rows = []
    with in_thread(create_app(service)) as base:  # uvicorn in a thread, on a free loopback port
        complete_one(base, face_png(999, size), 999, args.nIter)
        for clients in (int(c) for c in args.clients.split(",")):
            batches = service.worker.batches
            rows.append(run_clients(base, clients, args.completions, size, args.nIter))
            rows[-1]["batches"] = service.worker.batches - batches
        defaults = {"n_iter": default_iterations(start_z is not None),
                    "out_interval": CompletionSettings().out_interval}
        preview = first_previews(base, args.previewJobs, size, defaults) if args.previewJobs else None
        photos = photo_jobs(base, args.photoJobs, defaults) if args.photoJobs and model.c_dim == 3 else None
    service.stop()
    if args.sequentialRuns:
        rows.append(sequential_cli(checkpoint, args.sequentialRuns, size, args.nIter, work))

    name = machine()
    print(f"bench_serve: {size}x{size} model ({checkpoint}), {args.nIter} iterations per completion, "
          f"server --batchSize {args.batchSize}; warm-up {warm:.1f} s; {name}")
    print(f"{'run':34s} {'done':>5s} {'batches':>8s} {'wall s':>8s} {'per min':>8s} {'median s':>9s} {'p90 s':>7s}")
    for row in rows:
        print(f"{row['run']:34s} {row['completions']:5d} {row.get('batches', row['completions']):8d} "
              f"{row['wall_s']:8.2f} {row['per_minute']:8.1f} {row['median_s']:9.3f} {row['p90_s']:7.3f}")
    if preview:
        print(f"first live frame with the defaults, warm server: median {preview['first_preview_s']} s "
              f"(worst {preview['first_preview_s_worst']} s) over {preview['jobs']} jobs; "
              f"result {preview['result_s']} s")
    if photos:
        print(f"a whole photo (512x600, a hole over an eye) with the defaults, warm server: result in median "
              f"{photos['photo_result_s']} s (worst {photos['photo_result_s_worst']} s) over {photos['jobs']} jobs")
    print(json.dumps({"bench": "serve", "machine": name, "image_size": size, "n_iter": args.nIter,
                      "batch_size": args.batchSize, "warm_up_s": round(warm, 2), "rows": rows,
                      "preview": preview, "photo": photos}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
