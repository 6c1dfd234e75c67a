"""complete.py --mask DIR end to end, in-process: each image completed with its own mask in one
batch, the same result as completing with that mask for every image, and images without a mask
named before any work starts."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import complete  # noqa: E402
import utils  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402

SIZE = 16
IMAGES = ["a/im0.png", "a/im1.png", "b/im2.jpg"]  # im2's mask is im2.png: same name, other extension
COMMON = ["--seed", "0", "--nIter", "3", "--outInterval", "3", "--approach", "adam", "--weightedMask", "--blend", "none"]


def box_mask(top: int, left: int, height: int, width: int) -> np.ndarray:
    """uint8 mask image at twice the model's size (read_mask resizes it): 0 = fill."""
    mask = np.full((2 * SIZE, 2 * SIZE), 255, np.uint8)
    mask[top:top + height, left:left + width] = 0
    return mask


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    from model import DCGAN
    root = tmp_path_factory.mktemp("masks_cli")
    model = DCGAN(image_size=SIZE, gf_dim=4, df_dim=4, z_dim=8, seed=1)
    for var in model.generator.trainable_variables:  # an untrained G(z) is ~0; see test_completion
        if var.name.split("/")[-1].split(":")[0] in ("w", "Matrix"):
            var.assign(var * 10.0)
    model.save(root / "ckpt")
    rng = np.random.default_rng(0)
    for name in IMAGES:
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / name, quality=100)
    (root / "masks").mkdir()
    for name, box in (("im0.png", (8, 8, 16, 16)), ("im1.png", (0, 18, 10, 14)), ("im2.png", (20, 0, 12, 32))):
        Image.fromarray(box_mask(*box), "L").save(root / "masks" / name)
    return root


def run(work: Path, out: str, mask: str, capsys) -> Path:
    code = complete.main(["--checkpointDir", str(work / "ckpt"), "--outDir", str(work / out),
                          "--mask", str(work / mask), *COMMON, *[str(work / name) for name in IMAGES]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "error" not in captured.err and "warning" not in captured.err
    return work / out


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def tiles(grid: np.ndarray, count: int) -> list[np.ndarray]:
    cols = math.ceil(count / max(1, math.ceil(count / 8)))
    return [grid[(k // cols) * SIZE:(k // cols + 1) * SIZE, (k % cols) * SIZE:(k % cols + 1) * SIZE]
            for k in range(count)]


def test_each_image_its_own_mask_in_one_batch(work, capsys):
    out = run(work, "out_dir", "masks", capsys)
    images = [utils.resize(utils.read_rgb(work / name), SIZE) for name in IMAGES]
    masks = [masking.read_mask(work / "masks" / f"im{k}.png", SIZE) for k in range(3)]
    holes = [mask[:, :, 0] < 0.5 for mask in masks]
    assert [hole.sum() for hole in holes] == [64, 5 * 7, 6 * 16]  # three different holes
    assert not list(out.glob("batch_*"))  # one batch
    for image, mask, shown in zip(images, masks, tiles(read(out / "masked.png"), 3)):
        np.testing.assert_array_equal(shown, np.where(mask > 0.5, image, 128).astype(np.uint8))  # a grey hole
    # Each final keeps its own known pixels exactly, and its hole is G(z)'s.
    hats = tiles(read(out / "hats_imgs" / "0003.png"), 3)
    for k, (image, hole) in enumerate(zip(images, holes)):
        final = read(out / "final" / f"im{k}.png")
        np.testing.assert_array_equal(final[~hole], image[~hole])
        np.testing.assert_array_equal(final[hole], hats[k][hole])
        assert np.any(final[hole] != image[hole])

    # The same as completing all three with one of the masks: that image's result.
    for k in range(3):
        alone = run(work, f"out_file{k}", f"masks/im{k}.png", capsys)
        np.testing.assert_array_equal(read(alone / "final" / f"im{k}.png"), read(out / "final" / f"im{k}.png"))


def test_images_without_a_mask_are_named_before_any_work(work, capsys, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(box_mask(8, 8, 16, 16), "L").save(masks / "im0.png")
    for name in ("im2.png", "im2.jpeg"):  # two candidates for b/im2.jpg: which one is meant?
        Image.fromarray(box_mask(8, 8, 16, 16), "L").save(masks / name)
    with pytest.raises(SystemExit) as exit_:
        complete.main(["--checkpointDir", str(work / "ckpt"), "--outDir", str(tmp_path / "out"),
                       "--mask", str(masks), *[str(work / name) for name in IMAGES]])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "2 image(s)" in lines[0] and str(work / "a/im1.png") in lines[0] and str(masks) in lines[0]
    assert "b/im2.jpg (several: im2.jpeg, im2.png)" in lines[0]
    assert str(work / "a/im0.png") not in lines[0]
    assert not (tmp_path / "out").exists()
