"""FusedSymmetryGenerating2D equals SelfCartesian + SymmetryGenerating2D."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from test_layers import conv_configs

import keras_symconv as ks


def _pair(cfg, **kwargs):
    args = dict(
        filters=cfg["filters"],
        kernel_size=cfg["kernel_size"],
        strides=cfg["strides"],
        padding=cfg["padding"],
        dilation_rate=cfg["dilation_rate"],
    )
    fused = ks.FusedSymmetryGenerating2D(**args, bias_initializer="random_normal", **kwargs)
    unfused = ks.SymmetryGenerating2D(**args, **kwargs)
    return fused, unfused


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=conv_configs())
def test_fused_equals_unfused_forward_and_gradient(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = tf.constant(rng.normal(size=(cfg["batch"], cfg["length"], cfg["channels"])), tf.float32)
    fused, unfused = _pair(cfg)
    out = fused(x)
    unfused.build((None, cfg["length"], cfg["length"], 2 * cfg["channels"]))
    unfused.set_weights(fused.get_weights())  # same packed kernel shape: weights move
    pairs = ks.SelfCartesian()(x)
    reference = unfused(pairs)
    assert tuple(out.shape) == tuple(reference.shape) == fused.compute_output_shape(x.shape)
    np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
    assert ks.asymmetry(out) == 0.0  # bitwise symmetric
    weights = tf.constant(rng.normal(size=out.shape), tf.float32)
    grads = []
    for layer, inputs in ((fused, x), (unfused, pairs)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(inputs) * weights)
        grads.append(tape.gradient(loss, layer.trainable_variables))
    for g_fused, g_unfused in zip(*grads, strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(g_fused).numpy(),
            tf.convert_to_tensor(g_unfused).numpy(),
            rtol=1e-4,
            atol=1e-4,
        )


def test_fused_in_a_model_saves_serializes_and_fits_with_xla(tmp_path):
    rng = np.random.default_rng(0)
    inputs = keras.Input((None, 3))
    z = ks.FusedSymmetryGenerating2D(4, 3, activation="relu")(inputs)
    out = ks.SymmetryPreserving2D(1, 3, activation="sigmoid")(z)
    model = keras.Model(inputs, out)
    x = rng.normal(size=(4, 11, 3)).astype(np.float32)
    y = (rng.uniform(size=(4, 11, 11, 1)) > 0.8).astype(np.float32)
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=True)
    assert np.isfinite(model.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    for length in (11, 17):
        xs = rng.normal(size=(2, length, 3)).astype(np.float32)
        assert model.predict(xs, verbose=0).shape == (2, length, length, 1)
    path = os.path.join(tmp_path, "fused.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
    layer = model.layers[1]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()


def test_fused_errors():
    with pytest.raises(ValueError, match=r"expects a 3D input \(batch, L, n\)"):
        ks.FusedSymmetryGenerating2D(2, 3).build((None, 5, 5, 2))
    layer = ks.FusedSymmetryGenerating2D(2, 3)
    layer.build((None, None, 4))
    assert tuple(layer.packed_kernel.shape) == (6, 4, 2)
    assert tuple(layer.kernel.shape) == (3, 3, 8, 2)
    with pytest.raises(NotImplementedError, match="takes the sequence"):
        layer.to_conv2d()
