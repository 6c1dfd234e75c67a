"""The completion's settings, typed: the one place for each default and each range.

complete.py takes its flags' defaults from here and builds the settings once from the parsed
flags; every library module gets these values, never an argparse Namespace. No TensorFlow here,
so that complete.py parses its flags (and a device strategy is set up) before TensorFlow starts.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

APPROACHES = ("momentum", "adam", "hmc")
Z_INITS = ("encoder", "random")   # where z starts: the checkpoint's encoder, E(known pixels, mask), or U(-1, 1)
ENCODER_N_ITER = 200  # the iterations from the encoder's start: as good as 1000 from random z (docs/quality.md)
BLENDS = ("none", "poisson")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, name: str, value, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {rule}, not {value!r}")


def _positive(name: str, value) -> None:
    _check(_is_number(value) and value > 0, name, value, "a finite number > 0")


def _count(name: str, value) -> None:
    _check(_is_int(value) and value >= 1, name, value, "an integer >= 1")


def _unit(name: str, value) -> None:
    _check(_is_number(value) and 0.0 <= value < 1.0, name, value, "in [0, 1)")


def _flag(name: str, value) -> None:
    _check(isinstance(value, bool), name, value, "True or False")


@dataclass(frozen=True)
class CompletionSettings:
    """How to complete: the update rule and its constants (the original's names in complete.py's
    flags: --nIter, --hmcBeta, ...), the objective (lam, weighted_mask, lowres) and the batching."""
    approach: str = "adam"          # adam and hmc: the repository's; momentum: the article's
    n_iter: int = 1000
    lr: float = 0.01                # momentum and adam
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    hmc_beta: float = 0.2           # inverse temperature, times hmc_anneal each iteration
    hmc_eps: float = 0.001          # leapfrog step
    hmc_l: int = 100                # leapfrog steps per iteration
    hmc_anneal: float = 1.0
    lam: float = 0.1                # weight of the perceptual loss
    out_interval: int = 50          # iterations per compiled chunk (and between recorded frames)
    batch_size: int = 64            # images optimised together
    seed: int | None = None         # z, zCandidates and HMC's draws
    weighted_mask: bool = True      # the paper's weighted contextual loss (else the article's plain L1)
    z_candidates: int = 1           # start from the best of this many z (random, or around the encoder's)
    z_init: str = "encoder"         # the encoder's z where the checkpoint has one, else random (Z_INITS)
    lowres: bool = False            # add the 8x block means' L1 (the lowres mask)
    xla: bool = False
    tune_g: bool = True             # then tune a copy of G to each image, stopped by held-out pixels (tuning.py)
    tune_steps: int = 100           # at most this many tuning steps an image
    tune_lr: float = 3e-4           # the tuning's Adam step

    def __post_init__(self):
        _check(self.approach in APPROACHES, "approach", self.approach, f"one of {', '.join(APPROACHES)}")
        _check(self.z_init in Z_INITS, "z_init", self.z_init, f"one of {', '.join(Z_INITS)}")
        for name in ("lr", "eps", "hmc_beta", "hmc_eps", "hmc_anneal", "tune_lr"):
            _positive(name, getattr(self, name))
        for name in ("momentum", "beta1", "beta2"):
            _unit(name, getattr(self, name))
        _check(_is_number(self.lam) and self.lam >= 0, "lam", self.lam, "a finite number >= 0")
        for name in ("n_iter", "hmc_l", "out_interval", "batch_size", "z_candidates", "tune_steps"):
            _count(name, getattr(self, name))
        _check(self.seed is None or _is_int(self.seed), "seed", self.seed, "an integer or None")
        for name in ("weighted_mask", "lowres", "xla", "tune_g"):
            _flag(name, getattr(self, name))


@dataclass(frozen=True)
class Schedule:
    """What the engine reads only on the host, not in its compiled functions: how long it runs, how
    often it reports, where z starts, the contextual loss's weights and the batch. Engines whose
    settings differ only here share their compiled functions (compiled_key)."""
    n_iter: int
    out_interval: int
    z_candidates: int
    z_init: str
    weighted_mask: bool
    batch_size: int
    tune_g: bool
    tune_steps: int
    tune_lr: float

    @classmethod
    def of(cls, settings: CompletionSettings) -> Schedule:
        return cls(**{field.name: getattr(settings, field.name) for field in dataclasses.fields(cls)})


def compiled_key(settings: CompletionSettings) -> CompletionSettings:
    """The settings with the Schedule's fields (and the seed, which the caller resets per job) at their
    defaults: settings with one key can share one engine, each run with its own Schedule."""
    defaults = CompletionSettings()
    return dataclasses.replace(settings, seed=None, **{field.name: getattr(defaults, field.name)
                                                      for field in dataclasses.fields(Schedule)})


@dataclass(frozen=True)
class OutputSettings:
    """Where complete.py writes, and how final/ pastes each fill (poisson: blended, as the paper)."""
    out_dir: Path = Path("completions")
    blend: str = "poisson"

    def __post_init__(self):
        _check(self.blend in BLENDS, "blend", self.blend, f"one of {', '.join(BLENDS)}")
        object.__setattr__(self, "out_dir", Path(self.out_dir))


def default_iterations(encoder_start: bool) -> int:
    """--nIter's default: the original's 1000 from random z, ENCODER_N_ITER from the encoder's start."""
    return ENCODER_N_ITER if encoder_start else CompletionSettings.n_iter
