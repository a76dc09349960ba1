"""Reduced precision through the symmetric path: float32 variables, results near float32's.

Under ``mixed_float16`` and ``mixed_bfloat16`` every symmetric layer keeps
its variables in float32, computes in the policy's dtype, and gives what
the same layer gives in float32 to within that dtype's rounding. The
tolerance is a multiple of the dtype's unit roundoff (float16 2^-11,
bfloat16 2^-8) relative to the largest float32 value: the inputs and the
kernel are each rounded once, the convolutions accumulate in float32 on
this CPU, and a few elementwise steps round again.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_symconv as ks
from keras_symconv.ops import upper

UNIT_ROUNDOFF = {"mixed_float16": 2.0**-11, "mixed_bfloat16": 2.0**-8}
POLICIES = sorted(UNIT_ROUNDOFF)
RNG = np.random.default_rng(11)


def _symmetric(batch, side, channels):
    x = RNG.normal(size=(batch, side, side, channels)).astype(np.float32)
    return (x + x.transpose(0, 2, 1, 3)) / 2


def _close(got, want, policy, factor=8.0):
    got = keras.ops.convert_to_numpy(keras.ops.cast(got, "float32"))
    want = keras.ops.convert_to_numpy(want)
    scale = float(np.abs(want).max())
    assert scale > 0
    error = float(np.abs(got - want).max()) / scale
    assert error <= factor * UNIT_ROUNDOFF[policy], (error, policy)
    return error


def _pair(make, x, policy):
    """The layer in float32 and under ``policy`` with the same weights."""
    ref = make(dtype="float32")
    ref(x)
    low = make(dtype=policy)
    low(x)
    low.set_weights(ref.get_weights())
    return ref, low


CASES = {
    "preserving-triangular": (
        lambda **kw: ks.SymmetryPreserving2D(6, 5, compute="triangular", **kw),
        lambda: _symmetric(2, 40, 4),
    ),
    "preserving-upper": (
        lambda **kw: ks.SymmetryPreserving2D(6, 5, layout="upper", **kw),
        lambda: upper.to_upper(_symmetric(2, 40, 4)),
    ),
    "generating": (
        lambda **kw: ks.SymmetryGenerating2D(6, 3, **kw),
        lambda: ks.SelfCartesian()(RNG.normal(size=(2, 30, 3)).astype(np.float32)),
    ),
    "fused-generating": (
        lambda **kw: ks.FusedSymmetryGenerating2D(6, 3, **kw),
        lambda: RNG.normal(size=(2, 30, 3)).astype(np.float32),
    ),
    "fused-generating-upper": (
        lambda **kw: ks.FusedSymmetryGenerating2D(6, 3, layout="upper", **kw),
        lambda: RNG.normal(size=(2, 30, 3)).astype(np.float32),
    ),
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_symmetric_convolutions_follow_float32(case, policy):
    make, data = CASES[case]
    x = tf.constant(data())
    ref, low = _pair(make, x, policy)
    assert low.packed_kernel.dtype == "float32" and low.bias.dtype == "float32"
    y = low(x)
    assert y.dtype == keras.mixed_precision.Policy(policy).compute_dtype
    _close(y, ref(x), policy)
    if case in ("fused-generating", "preserving-triangular"):  # symmetric bit for bit
        ks.check_symmetric(tf.cast(y, tf.float32), atol=0.0, rtol=0.0)
    # The custom gradient (the paper's update rule) in the policy's dtype:
    # float32 variables get float32 gradients near float32's. Positive
    # weights on the outputs: the bias gradient is then a sum without
    # cancellation, whose relative error measures rounding alone.
    weights = tf.constant(RNG.random(size=y.shape).astype(np.float32))
    grads = []
    for layer in (ref, low):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(layer(x), tf.float32) * weights)
        grads.append(tape.gradient(loss, [layer.packed_kernel, layer.bias]))
    (kernel, bias), (kernel32, bias32) = grads[1], grads[0]
    assert kernel.dtype == bias.dtype == tf.float32
    _close(bias, bias32, policy)
    # The kernel gradient is the backend's filter-gradient convolution in
    # the policy's dtype, as for keras.layers.Conv2D: no worse than a
    # Conv2D with the full kernel on the same (full) input gets.
    error = _close(kernel, kernel32, policy, factor=64.0)
    stock = _conv2d_kernel_grad_error(ref, x, case, policy)
    assert error <= 2.0 * stock + 4 * UNIT_ROUNDOFF[policy], (error, stock)


def _conv2d_kernel_grad_error(ref, x, case, policy):
    """Relative error of keras.layers.Conv2D's kernel gradient under ``policy``."""
    full_x = x
    if case.startswith("fused"):
        full_x = ks.SelfCartesian()(x)
    elif case.endswith("upper"):
        full_x = upper.from_upper(x)
    kernel = keras.ops.convert_to_numpy(ref.kernel)
    grads = []
    for dtype in ("float32", policy):
        conv = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[0], padding="same", dtype=dtype)
        conv.build(full_x.shape)
        conv.set_weights([kernel, keras.ops.convert_to_numpy(ref.bias)])
        shape = (*full_x.shape[:3], kernel.shape[-1])
        weights = tf.constant(np.random.default_rng(0).random(shape), tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(conv(full_x), tf.float32) * weights)
        grads.append(tape.gradient(loss, conv.kernel))
    want = grads[0].numpy()
    return float(np.abs(grads[1].numpy() - want).max() / np.abs(want).max())


@pytest.mark.parametrize("policy", POLICIES)
def test_upper_batch_norm_keeps_float32_statistics(policy):
    x = tf.constant(upper.to_upper(_symmetric(3, 12, 5) * 3.0 + 1.0))
    ref, low = _pair(lambda **kw: ks.UpperBatchNormalization(momentum=0.5, **kw), x, policy)
    y_ref = ref(x, training=True)
    y = low(tf.cast(x, low.compute_dtype), training=True)
    assert y.dtype == low.compute_dtype
    _close(y, y_ref, policy)
    for got, want in zip(low.non_trainable_weights, ref.non_trainable_weights, strict=True):
        assert got.dtype == "float32"
        _close(got.value, want.value, policy)
    _close(low(tf.cast(x, low.compute_dtype), training=False), ref(x, training=False), policy)


@pytest.mark.parametrize("policy", POLICIES)
def test_rna_scnn_under_the_policy_follows_float32(policy):
    from keras_symconv.models import build_rna_scnn

    tiny = dict(lstm_units=4, dense_units=3, first_filters=6, block1=((5, 4), (3, 2)),
                block2=((3, 4),), block3=((3, 4),), side_filters=4)  # fmt: skip
    ref = build_rna_scnn(**tiny)
    keras.config.set_dtype_policy(policy)
    try:
        low = build_rna_scnn(**tiny)
    finally:
        keras.config.set_dtype_policy("float32")
    low.set_weights(ref.get_weights())
    x = np.eye(5, dtype=np.float32)[RNG.integers(0, 4, size=(2, 36))]
    y = low(x, training=False)
    # The output (batch norm, then a sigmoid) is float32 under every policy.
    assert y.dtype == tf.float32
    ks.check_symmetric(y, atol=0.0, rtol=0.0)
    _close(y, ref(x, training=False), policy, factor=16.0)
