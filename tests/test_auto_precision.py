"""--mixed_precision auto: the decision from (faked) timings and losses, the cache in XDG_CACHE_HOME,
the device's name, forced precisions, and one real measurement of a tiny model's completion step."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ops  # noqa: E402
from dcgan_completion import auto_precision  # noqa: E402
from dcgan_completion.auto_precision import Decision, choose, decide  # noqa: E402
from dcgan_completion.networks.config import ModelConfig  # noqa: E402


def recording(values: dict):
    """A fake measurement of each variant (seconds per step, or loss ratio) that records in .asked
    which variants it was asked for."""
    asked = []

    def measure(variant):
        asked.append(variant)
        return values[variant]
    measure.asked = asked
    return measure


def timings(**seconds):
    """A fake measure(variants): one round of these seconds per step; .asked: the variants timed."""
    asked = []

    def measure(variants):
        asked.extend(variants)
        return auto_precision.Timings([{variant: seconds[variant] for variant in variants}])
    measure.asked = asked
    return measure


def losses(**ratios):
    return recording(ratios)


def never(precision):
    raise AssertionError(f"{precision} should not have been measured")


# -- the decision --------------------------------------------------------------------------

def test_a_faster_precision_that_completes_as_well_is_chosen():
    check = losses(bfloat16=1.008)
    decision = decide(["off", "bfloat16"], timings(off=0.2, bfloat16=0.1), check)
    assert decision.variant == decision.precision == "bfloat16" and not decision.phases
    assert decision.speedup == pytest.approx(2.0) and check.asked == ["bfloat16"]
    assert decision.reason() == "auto: bfloat16 measured 2.00x the speed of float32, final loss +0.8% of float32's"


def test_a_faster_precision_with_a_worse_loss_is_refused():
    check = losses(bfloat16=1.02)
    decision = decide(["off", "bfloat16"], timings(off=0.2, bfloat16=0.1), check)
    assert decision.variant == "off" and check.asked == ["bfloat16"]
    assert decision.loss_ratio == {"bfloat16": 1.02}
    assert decision.reason() == "auto: float32 measured fastest; bfloat16 2.00x but final loss +2.0%"


@pytest.mark.parametrize("bfloat16_seconds", [0.3, 0.19])  # slower; faster by less than MIN_SPEEDUP
def test_a_precision_not_clearly_faster_is_not_even_checked(bfloat16_seconds):
    decision = decide(["off", "bfloat16"], timings(off=0.2, bfloat16=bfloat16_seconds), never)
    assert decision.variant == "off" and decision.loss_ratio == {}
    assert decision.reason().endswith(f"; bfloat16 {0.2 / bfloat16_seconds:.2f}x")


def test_the_faster_kernels_of_float32_are_kept_without_a_quality_check():
    """On a CPU: the phase convolutions are the same maths, so float32's faster kernels need no check;
    bfloat16 must beat them, not plain float32, to be checked."""
    seconds = timings(**{"off": 0.3, "off+phases": 0.2, "bfloat16": 0.4, "bfloat16+phases": 0.19})
    decision = decide(["off", "off+phases", "bfloat16", "bfloat16+phases"], seconds, never)
    assert decision.variant == "off+phases" and decision.precision == "off" and decision.phases
    assert decision.speedup == pytest.approx(1.5)
    assert sorted(seconds.asked) == ["bfloat16", "bfloat16+phases", "off", "off+phases"]
    assert decision.reason() == ("auto: float32 (phase convolutions) measured 1.50x the speed of float32; "
                                 "bfloat16 (phase convolutions) 1.58x")


def test_float32_with_only_the_image_layer_by_phases_is_a_variant_of_its_own():
    """ops.py's float32 rule (the image layer by phases, TensorFlow's kernels elsewhere) was the fastest
    at batch 1 on a Zen 5 and is neither of the other two; its model is built with phases=None."""
    seconds = timings(**{"off": 0.25, "off+image": 0.2, "off+phases": 0.3})
    decision = decide(["off", "off+image", "off+phases"], seconds, never)
    assert decision.variant == "off+image" and decision.precision == "off" and decision.phases is None
    assert decision.reason().startswith("auto: float32 (the image layer by phases) measured 1.25x the speed of float32")


def test_the_fastest_that_passes_wins_and_each_precision_is_checked_once():
    """On a GPU: bfloat16 fastest but worse, float16 next and as good."""
    check = losses(**{"bfloat16+phases": 1.05, "float16": 0.999})
    seconds = timings(**{"off": 0.3, "bfloat16+phases": 0.1, "bfloat16": 0.12, "float16": 0.15})
    decision = decide(["off", "bfloat16+phases", "bfloat16", "float16"], seconds, check)
    assert decision.variant == "float16" and check.asked == ["bfloat16+phases", "float16"]
    assert decision.loss_ratio == {"bfloat16": 1.05, "float16": 0.999}
    assert decision.speedup == pytest.approx(2.0)


def test_plain_float32_is_always_timed():
    seconds = timings(off=0.2, bfloat16=0.3)
    decision = decide(["off+phases", "bfloat16"], timings(**{"off": 0.2, "off+phases": 0.25, "bfloat16": 0.3}), never)
    assert decision.reason() == "auto: float32 measured fastest; float32 (phase convolutions) 0.80x; bfloat16 0.67x"
    decide(["bfloat16"], seconds, never)
    assert sorted(seconds.asked) == ["bfloat16", "off"]


# -- interleaved timing, with a faked clock ----------------------------------------------------

class FakeMachine:
    """A clock and runs on it: run(steps) advances the clock by steps x the variant's seconds per
    step, times `slowdown` while load(now) says a second process is busy."""

    def __init__(self, load=lambda now: False, slowdown=2.0):
        self.now, self.load, self.slowdown, self.steps = 0.0, load, slowdown, {}

    def clock(self) -> float:
        return self.now

    def run(self, name: str, seconds: float):
        def run(steps: int) -> None:
            self.steps.setdefault(name, []).append(steps)
            self.now += steps * seconds * (self.slowdown if self.load(self.now) else 1.0)
        return run


def test_interleaved_rounds_see_through_a_load_that_comes_and_goes():
    """The phase kernels are 20% faster; a second process doubles every step's time for 1.5 s of
    every 3. Timed one after the other for 0.75 s each (the first call a trace), the load fell on
    float32's turn and phases' turn differently and flipped the verdict; taken in interleaved rounds,
    each variant's best is its unloaded time."""
    machine = FakeMachine(load=lambda now: now % 3.0 >= 1.5)
    runs = {"off": [machine.run("off", 0.01)], "off+phases": [machine.run("off+phases", 0.008)]}
    timings = auto_precision.interleaved(runs, clock=machine.clock)
    assert timings.best == pytest.approx({"off": 0.01, "off+phases": 0.008})
    assert auto_precision.verdict(timings.best) == ("off+phases", ())
    assert auto_precision.MIN_ROUNDS <= len(timings.rounds) <= auto_precision.MAX_ROUNDS
    # Each run's chunk length is set once (about CHUNK_SECONDS), run once untimed (under XLA it compiles),
    # then never changes: at most two lengths are ever compiled.
    for name, per_step in (("off", 0.01), ("off+phases", 0.008)):
        trace, calibrate, compile_, *timed = machine.steps[name]
        assert (trace, calibrate) == (1, 1) and len(timed) == len(timings.rounds)
        assert set(timed) == {compile_} and compile_ in (int(0.15 / per_step), int(0.15 / (2 * per_step)))


