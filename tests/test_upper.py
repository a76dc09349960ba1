"""The upper-triangle layout: layouts, the convolution, batch norm, networks.

References: NumPy's ``triu_indices`` for the layout; for the convolution,
``tf.nn.convolution`` on the full map (``from_upper``) and TensorFlow's
autodiff of it (through the gathers), in float64; Keras' own
``BatchNormalization`` on the full map; the networks built with
``layout="full"`` and the same weights.
"""

import os
import subprocess
import sys
import textwrap
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras_symconv.models import (
    build_contact_scnn,
    build_rna_scnn,
)
from layer_checks import symmetric_input

import keras_symconv as ks
from keras_symconv.ops import upper


def _upper_np(full):
    rows, cols = np.triu_indices(full.shape[1])
    return full[:, rows, cols]


def test_layout_matches_numpy_and_round_trips():
    rng = np.random.default_rng(0)
    for side in (1, 2, 5, 12):
        full = symmetric_input(rng, 2, side, 3)
        u = upper.to_upper(tf.constant(full)).numpy()
        assert u.shape == (2, side * (side + 1) // 2, 3)
        np.testing.assert_array_equal(u, _upper_np(full))
        back = upper.from_upper(tf.constant(u)).numpy()
        np.testing.assert_array_equal(back, full)
        diag = upper.diagonal_index(side).numpy()
        np.testing.assert_array_equal(u[:, diag], full[:, np.arange(side), np.arange(side)])
        assert upper.side_of(side * (side + 1) // 2) == side
    # Bitwise symmetric even from a non-symmetric source.
    raw = rng.normal(size=(1, 6, 6, 2)).astype(np.float32)
    restored = upper.from_upper(upper.to_upper(tf.constant(raw))).numpy()
    assert np.array_equal(restored, restored.transpose(0, 2, 1, 3))
    with pytest.raises(ValueError, match="not a symmetric map in the upper layout: its second"):
        upper.side_of(7)


@st.composite
def conv_configs(draw):
    c = draw(st.integers(1, 6))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["same", "valid"]))
    effective = (c - 1) * dilation + 1
    out_len = draw(st.integers(1, 16))
    return dict(
        c=c,
        dilation=dilation,
        padding=padding,
        length=out_len if padding == "same" else out_len + effective - 1,
        strips=draw(st.integers(1, 4)),
        splits=draw(st.integers(1, 3)),
        batch=draw(st.integers(1, 2)),
        channels=draw(st.integers(1, 3)),
        filters=draw(st.integers(1, 3)),
        use_bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
        pack=draw(st.integers(1, 3)),
    )


