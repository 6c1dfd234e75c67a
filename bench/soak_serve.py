#!/usr/bin/env python3
"""A long day on the web app: mixed jobs on loopback for a fixed time, then whether anything was lost or leaked.

    python bench/soak_serve.py --checkpointDir checkpoints/face64 --minutes 30

The server runs in this process (uvicorn in a thread on 127.0.0.1, as bench_serve.py's), with a small
queue (--maxQueue) so that a full queue is part of the day. One client works through a fixed cycle of
requests until --minutes have passed or --requests were sent, whichever comes first, and stops by
itself: an aligned face followed by polling; a whole photo posted as the page posts it (no `photo`:
the server decides); a face followed over server-sent events; a long job cancelled while it runs; four
bad inputs (not an image, a mask of another size, a photo without a face, an out-of-range option);
and a burst of long jobs past the queue's size (429s), cancelled after. Every accepted job is followed
to its end: a job that never ends (done, cancelled or failed) within --jobTimeout is lost.

The warm-up traces the completion's functions and then runs cycles until the server's job store holds
--maxJobs jobs (it keeps finished jobs for their results, dropping the oldest beyond that): memory is
read from there on. Prints the counts by kind and answer (warm-up included), p50 / p95 seconds to the
result of each kind of completion (after the warm-up), this process's RSS and open file descriptors
after the warm-up and at the end (and their highest), and one JSON line.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench_serve import face_png, machine, multipart, photo_with_hole  # noqa: E402
from dcgan_completion import runtime  # noqa: E402

ENDED = ("done", "cancelled", "failed")
WARM_UP_JOBS = 3        # completions before the first memory reading: the compiled functions are traced by then


def rss_mib() -> float:
    """This process's resident set size, MiB (/proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


class Client:
    """One client of the server at base: every answer counted by what was asked and its status."""

    def __init__(self, base: str, job_timeout: float):
        self.base, self.job_timeout = base, job_timeout
        self.answers: Counter = Counter()   # (kind, status)
        self.times: dict[str, list[float]] = defaultdict(list)
        self.accepted, self.lost, self.requests = 0, [], 0

    def call(self, kind: str, path: str, data: bytes | None = None, content_type: str | None = None,
             method: str = "GET") -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type else {}
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        self.answers[(kind, status)] += 1
        return status, body

    def post_job(self, kind: str, fields: dict, files: dict) -> tuple[int, dict]:
        body, content_type = multipart(fields, files)
        status, answer = self.call(kind, "/api/jobs", body, content_type, "POST")
        job = json.loads(answer)
        if status == 202:
            self.accepted += 1
        return status, job

    def wait(self, kind: str, job_id: str) -> str:
        """Poll a job until it ends; its final state ('lost' past the timeout)."""
        deadline = time.monotonic() + self.job_timeout
        while time.monotonic() < deadline:
            _, body = self.call(f"{kind}: poll", f"/api/jobs/{job_id}")
            state = json.loads(body)["state"]
            if state in ENDED:
                return state
            time.sleep(0.05)
        self.lost.append(job_id)
        return "lost"

    def stream(self, kind: str, job_id: str) -> str:
        """Follow a job's server-sent events until it ends."""
        self.requests += 1
        with urllib.request.urlopen(f"{self.base}/api/jobs/{job_id}/events", timeout=self.job_timeout) as events:
            self.answers[(f"{kind}: events", events.status)] += 1
            state = "lost"
            for raw in events:
                line = raw.decode("utf-8").strip()
                if line.startswith("data: "):
                    state = json.loads(line[6:])["state"]
                    if state in ENDED:
                        break
        if state == "lost":
            self.lost.append(job_id)
        return state

    def complete(self, kind: str, fields: dict, files: dict, follow: str = "poll") -> None:
        """POST a completion, follow it to its end and fetch its result; its time to result."""
        start = time.perf_counter()
        status, job = self.post_job(kind, fields, files)
        if status != 202:
            return
        state = self.stream(kind, job["id"]) if follow == "events" else self.wait(kind, job["id"])
        if state == "done":
            self.call(f"{kind}: result", f"/api/jobs/{job['id']}/result.png")
            self.times[kind].append(time.perf_counter() - start)


