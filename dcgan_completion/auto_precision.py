"""--mixed_precision auto: the precision (and the CPU's convolution kernels) chosen by measuring,
once per device and model.

A rule over CPU flags or GPU names goes stale with each new chip, so auto asks the device: it
times the model's own step in each variant the device offers (float32 and the lower precisions;
on a CPU each with TensorFlow's own convolution kernels and with ops.py's phase convolutions,
the same maths) in interleaved rounds until the verdict holds (so a second process's load cannot
favour one variant), keeps the fastest that is as good as float32, and remembers the decision in
the user's cache folder ($XDG_CACHE_HOME/dcgan-completion-tf2/precision.json), keyed by the job,
the device, the TensorFlow version, the model's shape, the batch sizes and XLA.

"As good": for completion, a final loss within 1% of float32's on the same images from the same
z; for training, the evidence of quality per step (TRAINING_RULE), so training's auto times only
float32's kernels. A forced precision (off, bfloat16, float16) is used as given, with ops.py's rule
for the kernels.

    model, precision, why = auto_precision.completion_precision("auto", build, config, batch, settings)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

import ops
import utils
from dcgan_completion import distribute, runtime
from dcgan_completion.completion import engine as completion
from dcgan_completion.completion import masks as masking
from dcgan_completion.networks.config import ModelConfig

CACHE_FILE = Path("dcgan-completion-tf2") / "precision.json"
LOSS_TOLERANCE = 0.01      # a lower precision's final loss may be at most 1% above float32's
MIN_SPEEDUP = 1.1          # ... and it must be at least this much faster: timings drift a few percent
CHUNK_SECONDS = 0.15       # each timed run of a variant (at least one step)
MIN_ROUNDS, MAX_ROUNDS = 4, 10  # interleaved rounds: until the verdict holds for MIN_ROUNDS in a row
CHECK_IMAGES, CHECK_ITERATIONS = 8, 50   # the quality check: 8 images, 50 iterations from the same z

# Training: the quality per step at equal steps, not the speed, decides. The evidence (docs/distributed.md,
# "Precision"): trained for the same 1150 steps on a Xeon with AMX, the bfloat16 model filled held-out
# faces 0.8 dB worse than its float32 twin (one seed each), and in 15 minutes (more steps in bfloat16)
# 1.6 dB worse; float16 was never shown as good. So training's auto keeps float32 on every device;
# --mixed_precision bfloat16 trades that quality for speed.
TRAINING_RULE = ("training keeps float32: a bfloat16-trained model filled held-out faces worse "
                 "(docs/distributed.md#precision)")
PHASES = "+phases"         # a variant's suffix: the CPU's stride-2 convolutions by phases (ops.py)
IMAGE = "+image"           # ... in float32, only G's image layer by phases (ops.py's rule); none: no phases


def precision_of(variant: str) -> str:
    return variant.removesuffix(PHASES).removesuffix(IMAGE)


def phases_of(variant: str) -> bool | None:
    """The model's `phases` for the variant: True, False, or None (ops.py's rule)."""
    return True if variant.endswith(PHASES) else None if variant.endswith(IMAGE) else False


def describe(variant: str) -> str:
    name = "float32" if precision_of(variant) == "off" else precision_of(variant)
    return name + {True: " (phase convolutions)", None: " (the image layer by phases)", False: ""}[phases_of(variant)]


@dataclass(frozen=True)
class Decision:
    """auto's choice and its evidence: the seconds per step of each variant timed, and the loss ratio
    (final loss / float32's) of each lower precision checked."""
    variant: str
    seconds_per_step: dict[str, float]
    loss_ratio: dict[str, float]
    measured: str                # when (ISO date, UTC)
    rounds: int                  # interleaved timing rounds (an entry without them is measured again)
    agree: int                   # ... whose own times, alone, give the verdict of all of them

    @property
    def precision(self) -> str:
        return precision_of(self.variant)

    @property
    def phases(self) -> bool | None:
        return phases_of(self.variant)

    def speed(self, variant: str) -> float:
        """How many times float32 with TensorFlow's own kernels ("off") the variant ran."""
        return self.seconds_per_step["off"] / self.seconds_per_step[variant]

    @property
    def speedup(self) -> float:
        return self.speed(self.variant)

    def reason(self) -> str:
        """Why, for the start-up line: what was measured and what that decided."""
        sure = f" ({self.agree} of {self.rounds} interleaved rounds agree)" if self.rounds > 1 else ""
        if self.variant == "off":
            parts = [f"auto: float32 measured fastest{sure}"]
            # float32's other kernels, one by one; every other precision by its fastest variant.
            others = [v for v in self.seconds_per_step if precision_of(v) == "off" and v != "off"]
        else:
            parts = [f"auto: {describe(self.variant)} measured {self.speedup:.2f}x the speed of float32{sure}"]
            others = []
        if self.precision != "off":
            parts[0] += f", final loss {100 * (self.loss_ratio[self.precision] - 1):+.1f}% of float32's"
        for precision in dict.fromkeys(map(precision_of, self.seconds_per_step)):
            if precision not in ("off", self.precision):
                others.append(min((v for v in self.seconds_per_step if precision_of(v) == precision),
                                  key=self.seconds_per_step.get))
        for variant in others:
            precision = precision_of(variant)
            text = f"{describe(variant)} {self.speed(variant):.2f}x"
            if precision in self.loss_ratio:
                text += f" but final loss {100 * (self.loss_ratio[precision] - 1):+.1f}%"
            parts.append(text)
        return "; ".join(parts)


@dataclass(frozen=True)
class Timings:
    """Seconds per step of each variant in each interleaved round (at several batch sizes: their
    geometric mean, so that every batch counts alike)."""
    rounds: list[dict[str, float]]

    @property
    def best(self) -> dict[str, float]:
        return {variant: min(r[variant] for r in self.rounds) for variant in self.rounds[0]}

    @property
    def seconds(self) -> dict[str, float]:
        """What decides: float32's best time, and every other variant's at its median speed against
        float32 in the same round. A round's runs follow each other within a second, under the same
        load, so their ratio holds where a load that comes and goes skews each variant's best."""
        best = self.best["off"]
        return {variant: best / statistics.median([r["off"] / r[variant] for r in self.rounds])
                for variant in self.rounds[0]}

    @property
    def agree(self) -> int:
        """How many rounds, taken alone, give the verdict of all of them."""
        final = verdict(self.seconds)
        return sum(verdict(r) == final for r in self.rounds)


def verdict(seconds: dict[str, float]) -> tuple[str, tuple[str, ...]]:
    """What decide() does with these times: the fastest float32 variant, and the variants of lower
    precisions at least MIN_SPEEDUP faster than it, fastest first (the ones whose loss it checks)."""
    float32 = min((v for v in seconds if precision_of(v) == "off"), key=seconds.get)
    faster = sorted((v for v in seconds if seconds[float32] / seconds[v] >= MIN_SPEEDUP), key=seconds.get)
    return float32, tuple(faster)


def interleaved(runs: dict[str, list[Callable[[int], None]]], clock: Callable[[], float] = time.perf_counter) \
        -> Timings:
    """Time each variant's runs (run(steps) runs and waits; one run per batch size) in turns: after a
    first, untimed call (the tracing) and a timed step that sets each run's steps (about CHUNK_SECONDS,
    then fixed and run once untimed, so no round pays for compiling), rounds that time every run
    once, each round starting at another variant, until the verdict on the rounds so far (Timings.seconds) has held
    MIN_ROUNDS rounds in a row (at most MAX_ROUNDS). A second process's load then slows every variant
    alike, and the median of the rounds' speed ratios is not swayed by a few loaded runs."""
    steps: dict[tuple[str, int], int] = {}
    for variant, batch_runs in runs.items():
        for i, run in enumerate(batch_runs):
            run(1)
            start = clock()
            run(1)
            steps[variant, i] = max(1, min(200, int(CHUNK_SECONDS / max(clock() - start, 1e-9))))
            if steps[variant, i] > 1:
                run(steps[variant, i])  # untimed: under XLA a new chunk length compiles anew
    order, rounds, verdicts = list(runs), [], []
    while len(rounds) < MAX_ROUNDS:
        times = {}
        for variant in order[len(rounds) % len(order):] + order[:len(rounds) % len(order)]:
            per_batch = []
            for i, run in enumerate(runs[variant]):
                start = clock()
                run(steps[variant, i])
                per_batch.append(max(clock() - start, 1e-12) / steps[variant, i])
            times[variant] = math.prod(per_batch) ** (1.0 / len(per_batch))
        rounds.append({variant: times[variant] for variant in order})
        verdicts.append(verdict(Timings(rounds).seconds))
        if len(verdicts) >= MIN_ROUNDS and len(set(verdicts[-MIN_ROUNDS:])) == 1:
            break
    return Timings(rounds)


def decide(variants: list[str], measure: Callable[[list[str]], Timings],
           loss_ratio: Callable[[str], float]) -> Decision:
    """Time every variant ("off", float32 with TensorFlow's kernels, always among them): measure(variants)
    (interleaved rounds). Keep the fastest float32 variant, unless a lower precision's variant is at
    least MIN_SPEEDUP faster and its final loss is within LOSS_TOLERANCE of float32's (loss_ratio(variant),
    asked once per precision, of its fastest variant, and only of those fast enough)."""
    timings = measure(list(dict.fromkeys(["off", *variants])))
    times = timings.seconds
    float32, faster = verdict(times)
    evidence = dict(rounds=len(timings.rounds), agree=timings.agree)
    ratios: dict[str, float] = {}
    for variant in faster:
        precision = precision_of(variant)
        if precision in ratios:
            continue  # its fastest variant was checked already
        ratios[precision] = loss_ratio(variant)
        if ratios[precision] <= 1.0 + LOSS_TOLERANCE:
            return Decision(variant, times, ratios, today(), **evidence)
    return Decision(float32, times, ratios, today(), **evidence)


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


# ----------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------

def cache_path() -> Path:
    """$XDG_CACHE_HOME/dcgan-completion-tf2/precision.json (~/.cache when XDG_CACHE_HOME is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / CACHE_FILE


def cache_key(job: str, device: str, tensorflow: str, shape: dict, kernels: int = ops.KERNELS_REVISION) -> str:
    """One decision per job, device, TensorFlow version, model shape (batch included) and revision of
    the layers' kernels."""
    return json.dumps({"job": job, "device": device, "tensorflow": tensorflow, "kernels": kernels, **shape},
                      sort_keys=True)


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
    cache = {**cache, key: dataclasses.asdict(decision)}
    try:
        utils.save_json(path, cache)
    except OSError as error:
        utils.warn(f"{path}: cannot remember the precision decision ({utils.describe_os_error(error)}); "
                   f"auto will measure again next time")


def choose(key: str, variants: list[str], measure: Callable[[list[str]], Timings],
           loss_ratio: Callable[[str], float], path: Path | None = None) -> tuple[Decision, str]:
    """The cached decision for key, else decide() now and remember it. Returns (decision, the
    start-up line's reason, which says whether it was measured now or when)."""
    path = cache_path() if path is None else path
    cache = read_cache(path)
    decision = remembered(cache, key)
    if decision is not None and set(decision.seconds_per_step) == set(["off", *variants]) \
            and decision.variant in decision.seconds_per_step:
        return decision, f"{decision.reason()}; measured on {decision.measured}, remembered in {path}"
    decision = decide(variants, measure, loss_ratio)
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
    name = runtime.cpu_info()[0] if cpu is None else cpu
    asked = os.environ.get(runtime.ONEDNN, "1")
    kernels = "oneDNN" if asked == "1" else f"{runtime.ONEDNN}={asked}"
    return f"CPU {name or 'unknown'} ({os.cpu_count()} cores, {kernels})"


BFLOAT16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}  # where oneDNN runs bfloat16 natively, not emulated


