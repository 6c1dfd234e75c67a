"""The job store and the batching worker.

A `Job` is one request: one aligned face, or one photo whose faces each give an image to
complete. The `JobStore` keeps jobs in memory with bounds (jobs kept, their bytes, time to live,
jobs waiting), and hands the worker its next batch: the oldest waiting job and, in order, the
waiting jobs with the same engine settings, up to the batch size. The `Worker` thread owns the
model and one CompletionEngine per settings; it completes each batch in one call, every job with
its own masks and its own start z (completion.draw_z of the job's seed, so that a job's result does
not depend on its batch mates), padded to a small bucket (1, 2, 4, ... up to the batch size), and
reports every compiled chunk's iteration, loss and fill to the jobs. A `Finisher` thread puts the
fills back into the inputs and encodes the PNGs and the GIF, while the worker goes on.

A job ends once (done, failed or cancelled); later reports for it are ignored. A cancelled job's
rows stay in its running batch, so its batch mates compute exactly what they would without the
cancel; a batch whose jobs have all ended stops at its next compiled chunk.
"""
from __future__ import annotations

import dataclasses
import secrets
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import utils
from dcgan_completion.completion.engine import CompletionEngine, draw_z
from dcgan_completion.completion.settings import CompletionSettings, Schedule, compiled_key

STATES = ("queued", "running", "done", "failed", "cancelled")
ENDED = ("done", "failed", "cancelled")
STOPPING = "the server is stopping"
SEED_RANGE = 2 ** 31  # seeds drawn for jobs that give none


class Busy(Exception):
    """The server cannot take a job now: status 429 (queue full) or 503 (memory budget)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Stopping(Exception):
    """The running batch ends between two compiled chunks: the server is stopping, or every job of
    the batch has ended (cancelled)."""


def bucket(count: int, batch_size: int) -> int:
    """The padded batch for `count` images: the next power of two, at most batch_size (never below count)."""
    size = 1
    while size < count:
        size *= 2
    return max(count, min(size, batch_size))


def new_seed() -> int:
    return secrets.randbelow(SEED_RANGE)


@dataclass(eq=False)
class Job:
    """One request. `crops` and `masks` are what the engine completes (one row per face); `finish`
    turns the fills into the result, `frame` renders a live frame (both given by the service)."""
    settings: CompletionSettings          # the job's own, its seed included
    crops: np.ndarray                     # uint8 (k, S, S, C)
    masks: np.ndarray                     # float32 (k, S, S, 1), 1 = keep
    blend: str
    kind: str                             # "face" or "photo"
    width: int
    height: int
    finish: Callable[[np.ndarray], np.ndarray]  # fills (k, S, S, C) in [-1, 1] -> the result, uint8 (H, W, C)
    frame: Callable[[np.ndarray], np.ndarray]   # fills -> one preview frame, uint8
    held_bytes: int = 0                   # what the job's inputs hold in memory until it is finished
    notes: list[str] = field(default_factory=list)  # lines on how it is filled (photo_completion.outside_note)
    faces: int = 0                        # rows it completes (set from crops)
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    iteration: int = 0
    loss: float | None = None
    error: str | None = None
    batch_jobs: int | None = None         # how many jobs shared its batch
    batch_rows: int | None = None         # the padded batch it ran in
    frames: list = field(default_factory=list)  # (iteration, fills uint8 (k, S, S, C))
    outputs: dict = field(default_factory=dict)  # "result.png", "fill.png", "completion.gif": bytes
    version: int = 0                      # bumped at every change, for the event streams

    def __post_init__(self):
        self.faces = len(self.crops)

    @property
    def count(self) -> int:
        return self.faces

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def solo(self) -> bool:
        """Jobs whose random numbers come from the engine's generator while it runs (HMC's draws,
        zCandidates' draws) run alone, with the generator seeded by the job's seed: as complete.py."""
        return self.settings.approach == "hmc" or self.settings.z_candidates > 1

    @property
    def key(self):
        """The jobs that may share a batch: the same engine settings, seeds aside."""
        settings = dataclasses.replace(self.settings, seed=None)
        return (settings, self.id) if self.solo else (settings,)

    def nbytes(self) -> int:
        frames = sum(fills.nbytes for _, fills in self.frames)
        return self.held_bytes + frames + sum(len(data) for data in self.outputs.values())

    def public(self, queue_position: int | None = None) -> dict:
        """The job's state as the API shows it."""
        settings = dataclasses.asdict(self.settings)
        for name in ("batch_size", "xla", "lowres"):
            settings.pop(name)
        info = {"id": self.id, "state": self.state, "kind": self.kind, "width": self.width, "height": self.height,
                "faces": self.faces, "iteration": self.iteration, "n_iter": self.settings.n_iter,
                "loss": self.loss, "seed": self.seed, "blend": self.blend, "settings": settings,
                "created": self.created, "started": self.started, "finished": self.finished, "notes": self.notes}
        if queue_position is not None:
            info["queue_position"] = queue_position
        if self.batch_jobs is not None:
            info["batch"] = {"jobs": self.batch_jobs, "rows": self.batch_rows}
        if self.error is not None:
            info["error"] = self.error
        if self.state == "done":
            info["results"] = {name: f"/api/jobs/{self.id}/{name}" for name in self.outputs}
        return info