def _upper_twins(c, filters, **kwargs):
    blocks = ks.SymmetryPreserving2D(
        filters, c, layout="upper", bias_initializer="random_normal", **kwargs
    )
    reference = ks.SymmetryPreserving2D(filters, c, layout="upper", compute="full", **kwargs)
    return blocks, reference


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=conv_configs())
def test_upper_conv_equals_full_conv_forward_and_gradients(cfg):
    rng = np.random.default_rng(cfg["seed"])
    full = symmetric_input(rng, cfg["batch"], cfg["length"], cfg["channels"])
    x = upper.to_upper(tf.constant(full, tf.float64))
    blocks, reference = _upper_twins(
        cfg["c"],
        cfg["filters"],
        padding=cfg["padding"],
        dilation_rate=cfg["dilation"],
        use_bias=cfg["use_bias"],
        dtype="float64",
    )
    blocks.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(blocks.get_weights())
    # Any plan computes the same function (blocks may be empty).
    fn = upper.make_upper_conv(
        cfg["c"], cfg["dilation"], cfg["padding"], cfg["strips"], cfg["splits"], cfg["use_bias"]
    )
    n_out = blocks.compute_output_shape(x.shape)[1]
    upstream = tf.constant(rng.normal(size=(cfg["batch"], n_out, cfg["filters"])))
    results = []
    for call in (
        lambda: fn(
            x, blocks.kernel, *([tf.convert_to_tensor(blocks.bias)] if cfg["use_bias"] else [])
        ),
        lambda: blocks(x),
        lambda: reference(x),
    ):
        layer = reference if len(results) == 2 else blocks
        packing = mock.patch.object(upper, "choose_columns", lambda *a, p=cfg["pack"], **k: p)
        with packing, tf.GradientTape() as tape:
            tape.watch(x)
            y = call()
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x] + layer.trainable_variables)
        results.append((y.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]))
    y_ref, g_ref = results[2]
    assert y_ref.shape == (cfg["batch"], n_out, cfg["filters"])
    for y, grads in results[:2]:
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
        for a, b in zip(grads, g_ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    # The reference is the full convolution's upper triangle.
    conv = tf.nn.convolution(
        tf.constant(full, tf.float64),
        reference.kernel,
        padding=cfg["padding"].upper(),
        dilations=cfg["dilation"],
    )
    if cfg["use_bias"]:
        conv = conv + reference.bias
    np.testing.assert_allclose(y_ref, _upper_np(conv.numpy()), rtol=1e-10, atol=1e-10)


def test_input_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    x0 = upper.to_upper(tf.constant(symmetric_input(rng, 1, 9, 2), tf.float64)).numpy()
    layer = ks.SymmetryPreserving2D(2, 3, layout="upper", dtype="float64")
    layer.build(x0.shape)
    layer.UPPER_MAX_STRIPS, layer.STRIP_HEIGHT = 3, 3
    upstream = rng.normal(size=(1, x0.shape[1], 2))

    def loss(x):
        return float(tf.reduce_sum(layer(tf.constant(x)) * upstream))

    x = tf.constant(x0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(layer(x) * upstream)
    analytic = tape.gradient(value, x).numpy()
    eps = 1e-6
    for entry in (0, 4, 9, 30, 44):  # diagonal (0, 9, 44) and off-diagonal
        for channel in (0, 1):
            up, down = x0.copy(), x0.copy()
            up[0, entry, channel] += eps
            down[0, entry, channel] -= eps
            numeric = (loss(up) - loss(down)) / (2 * eps)
            assert abs(numeric - analytic[0, entry, channel]) < 1e-6


def test_unknown_side_one_graph_for_every_side():
    rng = np.random.default_rng(1)
    layer = ks.SymmetryPreserving2D(3, 5, layout="upper")
    layer.build((None, None, 2))
    call = tf.function(
        lambda x: tf.gradients(tf.reduce_sum(tf.square(layer(x))), [x, layer.packed_kernel]),
        input_signature=[tf.TensorSpec((None, None, 2))],
    )
    # XLA compiles the same graph per side: every shape argument must be
    # computable from the input's shape at compile time.
    xla = tf.function(
        lambda x: tf.gradients(tf.reduce_sum(tf.square(layer(x))), [x, layer.packed_kernel]),
        input_signature=[tf.TensorSpec((None, None, 2))],
        jit_compile=True,
    )
    forward = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 2))])
    for side in (1, 2, 3, 7, 21):
        full = symmetric_input(rng, 2, side, 2)
        x = upper.to_upper(tf.constant(full))
        y = forward(x).numpy()
        reference = tf.nn.convolution(full, layer.kernel, padding="SAME") + layer.bias
        np.testing.assert_allclose(y, _upper_np(reference.numpy()), rtol=1e-5, atol=1e-5)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))  # eager: the side is known
        autodiff = tape.gradient(loss, [x, layer.packed_kernel])
        for a, b in zip(call(x), autodiff, strict=True):
            assert np.all(np.isfinite(a.numpy()))
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
        if side in (3, 21):
            for a, b in zip(xla(x), autodiff, strict=True):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "c, strides, dilation, padding, length",
    [
        (1, 1, 1, "same", 11),
        (3, 1, 1, "same", 11),
        (4, 2, 1, "valid", 11),
        (5, 1, 2, "same", 11),  # border rows reach (c - 1) * dilation
        (4, 2, 1, "same", 11),
        (5, 3, 1, "same", 12),
        (7, 1, 1, "same", 4),  # fewer outputs than the border rows
        (3, 1, 1, "same", 1),
    ],
)
def test_fused_generating_upper_output(c, strides, dilation, padding, length):
    rng = np.random.default_rng(c)
    x = tf.constant(rng.normal(size=(2, length, 3)), tf.float64)
    kwargs = dict(strides=strides, dilation_rate=dilation, padding=padding, dtype="float64")
    full = ks.FusedSymmetryGenerating2D(4, c, bias_initializer="random_normal", **kwargs)
    up = ks.FusedSymmetryGenerating2D(4, c, layout="upper", **kwargs)
    full.build(x.shape)
    up.build(x.shape)
    up.set_weights(full.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_full = full(x)
        y_up = up(x)
        # The same function of the weights and the sequence.
        loss_full = tf.reduce_sum(tf.sin(upper.to_upper(y_full)))
        loss_up = tf.reduce_sum(tf.sin(y_up))
    assert tuple(y_up.shape) == up.compute_output_shape(x.shape)
    np.testing.assert_allclose(y_up.numpy(), _upper_np(y_full.numpy()), rtol=1e-12, atol=1e-12)
    for a, b in zip(
        tape.gradient(loss_up, [x] + up.trainable_variables),
        tape.gradient(loss_full, [x] + full.trainable_variables),
        strict=True,
    ):
        np.testing.assert_allclose(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), atol=1e-10
        )
    assert up.get_config()["layout"] == "upper"
    # The unfused generating layer gives the same upper layout.
    literal = ks.SymmetryGenerating2D(4, c, layout="upper", **kwargs)
    pairs = ks.SelfCartesian(dtype="float64")(x)
    literal.build(pairs.shape)
    literal.set_weights(full.get_weights())
    out = literal(pairs)
    assert tuple(out.shape) == literal.compute_output_shape(pairs.shape)
    np.testing.assert_allclose(out.numpy(), y_up.numpy(), rtol=1e-10, atol=1e-10)