def variants_for(job: str, gpus: list[tuple[str, tuple[int, int]]], cpu_flags: set[str] | None = None) -> list[str]:
    """What auto times. Completion: float32 and bfloat16 (and float16 on GPUs: on CPUs TensorFlow has
    no fast float16 convolutions); on a CPU each with TensorFlow's kernels and by phases, and float32
    also with only G's image layer by phases (ops.py's rule; in bfloat16 the rule is phases), bfloat16
    only where the CPU has it (cpu_flags, /proc/cpuinfo's; unknown: timed): without AVX512_BF16 or AMX
    oneDNN emulates it, slowly, and says so on stderr. Training: float32's kernels on a CPU
    (TRAINING_RULE); nothing to time on a GPU."""
    flags = runtime.cpu_info()[1] if cpu_flags is None else cpu_flags
    bfloat16 = ["bfloat16"] if gpus or not flags or flags & BFLOAT16_CPU_FLAGS else []
    precisions = ["off"] if job == "training" else ["off", *bfloat16] + (["float16"] if gpus else [])
    if gpus:
        return precisions
    return [variant for precision in precisions
            for variant in (precision, *([precision + IMAGE] if precision == "off" else []), precision + PHASES)]


def visible_gpus() -> list[tuple[str, tuple[int, int]]]:
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append((details.get("device_name", "GPU"), tuple(details.get("compute_capability") or (0, 0))))
    return found