def test_the_rounds_stop_once_the_verdict_holds():
    machine = FakeMachine()
    runs = {"off": [machine.run("off", 0.02)], "bfloat16": [machine.run("bfloat16", 0.01)]}
    timings = auto_precision.interleaved(runs, clock=machine.clock)
    assert len(timings.rounds) == auto_precision.MIN_ROUNDS and timings.agree == auto_precision.MIN_ROUNDS
    assert auto_precision.verdict(timings.best) == ("off", ("bfloat16",))


def test_a_verdict_that_keeps_changing_is_timed_up_to_the_limit_and_says_how_sure():
    """Two float32 variants whose order swaps every round (after the trace, the calibration and the
    first run at its length): the phase kernels' speed against float32 in rounds 1-10 is 1.02, 0.90,
    1.05, 0.85, 1.08, 0.80, 1.10, 0.75, 1.12, 0.70, so the median over the rounds so far is 1.02 after
    every odd round and 0.96 after every even one: the verdict never holds, the rounds go on to
    MAX_ROUNDS (10), float32 wins at a median of 0.96x, and the 5 even rounds alone say so."""
    machine = FakeMachine()
    speeds = [1.02, 0.90, 1.05, 0.85, 1.08, 0.80, 1.10, 0.75, 1.12, 0.70]
    phases = iter([1.0, 1.0, 1.0] + [1 / speed for speed in speeds])
    runs = {"off": [machine.run("off", 0.001)],
            "off+phases": [lambda steps: machine.run("phases", next(phases) / 1000)(steps)]}
    timings = auto_precision.interleaved(runs, clock=machine.clock)
    assert len(timings.rounds) == auto_precision.MAX_ROUNDS == 10 and timings.agree == 5
    decision = decide(["off+phases"], lambda variants: timings, never)
    assert decision.variant == "off" and (decision.rounds, decision.agree) == (10, 5)
    assert decision.speed("off+phases") == pytest.approx(0.96)
    assert decision.reason().startswith("auto: float32 measured fastest (5 of 10 interleaved rounds agree); "
                                        "float32 (phase convolutions) 0.96x")


