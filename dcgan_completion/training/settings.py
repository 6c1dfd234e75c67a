"""train_dcgan.py's settings, typed and checked: `TrainingSettings`, the one place for each
default and range, the `Rule` each value must keep, and the argparse type of each flag by its rule.
No TensorFlow: the flags parse, and a bad one fails, before TensorFlow starts.
"""
from __future__ import annotations

import argparse
import math
import numbers
import os
from dataclasses import dataclass

import utils

STRATEGIES = ("default", "mirrored", "multiworker")  # distribute.STRATEGIES (a test checks they agree)
PRECISIONS = ("auto", "off", "float16", "bfloat16")  # auto, then distribute.PRECISIONS


@dataclass(frozen=True)
class Rule:
    """The values one setting takes. TrainingSettings checks its values by it, and
    train_dcgan.py's flag of the same name parses by it (`flag_type`)."""
    kind: type                      # int, float, str (a path or a choice) or bool
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    power_of_two: bool = False      # image sizes: powers of two >= 8
    optional: bool = False          # None allowed (the checkpoint's value, or no limit)

    def describe(self) -> str:
        if self.choices:
            what = f"one of {', '.join(map(str, self.choices))}"
        elif self.power_of_two:
            what = "a power of two >= 8"
        elif self.kind in (bool, str):
            what = "True or False" if self.kind is bool else "a path"
        elif self.kind is int:
            what = "an integer" + (f" >= {self.low:g}" if self.low > -math.inf else "")
        else:
            what = f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return f"{what} or None" if self.optional else what

    def admits(self, value) -> bool:
        if value is None:
            return self.optional
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, (str, os.PathLike)) and (not self.choices or value in self.choices)
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if self.kind is int and not integral:
            return False
        if not integral and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
            return False
        if self.choices:
            return value in self.choices
        if self.power_of_two:
            return utils.is_valid_image_size(value)
        return (self.low < value if self.low_open else self.low <= value) and \
            (value < self.high if self.high_open else value <= self.high)


POSITIVE_INT = Rule(int, low=1)
POSITIVE = Rule(float, low=0.0, low_open=True, high_open=True)  # finite and > 0
PATH = Rule(str)
FLAG = Rule(bool)
MODEL_SIZE = Rule(int, low=1, optional=True)  # None: the checkpoint's when resuming, else the original's


@dataclass(frozen=True)
class TrainingSettings:
    """What train_dcgan.py's flags say, typed and checked: the original's flags and defaults
    (epoch .. sample_dir), then this port's. The model's sizes (image_size .. c_dim) are what was
    asked: None takes the checkpoint's when resuming, else the original's (train_dcgan.py)."""
    epoch: int = 25
    learning_rate: float = 0.0002
    beta1: float = 0.5
    train_size: float = math.inf         # use at most this many images
    batch_size: int = 64                 # the global batch, over every replica
    image_size: int | None = None
    dataset: str = "lfw-aligned-64"
    checkpoint_dir: str = "checkpoint"
    sample_dir: str = "samples"
    log_dir: str = "logs"
    z_dim: int | None = None
    gf_dim: int | None = None
    df_dim: int | None = None
    c_dim: int | None = None
    crop: bool = False
    input_height: int | None = None      # the side of a centred square to crop (implies crop)
    seed: int | None = None
    sample_every: int = 100
    save_every: int = 500
    xla: bool = False
    time_limit: float | None = None      # minutes
    strategy: str = "default"
    mixed_precision: str = "auto"
    ema_decay: float = 0.999             # the average of G's weights that completion uses; 0: none (the original's)
    encoder_steps: int = 1500            # then an encoder for completion's start, as many steps as G's at most; 0: none

    def __post_init__(self):
        for name, rule in RULES.items():
            value = getattr(self, name)
            if not rule.admits(value):
                raise ValueError(f"{name} must be {rule.describe()}, not {value!r}")

    @property
    def crop_side(self) -> bool | int:  # utils.load_image's crop: none, the largest square, or input_height's
        return self.input_height or self.crop


RULES = dict(
    epoch=POSITIVE_INT, learning_rate=POSITIVE, beta1=Rule(float, low=0.0, high=1.0, high_open=True),
    train_size=Rule(float, low=1.0), batch_size=POSITIVE_INT, image_size=Rule(int, power_of_two=True, optional=True),
    dataset=PATH, checkpoint_dir=PATH, sample_dir=PATH, log_dir=PATH,
    z_dim=MODEL_SIZE, gf_dim=MODEL_SIZE, df_dim=MODEL_SIZE, c_dim=Rule(int, choices=(1, 3), optional=True),
    crop=FLAG, input_height=Rule(int, low=1, optional=True), seed=Rule(int, optional=True), sample_every=POSITIVE_INT, save_every=POSITIVE_INT, xla=FLAG,
    time_limit=Rule(float, low=0.0, low_open=True, high_open=True, optional=True),
    strategy=Rule(str, choices=STRATEGIES), mixed_precision=Rule(str, choices=PRECISIONS),
    ema_decay=Rule(float, low=0.0, high=1.0, high_open=True), encoder_steps=Rule(int, low=0))
DEFAULTS = TrainingSettings()


def flag_type(name: str) -> dict:
    """argparse keywords for the flag --name by its setting's rule: its type (and choices or action).
    The messages of a bad value are the scripts' usual ones (utils.positive_int, utils.number_in)."""
    rule = RULES[name]
    if rule.kind is bool:
        return dict(action="store_true")
    if rule.choices:
        return dict(type=rule.kind, choices=rule.choices)
    if rule.power_of_two:
        return dict(type=image_size)
    if rule.kind is int:
        return dict(type={1: utils.positive_int, 0: utils.non_negative_int}.get(rule.low, int))
    if rule.kind is float:
        return dict(type=utils.number_in(rule.low, rule.high, rule.low_open, rule.high_open))
    return {}


def image_size(text: str) -> int:
    """argparse type of --image_size."""
    if not utils.is_valid_image_size(value := int(text)):
        raise argparse.ArgumentTypeError(f"must be a power of two >= 8 (8, 16, 32, 64, 128, ...), not {value}")
    return value


def dataset_images(folder: str | os.PathLike) -> list[str]:
    """The dataset folder's images (searched recursively). Raises UserError when the folder is
    missing, is a file, or holds none."""
    if not os.path.isdir(folder):
        raise utils.UserError(f"dataset folder {folder} does not exist" if not os.path.exists(folder)
                              else f"{folder}: dataset folder is a file, not a folder")
    paths = utils.list_images(folder)
    if not paths:
        raise utils.UserError(f"no .png/.jpg/.jpeg images in dataset folder {folder}")
    return paths
