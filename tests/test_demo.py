"""`make demo`'s pipeline in its quick mode (16x16, a few steps), end to end, checking every output."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_quick_demo_writes_every_output(tmp_path):
    out, checkpoint = tmp_path / "demo", tmp_path / "checkpoint"
    result = subprocess.run([sys.executable, "demo.py", "--quick", "--out", str(out), "--checkpoint_dir",
                             str(checkpoint)], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # 1. generated faces: 96 training, 8 held out (another seed), 16x16
    train = sorted((out / "faces" / "train").glob("*.png"))
    heldout = sorted((out / "heldout_faces" / "heldout").glob("*.png"))
    assert (len(train), len(heldout)) == (96, 8)
    assert Image.open(heldout[0]).size == (16, 16)
    assert json.loads((out / "heldout_faces" / "make_faces.json").read_text())["seed"] == 1  # never trained on
    # 2. the real photo, aligned to 64x64
    aligned = list((out / "aligned").rglob("*.png"))
    assert len(aligned) == 1 and Image.open(aligned[0]).size == (64, 64)
    # 3. a trained model, sample grids (8x8 tiles of 16x16) and TensorBoard logs
    assert (checkpoint / "dcgan.json").exists() and list(checkpoint.glob("DCGAN.model-*.index"))
    grids = sorted((out / "samples").glob("train_*.png"))
    assert grids and Image.open(grids[-1]).size == (128, 128)
    assert list((out / "logs").glob("events.out.tfevents.*"))
    # 4. completions of every held-out face (center mask), known pixels kept, the raw fills and the GIF
    completions = out / "eval" / "center" / "dcgan"
    finals = sorted((completions / "final").glob("*.png"))
    assert [p.name for p in finals] == [p.name for p in heldout]
    original, completed = np.asarray(Image.open(heldout[0])), np.asarray(Image.open(finals[0]))
    known = np.ones((16, 16), bool)
    known[4:12, 4:12] = False
    assert np.array_equal(original[known], completed[known])
    assert (completions / "completion.gif").exists() and len(list((completions / "fill").glob("*.png"))) == 8
    # 5. the quality report, with every method and a comparison picture
    report = json.loads((out / "eval" / "report.json").read_text())
    assert set(report) == {"center"}
    for mask, entry in report.items():
        methods = entry["methods"]
        assert set(methods) == {"dcgan", "dcgan_article", "opencv_telea", "opencv_ns", "mean_colour"}
        for name, scores in methods.items():
            assert np.isfinite(scores["psnr_hole"]) and 0.0 < scores["ssim_hole"] <= 1.0, (mask, name, scores)
        assert Path(entry["comparison"]).exists()
    assert "Demo finished" in result.stdout
