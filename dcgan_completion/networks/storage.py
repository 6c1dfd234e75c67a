"""Checkpoint formats: finding the newest checkpoint in a folder, this port's `dcgan.json`,
and the original's TensorFlow 1 format (its variable names and shapes, and the layout and
model size they imply; layouts.py names both layouts' variables). Both formats share the
`checkpoint` state file and the DCGAN.model-STEP prefix.
"""
from __future__ import annotations

import json
import os
import re
import sysconfig
from pathlib import Path

import tensorflow as tf

import utils
from dcgan_completion.faces import framing
from dcgan_completion.networks import layouts
from dcgan_completion.networks.config import ModelConfig

HPARAMS_FILE = "dcgan.json"        # the model's configuration (config.py), beside its checkpoints
CHECKPOINT_NAME = "DCGAN.model"     # the original's checkpoint prefix: DCGAN.model-STEP
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # present in TF2 checkpoints only
STATE_FILE = "checkpoint"           # names the newest checkpoint, in both formats
FIT_KEY = "known_fit"  # dcgan.json's optional record of how well G explains the known pixels of faces it knows
FIT_FIELDS = ("mean", "std", "warn_above")  # its numbers (read_known_fit checks them)
FRAMING_KEY = "framing"  # dcgan.json's record of how the training faces were cut (framing.py)
AVERAGE_NAME = "average_generator"  # the checkpoint's key of the average of G's weights (model.DCGAN.ema_decay)
SHIPPED_MODEL = "face64"            # the trained face model that ships with the project, used by default
SHIPPED_MODELS = (SHIPPED_MODEL,)  # every shipped face model (checkpoints/face*: setup.py installs them)
DATA_FOLDER = "share/dcgan-completion-tf2"  # where a wheel installs it, under the environment's prefix
# What the shipped model knows, in words (its first line, /api/model, the page's badge).
SHIPPED_KNOWS = "portraits of people, painted and photographic (artflow.ai, CC BY 4.0: see checkpoints/README.md)"


class CheckpointError(utils.UserError):
    """A checkpoint that cannot be loaded into this model; the message says why."""


def variable_name(var: tf.Variable) -> str:
    """'generator/g_h1/w:0' -> 'generator/g_h1/w'."""
    return var.name.split(":")[0]


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint prefix in a folder (this port's or the original's format), or None.

    The `checkpoint` state file names it. A path recorded elsewhere (the original's state
    files hold absolute paths, or paths relative to where it ran) is looked up by its file
    name in this folder first. Without a state file: the DCGAN.model-N.index with the
    largest N. Raises CheckpointError for a state file that cannot be read or that names
    a checkpoint that is not there.
    """
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    state_file = folder / STATE_FILE
    if not state_file.exists():
        steps = {int(m.group(1)): str(folder / m.group(0)[:-len(".index")]) for m in
                 (re.fullmatch(rf"{re.escape(CHECKPOINT_NAME)}-(\d+)\.index", p.name) for p in folder.iterdir())
                 if m}
        return steps[max(steps)] if steps else None
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # TensorFlow would log its own warnings about a bad state file
    try:
        state = tf.train.get_checkpoint_state(str(folder))
    except (ValueError, tf.errors.OpError):
        state = None
    finally:
        logger.setLevel(level)
    if state is None:
        raise CheckpointError(f"{state_file}: not a readable checkpoint state file (expected a line "
                              f'model_checkpoint_path: "{CHECKPOINT_NAME}-N" naming the {CHECKPOINT_NAME}-N.index '
                              f"and .data files beside it)")
    recorded = state.model_checkpoint_path
    local = str(folder / re.split(r"[\\/]", recorded)[-1])
    for path in (local, recorded):
        if tf.io.gfile.exists(path + ".index"):
            return path
    raise CheckpointError(f"{state_file} names the checkpoint {recorded}, but {local}.index is not there")


def shipped_model_dir(name: str) -> Path:
    """A shipped face model's folder: checkpoints/NAME of the clone this package sits in (or of an
    editable install), else the copy that `pip install .` puts under the environment's data prefix."""
    beside = Path(__file__).resolve().parents[2] / "checkpoints" / name
    if beside.is_dir():
        return beside
    return Path(sysconfig.get_path("data")) / DATA_FOLDER / name


def default_model_dir() -> Path:
    """The shipped face model used when no checkpoint folder is given."""
    return shipped_model_dir(SHIPPED_MODEL)


def resolve_model_dir(asked: str | os.PathLike | None) -> tuple[str, str]:
    """(the checkpoint folder to load, the line that says which it is): the folder asked for, or the shipped model."""
    if asked is not None and not is_shipped(asked):
        return str(asked), f"model: {asked}; {framing_words(asked)}"
    folder = Path(asked) if asked is not None else default_model_dir()
    return str(folder), (f"model: the shipped face model, which knows {SHIPPED_KNOWS} ({folder}; "
                         f"--checkpointDir DIR for your own); {framing_words(folder)}")