class Day:
    """The requests of one cycle, in order."""

    def __init__(self, client: Client, size: int, max_queue: int):
        self.client, self.size, self.max_queue, self.cycle = client, size, max_queue, 0
        self.photo, self.photo_mask = photo_with_hole()
        self.wrong_mask = png(np.full((size + 3, size), 255, np.uint8))
        self.flat = png(np.full((120, 160, 3), 128, np.uint8))

    def face(self) -> dict:
        return {"image": ("face.png", face_png(self.cycle, self.size))}

    def run_cycle(self) -> None:
        c, self.cycle = self.client, self.cycle + 1
        c.complete("aligned face", {"mask_type": "center", "seed": self.cycle}, self.face())
        c.complete("whole photo", {"seed": self.cycle}, {"image": ("photo.jpg", self.photo),
                                                         "mask": ("mask.png", self.photo_mask)})
        c.complete("streamed face", {"mask_type": "center", "seed": self.cycle}, self.face(), follow="events")
        self.cancel_one()
        self.bad_inputs()
        if self.cycle % 5 == 0:
            self.full_queue()

    def cancel_one(self) -> None:
        c = self.client
        status, job = c.post_job("cancelled", {"mask_type": "center", "n_iter": 3000, "seed": self.cycle},
                                 self.face())
        if status == 202:
            time.sleep(0.3)
            c.call("cancelled: delete", f"/api/jobs/{job['id']}", method="DELETE")
            c.wait("cancelled", job["id"])

    def bad_inputs(self) -> None:
        c = self.client
        c.post_job("bad: not an image", {}, {"image": ("x.png", b"not an image")})
        c.post_job("bad: mask size", {}, {"image": ("face.png", face_png(1, self.size)),
                                          "mask": ("mask.png", self.wrong_mask)})
        c.post_job("bad: no face", {"photo": "true"}, {"image": ("flat.png", self.flat),
                                                        "mask": ("mask.png", png(np.full((120, 160), 0, np.uint8)))})
        c.post_job("bad: option", {"n_iter": 0}, self.face())

    def full_queue(self) -> None:
        """More long jobs than the queue holds: the rest are 429; then every accepted one is cancelled."""
        c, accepted = self.client, []
        for k in range(self.max_queue + 3):
            status, job = c.post_job("full queue", {"mask_type": "center", "n_iter": 3000, "seed": k}, self.face())
            if status == 202:
                accepted.append(job["id"])
        for job_id in accepted:
            c.call("full queue: delete", f"/api/jobs/{job_id}", method="DELETE")
        for job_id in accepted:
            c.wait("full queue", job_id)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(values), "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))], 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpointDir", default=str(ROOT / "checkpoints" / "face64"), help="the model")
    parser.add_argument("--minutes", type=float, default=30.0, help="stop after this long")
    parser.add_argument("--requests", type=int, default=100000, help="or after this many requests")
    parser.add_argument("--maxQueue", type=int, default=4, help="the server's queue")
    parser.add_argument("--maxJobs", type=int, default=64,
                        help="the jobs the server keeps (finished ones dropped oldest first): the warm-up lasts "
                             "until it holds this many, so that memory is read at the store's steady state")
    parser.add_argument("--jobTimeout", type=float, default=300.0, help="a job not ended after this is lost")
    args = parser.parse_args(argv)

    runtime.start()
    from dcgan_completion import encoder
    from dcgan_completion.completion.settings import CompletionSettings, default_iterations
    from dcgan_completion.serving.app import create_app
    from dcgan_completion.serving.jobs import JobStore
    from dcgan_completion.serving.server import in_thread
    from dcgan_completion.serving.service import Defaults, Service
    from model import DCGAN

    model = DCGAN.from_checkpoint(args.checkpointDir)
    start_z, _ = encoder.for_completion(args.checkpointDir, model, "encoder")
    settings = CompletionSettings(n_iter=default_iterations(start_z is not None), batch_size=16)
    service = Service(model, Defaults(settings), store=JobStore(max_jobs=args.maxJobs, max_queue=args.maxQueue),
                      checkpoint=args.checkpointDir, encoder=start_z)
    service.start(warm_up=True)
    readings = []
    with in_thread(create_app(service)) as base:
        client = Client(base, args.jobTimeout)
        day = Day(client, model.image_size, args.maxQueue)
        for k in range(WARM_UP_JOBS):
            client.complete("warm-up", {"mask_type": "center", "seed": k}, day.face())
        client.complete("warm-up", {}, {"image": ("photo.jpg", day.photo), "mask": ("mask.png", day.photo_mask)})
        while service.store.stats()["jobs"] < args.maxJobs:  # the store full: its steady state
            day.run_cycle()
        warm_up_cycles = day.cycle
        client.times.clear()
        began, start_rss, start_fds = time.monotonic(), rss_mib(), open_fds()
        while time.monotonic() - began < args.minutes * 60 and client.requests < args.requests:
            day.run_cycle()
            readings.append((time.monotonic() - began, rss_mib(), open_fds()))
            print(f"\r{(time.monotonic() - began) / 60:5.1f} min, cycle {day.cycle}, {client.requests} requests, "
                  f"RSS {readings[-1][1]:.0f} MiB, {readings[-1][2]} fds", end="", file=sys.stderr, flush=True)
        elapsed = time.monotonic() - began
        end_rss, end_fds = rss_mib(), open_fds()
        stats = service.store.stats()
    service.stop()
    print(file=sys.stderr)

    kinds = sorted({kind for kind, _ in client.answers})
    answers = {kind: {str(status): count for (k, status), count in sorted(client.answers.items()) if k == kind}
               for kind in kinds}
    times = {kind: percentiles(values) for kind, values in client.times.items() if kind != "warm-up"}
    result = {"bench": "soak_serve", "machine": machine(), "checkpoint": args.checkpointDir,
              "minutes": round(elapsed / 60, 1), "warm_up_cycles": warm_up_cycles,
              "cycles": day.cycle - warm_up_cycles, "requests": client.requests,
              "jobs_accepted": client.accepted, "jobs_lost": len(client.lost), "answers": answers,
              "time_to_result": times, "rss_mib": {"after_warm_up": round(start_rss, 1), "end": round(end_rss, 1),
                                                   "highest": round(max(r for _, r, _ in readings), 1),
                                                   "growth": round(end_rss / start_rss - 1, 4)},
              "open_fds": {"after_warm_up": start_fds, "end": end_fds, "highest": max(f for _, _, f in readings)},
              "store": stats}
    print(f"soak: {result['minutes']} min on {result['machine']} after {warm_up_cycles} warm-up cycles (the store "
          f"full), {result['cycles']} cycles; in all {client.requests} requests, {client.accepted} jobs accepted, "
          f"{len(client.lost)} lost")
    for kind in kinds:
        print(f"  {kind:24s} " + ", ".join(f"{status}: {count}" for status, count in answers[kind].items()))
    for kind, row in times.items():
        print(f"  to the result, {kind:16s} n {row['n']}, p50 {row.get('p50_s')} s, p95 {row.get('p95_s')} s")
    rss = result["rss_mib"]
    print(f"  RSS {rss['after_warm_up']} MiB after the warm-up, {rss['end']} MiB at the end ({rss['growth']:+.1%}), "
          f"highest {rss['highest']}; open fds {start_fds} -> {end_fds} (highest {result['open_fds']['highest']})")
    print(json.dumps(result))
    return 0 if not client.lost else 1


if __name__ == "__main__":
    raise SystemExit(main())
