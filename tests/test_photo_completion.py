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


def test_a_photo_is_told_from_an_aligned_face():
    """looks_like_photo on real images with the shipped model's framing: Grace Hopper (512x600, not square) and
    scikit-image's astronaut (512x512, her face's square a third of it) are photos; a held-out portrait at the
    model's 64x64 and at 256x256, and a flat image with no face, are aligned faces."""
    import pytest
    from matplotlib import cbook

    import utils
    from dcgan_completion.networks import storage
    data = pytest.importorskip("skimage.data")
    cut = storage.read_framing(ROOT / "checkpoints" / "face64")
    hopper = utils.read_rgb(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    assert photo_completion.looks_like_photo(hopper, 64, cut=cut) == (
        True, "a face was found in the 512x600 image, which is not square")
    photo, why = photo_completion.looks_like_photo(data.astronaut(), 64, cut=cut)
    side = int(why.split(" px")[0].rsplit(" ", 1)[1])
    assert photo and 100 < side < 0.8 * 512 and why.endswith("in a 512x512 image"), why
    portrait = utils.read_rgb(ROOT / "data" / "artflow" / "heldout" / "portrait_000.png")
    assert photo_completion.looks_like_photo(portrait, 64, cut=cut) == (False, "the image is the model's 64x64")
    photo, why = photo_completion.looks_like_photo(cv2.resize(portrait, (256, 256)), 64, cut=cut)
    assert not photo and why.endswith("fills the 256x256 image"), why
    assert photo_completion.looks_like_photo(np.full((90, 120, 3), 128, np.uint8), 64, cut=cut) == (
        False, "no face was found in the 120x90 image")


def test_a_black_and_white_photo_gets_a_grey_fill():
    """paste_fills with a coloured fill: in a grey photo the hole is filled in grey (every channel equal);
    in a colour photo the fill keeps its colour, within the photo's own."""
    matrix = similarity(0.5, 0, (40, 40), (S / 2, S / 2))
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(60, 200, (80, 80, 1), dtype=np.uint8), 3, axis=2)
    hole = np.zeros((80, 80), bool)
    hole[30:50, 30:50] = True
    face = photo_completion.Face(matrix, np.zeros((S, S, 3), np.uint8), np.ones((S, S, 1), np.float32), hole,
                                 np.zeros_like(hole))
    fill = np.zeros((S, S, 3), np.uint8)
    fill[..., 0], fill[..., 2] = 200, 40  # red
    result = photo_completion.paste_fills(grey, [face], [fill], blend="none")
    assert (result[hole][:, 0] == result[hole][:, 1]).all() and (result[hole][:, 1] == result[hole][:, 2]).all()
    assert abs(int(result[hole][0, 0]) - round((200 + 0 + 40) / 3)) <= 1
    colour = grey.copy()
    colour[..., 0] = np.clip(colour[..., 0].astype(int) + 30, 0, 255)
    result = photo_completion.paste_fills(colour, [face], [fill], blend="none")
    assert (result[hole][:, 0] > result[hole][:, 2] + 20).all()  # red, as far as the photo's colours go


def test_the_fill_keeps_to_the_colours_around_the_hole():
    """limit_chroma: a teal fill in a hole of flat skin takes the skin's chroma and keeps its own luma
    (ITU-R BT.601's Y, worked here by hand), inside the hole only; a fill of the skin's own colours is
    unchanged."""
    skin = np.array([200, 150, 120], np.uint8)
    image = np.tile(skin, (40, 40, 1))
    hole = np.zeros((40, 40), bool)
    hole[15:25, 12:28] = True
    teal = np.tile(np.array([40, 160, 170], np.uint8), (40, 40, 1))
    limited = compositing.limit_chroma(teal, image, hole)
    assert (limited[~hole] == teal[~hole]).all()

    def luma(rgb):
        return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]

    def chroma(rgb):  # BT.601's Cr and Cb, offset by 128
        y = luma(rgb.astype(float))
        return np.stack([(rgb[..., 0] - y) * 0.713 + 128, (rgb[..., 2] - y) * 0.564 + 128], axis=-1)

    inside = limited[hole].astype(float)
    assert np.abs(luma(inside) - luma(teal[hole].astype(float))).max() < 2.5
    assert np.abs(chroma(inside) - chroma(skin.astype(float))).max() < 2.5
    assert (compositing.limit_chroma(image.copy(), image, hole) == image).all()