def test_batch_norm_uses_the_full_maps_statistics():
    rng = np.random.default_rng(2)
    full = symmetric_input(rng, 3, 7, 4) * 2.0 + 1.0
    x = tf.constant(full)
    kwargs = dict(momentum=0.5, beta_initializer="random_normal", gamma_initializer="ones")
    bn_full = keras.layers.BatchNormalization(**kwargs)
    bn_up = ks.UpperBatchNormalization(**kwargs)
    bn_full.build(x.shape)
    bn_up.build((None, 28, 4))
    bn_up.set_weights(bn_full.get_weights())
    upstream = tf.constant(rng.normal(size=full.shape).astype(np.float32))
    upstream = upstream + tf.transpose(upstream, [0, 2, 1, 3])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_full = bn_full(x, training=True)
        y_up = bn_up(upper.to_upper(x), training=True)
        loss_full = tf.reduce_sum(y_full * upstream)
        loss_up = tf.reduce_sum(upper.from_upper(y_up) * upstream)
    np.testing.assert_allclose(upper.from_upper(y_up).numpy(), y_full.numpy(), atol=2e-6)
    for a, b in zip(bn_up.non_trainable_weights, bn_full.non_trainable_weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(bn_up.moving_mean.numpy(), 0.0)  # the update happened
    grads_up = tape.gradient(loss_up, [x] + bn_up.trainable_variables)
    grads_full = tape.gradient(loss_full, [x] + bn_full.trainable_variables)
    # to_upper reads the upper triangle of x only: compare symmetric parts.
    grads_up[0] = 0.5 * (grads_up[0] + tf.transpose(grads_up[0], [0, 2, 1, 3]))
    for a, b in zip(grads_up, grads_full, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    # Inference: the moving statistics.
    np.testing.assert_allclose(
        upper.from_upper(bn_up(upper.to_upper(x), training=False)).numpy(),
        bn_full(x, training=False).numpy(),
        atol=2e-6,
    )
    # Mixed precision: float16 in and out, statistics in float32.
    bn16 = ks.UpperBatchNormalization(dtype="mixed_float16")
    out = bn16(tf.cast(upper.to_upper(x), tf.float16), training=True)
    assert out.dtype == tf.float16
    with pytest.raises(ValueError, match="normalizes the channel axis"):
        ks.UpperBatchNormalization(axis=1)
    with pytest.raises(ValueError, match="renorm"):
        ks.UpperBatchNormalization(renorm=True)


def test_synchronized_batch_norm_over_replicas(tmp_path):
    """Two logical CPUs: synchronized statistics equal one device's on the whole batch."""
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        import keras_symconv as ks
        from keras_symconv.ops import upper
        rng = np.random.default_rng(0)
        a = rng.normal(size=(4, 6, 6, 3)).astype("float32") * 3 + 1
        x = upper.to_upper(tf.constant(a + a.transpose(0, 2, 1, 3))).numpy()
        single = ks.UpperBatchNormalization(momentum=0.0)
        single(x, training=True)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            bn = ks.UpperBatchNormalization(momentum=0.0, synchronized=True)
            bn.build(x.shape)
        dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(x).batch(4)
        )
        strategy.run(lambda t: bn(t, training=True), args=(next(iter(dataset)),))
        for a, b in zip(bn.non_trainable_weights, single.non_trainable_weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
        print("synchronized ok")
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "synchronized ok" in run.stdout


def test_layout_layers_and_errors():
    rng = np.random.default_rng(0)
    full = symmetric_input(rng, 1, 5, 2)
    u = ks.ToUpper()(full)
    assert tuple(u.shape) == (1, 15, 2)
    np.testing.assert_array_equal(ks.FromUpper()(u).numpy(), full)
    assert ks.ToUpper().compute_output_shape((None, None, None, 2)) == (None, None, 2)
    assert ks.FromUpper().compute_output_shape((None, 15, 2)) == (None, 5, 5, 2)
    with pytest.raises(ValueError, match="`layout` must be 'full' or 'upper'"):
        ks.SymmetryPreserving2D(2, 3, layout="packed")
    with pytest.raises(ValueError, match="layout='upper' needs strides=1"):
        ks.SymmetryPreserving2D(2, 3, strides=2, layout="upper")
    with pytest.raises(ValueError, match="takes a map in the upper layout, a 3D input"):
        ks.SymmetryPreserving2D(2, 3, layout="upper").build((None, 5, 5, 2))
    with pytest.raises(ValueError, match="its second axis has 14 entries"):
        ks.SymmetryPreserving2D(2, 3, layout="upper").build((None, 14, 2))
    with pytest.raises(ValueError, match="ToUpper expects a 4D input"):
        ks.ToUpper()(np.zeros((1, 3, 2), np.float32))


def _upper_network(dtype=None):
    inputs = keras.Input((None, 3))
    kw = {} if dtype is None else {"dtype": dtype}
    h = ks.FusedSymmetryGenerating2D(4, 1, layout="upper", **kw)(inputs)
    h = ks.UpperBatchNormalization(**kw)(h)
    h = keras.layers.Activation("relu", **kw)(h)
    h = ks.SymmetryPreserving2D(3, 3, layout="upper", activation="relu", **kw)(h)
    h = ks.SymmetryPreserving2D(1, 3, layout="upper", **kw)(h)
    return keras.Model(inputs, ks.FromUpper(**kw)(h))


def test_upper_network_through_keras(tmp_path):
    """fit (also XLA), mixed precision, .keras in safe mode, SavedModel for two sides."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 12, 3)).astype(np.float32)
    target = symmetric_input(rng, 2, 12, 1)
    for jit in (False, True):
        model = _upper_network()
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=jit)
        before = [w.numpy().copy() for w in model.trainable_weights]
        loss = model.fit(x, target, batch_size=2, epochs=2, verbose=0).history["loss"]
        assert np.all(np.isfinite(loss))
        assert all(
            not np.array_equal(b, w.numpy())
            for b, w in zip(before, model.trainable_weights, strict=True)
        )
        predicted = model.predict(x, verbose=0)
        assert np.array_equal(predicted, predicted.transpose(0, 2, 1, 3))
        np.testing.assert_allclose(predicted, model(x).numpy(), rtol=1e-5, atol=1e-5)
    mixed = _upper_network("mixed_float16")
    assert mixed(x).dtype == tf.float16
    mixed.compile(optimizer="adam", loss="mse")
    assert np.isfinite(mixed.fit(x, target, epochs=1, verbose=0).history["loss"][0])
    path = os.path.join(tmp_path, "upper.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    export = os.path.join(tmp_path, "served")
    model.export(export, verbose=False)
    served = tf.saved_model.load(export)
    for side in (7, 12):
        s = rng.normal(size=(1, side, 3)).astype(np.float32)
        np.testing.assert_allclose(served.serve(s).numpy(), model(s).numpy(), atol=1e-5)


@pytest.mark.parametrize("task", ["rna", "contact"])
def test_upper_networks_equal_full_layout_networks(task):
    """Same weights: same outputs, batch-norm updates and gradients as layout='full'."""
    rng = np.random.default_rng(5)
    side = 11
    if task == "rna":
        build = build_rna_scnn
        x = np.eye(5, dtype=np.float32)[rng.integers(0, 4, size=(2, side))]
    else:
        build = build_contact_scnn
        x = [
            rng.normal(size=(2, side, 25)).astype(np.float32),
            symmetric_input(rng, 2, side, 3),
        ]
    up, full = build(layout="upper"), build(layout="full")
    assert up.count_params() == full.count_params()
    full.set_weights(up.get_weights())
    assert any(isinstance(layer, ks.UpperBatchNormalization) for layer in up.layers)
    np.testing.assert_allclose(up(x).numpy(), full(x).numpy(), atol=1e-6)
    y = (rng.random((2, side, side, 1)) < 0.2).astype(np.float32)
    y = np.maximum(y, y.transpose(0, 2, 1, 3))
    grads = []
    for model in (up, full):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(y, out))
        grads.append(tape.gradient(loss, model.trainable_weights))
        assert np.array_equal(out.numpy(), out.numpy().transpose(0, 2, 1, 3)) or model is full
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in grads[1])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4 * scale)
    for a, b in zip(up.non_trainable_weights, full.non_trainable_weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("c", [1, 5])
def test_fused_generating_upper_in_parts_known_and_unknown_side(c):
    # 300 x 300 maps: the upper output is built in 8 parts (pair_sum).
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(1, 300, 2)), tf.float32)
    full = ks.FusedSymmetryGenerating2D(2, c, padding="same", bias_initializer="random_normal")
    up = ks.FusedSymmetryGenerating2D(2, c, padding="same", layout="upper")
    full.build(x.shape)
    up.build(x.shape)
    up.set_weights(full.get_weights())
    want = _upper_np(full(x).numpy())
    np.testing.assert_allclose(up(x).numpy(), want, rtol=1e-5, atol=1e-5)
    spec = [tf.TensorSpec((None, None, 2))]
    unknown = tf.function(up, input_signature=spec)
    np.testing.assert_allclose(unknown(x).numpy(), want, rtol=1e-5, atol=1e-5)
    xla = tf.function(
        lambda x: tf.gradients(tf.reduce_sum(tf.sin(up(x))), [x, up.packed_kernel]),
        input_signature=spec,
        jit_compile=True,
    )
    xla_grads = xla(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss_up = tf.reduce_sum(tf.sin(up(x)))
        loss_full = tf.reduce_sum(tf.sin(upper.to_upper(full(x))))
    grads_up = tape.gradient(loss_up, [x] + up.trainable_variables)
    grads_full = tape.gradient(loss_full, [x] + full.trainable_variables)
    for a, b in zip(grads_up, grads_full, strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), rtol=1e-4, atol=1e-3
        )
    for a, b in zip(xla_grads, grads_full[:2], strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), rtol=1e-4, atol=1e-3
        )


def test_pair_sum_against_numpy():
    rng = np.random.default_rng(0)
    for side, chunks in ((5, 1), (300, 8)):
        table = rng.normal(size=(2, side, 3, 4))
        pattern = rng.integers(0, 3, size=side).astype(np.int32)
        got = upper.pair_sum(tf.constant(table), tf.constant(pattern), chunks=chunks).numpy()
        z = table[:, :, pattern] + np.swapaxes(table[:, :, pattern], 1, 2)
        np.testing.assert_array_equal(got, _upper_np(z))


@pytest.mark.parametrize("with_pattern", [False, True])
def test_pair_sum_gradient_against_numpy(with_pattern):
    # Each output entry adds its gradient to two table entries; batch 2,
    # 8 parts, known and unknown side.
    rng = np.random.default_rng(1)
    side, width = 300, 3 if with_pattern else 1
    table = tf.constant(rng.normal(size=(2, side, width, 4)), tf.float64)
    pattern = rng.integers(0, width, size=side).astype(np.int32) if with_pattern else None
    rows, cols = np.triu_indices(side)
    weights = rng.normal(size=(2, len(rows), 4))
    p = np.zeros(side, np.int32) if pattern is None else pattern
    want = np.zeros((2, side, width, 4))
    np.add.at(want, (slice(None), rows, p[cols]), weights)
    np.add.at(want, (slice(None), cols, p[rows]), weights)

    def grad(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            pat = None if pattern is None else tf.constant(pattern)
            loss = tf.reduce_sum(upper.pair_sum(t, pat) * weights)
        return tape.gradient(loss, t)

    np.testing.assert_allclose(grad(table).numpy(), want, rtol=1e-12, atol=1e-12)
    unknown = tf.function(grad, input_signature=[tf.TensorSpec((None, None, width, 4), tf.float64)])
    np.testing.assert_allclose(unknown(table).numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("side", [1, 2, 9])
def test_pair_sum_gradient_on_sides_shorter_than_its_parts(side):
    # With the side unknown the gradient is made in 8 parts of rows, some
    # of them empty here.
    rng = np.random.default_rng(side)
    width = 3
    table = tf.constant(rng.normal(size=(2, side, width, 2)), tf.float64)
    pattern = (np.arange(side) % width).astype(np.int32)
    rows, cols = np.triu_indices(side)
    weights = rng.normal(size=(2, len(rows), 2))
    for pat, p in ((None, np.zeros(side, np.int32)), (tf.constant(pattern), pattern)):
        want = np.zeros((2, side, width, 2))
        np.add.at(want, (slice(None), rows, p[cols]), weights)
        np.add.at(want, (slice(None), cols, p[rows]), weights)

        @tf.function(input_signature=[tf.TensorSpec((None, None, width, 2), tf.float64)])
        def grad(t, pat=pat):
            with tf.GradientTape() as tape:
                tape.watch(t)
                loss = tf.reduce_sum(upper.pair_sum(t, pat) * weights)
            return tape.gradient(loss, t)

        np.testing.assert_allclose(grad(table).numpy(), want, rtol=1e-12, atol=1e-12)


def test_upper_training_step_with_few_filters():
    """Four filters per conv pack several columns per pixel; inside a traced
    training step the input gradient's kernel has no static channel count,
    which must fall back to the plain convolution rather than fail."""
    tiny = dict(lstm_units=4, dense_units=3, first_filters=4, block1=((5, 4), (3, 4)),
                block2=((3, 4),), block3=((3, 4),), side_filters=4)  # fmt: skip
    rng = np.random.default_rng(2)
    x = np.eye(5, dtype=np.float32)[rng.integers(0, 4, size=(1, 32))]
    y = (rng.random((1, 32, 32, 1)) < 0.1).astype(np.float32)
    y = np.maximum(y, y.transpose(0, 2, 1, 3))
    up, full = build_rna_scnn(layout="upper", **tiny), build_rna_scnn(layout="full", **tiny)
    full.set_weights(up.get_weights())
    grads = []
    for model in (up, full):

        @tf.function
        def step(x, y, model=model):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(keras.losses.binary_crossentropy(y, model(x, training=True)))
            return tape.gradient(loss, model.trainable_weights)

        grads.append(step(x, y))
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in grads[1])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4 * scale)