def is_shipped(checkpoint_dir: str | os.PathLike) -> bool:
    """Whether the folder is one of the shipped face models."""
    return any(Path(checkpoint_dir).resolve() == shipped_model_dir(name).resolve() for name in SHIPPED_MODELS)


def framing_words(checkpoint_dir: str | os.PathLike) -> str:
    try:
        return f"framing: {framing.describe(read_framing(checkpoint_dir))}"
    except CheckpointError as error:
        return str(error)


def json_record(model) -> dict:
    """What dcgan.json holds for a model (a DCGAN): its configuration, and its faces' framing when known."""
    cut = json.loads(getattr(model, "framing_json", "") or "null")
    return {**model.config.record(), **({FRAMING_KEY: cut} if framing.known(cut) else {})}


def save_networks(model, checkpoint_dir: str | os.PathLike) -> str:
    """Write only what completion and fine-tuning need: G's and D's weights and batch-norm statistics
    (and the average of G's where the model keeps one), the fixed sample z and dcgan.json, as
    DCGAN.model-0 (no optimiser slots, step 0, so that training from a copy starts a fresh run from
    these weights). `model`: a DCGAN. Returns the prefix."""
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if latest_checkpoint(folder) is not None:
        raise CheckpointError(f"{folder} already holds a checkpoint; choose an empty folder")
    utils.save_json(folder / HPARAMS_FILE, json_record(model))
    prefix = tf.train.Checkpoint(**model.networks()).write(str(folder / f"{CHECKPOINT_NAME}-0"))
    name = Path(prefix).name
    utils.atomic_write(folder / STATE_FILE, lambda tmp: Path(tmp).write_text(
        f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'))
    return prefix


def checkpoint_shapes(checkpoint_dir: str | os.PathLike) -> dict:
    """The newest checkpoint's variables and their shapes ({} when there is none or it cannot be read:
    loading it says why)."""
    path = latest_checkpoint(checkpoint_dir)
    try:
        return tf.train.load_checkpoint(path).get_variable_to_shape_map() if path else {}
    except (tf.errors.OpError, ValueError):
        return {}


def has_average(shapes: dict) -> bool:
    """Whether a checkpoint (its variables' shapes) holds an average of G's weights."""
    return any(key.startswith(f"{AVERAGE_NAME}/") for key in shapes)


def no_checkpoint_message(checkpoint_dir: str | os.PathLike) -> str:
    """Why there is nothing to load in checkpoint_dir, and what was expected there."""
    if not os.path.isdir(checkpoint_dir):
        return f"checkpoint folder {checkpoint_dir} does not exist"
    return (f"no checkpoint in {checkpoint_dir}: expected a `{STATE_FILE}` state file naming {CHECKPOINT_NAME}-N, "
            f"with {CHECKPOINT_NAME}-N.index and {CHECKPOINT_NAME}-N.data-* beside it (this port's format or the "
            f"original's TensorFlow 1 format)")


def require_checkpoint(checkpoint_dir: str | os.PathLike) -> str:
    """The newest checkpoint in checkpoint_dir, or a CheckpointError that says why there is none and how to make one."""
    found = latest_checkpoint(checkpoint_dir)
    if found is None:
        raise CheckpointError(f"{no_checkpoint_message(checkpoint_dir)}; train one first with "
                              f"'python train_dcgan.py --dataset DIR --checkpoint_dir {checkpoint_dir}'")
    return found


def first_line(error: Exception) -> str:
    text = str(getattr(error, "message", "") or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_config(checkpoint_dir: str | os.PathLike) -> ModelConfig:
    """The model's configuration: dcgan.json's, or inferred from an original TF1 checkpoint's
    names and shapes (its layout included)."""
    json_path = Path(checkpoint_dir) / HPARAMS_FILE
    if json_path.exists():
        try:
            with open(json_path) as handle:
                record = json.load(handle)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{json_path}: unreadable ({first_line(error)})") from None
        if isinstance(record, dict):  # what is not the configuration: read_known_fit's and read_framing's
            record = {k: v for k, v in record.items() if k not in (FIT_KEY, FRAMING_KEY)}
        try:
            return ModelConfig.from_record(record)
        except ValueError as error:
            raise CheckpointError(f"{json_path}: {error}") from None
    path = latest_checkpoint(checkpoint_dir)
    if path is None:
        raise CheckpointError(no_checkpoint_message(checkpoint_dir))
    try:
        shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(error)})") from None
    return infer_config(shapes, path)


def read_known_fit(checkpoint_dir: str | os.PathLike) -> dict | None:
    """dcgan.json's known_fit: the known-pixel error of completions of faces the model knows (mean,
    std, warn_above and how it was measured), or None for a model without it (or without dcgan.json)."""
    json_path = Path(checkpoint_dir) / HPARAMS_FILE
    try:
        fit = json.loads(json_path.read_text()).get(FIT_KEY)
    except (OSError, ValueError, AttributeError):
        return None  # read_config reports an unreadable dcgan.json
    if fit is None:
        return None
    if not isinstance(fit, dict) or not all(isinstance(fit.get(k), (int, float)) and not isinstance(fit.get(k), bool)
                                            and fit[k] >= 0 for k in FIT_FIELDS):
        raise CheckpointError(f"{json_path}: {FIT_KEY} must hold non-negative numbers {', '.join(FIT_FIELDS)}")
    return fit


def model_knows(checkpoint_dir: str | os.PathLike) -> str | None:
    """What the model knows, in words: a shipped model's, else dcgan.json's known_fit's, else None."""
    if is_shipped(checkpoint_dir):
        return SHIPPED_KNOWS
    try:
        return (read_known_fit(checkpoint_dir) or {}).get("knows")
    except CheckpointError:
        return None


def write_known_fit(checkpoint_dir: str | os.PathLike, fit: dict) -> None:
    """Record known_fit in the checkpoint's dcgan.json (its configuration kept as it is)."""
    config = read_config(checkpoint_dir)
    cut = read_framing(checkpoint_dir)
    utils.save_json(Path(checkpoint_dir) / HPARAMS_FILE,
                    {**config.record(), **({FRAMING_KEY: cut} if framing.known(cut) else {}), FIT_KEY: fit})


def read_framing(checkpoint_dir: str | os.PathLike) -> dict:
    """How the faces the model was trained on were cut (framing.py): dcgan.json's framing, or unknown
    for a model without one (the original's, and this port's older ones)."""
    json_path = Path(checkpoint_dir) / HPARAMS_FILE
    try:
        cut = json.loads(json_path.read_text()).get(FRAMING_KEY)
    except (OSError, ValueError, AttributeError):
        return dict(framing.UNKNOWN)  # read_config reports an unreadable dcgan.json
    if cut is None:
        return dict(framing.UNKNOWN)
    try:
        framing.model_points(cut if isinstance(cut, dict) else {"kind": repr(cut)})
    except framing.FramingError as error:
        raise CheckpointError(f"{json_path}: {error}") from None
    return cut


def infer_config(shapes: dict, path: str = "checkpoint") -> ModelConfig:
    """The layout and model size of an original (TF1) checkpoint, from its variables' names and shapes.

    The layout its names point to is tried first, then the other; the first whose every
    variable is there with the expected shape wins (extra variables, such as Adam's slots,
    are ignored). If neither fits, the error names the first variable that is missing or
    has another shape, and what each layout expects.
    """
    first = layouts.likely_layout(shapes)
    fits = {}
    for layout in sorted(layouts.LAYOUTS, key=lambda name: name != first):
        sizes, expected, problem = _fit(shapes, layout)
        if problem is None:
            return ModelConfig(**sizes, layout=layout)
        fits[layout] = (expected, problem)
    name = fits[first][1]
    found = f"variable {name} has shape {list(shapes[name])}" if name in shapes else f"no variable {name}"
    wants = []
    for layout in layouts.LAYOUTS:
        expected, problem = fits[layout]
        if expected is None:
            need = f"has no size that fits {problem}" if problem in shapes else f"needs {problem}"
            wants.append(f"the {layout} layout {need} ({layouts.SUMMARY[layout]})")
        else:
            shape = f"{name} {expected[name]}" if name in expected else f"no {name}"
            wants.append(f"the {layout} layout expects {shape} ({layouts.SUMMARY[layout]})")
    raise CheckpointError(f"{path}: fits neither layout of the original's checkpoints: {found}; {'; '.join(wants)}")


def _fit(shapes: dict, layout: str) -> tuple[dict | None, dict | None, str | None]:
    """(sizes, expected shapes, the first variable missing or shaped otherwise, or None if all fit)."""
    try:
        sizes = layouts.guess_sizes(shapes, layout)
    except KeyError as missing:
        return None, None, missing.args[0]
    try:
        expected = layouts.expected_shapes(**sizes, layout=layout)
    except (ValueError, ZeroDivisionError):  # shapes that no size of this layout has
        return None, None, "generator/g_h0_lin/Matrix"
    for name, shape in expected.items():
        if name not in shapes or list(shapes[name]) != shape:
            return sizes, expected, name
    return sizes, expected, None


# ----------------------------------------------------------------------------
