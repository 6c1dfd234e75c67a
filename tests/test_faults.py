"""Every class of bad input and fault, for every script: each ends in exactly one `error:` line
that names the path (or the flag, or the variable), exit code 2, no traceback, and a checkpoint
that existed before is unchanged and still loads.

Classes: every path flag (missing, a file where a folder is meant, under a file, not writable),
every file the scripts read (corrupt and empty images and masks, a corrupt landmark model, a
truncated checkpoint, bad dcgan.json, a state file naming nothing), bad numbers, bad environment
variables, a full disk while saving, kill -9 during training and saving, clashing output names.
Nearly all cases call a script's main() in this process; subprocesses only where a process must
die (kill -9) or a pool could hang.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import align_faces
import complete
import convert_checkpoint
import simple_distributions
import train_dcgan
import utils
from model import DCGAN
from utils import unique_names

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
TINY = ["--image_size", "8", "--gf_dim", "4", "--df_dim", "4", "--z_dim", "4", "--batch_size", "4", "--seed", "0"]


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------

def fails(main, argv, capsys, *names, code: int = 2) -> str:
    """Run main(argv); it must exit with `code` and one `error:` line naming every one of `names`."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert exit_.value.code == code, err
    assert "Traceback" not in err + out
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    for name in names:
        assert str(name) in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_intact(folder: Path, before: dict, step: int) -> None:
    """The checkpoint folder holds exactly the files it held, byte for byte, and loads."""
    assert snapshot(folder) == before
    assert int(DCGAN.from_checkpoint(folder).step) == step


