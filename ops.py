"""The layers the original DCGAN is built from, as small tf.Modules.

Each layer owns its variables under the original's names (`w`/`biases` for
convolutions, `Matrix`/`bias` for linear layers, `beta`/`gamma`/`moving_mean`/
`moving_variance` for batch norm) inside a name scope such as
`generator/g_h1`, so the variables read `generator/g_h1/w` exactly as in the
original's TensorFlow 1 checkpoints.

Mixed precision: a layer given a `compute_dtype` (float16 or bfloat16) casts its input
and weights to it; the variables stay float32 and batch norm computes in float32. With
no compute dtype (the default) nothing is cast and the graphs are as before.

Under a tf.distribute strategy with several replicas, batch norm is synchronised: its
training statistics are those of the whole global batch (see BatchNorm).

On a CPU, some stride-2 transposed convolutions, and the input gradients of some stride-2
convolutions (the same operation), run as forward convolutions, one per output phase (see
phase_method and transposed_by_phases): oneDNN's forward kernels are the faster ones there.
The results are the same up to rounding; only the kernels differ.
"""
from __future__ import annotations

import tensorflow as tf

STDDEV = 0.02       # every weight initialiser of the original
BN_DECAY = 0.9      # batch norm moving-average decay
BN_EPSILON = 1e-5


# The layers' kernel choices, revised whenever one changes what runs (auto_precision's cached
# decisions are measured anew for another revision): 2, batch norm at inference as x * a + b.
KERNELS_REVISION = 2


def leaky_relu(x: tf.Tensor, leak: float = 0.2) -> tf.Tensor:
    """max(x, leak * x), the original's lrelu, written as the original wrote it.

    Not tf.nn.leaky_relu: its gradient reads the activation's input, so after a convolution and
    its bias (D's first layer) that BiasAdd has two readers. Where oneDNN runs bfloat16, Grappler's
    remapper fuses the three into one op anyway, leaves the gradient reading the removed BiasAdd,
    logs "remapper failed" and optimises nothing in the graph. With Maximum and Mul there is no
    activation to fuse (tests/test_ops.py checks every graph for the pattern)."""
    return tf.maximum(x, leak * x)


def _cast(dtype, *tensors):
    return [tf.cast(t, dtype) for t in tensors]


def _normal(shape, truncated: bool = False) -> tf.Tensor:
    sample = tf.random.truncated_normal if truncated else tf.random.normal
    return sample(shape, stddev=STDDEV)


def phase_method(channels: int, compute_dtype, phases: bool | None = None) -> str | None:
    """How a stride-2 transposed convolution to `channels` channels (or a stride-2 convolution's
    input gradient, the same operation) runs on this machine: None (TensorFlow's own kernel),
    "phases" or "merged" (see transposed_by_phases). GPUs keep cuDNN's kernels.

    phases: True or False as measured (auto_precision times both on the device: which is faster
    depends on the CPU, the precision and the batch), or None for the rule drawn on an AMX CPU,
    where oneDNN's backward-data kernels ran at about half the rate of its forward ones in
    bfloat16 and were ~4x slower to 3 channels in either precision.
    """
    if tf.config.list_physical_devices("GPU") or phases is False:
        return None
    if channels < 16:
        return "merged"
    return "phases" if phases or compute_dtype == tf.bfloat16 else None


# Output pixel (2i + p, 2j + q) of a 5x5, stride-2, SAME transposed convolution sums the input
# pixels (i - 1 .. i + 1, j - 1 .. j + 1) times kernel taps that depend on the phase p (and q):
# for input rows i - 1, i, i + 1 the taps are 3, 1 (p = 0; row i + 1 contributes nothing) and
# 4, 2, 0 (p = 1). So each phase is a small forward convolution (2x2, 2x3, 3x2 or 3x3 taps).
PHASE_TAPS = ((3, 1), (4, 2, 0))
ZERO_TAP = 5  # the kernel padded with zeros: tap 5 is 0


def transposed_by_phases(x: tf.Tensor, w: tf.Tensor, merged: bool = False) -> tf.Tensor:
    """conv2d_transpose(x, w), 5x5, stride 2, SAME, to (2H, 2W), by forward convolutions: one per
    phase, or (merged) one 3x3 convolution to 4x the channels, the phases' kernels padded with
    zeros (more multiplications, one large kernel: faster to few channels). w is [5, 5, out, in]."""
    w = tf.transpose(w, [0, 1, 3, 2])  # [5, 5, in, out]: a forward convolution's kernel
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    if merged:  # every phase over the whole 3x3 window, its missing taps zero
        w = tf.pad(w, [[0, 1], [0, 1], [0, 0], [0, 0]])
        kernels = [_phase_kernel(w, _three(rows), _three(columns)) for rows in PHASE_TAPS for columns in PHASE_TAPS]
        phases = [tf.nn.conv2d(padded, tf.concat(kernels, axis=-1), strides=1, padding="VALID")]
    else:
        height, width = tf.shape(x)[1], tf.shape(x)[2]
        phases = [tf.nn.conv2d(padded[:, :height + 1 + p, :width + 1 + q], _phase_kernel(w, rows, columns),
                               strides=1, padding="VALID")
                  for p, rows in enumerate(PHASE_TAPS) for q, columns in enumerate(PHASE_TAPS)]
    # Channel block (p, q) of the concatenation becomes pixel (2i + p, 2j + q).
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


