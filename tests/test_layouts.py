"""layouts.py: both layouts' names and widths against the original's code, and the models built from them."""
from __future__ import annotations

import pytest
import tensorflow as tf

from dcgan_completion.networks import layouts
from dcgan_completion.networks.storage import infer_config, variable_name
from model import DCGAN


def later_generator_widths(image_size: int, gf_dim: int) -> list[tuple[int, int]]:
    """(size, filters) after g_h0_lin and each g_h{i}, by the later revision's own loop."""
    out, depth_mul, size = [(4, gf_dim * 8)], 8, 8
    while size < image_size:
        out.append((size, gf_dim * depth_mul))
        depth_mul //= 2
        size *= 2
    return out + [(size, 3)]


@pytest.mark.parametrize("image_size", [8, 16, 32, 64, 128])
def test_later_generator_widths_follow_the_originals_loop(image_size):
    start, widths = layouts.generator_plan("later", image_size, 64, 3)
    assert [(start * 2 ** i, w) for i, w in enumerate(widths)] == later_generator_widths(image_size, 64)


def test_the_64x64_layouts_are_those_the_original_describes():
    # The article's (ORIGINAL.md): 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3.
    assert layouts.generator_plan("article", 64, 64, 3) == (4, [512, 256, 128, 64, 3])
    assert layouts.generator_plan("later", 64, 64, 3) == (4, [512, 512, 256, 128, 3])
    assert layouts.discriminator_names("article", 4) == (["d_bn1", "d_bn2", "d_bn3"], "d_h3_lin")
    assert layouts.discriminator_names("later", 4) == (["d_bn0", "d_bn1", "d_bn2"], "d_h4_lin")
    article, later = layouts.expected_shapes(64, 100, 64, 64, 3), layouts.expected_shapes(64, 100, 64, 64, 3, "later")
    assert len(article) == len(later) == 48
    assert article["generator/g_h1/w"] == [5, 5, 256, 512] and later["generator/g_h1/w"] == [5, 5, 512, 512]
    assert article["discriminator/d_h3_lin/Matrix"] == later["discriminator/d_h4_lin/Matrix"] == [8192, 1]


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("image_size, c_dim", [(8, 1), (32, 3), (128, 1)])
def test_models_have_the_expected_variables_and_are_recognised(layout, image_size, c_dim):
    model = DCGAN(image_size=image_size, z_dim=5, gf_dim=2, df_dim=3, c_dim=c_dim, layout=layout)
    shapes = {variable_name(v): v.shape.as_list() for v in model.model_variables}
    assert shapes == layouts.expected_shapes(image_size, 5, 2, 3, c_dim, layout)
    assert infer_config(shapes) == model.config
    assert ("layout" in model.config.record()) == (layout == "later")
    images = model.generate(tf.zeros([2, 5]))
    assert images.shape == (2, image_size, image_size, c_dim)
    assert model.discriminator(images, training=False)[1].shape == (2, 1)


def test_layouts_the_port_cannot_build_are_value_errors():
    with pytest.raises(ValueError, match=r"the later layout works up to 128x128, not 256"):
        DCGAN(image_size=256, gf_dim=2, df_dim=2, z_dim=4, layout="later")
    with pytest.raises(ValueError, match=r"unknown layout 'head'; choose from article, later"):
        DCGAN(image_size=16, layout="head")
    with pytest.raises(ValueError, match=r"image_size must be a power of two >= 8, not 48"):
        DCGAN(image_size=48)
