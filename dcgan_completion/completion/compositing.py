"""Putting a fill into its image, one way for the command line and the web app: the exact
composite (known pixels kept, the fill in the hole), a paste at the input's size, and the
paper's Poisson blend (Perez et al. 2003), over the whole image or a window around a hole.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import splu

import utils


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