def test_a_load_that_skews_the_best_times_does_not_sway_the_median():
    """float32 at 1.0 ms a step, the phase kernels at 1.1 ms (0.91x); once, a quiet moment gives the
    phase kernels 0.8 ms while every other run is loaded by 10%. The best times would say phases is
    faster (0.8 against 1.0 ms); the rounds' median speed still says 0.91x, and float32 is kept."""
    machine = FakeMachine()
    phases = iter([1.1, 1.1, 1.1, 0.8] + [1.1] * 20)
    runs = {"off": [machine.run("off", 0.0010)],
            "off+phases": [lambda steps: machine.run("phases", next(phases) / 1000)(steps)]}
    timings = auto_precision.interleaved(runs, clock=machine.clock)
    assert timings.best["off+phases"] < timings.best["off"]
    assert timings.best["off"] / timings.seconds["off+phases"] == pytest.approx(1 / 1.1)
    assert auto_precision.verdict(timings.seconds) == ("off", ())


def test_every_batch_size_counts_alike():
    """float32 takes 1 ms a step at batch 1 and 4 ms at batch 4; the phase kernels 2 ms and 1 ms.
    Geometric means: sqrt(1 * 4) = 2 ms against sqrt(2 * 1) = 1.41 ms, so phases wins overall,
    though it loses at batch 1."""
    machine = FakeMachine()
    runs = {"off": [machine.run("off1", 0.001), machine.run("off4", 0.004)],
            "off+phases": [machine.run("p1", 0.002), machine.run("p4", 0.001)]}
    timings = auto_precision.interleaved(runs, clock=machine.clock)
    assert timings.best == pytest.approx({"off": 0.002, "off+phases": 2 ** 0.5 / 1000})


# -- the cache ------------------------------------------------------------------------------

