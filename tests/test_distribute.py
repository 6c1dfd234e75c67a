"""tf.distribute training and completion, mixed precision, on the CPU.

The mirrored tests split the CPU into two logical devices, which TensorFlow allows only
before it initialises its devices: they run in fresh processes (tests/distribute_worker.py,
train_dcgan.py, complete.py with DCGAN_LOGICAL_CPUS=2), not in this one.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
LEARNING_RATE = 0.0002
# Conv and linear biases that feed a batch norm: their true gradient is zero (the norm
# subtracts them), so theirs is rounding noise, which Adam's first steps turn into steps
# of up to the learning rate, of either sign, on one device as on two. The moving means
# of those norms see the biases of the later calls, so they inherit that difference.
# Elsewhere Adam's step lr * m / sqrt(v) still magnifies rounding where a gradient element
# is near zero: a tolerance of 5% of how far a variable moved (oneDNN's kernels block a batch of 4
# per replica otherwise than one of 8: G's middle weights then moved 1.2-1.5% apart; with TensorFlow's
# own kernels, 0%).
BIASES_BEFORE_BN = ("g_h0_lin/bias", "g_h1/biases", "g_h2/biases", "g_h3/biases", "d_h1_conv/biases",
                    "d_h2_conv/biases", "d_h3_conv/biases")  # at 16x16: four layers per network


def run(args, env=None, timeout=400, cwd=ROOT):  # a hang guard, not a speed test: loaded CI machines are slow
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """One training step on one device and over two logical CPUs, checkpoints, bfloat16."""
    out = tmp_path_factory.mktemp("distribute")
    result = run([ROOT / "tests" / "distribute_worker.py", out])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out


def test_two_replicas_on_two_logical_cpus(mirrored):
    results, _ = mirrored
    assert results["replicas"] == 2
    assert results["devices"][0].endswith("CPU:0") and results["devices"][1].endswith("CPU:1")
    assert results["mirrored_types"] == ["MirroredVariable"]  # everything created under the scope


def test_mirrored_step_gives_the_one_device_losses_and_variables(mirrored):
    """Synchronised batch norm and a mean all-reduce: the step of one device on the global batch."""
    results, _ = mirrored
    assert results["z_max_diff"] == 0.0  # the global z, drawn once, split over the replicas
    assert results["d_max_diff"] < 1e-5
    for name, (single, two) in results["losses"].items():
        assert two == pytest.approx(single, rel=1e-5, abs=1e-6), name
    checked = 0
    for name, v in results["variables"].items():
        if any(name.endswith(b + ":0") for b in BIASES_BEFORE_BN):
            assert v["diff"] <= 2 * LEARNING_RATE + 1e-6, name
        elif name.endswith("moving_mean:0"):
            assert v["diff"] <= 4 * LEARNING_RATE, name
        else:
            assert v["diff"] <= 1e-6 + 5e-2 * v["moved"], (name, v)
            checked += v["moved"] > 0
    assert checked >= 20  # weights, batch-norm scales and offsets, moving averages, Adam slots moved alike


def test_replica_copies_stay_identical(mirrored):
    """Adam's raw kernel on each replica's copy, and the moving averages, keep the mirrors equal."""
    results, _ = mirrored
    assert results["replica_copies_differ"] == []
    assert results["bf16"]["replica_copies_differ"] == []


def test_checkpoints_load_across_strategies(mirrored):
    results, _ = mirrored
    assert results["mirrored_to_default"] == 0.0
    assert results["default_to_mirrored"] == 0.0


def test_bfloat16_step_and_completion_are_finite_with_float32_variables(mirrored):
    bf16 = mirrored[0]["bf16"]
    assert np.all(np.isfinite(bf16["losses"])) and bf16["step"] == 1
    assert bf16["variable_dtypes"] == ["float32", "int64"]
    assert np.all(np.isfinite(bf16["completion_losses"]))
    assert bf16["completion_dtypes"] == ["float32", "float32"]


def test_complete_mirrored_gives_the_one_device_finals(mirrored, tmp_path):
    _, out = mirrored
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images / f"face{i}.png")
    finals = {}
    for strategy in ("default", "mirrored"):
        result = run(["complete.py", "--checkpointDir", out / "default", "--outDir", tmp_path / strategy,
                      "--nIter", "20", "--outInterval", "10", "--batchSize", "4", "--seed", "3",
                      "--strategy", strategy, *sorted(images.iterdir())], env={"DCGAN_LOGICAL_CPUS": "2"})
        assert result.returncode == 0, result.stderr[-3000:]
        finals[strategy] = {p.name: np.asarray(Image.open(p), dtype=int)
                            for p in sorted((tmp_path / strategy / "final").glob("*.png"))}
    assert sorted(finals["default"]) == ["face0.png", "face1.png", "face2.png"]
    assert sorted(finals["mirrored"]) == sorted(finals["default"])
    for name, image in finals["default"].items():
        assert np.abs(image - finals["mirrored"][name]).max() <= 1, name


# -- train_dcgan.py and complete.py under every --strategy and --mixed_precision -------------
# One step of 8 images on each of two replicas would be 4 images each; the dataset is 16 images,
# so each run trains 2 steps (one epoch), writes a sample grid and a checkpoint after each, then
# completes 2 images. At 16x16 with --gf_dim 8 G's widths are 64, 32, 16, 8, 3: in float32 its
# last two layers run "merged", in bfloat16 its first two "phases" (ops.phase_method).

PRECISIONS = ("off", "bfloat16", "float16")  # forced: auto would pick by this machine
PRECISION_LINES = {"off": "precision: float32 (as asked)",
                   "bfloat16": "precision: bfloat16 (variables float32) (as asked)",
                   "float16": "precision: float16 (variables float32) (as asked)"}


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faces")
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def matrix_command(faces: Path, out: Path, strategies: str) -> list:
    return [ROOT / "tests" / "cli_matrix_worker.py", faces, out, strategies, *PRECISIONS]


@pytest.fixture(scope="module")
def one_machine(faces, tmp_path_factory):
    """default and mirrored (two logical CPUs) x every precision, in one process."""
    out = tmp_path_factory.mktemp("one_machine")
    result = run(matrix_command(faces, out, "default,mirrored"), env={"DCGAN_LOGICAL_CPUS": "2"}, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "results-0.json").read_text()), out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_workers(faces, tmp_path_factory):
    """multiworker x every precision: two workers on 127.0.0.1, each in one process, same flags."""
    out = tmp_path_factory.mktemp("two_workers")
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers, logs = [], [open(out / f"log{index}.txt", "w") for index in range(2)]
    try:
        for index in range(2):
            (out / f"tmp{index}").mkdir()
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(out / f"tmp{index}"),
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
            workers.append(subprocess.Popen([sys.executable, *map(str, matrix_command(faces, out, "multiworker"))],
                                            cwd=ROOT, env=env, stdout=logs[index], stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 1800
        while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
            if any(w.poll() not in (None, 0) for w in workers):
                break  # one failed: the other would wait for it in every collective
            time.sleep(0.5)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            w.wait()
        for log in logs:
            log.close()
    tails = "".join((out / f"log{i}.txt").read_text()[-3000:] for i in range(2))
    assert [w.returncode for w in workers] == [0, 0], tails
    return [json.loads((out / f"results-{i}.json").read_text()) for i in range(2)], out


def test_tiny_models_take_the_merged_and_the_phase_paths():
    """What the runs below cover: G's image layers by the merged convolution in float32 (eager, for
    the sample grid, where a MirroredVariable failed), and by phases too in bfloat16."""
    import tensorflow as tf

    import ops
    from dcgan_completion.networks import layouts
    _, widths = layouts.generator_plan(layouts.DEFAULT_LAYOUT, 16, 8, 3)
    assert [ops.phase_method(w, None) for w in widths[1:]] == [None, None, "merged", "merged"]
    assert [ops.phase_method(w, tf.bfloat16) for w in widths[1:]] == ["phases", "phases", "merged", "merged"]


def check_samples(folder: Path) -> None:
    """A grid after each of the two steps: 8x8 faces of 16x16, not black (NaNs), and G moved between them.
    (After two steps the average of G's weights draws a near-flat grey: its tiles vary by less than a grey level.)"""
    from PIL import Image
    paths = sorted((folder / "samples").glob("*.png"))
    assert [p.name for p in paths] == ["train_00_0000.png", "train_00_0001.png"]
    grids = [np.asarray(Image.open(p), dtype=int) for p in paths]
    for grid in grids:
        assert grid.shape[0] == grid.shape[1] >= 8 * 16 and grid.max() > 0
    # G moved between them, or the average still draws its near-flat grey, which bfloat16 (as on AMX)
    # rounds to one grey level in both grids.
    assert np.abs(grids[0] - grids[1]).max() > 0 or max(np.ptp(grid) for grid in grids) <= 2


def check_completion(run: dict, folder: Path, precision: str) -> None:
    from PIL import Image
    assert run["code"] == 0, run
    assert PRECISION_LINES[precision] in run["stdout"]
    finals = sorted((folder / "completed" / "final").glob("*.png"))
    assert [p.name for p in finals] == ["00.png", "01.png"]
    assert all(np.asarray(Image.open(p)).shape == (16, 16, 3) for p in finals)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_train_and_complete_on_one_machine(one_machine, strategy, precision):
    results, out = one_machine
    runs, folder = results[strategy][precision], out / strategy / precision
    train = runs["train"]
    assert train["code"] == 0, train
    assert PRECISION_LINES[precision] in train["stdout"]
    if strategy == "mirrored":
        assert "Training with MirroredStrategy, 2 replica(s): 8 images per step, 4 per replica." in train["stdout"]
    assert "Done: 2 steps; checkpoint in" in train["stdout"]
    assert (folder / "ck" / "DCGAN.model-2.index").exists()
    check_samples(folder)
    check_completion(runs["complete"], folder, precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_train_and_complete_with_two_workers(two_workers, precision):
    """Both workers finish; only the chief writes files (its checkpoints of steps 1 and 2, its
    samples, one event file); the other's temporary checkpoints are gone; the chief's checkpoint
    completes in a plain (default strategy) model."""
    (chief, other), out = two_workers
    folder = out / "multiworker" / precision
    train = chief["multiworker"][precision]["train"]
    assert train["code"] == 0, train
    assert PRECISION_LINES[precision] in train["stdout"]
    assert "2 replica(s), worker 0 of 2 workers: 8 images per step, 4 per replica." in train["stdout"]
    assert "Done: 2 steps; checkpoint in" in train["stdout"]
    second = other["multiworker"][precision]["train"]
    assert second["code"] == 0 and "worker 1 of 2 workers" in second["stdout"], second
    assert "Done: 2 steps (this worker writes no files; the chief does)." in second["stdout"]
    assert sorted(p.name for p in (folder / "ck").iterdir()) == [
        "DCGAN.model-1.data-00000-of-00001", "DCGAN.model-1.index", "DCGAN.model-2.data-00000-of-00001",
        "DCGAN.model-2.index", "checkpoint", "dcgan.json"]
    check_samples(folder)
    assert len(list((folder / "logs").iterdir())) == 1
    assert list((out / "tmp1").iterdir()) == []
    assert "complete" not in other["multiworker"][precision]
    check_completion(chief["multiworker"][precision]["complete"], folder, precision)


def test_loss_scale_skips_non_finite_steps_and_grows():
    """float16's dynamic loss scaling, in this process (no device split needed)."""
    import tensorflow as tf

    from dcgan_completion import distribute
    from model import Adam
    var = tf.Variable([1.0, 2.0])
    adam = Adam([var], learning_rate=0.1, beta1=0.5)
    scale = distribute.LossScale(initial=8.0, growth_interval=2)
    assert not bool(scale.apply(adam, [var], [tf.constant([np.inf, 1.0])]))
    assert var.numpy().tolist() == [1.0, 2.0] and int(adam.iterations) == 0 and float(scale.scale) == 4.0
    assert bool(scale.apply(adam, [var], [tf.constant([4.0, -4.0])]))  # unscaled: [1, -1]
    np.testing.assert_allclose(var.numpy(), [0.9, 2.1], rtol=1e-5)
    assert float(scale.scale) == 4.0 and int(scale.good_steps) == 1
    scale.apply(adam, [var], [tf.constant([4.0, -4.0])])
    assert float(scale.scale) == 8.0 and int(scale.good_steps) == 0 and int(adam.iterations) == 2


def test_float32_layers_do_not_cast():
    """Without a compute dtype, nothing in G or D is cast to or from a half-precision type."""
    import tensorflow as tf

    from model import DCGAN
    model = DCGAN(image_size=8, z_dim=4, gf_dim=4, df_dim=4, seed=0)
    graph = tf.function(lambda z: model.discriminator(model.generator(z, True), True)).get_concrete_function(
        tf.TensorSpec([2, 4], tf.float32)).graph
    low = (tf.float16, tf.bfloat16)
    assert not [op for op in graph.get_operations()
                if op.type == "Cast" and (op.get_attr("SrcT") in low or op.get_attr("DstT") in low)]
    half = DCGAN(image_size=8, z_dim=4, gf_dim=4, df_dim=4, seed=0, compute_dtype="bfloat16")
    graph = tf.function(lambda z: half.discriminator(half.generator(z, True), True)).get_concrete_function(
        tf.TensorSpec([2, 4], tf.float32)).graph
    assert [op for op in graph.get_operations() if op.type == "Conv2D"][0].get_attr("T") == tf.bfloat16


def test_explicit_precision_is_kept_and_unknown_is_refused(tmp_path):
    from dcgan_completion import distribute, runtime
    for asked in ("off", "float16", "bfloat16"):
        assert distribute.choose_precision(asked) == (asked, "as asked")
    for refused in ("float8", "auto"):  # auto is measured (auto_precision), never decided here
        with pytest.raises(ValueError, match=refused):
            distribute.choose_precision(refused)
    assert runtime.cpu_info(str(tmp_path / "missing")) == ("", set())
    assert distribute.precision_line("off", "as asked") == "precision: float32 (as asked)"
