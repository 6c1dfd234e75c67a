"""The original's two network layouts: the one place that names their layers and sets their widths.

`article`: the layout of the article (2016) and of the face model its repository shipped
(DCGAN.model-60502): G starts at (S/16)x(S/16) with gf_dim*8 filters and halves them in each
transposed conv (4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3 at 64x64); D's batch
norms are d_bn1..d_bn3 and its last layer d_h3_lin.

`later`: the repository's later revision (July 2017, its last commit), which built G in a loop
from 4x4 with doubled widths (4x4x512 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3) and
renamed D's batch norms d_bn0..d_bn2 and its last layer d_h4_lin.

Both eras save the same TF1 format with the same variable leaves (`w`/`biases`, `Matrix`/`bias`,
`beta`/`gamma`/`moving_mean`/`moving_variance`); `guess_sizes` and `expected_shapes` let
storage.py tell them apart from a checkpoint's names and shapes. No TensorFlow here.
"""
from __future__ import annotations

import math
import re

from utils import is_valid_image_size

LAYOUTS = ("article", "later")
DEFAULT_LAYOUT = "article"
KERNEL = 5  # every conv and transposed conv of the original is 5x5, stride 2
SUMMARY = {  # each layout at 64x64 with the default widths, for messages
    "article": "at 64x64: generator 4x4x512-8x8x256-16x16x128-32x32x64, discriminator d_bn1..d_bn3 and d_h3_lin",
    "later": "at 64x64: generator 4x4x512-8x8x512-16x16x256-32x32x128, discriminator d_bn0..d_bn2 and d_h4_lin",
}
LATER_MAX_SIZE = 128  # past it the later layout's loop runs out of filters (gf_dim * (8 // 16) = 0)


def num_layers(image_size: int) -> int:
    """D's stride-2 convs (and the article G's transposed convs): 4 as in the original, 3 at 8x8."""
    return min(4, int(math.log2(image_size)))


def check(layout: str, image_size: int) -> None:
    """Raise ValueError for a layout this port cannot build at this size."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if not is_valid_image_size(image_size):
        raise ValueError(f"image_size must be a power of two >= 8, not {image_size}")
    if layout == "later" and image_size > LATER_MAX_SIZE:
        raise ValueError(f"the later layout works up to {LATER_MAX_SIZE}x{LATER_MAX_SIZE}, not {image_size}: its "
                         f"generator halves gf_dim*8 filters per layer and has none left at 256")


def generator_plan(layout: str, image_size: int, gf_dim: int, c_dim: int) -> tuple[int, list[int]]:
    """(start, widths): g_h0_lin makes start x start x widths[0] (then g_bn0); each g_h{i} doubles
    the size to widths[i] filters (then g_bn{i}), and the last makes the c_dim-channel image."""
    if layout == "article":
        layers = num_layers(image_size)
        return image_size // 2 ** layers, [gf_dim * 2 ** (layers - 1 - i) for i in range(layers)] + [c_dim]
    layers = int(math.log2(image_size)) - 2  # from 4x4
    return 4, [gf_dim * 8] + [gf_dim * (8 // 2 ** i) for i in range(layers - 1)] + [c_dim]


def discriminator_names(layout: str, layers: int) -> tuple[list[str], str]:
    """The batch norms after convs d_h1_conv..d_h{layers-1}_conv, and the last (linear) layer."""
    shift = 0 if layout == "article" else 1
    return [f"d_bn{i - shift}" for i in range(1, layers)], f"d_h{layers - 1 + shift}_lin"


def discriminator_widths(image_size: int, df_dim: int) -> tuple[list[int], int]:
    """Filters of d_h0_conv, d_h1_conv, ... and the size of the last conv's output (flattened for the linear layer)."""
    layers = num_layers(image_size)
    return [df_dim * 2 ** i for i in range(layers)], image_size // 2 ** layers


def expected_shapes(image_size: int, z_dim: int, gf_dim: int, df_dim: int, c_dim: int,
                    layout: str = DEFAULT_LAYOUT) -> dict[str, list[int]]:
    """Every variable of the networks, as the original's checkpoints name it, and its shape (G first)."""
    shapes: dict[str, list[int]] = {}

    def layer(scope, weights, kind):
        leaves = ("Matrix", "bias") if kind == "linear" else ("w", "biases")
        shapes[f"{scope}/{leaves[0]}"] = weights
        shapes[f"{scope}/{leaves[1]}"] = [weights[2] if kind == "deconv" else weights[-1]]

    def batch_norm(scope, channels):
        for leaf in ("beta", "gamma", "moving_mean", "moving_variance"):
            shapes[f"{scope}/{leaf}"] = [channels]

    start, widths = generator_plan(layout, image_size, gf_dim, c_dim)
    layer("generator/g_h0_lin", [z_dim, start * start * widths[0]], "linear")
    batch_norm("generator/g_bn0", widths[0])
    for i in range(1, len(widths)):
        layer(f"generator/g_h{i}", [KERNEL, KERNEL, widths[i], widths[i - 1]], "deconv")  # w is [5, 5, out, in]
        if i < len(widths) - 1:
            batch_norm(f"generator/g_bn{i}", widths[i])
    d_widths, end = discriminator_widths(image_size, df_dim)
    bn_names, linear_name = discriminator_names(layout, len(d_widths))
    channels = c_dim
    for i, out in enumerate(d_widths):
        layer(f"discriminator/d_h{i}_conv", [KERNEL, KERNEL, channels, out], "conv")
        if i > 0:
            batch_norm(f"discriminator/{bn_names[i - 1]}", out)
        channels = out
    layer(f"discriminator/{linear_name}", [end * end * channels, 1], "linear")
    return shapes


def likely_layout(names) -> str:
    """The layout a checkpoint's names point to: only the later one has a d_bn0."""
    return "later" if "discriminator/d_bn0/beta" in names else "article"


def guess_sizes(shapes: dict, layout: str) -> dict:
    """The model size a checkpoint of this layout would have, from a few of its shapes
    (KeyError names a variable the guess needs; expected_shapes then checks every one)."""
    z_dim, start_units = shapes["generator/g_h0_lin/Matrix"]
    _, _, c_dim, df_dim = shapes["discriminator/d_h0_conv/w"]
    start_channels = shapes["generator/g_h1/w"][3]
    layers = sum(1 for name in shapes if re.fullmatch(r"generator/g_h\d+/w", name))
    start = int(round(math.sqrt(start_units / max(start_channels, 1))))
    gf_dim = start_channels // 2 ** (layers - 1) if layout == "article" else start_channels // 8
    return dict(image_size=start * 2 ** layers, z_dim=z_dim, gf_dim=gf_dim, df_dim=df_dim, c_dim=c_dim)
