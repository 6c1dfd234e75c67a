"""Checkpoint formats: finding the newest checkpoint in a folder, this port's `dcgan.json`,
and the original's TensorFlow 1 format (its variable names and shapes, and the model size
they imply). Both formats share the `checkpoint` state file and the DCGAN.model-STEP prefix.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import utils

utils.import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402

HPARAMS_FILE = "dcgan.json"        # the model's hyper-parameters, beside its checkpoints
CHECKPOINT_NAME = "DCGAN.model"     # the original's checkpoint prefix: DCGAN.model-STEP
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # present in TF2 checkpoints only
STATE_FILE = "checkpoint"           # names the newest checkpoint, in both formats
HPARAM_KEYS = ("image_size", "z_dim", "gf_dim", "df_dim", "c_dim")  # what dcgan.json may hold


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


def no_checkpoint_message(checkpoint_dir: str | os.PathLike) -> str:
    """Why there is nothing to load in checkpoint_dir, and what was expected there."""
    if not os.path.isdir(checkpoint_dir):
        return f"checkpoint folder {checkpoint_dir} does not exist"
    return (f"no checkpoint in {checkpoint_dir}: expected a `{STATE_FILE}` state file naming {CHECKPOINT_NAME}-N, "
            f"with {CHECKPOINT_NAME}-N.index and {CHECKPOINT_NAME}-N.data-* beside it (this port's format or the "
            f"original's TensorFlow 1 format)")


def first_line(error: Exception) -> str:
    text = str(getattr(error, "message", "") or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_hparams(checkpoint_dir: str | os.PathLike) -> dict:
    """The model's hyper-parameters: dcgan.json, or inferred from an original TF1 checkpoint's shapes."""
    json_path = Path(checkpoint_dir) / HPARAMS_FILE
    if json_path.exists():
        keys = ("image_size", "z_dim", "gf_dim", "df_dim")
        try:
            with open(json_path) as handle:
                hparams = json.load(handle)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{json_path}: unreadable ({first_line(error)})") from None
        if not isinstance(hparams, dict) or not all(isinstance(hparams.get(k), int) for k in keys):
            raise CheckpointError(f"{json_path}: expected integers {', '.join(keys)} (and c_dim)")
        unknown = sorted(set(hparams) - set(HPARAM_KEYS))
        if unknown:
            raise CheckpointError(f"{json_path}: unknown key {unknown[0]!r} (expected {', '.join(HPARAM_KEYS)})")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hparams.values()):
            raise CheckpointError(f"{json_path}: every value must be a positive integer")
        if not utils.is_valid_image_size(hparams["image_size"]):
            raise CheckpointError(f"{json_path}: image_size must be a power of two >= 8, not {hparams['image_size']}")
        return hparams
    path = latest_checkpoint(checkpoint_dir)
    if path is None:
        raise CheckpointError(no_checkpoint_message(checkpoint_dir))
    try:
        shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(error)})") from None
    return infer_hparams(shapes, path)


def infer_hparams(shapes: dict, path: str = "checkpoint") -> dict:
    """Hyper-parameters from the variable shapes of an original (TF1) checkpoint."""
    try:
        z_dim, start_units = shapes["generator/g_h0_lin/Matrix"]
        _, _, c_dim, df_dim = shapes["discriminator/d_h0_conv/w"]
        _, _, _, start_channels = shapes["generator/g_h1/w"]
    except KeyError as missing:
        raise CheckpointError(f"{path}: not a DCGAN checkpoint (no variable {missing})") from None
    layers = sum(1 for name in shapes if name.startswith("generator/g_h") and name.endswith("/w"))
    start_size = int(round(math.sqrt(start_units // start_channels)))
    return dict(image_size=start_size * 2 ** layers, z_dim=z_dim, gf_dim=start_channels // 2 ** (layers - 1),
                df_dim=df_dim, c_dim=c_dim)


# ----------------------------------------------------------------------------
