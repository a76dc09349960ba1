"""The fused generating convolution (``keras_symconv.ops.generating``).

Against its definition: the self-Cartesian product ``concat(x[i], x[j])``
built in NumPy and convolved by ``tf.nn.convolution`` with the generating
kernel ``concat([S, S])`` on the channel axis, ``S`` the half kernel.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_symconv.ops.generating import fused_generating_conv
from keras_symconv.ops.upper import from_upper


def _self_cartesian(x):
    b, n, c = x.shape
    rows = np.broadcast_to(x[:, :, None, :], (b, n, n, c))
    cols = np.broadcast_to(x[:, None, :, :], (b, n, n, c))
    return np.concatenate([rows, cols], axis=-1)


@pytest.mark.parametrize(
    "kernel_size, strides, dilation, padding",
    [(1, 1, 1, "same"), (3, 1, 1, "same"), (3, 1, 1, "valid"), (3, 2, 1, "same"),
     (3, 1, 2, "same"), (5, 1, 1, "valid"), (2, 1, 1, "same")],
)  # fmt: skip
@pytest.mark.parametrize("layout", ["full", "upper"])
def test_fused_generation_equals_the_convolution_of_the_self_cartesian_product(
    kernel_size, strides, dilation, padding, layout
):
    rng = np.random.default_rng(kernel_size * 10 + strides + dilation)
    x = rng.normal(size=(2, 11, 3)).astype(np.float32)
    half = rng.normal(size=(kernel_size, kernel_size, 3, 4)).astype(np.float32)
    half = half + half.transpose(1, 0, 2, 3)
    bias = rng.normal(size=(4,)).astype(np.float32)
    want = (
        tf.nn.convolution(
            _self_cartesian(x),
            np.concatenate([half, half], axis=2),
            strides=strides,
            padding=padding.upper(),
            dilations=dilation,
        ).numpy()
        + bias
    )
    got = fused_generating_conv(tf.constant(x), tf.constant(half), bias, strides, dilation,
                                padding, layout)  # fmt: skip
    if layout == "upper":
        got = from_upper(got)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-4)
    full = got.numpy()
    np.testing.assert_array_equal(full, full.transpose(0, 2, 1, 3))  # bitwise symmetric
