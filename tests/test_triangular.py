"""Triangular compute of SymmetryPreserving2D equals the full convolution.

The reference is ``tf.nn.convolution`` with the layer's expanded kernel (the
``compute="full"`` layer) and TensorFlow's autodiff of it, in float64.
Strip heights are made small (class attributes) so that small maps are cut
into several strips.
"""

import os
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layer_checks import run_layer_checks, symmetric_input

import keras_symconv as ks
from keras_symconv import ops
from keras_symconv.ops import columns
from keras_symconv.ops.geometry import min_side


@pytest.fixture(autouse=True)
def _small_strips(monkeypatch):
    monkeypatch.setattr(ks.SymmetryPreserving2D, "STRIP_HEIGHT", 4)
    monkeypatch.setattr(ks.SymmetryPreserving2D, "MAX_STRIPS", 3)
    monkeypatch.setattr(ks.SymmetryPreserving2D, "DIAGONAL_SPLITS", 1)
    monkeypatch.setattr(ks.SymmetryPreserving2D, "DYNAMIC_PLAN", (3, 2))


def _transpose(t):
    return tf.transpose(t, [0, 2, 1, 3])


def _twins(c, filters, **kwargs):
    tri = ks.SymmetryPreserving2D(
        filters, c, compute="triangular", bias_initializer="random_normal", **kwargs
    )
    full = ks.SymmetryPreserving2D(filters, c, compute="full", **kwargs)
    return tri, full


@st.composite
def triangular_configs(draw):
    c = draw(st.integers(1, 6))
    dilation = draw(st.integers(1, 2))
    strips = draw(st.integers(2, 3))
    splits = draw(st.integers(1, 3))
    effective = (c - 1) * dilation + 1
    padding = draw(st.sampled_from(["same", "valid"]))
    out_min = min_side(c, dilation, strips, splits)
    out_len = draw(st.integers(out_min, out_min + 7))
    length = out_len if padding == "same" else out_len + effective - 1
    return dict(
        c=c,
        strips=strips,
        splits=splits,
        dilation=dilation,
        padding=padding,
        length=length,
        batch=draw(st.integers(1, 2)),
        channels=draw(st.integers(1, 3)),
        filters=draw(st.integers(1, 3)),
        use_bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
        pack=draw(st.integers(1, 3)),
    )


def forced_packing(pack):
    """Every block's conv2d takes ``pack`` columns per pixel (whatever the CPU and dtype)."""
    return mock.patch.object(ops.triangular, "choose_columns", lambda *args, **kwargs: pack)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=triangular_configs())
def test_triangular_equals_full_forward_and_gradients(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = tf.constant(symmetric_input(rng, cfg["batch"], cfg["length"], cfg["channels"]), tf.float64)
    tri, full = _twins(
        cfg["c"],
        cfg["filters"],
        padding=cfg["padding"],
        dilation_rate=cfg["dilation"],
        use_bias=cfg["use_bias"],
        dtype="float64",
    )
    tri.build(x.shape)
    full.build(x.shape)
    full.set_weights(tri.get_weights())
    out_len = tri.compute_output_shape(x.shape)[1]
    tri.MAX_STRIPS, tri.STRIP_HEIGHT, tri.DIAGONAL_SPLITS = cfg["strips"], 1, cfg["splits"]
    assert tri._plan(out_len) == (cfg["strips"], cfg["splits"])  # not the fallback
    upstream = tf.constant(rng.normal(size=(cfg["batch"], out_len, out_len, cfg["filters"])))
    results = []
    for layer in (tri, full):
        with forced_packing(cfg["pack"]), tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        results.append((y, tape.gradient(loss, [x] + layer.trainable_variables)))
    (y_tri, g_tri), (y_full, g_full) = results
    np.testing.assert_allclose(y_tri.numpy(), y_full.numpy(), rtol=1e-10, atol=1e-10)
    assert ks.asymmetry(y_tri) == 0.0  # bitwise symmetric
    # Input gradient: the symmetric part of the full one.
    np.testing.assert_allclose(
        g_tri[0].numpy(), (0.5 * (g_full[0] + _transpose(g_full[0]))).numpy(), atol=1e-10
    )
    # Packed kernel and bias gradients: exactly the full computation's.
    for a, b in zip(g_tri[1:], g_full[1:], strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), atol=1e-9
        )


