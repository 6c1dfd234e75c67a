"""The shipped face model (checkpoints/face64): complete.py finds it with no --checkpointDir, and it
fills held-out faces (make_faces seed 1, never trained on: the model saw seed 0) better than
OpenCV's Telea and Navier-Stokes inpainting on hole PSNR and SSIM, center mask. It says that it knows
drawn faces, not photos, and warns about a real photo whose known pixels it cannot explain."""
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

import make_faces  # noqa: E402

import complete  # noqa: E402
import eval_completion  # noqa: E402
import metrics  # noqa: E402
import utils  # noqa: E402
from dcgan_completion.networks import storage  # noqa: E402

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
    folder = storage.default_model_dir()
    assert folder == ROOT / "checkpoints" / storage.SHIPPED_MODEL
    assert storage.latest_checkpoint(folder) is not None
    assert json.loads((folder / "dcgan.json").read_text())["image_size"] == 64
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 30 * 2 ** 20  # small enough for git
    fit = storage.read_known_fit(folder)  # measured on held-out faces of make_faces seed 2
    assert (fit["n_iter"], fit["start"]) == (200, "encoder") and fit["faces"] == 32  # complete.py's defaults
    assert 0 < fit["mean"] < fit["max"] < fit["warn_above"] < 1


def test_the_shipped_model_warns_about_a_real_photo_and_not_about_drawn_faces(tmp_path, capsys):
    from matplotlib import cbook
    from PIL import Image

    from dcgan_completion.faces import alignment as face_alignment
    from dcgan_completion.faces import framing

    detector, predictor = face_alignment.load_models(face_alignment.default_predictor())
    photo = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    hopper = tmp_path / "hopper.png"  # aligned as align_faces.py aligns photos for completion
    utils.save_png(hopper, face_alignment.align_face(photo, 64, framing.LANDMARKS["innerEyesAndBottomLip"],
                                                     detector, predictor))
    drawn = [tmp_path / f"drawn_{i}.png" for i in range(4)]  # make_faces seed 1: not the faces it was measured on
    for index, path in enumerate(drawn):
        utils.save_png(path, make_faces.render_face(make_faces.HELDOUT_START + index, seed=1, size=64))
    code = complete.main(["--outDir", str(tmp_path / "out"), "--seed", "0", "--mixed_precision", "off",
                          str(hopper), *map(str, drawn)])  # the defaults (the encoder, 200 iterations), as measured
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "far from what the model knows" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("warning: 1 of 5 image(s)") and "hopper.png" in warnings[0], warnings
    assert "drawn_" not in warnings[0] and "docs/real_faces.md" in warnings[0]


def test_shipped_model_beats_opencv_on_heldout_faces(heldout, tmp_path, capsys):
    code = complete.main(["--outDir", str(tmp_path), "--nIter", str(ITERATIONS), "--seed", "0",
                          "--batchSize", str(FACES), "--mixed_precision", "off", *map(str, heldout)])
    assert code == 0
    first = capsys.readouterr().out.splitlines()[0]  # the first line says which model, and what it knows
    assert "shipped" in first and "knows drawn faces" in first and "not photos" in first and "real_faces.md" in first
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
