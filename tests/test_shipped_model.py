"""The shipped face model (checkpoints/face64): complete.py finds it with no --checkpointDir, and it
fills held-out faces (make_faces seed 1, never trained on: the model saw seed 0) better than
OpenCV's Telea and Navier-Stokes inpainting on hole PSNR and SSIM, center mask."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))
sys.path.insert(0, str(ROOT / "bench"))

import checkpoints  # noqa: E402
import complete  # noqa: E402
import eval_completion  # noqa: E402
import make_faces  # noqa: E402
import metrics  # noqa: E402
import utils  # noqa: E402

FACES = 8
ITERATIONS = 200  # most of 1000's quality (docs/quality.md), at a test's cost


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("heldout")
    paths = []
    for index in range(FACES):
        path = folder / f"face_{index:02d}.png"
        utils.save_png(path, make_faces.render_face(make_faces.HELDOUT_START + index, seed=1, size=64))
        paths.append(path)
    return paths


def test_the_shipped_model_is_in_the_clone_with_its_description():
    folder = checkpoints.default_model_dir()
    assert folder == ROOT / "checkpoints" / checkpoints.SHIPPED_MODEL
    assert checkpoints.latest_checkpoint(folder) is not None
    assert json.loads((folder / "dcgan.json").read_text())["image_size"] == 64
    assert sum(p.stat().st_size for p in folder.iterdir()) < 30 * 2 ** 20  # small enough for git


def test_shipped_model_beats_opencv_on_heldout_faces(heldout, tmp_path, capsys):
    code = complete.main(["--outDir", str(tmp_path), "--nIter", str(ITERATIONS), "--seed", "0",
                          "--batchSize", str(FACES), "--mixed_precision", "off", *map(str, heldout)])
    assert code == 0
    assert "shipped" in capsys.readouterr().out.splitlines()[0]  # the first line says which model
    mask = eval_completion.eval_mask("center", 64)
    scores: dict[str, list] = {"dcgan": [], "opencv_telea": [], "opencv_ns": []}
    for path in heldout:
        truth = utils.read_rgb(path)
        filled = {"dcgan": utils.read_rgb(tmp_path / "final" / path.name),
                  "opencv_telea": eval_completion.fill_opencv(truth, mask, "telea"),
                  "opencv_ns": eval_completion.fill_opencv(truth, mask, "ns")}
        for name, image in filled.items():
            scores[name].append(metrics.completion_scores(image, truth, mask))
    mean = {name: {key: float(np.mean([s[key] for s in values])) for key in ("psnr_hole", "ssim_hole")}
            for name, values in scores.items()}
    for baseline in ("opencv_telea", "opencv_ns"):
        for key in ("psnr_hole", "ssim_hole"):
            assert mean["dcgan"][key] > mean[baseline][key], (key, mean)
