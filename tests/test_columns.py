"""Convolutions on pixels of several columns equal the plain ones (``keras_symconv.ops.columns``).

References: ``tf.nn.conv2d``, ``Conv2DBackpropFilter`` and autodiff, in float64.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_symconv.ops import columns


@pytest.mark.parametrize("pack", [1, 2, 3, 4])
def test_column_conv2d_equals_conv2d(pack):
    rng = np.random.default_rng(pack)
    cases = [
        ((7, 9), (3, 3), "VALID"),
        ((7, 10), (3, 5), [[0, 0], [1, 1], [2, 2], [0, 0]]),
        ((5, 6), (1, 1), "VALID"),
        ((8, 13), (4, 3), [[0, 0], [0, 3], [1, 0], [0, 0]]),
        ((6, 4), (2, 4), "VALID"),  # one output column
    ]
    for (h, w), (kh, kw), padding in cases:
        x = tf.constant(rng.normal(size=(2, h, w, 3)))
        kernel = tf.constant(rng.normal(size=(kh, kw, 3, 5)))
        expected = tf.nn.conv2d(x, kernel, 1, padding).numpy()
        got = columns.column_conv2d(x, kernel, padding, pack).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        # Width unknown while the graph is built: the plain op.
        unknown = tf.function(
            lambda t, kernel=kernel, padding=padding: columns.column_conv2d(
                t, kernel, padding, pack
            ),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float64)],
        )
        np.testing.assert_allclose(unknown(x).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_choose_columns_counts_padded_lanes(monkeypatch):
    # 20 filters on 16 lanes cost 32 per tap; 4 columns of 20 fill 80 lanes
    # exactly, with (13 + 2) // 4 + 1 = 4 taps: 4 * 80 = 320 against
    # 13 * 32 = 416 per output column and input channel (0.77).
    assert columns.choose_columns(20, 13, "float32", lanes=16) == 4
    # 40 filters leave half a vector (costed 54): 2 columns, 7 taps of 80,
    # 560 against 702 (0.80).
    assert columns.choose_columns(40, 13, "float32", lanes=16) == 2
    assert columns.choose_columns(20, 9, "float32", lanes=16) == 1  # 3 * 80 / 288 = 0.83
    assert columns.choose_columns(64, 5, "float32", lanes=16) == 1  # no padding to save
    assert columns.choose_columns(20, 13, "float64", lanes=16) == 1
    assert columns.choose_columns(20, 13, "float32", lanes=8) == 1  # 24 lanes: 0.90 at best
    monkeypatch.setattr(columns, "cpu_lanes", lambda: None)
    assert columns.choose_columns(20, 13, "float32") == 1
    monkeypatch.setattr(columns, "cpu_lanes", lambda: 16)
    assert columns.choose_columns(20, 13, "float32") == 4


@pytest.mark.parametrize("pack", [1, 2, 3, 4])
def test_column_filter_grad_equals_conv2d_backprop_filter(pack):
    rng = np.random.default_rng(10 + pack)
    for (h, w), (kh, kw) in [
        ((7, 9), (3, 3)),
        ((8, 13), (4, 5)),
        ((5, 6), (1, 1)),
        ((6, 4), (2, 4)),
    ]:
        x = tf.constant(rng.normal(size=(2, h, w, 3)))
        out = tf.constant(rng.normal(size=(2, h - kh + 1, w - kw + 1, 5)))
        expected = tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[kh, kw, 3, 5], out_backprop=out, strides=[1] * 4, padding="VALID"
        ).numpy()
        kernel = tf.constant(rng.normal(size=(kh, kw, 3, 5)))
        got = columns.column_filter_grad(x, out, kernel, pack).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        # ... and it is the gradient of column_conv2d (autodiff through the reshapes).
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            y = columns.column_conv2d(x, kernel, "VALID", pack)
        np.testing.assert_allclose(
            tape.gradient(y, kernel, output_gradients=out).numpy(), expected, rtol=1e-12, atol=1e-12
        )


def test_cpu_lanes_off_without_onednn(monkeypatch):
    columns.cpu_lanes.cache_clear()
    try:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
        assert columns.cpu_lanes() is None
    finally:
        columns.cpu_lanes.cache_clear()
    assert columns.cpu_lanes() in (None, 8, 16)


@pytest.mark.parametrize("dilation", [1, 2])
def test_block_conv2d_pads_and_dilates_as_convolution(dilation):
    rng = np.random.default_rng(dilation)
    x = tf.constant(rng.normal(size=(2, 9, 11, 3)))
    kernel = tf.constant(rng.normal(size=(3, 3, 3, 4)))
    pads = [[0, 0], [2, 1], [0, 2], [0, 0]]
    expected = tf.nn.convolution(tf.pad(x, pads), kernel, padding="VALID", dilations=dilation)
    for pack in (1, 2):
        got = columns.block_conv2d(x, kernel, pads, dilation, pack)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)
