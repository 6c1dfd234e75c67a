"""ops.py against independent numpy references."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import BatchNorm, Conv2d, Conv2dTranspose, Linear, leaky_relu

ROOT = Path(__file__).resolve().parents[1]


def same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: output ceil(size / stride), extra pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


def np_conv2d(x, w, b, stride=2):
    """Direct (cross-correlation) convolution, SAME padding, in float64."""
    n, h, wd, _ = x.shape
    k = w.shape[0]
    oh, top = same_pad(h, k, stride)
    ow, left = same_pad(wd, k, stride)
    out = np.zeros((n, oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            for di in range(k):
                for dj in range(k):
                    y, xx = i * stride + di - top, j * stride + dj - left
                    if 0 <= y < h and 0 <= xx < wd:
                        out[:, i, j, :] += x[:, y, xx, :] @ w[di, dj]
    return out + b


def np_conv2d_transpose(x, w, b, stride=2):
    """Transposed convolution to (stride * H, stride * W), SAME: scatter every input pixel.

    w is [k, k, out, in]; it is the adjoint of np_conv2d on a (stride*H, stride*W) input.
    """
    n, h, wd, _ = x.shape
    k = w.shape[0]
    oh, ow = h * stride, wd * stride
    _, top = same_pad(oh, k, stride)
    _, left = same_pad(ow, k, stride)
    out = np.zeros((n, oh, ow, w.shape[2]))
    for i in range(h):
        for j in range(wd):
            for di in range(k):
                for dj in range(k):
                    y, xx = i * stride + di - top, j * stride + dj - left
                    if 0 <= y < oh and 0 <= xx < ow:
                        out[:, y, xx, :] += x[:, i, j, :] @ w[di, dj].T
    return out + b


def randomise(layer, rng, scale=0.3):
    for var in layer.trainable_variables:
        var.assign(rng.normal(0, scale, var.shape.as_list()).astype(np.float32))


@pytest.mark.parametrize("h, w, out", [(8, 8, (4, 4)), (7, 5, (4, 3)), (1, 2, (1, 1)), (9, 6, (5, 3))])
def test_conv2d_shape_and_values(h, w, out):
    rng = np.random.default_rng(h * 10 + w)
    layer = Conv2d(3, 4, "conv")
    randomise(layer, rng)
    x = rng.normal(size=(2, h, w, 3)).astype(np.float32)
    y = layer(tf.constant(x)).numpy()
    assert y.shape == (2, *out, 4)
    expected = np_conv2d(x.astype(np.float64), layer.w.numpy().astype(np.float64), layer.biases.numpy())
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("h, w", [(4, 4), (3, 5), (1, 1)])
def test_conv2d_transpose_shape_values_and_adjoint(h, w):
    rng = np.random.default_rng(h * 10 + w)
    layer = Conv2dTranspose(4, 3, "deconv")
    assert layer.w.shape == (5, 5, 3, 4)  # [k, k, out, in] as the original
    randomise(layer, rng)
    x = rng.normal(size=(2, h, w, 4)).astype(np.float32)
    y = layer(tf.constant(x))
    assert y.shape == (2, 2 * h, 2 * w, 3)
    assert layer(tf.constant(x)).shape.as_list() == [2, 2 * h, 2 * w, 3]
    wt, b = layer.w.numpy().astype(np.float64), layer.biases.numpy()
    np.testing.assert_allclose(y.numpy(), np_conv2d_transpose(x.astype(np.float64), wt, b), rtol=1e-5, atol=1e-5)
    # Adjoint of the convolution with the same w (biases aside): <conv(u), x> == <u, convT(x)>.
    u = rng.normal(size=(2, 2 * h, 2 * w, 3))
    conv_u = np_conv2d(u, wt, 0.0)
    assert conv_u.shape == x.shape
    lhs = np.sum(conv_u * x)
    rhs = np.sum(u * (y.numpy() - b))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)


def test_linear():
    rng = np.random.default_rng(0)
    layer = Linear(6, 3, "lin")
    assert layer.Matrix.shape == (6, 3) and layer.bias.shape == (3,)
    randomise(layer, rng)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), x @ layer.Matrix.numpy() + layer.bias.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_leaky_relu():
    x = np.array([-10.0, -1.0, -0.5, 0.0, 0.3, 2.0], np.float32)
    np.testing.assert_allclose(leaky_relu(tf.constant(x)).numpy(), np.where(x > 0, x, 0.2 * x), rtol=1e-7)


def test_batch_norm_training_and_inference():
    rng = np.random.default_rng(1)
    bn = BatchNorm(3, "bn")
    gamma, beta = np.array([1.5, 0.5, 2.0], np.float32), np.array([0.1, -0.2, 0.3], np.float32)
    bn.gamma.assign(gamma)
    bn.beta.assign(beta)
    # A tiny variance in channel 0, so that epsilon 1e-5 visibly matters.
    x = rng.normal(size=(4, 3, 2, 3)) * np.array([2e-3, 1.0, 3.0]) + np.array([0.5, -1.0, 2.0])
    x = x.astype(np.float32)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(0, 1, 2)), x64.var(axis=(0, 1, 2))  # biased, as tf.nn.moments
    expected = gamma * (x64 - mean) / np.sqrt(var + 1e-5) + beta
    np.testing.assert_allclose(bn(tf.constant(x), training=True).numpy(), expected, rtol=1e-4, atol=1e-4)
    moving_mean, moving_var = 0.9 * 0.0 + 0.1 * mean, 0.9 * 1.0 + 0.1 * var
    np.testing.assert_allclose(bn.moving_mean.numpy(), moving_mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance.numpy(), moving_var, rtol=1e-5, atol=1e-7)
    # A second training call moves the averages again.
    x2 = (rng.normal(size=(4, 3, 2, 3)) * 0.7 + 0.2).astype(np.float32)
    bn(tf.constant(x2), training=True)
    moving_mean = 0.9 * moving_mean + 0.1 * x2.astype(np.float64).mean(axis=(0, 1, 2))
    moving_var = 0.9 * moving_var + 0.1 * x2.astype(np.float64).var(axis=(0, 1, 2))
    np.testing.assert_allclose(bn.moving_mean.numpy(), moving_mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance.numpy(), moving_var, rtol=1e-5, atol=1e-7)
    # Inference: the moving averages, and nothing moves.
    bn.moving_variance.assign([1e-6, 0.5, 4.0])
    moving_var = np.array([1e-6, 0.5, 4.0])
    expected = gamma * (x64 - moving_mean) / np.sqrt(moving_var + 1e-5) + beta
    np.testing.assert_allclose(bn(tf.constant(x), training=False).numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_mean.numpy(), moving_mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance.numpy(), moving_var, rtol=1e-5, atol=1e-9)
    assert not bn.moving_mean.trainable and not bn.moving_variance.trainable
    assert {v.name.split(":")[0].split("/")[-1] for v in bn.trainable_variables} == {"beta", "gamma"}


@pytest.mark.parametrize("compute_dtype", [None, tf.bfloat16])
def test_batch_norm_inference_gradient(compute_dtype):
    """Completion's gradient through a batch norm at inference: d sum(r * bn(x)) / dx = r * gamma /
    sqrt(moving_variance + eps), in float32 (x * a + b) and bfloat16 (the fused kernel) alike."""
    rng = np.random.default_rng(2)
    bn = BatchNorm(3, "bn", compute_dtype=compute_dtype)
    gamma, variance = np.array([1.5, -0.5, 2.0]), np.array([1e-6, 0.5, 4.0])
    for var, value in ((bn.gamma, gamma), (bn.beta, [0.1, -0.2, 0.3]), (bn.moving_mean, [0.5, -1.0, 2.0]),
                       (bn.moving_variance, variance)):
        var.assign(np.asarray(value, np.float32))
    dtype = compute_dtype or tf.float32
    x = tf.cast(rng.normal(size=(2, 4, 4, 3)), dtype)
    r = rng.normal(size=(2, 4, 4, 3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(tf.cast(bn(x, training=False), tf.float32) * r.astype(np.float32))
    tolerance = 1e-5 if compute_dtype is None else 1e-2
    np.testing.assert_allclose(tape.gradient(total, x).numpy().astype(np.float64), r * gamma / np.sqrt(variance + 1e-5),
                               rtol=tolerance, atol=tolerance)


def test_initialisers():
    tf.random.set_seed(123)
    conv = Conv2d(64, 64, "conv")
    deconv = Conv2dTranspose(64, 64, "deconv")
    lin = Linear(256, 400, "lin")
    bn = BatchNorm(16, "bn")
    conv_w = conv.w.numpy()
    assert conv_w.shape == (5, 5, 64, 64)
    # Truncated at two standard deviations: std 0.02 * 0.8796 = 0.0176, nothing beyond 0.04.
    assert abs(conv_w.mean()) < 5e-4
    assert conv_w.std() == pytest.approx(0.0176, rel=0.02)
    assert np.abs(conv_w).max() <= 0.04 + 1e-7
    for w in (deconv.w.numpy(), lin.Matrix.numpy()):
        assert w.size > 100_000
        assert abs(w.mean()) < 5e-4
        assert w.std() == pytest.approx(0.02, rel=0.02)
        assert np.abs(w).max() > 0.06  # a plain normal, not truncated
    for b in (conv.biases, deconv.biases, lin.bias, bn.beta, bn.moving_mean):
        np.testing.assert_array_equal(b.numpy(), 0.0)
    for one in (bn.gamma, bn.moving_variance):
        np.testing.assert_array_equal(one.numpy(), 1.0)
    assert (ops.BN_DECAY, ops.BN_EPSILON, ops.STDDEV) == (0.9, 1e-5, 0.02)


def test_variable_names_follow_the_scopes():
    with tf.name_scope("generator"):
        layer = Conv2dTranspose(4, 3, "g_h1")
    assert sorted(v.name for v in layer.variables) == ["generator/g_h1/biases:0", "generator/g_h1/w:0"]
    lin = Linear(2, 3, "d_h3_lin")
    assert sorted(v.name for v in lin.variables) == ["d_h3_lin/Matrix:0", "d_h3_lin/bias:0"]


@pytest.fixture(params=["phases", "merged"])
def phases(request, monkeypatch):
    """Layers built while this is active run their stride-2 convolutions by phases (one way or the
    other), in any precision."""
    monkeypatch.setattr(ops, "phase_method", lambda channels, compute_dtype, phases=None: request.param)
    return request.param


def gradients(layer, x, u):
    """d<layer(x), u>/dx and d<layer(x), u>/dw, in float64."""
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(layer(x) * tf.constant(u, tf.float32))
    dx, dw = tape.gradient(total, [x, layer.w])
    return dx.numpy().astype(np.float64), dw.numpy().astype(np.float64)


@pytest.mark.parametrize("h, w", [(4, 4), (3, 5), (1, 1)])
def test_transposed_convolution_by_phases_matches_numpy_and_its_gradients(phases, h, w):
    """Forward: the numpy scatter; input gradient: the numpy convolution (the adjoint); filter
    gradient: that of TensorFlow's own transposed convolution."""
    rng = np.random.default_rng(h * 10 + w)
    layer = Conv2dTranspose(4, 3, "deconv")
    assert layer.phases == phases
    randomise(layer, rng)
    x = rng.normal(size=(2, h, w, 4))
    u = rng.normal(size=(2, 2 * h, 2 * w, 3))
    wt, b = layer.w.numpy().astype(np.float64), layer.biases.numpy()
    y = layer(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(y, np_conv2d_transpose(x, wt, b), rtol=1e-5, atol=1e-5)
    dx, dw = gradients(layer, x, u)
    np.testing.assert_allclose(dx, np_conv2d(u, wt, 0.0), rtol=1e-5, atol=1e-5)
    with tf.GradientTape() as tape:
        native = tf.nn.conv2d_transpose(tf.constant(x, tf.float32), layer.w, [2, 2 * h, 2 * w, 3], 2, "SAME")
        total = tf.reduce_sum(native * tf.constant(u, tf.float32))
    np.testing.assert_allclose(dw, tape.gradient(total, layer.w).numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("h, w", [(8, 8), (2, 6), (7, 5)])
def test_convolution_with_phase_gradients_matches_numpy(monkeypatch, h, w):
    """Forward: the numpy convolution; input gradient: the numpy transposed convolution (odd sizes
    fall back to TensorFlow's own gradient); filter gradient: TensorFlow's own convolution's."""
    rng = np.random.default_rng(h * 10 + w)
    monkeypatch.setattr(ops, "phase_method", lambda channels, compute_dtype, phases=None: "phases")
    layer = Conv2d(3, 4, "conv")
    assert layer.phases == "phases"
    randomise(layer, rng)
    x = rng.normal(size=(2, h, w, 3))
    wt, b = layer.w.numpy().astype(np.float64), layer.biases.numpy()
    y = layer(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(y, np_conv2d(x, wt, b), rtol=1e-5, atol=1e-5)
    u = rng.normal(size=y.shape)
    dx, dw = gradients(layer, x, u)
    if h % 2 == 0 and w % 2 == 0:
        np.testing.assert_allclose(dx, np_conv2d_transpose(u, wt, 0.0), rtol=1e-5, atol=1e-5)
    with tf.GradientTape(persistent=True) as tape:
        xt = tf.constant(x, tf.float32)
        tape.watch(xt)
        total = tf.reduce_sum(tf.nn.conv2d(xt, layer.w, 2, "SAME") * tf.constant(u, tf.float32))
    np.testing.assert_allclose(dx, tape.gradient(total, xt).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, tape.gradient(total, layer.w).numpy(), rtol=1e-5, atol=1e-4)


def test_phase_layers_run_eagerly_on_mirrored_variables(phases):
    """A float32 layer built under a MirroredStrategy and called outside a tf.function (as for the
    sample grid): its kernel, a MirroredVariable, reaches the custom gradient as a tensor (given
    the variable, eager mode took it for a captured one and raised). Same values and gradients
    as the layer built without a strategy."""
    rng = np.random.default_rng(5)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        layers = [Conv2dTranspose(4, 3, "deconv"), Conv2d(4, 3, "conv")]
    plain = [Conv2dTranspose(4, 3, "deconv"), Conv2d(4, 3, "conv")]
    assert type(layers[0].w).__name__ == "MirroredVariable"
    assert [layer.phases for layer in layers] == [phases, "phases" if phases == "phases" else None]
    for mirrored, single in zip(layers, plain):
        randomise(single, rng)
        mirrored.w.assign(single.w)
        mirrored.biases.assign(single.biases)
        x = rng.normal(size=(2, 4, 4, 4))
        u = rng.normal(size=single(tf.constant(x, tf.float32)).shape)
        np.testing.assert_allclose(mirrored(tf.constant(x, tf.float32)).numpy(),
                                   single(tf.constant(x, tf.float32)).numpy(), rtol=1e-6, atol=1e-6)
        for got, expected in zip(gradients(mirrored, x, u), gradients(single, x, u)):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_phases_on_a_cpu_in_bfloat16_and_to_few_channels():
    if tf.config.list_physical_devices("GPU"):
        assert ops.phase_method(3, tf.bfloat16) is None and ops.phase_method(256, tf.bfloat16) is None
        return
    assert ops.phase_method(256, tf.bfloat16) == "phases"
    assert ops.phase_method(256, None) is None and ops.phase_method(256, tf.float16) is None
    assert ops.phase_method(3, None) == ops.phase_method(3, tf.bfloat16) == "merged"
    # As measured (auto_precision): phases True or False override the rule, in any precision.
    assert ops.phase_method(256, None, phases=True) == "phases" and ops.phase_method(3, None, phases=True) == "merged"
    assert ops.phase_method(256, tf.bfloat16, phases=False) is None and ops.phase_method(3, None, phases=False) is None
    assert Conv2dTranspose(512, 256, "deconv", phases=True).phases == "phases"
    assert Conv2d(64, 128, "conv", compute_dtype=tf.bfloat16, phases=False).phases is None
    # A layer decides by the channels of its transposed convolution: a convolution's input's.
    assert Conv2dTranspose(64, 3, "deconv").phases == "merged"
    assert Conv2dTranspose(512, 256, "deconv", compute_dtype=tf.bfloat16).phases == "phases"
    assert Conv2dTranspose(512, 256, "deconv").phases is None
    assert Conv2d(3, 64, "conv").phases is None and Conv2d(64, 128, "conv").phases is None
    assert Conv2d(64, 128, "conv", compute_dtype=tf.bfloat16).phases == "phases"


@pytest.mark.parametrize("size, width", [(16, 8), (64, 64)], ids=["tiny", "full_width"])
@pytest.mark.parametrize("precision", [None, "bfloat16"])
def test_grappler_optimises_the_training_step_and_the_completion_without_errors(precision, size, width):
    """With the phase convolutions' custom gradients, Grappler must still succeed: where its remapper
    (or another of its passes) fails it logs an error line and optimises nothing in that graph. At the
    article's full width (64x64, 64 filters) too, where the layers to many channels take other kernels."""
    script = f"""
import tensorflow as tf, model
from dcgan_completion.completion import engine, masks
dcgan = model.DCGAN(image_size={size}, gf_dim={width}, df_dim={width}, seed=0, compute_dtype={precision!r})
images = tf.random.uniform([4, {size}, {size}, 3], -1.0, 1.0)
dcgan.train_step(images)
optimizer = engine.LatentOptimizer(dcgan, masks.make_mask("center", {size}), seed=0)
z = optimizer.initial_z(images)
optimizer.run(z, optimizer.initial_state(z), images, 0, 2)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    grappler_errors = [line for line in result.stderr.splitlines()
                       if re.match(r"E\d{4} ", line) and ("meta_optimizer" in line or "remapper" in line)]
    assert not grappler_errors and "remapper failed" not in result.stderr, result.stderr[-2000:]


# The activations Grappler's remapper fuses into a preceding convolution (or matmul) and its bias.
FUSABLE_ACTIVATIONS = {"Relu", "Relu6", "Elu", "LeakyRelu", "Tanh", "Sigmoid", "Selu", "Softplus", "Mish", "Gelu"}


def _fusable_activations_with_shared_bias(graph_def) -> list[str]:
    """Activations that read a convolution's or matmul's BiasAdd which something else (a gradient)
    also reads: the pattern the remapper fuses where oneDNN runs bfloat16 and then fails on."""
    found = []
    for function in [graph_def.node, *(f.node_def for f in graph_def.library.function)]:
        nodes = {n.name: n for n in function}
        readers: dict[str, int] = {}
        for node in function:
            for name in node.input:
                if not name.startswith("^") and name.split(":")[1:] in ([], ["0"], ["output", "0"]):
                    readers[name.split(":")[0]] = readers.get(name.split(":")[0], 0) + 1
        for node in function:
            source = nodes.get(node.input[0].split(":")[0]) if node.op in FUSABLE_ACTIVATIONS else None
            if source is not None and source.op == "BiasAdd" and readers.get(source.name, 0) > 1:
                contraction = nodes.get(source.input[0].split(":")[0])
                if contraction is not None and contraction.op in ("Conv2D", "MatMul"):
                    found.append(f"{node.op} {node.name} <- {source.name} <- {contraction.op}")
    return found


@pytest.mark.parametrize("precision", [None, "bfloat16"])
def test_no_graph_holds_a_fusion_that_the_remapper_breaks(precision):
    """By construction, on any CPU: no activation after a convolution's bias shares that bias's
    output with its gradient (tf.nn.leaky_relu's gradient reads it; the original's max(x, 0.2x)
    has no activation op), in the training step and the completion loop."""
    import model
    from dcgan_completion.completion import engine, masks
    dcgan = model.DCGAN(image_size=16, gf_dim=16, df_dim=16, seed=0, compute_dtype=precision)
    images = tf.random.uniform([2, 16, 16, 3], -1.0, 1.0)
    dcgan.compile()
    training = dcgan._train_step.get_concrete_function(images)
    optimizer = engine.LatentOptimizer(dcgan, masks.make_mask("center", 16), seed=0)
    z = optimizer.initial_z(images)
    weights = optimizer.batch_weights(images)
    loop = optimizer._run.get_concrete_function(z, optimizer.initial_state(z), images, weights,
                                                tf.constant(0), tf.constant(2))
    for graph in (training, loop):
        assert _fusable_activations_with_shared_bias(graph.graph.as_graph_def()) == []