def make_images(folder: Path, count: int, size: int = 8, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A small tmpfs at path (needs root); the test is skipped where it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Shared inputs: tiny images, a checkpoint of the tiny model (step 5), a file, a read-only folder."""
    root = tmp_path_factory.mktemp("faults")
    make_images(root / "data", 8)
    (root / "file").write_text("a file, not a folder\n")
    (root / "broken.png").write_text("not an image\n")
    (root / "empty.png").write_bytes(b"")
    model = DCGAN(image_size=8, z_dim=4, gf_dim=4, df_dim=4, seed=0)
    model.save(root / "ckpt", step=5)
    return root


@pytest.fixture(scope="module")
def read_only(base) -> Path:
    """A folder that no one may write, root included: a read-only tmpfs (chmod where not root)."""
    if os.geteuid() != 0:
        folder = base / "read_only"
        folder.mkdir(exist_ok=True)
        folder.chmod(0o555)
        yield folder
        return
    with tmpfs(base / "read_only", "ro,size=64k") as folder:
        yield folder


@pytest.fixture
def ckpt(base, tmp_path) -> tuple[Path, dict]:
    """A copy of the step-5 checkpoint, and its files as they were."""
    folder = shutil.copytree(base / "ckpt", tmp_path / "ckpt")
    return folder, snapshot(folder)


def bad_place(base: Path, read_only: Path | None, kind: str) -> Path:
    places = {"file": lambda: base / "file", "under_file": lambda: base / "file" / "sub",
              "read_only": lambda: read_only, "under_read_only": lambda: read_only / "sub"}
    return places[kind]()


# ----------------------------------------------------------------------------
# Path flags
# ----------------------------------------------------------------------------

PLACES = ("file", "under_file", "read_only", "under_read_only")


@pytest.mark.parametrize("flag", ["--checkpoint_dir", "--sample_dir", "--log_dir"])
@pytest.mark.parametrize("kind", PLACES)
def test_train_output_places(base, read_only, ckpt, tmp_path, capsys, flag, kind):
    folder, before = ckpt
    dirs = {"--checkpoint_dir": folder, "--sample_dir": tmp_path / "s", "--log_dir": tmp_path / "l"}
    dirs[flag] = bad = bad_place(base, read_only, kind)
    argv = [*TINY, "--dataset", base / "data", *[x for pair in dirs.items() for x in pair]]
    fails(train_dcgan.main, argv, capsys, bad)
    assert_intact(folder, before, 5)
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


@pytest.mark.parametrize("kind", ["missing", "file", "under_file"])
def test_train_dataset_place(base, ckpt, tmp_path, capsys, kind):
    folder, before = ckpt
    dataset = {"missing": base / "nowhere", "file": base / "file", "under_file": base / "file" / "sub"}[kind]
    fails(train_dcgan.main, [*TINY, "--dataset", dataset, "--checkpoint_dir", folder], capsys, dataset)
    assert_intact(folder, before, 5)


@pytest.mark.parametrize("kind", PLACES)
def test_complete_output_places(base, read_only, ckpt, capsys, kind):
    folder, before = ckpt
    bad = bad_place(base, read_only, kind)
    fails(complete.main, ["--checkpointDir", folder, "--outDir", bad, base / "data" / "0.png"], capsys, bad)
    assert_intact(folder, before, 5)


@pytest.mark.parametrize("kind", ["missing", "file", "under_file"])
def test_complete_checkpoint_place(base, tmp_path, capsys, kind):
    where = {"missing": base / "nowhere", "file": base / "file", "under_file": base / "file" / "sub"}[kind]
    fails(complete.main, ["--checkpointDir", where, "--outDir", tmp_path / "out", base / "data" / "0.png"], capsys,
          where)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["input_missing", "input_file", *PLACES])
def test_align_places(base, read_only, tmp_path, capsys, kind):
    source, target = base / "data", tmp_path / "aligned"
    if kind == "input_missing":
        source = bad = base / "nowhere"
    elif kind == "input_file":
        source = bad = base / "file"
    else:
        target = bad = bad_place(base, read_only, kind)
    fails(align_faces.main, [source, "align", "innerEyesAndBottomLip", target, "--workers", "1"], capsys, bad)


@pytest.mark.parametrize("kind", ["file", "under_file"])
def test_other_scripts_output_places(base, ckpt, capsys, kind):
    bad = bad_place(base, None, kind)
    fails(simple_distributions.main, ["--outDir", bad], capsys, bad)
    folder, before = ckpt
    fails(convert_checkpoint.main, [folder, bad], capsys, bad)
    assert_intact(folder, before, 5)


# ----------------------------------------------------------------------------
# Files the scripts read
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"not an image\n"], ids=["empty", "corrupt"])
def test_train_dataset_of_unreadable_images(tmp_path, ckpt, capsys, content):
    folder, before = ckpt
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        (data / f"{i}.png").write_bytes(content)
    fails(train_dcgan.main, [*TINY, "--dataset", data, "--checkpoint_dir", folder, "--sample_dir", tmp_path / "s",
                             "--log_dir", tmp_path / "l"], capsys, data)
    assert_intact(folder, before, 5)


@pytest.mark.parametrize("name", ["broken.png", "empty.png", "missing.png"])
def test_complete_unreadable_mask_and_images(base, ckpt, tmp_path, capsys, name):
    folder, before = ckpt
    common = ["--checkpointDir", folder, "--outDir", tmp_path / "out"]
    fails(complete.main, [*common, "--mask", base / name, base / "data" / "0.png"], capsys, base / name)
    fails(complete.main, [*common, base / name], capsys, base / name)  # the only input
    assert_intact(folder, before, 5)


def test_corrupt_landmark_model_in_process(base, tmp_path, capsys):
    model = tmp_path / "predictor.dat"
    model.write_bytes(b"not a dlib model" * 64)
    fails(align_faces.main, [base / "data", "align", "innerEyesAndBottomLip", tmp_path / "out", "--workers", "1",
                             "--dlibFacePredictor", model], capsys, model)


def test_corrupt_landmark_model_with_a_pool_of_workers(base, tmp_path):
    """Every worker fails to load the model: one error, not a pool restarting workers forever."""
    model = tmp_path / "predictor.dat"
    model.write_bytes(b"not a dlib model" * 64)
    done = subprocess.run([sys.executable, "align_faces.py", str(base / "data"), "align", "innerEyesAndBottomLip",
                           str(tmp_path / "out"), "--workers", "2", "--dlibFacePredictor", str(model)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and str(model) in errors[0], done.stderr[-2000:]


def truncate_data(folder: Path) -> None:
    (data,) = folder.glob("DCGAN.model-5.data-*")
    data.write_bytes(data.read_bytes()[:100])


BAD_JSON = {"image_size_12": '{"image_size": 12, "z_dim": 4, "gf_dim": 4, "df_dim": 4, "c_dim": 3}',
            "unknown_key": '{"image_size": 8, "z_dim": 4, "gf_dim": 4, "df_dim": 4, "c_dim": 3, "colour": 1}',
            "not_json": "image_size = 8\n",
            "zero_width": '{"image_size": 8, "z_dim": 4, "gf_dim": 0, "df_dim": 4}'}


@pytest.mark.parametrize("case", ["truncated", "state_names_nothing", *BAD_JSON])
def test_bad_checkpoint_files(base, ckpt, tmp_path, capsys, case):
    folder, _ = ckpt
    if case == "truncated":
        truncate_data(folder)
        named = folder / "DCGAN.model-5"
    elif case == "state_names_nothing":
        (folder / "checkpoint").write_text('model_checkpoint_path: "DCGAN.model-77"\n')
        named = folder / "checkpoint"
    else:
        (folder / "dcgan.json").write_text(BAD_JSON[case])
        named = folder / "dcgan.json"
    before = snapshot(folder)
    fails(complete.main, ["--checkpointDir", folder, "--outDir", tmp_path / "out", base / "data" / "0.png"], capsys,
          named)
    fails(train_dcgan.main, ["--dataset", base / "data", "--checkpoint_dir", folder, "--sample_dir", tmp_path / "s",
                             "--log_dir", tmp_path / "l", "--batch_size", "4"], capsys, named)
    assert snapshot(folder) == before  # the broken checkpoint is left for the user to look at


# ----------------------------------------------------------------------------
# Numbers and environment
# ----------------------------------------------------------------------------

NUMBERS = [
    (train_dcgan, ["--learning_rate", "-1"]), (train_dcgan, ["--learning_rate", "0"]),
    (train_dcgan, ["--learning_rate", "nan"]), (train_dcgan, ["--beta1", "1"]), (train_dcgan, ["--beta1", "-0.1"]),
    (train_dcgan, ["--batch_size", "0"]), (train_dcgan, ["--epoch", "-2"]), (train_dcgan, ["--train_size", "0"]),
    (train_dcgan, ["--time_limit", "0"]), (train_dcgan, ["--z_dim", "0"]), (train_dcgan, ["--image_size", "12"]),
    (complete, ["--lr", "0"]), (complete, ["--beta2", "1.5"]), (complete, ["--eps", "-1e-8"]),
    (complete, ["--momentum", "1"]), (complete, ["--lam", "-0.1"]), (complete, ["--centerScale", "0.6"]),
    (complete, ["--nIter", "0"]), (complete, ["--hmcEps", "0"]), (complete, ["--imgSize", "-64"]),
    (align_faces, ["--size", "0"]), (align_faces, ["--workers", "0"]), (align_faces, ["--upsample", "-1"]),
]


@pytest.mark.parametrize("script, flag", NUMBERS, ids=[f"{s.__name__}{f[0]}={f[1]}" for s, f in NUMBERS])
def test_bad_numbers(base, ckpt, tmp_path, capsys, script, flag):
    folder, before = ckpt
    positional = {"train_dcgan": [], "complete": [base / "data" / "0.png"],
                  "align_faces": [base / "data", "align", "innerEyesAndBottomLip", tmp_path / "out"]}[script.__name__]
    line = fails(script.main, [*positional, *flag], capsys, flag[0])
    assert "argument" in line
    assert_intact(folder, before, 5)


@pytest.mark.parametrize("value", ["x", "0", "-2"])
def test_bad_logical_cpus_variable(base, ckpt, tmp_path, capsys, monkeypatch, value):
    folder, before = ckpt
    monkeypatch.setenv("DCGAN_LOGICAL_CPUS", value)
    fails(complete.main, ["--checkpointDir", folder, "--outDir", tmp_path / "out", base / "data" / "0.png"], capsys,
          f"DCGAN_LOGICAL_CPUS={value}")
    fails(train_dcgan.main, [*TINY, "--dataset", base / "data", "--checkpoint_dir", folder], capsys,
          f"DCGAN_LOGICAL_CPUS={value}")
    assert_intact(folder, before, 5)


# ----------------------------------------------------------------------------
# Faults while training: a full disk, a failing sample grid, kill -9
# ----------------------------------------------------------------------------

def test_full_disk_while_saving_a_checkpoint(base, tmp_path, capsys):
    """A 3 MiB tmpfs as --checkpoint_dir, filled up but for 60 kB after its first checkpoint."""
    with tmpfs(tmp_path / "disk", "size=3m") as disk:
        folder = disk / "ckpt"
        shutil.copytree(base / "ckpt", folder)
        before = snapshot(folder)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * (free - 60_000))
        line = fails(train_dcgan.main, [*TINY, "--dataset", base / "data", "--checkpoint_dir", folder, "--epoch", "4",
                                        "--sample_dir", tmp_path / "s", "--log_dir", tmp_path / "l"], capsys, folder)
        assert "no space left" in line
        assert_intact(folder, before, 5)  # nothing of the failed save is left behind either


def test_a_failing_final_sample_grid_keeps_the_final_checkpoint(base, tmp_path, capsys, monkeypatch):
    def no_space(path, images, rows=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(utils, "save_grid", no_space)
    folder = tmp_path / "ckpt"
    fails(train_dcgan.main, [*TINY, "--dataset", base / "data", "--checkpoint_dir", folder, "--epoch", "1",
                             "--sample_every", "1000", "--save_every", "1000", "--sample_dir", tmp_path / "s",
                             "--log_dir", tmp_path / "l"], capsys, tmp_path / "s")
    assert int(DCGAN.from_checkpoint(folder).step) == 2  # the last step's checkpoint, saved before the grid


def wait_for(condition, process, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            raise AssertionError(f"training ended early with code {process.returncode}")
        time.sleep(0.002)
    return False


def test_kill_9_while_training_and_saving_then_resume(base, tmp_path, capsys):
    """Saving after every step, killed (1) while a checkpoint is being written (its _temp folder
    exists) and (2) just after a save named its checkpoint in the state file, while older ones
    are being deleted: each time the folder loads, and training resumes from it."""
    folder = tmp_path / "ckpt"
    command = [sys.executable, "train_dcgan.py", *TINY, "--epoch", "100000", "--save_every", "1",
               "--sample_every", "1000000", "--dataset", str(base / "data"), "--checkpoint_dir", str(folder),
               "--sample_dir", str(tmp_path / "s"), "--log_dir", str(tmp_path / "l")]

    def saving() -> bool:
        return (folder / "checkpoint").exists() and any(p.name.endswith("_temp") for p in os.scandir(folder))

    def just_saved(previous: str) -> bool:
        state = folder / "checkpoint"
        return state.exists() and state.read_text() != previous

    steps = []
    for moment in ("saving", "just_saved"):
        process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if moment == "saving":
                assert wait_for(saving, process), "no save seen in progress"
            else:
                previous = (folder / "checkpoint").read_text()
                assert wait_for(lambda: just_saved(previous), process), "no new checkpoint seen"
        finally:
            process.kill()  # SIGKILL: no handler runs
            process.wait()
            process.stderr.close()
        steps.append(int(DCGAN.from_checkpoint(folder).step))
        assert steps[-1] >= 1
    assert steps[1] >= steps[0]
    epochs = steps[1] // 2 + 2  # 2 steps per epoch: at least one more step to train
    assert train_dcgan.main([*command[2:command.index("--epoch")], "--epoch", str(epochs),
                             *command[command.index("--save_every"):]]) == 0
    out = capsys.readouterr().out
    assert f"Resuming from {folder / f'DCGAN.model-{steps[1]}'} at step {steps[1]}" in out
    assert int(DCGAN.from_checkpoint(folder).step) == 2 * epochs


# ----------------------------------------------------------------------------
# Clashing output names
# ----------------------------------------------------------------------------

def test_clashing_output_names():
    paths = ["a/im0.png", "b/im0.png", "c/im0_1.png", "d/IM0.jpg", "e/im0_2.png"]
    names = unique_names([Path(path).stem for path in paths])
    assert len({n.casefold() for n in names}) == 5
    assert names[0] == "im0" and names[2] == "im0_1" and names[4] == "im0_2"  # own names kept where free
