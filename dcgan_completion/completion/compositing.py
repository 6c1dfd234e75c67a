"""Putting a fill into its image, one way for the command line and the web app: the exact
composite (known pixels kept, the fill in the hole), a paste at the input's size, and the
paper's Poisson blend (Perez et al. 2003), over the whole image or a window around a hole.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import splu

import utils


CHROMA_RING = 7               # photo pixels around a hole whose colours bound the fill's
CHROMA_PERCENTILES = (2, 98)  # of the ring's chroma: the range the fill's chroma is clipped to


def limit_chroma(fill: np.ndarray, image: np.ndarray, hole: np.ndarray, ring: int = CHROMA_RING) -> np.ndarray:
    """fill (uint8 (H, W, 3)) with the chroma (YCrCb's Cr and Cb) of its hole pixels clipped to the range
    (CHROMA_PERCENTILES) of image's pixels within `ring` pixels around the hole, its luma kept: the model
    paints some irises teal or purple, and a fill may hold no colour that its surroundings do not. Pixels
    outside the hole or within that range, and every pixel of a hole with no such ring, are fill's."""
    kernel = np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)
    around = cv2.dilate(hole.astype(np.uint8), kernel).astype(bool) & ~hole
    if not around.any() or not hole.any():
        return fill
    low, high = np.percentile(cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)[around][:, 1:].astype(np.float64),
                              CHROMA_PERCENTILES, axis=0)
    ycc = cv2.cvtColor(fill, cv2.COLOR_RGB2YCrCb).astype(np.float64)
    outside = hole & ((ycc[..., 1:] < low) | (ycc[..., 1:] > high)).any(axis=2)  # only these change
    ycc[..., 1:] = np.clip(ycc[..., 1:], low, high)
    limited = cv2.cvtColor(np.clip(np.rint(ycc), 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)
    return np.where(outside[:, :, None], limited, fill).astype(np.uint8)


def composite(images: np.ndarray, fill: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Known pixels from `images` (uint8, exactly), the rest from `fill` ([-1, 1] floats);
    masks: each image's, (N, S, S, 1)."""
    return np.where(masks > 0.5, images, utils.to_uint8(fill)).astype(np.uint8)


def paste(image: np.ndarray, fill: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """image with `fill` (uint8, same size) in the hole (bool (H, W)); every other pixel is image's."""
    return np.where(hole[:, :, None], fill, image).astype(np.uint8)


def poisson_blend(image: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson-blend `fill` into the hole (mask == 0) of `image` (Perez et al. 2003, as in the paper).

    Inside the hole the result keeps fill's gradients, and meets image's known pixels at the
    hole's border; known pixels are unchanged. Solves one sparse linear system per image
    (the image border is a Neumann boundary, so holes that touch it work too).
    Returns uint8. A mask with no known pixel returns `fill` unchanged.
    """

    hole = mask[:, :, 0] < 0.5
    if not hole.any() or hole.all():
        return np.where(hole[:, :, None], fill, image).astype(np.uint8)
    height, width = hole.shape
    index = -np.ones(hole.shape, dtype=np.int64)
    index[hole] = np.arange(hole.sum())
    target, source = image.astype(np.float64), fill.astype(np.float64)
    rows, cols, values = [], [], []
    rhs = np.zeros((int(hole.sum()), image.shape[2]))
    ys, xs = np.nonzero(hole)
    diagonal = np.zeros(len(ys))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        p, qy, qx = index[ys[inside], xs[inside]], ny[inside], nx[inside]
        diagonal[inside] += 1
        # Guidance field: the fill's own gradient.
        rhs[p] += source[ys[inside], xs[inside]] - source[qy, qx]
        neighbour_in_hole = hole[qy, qx]
        rows.append(p[neighbour_in_hole])
        cols.append(index[qy[neighbour_in_hole], qx[neighbour_in_hole]])
        values.append(-np.ones(neighbour_in_hole.sum()))
        # Dirichlet boundary: known neighbours take the image's values.
        known = ~neighbour_in_hole
        rhs[p[known]] += target[qy[known], qx[known]]
    n = len(ys)
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    values.append(diagonal)
    matrix = coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    solution = splu(matrix.tocsc()).solve(rhs)
    out = target.copy()
    out[hole] = solution
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def blend_into(image: np.ndarray, fill: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Poisson-blend fill into image's hole (bool (H, W)); only a window around the hole is solved,
    which gives the whole photo's result, as the blend only reaches a pixel beyond the hole."""
    rows, cols = np.nonzero(hole)
    top, left = max(rows.min() - 1, 0), max(cols.min() - 1, 0)
    bottom, right = rows.max() + 2, cols.max() + 2
    window = (slice(top, bottom), slice(left, right))
    keep = (~hole[window]).astype(np.float32)[:, :, None]
    out = image.copy()
    out[window] = poisson_blend(image[window], fill[window], keep)
    return out
