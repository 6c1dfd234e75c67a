"""photo_completion's geometry: the photo's hole in the aligned frame (against a brute-force
footprint test), the fill warped back by the inverse transform, the windowed Poisson blend and
Telea fill against the whole photo's, and which face fills which hole."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcgan_completion.completion import compositing  # noqa: E402
from dcgan_completion.completion import photos as photo_completion  # noqa: E402

S = 32


def similarity(scale: float, degrees: float, photo_point, aligned_point) -> np.ndarray:
    """A 2 x 3 photo -> aligned matrix: rotate and scale, sending photo_point to aligned_point."""
    angle = np.deg2rad(degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = np.array(aligned_point, float) - rotation @ np.array(photo_point, float)
    return np.hstack([rotation, shift[:, None]])


def test_aligned_mask_is_every_pixel_whose_footprint_touches_the_hole():
    # 3.3 photo pixels per aligned pixel; the crop reaches past the photo's top left corner.
    matrix = similarity(0.3, 15, (15, 14), (20, 20))
    hole = np.zeros((160, 170), bool)
    hole[8:20, 10:20] = True
    hole[40, 50] = True  # a single photo pixel still makes its aligned pixel unknown
    mask = photo_completion.aligned_mask(hole, matrix, S)[:, :, 0]
    assert mask.shape == (S, S) and set(np.unique(mask)) == {0.0, 1.0}

    # Brute force: sample each aligned pixel's square densely, map the samples to the photo.
    inverse = cv2.invertAffineTransform(matrix)
    offsets = np.linspace(-0.45, 0.45, 9)
    du, dv = np.meshgrid(offsets, offsets)
    touches, outside = np.zeros((S, S), bool), np.zeros((S, S), bool)
    for v in range(S):
        for u in range(S):
            points = np.stack([u + du.ravel(), v + dv.ravel(), np.ones(du.size)])
            x, y = np.rint(inverse @ points).astype(int)
            inside = (x >= 0) & (x < hole.shape[1]) & (y >= 0) & (y < hole.shape[0])
            outside[v, u] = not inside.all()
            touches[v, u] = hole[y[inside], x[inside]].any()
    unknown = mask == 0
    assert touches.sum() > 10 and outside.any() and not outside.all()
    assert unknown[touches].all() and unknown[outside].all()  # never a hole pixel taken as known
    near = cv2.dilate((touches | outside).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not unknown[~near].any()                           # and no more than a pixel's margin


def test_fill_goes_back_through_the_inverse_transform():
    matrix = similarity(0.25, -10, (90, 100), (16, 16))
    u, v = np.meshgrid(np.arange(S), np.arange(S))
    ramp = (100 + 3 * u + 2 * v).astype(np.uint8)  # a plane in the aligned frame
    fill = np.stack([ramp, 255 - ramp, ramp // 2], axis=2)
    back = photo_completion.fill_to_photo(fill, matrix, (200, 180)).astype(float)
    assert back.shape == (200, 180, 3)
    ys, xs = np.mgrid[0:200, 0:180]
    au, av = matrix @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    inside = (au > 1) & (au < S - 2) & (av > 1) & (av < S - 2)
    assert inside.sum() > 3000
    expected = 100 + 3 * au[inside] + 2 * av[inside]
    np.testing.assert_allclose(back.reshape(-1, 3)[inside, 0], expected, atol=1.0)
    np.testing.assert_allclose(back.reshape(-1, 3)[inside, 1], 255 - expected, atol=1.0)


def test_windowed_blend_equals_the_whole_photos():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (9, 9), 3)
    fill = cv2.GaussianBlur(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (9, 9), 3)
    for box in ((slice(20, 35), slice(30, 50)), (slice(0, 12), slice(60, 80))):  # inside; at a corner
        hole = np.zeros((60, 80), bool)
        hole[box] = True
        whole = compositing.poisson_blend(image, fill, np.repeat((~hole)[:, :, None], 3, axis=2).astype(np.float32))
        windowed = compositing.blend_into(image, fill, hole)
        np.testing.assert_array_equal(windowed[~hole], image[~hole])
        assert np.abs(windowed.astype(int) - whole).max() <= 1
        assert np.any(windowed[hole] != image[hole])


def test_telea_fills_only_the_region_as_on_the_whole_photo():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), (9, 9), 3)
    for box in ((slice(30, 50), slice(40, 70)), (slice(0, 12), slice(100, 120))):  # inside; at a corner
        region = np.zeros((90, 120), bool)
        region[box] = True
        windowed = photo_completion.telea_into(image, region)
        whole = cv2.inpaint(image, region.astype(np.uint8), photo_completion.TELEA_RADIUS, cv2.INPAINT_TELEA)
        np.testing.assert_array_equal(windowed, whole)
        np.testing.assert_array_equal(windowed[~region], image[~region])


def test_each_hole_goes_to_the_face_that_covers_most_of_it():
    """Two faces' crops (the larger first) and near regions on a 1 x 40 strip with holes 1-5: a hole
    both cover whole goes to the larger, a hole split between them to the one covering more of it."""
    labels = np.array([[0, 1, 1, 0, 2, 2, 2, 0, 3, 3, 0, 4, 0, 5, 5] + [0] * 25])
    crops = [np.zeros_like(labels, bool) for _ in range(2)]
    nears = [np.zeros_like(labels, bool) for _ in range(2)]
    crops[0][0, 0:5] = True                        # hole 1 whole, 1 of hole 2's 3 pixels
    crops[1][0, 0:3] = crops[1][0, 5:10] = True    # hole 1 whole, 2 of hole 2's, hole 3 whole
    nears[0][0, 0:8] = True
    nears[1][0, 0:12] = True                       # hole 4 only near face 1, hole 5 near neither
    owner = photo_completion.hole_owners(labels, 5, crops, nears)
    assert owner.tolist() == [-1, 0, 1, 1, 1, -1]  # label 0 is the known pixels
