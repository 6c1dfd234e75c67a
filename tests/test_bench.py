"""The speed benchmarks run end to end (tiny sizes) and print their JSON line with consistent figures."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, json.loads(result.stdout.strip().splitlines()[-1])


def test_bench_train_prints_its_figures():
    out, result = run_bench("bench/bench_train.py", "--image_size", "16", "--batch_size", "8", "--steps", "2",
                            "--eager_steps", "1", "--rounds", "1")
    assert "GFLOP per image" in out
    for key in ("train_images_per_s", "eager_images_per_s", "model_gflops_per_s", "matmul_gflops_per_s"):
        assert result[key] > 0
    assert result["model_gflops_per_s"] == pytest.approx(result["train_images_per_s"] * result["gflop_per_image"],
                                                         rel=0.02)


def test_bench_complete_prints_its_figures():
    out, result = run_bench("bench/bench_complete.py", "--imgSize", "16", "--batchSize", "4", "--nIter", "4",
                            "--outInterval", "2", "--eager_iterations", "1", "--rounds", "1",
                            "--mixed_precision", "bfloat16")
    for key in ("iterations_per_s", "eager_iterations_per_s", "model_gflops_per_s", "matmul_gflops_per_s"):
        assert result[key] > 0
    assert result["model_gflops_per_s"] == pytest.approx(
        result["iterations_per_s"] * 4 * result["gflop_per_image_iteration"], rel=0.05)
    assert result["mixed_precision"] == "bfloat16" and result["matmul_precision"] == "bfloat16"
    assert result["fraction_of_matmul"] == pytest.approx(result["model_gflops_per_s"] / result["matmul_gflops_per_s"],
                                                         rel=0.05)
    assert result["loss_vs_float32"] == pytest.approx(result["final_loss"] / result["final_loss_float32_run"],
                                                      rel=1e-3)
    assert {"cpu", "amx_bf16", "avx512_bf16"} <= result.keys()


def test_analytic_flop_counts_at_64():
    """5.5 GFLOP per image per training step and 1.3 per completion iteration, as stated for the original's model."""
    sys.path.insert(0, str(ROOT / "bench"))
    import common
    from model import DCGAN
    dcgan = DCGAN()
    macs = common.layer_macs(dcgan)
    assert macs["G"][1] == 4 * 4 * 25 * 512 * 256 and macs["D"][1] == 16 * 16 * 25 * 64 * 128
    assert common.train_step_flops(dcgan) / 1e9 == pytest.approx(5.50, abs=0.01)
    assert common.completion_iteration_flops(dcgan) / 1e9 == pytest.approx(1.30, abs=0.01)


def test_layer_macs_follow_each_layout():
    """The later layout's generator keeps 512 filters in its first transposed conv (4x4x512 -> 8x8x512)
    and every count matches the model's own weights: kernel volume x input pixels x filters."""
    sys.path.insert(0, str(ROOT / "bench"))
    import common
    from model import DCGAN
    later = DCGAN(layout="later")
    macs = common.layer_macs(later)
    assert macs["G"][1] == 4 * 4 * 25 * 512 * 512 and macs["G"][2] == 8 * 8 * 25 * 512 * 256
    for layout in ("article", "later"):
        dcgan = DCGAN(image_size=32, gf_dim=8, df_dim=8, z_dim=16, layout=layout)
        macs, start = common.layer_macs(dcgan), dcgan.generator.start_size
        kernels = [v.shape for v in dcgan.generator.trainable_variables if v.name.endswith("w:0")]
        assert macs["G"][0] == 16 * start * start * kernels[0][3]
        assert macs["G"][1:] == [(start * 2 ** i) ** 2 * int(np.prod(k)) for i, k in enumerate(kernels)], layout


