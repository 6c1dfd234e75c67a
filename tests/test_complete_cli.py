"""complete.py end to end: every output file, known pixels kept exactly, batches,
blending, the weighted mask, the three approaches, zCandidates, user masks and bad inputs.

Each CLI run is a subprocess (TensorFlow start-up dominates, so the runs are few and tiny,
and they run a few at a time in the background while the checks proceed). A handful of
error paths that only need main() run in-process.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402

SIZE, Z_DIM, GAIN = 16, 16, 10.0
COMMON = ["--seed", "0", "--lr", "0.002"]
A_IMAGES = ["a/im0.png", "a/im1.png", "a/im2.png"]

# name -> (arguments after the checkpoint and output folder, input files)
ARTICLE = ["--approach", "momentum", "--no-weightedMask", "--blend", "none"]  # the article's completion
RUNS = {
    "base": (["--nIter", "4", "--outInterval", "2", *ARTICLE], A_IMAGES),
    "multi": (["--batchSize", "2", "--nIter", "3", "--outInterval", "2"],
              A_IMAGES + ["big.png", "bad.png", "b/im0.png", "c/im0_1.png"]),
    "poisson": (["--nIter", "4", "--outInterval", "2", *ARTICLE, "--blend", "poisson"], A_IMAGES),
    "weighted": (["--nIter", "4", "--outInterval", "2", *ARTICLE, "--weightedMask"], A_IMAGES),
    "adam_lowres": (["--nIter", "2", "--outInterval", "1", "--approach", "adam", "--maskType", "lowres"],
                    A_IMAGES),
    "hmc": (["--nIter", "2", "--outInterval", "2", "--approach", "hmc", "--hmcL", "2", "--zCandidates", "4",
             "--maskType", "random"], A_IMAGES),
    "usermask": (["--nIter", "2", "--outInterval", "2", "--blend", "none", "--mask", "user_mask.png"], A_IMAGES[:2]),
    "no_checkpoint": (["--checkpointDir", "empty_ckpt"], A_IMAGES[:1]),
    "img_size": (["--imgSize", "32"], A_IMAGES[:1]),
    "mask_not_image": (["--mask", "bad.png"], A_IMAGES[:1]),
}

# test -> the runs it reads; only the runs of the selected tests are started.
NEEDS = {
    "test_single_batch_writes_every_output": ["base"],
    "test_several_batches_bad_file_and_same_stems": ["multi"],
    "test_poisson_blend_and_weighted_mask_change_only_the_hole": ["base", "poisson", "weighted"],
    "test_adam_with_lowres_mask": ["adam_lowres"],
    "test_hmc_with_z_candidates_and_random_mask": ["hmc"],
    "test_user_mask_hole_is_filled": ["usermask"],
    "test_no_checkpoint": ["no_checkpoint"],
    "test_image_size_disagrees_with_checkpoint": ["img_size"],
    "test_mask_that_is_not_an_image": ["mask_not_image"],
}


def make_checkpoint(folder: Path) -> None:
    """A tiny untrained DCGAN whose generator depends on z (weights x GAIN; see test_completion)."""
    from model import DCGAN
    model = DCGAN(image_size=SIZE, gf_dim=8, df_dim=8, z_dim=Z_DIM, seed=7)
    for var in model.generator.trainable_variables:
        if var.name.split("/")[-1].split(":")[0] in ("w", "Matrix"):
            var.assign(var * GAIN)
    model.save(folder)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Inputs and the checkpoint: 16x16 PNGs in a/, b/ and c/ (b/im0.png shares a/im0.png's stem; c/im0_1.png
    has the name a repeat of im0 would first get),
    one 20x20 PNG, one text file named .png, a user mask, an empty checkpoint folder."""
    root = tmp_path_factory.mktemp("complete_cli")
    rng = np.random.default_rng(0)
    for name in A_IMAGES + ["b/im0.png", "c/im0_1.png"]:
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / name)
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "big.png")
    (root / "bad.png").write_text("this is not an image\n")
    user = np.full((32, 32), 255, np.uint8)
    user[2:12, 16:30] = 0  # a hole in the top right, not one of the built-in masks
    Image.fromarray(user, "L").save(root / "user_mask.png")
    for name, value in (("black_mask.png", 0), ("white_mask.png", 255)):
        Image.fromarray(np.full((SIZE, SIZE), value, np.uint8), "L").save(root / name)
    (root / "empty_ckpt").mkdir()
    make_checkpoint(root / "ckpt")
    return root


