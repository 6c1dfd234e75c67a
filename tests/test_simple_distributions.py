"""simple_distributions.py writes three real, non-blank, reproducible plots."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {"normal-pdf.png": (640, 480), "normal-samples.png": (700, 300), "normal-2d.png": (640, 480)}


def run(out: Path, *extra: str) -> None:
    result = subprocess.run([sys.executable, "simple_distributions.py", "--outDir", str(out), *extra],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_three_plots(tmp_path):
    run(tmp_path / "a")
    run(tmp_path / "b")
    run(tmp_path / "c", "--seed", "1")
    for name, size in EXPECTED.items():
        with Image.open(tmp_path / "a" / name) as image:
            assert image.format == "PNG" and image.size == size
            gray = np.asarray(image.convert("L"), dtype=float)
        assert gray.std() > 5, f"{name} is blank"
        dark = (gray < 64).mean()  # the curve, markers and labels are dark on a light background
        assert 0.001 < dark < 0.5, f"{name}: {dark:.4f} of the pixels are dark"
    # The same seed gives the same figures; another seed other samples (the pdf has none).
    same = (tmp_path / "a" / "normal-2d.png").read_bytes() == (tmp_path / "b" / "normal-2d.png").read_bytes()
    assert same
    for name in ("normal-samples.png", "normal-2d.png"):
        assert not np.array_equal(np.asarray(Image.open(tmp_path / "a" / name)),
                                  np.asarray(Image.open(tmp_path / "c" / name)))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "normal-pdf.png")),
                          np.asarray(Image.open(tmp_path / "c" / "normal-pdf.png")))