def test_compare_completion_reports_every_candidate(tmp_path):
    import numpy as np
    from PIL import Image

    from model import DCGAN
    DCGAN(image_size=16, z_dim=8, gf_dim=4, df_dim=4, seed=0).save(tmp_path / "ck")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    candidates = ["article", "adam_weighted_4restarts"]
    out, result = run_bench("bench/compare_completion.py", "--checkpointDir", str(tmp_path / "ck"), "--images",
                            str(tmp_path), "--iters", "2,4", "--candidates", ",".join(candidates),
                            "--mixed_precision", "off")
    assert result["images"] == 3 and result["precision"] == "off"
    rows = {(row["candidate"], row["iters"]): row for row in result["rows"]}
    assert set(rows) == {("opencv_telea", None), ("opencv_ns", None)} | {(c, n) for c in candidates for n in (2, 4)}
    for row in rows.values():
        for psnr, ssim in [row["pasted"]] + ([row["poisson"]] if "poisson" in row else []):
            assert 0 < psnr < 100 and -1 <= ssim <= 1
    assert out.count("Poisson") == 4


def test_photo_framing_fills_the_photo_as_its_aligned_crop(tmp_path):
    """bench/photo_framing.py with the shipped model on a real photo (matplotlib's Grace Hopper): the
    fill through --photos puts the features where the aligned crop's own fill does (landmarks within
    0.5 px), and both fills are DCGAN fills, not the photo's pixels (PSNR well short of a copy)."""
    from matplotlib import cbook
    photo = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    result = subprocess.run([sys.executable, "bench/photo_framing.py", "--checkpointDir", "checkpoints/face64",
                             "--outDir", str(tmp_path), str(photo)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "framing: portraits" in result.stdout and "1 of 1 photos with a face" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())["grace_hopper.jpg"]
    assert set(report) == {"photo", "direct", "opencv_telea", "opencv_ns"}
    assert abs(report["photo"]["landmark_error"] - report["direct"]["landmark_error"]) < 0.5
    assert all(10 < way["hole_psnr"] < 30 and 0 < way["landmark_error"] < 5 for way in report.values())
    picture = np.asarray(Image.open(tmp_path / "grace_hopper.png"))
    assert picture.shape == (192, 5 * 192 + 4 * 6, 3)
    assert (picture[:, :192] == 0).all(axis=2).mean() > 0.05  # the first view shows the hole, in black


def test_photo_holes_fills_each_kind_of_hole_of_a_real_photo(tmp_path):
    """bench/photo_holes.py with the shipped model on matplotlib's Grace Hopper, eyes-and-nose and strokes holes,
    and a named run without the tuning of G: the eyes-and-nose hole covers her eyes, the strokes are 3 to 5
    connected brush marks inside her face's neighbourhood, every method is measured (finite), the DCGAN
    results keep the photo's pixels outside the hole, and each picture has a tile per column."""
    from matplotlib import cbook
    from scipy import ndimage

    import utils
    from dcgan_completion.faces import alignment
    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    out, summary = run_bench("bench/photo_holes.py", "--checkpointDir", "checkpoints/face64", "--run",
                             "plain=--no-tuneG --nIter 50", "--holes", "eyes_nose,strokes", "--outDir", str(tmp_path),
                             str(photo))
    assert summary["no_face"] == 0 and set(summary["kinds"]) == {"eyes_nose", "strokes"}
    image = utils.read_rgb(photo)
    detector, predictor = alignment.load_models(alignment.default_predictor())
    rect = alignment.find_faces(image, detector, upsample=0)[0]
    points = alignment.find_landmarks(image, rect, predictor)
    report = json.loads((tmp_path / "report.json").read_text())["kinds"]
    for kind in ("eyes_nose", "strokes"):
        assert summary["kinds"][kind]["n"] == 1 and summary["kinds"][kind]["refused"] == {"face64": 0, "plain": 0}
        scores = report[kind]["photo"]["grace_hopper.jpg"]
        assert set(scores) == {"opencv_telea", "opencv_ns", "face64", "plain"}
        assert all(np.isfinite(value) for method in scores.values() for value in method.values())
        assert all(0 < method["hole_psnr"] < 60 and 0 <= method["landmark_error"] < 1 for method in scores.values())
        hole = np.asarray(Image.open(tmp_path / kind / "holes" / "grace_hopper.png").convert("L")) < 128
        for method in ("face64", "plain"):
            dcgan = utils.read_rgb(tmp_path / kind / method / "final" / "grace_hopper.png")
            assert (dcgan[~hole] == image[~hole]).all() and (dcgan[hole] != image[hole]).any()
        picture = np.asarray(Image.open(tmp_path / kind / "comparison.png"))
        assert picture.shape == (160, 6 * 160 + 5 * 6, 3)
    eyes = np.asarray(Image.open(tmp_path / "eyes_nose" / "holes" / "grace_hopper.png").convert("L")) < 128
    for eye in (points[36:42].mean(0), points[42:48].mean(0)):
        assert eyes[int(round(eye[1])), int(round(eye[0]))]
    strokes = np.asarray(Image.open(tmp_path / "strokes" / "holes" / "grace_hopper.png").convert("L")) < 128
    eye_distance = np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))
    _, count = ndimage.label(strokes)
    assert 1 <= count <= 5 and 0.005 < strokes.mean() < eyes.mean()
    rows, cols = np.nonzero(strokes)
    centre = points[17:68].mean(0)
    assert np.hypot(cols - centre[0], rows - centre[1]).max() < 4 * eye_distance
    assert "face64" in out and "opencv_telea" in out


