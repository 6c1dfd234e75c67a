#!/usr/bin/env python3
"""The article's normal-distribution figures: a port of simple-distributions.py.

Writes normal-pdf.png (the standard normal density), normal-samples.png (samples
drawn on a line) and normal-2d.png (contours of a 2-D standard normal with samples)
to --outDir. The original used mlab.bivariate_normal, gone from matplotlib; the
density here comes from scipy.stats.multivariate_normal, and seaborn's style from
the copy that matplotlib ships.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import multivariate_normal, norm  # noqa: E402

import utils  # noqa: E402

DPI = 100  # with the figure sizes below: 640x480, 700x300 and 640x480 pixels


def save(figure: plt.Figure, path: Path) -> None:
    utils.atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))
    plt.close(figure)


def plot_pdf(path: Path) -> None:
    x = np.arange(-3, 3, 0.001)
    figure = plt.figure(figsize=(6.4, 4.8))
    plt.plot(x, norm.pdf(x, 0, 1))
    plt.tight_layout()
    save(figure, path)


def plot_samples(path: Path, rng: np.random.Generator, count: int = 35) -> None:
    figure = plt.figure(figsize=(7, 3))
    plt.scatter(rng.normal(0, 1, count), np.zeros(count), color="k")
    plt.xlim((-3, 3))
    plt.gca().get_yaxis().set_visible(False)
    save(figure, path)


def plot_2d(path: Path, rng: np.random.Generator, count: int = 200) -> None:
    grid = np.arange(-3.0, 3.0, 0.025)
    x, y = np.meshgrid(grid, grid)
    density = multivariate_normal(mean=[0, 0], cov=np.eye(2)).pdf(np.dstack([x, y]))
    figure = plt.figure(figsize=(6.4, 4.8))
    contours = plt.contour(x, y, density)
    plt.clabel(contours, inline=True, fontsize=10)
    samples = rng.multivariate_normal([0, 0], np.eye(2), count)
    plt.scatter(samples[:, 0], samples[:, 1], color="k")
    save(figure, path)


@utils.expected_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outDir", default=".", help="folder for the three PNG files")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the samples")
    args = parser.parse_args(argv)
    out = utils.output_folder(args.outDir, "output folder")
    rng = np.random.default_rng(args.seed)
    plt.style.use("seaborn-v0_8-whitegrid")  # the article's figures used seaborn's whitegrid
    plot_pdf(out / "normal-pdf.png")
    plot_samples(out / "normal-samples.png", rng)
    plot_2d(out / "normal-2d.png", rng)
    print(f"wrote normal-pdf.png, normal-samples.png and normal-2d.png to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