def _phase_kernel(w: tf.Tensor, rows: tuple, columns: tuple) -> tf.Tensor:
    return tf.gather(tf.gather(w, rows, axis=0), columns, axis=1)


def _three(taps: tuple) -> tuple:
    return taps + (ZERO_TAP,) * (3 - len(taps))


def _filter_gradient(x, w, dy):
    return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(w), out_backprop=dy,
                                           strides=[1, 2, 2, 1], padding="SAME")


def _tensors(*values) -> list[tf.Tensor]:
    """Variables read into tensors, for a custom-gradient function's arguments.

    Its gradient is then with respect to its inputs only. Given a variable, eager mode takes it
    for one the function captured (a MirroredVariable's component is not the variable passed)
    and demands a grad_fn(variables=...); tf.function converts arguments so anyway."""
    return [tf.convert_to_tensor(v) for v in values]


def conv2d_transpose_by_phases(x: tf.Tensor, w: tf.Tensor, merged: bool = False) -> tf.Tensor:
    """The transposed convolution by phases, with its input gradient by a forward convolution."""
    @tf.custom_gradient
    def transposed(x, w):
        def gradient(dy):
            return tf.nn.conv2d(dy, w, strides=2, padding="SAME"), _filter_gradient(dy, w, x)
        return transposed_by_phases(x, w, merged), gradient
    return transposed(*_tensors(x, w))


