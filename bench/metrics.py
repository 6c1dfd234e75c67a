"""Image-completion quality metrics: PSNR and SSIM over a region (pure numpy/scipy functions).

Images are uint8 (H, W, 3) (or (H, W)) with data range 255. A region is a mask
of shape (H, W) or (H, W, C), nonzero where pixels count; None means the whole
image. For completion, the hole's region is 1 - mask (mask 1 = known pixel).

PSNR: 10 log10(255^2 / MSE), the MSE over the region's pixels and channels.
Identical images (MSE 0) give PSNR_CAP = 100 dB rather than infinity, so that
means over images and the JSON report stay finite; pass cap=None for inf.
(Any nonzero error on a 64x64 image is below 90 dB, so 100 dB means exact.)

SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5, truncated at
3.5 sigma, as skimage's gaussian_weights=True), K1 = 0.01, K2 = 0.03,
population (not sample) covariances, computed on each channel and averaged
over channels. The SSIM map has one value per pixel (the image is extended by
reflection at its borders, as scipy's and skimage's filters do) and is averaged
over the region's pixels. Unlike skimage, which drops a 5-pixel border before
averaging the whole image, every pixel counts here, so holes at the border count.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

DATA_RANGE = 255.0
PSNR_CAP = 100.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: an 11x11 window
K1, K2 = 0.01, 0.03


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3:
        raise ValueError(f"images must be (H, W) or (H, W, C), not {a.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def region_pixels(region: np.ndarray | None, shape: tuple) -> np.ndarray:
    """A region mask as bool (H, W): a pixel is in it when any channel of the mask is nonzero."""
    height, width = shape[:2]
    if region is None:
        return np.ones((height, width), dtype=bool)
    region = np.asarray(region)
    if region.ndim == 3:
        region = region.any(axis=2) if region.dtype == bool else (region != 0).any(axis=2)
    if region.shape != (height, width):
        raise ValueError(f"region mask has shape {region.shape}, the image {(height, width)}")
    region = region != 0
    if not region.any():
        raise ValueError("the region is empty")
    return region


def hole_region(mask: np.ndarray) -> np.ndarray:
    """The pixels to fill, as bool (H, W), from a completion mask (1 = known, 0 = hole)."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.min(axis=2)
    return mask < 0.5


def mse(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean squared error over the region's pixels and channels."""
    a, b = _pair(a, b)
    pixels = region_pixels(region, a.shape)
    return float(np.mean((a[pixels] - b[pixels]) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None,
         cap: float | None = PSNR_CAP) -> float:
    """PSNR in dB over the region (data range 255); MSE 0 gives cap (inf when cap is None)."""
    error = mse(a, b, region)
    if error == 0.0:
        return math.inf if cap is None else float(cap)
    value = 10.0 * math.log10(DATA_RANGE ** 2 / error)
    return value if cap is None else min(value, float(cap))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The per-pixel SSIM map (H, W), averaged over channels."""
    a, b = _pair(a, b)
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2

    def blur(x):
        return ndimage.gaussian_filter(x, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    maps = []
    for channel in range(a.shape[2]):
        x, y = a[..., channel], b[..., channel]
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x * mu_x
        var_y = blur(y * y) - mu_y * mu_y
        cov = blur(x * y) - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        denominator = (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)
        maps.append(numerator / denominator)
    return np.mean(maps, axis=0)


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean SSIM over the region's pixels (the whole image when region is None)."""
    values = ssim_map(a, b)
    return float(values[region_pixels(region, values.shape)].mean())


def completion_scores(completed: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM over the hole (mask 0) and over the whole image."""
    hole = hole_region(mask)
    return {
        "psnr_hole": psnr(completed, truth, hole),
        "ssim_hole": ssim(completed, truth, hole),
        "psnr_full": psnr(completed, truth),
        "ssim_full": ssim(completed, truth),
    }
