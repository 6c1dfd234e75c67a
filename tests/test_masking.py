"""completion/masks.py: the original's masks written out here, users' mask files, Poisson blending and
the paper's weighted mask, against independent numpy references."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion.completion import compositing  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402

# ----------------------------------------------------------------------------
# Masks: the original's definitions, written out here
# ----------------------------------------------------------------------------

def expected_mask(mask_type: str, size: int, scale: float, seed: int = 0) -> np.ndarray:
    m = np.ones((size, size), np.float32)
    half = size // 2
    if mask_type == "center":
        lo, hi = int(size * scale), int(size * (1 - scale))
        m[lo:hi, lo:hi] = 0
    elif mask_type == "left":
        m[:, :half] = 0
    elif mask_type == "right":
        m[:, half:] = 0
    elif mask_type == "top":
        m[:half, :] = 0
    elif mask_type == "bottom":
        m[half:, :] = 0
    elif mask_type == "random":
        m[np.random.default_rng(seed).random((size, size)) < 0.2] = 0
    elif mask_type == "full":
        pass
    elif mask_type == "grid":
        m[:] = 0
        m[::4, ::4] = 1
    elif mask_type == "lowres":
        m[:] = 0
    return np.repeat(m[:, :, None], 3, axis=2)


@pytest.mark.parametrize("size", [16, 64])
@pytest.mark.parametrize("scale", [0.25, 0.3])
@pytest.mark.parametrize("mask_type", masking.MASK_TYPES)
def test_mask_matches_original_definition(mask_type, size, scale):
    mask = masking.make_mask(mask_type, size, scale, rng=np.random.default_rng(5))
    assert mask.shape == (size, size, 3) and mask.dtype == np.float32
    np.testing.assert_array_equal(mask, expected_mask(mask_type, size, scale, seed=5))


def test_center_mask_bounds_by_hand():
    # int(16 * 0.3) = 4, int(16 * 0.7) = 11: rows/cols 4..10 are the hole.
    mask = masking.make_mask("center", 16, 0.3)[:, :, 0]
    assert mask[4:11, 4:11].max() == 0 and mask.sum() == 16 * 16 - 7 * 7
    # The random mask drops about 20% of the pixels.
    random = masking.make_mask("random", 64, rng=np.random.default_rng(0))[:, :, 0]
    assert 0.17 < 1 - random.mean() < 0.23


def test_read_mask_white_keeps_black_fills_and_resizes(tmp_path):
    big = np.full((32, 32), 255, np.uint8)
    big[8:16, 4:20] = 0          # even-aligned, so a 2x nearest shrink is exact
    big[0:2, 0:2] = 100          # dark gray is "fill" (< 128)
    big[30:32, 30:32] = 200      # light gray is "keep"
    path = tmp_path / "mask.png"
    Image.fromarray(big, "L").save(path)
    mask = masking.read_mask(path, 16)
    expected = np.ones((16, 16), np.float32)
    expected[4:8, 2:10] = 0
    expected[0, 0] = 0
    assert mask.shape == (16, 16, 3) and mask.dtype == np.float32
    np.testing.assert_array_equal(mask, np.repeat(expected[:, :, None], 3, axis=2))
    # An RGB mask of the right size is used as is.
    rgb = np.repeat(big[::2, ::2, None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(masking.read_mask(tmp_path / "rgb.png", 16), mask)


@pytest.mark.parametrize("content", ["white", "black", "text"])
def test_read_mask_rejects_useless_or_unreadable_masks(tmp_path, content):
    path = tmp_path / f"{content}.png"
    if content == "text":
        path.write_text("not an image\n")
    else:
        Image.fromarray(np.full((16, 16), 255 if content == "white" else 0, np.uint8), "L").save(path)
    with pytest.raises(utils.ImageError) as error:
        masking.read_mask(path, 16)
    assert str(path) in str(error.value)
    if content != "text":
        assert content in str(error.value)


# ----------------------------------------------------------------------------
# Poisson blending and the weighted mask
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("mask_type", ["center", "left", "random"])
def test_poisson_blend_keeps_known_pixels_and_reproduces_shifted_fill(mask_type):
    rng = np.random.default_rng(4)
    image = rng.integers(20, 200, (16, 16, 3)).astype(np.uint8)
    mask = masking.make_mask(mask_type, 16, rng=np.random.default_rng(1))
    known = mask[:, :, 0] > 0.5
    # The fill is the image plus a constant: its gradients are the image's, so the blend
    # must give the image back inside the hole.
    shifted = (image.astype(np.int64) + 40).astype(np.uint8)
    blended = compositing.poisson_blend(image, shifted, mask)
    assert blended.dtype == np.uint8 and blended.shape == image.shape
    assert np.abs(blended.astype(int) - image.astype(int)).max() <= 1
    # A fill with other gradients changes the hole, never the known pixels.
    other = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    blended = compositing.poisson_blend(image, other, mask)
    np.testing.assert_array_equal(blended[known], image[known])
    assert np.any(blended[~known] != image[~known])
    assert np.any(blended[~known] != other[~known])


def test_weighted_mask_matches_paper_definition():
    """W_i = M_i * (missing pixels in the 7x7 window around i) / 49, the window mirrored at
    the border ('symm': ..., 2, 1, 0 | 0, 1, 2, ...)."""
    size = 10
    known = np.ones((size, size), np.float32)
    known[3:7, 0:4] = 0   # a hole touching the left border
    known[8, 8] = 0       # and a single missing pixel near a corner

    def mirror(k):
        return -k - 1 if k < 0 else (2 * size - k - 1 if k >= size else k)

    expected = np.zeros((size, size))
    for r in range(size):
        for c in range(size):
            if not known[r, c]:
                continue
            missing = sum(1 - known[mirror(r + dr), mirror(c + dc)]
                          for dr in range(-3, 4) for dc in range(-3, 4))
            expected[r, c] = missing / 49.0
    weights = masking.weighted_mask(np.repeat(known[:, :, None], 3, axis=2))
    assert weights.shape == (size, size, 3)
    for channel in range(3):
        np.testing.assert_allclose(weights[:, :, channel], expected, atol=1e-6)
    # By hand: at (2, 4) the window covers hole rows 3..5 and cols 1..3: 9 missing. At the
    # corner (0, 0) rows -3..3 mirror to 2, 1, 0, 0, 1, 2, 3 (hole row 3 once) and cols
    # -3..3 to 2, 1, 0, 0, 1, 2, 3 (all in the hole): 7 missing (zero padding would give 4).
    assert expected[2, 4] == pytest.approx(9 / 49)
    assert expected[0, 0] == pytest.approx(7 / 49)
    assert expected[3, 0] == 0