@pytest.fixture(scope="module")
def runs(work, request):
    """Start the selected tests' CLI runs, three at a time; each test waits for its own."""
    selected = {item.originalname for item in request.session.items if item.module.__name__ == __name__}
    wanted = [name for name in RUNS if any(name in NEEDS.get(test, ()) for test in selected)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

    def launch(name):
        extra, inputs = RUNS[name]
        command = [sys.executable, str(ROOT / "complete.py"), "--checkpointDir", str(work / "ckpt"),
                   "--outDir", str(work / f"out_{name}"), *COMMON]
        command += [str(work / a) if a.endswith(".png") or a == "empty_ckpt" else a for a in extra]
        command += [str(work / p) for p in inputs]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    pool = ThreadPoolExecutor(max_workers=3)
    futures = {name: pool.submit(launch, name) for name in wanted}
    yield futures
    pool.shutdown(wait=True)


def result(runs, name) -> subprocess.CompletedProcess:
    return runs[name].result()


def ok(runs, name) -> subprocess.CompletedProcess:
    done = result(runs, name)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return done


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------

def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def inputs(work: Path, names) -> np.ndarray:
    """The inputs as the CLI sees them: uint8, resized to SIZE."""
    return np.stack([utils.resize(utils.read_rgb(work / n), SIZE) for n in names])


def tiles(grid: np.ndarray, count: int) -> np.ndarray:
    """Undo make_grid: 8 columns (fewer for fewer images), rows = ceil(count / 8), as the original's save_images."""
    cols = min(8, count)
    rows = math.ceil(count / cols)
    assert grid.shape == (rows * SIZE, cols * SIZE, 3)
    return np.stack([grid[(k // cols) * SIZE:(k // cols + 1) * SIZE, (k % cols) * SIZE:(k % cols + 1) * SIZE]
                     for k in range(count)])


def frame_names(n_iter: int, interval: int) -> list[str]:
    return [f"{i:04d}.png" for i in sorted(set(range(0, n_iter, interval)) | {n_iter})]


def check_batch_outputs(folder: Path, images: np.ndarray, mask: np.ndarray, n_iter: int, interval: int,
                        lowres: bool = False) -> None:
    """The original's outputs of one batch, and known pixels kept exactly."""
    count, known = len(images), mask[:, :, 0] > 0.5
    np.testing.assert_array_equal(tiles(read(folder / "before.png"), count), images)
    # The hole is grey (0 in [-1, 1]), as in the original's masked.png.
    np.testing.assert_array_equal(tiles(read(folder / "masked.png"), count), np.where(mask > 0.5, images, 128))
    names = frame_names(n_iter, interval)
    lowres_names = [name.replace(".png", ".lowres.png") for name in names] if lowres else []
    assert sorted(p.name for p in (folder / "hats_imgs").iterdir()) == sorted(names + lowres_names)
    for name in lowres_names:  # G(z)'s 8x8 block means, blown up, as the original's NNNN.lowres.png
        hats = tiles(read(folder / "hats_imgs" / name.replace(".lowres", "")), count).astype(np.float64)
        blown = np.repeat(np.repeat(masking.block_mean(hats), 8, axis=1), 8, axis=2)
        assert np.abs(tiles(read(folder / "hats_imgs" / name), count) - blown).max() <= 1.01
    assert sorted(p.name for p in (folder / "completed").iterdir()) == names
    for name in names:
        completed = tiles(read(folder / "completed" / name), count)
        hats = tiles(read(folder / "hats_imgs" / name), count)
        np.testing.assert_array_equal(completed[:, known], images[:, known])   # known pixels exact
        np.testing.assert_array_equal(completed[:, ~known], hats[:, ~known])   # the hole is G(z)
    frames = iio.imread(folder / "completion.gif", index=None)
    assert frames.shape[0] == len(names)
    logs = sorted(p.name for p in (folder / "logs").iterdir())
    assert logs == [f"hats_{k:02d}.log" for k in range(count)]
    for log in logs:
        lines = (folder / "logs" / log).read_text().splitlines()
        assert lines[0] == "iter loss " + " ".join(f"z{k}" for k in range(Z_DIM))  # the original's header
        lines = lines[1:]
        assert len(lines) == n_iter
        for i, line in enumerate(lines):
            fields = line.split()
            assert len(fields) == 2 + Z_DIM and int(fields[0]) == i
            values = [float(f) for f in fields[1:]]
            assert all(math.isfinite(v) for v in values) and all(-1 <= v <= 1 for v in values[1:])


def check_finals(folder: Path, images: np.ndarray, stems, mask: np.ndarray) -> np.ndarray:
    known = mask[:, :, 0] > 0.5
    finals = np.stack([read(folder / "final" / f"{stem}.png") for stem in stems])
    assert sorted(p.name for p in (folder / "final").iterdir()) == sorted(f"{s}.png" for s in stems)
    np.testing.assert_array_equal(finals[:, known], images[:, known])
    return finals


CENTER = masking.make_mask("center", SIZE)


# ----------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------

def test_single_batch_writes_every_output(work, runs):
    done = ok(runs, "base")
    out, images = work / "out_base", inputs(work, A_IMAGES)
    check_batch_outputs(out, images, CENTER, n_iter=4, interval=2)
    finals = check_finals(out, images, ["im0", "im1", "im2"], CENTER)
    # Without blending, final/ is the last completed frame, tile by tile.
    np.testing.assert_array_equal(finals, tiles(read(out / "completed" / "0004.png"), 3))
    assert not (out / "lowres.png").exists() and not list(out.glob("batch_*"))
    assert "warning" not in done.stderr


def test_several_batches_bad_file_and_same_stems(work, runs):
    done = result(runs, "multi")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert str(work / "bad.png") in done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:") and "resized" in line]
    assert len(warnings) == 1 and "big.png" in warnings[0], done.stderr
    out = work / "out_multi"
    good = A_IMAGES + ["big.png", "b/im0.png", "c/im0_1.png"]
    images = inputs(work, good)
    assert sorted(p.name for p in out.glob("batch_*")) == ["batch_000", "batch_001", "batch_002"]
    for number, start in enumerate(range(0, 6, 2)):
        check_batch_outputs(out / f"batch_{number:03d}", images[start:start + 2], CENTER, n_iter=3, interval=2)
    assert not (out / "before.png").exists() and not (out / "completed").exists()
    # b/im0 cannot be im0_1: that is c/im0_1's own name.
    finals = check_finals(out, images, ["im0", "im1", "im2", "big", "im0_2", "im0_1"], CENTER)
    assert np.any(finals[0] != finals[4]) and np.any(finals[4] != finals[5])  # three completions kept apart


def test_poisson_blend_and_weighted_mask_change_only_the_hole(work, runs):
    images, hole = inputs(work, A_IMAGES), CENTER[:, :, 0] < 0.5
    base = check_finals(work / "out_base", images, ["im0", "im1", "im2"], CENTER)
    for name in ("poisson", "weighted"):
        ok(runs, name)
        finals = check_finals(work / f"out_{name}", images, ["im0", "im1", "im2"], CENTER)
        assert np.any(finals[:, hole] != base[:, hole]), name
    check_batch_outputs(work / "out_weighted", images, CENTER, n_iter=4, interval=2)


def test_adam_with_lowres_mask(work, runs):
    ok(runs, "adam_lowres")
    out, images = work / "out_adam_lowres", inputs(work, A_IMAGES)
    mask = masking.make_mask("lowres", SIZE)
    check_batch_outputs(out, images, mask, n_iter=2, interval=1, lowres=True)
    check_finals(out, images, ["im0", "im1", "im2"], mask)
    blocks = masking.block_mean(images.astype(np.float32))
    expected = np.rint(np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)).astype(np.uint8)
    np.testing.assert_array_equal(tiles(read(out / "lowres.png"), 3), expected)


def test_hmc_with_z_candidates_and_random_mask(work, runs):
    ok(runs, "hmc")
    out, images = work / "out_hmc", inputs(work, A_IMAGES)
    mask = masking.make_mask("random", SIZE, rng=np.random.default_rng(0))  # --seed 0
    check_batch_outputs(out, images, mask, n_iter=2, interval=2)
    check_finals(out, images, ["im0", "im1", "im2"], mask)


def test_user_mask_hole_is_filled(work, runs):
    ok(runs, "usermask")
    out, images = work / "out_usermask", inputs(work, A_IMAGES[:2])
    mask = masking.read_mask(work / "user_mask.png", SIZE)
    hole = mask[:, :, 0] < 0.5
    assert hole[1:6, 8:15].all() and hole.sum() == 5 * 7
    check_batch_outputs(out, images, mask, n_iter=2, interval=2)
    finals = check_finals(out, images, ["im0", "im1"], mask)
    hats = tiles(read(out / "hats_imgs" / "0002.png"), 2)
    np.testing.assert_array_equal(finals[:, hole], hats[:, hole])
    assert np.any(finals[:, hole] != images[:, hole])


# ----------------------------------------------------------------------------
# Bad inputs
# ----------------------------------------------------------------------------

def check_error(done, *words) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_no_checkpoint(work, runs):
    check_error(result(runs, "no_checkpoint"), "no checkpoint", str(work / "empty_ckpt"), "train_dcgan.py")
    assert not (work / "out_no_checkpoint").exists()


def test_image_size_disagrees_with_checkpoint(work, runs):
    check_error(result(runs, "img_size"), "--imgSize 32", "16x16")


def test_mask_that_is_not_an_image(work, runs):
    check_error(result(runs, "mask_not_image"), str(work / "bad.png"))


def run_main(argv, capsys) -> str:
    import complete
    with pytest.raises(SystemExit) as exit_:
        complete.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("mask, word", [("black_mask.png", "all black"), ("white_mask.png", "all white")])
def test_useless_mask_in_process(work, capsys, mask, word):
    message = run_main(["--checkpointDir", str(work / "ckpt"), "--outDir", str(work / "unused"),
                        "--mask", str(work / mask), str(work / "a/im0.png")], capsys)
    assert word in message and str(work / mask) in message
    assert not (work / "unused").exists()


def test_bad_inputs_fail_before_auto_measures_the_precision(work, capsys, tmp_path, monkeypatch):
    """auto's first measurement takes seconds: a useless mask, no readable image, an output folder
    that is a file and a missing photo mask are each named before it starts (no precision line,
    nothing cached)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "a_file").write_text("")
    image = str(work / "a/im0.png")
    cases = [(["--mask", str(work / "black_mask.png"), image], "all black"),
             ([str(work / "bad.png")], "no image could be read"),
             (["--outDir", str(tmp_path / "a_file"), image], "is a file"),
             (["--photos", image, "--mask", str(tmp_path / "missing.png")], "does not exist")]
    for argv, words in cases:
        with pytest.raises(SystemExit) as exit_:
            complete_main(["--checkpointDir", str(work / "ckpt"), "--outDir", str(tmp_path / "out"), *argv])
        captured = capsys.readouterr()
        assert exit_.value.code == 2 and words in captured.err, captured.err
        assert "precision:" not in captured.out, captured.out
    assert not (tmp_path / "cache").exists()


def complete_main(argv: list) -> int:
    import complete
    return complete.main(argv)


def test_state_file_naming_a_missing_checkpoint_in_process(work, capsys, tmp_path):
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "DCGAN.model-5"\n')
    message = run_main(["--checkpointDir", str(tmp_path), "--outDir", str(tmp_path / "out"),
                        str(work / "a/im0.png")], capsys)
    assert "DCGAN.model-5" in message


def test_defaults_are_the_measured_best_and_the_article_is_one_flag_set_away():
    import complete
    defaults = complete.parse_args(["x.png"])
    assert (defaults.approach, defaults.weightedMask, defaults.blend, defaults.lr) == ("adam", True, "poisson", 0.01)
    article = complete.parse_args(["x.png", *ARTICLE])
    assert (article.approach, article.weightedMask, article.blend, article.momentum) == ("momentum", False, "none",
                                                                                          0.9)


def test_every_flag_reaches_its_setting_and_the_defaults_are_the_settings():
    import complete
    from dcgan_completion.completion.settings import CompletionSettings, OutputSettings
    assert complete.settings_from_args(complete.parse_args(["x.png"])) == (CompletionSettings(), OutputSettings())
    flags = ["--approach", "hmc", "--nIter", "7", "--lr", "0.5", "--momentum", "0.25", "--beta1", "0.5",
             "--beta2", "0.75", "--eps", "0.125", "--hmcBeta", "0.3", "--hmcEps", "0.04", "--hmcL", "9",
             "--hmcAnneal", "0.95", "--lam", "0.03", "--outInterval", "4", "--batchSize", "5", "--seed", "11",
             "--no-weightedMask", "--zCandidates", "6", "--maskType", "lowres", "--xla", "--outDir", "o",
             "--blend", "none", "x.png"]
    settings, output = complete.settings_from_args(complete.parse_args(flags))
    assert settings == CompletionSettings(
        approach="hmc", n_iter=7, lr=0.5, momentum=0.25, beta1=0.5, beta2=0.75, eps=0.125, hmc_beta=0.3,
        hmc_eps=0.04, hmc_l=9, hmc_anneal=0.95, lam=0.03, out_interval=4, batch_size=5, seed=11,
        weighted_mask=False, z_candidates=6, lowres=True, xla=True)
    assert output == OutputSettings(Path("o"), "none")
    # The lowres loss belongs to the lowres mask type only, not to a user's mask.
    with_mask = complete.parse_args(["--maskType", "lowres", "--mask", "m.png", "x.png"])
    assert not complete.settings_from_args(with_mask)[0].lowres