class JobStore:
    """Jobs in memory, with bounds: at most max_jobs kept and max_bytes held (finished jobs are
    dropped oldest first to make room, and after ttl seconds), at most max_queue waiting."""

    def __init__(self, max_jobs: int = 256, max_queue: int = 64, ttl: float = 3600.0,
                 max_bytes: int = 1 << 30):
        self.max_jobs, self.max_queue, self.ttl, self.max_bytes = max_jobs, max_queue, ttl, max_bytes
        self.changed = threading.Condition()
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.queue: list[Job] = []
        self.closed = False
        self.completed = self.failed = self.cancelled = 0

    # -- for the API ---------------------------------------------------------
    def add(self, job: Job) -> Job:
        with self.changed:
            if self.closed:
                raise Busy(503, "the server is stopping")
            self._expire()
            if len(self.queue) >= self.max_queue:
                raise Busy(429, f"the queue is full ({len(self.queue)} jobs waiting); try again later")
            self._make_room(job.nbytes())
            self.jobs[job.id] = job
            self.queue.append(job)
            job.version += 1
            self.changed.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        with self.changed:
            self._expire()
            return self.jobs.get(job_id)

    def snapshot(self, job: Job) -> tuple[int, dict]:
        """(version, public state) read together."""
        with self.changed:
            position = next((i for i, queued in enumerate(self.queue) if queued is job), None)
            return job.version, job.public(position)

    def stats(self) -> dict:
        with self.changed:
            self._expire()
            states = {state: 0 for state in STATES}
            for job in self.jobs.values():
                states[job.state] += 1
            return {"jobs": len(self.jobs), "waiting": len(self.queue), "states": states,
                    "bytes": self.held_bytes(), "completed": self.completed, "failed": self.failed,
                    "cancelled": self.cancelled,
                    "limits": {"max_jobs": self.max_jobs, "max_queue": self.max_queue, "ttl_s": self.ttl,
                               "max_bytes": self.max_bytes}}

    def held_bytes(self) -> int:
        with self.changed:
            return sum(job.nbytes() for job in self.jobs.values())

    # -- for the worker ------------------------------------------------------
    def next_batch(self, capacity: int, timeout: float) -> list[Job] | None:
        """The next jobs to complete together (marked running), [] after timeout, None once closed."""
        with self.changed:
            if not self.queue and not self.closed:
                self.changed.wait(timeout)
            if self.closed:
                return None
            if not self.queue:
                return []
            head = self.queue[0]
            batch, rows = [], 0
            for job in list(self.queue):
                if job.key == head.key and rows + job.count <= max(capacity, head.count):
                    batch.append(job)
                    rows += job.count
            now = time.time()
            for job in batch:
                self.queue.remove(job)
                job.state, job.started = "running", now
                job.batch_jobs, job.batch_rows = len(batch), bucket(rows, capacity)
                job.version += 1
            self.changed.notify_all()
            return batch

    def update(self, job: Job, **changes) -> None:
        with self.changed:
            if job.finished is not None:
                return
            for name, value in changes.items():
                setattr(job, name, value)
            job.version += 1
            self.changed.notify_all()

    def add_frame(self, job: Job, done: int, loss: float, frame_iteration: int, fills: np.ndarray) -> None:
        """After a compiled chunk: iterations done, the loss then, and the fill (uint8) at frame_iteration
        (a later report of the same iteration, the chunk's own, replaces the engine's early one)."""
        with self.changed:
            if job.finished is not None:
                return
            if job.frames and job.frames[-1][0] == frame_iteration:
                job.frames[-1] = (frame_iteration, fills)
            else:
                job.frames.append((frame_iteration, fills))
            job.iteration, job.loss = done, loss
            job.version += 1
            self.changed.notify_all()

    def finish(self, job: Job, outputs: dict | None = None, error: str | None = None,
               cancelled: bool = False) -> bool:
        """done with its outputs, failed with a one-line message, or cancelled; frees the inputs.
        False (and nothing changes) if the job had already ended."""
        with self.changed:
            if job.finished is not None:
                return False
            job.outputs = outputs or {}
            job.error = error
            job.state = "cancelled" if cancelled else "failed" if error is not None else "done"
            job.finished = time.time()
            job.crops = job.crops[:0]
            job.masks = job.masks[:0]
            job.frames, job.held_bytes = [], 0
            job.finish = job.frame = _gone
            if job.state == "done":
                job.iteration = job.settings.n_iter
                self.completed += 1
            elif job.state == "failed":
                self.failed += 1
            else:
                self.cancelled += 1
            if job in self.queue:
                self.queue.remove(job)
            self._trim(keep=job)
            job.version += 1
            self.changed.notify_all()
            return True

    def cancel(self, job: Job) -> bool:
        """A waiting job leaves the queue; a running one ends now, and the worker stops reporting to it
        (its batch stops at the next chunk if no other job of it is left). False if it had ended."""
        return self.finish(job, cancelled=True)

    def close(self) -> None:
        """No new job; the waiting and running ones fail at once, so that their event streams end."""
        with self.changed:
            self.closed = True
            unfinished = [job for job in self.jobs.values() if job.finished is None]
            for job in unfinished:
                self.finish(job, error=STOPPING)
            self.changed.notify_all()

    # -- bounds --------------------------------------------------------------
    def _expire(self) -> None:
        cutoff = time.time() - self.ttl
        for job_id in [i for i, job in self.jobs.items() if job.finished is not None and job.finished < cutoff]:
            del self.jobs[job_id]

    def _trim(self, keep: Job) -> None:
        """Drop finished jobs, oldest first (never `keep`), while the store holds more than max_bytes."""
        held = self.held_bytes()
        for job in [job for job in self.jobs.values() if job.finished is not None and job is not keep]:
            if held <= self.max_bytes:
                break
            held -= job.nbytes()
            del self.jobs[job.id]

    def _make_room(self, incoming: int) -> None:
        """Drop finished jobs, oldest first, until one more job fits the count and bytes bounds."""
        finished = [job for job in self.jobs.values() if job.finished is not None]
        held = self.held_bytes()
        while finished and (len(self.jobs) >= self.max_jobs or held + incoming > self.max_bytes):
            job = finished.pop(0)
            held -= job.nbytes()
            del self.jobs[job.id]
        if len(self.jobs) >= self.max_jobs:
            raise Busy(429, f"{len(self.jobs)} jobs are waiting or running, this server's limit; try again later")
        if held + incoming > self.max_bytes:
            raise Busy(503, f"the jobs in memory hold {held / 2**20:.0f} MiB, and this one would pass the "
                            f"server's limit of {self.max_bytes / 2**20:.0f} MiB; try again later")


