"""Training, saving, serving and distribution of small symmetric networks."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_symconv as ks


def small_network(batch_norm=True, n=3, compute="auto"):
    inputs = keras.Input((None, n), name="sequence")
    x = ks.SelfCartesian()(inputs)
    x = ks.SymmetryGenerating2D(8, 1)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = ks.SymmetryPreserving2D(8, 3, activation="relu", compute=compute)(x)
    outputs = ks.SymmetryPreserving2D(1, 3, activation="sigmoid", compute=compute)(x)
    return keras.Model(inputs, outputs)


def pair_task(rng, count, length, n=3):
    """A symmetric pairwise target: 1 where x[i] . x[j] > 0."""
    x = rng.normal(size=(count, length, n)).astype(np.float32)
    y = (np.einsum("bin,bjn->bij", x, x) > 0).astype(np.float32)[..., None]
    return x, y


def symmetric_intermediates(model, x):
    """Every rank-4 layer output of `model` on x (a side model, same weights)."""
    outputs = [layer.output for layer in model.layers[1:] if len(layer.output.shape) == 4]
    probe = keras.Model(model.input, outputs)
    return probe(x)


def test_fit_adamw_20_steps_loss_decreases_maps_stay_symmetric():
    rng = np.random.default_rng(0)
    x, y = pair_task(rng, 160, 12)
    model = small_network()
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=1e-2, weight_decay=1e-4),
        loss="binary_crossentropy",
    )
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations.numpy() == 20
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.9 * before, (before, history.history["loss"], after)
    maps = symmetric_intermediates(model, x[:4])
    assert len(maps) == 6  # SelfCartesian output is excluded below
    for layer_map in maps[1:]:
        ks.check_symmetric(layer_map, atol=1e-5, rtol=1e-5)
    # The self-Cartesian product itself is not symmetric; its transpose swaps halves.
    with pytest.raises(ValueError, match="not symmetric"):
        ks.check_symmetric(maps[0])


def test_keras_save_load_export_and_to_conv2d(tmp_path):
    rng = np.random.default_rng(1)
    model = small_network()
    x, y = pair_task(rng, 16, 10)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)  # moves BatchNorm statistics too
    short = rng.normal(size=(2, 11, 3)).astype(np.float32)
    long = rng.normal(size=(3, 20, 3)).astype(np.float32)

    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    for safe_mode in (True, False):
        reloaded = keras.saving.load_model(path, safe_mode=safe_mode)
        for batch in (short, long):
            np.testing.assert_array_equal(reloaded(batch).numpy(), model(batch).numpy())

    export_dir = os.path.join(tmp_path, "serving")
    model.export(export_dir, verbose=False)
    served = tf.saved_model.load(export_dir)
    for batch in (short, long):
        out = served.serve(tf.constant(batch)).numpy()
        assert out.shape == (len(batch), batch.shape[1], batch.shape[1], 1)
        np.testing.assert_allclose(out, model(batch).numpy(), rtol=1e-6, atol=1e-6)
        ks.check_symmetric(out)

    # Replace every symmetric conv by its plain Conv2D: identical outputs.
    inputs = keras.Input((None, 3))
    h = inputs
    for layer in model.layers[1:]:
        if isinstance(layer, (ks.SymmetryGenerating2D, ks.SymmetryPreserving2D)):
            h = layer.to_conv2d()(h)
        else:
            h = layer(h)
    plain = keras.Model(inputs, h)
    assert not any(
        isinstance(layer, (ks.SymmetryGenerating2D, ks.SymmetryPreserving2D))
        for layer in plain.layers
    )
    for batch in (short, long):
        np.testing.assert_array_equal(plain(batch).numpy(), model(batch).numpy())


@pytest.mark.parametrize("compute", ["full", "triangular"])
def test_mirrored_strategy_fit_matches_single_device(compute, monkeypatch):
    """Two logical CPUs (tests/conftest.py): same step as one device, symmetric."""
    # Strips small enough for L = 9 whether or not fit knows L.
    monkeypatch.setattr(ks.SymmetryPreserving2D, "MAX_STRIPS", 2)
    monkeypatch.setattr(ks.SymmetryPreserving2D, "DIAGONAL_SPLITS", 1)
    monkeypatch.setattr(ks.SymmetryPreserving2D, "DYNAMIC_PLAN", (2, 1))
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, devices
    rng = np.random.default_rng(2)
    x, y = pair_task(rng, 8, 9)

    keras.utils.set_random_seed(5)
    single = small_network(batch_norm=False, compute="full")  # the reference step
    initial = single.get_weights()
    single.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    single.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    strategy = tf.distribute.MirroredStrategy(devices[:2])
    with strategy.scope():
        mirrored = small_network(batch_norm=False, compute=compute)
        mirrored.set_weights(initial)
        mirrored.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    mirrored.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    moved = [not np.allclose(a, b) for a, b in zip(initial, mirrored.get_weights(), strict=True)]
    assert all(moved)
    for got, want in zip(mirrored.get_weights(), single.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    ks.check_symmetric(mirrored.predict(x, verbose=0))