def test_the_decision_is_measured_once_and_then_remembered(tmp_path):
    path = tmp_path / "cache" / "precision.json"
    key = auto_precision.cache_key("completion", "CPU X (2 cores)", "2.21.0", {"image_size": 64, "batch": 1})
    first, why = choose(key, ["bfloat16"], timings(off=0.2, bfloat16=0.1), losses(bfloat16=1.0), path)
    assert first.precision == "bfloat16" and why.endswith(f"measured now, remembered in {path}")
    stored = json.loads(path.read_text())[key]
    assert stored["variant"] == "bfloat16" and stored["seconds_per_step"] == {"off": 0.2, "bfloat16": 0.1}
    again, why = choose(key, ["bfloat16"], never, never, path)
    assert again == first
    assert why == f"{first.reason()}; measured on {first.measured}, remembered in {path}"
    # Another TensorFlow (or device, or model shape) is measured anew, beside the first.
    other = auto_precision.cache_key("completion", "CPU X (2 cores)", "2.22.0", {"image_size": 64, "batch": 1})
    assert other != key
    decision, _ = choose(other, ["bfloat16"], timings(off=0.1, bfloat16=0.2), never, path)
    assert decision.precision == "off"
    assert set(json.loads(path.read_text())) == {key, other}
    # And so is another revision of the layers' kernels.
    revised = auto_precision.cache_key("completion", "CPU X (2 cores)", "2.21.0", {"image_size": 64, "batch": 1},
                                       kernels=ops.KERNELS_REVISION + 1)
    decision, _ = choose(revised, ["bfloat16"], timings(off=0.1, bfloat16=0.2), never, path)
    assert revised != key and decision.precision == "off"


def test_an_unreadable_cache_is_measured_again_with_a_warning(tmp_path, capsys):
    path = tmp_path / "precision.json"
    path.write_text("{not json")
    decision, _ = choose("k", ["bfloat16"], timings(off=0.1, bfloat16=0.2), never, path)
    assert decision.precision == "off"
    warning = capsys.readouterr().err.strip()
    assert warning.startswith(f"warning: {path}: cannot read the cached precision decisions") and "\n" not in warning
    assert json.loads(path.read_text())["k"]["variant"] == "off"  # rewritten whole


