"""Run by tests/test_distribute.py in a fresh process: the CPU split into two logical
devices (DCGAN_LOGICAL_CPUS=2, which must happen before TensorFlow initialises them)
and a MirroredStrategy over them, compared with one device.

    python tests/distribute_worker.py OUT_DIR

Writes OUT_DIR/results.json and two checkpoints (OUT_DIR/default, OUT_DIR/mirrored).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DCGAN_LOGICAL_CPUS"] = "2"
from dcgan_completion import runtime  # noqa: E402

runtime.start()  # as the scripts start TensorFlow (no device initialised yet)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import model as M  # noqa: E402
from dcgan_completion import distribute  # noqa: E402
from dcgan_completion.completion import engine as completion  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402
from dcgan_completion.completion.settings import CompletionSettings  # noqa: E402

HPARAMS = dict(image_size=16, z_dim=8, gf_dim=4, df_dim=4)
BATCH = 8


def values(model) -> dict[str, np.ndarray]:
    """Every variable's value, by its position and name (Adam's slots share names)."""
    return {f"{i:03d} {v.name}": v.numpy() for i, v in enumerate(model.state_variables)}


def replica_copies_identical(strategy, model) -> list[str]:
    """Names of the variables whose copies differ between the replicas."""
    differ = []
    for var in model.state_variables:
        copies = [c.numpy() for c in strategy.experimental_local_results(var)]
        if any(not np.array_equal(copies[0], c) for c in copies[1:]):
            differ.append(var.name)
    return differ


def main(out: Path) -> None:
    strategy = distribute.make_strategy("mirrored")
    results: dict = {"replicas": strategy.num_replicas_in_sync,
                     "devices": list(strategy.extended.worker_devices)}
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (BATCH, 16, 16, 3)).astype(np.float32))

    # One training step on one device and under the strategy: same seed, so same weights and z.
    single = M.DCGAN(**HPARAMS, seed=7)
    with strategy.scope():
        mirrored = M.DCGAN(**HPARAMS, seed=7)
    before = values(single)
    out_single = single.train_step(images)
    out_mirrored = mirrored.train_step(images)
    results["losses"] = {k: [float(out_single[k]), float(out_mirrored[k])] for k in M.LOSS_NAMES}
    results["z_max_diff"] = float(np.abs(out_single["z"].numpy() - out_mirrored["z"].numpy()).max())
    results["d_max_diff"] = float(np.abs(out_single["d"].numpy() - out_mirrored["d"].numpy()).max())
    after_single, after_mirrored = values(single), values(mirrored)
    results["variables"] = {
        name: dict(diff=float(np.abs(after_single[name].astype(np.float64) - after_mirrored[name]).max()),
                   moved=float(np.abs(after_single[name].astype(np.float64) - before[name]).max()))
        for name in after_single}
    results["replica_copies_differ"] = replica_copies_identical(strategy, mirrored)
    results["mirrored_types"] = sorted({type(v).__name__ for v in mirrored.state_variables})

    # Checkpoints across strategies: mirrored -> one device and one device -> mirrored.
    mirrored.save(out / "mirrored")
    single.save(out / "default")
    loaded = M.DCGAN.from_checkpoint(out / "mirrored")
    results["mirrored_to_default"] = max(float(np.abs(v - after_mirrored[k]).max()) for k, v in values(loaded).items())
    with strategy.scope():
        loaded = M.DCGAN.from_checkpoint(out / "default")
    results["default_to_mirrored"] = max(
        float(np.abs(c.numpy() - after_single[f"{i:03d} {v.name}"]).max())
        for i, v in enumerate(loaded.state_variables) for c in strategy.experimental_local_results(v))

    # bfloat16 under the strategy: a training step and a short completion.
    with strategy.scope():
        bf16 = M.DCGAN(**HPARAMS, seed=7, compute_dtype="bfloat16")
    out_bf16 = bf16.train_step(images)
    settings = CompletionSettings(approach="momentum", n_iter=3, out_interval=3, batch_size=BATCH, seed=0,
                                  weighted_mask=False)
    masks = np.broadcast_to(masking.make_mask("center", 16)[..., :1], (BATCH, 16, 16, 1))
    completed = completion.CompletionEngine(bf16, settings).complete(images.numpy(), masks, record=True)
    losses, fake = completed.losses, completed.fill
    results["bf16"] = dict(
        losses=[float(out_bf16[k]) for k in M.LOSS_NAMES],
        variable_dtypes=sorted({v.dtype.name for v in bf16.state_variables}),
        completion_losses=losses.tolist(), completion_dtypes=[losses.dtype.name, fake.dtype.name],
        step=int(bf16.step.numpy()), replica_copies_differ=replica_copies_identical(strategy, bf16))
    (out / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