def test_every_parameter_gradient_of_a_symmetric_network_is_the_full_ones():
    """Upstream layers get the same gradients through the symmetric input gradient."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(2, 14, 3)), tf.float64)

    def network(compute):
        inputs = keras.Input((None, 3), dtype="float64")
        h = ks.FusedSymmetryGenerating2D(4, 3, activation="tanh", dtype="float64")(inputs)
        h = ks.SymmetryPreserving2D(3, 3, compute=compute, activation="relu", dtype="float64")(h)
        h = ks.SymmetryPreserving2D(2, 5, compute=compute, dtype="float64")(h)
        return keras.Model(inputs, h)

    tri, full = network("triangular"), network("full")
    full.set_weights(tri.get_weights())
    upstream = tf.constant(rng.normal(size=(2, 14, 14, 2)))
    grads = []
    for model in (tri, full):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x) * upstream)
        grads.append(tape.gradient(loss, model.trainable_variables))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), atol=1e-9
        )


def test_kernel_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    x = tf.constant(symmetric_input(rng, 1, 10, 2), tf.float64)
    layer = ks.SymmetryPreserving2D(2, 3, compute="triangular", dtype="float64")
    layer.build(x.shape)
    upstream = tf.constant(rng.normal(size=(1, 10, 10, 2)))

    def loss():
        return float(tf.reduce_sum(layer(x) * upstream))

    with tf.GradientTape() as tape:
        value = tf.reduce_sum(layer(x) * upstream)
    analytic = tape.gradient(value, layer.packed_kernel).numpy()
    packed = layer.packed_kernel.numpy()
    eps = 1e-6
    for index in [(0, 0, 0), (2, 1, 1), (4, 0, 1), (5, 1, 0)]:
        bumped = packed.copy()
        bumped[index] += eps
        layer.packed_kernel.assign(bumped)
        up = loss()
        bumped[index] -= 2 * eps
        layer.packed_kernel.assign(bumped)
        down = loss()
        layer.packed_kernel.assign(packed)
        assert abs((up - down) / (2 * eps) - analytic[index]) < 1e-6


def test_unknown_side_decides_at_run_time():
    """With L unknown, the strips run when the side allows (checked on an input
    that is *not* symmetric: only the triangular path mirrors its output)."""
    rng = np.random.default_rng(1)
    inputs = keras.Input((None, None, 2))
    layer = ks.SymmetryPreserving2D(3, 3, compute="triangular")
    model = keras.Model(inputs, layer(inputs))
    # A graph traced once for every side, as a served SavedModel runs.
    call = tf.function(model, input_signature=[tf.TensorSpec((None, None, None, 2))])
    threshold = min_side(3, 1, *ks.SymmetryPreserving2D.DYNAMIC_PLAN)
    for length in (threshold - 1, threshold, threshold + 5):
        x = rng.normal(size=(1, length, length, 2)).astype(np.float32)
        y = call(x).numpy()
        assert y.shape == (1, length, length, 3)
        reference = tf.nn.convolution(x, layer.kernel, padding="SAME").numpy() + layer.bias.numpy()
        if length >= threshold:
            # The upper triangle computed, the rest its mirror image.
            upper = np.triu(np.ones((length, length), bool))[None, :, :, None]
            np.testing.assert_allclose(
                y[np.broadcast_to(upper, y.shape)],
                reference[np.broadcast_to(upper, y.shape)],
                rtol=1e-5,
                atol=1e-5,
            )
            assert np.array_equal(y, y.transpose(0, 2, 1, 3))
        else:
            np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)
        # And on a symmetric input both paths give the full convolution.
        s = x + x.transpose(0, 2, 1, 3)
        reference = tf.nn.convolution(s, layer.kernel, padding="SAME").numpy() + layer.bias.numpy()
        np.testing.assert_allclose(call(s).numpy(), reference, rtol=1e-5, atol=1e-5)


def test_auto_chooses_by_side(monkeypatch):
    monkeypatch.setattr(ks.SymmetryPreserving2D, "TRIANGULAR_MIN_LENGTH", 20)
    layer = ks.SymmetryPreserving2D(2, 3)
    assert layer.compute == "auto"
    assert layer._plan(19) is None
    assert layer._plan(20) == (3, 1)
    # Too little work per map: 20^2 * 3^2 * 2 channels * 2 filters = 14,400.
    monkeypatch.setattr(ks.SymmetryPreserving2D, "TRIANGULAR_MIN_WORK", 14_401)
    assert layer._plan(20, 2) is None
    assert layer._plan(20, 3) == (3, 1)
    assert ks.SymmetryPreserving2D(2, 3, compute="triangular")._plan(20, 2) == (3, 1)
    forced = ks.SymmetryPreserving2D(2, 3, compute="triangular")
    assert forced._plan(19) == (3, 1)
    assert forced._plan(8) == (2, 1)  # fewer strips where they would be too thin
    assert forced._plan(5) is None  # too small for two strips: full
    # With the side unknown while the graph is built, auto computes in full
    # (a non-symmetric input tells: the triangular path would mirror it).
    call = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 2))])
    x = np.random.default_rng(0).normal(size=(1, 40, 40, 2)).astype(np.float32)
    y = call(x).numpy()
    reference = tf.nn.convolution(x, layer.kernel, padding="SAME") + layer.bias
    np.testing.assert_allclose(y, reference.numpy(), rtol=1e-5, atol=1e-5)
    forced.DIAGONAL_SPLITS = 3
    assert forced._plan(27) == (3, 3)
    assert forced._plan(26) == (3, 2)  # fewer diagonal pieces first
    assert ks.SymmetryPreserving2D(2, 3, compute="full").compute == "full"


@pytest.mark.parametrize("compute", ["triangular", "auto"])
def test_triangular_layer_through_keras_checks(compute, tmp_path, monkeypatch):
    """Config, fit (also XLA), mixed precision and .keras on the strips path."""
    monkeypatch.setattr(ks.SymmetryPreserving2D, "TRIANGULAR_MIN_LENGTH", 9)
    monkeypatch.setattr(ks.SymmetryPreserving2D, "TRIANGULAR_MIN_WORK", 0)
    data = symmetric_input(np.random.default_rng(0), 2, 12, 3)
    run_layer_checks(
        lambda **kw: ks.SymmetryPreserving2D(4, 3, compute=compute, activation="relu", **kw),
        data,
        tmp_path,
    )
    layer = ks.SymmetryPreserving2D(4, 3, compute=compute)
    assert layer.get_config()["compute"] == compute
    assert ks.asymmetry(layer(data)) == 0.0


def test_saved_model_serves_both_paths(tmp_path):
    rng = np.random.default_rng(2)
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, ks.SymmetryPreserving2D(2, 3, compute="triangular")(inputs))
    path = os.path.join(tmp_path, "served")
    model.export(path, verbose=False)
    served = tf.saved_model.load(path)
    for length in (5, 20):
        x = symmetric_input(rng, 1, length, 2)
        np.testing.assert_allclose(served.serve(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)


def test_bad_compute_arguments():
    with pytest.raises(ValueError, match="`compute` must be 'full', 'triangular' or 'auto'"):
        ks.SymmetryPreserving2D(2, 3, compute="half")
    with pytest.raises(ValueError, match="compute='triangular' needs strides=1"):
        ks.SymmetryPreserving2D(2, 3, strides=2, compute="triangular")
    # 'auto' with strides > 1 computes in full, and equals it.
    x = symmetric_input(np.random.default_rng(0), 1, 13, 2)
    auto = ks.SymmetryPreserving2D(2, 3, strides=2)
    y = auto(x)
    reference = tf.nn.convolution(x, auto.kernel, strides=2, padding="SAME") + auto.bias
    np.testing.assert_allclose(y.numpy(), reference.numpy(), rtol=1e-6, atol=1e-6)


def test_packed_float32_layer_equals_full(monkeypatch):
    """The layer as it runs on an AVX-512 CPU: 20 filters, C = 13, packed by 4."""
    monkeypatch.setattr(columns, "cpu_lanes", lambda: 16)
    rng = np.random.default_rng(3)
    x = tf.constant(symmetric_input(rng, 1, 30, 2).astype(np.float32))
    tri, full = _twins(13, 20)
    tri.build(x.shape)
    full.build(x.shape)
    full.set_weights(tri.get_weights())
    assert tri._plan(30) is not None
    calls = []
    real = columns.column_conv2d

    def spy(x, kernel, padding, pack):
        calls.append(pack)
        return real(x, kernel, padding, pack)

    monkeypatch.setattr(columns, "column_conv2d", spy)
    y = tri(x)
    assert calls and set(calls) == {4}
    np.testing.assert_allclose(y.numpy(), full(x).numpy(), rtol=1e-4, atol=1e-4)
    assert ks.asymmetry(y) == 0.0
