"""Kernel algebra: index maps, expansion, the paper's update rules (eqs. 3, 5).

The custom gradient is checked against three independent references: a NumPy
transcription of eqs. 3 and 5, autodiff of the tied parameterization
(a plain gather), and central finite differences. Each eagerly under a
GradientTape (the path where a variable argument breaks tf.custom_gradient),
under tf.function, and with jit_compile=True.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_symconv.layers import SymmetryGenerating2D, SymmetryPreserving2D
from keras_symconv.ops import kernels


@pytest.mark.parametrize("c", range(1, 8))
def test_index_map_is_symmetric_and_onto(c):
    idx = kernels.symmetric_index_map(c).reshape(c, c)
    p = kernels.packed_size(c)
    assert p == c * (c + 1) // 2
    np.testing.assert_array_equal(idx, idx.T)
    assert sorted(set(idx.ravel().tolist())) == list(range(p))
    # Off-diagonal slots fill two positions, diagonal slots one.
    counts = np.bincount(idx.ravel(), minlength=p)
    diag_slots = np.diag(idx)
    assert np.all(counts[diag_slots] == 1)
    assert counts.sum() == c * c and np.all(np.isin(counts, [1, 2]))
    rep = kernels.representative_positions(c)
    np.testing.assert_array_equal(idx.ravel()[rep], np.arange(p))
    for a in range(c):
        for b in range(c):
            assert idx[a, b] == kernels.packed_slot(a, b)


def _numpy_expand(packed, c, generating):
    """W[a, b, k] = S[slot(a, b), k] (and W[a, b, k + n] = S[slot(a, b), k])."""
    _, ch, f = packed.shape
    out_ch = 2 * ch if generating else ch
    full = np.zeros((c, c, out_ch, f), packed.dtype)
    for a in range(c):
        for b in range(c):
            s = packed[kernels.packed_slot(a, b)]
            full[a, b, :ch] = s
            if generating:
                full[a, b, ch:] = s
    return full


def _numpy_update_rule(full_grad, generating):
    """Eqs. 3 and 5, transcribed: sum dL/dW over every entry S[a, b] fills.

    Eq. 5 (preserving): dR[a,b] = dQ[a,b] + dQ[b,a] for a > b, dQ[a,a] on the
    diagonal. Eq. 3 (generating): the same over both channel halves,
    dS[a,b,k] = dW[a,b,k] + dW[b,a,k] + dW[a,b,k+n] + dW[b,a,k+n].
    """
    c, _, ch, f = full_grad.shape
    n = ch // 2 if generating else ch
    out = np.zeros((c * (c + 1) // 2, n, f), full_grad.dtype)
    for a in range(c):
        for b in range(a + 1):
            slot = a * (a + 1) // 2 + b
            positions = [(a, b)] if a == b else [(a, b), (b, a)]
            for p, q in positions:
                g = full_grad[p, q, :n].copy()
                if generating:
                    g = g + full_grad[p, q, n:]
                out[slot] += g
    return out


@pytest.mark.parametrize("generating", [False, True])
@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 7])
def test_expand_matches_numpy_and_packs_back(c, generating):
    rng = np.random.default_rng(c)
    packed = rng.normal(size=(kernels.packed_size(c), 3, 2)).astype(np.float32)
    full = kernels.expand_kernel(packed, c, generating).numpy()
    np.testing.assert_array_equal(full, _numpy_expand(packed, c, generating))
    np.testing.assert_array_equal(full, np.swapaxes(full, 0, 1))
    np.testing.assert_array_equal(kernels.pack_kernel(full, generating).numpy(), packed)


@pytest.mark.parametrize(
    "c, in_ch, filters, generating, expected",
    [
        (1, 40, 40, True, 1 * 20 * 40),
        (3, 8, 5, True, 6 * 4 * 5),
        (13, 50, 20, False, 91 * 50 * 20),
        (5, 20, 20, False, 15 * 20 * 20),
        (2, 6, 1, False, 3 * 6 * 1),
    ],
)
def test_parameter_counts(c, in_ch, filters, generating, expected):
    assert kernels.num_kernel_params(c, in_ch, filters, generating) == expected
    assert kernels.num_conv2d_kernel_params(c, in_ch, filters) == c * c * in_ch * filters


def test_generating_shape_rejects_odd_channels():
    with pytest.raises(ValueError, match=r"even number of input channels.*in_channels=5"):
        kernels.packed_kernel_shape(3, 5, 4, generating=True)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_kernel_size_validation(bad):
    with pytest.raises(ValueError, match="`kernel_size` must be a positive integer"):
        kernels.symmetric_index_map(bad)


def _tied_autodiff_grad(packed, upstream, c, generating):
    """Gradient of <expand(S), G> by autodiff of a plain gather (no custom rule)."""
    idx = kernels.symmetric_index_map(c)
    packed = tf.convert_to_tensor(packed)
    with tf.GradientTape() as tape:
        tape.watch(packed)
        flat = tf.gather(packed, idx)
        if generating:
            flat = tf.concat([flat, flat], axis=1)
        full = tf.reshape(flat, upstream.shape)
        loss = tf.reduce_sum(full * upstream)
    return tf.convert_to_tensor(tape.gradient(loss, packed)).numpy()


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("generating", [False, True])
@pytest.mark.parametrize("c", [1, 2, 3, 6])
def test_custom_gradient_rule(c, generating, mode):
    rng = np.random.default_rng(10 * c + generating)
    n, f = 3, 2
    packed = rng.normal(size=(kernels.packed_size(c), n, f))
    upstream = rng.normal(size=(c, c, 2 * n if generating else n, f))
    expand = kernels.make_kernel_expander(c, generating)

    def grad_fn(p, g):
        with tf.GradientTape() as tape:
            tape.watch(p)
            loss = tf.reduce_sum(expand(p) * g)
        return tape.gradient(loss, p)

    if mode == "function":
        grad_fn = tf.function(grad_fn)
    elif mode == "xla":
        grad_fn = tf.function(grad_fn, jit_compile=True)
    got = grad_fn(tf.constant(packed), tf.constant(upstream)).numpy()
    np.testing.assert_allclose(got, _numpy_update_rule(upstream, generating), rtol=1e-12)
    np.testing.assert_allclose(
        got, _tied_autodiff_grad(packed, upstream, c, generating), rtol=1e-12
    )
    # The rule is the direct function too.
    direct = kernels.packed_kernel_gradient(
        upstream, kernels.symmetric_index_map(c), kernels.packed_size(c), generating
    ).numpy()
    np.testing.assert_allclose(direct, got, rtol=1e-12)


def _layer_loss_and_grad(layer, inputs, weights, mode):
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) * weights)
        return loss, tape.gradient(loss, layer.packed_kernel)

    if mode == "function":
        step = tf.function(step)
    elif mode == "xla":
        step = tf.function(step, jit_compile=True)
    loss, grad = step(inputs)
    return loss.numpy(), tf.convert_to_tensor(grad).numpy()


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize(
    "layer_cls, padding, strides, dilation",
    [
        (SymmetryGenerating2D, "same", 1, 1),
        (SymmetryGenerating2D, "valid", 2, 1),
        (SymmetryPreserving2D, "same", 1, 2),
        (SymmetryPreserving2D, "valid", 1, 1),
    ],
)
def test_layer_gradient_vs_finite_differences(layer_cls, padding, strides, dilation, mode):
    """Through a layer's variable: the tape gradient equals central differences."""
    rng = np.random.default_rng(0)
    generating = layer_cls is SymmetryGenerating2D
    c, n, f, length = 3, 2, 2, 7
    if generating:
        x = rng.normal(size=(2, length, n))
        inputs = np.concatenate(
            [
                np.broadcast_to(x[:, :, None], (2, length, length, n)),
                np.broadcast_to(x[:, None, :], (2, length, length, n)),
            ],
            axis=-1,
        )
    else:
        a = rng.normal(size=(2, length, length, n))
        inputs = a + np.swapaxes(a, 1, 2)
    layer = layer_cls(
        f, c, strides=strides, padding=padding, dilation_rate=dilation, dtype="float64"
    )
    out_shape = layer.compute_output_shape(inputs.shape)
    weights = tf.constant(rng.normal(size=out_shape))
    inputs = tf.constant(inputs)
    layer.build(inputs.shape)
    _, grad = _layer_loss_and_grad(layer, inputs, weights, mode)

    packed0 = layer.packed_kernel.numpy()
    fd = np.zeros_like(packed0)
    eps = 1e-6
    for index in np.ndindex(*packed0.shape):
        for sign in (1, -1):
            p = packed0.copy()
            p[index] += sign * eps
            layer.packed_kernel.assign(p)
            fd[index] += sign * float(tf.reduce_sum(layer(inputs) * weights))
        fd[index] /= 2 * eps
    layer.packed_kernel.assign(packed0)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
