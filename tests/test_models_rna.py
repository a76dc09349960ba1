"""The paper's RNA networks: parameter counts, symmetry, variable length, XLA."""

import os

import keras
import numpy as np
import pytest
from keras_symconv.models import PAPER_TRAINABLE_PARAMS, build_rna_cnn, build_rna_scnn
from tiny import RNA_TINY

import keras_symconv as ks
from keras_symconv.losses import PairBinaryCrossentropy

TINY = RNA_TINY


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def one_hot_batch(rng, batch, length):
    return np.eye(5, dtype=np.float32)[rng.integers(0, 5, size=(batch, length))]


def test_trainable_counts_match_table_ii():
    scnn, cnn = trainable(build_rna_scnn()), trainable(build_rna_cnn())
    # Counting DESIGN.md's list: SCNN 239,318 and CNN 389,538.
    # Paper, Table II: SCNN 239,198 and CNN 387,798.
    assert scnn == 239_318
    assert cnn == 389_538
    assert abs(scnn / PAPER_TRAINABLE_PARAMS["scnn"] - 1) < 0.001
    assert abs(cnn / PAPER_TRAINABLE_PARAMS["cnn"] - 1) < 0.005
    assert trainable(build_rna_cnn(symmetrize_output=True)) == cnn


def test_no_lambda_layers_and_safe_mode_reload(tmp_path):
    rng = np.random.default_rng(0)
    for model in (build_rna_scnn(**TINY), build_rna_cnn(symmetrize_output=True, **TINY)):
        assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
        path = os.path.join(tmp_path, f"{model.name}.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)
        x = one_hot_batch(rng, 2, 13)
        np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())


def test_scnn_symmetric_cnn_not_two_lengths_in_a_row():
    rng = np.random.default_rng(1)
    scnn = build_rna_scnn()
    cnn = build_rna_cnn()
    cnn_sym = build_rna_cnn(symmetrize_output=True)
    for length in (23, 41):
        x = one_hot_batch(rng, 2, length)
        for model in (scnn, cnn, cnn_sym):
            predicted = model.predict(x, verbose=0)
            assert predicted.shape == (2, length, length, 1), (model.name, predicted.shape)
            np.testing.assert_allclose(predicted, model(x).numpy(), rtol=1e-5, atol=1e-6)
        ks.check_symmetric(scnn.predict(x, verbose=0), atol=1e-6, rtol=1e-5)
        ks.check_symmetric(cnn_sym.predict(x, verbose=0), atol=0, rtol=0)
        assert ks.asymmetry(cnn.predict(x, verbose=0)) > 1e-3


def test_builder_arguments():
    model = build_rna_scnn(l2=0, batch_norm=False, **TINY)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert not model.losses
    assert build_rna_scnn(**TINY).losses  # L2 on the conv kernels by default
    with pytest.raises(TypeError, match="Unknown argument"):
        build_rna_scnn(lstm_size=3)


def test_fit_with_xla_bilstm():
    """The BiLSTM builders train under jit_compile=True (checked explicitly)."""
    rng = np.random.default_rng(2)
    model = build_rna_scnn(**TINY)
    model.compile(optimizer="adam", loss=PairBinaryCrossentropy(), jit_compile=True)
    x = one_hot_batch(rng, 4, 12)
    y = (rng.uniform(size=(4, 12, 12, 1)) > 0.9).astype(np.float32)
    y = np.maximum(y, np.swapaxes(y, 1, 2))
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, model.trainable_weights, strict=True)
    )
    ks.check_symmetric(model.predict(x, verbose=0), atol=1e-6, rtol=1e-5)


def _layer_types(model):
    return {type(layer).__name__ for layer in model.layers}


def test_fused_by_default_and_the_literal_graph_on_request():
    rng = np.random.default_rng(4)
    fused = build_rna_scnn(**TINY)
    literal = build_rna_scnn(fused=False, compute="full", **TINY)
    assert "FusedSymmetryGenerating2D" in _layer_types(fused)
    assert "SelfCartesian" not in _layer_types(fused)
    assert {"SelfCartesian", "SymmetryGenerating2D"} <= _layer_types(literal)
    assert "FusedSymmetryGenerating2D" not in _layer_types(literal)
    assert trainable(fused) == trainable(literal)
    assert all(
        layer.compute == "full"
        for layer in literal.layers
        if isinstance(layer, ks.SymmetryPreserving2D)
    )
    # The same weights give the same function.
    literal.set_weights(fused.get_weights())
    x = one_hot_batch(rng, 2, 17)
    np.testing.assert_allclose(
        fused.predict(x, verbose=0), literal.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    # The plain CNN has neither argument.
    with pytest.raises(TypeError, match="Unknown argument"):
        build_rna_cnn(fused=True)
    with pytest.raises(TypeError, match="Unknown argument"):
        build_rna_cnn(compute="full")