def conv2d_by_phases(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """tf.nn.conv2d(x, w), 5x5, stride 2, SAME, on an even-sized x, with its input gradient (a
    transposed convolution) by phases."""
    @tf.custom_gradient
    def convolution(x, w):
        def gradient(dy):
            return transposed_by_phases(dy, w), _filter_gradient(x, w, dy)
        return tf.nn.conv2d(x, w, strides=2, padding="SAME"), gradient
    return convolution(*_tensors(x, w))


class Linear(tf.Module):
    """x @ Matrix + bias; Matrix ~ N(0, 0.02), bias 0."""

    def __init__(self, in_dim: int, out_dim: int, name: str, compute_dtype=None):
        super().__init__(name=name)
        self.compute_dtype = compute_dtype
        with self.name_scope:
            self.Matrix = tf.Variable(_normal([in_dim, out_dim]), name="Matrix")
            self.bias = tf.Variable(tf.zeros([out_dim]), name="bias")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        if self.compute_dtype is None:
            return tf.matmul(x, self.Matrix) + self.bias
        x, matrix, bias = _cast(self.compute_dtype, x, self.Matrix, self.bias)
        return tf.matmul(x, matrix) + bias


class Conv2d(tf.Module):
    """5x5 convolution, stride 2, SAME padding; w ~ truncated N(0, 0.02), biases 0."""

    def __init__(self, in_channels: int, out_channels: int, name: str, kernel: int = 5, stride: int = 2,
                 compute_dtype=None, phases: bool | None = None):
        super().__init__(name=name)
        self.stride, self.compute_dtype = stride, compute_dtype
        # Its input gradient is a transposed convolution to in_channels. Not merged: to few channels
        # that is D's first layer, whose convolution, bias and leaky ReLU Grappler's remapper fuses
        # and, with a custom gradient, then fails on (it logs an error and fuses nothing).
        method = phase_method(in_channels, compute_dtype, phases) if (kernel, stride) == (5, 2) else None
        self.phases = method if method == "phases" else None
        with self.name_scope:
            self.w = tf.Variable(_normal([kernel, kernel, in_channels, out_channels], truncated=True), name="w")
            self.biases = tf.Variable(tf.zeros([out_channels]), name="biases")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        w, biases = self.w, self.biases
        if self.compute_dtype is not None:
            x, w, biases = _cast(self.compute_dtype, x, w, biases)
        if self.phases and _even(x.shape[1]) and _even(x.shape[2]):
            return tf.nn.bias_add(conv2d_by_phases(x, w), biases)
        return tf.nn.bias_add(tf.nn.conv2d(x, w, strides=self.stride, padding="SAME"), biases)


class Conv2dTranspose(tf.Module):
    """5x5 transposed convolution, stride 2, SAME: doubles height and width.

    w is [5, 5, out, in] (TensorFlow's layout, as in the original) ~ N(0, 0.02).
    """

    def __init__(self, in_channels: int, out_channels: int, name: str, kernel: int = 5, stride: int = 2,
                 compute_dtype=None, phases: bool | None = None):
        super().__init__(name=name)
        self.stride, self.compute_dtype = stride, compute_dtype
        self.out_channels = out_channels
        self.phases = phase_method(out_channels, compute_dtype, phases) if (kernel, stride) == (5, 2) else None
        with self.name_scope:
            self.w = tf.Variable(_normal([kernel, kernel, out_channels, in_channels]), name="w")
            self.biases = tf.Variable(tf.zeros([out_channels]), name="biases")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        w, biases = self.w, self.biases
        if self.compute_dtype is not None:
            x, w, biases = _cast(self.compute_dtype, x, w, biases)
        if self.phases:
            y = conv2d_transpose_by_phases(x, w, merged=self.phases == "merged")
        else:
            shape = tf.shape(x)
            out_shape = tf.stack([shape[0], shape[1] * self.stride, shape[2] * self.stride, self.out_channels])
            y = tf.nn.conv2d_transpose(x, w, out_shape, strides=self.stride, padding="SAME")
        # The static shape is known whenever the input's is; keep it for the layers after.
        y = tf.ensure_shape(y, [x.shape[0], _times(x.shape[1], self.stride), _times(x.shape[2], self.stride),
                                self.out_channels])
        return tf.nn.bias_add(y, biases)


def _even(dim) -> bool:
    return dim is not None and dim % 2 == 0


def _times(dim, factor):
    return None if dim is None else dim * factor


class BatchNorm(tf.Module):
    """Batch norm over (N, H, W) with scale and offset, as tf.contrib.layers.batch_norm.

    Training: normalise by the batch's mean and (biased) variance and move the
    averages towards them by (1 - decay). Inference: use the moving averages.

    Under a strategy with several replicas (replica context), the statistics are
    synchronised: one all-reduce of the per-channel sums, sums of squares and counts,
    so every replica normalises by the global batch's mean and variance (as one device
    would) and moves its copy of the averages alike. Gradients flow through the
    all-reduce. With a compute dtype, the layer computes in float32 and returns it.
    """

    def __init__(self, channels: int, name: str, decay: float = BN_DECAY, epsilon: float = BN_EPSILON,
                 compute_dtype=None):
        super().__init__(name=name)
        self.decay, self.epsilon, self.compute_dtype = decay, epsilon, compute_dtype
        with self.name_scope:
            self.beta = tf.Variable(tf.zeros([channels]), name="beta")
            self.gamma = tf.Variable(tf.ones([channels]), name="gamma")
            self.moving_mean = tf.Variable(tf.zeros([channels]), trainable=False, name="moving_mean")
            self.moving_variance = tf.Variable(tf.ones([channels]), trainable=False, name="moving_variance")

    def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        ctx = tf.distribute.get_replica_context()
        if not training and self.compute_dtype is None:
            # Inference in float32 (completion): x * a + b with a, b from the moving statistics. Its
            # gradient is one multiplication; the fused kernel's pair took 15-19% of a completion
            # iteration at batch 1 with oneDNN (docs/speed.md#batch-norm-at-inference).
            return self._affine(x)
        if not training and (ctx is None or ctx.num_replicas_in_sync == 1):
            # Inference in float16/bfloat16: the fused kernel takes the activations with float32
            # statistics, so no cast round trip (measured ~35% less CPU time per completion
            # iteration in bfloat16; in training the bfloat16 kernel's gradient was slower).
            return self._fused(x, training)
        if self.compute_dtype is not None:
            x = tf.cast(x, tf.float32)
        if ctx is None or ctx.num_replicas_in_sync == 1:
            y = self._fused(x, training)
        elif training:
            mean, variance = self.moments(x)
            self._update_moving(mean, variance)
            y = tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, self.epsilon)
        else:
            y = self._affine(x)
        return y if self.compute_dtype is None else tf.cast(y, self.compute_dtype)

    def _affine(self, x: tf.Tensor) -> tf.Tensor:
        """Inference on float32 x: normalised by the moving averages, scaled and shifted."""
        return tf.nn.batch_normalization(x, self.moving_mean, self.moving_variance, self.beta, self.gamma,
                                         self.epsilon)

    def _update_moving(self, mean: tf.Tensor, variance: tf.Tensor) -> None:
        self.moving_mean.assign_sub((self.moving_mean - mean) * (1.0 - self.decay))
        self.moving_variance.assign_sub((self.moving_variance - variance) * (1.0 - self.decay))

    def _fused(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """One device: TensorFlow's fused kernel (one op forward and backward, oneDNN on CPUs)."""
        empty = tf.zeros([0])
        y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=self.gamma, offset=self.beta,
            mean=empty if training else self.moving_mean, variance=empty if training else self.moving_variance,
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=training)
        if training:
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
            # The kernel returns the unbiased variance; the original's moving average used the biased one.
            self._update_moving(mean, variance * (count - 1.0) / count)
        return y

    @staticmethod
    def moments(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Mean and biased variance over (N, H, W): of this batch, or of the global batch across replicas."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return tf.nn.moments(x, axes=[0, 1, 2])
        channels = x.shape[-1]
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), x.dtype)
        local = tf.concat([tf.reduce_sum(x, axis=[0, 1, 2]), tf.reduce_sum(tf.square(x), axis=[0, 1, 2]),
                           count[None]], axis=0)
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local)
        mean = total[:channels] / total[-1]
        variance = tf.maximum(total[channels:2 * channels] / total[-1] - tf.square(mean), 0.0)
        return mean, variance
