"""bench/metrics.py and bench/eval_completion.py's baselines and report (no DCGAN, no TensorFlow)."""
from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import eval_completion  # noqa: E402
import metrics  # noqa: E402
import utils  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def random_image(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- PSNR

def test_psnr_of_a_constant_offset_over_the_region():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a.copy()
    region = np.zeros((16, 16), bool)
    region[4:10, 3:12] = True
    b[region] += 10
    b[~region] = 0   # outside the region: anything
    assert metrics.psnr(a, b, region) == pytest.approx(20 * math.log10(255 / 10))
    assert metrics.mse(a, b, region) == pytest.approx(100.0)
    # The same region given as an (H, W, 3) float mask.
    assert metrics.psnr(a, b, region[..., None].repeat(3, 2).astype(np.float32)) == pytest.approx(20 * math.log10(25.5))
    # Whole image: MSE = mean of 10^2 on the region and 100^2 elsewhere.
    n = region.sum()
    expected = (n * 100 + (256 - n) * 100 ** 2) / 256
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / expected))


def test_psnr_one_channel_off():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[..., 1] = 30  # MSE over pixels and channels = 900 / 3
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 300))


def test_identical_images():
    a = random_image(0)
    assert metrics.psnr(a, a) == metrics.PSNR_CAP == 100.0
    assert metrics.psnr(a, a, cap=None) == math.inf
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.ssim(a, a, np.eye(24, dtype=bool)) == pytest.approx(1.0)


def test_empty_region_and_shape_mismatch_are_errors():
    a = random_image(0)
    with pytest.raises(ValueError):
        metrics.psnr(a, a, np.zeros((24, 24), bool))
    with pytest.raises(ValueError):
        metrics.ssim(a, a[:20])


# ----------------------------------------------------------------------------- SSIM

def test_ssim_of_two_constant_images():
    a = np.full((20, 20, 3), 50, np.uint8)
    b = np.full((20, 20, 3), 80, np.uint8)
    expected = (2 * 50 * 80 + C1) / (50 ** 2 + 80 ** 2 + C1)
    np.testing.assert_allclose(metrics.ssim_map(a, b), expected, rtol=1e-10)
    assert metrics.ssim(a, b) == pytest.approx(expected)


