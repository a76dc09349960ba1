"""The preserving convolution's strategies (``keras_symconv.ops.convolution``).

Each strategy against ``tf.nn.convolution`` with the same kernel on a
symmetric map, with the side known and unknown while the graph is built.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_symconv.ops import convolution as conv
from keras_symconv.ops.plan import Rules
from keras_symconv.ops.upper import from_upper, to_upper

# Blocks even at small sides, so that the block paths run in a small test.
SMALL = Rules(min_side=8, min_work=0, strip_height=8, dynamic=(2, 2), upper_dynamic=(2, 2))


def _symmetric_case(seed, side=24, channels=3, filters=4, kernel_size=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, side, side, channels)).astype(np.float32)
    x = x + x.transpose(0, 2, 1, 3)
    k = rng.normal(size=(kernel_size, kernel_size, channels, filters)).astype(np.float32)
    k = k + k.transpose(1, 0, 2, 3)
    bias = rng.normal(size=(filters,)).astype(np.float32)
    return x, k, bias


def _reference(x, k, bias, spec):
    y = tf.nn.convolution(
        x, k, strides=spec.strides, padding=spec.padding.upper(), dilations=spec.dilation
    )
    return (y + bias).numpy()


@pytest.mark.parametrize(
    "spec, expected",
    [
        (conv.Spec(3), conv.triangular_conv),
        (conv.Spec(3, compute="triangular"), conv.triangular_conv),
        (conv.Spec(3, compute="full"), conv.full_conv),
        (conv.Spec(3, strides=2), conv.full_conv),
        (conv.Spec(3, layout="upper"), conv.upper_conv),
        (conv.Spec(3, layout="upper", compute="triangular"), conv.upper_conv),
        (conv.Spec(3, layout="upper", compute="full"), conv.full_conv_upper),
    ],
)
def test_preserving_strategy_follows_layout_compute_and_strides(spec, expected):
    assert conv.preserving_strategy(spec) is expected


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("compute", ["triangular", "full"])
def test_full_layout_strategies_equal_the_full_convolution(padding, dilation, compute):
    x, k, bias = _symmetric_case(seed=dilation)
    spec = conv.Spec(3, dilation=dilation, padding=padding, compute=compute)
    want = _reference(x, k, bias, spec)
    strategy = conv.preserving_strategy(spec)
    got = strategy(tf.constant(x), tf.constant(k), tf.constant(bias), spec, SMALL).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # with the side unknown while the graph is built (a run-time choice)
    unknown = tf.function(
        lambda a: strategy(a, tf.constant(k), tf.constant(bias), spec, SMALL),
        input_signature=[tf.TensorSpec((None, None, None, x.shape[-1]))],
    )
    np.testing.assert_allclose(unknown(x).numpy(), want, rtol=1e-5, atol=1e-4)


def test_triangular_blocks_are_really_used_and_equal_without_bias():
    x, k, _ = _symmetric_case(seed=5, side=32)
    spec = conv.Spec(3, compute="triangular")
    got = conv.triangular_conv(tf.constant(x), tf.constant(k), None, spec, SMALL)
    want = tf.nn.convolution(x, k, padding="SAME")
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-4)
    # the blocks' graph is not the one full convolution
    graph = (
        tf.function(lambda a: conv.triangular_conv(a, tf.constant(k), None, spec, SMALL))
        .get_concrete_function(tf.TensorSpec(x.shape))
        .graph
    )
    convs = [op for op in graph.get_operations() if op.type == "Conv2D"]
    assert len(convs) > 1


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("compute", ["auto", "full"])
def test_upper_layout_strategies_equal_the_upper_triangle_of_the_full_convolution(padding, compute):
    x, k, bias = _symmetric_case(seed=7, side=20)
    spec = conv.Spec(3, padding=padding, layout="upper", compute=compute)
    want = _reference(x, k, bias, spec)
    strategy = conv.preserving_strategy(spec)
    got = strategy(to_upper(tf.constant(x)), tf.constant(k), tf.constant(bias), spec, SMALL)
    np.testing.assert_allclose(from_upper(got).numpy(), want, rtol=1e-5, atol=1e-4)


def test_spec_output_side():
    assert conv.Spec(3).output_side(10) == 10
    assert conv.Spec(3, padding="valid").output_side(10) == 8
    assert conv.Spec(3, dilation=2, padding="valid").output_side(10) == 6
    assert conv.Spec(3, strides=2).output_side(9) == 5
    assert conv.Spec(3).output_side(None) is None