# ----------------------------------------------------------------------------
# Completion: the measured step
# ----------------------------------------------------------------------------

class Trial:
    """What both trials share: runs(variant) -> a run(steps) per batch size, timed in interleaved rounds."""

    def runs(self, variant: str) -> list[Callable[[int], None]]:
        raise NotImplementedError

    def measure(self, variants: list[str]) -> Timings:
        return interleaved({variant: self.runs(variant) for variant in variants})


class CompletionTrial(Trial):
    """Runs each variant's completion step at the batch sizes that will run, and checks a precision's
    final loss.

    The images are the float32 model's own G(z) for fixed z (faces, for a face model), with the
    center mask; every variant starts from the same z, and its final z's loss is judged by the
    float32 model, so the losses compare like for like. The models built stay, for the caller.
    """

    def __init__(self, build: Callable[[str, bool], object], batches: list[int], settings):
        self.build, self.settings, self.models = build, settings, {}
        reference = self.model("off")
        replicas = reference.strategy.num_replicas_in_sync if reference.strategy is not None else 1
        rows = lambda n: -(-n // replicas) * replicas  # noqa: E731  (a strategy splits the batch evenly)
        self.batches, self.check = sorted({rows(b) for b in batches}), rows(CHECK_IMAGES)
        self.mask = masking.make_mask("center", reference.image_size)
        size = max(*self.batches, self.check)
        faces = reference.sampler(completion.draw_z(1, size, reference.z_dim), training=False).numpy()
        self.images = np.clip(faces, -1.0, 1.0)
        self.start_z = completion.draw_z(0, size, reference.z_dim)
        self.judge = completion.LatentOptimizer(reference, self.mask, settings)
        self.float32_loss = None

    def model(self, variant: str):
        if variant not in self.models:
            self.models[variant] = self.build(precision_of(variant), phases_of(variant))
        return self.models[variant]

    def runs(self, variant: str) -> list[Callable[[int], None]]:
        """run(steps) at each batch size: that many iterations from the same start, waited for."""
        completer = completion.LatentOptimizer(self.model(variant), self.mask, self.settings)

        def at(batch: int) -> Callable[[int], None]:
            z, images = self.start_z[:batch], self.images[:batch]
            state = completer.initial_state(z)
            return lambda steps: completer.run(z, state, images, 0, steps)[3].numpy()
        return [at(batch) for batch in self.batches]

    def final_loss(self, variant: str) -> float:
        """The mean loss (judged in float32) after CHECK_ITERATIONS iterations in this variant."""
        completer = completion.LatentOptimizer(self.model(variant), self.mask, self.settings)
        z, images = tf.constant(self.start_z[:self.check]), tf.constant(self.images[:self.check])
        z = completer.run(z, completer.initial_state(z), images, 0, CHECK_ITERATIONS)[0]
        return float(tf.reduce_mean(self.judge.loss(z, images)[0]))

    def loss_ratio(self, variant: str) -> float:
        if self.float32_loss is None:
            self.float32_loss = self.final_loss("off")
        return self.final_loss(variant) / self.float32_loss


class TrainingTrial(Trial):
    """Runs each variant's training step (one D and two G updates) at the run's batch, on models of
    its own: a step changes the weights, so the model that trains is built after."""

    def __init__(self, build: Callable[[str, bool], object], batch: int, xla: bool = False):
        self.build, self.batch, self.xla = build, batch, xla

    def runs(self, variant: str) -> list[Callable[[int], None]]:
        model = self.build(precision_of(variant), phases_of(variant))
        model.compile(xla=self.xla)  # as the training will run it
        images = tf.random.stateless_uniform([self.batch, model.image_size, model.image_size, model.c_dim],
                                             [0, 1], -1.0, 1.0)

        def steps(count: int) -> None:
            for _ in range(count):
                out = model.train_step(images)
            float(out["d_loss"])
        return [steps]


def model_shape(config: ModelConfig, batch: int | list[int], replicas: int, **extra) -> dict:
    """The cache key's model part: what changes the step's speed."""
    return {**dataclasses.asdict(config), "batch": batch, "replicas": replicas, **extra}


def _measured(job: str, shape: dict, measure, loss_ratio) -> tuple[Decision, str]:
    gpus = visible_gpus()
    key = cache_key(job, device_name(gpus), tf.__version__, shape)
    return choose(key, variants_for(job, gpus), measure, loss_ratio)


def completion_precision(asked: str, build: Callable[[str, bool | None], object], config: ModelConfig,
                         batch: int | list[int], settings, replicas: int = 1) -> tuple[object, str, str]:
    """(model, precision, reason) for a completion: asked as given (ops.py's rule for the kernels), or
    auto's measured choice at the batch size (or sizes, alike: a server's padded batches) that will
    run; build(precision, phases) -> the model. Measuring builds a model per variant; the chosen one
    is returned, not built again."""
    if asked != "auto":
        precision, why = distribute.choose_precision(asked)
        return build(precision, None), precision, why
    trial = None

    def get_trial() -> CompletionTrial:
        nonlocal trial
        trial = trial or CompletionTrial(build, batches, settings)
        return trial

    batches = sorted(set(batch)) if isinstance(batch, (list, tuple)) else [batch]
    shape = model_shape(config, batches if len(batches) > 1 else batches[0], replicas, approach=settings.approach,
                        xla=settings.xla)
    decision, why = _measured("completion", shape, lambda variants: get_trial().measure(variants),
                              lambda v: get_trial().loss_ratio(v))
    if trial and decision.variant in trial.models:
        return trial.models[decision.variant], decision.precision, why
    return build(decision.precision, decision.phases), decision.precision, why


def training_precision(asked: str, build: Callable[[str, bool | None], object], config: ModelConfig, batch: int,
                       replicas: int = 1, measure: bool = True, xla: bool = False) -> tuple[object, str, str]:
    """(model, precision, reason) for training: asked as given (ops.py's rule for the kernels); auto:
    float32 (TRAINING_RULE), with the kernels measured faster (measure=False: ops.py's rule, as
    when several workers would each have to measure in step)."""
    if asked != "auto":
        precision, why = distribute.choose_precision(asked)
        return build(precision, None), precision, why
    if not measure:
        return build("off", None), "off", f"auto: {TRAINING_RULE}"
    trial = TrainingTrial(build, batch, xla)
    decision, why = _measured("training", model_shape(config, batch, replicas, xla=xla), trial.measure,
                              lambda variant: 1.0)
    return build("off", decision.phases), "off", f"auto: {TRAINING_RULE}; {why.removeprefix('auto: ')}"