def test_a_cache_that_cannot_be_written_is_only_a_warning(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    path = blocker / "precision.json"  # its folder is a file
    decision, why = choose("k", ["bfloat16"], timings(off=0.1, bfloat16=0.2), never, path)
    assert decision.precision == "off" and "measured now" in why
    err = capsys.readouterr().err
    assert "cannot remember the precision decision" in err and "Traceback" not in err


def test_a_cached_decision_over_other_variants_is_measured_again(tmp_path):
    path = tmp_path / "precision.json"
    choose("k", ["bfloat16", "float16"], timings(off=0.3, bfloat16=0.2, float16=0.1), losses(float16=1.0), path)
    decision, why = choose("k", ["bfloat16"], timings(off=0.3, bfloat16=0.1), losses(bfloat16=1.0), path)
    assert decision.precision == "bfloat16" and "measured now" in why


def test_a_cached_entry_that_does_not_hold_together_is_measured_again(tmp_path):
    path = tmp_path / "precision.json"
    path.write_text(json.dumps({"k": {"variant": "float16", "seconds_per_step": {"off": 0.1, "bfloat16": 0.2},
                                      "loss_ratio": {}, "measured": "2026-01-01"},
                                "other": {"precision": "off"}}))  # an older format's entry, kept
    decision, why = choose("k", ["bfloat16"], timings(off=0.1, bfloat16=0.2), never, path)
    assert decision.variant == "off" and "measured now" in why
    assert set(json.loads(path.read_text())) == {"k", "other"}


def test_the_cache_lives_in_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert auto_precision.cache_path() == tmp_path / "dcgan-completion-tf2" / "precision.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert auto_precision.cache_path() == tmp_path / "home" / ".cache" / "dcgan-completion-tf2" / "precision.json"


# -- the device --------------------------------------------------------------------------------

def test_the_device_is_named_by_its_gpus_else_its_cpu(tmp_path, monkeypatch):
    from dcgan_completion import runtime
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B45\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9B45\n")
    name, flags = runtime.cpu_info(str(cpuinfo))
    assert name == "AMD EPYC 9B45" and "avx512_bf16" in flags
    assert auto_precision.device_name(gpus=[], cpu=name) == f"CPU AMD EPYC 9B45 ({os.cpu_count()} cores, oneDNN)"
    monkeypatch.setenv(runtime.ONEDNN, "0")  # TensorFlow's own kernels: another device, measured apart
    assert auto_precision.device_name(gpus=[], cpu=name) == \
        f"CPU AMD EPYC 9B45 ({os.cpu_count()} cores, TF_ENABLE_ONEDNN_OPTS=0)"
    h100 = [("NVIDIA H100", (9, 0))]
    assert auto_precision.device_name(gpus=h100, cpu=name) == "NVIDIA H100 (compute capability 9.0)"
    assert auto_precision.variants_for("completion", [], flags) == ["off", "off+image", "off+phases", "bfloat16",
                                                                   "bfloat16+phases"]
    assert auto_precision.variants_for("completion", h100, flags) == ["off", "bfloat16", "float16"]
    # An AVX2-only CPU (Zen 3): oneDNN would emulate bfloat16, so it is not timed; GPUs have it whatever the CPU.
    zen3 = {"avx2", "fma", "sse4_2"}
    assert auto_precision.variants_for("completion", [], zen3) == ["off", "off+image", "off+phases"]
    assert auto_precision.variants_for("completion", h100, zen3) == ["off", "bfloat16", "float16"]
    assert auto_precision.variants_for("completion", [], {"avx2", "amx_bf16"})[3:] == ["bfloat16", "bfloat16+phases"]
    assert auto_precision.variants_for("completion", [], set())[3:] == ["bfloat16", "bfloat16+phases"]
    assert auto_precision.variants_for("training", []) == ["off", "off+image", "off+phases"]
    assert auto_precision.variants_for("training", h100) == ["off"]


# -- forced precisions and training ------------------------------------------------------------

@pytest.mark.parametrize("asked", ["off", "bfloat16", "float16"])
def test_a_forced_precision_is_built_as_given_without_measuring(asked, monkeypatch):
    monkeypatch.setattr(auto_precision, "CompletionTrial", never)
    monkeypatch.setattr(auto_precision, "TrainingTrial", never)
    for choose_for in (auto_precision.completion_precision, auto_precision.training_precision):
        built = []
        model, precision, why = choose_for(asked, lambda p, phases: built.append((p, phases)) or p, ModelConfig(), 1,
                                           settings=None) if choose_for is auto_precision.completion_precision \
            else choose_for(asked, lambda p, phases: built.append((p, phases)) or p, ModelConfig(), 1)
        assert built == [(asked, None)] and model == asked and precision == asked and why == "as asked"
    with pytest.raises(ValueError):
        auto_precision.training_precision("float8", lambda p, phases: p, ModelConfig(), 1)


def test_training_keeps_float32_and_times_only_its_kernels(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    timed = []

    class FakeTrial:
        def __init__(self, build, batch, xla):
            assert batch == 64 and xla is False

        def measure(self, variants):
            timed.extend(variants)
            return auto_precision.Timings([{"off": 2.0, "off+phases": 1.5}])
    monkeypatch.setattr(auto_precision, "TrainingTrial", FakeTrial)
    monkeypatch.setattr(auto_precision, "visible_gpus", lambda: [])
    built = []
    model, precision, why = auto_precision.training_precision("auto", lambda p, phases: built.append((p, phases)),
                                                              ModelConfig(), 64)
    assert precision == "off" and built == [("off", True)] and sorted(timed) == ["off", "off+image", "off+phases"]
    assert why.startswith(f"auto: {auto_precision.TRAINING_RULE}; float32 (phase convolutions) measured 1.33x "
                          f"the speed of float32; measured now")
    assert "docs/distributed.md#precision" in why
    # Several workers: no measuring (they would have to time in step), ops.py's rule.
    built.clear()
    _, _, why = auto_precision.training_precision("auto", lambda p, phases: built.append((p, phases)), ModelConfig(),
                                                  64, measure=False)
    assert built == [("off", None)] and why == f"auto: {auto_precision.TRAINING_RULE}"


# -- one real measurement -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model_builder():
    from dcgan_completion.completion.settings import CompletionSettings
    from model import DCGAN
    built = []

    def build(precision, phases=None):
        model = DCGAN(image_size=16, gf_dim=8, df_dim=8, z_dim=16, seed=3, compute_dtype=precision, phases=phases)
        for var in model.generator.trainable_variables:  # a G whose images vary with z (see test_completion)
            if var.name.split("/")[-1].split(":")[0] in ("w", "Matrix"):
                var.assign(var * 10.0)
        built.append((precision, phases))
        return model
    return build, built, CompletionSettings(approach="momentum", seed=0)


def test_the_trial_times_and_judges_the_real_step(tiny_model_builder, monkeypatch):
    from dcgan_completion.completion import engine as completion
    build, built, settings = tiny_model_builder
    monkeypatch.setattr(auto_precision, "CHUNK_SECONDS", 0.02)
    trial = auto_precision.CompletionTrial(build, batches=[3, 1], settings=settings)
    assert built == [("off", False)]
    assert trial.images.shape == (8, 16, 16, 3) and trial.batches == [1, 3]
    built.clear()
    assert np.abs(trial.images).max() <= 1.0 and trial.images.std() > 0.05  # G's images, not noise or zeros
    timings = trial.measure(["off"])
    assert auto_precision.MIN_ROUNDS <= len(timings.rounds) <= auto_precision.MAX_ROUNDS
    assert 0 < timings.best["off"] < 1.0
    # The same precision judged twice: same z, same images, same model, so the same final loss.
    assert trial.loss_ratio("off") == pytest.approx(1.0, abs=1e-6)
    # The check really optimises: the final loss is below the start's.
    judge = completion.LatentOptimizer(trial.model("off"), trial.mask, settings)
    start_loss = float(np.mean(judge.loss(trial.start_z[:8], trial.images[:8])[0]))
    assert trial.final_loss("off") < start_loss
    assert built == []  # float32's model built once, by the trial's start


def test_auto_returns_the_measured_model_and_line(tiny_model_builder, monkeypatch, tmp_path):
    build, built, settings = tiny_model_builder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(auto_precision, "CHUNK_SECONDS", 0.02)
    config = ModelConfig(image_size=16, gf_dim=8, df_dim=8, z_dim=16, c_dim=3)
    built.clear()
    model, precision, why = auto_precision.completion_precision("auto", build, config, 2, settings)
    cache = json.loads((tmp_path / "dcgan-completion-tf2" / "precision.json").read_text())
    (key, entry), = cache.items()
    variant = entry["variant"]
    assert set(entry["seconds_per_step"]) == set(auto_precision.variants_for("completion", []))
    assert json.loads(key)["batch"] == 2 and json.loads(key)["job"] == "completion"
    assert precision == auto_precision.precision_of(variant) and why.startswith("auto: ") and "measured now" in why
    # Each variant built once, none again (phases True, False or None: sorted by their names).
    assert sorted(built, key=str) == sorted(((auto_precision.precision_of(v), auto_precision.phases_of(v))
                                             for v in entry["seconds_per_step"]), key=str)
    assert (model.compute_dtype is None) == (precision == "off") and model.phases == auto_precision.phases_of(variant)
    # The next start reads the decision and builds one model.
    built.clear()
    _, again, why = auto_precision.completion_precision("auto", build, config, 2, settings)
    assert again == precision and built == [(precision, auto_precision.phases_of(variant))] and "measured on" in why
