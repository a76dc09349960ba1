"""One shared check that runs a layer through what Keras users rely on.

Config round trip, symbolic and eager calls, a fit step, a fit step with
jit_compile=True, mixed precision, and `.keras` save/load (safe_mode=True)
with identical outputs. Written for this project (no keras.src imports).
"""

import os

import keras
import numpy as np
import tensorflow as tf

import keras_symconv as ks


def symmetric_input(rng, batch, length, channels):
    a = rng.normal(size=(batch, length, length, channels)).astype(np.float32)
    return a + np.swapaxes(a, 1, 2)


def self_cartesian_input(rng, batch, length, n):
    x = rng.normal(size=(batch, length, n)).astype(np.float32)
    return ks.SelfCartesian()(x).numpy()


def _model(layer_fn, input_shape, **overrides):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer_fn(**overrides)(inputs))


def run_layer_checks(layer_fn, data, tmp_path, symmetric=True):
    """Run `layer_fn()` through the standard checks on `data` (batch first)."""
    layer = layer_fn()
    spatial_none = (None, None, data.shape[-1])

    # Config round trip, through the serialization Keras uses in files.
    config = layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config

    # Symbolic call with unknown L, then eager call.
    symbolic = layer(keras.Input(spatial_none))
    assert tuple(symbolic.shape) == (None, None, None, layer.filters)
    eager = layer(data)
    assert tuple(eager.shape) == layer.compute_output_shape(data.shape)
    if symmetric:
        ks.check_symmetric(eager, atol=1e-5, rtol=1e-5)

    target = np.random.default_rng(0).normal(size=eager.shape).astype(np.float32)
    target = target + np.swapaxes(target, 1, 2)

    # A fit step, plain and under XLA: weights move, loss finite, symmetric.
    for jit in (False, True):
        model = _model(layer_fn, spatial_none)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=jit)
        before = [w.numpy().copy() for w in model.trainable_weights]
        history = model.fit(data, target, batch_size=len(data), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        after = [w.numpy() for w in model.trainable_weights]
        assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
        predicted = model.predict(data, verbose=0)
        np.testing.assert_allclose(predicted, model(data).numpy(), rtol=1e-4, atol=1e-5)
        if symmetric:
            ks.check_symmetric(predicted, atol=1e-5, rtol=1e-5)

    # Mixed precision: float32 variables, float16 compute, still symmetric.
    mixed = _model(layer_fn, spatial_none, dtype="mixed_float16")
    sym_layer = mixed.layers[-1]
    assert sym_layer.packed_kernel.dtype == "float32"
    out16 = mixed(data)
    assert out16.dtype == tf.float16
    if symmetric:
        ks.check_symmetric(out16, atol=1e-2, rtol=1e-2)
    mixed.compile(optimizer="adam", loss="mse")
    loss = mixed.fit(data, target, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)

    # .keras save and load (safe mode), identical outputs.
    model = _model(layer_fn, spatial_none)
    expected = model(data).numpy()
    path = os.path.join(tmp_path, "layer.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(reloaded(data).numpy(), expected)
    assert type(reloaded.layers[-1]) is type(layer)