def one_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "an unexpected error (the server's log has the details)"


def _gone(_fills):
    raise RuntimeError("the job is finished")


class Worker:
    """The one thread that runs the model: takes batches from the store and completes them."""

    def __init__(self, store: JobStore, model, batch_size: int, max_engines: int = 4, log=None,
                 engines: OrderedDict | None = None, encoder=None):
        """engines: a cache of compiled engines to share with other workers on the same model (tests);
        encoder: the model's encoder, the start of the jobs whose z_init is "encoder"."""
        self.store, self.model, self.batch_size, self.encoder = store, model, batch_size, encoder
        self.max_engines = max_engines
        self.engines: OrderedDict = engines if engines is not None else OrderedDict()
        self.stopping = threading.Event()
        self.finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finisher")
        self.thread = threading.Thread(target=self._loop, name="completion-worker", daemon=True)
        self.log = log or (lambda message: None)
        self.batches = 0

    def start(self) -> "Worker":
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the running chunk; waiting and running jobs fail (the server is stopping)."""
        self.begin_stop()
        if self.thread.is_alive():
            self.thread.join(timeout)
        self.finisher.shutdown(wait=True, cancel_futures=False)

    def begin_stop(self) -> None:
        """Fail every job that has not ended and end the running batch at its next chunk; returns at once."""
        self.stopping.set()
        self.store.close()

    def engine_for(self, settings: CompletionSettings) -> CompletionEngine:
        """The engine for these settings. Its compiled functions (traced once per engine, seconds each)
        depend only on the update rule and the loss, so jobs share them: one engine per compiled key,
        a few kept; each job runs it with its own Schedule (iterations, chunks, start, weights). A
        shared cache keys them by encoder too: the engine holds the one it starts from."""
        key = (compiled_key(settings), self.encoder)
        if key not in self.engines:
            self.engines[key] = CompletionEngine(self.model, key[0], self.encoder)
            while len(self.engines) > self.max_engines:
                self.engines.popitem(last=False)
        self.engines.move_to_end(key)
        return self.engines[key]

    def warm_up(self, settings: CompletionSettings) -> None:
        """Trace the default settings' compiled functions for one row and for any number (a batch
        of 1, then of 2: TensorFlow then relaxes the batch dimension), so the first job does not wait."""
        settings = dataclasses.replace(settings, n_iter=1, out_interval=1, z_candidates=1, seed=0)
        engine, schedule = self.engine_for(settings), Schedule.of(settings)
        size, channels = self.model.image_size, self.model.c_dim
        for rows in (1, 2):
            masks = np.ones((rows, size, size, 1), np.float32)
            masks[:, : size // 2] = 0.0
            engine.complete(np.zeros((rows, size, size, channels), np.uint8), masks,
                            progress=lambda p: None, z=np.zeros((rows, self.model.z_dim), np.float32), pad_to=rows,
                            schedule=schedule, start_frame=True)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            jobs = self.store.next_batch(self.batch_size, timeout=0.5)
            if jobs is None:
                return
            if jobs:
                self.run_batch(jobs)

    def run_batch(self, jobs: list[Job]) -> None:
        """Complete the jobs together; a failure fails them (with one line), never the worker."""
        try:
            self._complete(jobs)
            self.batches += 1
        except Stopping:
            for job in jobs:
                self.store.finish(job, error=STOPPING)
        except Exception as error:  # a bug or the device: the jobs fail, the server goes on
            self.log(traceback.format_exc())
            for job in jobs:
                self.store.finish(job, error=f"completion failed: {one_line(error)}")

    def _complete(self, jobs: list[Job]) -> None:
        settings = jobs[0].key[0]
        engine = self.engine_for(settings)
        rows, start = [], 0
        for job in jobs:
            rows.append(slice(start, start + job.count))
            start += job.count
        crops = np.concatenate([job.crops for job in jobs])
        masks = np.concatenate([job.masks for job in jobs])
        if jobs[0].solo:  # the engine's own draws, from the job's seed: complete.py's
            engine.optimizer.rng.reset_from_seed(jobs[0].seed)
            z = None
        elif self.encoder is not None and settings.z_init == "encoder":  # each image its own start
            z = None
        else:
            z = np.concatenate([draw_z(job.seed, job.count, self.model.z_dim) for job in jobs])

        def progress(p) -> None:
            if self.stopping.is_set() or all(job.finished is not None for job in jobs):
                raise Stopping()
            fills = utils.to_uint8(p.frame)
            for job, part in zip(jobs, rows):  # a cancelled job's report is ignored
                self.store.add_frame(job, p.done, float(np.mean(p.loss[part])), p.frame_iteration, fills[part])

        result = engine.complete(crops, masks, progress=progress, z=z, pad_to=bucket(len(crops), self.batch_size),
                                 schedule=Schedule.of(settings), start_frame=True)
        for job, part in zip(jobs, rows):
            if job.finished is None:
                self.store.update(job, loss=float(np.mean(result.loss[part])), iteration=settings.n_iter)
                self.finisher.submit(self._finish, job, result.fill[part])

    def _finish(self, job: Job, fills: np.ndarray) -> None:
        """The result PNG at the input's size, G(z) as a PNG, the GIF of the frames; then done."""
        if job.finished is not None:  # cancelled, or the server is stopping
            return
        try:
            result = job.finish(fills)
            frames = [job.frame(f) for f in job_frames(job, fills)]
            outputs = {"result.png": utils.png_bytes(result),
                       "fill.png": utils.png_bytes(utils.make_grid(utils.to_uint8(fills))),
                       "completion.gif": utils.gif_bytes(frames)}
        except Exception as error:
            if job.finished is not None:  # ended meanwhile: its inputs are gone
                return
            self.log(traceback.format_exc())
            self.store.finish(job, error=f"finishing failed: {one_line(error)}")
            return
        self.store.finish(job, outputs)


def job_frames(job: Job, fills: np.ndarray) -> list[np.ndarray]:
    """The fills of the GIF, in [-1, 1]: every recorded frame (0, out_interval, ...), then the final one
    (complete.py's completed/ frames)."""
    return [utils.to_float(frame) for _, frame in job.frames] + [fills]
