"""Layers: Theorem 1 and the preserving property, references, errors, counts."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layer_checks import run_layer_checks, self_cartesian_input, symmetric_input

import keras_symconv as ks
from keras_symconv.ops import kernels


@st.composite
def conv_configs(draw):
    c = draw(st.integers(1, 7))
    strides = draw(st.integers(1, 2))
    dilation = 1 if strides > 1 else draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["same", "valid"]))
    effective = (c - 1) * dilation + 1
    length = draw(st.integers(max(2, effective), effective + 6))
    return dict(
        kernel_size=c,
        strides=strides,
        dilation_rate=dilation,
        padding=padding,
        length=length,
        batch=draw(st.integers(2, 3)),
        channels=draw(st.integers(1, 4)),
        filters=draw(st.integers(1, 4)),
        seed=draw(st.integers(0, 2**16)),
    )


def _check_layer_against_reference(layer_cls, cfg):
    rng = np.random.default_rng(cfg["seed"])
    generating = layer_cls is ks.SymmetryGenerating2D
    if generating:
        data = self_cartesian_input(rng, cfg["batch"], cfg["length"], cfg["channels"])
    else:
        data = symmetric_input(rng, cfg["batch"], cfg["length"], cfg["channels"])
    layer = layer_cls(
        cfg["filters"],
        cfg["kernel_size"],
        strides=cfg["strides"],
        padding=cfg["padding"],
        dilation_rate=cfg["dilation_rate"],
        bias_initializer="random_normal",
    )
    out = layer(data).numpy()
    assert out.shape == layer.compute_output_shape(data.shape)

    # Theorem 1 / preserving property: the output equals its transpose.
    err = ks.asymmetry(out)
    scale = max(1.0, float(np.abs(out).max()))
    assert err <= 1e-5 * scale, f"asymmetry {err:.3g} (max |out| {scale:.3g}) for {cfg}"

    # The expanded kernel has the symmetry and reproduces the output with a
    # plain convolution.
    kernel = layer.kernel.numpy()
    np.testing.assert_array_equal(kernel, np.swapaxes(kernel, 0, 1))
    if generating:
        n = kernel.shape[2] // 2
        np.testing.assert_array_equal(kernel[:, :, :n], kernel[:, :, n:])
    reference = (
        tf.nn.conv2d(
            data,
            kernel,
            strides=cfg["strides"],
            padding=cfg["padding"].upper(),
            dilations=cfg["dilation_rate"],
        ).numpy()
        + layer.bias.numpy()
    )
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)

    # A plain Conv2D built by to_conv2d() gives the same outputs.
    conv = layer.to_conv2d()
    assert isinstance(conv, keras.layers.Conv2D)
    np.testing.assert_allclose(conv(data).numpy(), out, rtol=1e-6, atol=1e-6)


_PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_PROPERTY_SETTINGS
@given(cfg=conv_configs())
def test_theorem1_generating_output_is_symmetric(cfg):
    _check_layer_against_reference(ks.SymmetryGenerating2D, cfg)


@_PROPERTY_SETTINGS
@given(cfg=conv_configs())
def test_preserving_output_is_symmetric(cfg):
    _check_layer_against_reference(ks.SymmetryPreserving2D, cfg)


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_every_kernel_size_and_padding(c, padding):
    """The grid the property test samples, exhaustively on sizes and paddings."""
    for layer_cls in (ks.SymmetryGenerating2D, ks.SymmetryPreserving2D):
        _check_layer_against_reference(
            layer_cls,
            dict(
                kernel_size=c,
                strides=1 + c % 2,
                dilation_rate=1,
                padding=padding,
                length=c + 3,
                batch=2,
                channels=2,
                filters=3,
                seed=c,
            ),
        )


def test_numpy_reference_convolution():
    """An independent NumPy convolution agrees (valid padding, stride 1)."""
    rng = np.random.default_rng(3)
    data = self_cartesian_input(rng, 2, 6, 2)
    layer = ks.SymmetryGenerating2D(3, 3, padding="valid", use_bias=False)
    out = layer(data).numpy()
    kernel = layer.kernel.numpy()
    ref = np.zeros_like(out)
    for s in range(out.shape[1]):
        for t in range(out.shape[2]):
            patch = data[:, s : s + 3, t : t + 3, :]
            ref[:, s, t] = np.einsum("bxyk,xykf->bf", patch, kernel)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layer_cls, c, in_ch, filters, use_bias",
    [
        (ks.SymmetryGenerating2D, 1, 40, 40, True),
        (ks.SymmetryGenerating2D, 3, 10, 7, False),
        (ks.SymmetryPreserving2D, 13, 40, 20, True),
        (ks.SymmetryPreserving2D, 5, 20, 20, False),
    ],
)
def test_parameter_count(layer_cls, c, in_ch, filters, use_bias):
    layer = layer_cls(filters, c, use_bias=use_bias)
    layer.build((None, None, None, in_ch))
    channels = in_ch // 2 if layer_cls is ks.SymmetryGenerating2D else in_ch
    expected = c * (c + 1) // 2 * channels * filters + (filters if use_bias else 0)
    assert layer.count_params() == expected
    names = sorted(w.name for w in layer.trainable_weights)
    assert names == (["bias", "packed_kernel"] if use_bias else ["packed_kernel"])
    assert tuple(layer.packed_kernel.shape) == (c * (c + 1) // 2, channels, filters)
    conv = keras.layers.Conv2D(filters, c, use_bias=use_bias)
    conv.build((None, None, None, in_ch))
    assert layer.count_params() < conv.count_params()


def test_generating_with_kernel_1_halves_a_1x1_conv():
    layer = ks.SymmetryGenerating2D(8, 1, use_bias=False)
    layer.build((None, None, None, 10))
    assert layer.count_params() * 2 == 1 * 1 * 10 * 8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(filters=4, kernel_size=(3, 5)),
            r"`kernel_size` must be the same on both.*kernel_size=\(3, 5\)",
        ),
        (
            dict(filters=4, kernel_size=3, strides=(1, 2)),
            r"`strides` must be the same on both.*strides=\(1, 2\)",
        ),
        (
            dict(filters=4, kernel_size=3, dilation_rate=[2, 1]),
            r"`dilation_rate` must be the same on both.*dilation_rate=\[2, 1\]",
        ),
        (
            dict(filters=4, kernel_size=3, padding="causal"),
            r"`padding` must be 'same' or 'valid'.*padding='causal'",
        ),
        (
            dict(filters=4, kernel_size=3, padding="full"),
            r"`padding` must be 'same' or 'valid'.*padding='full'",
        ),
        (dict(filters=0, kernel_size=3), r"`filters` must be a positive integer.*filters=0"),
        (dict(filters=-2, kernel_size=3), r"`filters` must be a positive integer.*filters=-2"),
        (dict(filters=2.5, kernel_size=3), r"`filters` must be a positive integer.*filters=2.5"),
        (
            dict(filters=4, kernel_size=0),
            r"`kernel_size` must be a positive integer.*kernel_size=0",
        ),
        (
            dict(filters=4, kernel_size=(3, 3, 3)),
            r"`kernel_size` must be an integer or a pair.*kernel_size=\(3, 3, 3\)",
        ),
        (
            dict(filters=4, kernel_size=3, strides=2, dilation_rate=2),
            r"`strides > 1` is not supported together with `dilation_rate > 1`"
            r".*strides=2 and dilation_rate=2",
        ),
    ],
)
@pytest.mark.parametrize("layer_cls", [ks.SymmetryGenerating2D, ks.SymmetryPreserving2D])
def test_bad_arguments_raise(layer_cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        layer_cls(**kwargs)


@pytest.mark.parametrize("layer_cls", [ks.SymmetryGenerating2D, ks.SymmetryPreserving2D])
def test_bad_input_shapes_raise(layer_cls):
    with pytest.raises(ValueError, match=r"expects a 4D input.*input_shape=\(None, 8, 8\)"):
        layer_cls(2, 3).build((None, 8, 8))
    with pytest.raises(ValueError, match=r"expects a 4D input.*input_shape=\(None, 8, 8, 2, 1\)"):
        layer_cls(2, 3).build((None, 8, 8, 2, 1))
    with pytest.raises(ValueError, match=r"square input \(H == W\).*input_shape=\(None, 8, 9, 4\)"):
        layer_cls(2, 3).build((None, 8, 9, 4))
    with pytest.raises(ValueError, match=r"square input.*input_shape=\(2, 5, 6, 4\)"):
        layer_cls(2, 3)(np.zeros((2, 5, 6, 4), np.float32))
    with pytest.raises(ValueError, match=r"channel dimension .* must be known"):
        layer_cls(2, 3).build((None, 8, 8, None))


def test_generating_rejects_odd_channels():
    with pytest.raises(
        ValueError, match=r"even channel count 2n.*input_shape=\(None, 6, 6, 5\) \(channels=5\)"
    ):
        ks.SymmetryGenerating2D(2, 3).build((None, 6, 6, 5))
    # Odd channel counts are fine for the preserving layer.
    layer = ks.SymmetryPreserving2D(2, 3)
    layer.build((None, 6, 6, 5))
    assert tuple(layer.packed_kernel.shape) == (6, 5, 2)


def test_normalised_arguments_and_unknown_length():
    layer = ks.SymmetryPreserving2D(3, (5, 5), strides=[2, 2], padding="VALID")
    assert (layer.kernel_size, layer.strides, layer.padding) == (5, 2, "valid")
    assert layer.compute_output_shape((None, None, None, 4)) == (None, None, None, 3)
    assert layer.compute_output_shape((2, 13, 13, 4)) == (2, 5, 5, 3)
    with pytest.raises(ValueError, match="before it is built"):
        ks.SymmetryPreserving2D(3, 3).kernel  # noqa: B018


def test_self_cartesian():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    y = ks.SelfCartesian()(x).numpy()
    assert y.shape == (2, 5, 5, 6)
    for i in range(5):
        for j in range(5):
            np.testing.assert_array_equal(y[:, i, j], np.concatenate([x[:, i], x[:, j]], -1))
    # Transposing the spatial axes swaps the channel halves.
    np.testing.assert_array_equal(
        np.swapaxes(y, 1, 2), np.concatenate([y[..., 3:], y[..., :3]], -1)
    )
    assert ks.SelfCartesian().compute_output_shape((None, None, 3)) == (None, None, None, 6)
    with pytest.raises(ValueError, match=r"expected ndim=3|3D input"):
        ks.SelfCartesian()(np.zeros((2, 4, 4, 1), np.float32))


def test_variable_length_model_two_lengths_in_a_row():
    """Predict two different lengths in a row: shapes and values both right."""
    inputs = keras.Input((None, 3))
    y = ks.SelfCartesian()(inputs)
    z = ks.SymmetryGenerating2D(4, 1, activation="relu")(y)
    out = ks.SymmetryPreserving2D(2, 3)(z)
    model = keras.Model(inputs, out)
    rng = np.random.default_rng(1)
    for length in (17, 30, 9):
        x = rng.normal(size=(2, length, 3)).astype(np.float32)
        predicted = model.predict(x, verbose=0)
        assert predicted.shape == (2, length, length, 2)
        np.testing.assert_allclose(predicted, model(x).numpy(), rtol=1e-5, atol=1e-6)
        ks.check_symmetric(predicted)


@pytest.mark.parametrize("name", ["HalfGlorotUniform", "HalfGlorotNormal"])
def test_half_glorot_variance_and_serialization(name):
    cls = getattr(ks, name)
    shape = (5, 5, 64, 32)
    values = cls(seed=3)(shape).numpy()
    fan_in, fan_out = 25 * 64, 25 * 32
    expected = 1.0 / (fan_in + fan_out)  # half of Glorot's 2 / (fan_in + fan_out)
    assert abs(values.var() / expected - 1) < 0.05, values.var() / expected
    glorot = (
        keras.initializers.GlorotUniform if "Uniform" in name else keras.initializers.GlorotNormal
    )(seed=3)
    assert abs(glorot(shape).numpy().var() / values.var() - 2) < 0.1
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(cls(seed=7))
    )
    assert type(restored) is cls
    np.testing.assert_array_equal(restored((3, 3, 2, 2)).numpy(), cls(seed=7)((3, 3, 2, 2)).numpy())


def test_layer_initializer_uses_full_kernel_fans():
    """The packed kernel holds entries drawn for the full (C, C, in, F) kernel."""
    layer = ks.SymmetryPreserving2D(32, 5, kernel_initializer=ks.HalfGlorotUniform(seed=2))
    layer.build((None, None, None, 64))
    expected = ks.HalfGlorotUniform(seed=2)((5, 5, 64, 32))
    np.testing.assert_array_equal(
        layer.packed_kernel.numpy(), kernels.pack_kernel(expected, generating=False).numpy()
    )
    assert isinstance(ks.SymmetryGenerating2D(2, 3).kernel_initializer, ks.HalfGlorotUniform)
    assert isinstance(
        ks.SymmetryGenerating2D(2, 3, kernel_initializer="half_glorot_normal").kernel_initializer,
        ks.HalfGlorotNormal,
    )


def test_check_symmetric_reports_largest_asymmetry():
    x = np.zeros((1, 4, 4, 2), np.float32)
    assert ks.check_symmetric(x) == 0.0
    x[0, 1, 3, 1] = 0.25
    assert ks.asymmetry(x) == 0.25
    with pytest.raises(ValueError, match=r"max \|x - x\^T\| = 0.25.*index \(0, 1, 3, 1\)"):
        ks.check_symmetric(x)
    assert ks.check_symmetric(x, atol=0.3) == 0.25
    with pytest.raises(ValueError, match=r"not square on axes \(1, 2\)"):
        ks.check_symmetric(np.zeros((1, 3, 4, 1)))
    assert ks.asymmetry(np.eye(3), axes=(0, 1)) == 0.0


@pytest.mark.parametrize(
    "layer_fn, make_data",
    [
        (
            lambda **kw: ks.SymmetryGenerating2D(3, 3, activation="relu", **kw),
            lambda rng: self_cartesian_input(rng, 2, 6, 2),
        ),
        (
            lambda **kw: ks.SymmetryPreserving2D(
                2, 4, padding="valid", kernel_regularizer="l2", bias_initializer="ones", **kw
            ),
            lambda rng: symmetric_input(rng, 2, 7, 3),
        ),
    ],
    ids=["generating", "preserving"],
)
def test_layer_standard_checks(layer_fn, make_data, tmp_path):
    run_layer_checks(layer_fn, make_data(np.random.default_rng(0)), tmp_path)


def test_run_after_orders_branches_without_changing_values():
    layer = ks.RunAfter()
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 7, 3)).astype(np.float32))
    previous = tf.constant(np.ones((2, 7, 5), np.float32))
    np.testing.assert_array_equal(layer([x, previous]).numpy(), x.numpy())

    @tf.function
    def graph(x, p):
        done = tf.square(p, name="previous_branch")
        return layer([x, done])

    ops = graph.get_concrete_function(x, previous).graph.get_operations()
    square = next(op for op in ops if op.type == "Square")
    # The output waits on the other branch through a control input, not data.
    waiting = [op for op in ops if square in op.control_inputs]
    assert waiting and all(op.type == "Identity" for op in waiting)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, previous])
        y = layer([x, tf.square(previous)])
        loss = tf.reduce_sum(3.0 * y)
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), np.full(x.shape, 3.0))
    assert tape.gradient(loss, previous) is None

    half = layer([tf.cast(x, tf.float16), previous])
    assert half.dtype == tf.float16  # no cast: x passes through as it is
    assert layer.compute_output_shape([(None, 7, 3), (None, 7, 5)]) == (None, 7, 3)
    with pytest.raises(ValueError, match=r"RunAfter expects a list of two inputs"):
        ks.RunAfter().build((2, 7, 3))