def direct_ssim(a: np.ndarray, b: np.ndarray, y: int, x: int) -> float:
    """SSIM at one pixel from the formula: an 11x11 Gaussian window (sigma 1.5), borders mirrored."""
    g = np.exp(-np.arange(-5, 6) ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for c in range(3):
        pa = np.pad(a[..., c].astype(float), 5, mode="symmetric")[y:y + 11, x:x + 11]
        pb = np.pad(b[..., c].astype(float), 5, mode="symmetric")[y:y + 11, x:x + 11]
        mx, my = (w * pa).sum(), (w * pb).sum()
        vx, vy = (w * (pa - mx) ** 2).sum(), (w * (pb - my) ** 2).sum()
        cov = (w * (pa - mx) * (pb - my)).sum()
        values.append((2 * mx * my + C1) * (2 * cov + C2) / ((mx ** 2 + my ** 2 + C1) * (vx + vy + C2)))
    return float(np.mean(values))


@pytest.mark.parametrize("y, x", [(12, 12), (6, 17), (0, 0), (23, 2)])
def test_ssim_map_matches_the_formula(y, x):
    a = random_image(1)
    b = np.clip(a.astype(int) + np.random.default_rng(2).integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim_map(a, b)[y, x] == pytest.approx(direct_ssim(a, b, y, x), rel=1e-9)


def test_ssim_is_the_map_averaged_over_the_region():
    a, b = random_image(3), random_image(4)
    region = np.zeros((24, 24), bool)
    region[5:9, 10:20] = True
    assert metrics.ssim(a, b, region) == pytest.approx(metrics.ssim_map(a, b)[region].mean())
    assert metrics.ssim(a, b) == pytest.approx(metrics.ssim_map(a, b).mean())
    assert metrics.ssim(a, b) < 0.2


def test_differences_outside_the_hole_do_not_change_hole_metrics():
    truth = random_image(5, 32)
    mask = masking.make_mask("center", 32)       # hole: rows/cols 8..23
    completed = truth.copy()
    completed[8:24, 8:24] = random_image(6, 16)
    scores = metrics.completion_scores(completed, truth, mask)
    far = completed.copy()
    far[:2] = 0                                 # more than 5 px (the SSIM window's radius) from the hole
    near = completed.copy()
    near[7, 8:24] = 255                         # next to the hole: inside SSIM's windows, not PSNR's region
    far_scores = metrics.completion_scores(far, truth, mask)
    near_scores = metrics.completion_scores(near, truth, mask)
    assert far_scores["psnr_hole"] == scores["psnr_hole"] and far_scores["ssim_hole"] == scores["ssim_hole"]
    assert near_scores["psnr_hole"] == scores["psnr_hole"]
    assert far_scores["psnr_full"] < scores["psnr_full"]


# ----------------------------------------------------------------------------- baselines

@pytest.mark.parametrize("method", eval_completion.BASELINE_METHODS)
@pytest.mark.parametrize("mask_type", ["center", "random", "left", "grid"])
def test_baselines_keep_known_pixels_and_never_see_the_hole(method, mask_type):
    image = random_image(7, 32)
    mask = eval_completion.eval_mask(mask_type, 32, 0.25, seed=0)
    known = mask[..., 0] > 0.5
    filled = eval_completion.BASELINES[method](image, mask)
    assert filled.dtype == np.uint8 and filled.shape == image.shape
    np.testing.assert_array_equal(filled[known], image[known])
    other = image.copy()
    other[~known] = 255 - other[~known]         # different hole content: same result
    np.testing.assert_array_equal(eval_completion.BASELINES[method](other, mask), filled)


def test_mean_colour_fills_with_the_known_mean():
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = (10, 20, 30)
    image[:, 4:] = (30, 40, 50)
    mask = masking.make_mask("center", 8, 0.25)   # hole 2..5: known pixels are half each colour
    filled = eval_completion.fill_mean_colour(image, mask)
    assert tuple(filled[4, 4]) == (20, 30, 40)


def test_opencv_fills_a_flat_image_with_its_colour():
    image = np.full((32, 32, 3), (40, 120, 200), np.uint8)
    mask = masking.make_mask("center", 32)
    for method in ("opencv_telea", "opencv_ns"):
        filled = eval_completion.BASELINES[method](image, mask)
        assert np.abs(filled.astype(int) - image).max() <= 4  # Telea's weights leave a few levels


def test_eval_mask_is_the_documented_call():
    expected = masking.make_mask("random", 64, 0.25, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(eval_completion.eval_mask("random", 64, 0.25, seed=3), expected)


def test_comparison_grid_rows_and_columns(tmp_path):
    images = np.stack([random_image(i, 8) for i in range(10)])
    grid = eval_completion.save_comparison(tmp_path / "c.png", images, {"opencv_telea": images, "dcgan": None},
                                           images)
    assert grid.shape == (6 * 8, 8 * 8, 3)      # 6 rows, at most 8 columns
    np.testing.assert_array_equal(grid[24:40], 0)  # the DCGAN rows (4th, 5th) are black without results
    np.testing.assert_array_equal(grid[8:16], utils.make_grid(images[:8], rows=1))  # Telea's row
    assert utils.read_rgb(tmp_path / "c.png").shape == grid.shape


# ----------------------------------------------------------------------------- the report, with a stand-in complete.py

FAKE_COMPLETE = textwrap.dedent("""
    import shutil, sys
    from pathlib import Path
    args = sys.argv[1:]
    if "momentum" in args:
        print("boom: no momentum today", file=sys.stderr)
        raise SystemExit(3)
    for folder in ("final", "fill"):
        out = Path(args[args.index("--outDir") + 1]) / folder
        out.mkdir(parents=True, exist_ok=True)
        for name in args:
            if name.endswith(".png"):
                shutil.copy(name, out / Path(name).name)   # a perfect completion and a perfect fill
""")


def test_report_with_a_failing_and_a_perfect_dcgan(tmp_path, monkeypatch, capsys):
    images = tmp_path / "images"
    ramp = np.linspace(0, 255, 64)
    for i in range(3):  # smooth pictures, which inpainting fills better than a flat colour
        smooth = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, 255 - ramp) / 2,
                           np.full((64, 64), 40.0 * i)], axis=2)
        utils.save_png(images / f"im{i}.png", smooth.astype(np.uint8))
    fake = tmp_path / "fake_complete.py"
    fake.write_text(FAKE_COMPLETE)
    monkeypatch.setattr(eval_completion, "COMPLETE_SCRIPT", str(fake))
    out = tmp_path / "out"
    code = eval_completion.main(["--checkpointDir", str(tmp_path), "--images", str(images), "--maskType", "random",
                                 "--nIter", "2", "--outDir", str(out), "--quiet",
                                 "--methods", "dcgan,dcgan_article,opencv_telea,mean_colour"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    methods = report["methods"]
    assert methods["dcgan"]["status"] == "ok" and methods["dcgan"]["psnr_hole"] == 100.0
    assert methods["dcgan"]["ssim_hole"] == pytest.approx(1.0)
    # The face measures of a perfect completion: no distance, the same "person", no landmark moved.
    assert (methods["dcgan"]["identity_distance"], methods["dcgan"]["same_person"],
            methods["dcgan"]["landmark_error"]) == (0.0, 1.0, 0.0)
    assert methods["mean_colour"]["identity_distance"] > 0 and methods["mean_colour"]["landmark_error"] > 0
    assert report["identity_threshold"] == 0.6 and report["faces_detected"] == 0  # ramps: no face found
    assert methods["dcgan_article"]["status"] == "failed" and "boom" in methods["dcgan_article"]["error"]
    assert methods["opencv_telea"]["status"] == "ok" and methods["opencv_telea"]["known_mae"] == 0.0
    assert methods["mean_colour"]["psnr_hole"] < methods["opencv_telea"]["psnr_hole"] < 100
    assert report["images"] == 3 and report["mask"] == "random"
    assert any(line.startswith("dcgan_article") and "failed" in line for line in lines)
    assert any(line.startswith("dcgan ") and "   0.000  100%    0.00" in line for line in lines), lines
    assert (out / "comparison_random.png").exists() and (out / "results_random.json").exists()
    assert (out / "mean_colour" / "final" / "im0.png").exists()


def test_the_articles_method_is_the_articles_completion():
    """dcgan_article's flags, through complete.py's parser: the momentum update, the plain L1 loss, the
    fill pasted in and the random start, so 1000 iterations (the original's), whatever the checkpoint holds."""
    import complete
    args = complete.parse_args(["x.png", *eval_completion.DCGAN_METHODS["dcgan_article"]])
    settings, output = complete.settings_from_args(args)
    assert (settings.approach, settings.weighted_mask, output.blend) == ("momentum", False, "none")
    assert settings.z_init == "random" and complete.default_iterations(settings.z_init == "encoder") == 1000