def test_bench_startup_times_complete_py_and_its_phases(tmp_path):
    """The start-up bench runs complete.py (a tiny model) and times each phase of it: every phase
    measured, none negative, TensorFlow's import among the imports."""
    from model import DCGAN
    DCGAN(image_size=16, gf_dim=4, df_dim=4, z_dim=8, seed=0).save(tmp_path / "model")
    face = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(face)
    _, result = run_bench("bench/bench_startup.py", "--image", str(face), "--rounds", "1", "--",
                          "--checkpointDir", str(tmp_path / "model"), "--nIter", "4", "--outInterval", "2")
    phases = result["breakdown_s"]
    assert list(phases) == ["python", "imports", "build", "restore", "precision", "encoder", "inputs", "start_z",
                            "first_chunk", "other_chunks", "outputs", "exit"]
    assert all(seconds >= 0 for seconds in phases.values()), phases
    assert phases["imports"] > 0.3 and phases["first_chunk"] > 0 and phases["other_chunks"] > 0  # 2 chunks
    assert result["wall_s"] > phases["imports"] and result["command"].endswith("--outInterval 2")


def test_epoch_curve_scores_each_kept_checkpoint(tmp_path):
    """Two checkpoints of one run (the same weights at steps 0 and 525): a point each, at epochs 0 and 1,
    with the same scores (the same G, the same seed); a folder without checkpoints is a one-line error."""
    import shutil

    from model import DCGAN
    DCGAN(image_size=16, z_dim=8, gf_dim=4, df_dim=4, seed=0, ema_decay=0.999).save(tmp_path / "ck")
    kept, images = tmp_path / "kept", tmp_path / "images"
    kept.mkdir(), images.mkdir()
    shutil.copy(tmp_path / "ck" / "dcgan.json", kept)
    for step in (0, 525):
        for path in (tmp_path / "ck").glob("DCGAN.model-0.*"):
            shutil.copy(path, kept / path.name.replace("model-0", f"model-{step}"))
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(images / f"{i}.png")
    result = subprocess.run([sys.executable, "bench/epoch_curve.py", "--kept", str(kept), "--images", str(images),
                             "--limit", "2", "--nIter", "2", "--stepsPerEpoch", "525",
                             "--outDir", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    points = json.loads((tmp_path / "out" / "curve.json").read_text())["points"]
    assert [(p["step"], p["epoch"]) for p in points] == [(0, 0.0), (525, 1.0)]
    assert 0 < points[0]["psnr_hole"] < 100 and -1 <= points[0]["ssim_hole"] <= 1
    assert points[0]["psnr_hole"] == pytest.approx(points[1]["psnr_hole"], abs=1e-6)
    assert Image.open(tmp_path / "out" / "curve.png").size[0] > 100
    empty = subprocess.run([sys.executable, "bench/epoch_curve.py", "--kept", str(images), "--images", str(images),
                            "--stepsPerEpoch", "525"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert empty.returncode != 0
    assert empty.stderr.strip().splitlines() == [f"error: {images}: no DCGAN.model-STEP.index"]
