"""The layers the original DCGAN is built from, as small tf.Modules.

Each layer owns its variables under the original's names (`w`/`biases` for
convolutions, `Matrix`/`bias` for linear layers, `beta`/`gamma`/`moving_mean`/
`moving_variance` for batch norm) inside a name scope such as
`generator/g_h1`, so the variables read `generator/g_h1/w` exactly as in the
original's TensorFlow 1 checkpoints.
"""
from __future__ import annotations

import tensorflow as tf

STDDEV = 0.02       # every weight initialiser of the original
BN_DECAY = 0.9      # batch norm moving-average decay
BN_EPSILON = 1e-5


def leaky_relu(x: tf.Tensor, leak: float = 0.2) -> tf.Tensor:
    """max(x, leak * x), the original's lrelu."""
    return tf.maximum(x, leak * x)


def _normal(shape, truncated: bool = False) -> tf.Tensor:
    sample = tf.random.truncated_normal if truncated else tf.random.normal
    return sample(shape, stddev=STDDEV)


class Linear(tf.Module):
    """x @ Matrix + bias; Matrix ~ N(0, 0.02), bias 0."""

    def __init__(self, in_dim: int, out_dim: int, name: str):
        super().__init__(name=name)
        with self.name_scope:
            self.Matrix = tf.Variable(_normal([in_dim, out_dim]), name="Matrix")
            self.bias = tf.Variable(tf.zeros([out_dim]), name="bias")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, self.Matrix) + self.bias


class Conv2d(tf.Module):
    """5x5 convolution, stride 2, SAME padding; w ~ truncated N(0, 0.02), biases 0."""

    def __init__(self, in_channels: int, out_channels: int, name: str, kernel: int = 5, stride: int = 2):
        super().__init__(name=name)
        self.stride = stride
        with self.name_scope:
            self.w = tf.Variable(_normal([kernel, kernel, in_channels, out_channels], truncated=True), name="w")
            self.biases = tf.Variable(tf.zeros([out_channels]), name="biases")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.nn.conv2d(x, self.w, strides=self.stride, padding="SAME")
        return tf.nn.bias_add(y, self.biases)


class Conv2dTranspose(tf.Module):
    """5x5 transposed convolution, stride 2, SAME: doubles height and width.

    w is [5, 5, out, in] (TensorFlow's layout, as in the original) ~ N(0, 0.02).
    """

    def __init__(self, in_channels: int, out_channels: int, name: str, kernel: int = 5, stride: int = 2):
        super().__init__(name=name)
        self.stride = stride
        self.out_channels = out_channels
        with self.name_scope:
            self.w = tf.Variable(_normal([kernel, kernel, out_channels, in_channels]), name="w")
            self.biases = tf.Variable(tf.zeros([out_channels]), name="biases")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)
        out_shape = tf.stack([shape[0], shape[1] * self.stride, shape[2] * self.stride, self.out_channels])
        y = tf.nn.conv2d_transpose(x, self.w, out_shape, strides=self.stride, padding="SAME")
        # The static shape is known whenever the input's is; keep it for the layers after.
        y = tf.ensure_shape(y, [x.shape[0], _times(x.shape[1], self.stride), _times(x.shape[2], self.stride),
                                self.out_channels])
        return tf.nn.bias_add(y, self.biases)


def _times(dim, factor):
    return None if dim is None else dim * factor


class BatchNorm(tf.Module):
    """Batch norm over (N, H, W) with scale and offset, as tf.contrib.layers.batch_norm.

    Training: normalise by the batch's mean and (biased) variance and move the
    averages towards them by (1 - decay). Inference: use the moving averages.
    """

    def __init__(self, channels: int, name: str, decay: float = BN_DECAY, epsilon: float = BN_EPSILON):
        super().__init__(name=name)
        self.decay, self.epsilon = decay, epsilon
        with self.name_scope:
            self.beta = tf.Variable(tf.zeros([channels]), name="beta")
            self.gamma = tf.Variable(tf.ones([channels]), name="gamma")
            self.moving_mean = tf.Variable(tf.zeros([channels]), trainable=False, name="moving_mean")
            self.moving_variance = tf.Variable(tf.ones([channels]), trainable=False, name="moving_variance")

    def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        if training:
            mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
            self.moving_mean.assign_sub((self.moving_mean - mean) * (1.0 - self.decay))
            self.moving_variance.assign_sub((self.moving_variance - variance) * (1.0 - self.decay))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, self.epsilon)
