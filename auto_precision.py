"""--mixed_precision auto: the precision chosen by measuring, once per device and model.

A rule over CPU flags or GPU names goes stale with each new chip, so auto asks the device:
it times the model's own completion step in float32 and in each lower precision the device
offers, keeps the fastest that completes as well as float32 (its final loss within 1% of
float32's, on the same images from the same z), and remembers the decision in the user's
cache folder ($XDG_CACHE_HOME/dcgan-completion-tf2/precision.json), keyed by the device, the
TensorFlow version, the model's shape and the batch. Training keeps float32 on the evidence of
quality per step (TRAINING_RULE). A forced precision (off, bfloat16, float16) is used as given.

    model = auto_precision.completion_model("auto", checkpoint_dir, strategy, batch=16, settings=settings)
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import utils

CACHE_FILE = Path("dcgan-completion-tf2") / "precision.json"
LOSS_TOLERANCE = 0.01      # a lower precision's final loss may be at most 1% above float32's
MIN_SPEEDUP = 1.1          # ... and it must be at least this much faster: timings drift a few percent
TIMING_SECONDS = 0.75      # time each candidate's step for about this long
CHECK_IMAGES, CHECK_ITERATIONS = 8, 50   # the quality check: 8 images, 50 iterations from the same z

# Training: the quality per step at equal steps, not the speed, decides. The evidence so far (docs/speed.md,
# "Precision"): a bfloat16 model trained on a Xeon with AMX ran more steps in the same 15 minutes than its
# float32 twin and still filled held-out faces 1.6 dB worse; float16 was never shown as good. So training's
# auto keeps float32 on every device; --mixed_precision bfloat16 trades that quality for speed.
TRAINING_RULE = ("auto: training keeps float32, as bfloat16-trained models filled held-out faces worse "
                 "(docs/speed.md#precision); --mixed_precision bfloat16 trades that for speed")


@dataclass(frozen=True)
class Decision:
    """auto's choice and its evidence: seconds per step of each candidate timed, the loss ratio
    (candidate's final loss / float32's) of each candidate checked."""
    precision: str
    seconds_per_step: dict[str, float]
    loss_ratio: dict[str, float]
    measured: str = ""           # when (ISO date, UTC)

    @property
    def speedup(self) -> float:
        """How much faster the chosen precision ran than float32 (1.0 for float32)."""
        return self.seconds_per_step["off"] / self.seconds_per_step[self.precision]

    def reason(self) -> str:
        """Why, for the start-up line: what was measured and what that decided."""
        name = self.precision if self.precision != "off" else "float32"
        if self.precision != "off":
            ratio = self.loss_ratio[self.precision]
            return (f"auto: measured {self.speedup:.2f}x the speed of float32, final loss "
                    f"{100 * (ratio - 1):+.1f}% of float32's")
        others = []
        for candidate, seconds in self.seconds_per_step.items():
            if candidate == "off":
                continue
            speed = self.seconds_per_step["off"] / seconds
            if candidate in self.loss_ratio:
                others.append(f"{candidate} {speed:.2f}x as fast but final loss "
                              f"{100 * (self.loss_ratio[candidate] - 1):+.1f}%")
            else:
                others.append(f"{candidate} measured {speed:.2f}x the speed of {name}")
        return "auto: " + ("; ".join(others) if others else "no lower precision on this device")


def decide(candidates: list[str], seconds_per_step: Callable[[str], float],
           loss_ratio: Callable[[str], float]) -> Decision:
    """The fastest candidate that is at least MIN_SPEEDUP faster than float32 ("off", always a
    candidate) and whose final loss is within LOSS_TOLERANCE of float32's; float32 when none is.
    Only candidates that are fast enough get the (slower) quality check."""
    times = {candidate: seconds_per_step(candidate) for candidate in ["off"] + [c for c in candidates if c != "off"]}
    ratios = {}
    for candidate in sorted(times, key=times.get):
        if candidate == "off" or times["off"] / times[candidate] < MIN_SPEEDUP:
            break
        ratios[candidate] = loss_ratio(candidate)
        if ratios[candidate] <= 1.0 + LOSS_TOLERANCE:
            return Decision(candidate, times, ratios, today())
    return Decision("off", times, ratios, today())


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


# ----------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------

def cache_path() -> Path:
    """$XDG_CACHE_HOME/dcgan-completion-tf2/precision.json (~/.cache when XDG_CACHE_HOME is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / CACHE_FILE


def cache_key(job: str, device: str, tensorflow: str, shape: dict) -> str:
    """One decision per job, device, TensorFlow version and model shape (batch included)."""
    return json.dumps({"job": job, "device": device, "tensorflow": tensorflow, **shape}, sort_keys=True)


def read_cache(path: Path, quiet: bool = False) -> dict:
    """The cached decisions ({} when there are none, or, with a warning, when the file is unreadable)."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        if not quiet:
            utils.warn(f"{path}: cannot read the cached precision decisions ({error}); measuring again")
        return {}


def remembered(cache: dict, key: str) -> Decision | None:
    entry = cache.get(key)
    try:
        return Decision(**entry) if isinstance(entry, dict) else None
    except TypeError:  # an entry of another version's format
        return None


def remember(path: Path, cache: dict, key: str, decision: Decision) -> None:
    """Write the cache with the decision added (atomically); a cache that cannot be written is a warning."""
    cache = {**cache, key: {"precision": decision.precision, "seconds_per_step": decision.seconds_per_step,
                            "loss_ratio": decision.loss_ratio, "measured": decision.measured}}
    try:
        utils.save_json(path, cache)
    except OSError as error:
        utils.warn(f"{path}: cannot remember the precision decision ({utils.describe_os_error(error)}); "
                   f"auto will measure again next time")


def choose(key: str, candidates: list[str], seconds_per_step: Callable[[str], float],
           loss_ratio: Callable[[str], float], path: Path | None = None) -> tuple[Decision, str]:
    """The cached decision for key, else decide() now and remember it. Returns (decision, the
    start-up line's reason, which says whether it was measured now or when)."""
    path = cache_path() if path is None else path
    cache = read_cache(path)
    decision = remembered(cache, key)
    if decision is not None and decision.precision in ["off"] + list(candidates):
        return decision, f"{decision.reason()}; measured on {decision.measured}, remembered in {path}"
    decision = decide(candidates, seconds_per_step, loss_ratio)
    # Read again: another process may have added its decision while this one measured.
    remember(path, read_cache(path, quiet=True), key, decision)
    return decision, f"{decision.reason()}; measured now, remembered in {path}"


# ----------------------------------------------------------------------------
# The device
# ----------------------------------------------------------------------------

def device_name(gpus: list[tuple[str, tuple[int, int]]] | None = None, cpu: str | None = None) -> str:
    """What the decision depends on: the GPUs' names and compute capabilities, else the CPU's model
    name and core count. gpus: [(name, (major, minor))]; both default to this machine's."""
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        return ", ".join(f"{name} (compute capability {cc[0]}.{cc[1]})" for name, cc in gpus)
    name = utils.cpu_info()[0] if cpu is None else cpu
    return f"CPU {name or 'unknown'} ({os.cpu_count()} cores)"


def candidates_for(gpus: list[tuple[str, tuple[int, int]]]) -> list[str]:
    """The lower precisions worth timing: bfloat16 everywhere, float16 on GPUs (on CPUs TensorFlow has
    no fast float16 convolutions)."""
    return ["bfloat16", "float16"] if gpus else ["bfloat16"]


def visible_gpus() -> list[tuple[str, tuple[int, int]]]:
    import tensorflow as tf
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append((details.get("device_name", "GPU"), tuple(details.get("compute_capability") or (0, 0))))
    return found


# ----------------------------------------------------------------------------
# Completion: the measured step
# ----------------------------------------------------------------------------

class CompletionTrial:
    """Times one precision's completion step at the run's batch size, and checks its final loss.

    The images are the float32 model's own G(z) for fixed z (faces, for a face model), with the
    center mask; every precision starts from the same z, and its final z's loss is evaluated by
    the float32 model, so the losses compare like for like.
    """

    def __init__(self, build: Callable[[str], object], batch: int, settings):
        import numpy as np

        import completion
        import masking
        self.build, self.settings, self.models = build, settings, {}
        reference = self.model("off")
        replicas = reference.strategy.num_replicas_in_sync if reference.strategy is not None else 1
        rows = lambda n: -(-n // replicas) * replicas  # noqa: E731  (a strategy splits the batch evenly)
        self.batch, self.check = rows(batch), rows(CHECK_IMAGES)
        self.mask = masking.make_mask("center", reference.image_size)
        size = max(self.batch, self.check)
        faces = reference.generator(completion.draw_z(1, size, reference.z_dim), training=False).numpy()
        self.images = np.clip(faces, -1.0, 1.0)
        self.start_z = completion.draw_z(0, size, reference.z_dim)
        self.judge = completion.Completer(reference, self.mask, settings)
        self.float32_loss = None

    def model(self, precision: str):
        if precision not in self.models:
            self.models[precision] = self.build(precision)
        return self.models[precision]

    def _completer(self, precision: str):
        import completion
        return completion.Completer(self.model(precision), self.mask, self.settings)

    def seconds_per_step(self, precision: str) -> float:
        """The best seconds per iteration over chunks of about 0.1 s, for about TIMING_SECONDS."""
        import tensorflow as tf
        completer = self._completer(precision)
        z = tf.constant(self.start_z[:self.batch])
        images = tf.constant(self.images[:self.batch])
        state = completer.initial_state(z)
        completer.run(z, state, images, 0, 2)[3].numpy()  # tracing, not timed
        steps, best, deadline = 2, float("inf"), time.perf_counter() + TIMING_SECONDS
        while True:
            start = time.perf_counter()
            completer.run(z, state, images, 0, steps)[3].numpy()
            best = min(best, (time.perf_counter() - start) / steps)
            if time.perf_counter() > deadline:
                return best
            steps = max(2, min(200, int(0.1 / best)))

    def final_loss(self, precision: str) -> float:
        """The mean loss (judged in float32) after CHECK_ITERATIONS iterations in this precision."""
        import tensorflow as tf
        completer = self._completer(precision)
        z = tf.constant(self.start_z[:self.check])
        images = tf.constant(self.images[:self.check])
        z = completer.run(z, completer.initial_state(z), images, 0, CHECK_ITERATIONS)[0]
        return float(tf.reduce_mean(self.judge.loss(z, images)[0]))

    def loss_ratio(self, precision: str) -> float:
        if self.float32_loss is None:
            self.float32_loss = self.final_loss("off")
        return self.final_loss(precision) / self.float32_loss


def completion_shape(hparams: dict, batch: int, replicas: int, approach: str) -> dict:
    """The cache key's model part: what changes the step's speed."""
    keys = ("image_size", "z_dim", "gf_dim", "df_dim", "c_dim", "layout")
    return {**{k: hparams.get(k) for k in keys}, "batch": batch, "replicas": replicas, "approach": approach}


def completion_precision(asked: str, build: Callable[[str], object], hparams: dict, batch: int, settings,
                         replicas: int = 1) -> tuple[object, str, str]:
    """(model, precision, reason) for a completion: asked as given, or auto's measured choice;
    build(precision) -> the model in that precision. Measuring builds float32's model too; the
    chosen one is returned, not built again."""
    import distribute
    if asked != "auto":
        precision, why = distribute.choose_precision(asked)
        return build(precision), precision, why
    import tensorflow as tf
    gpus = visible_gpus()
    key = cache_key("completion", device_name(gpus), tf.__version__,
                    completion_shape(hparams, batch, replicas, settings.approach))
    trial = None

    def get_trial() -> CompletionTrial:
        nonlocal trial
        trial = trial or CompletionTrial(build, batch, settings)
        return trial

    decision, why = choose(key, candidates_for(gpus), lambda p: get_trial().seconds_per_step(p),
                           lambda p: get_trial().loss_ratio(p))
    model = trial.models[decision.precision] if trial and decision.precision in trial.models \
        else build(decision.precision)
    return model, decision.precision, why


def training_precision(asked: str) -> tuple[str, str]:
    """(precision, reason) for training: asked as given; auto keeps float32 (TRAINING_RULE)."""
    import distribute
    if asked != "auto":
        return distribute.choose_precision(asked)
    return "off", TRAINING_RULE
