"""Contact-map networks: parameter counts against Table III, symmetry, saving."""

import os

import keras
import numpy as np
from keras_symconv.models import (
    PAPER_CONTACT_TRAINABLE_PARAMS,
    build_contact_cnn,
    build_contact_scnn,
)
from tiny import CONTACT_TINY

import keras_symconv as ks

TINY = CONTACT_TINY


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def inputs(rng, batch, length, n1d=25, n2d=3):
    seq = rng.normal(size=(batch, length, n1d)).astype(np.float32)
    pair = rng.normal(size=(batch, length, length, n2d)).astype(np.float32)
    return seq, pair + np.swapaxes(pair, 1, 2)


def test_trainable_counts_within_5_percent_of_table_iii():
    cnn, scnn = trainable(build_contact_cnn()), trainable(build_contact_scnn())
    # Paper, Table III: CNN 2,465,000 and SCNN 1,326,000.
    assert cnn == 2_427_668
    assert scnn == 1_364_788
    assert abs(cnn / PAPER_CONTACT_TRAINABLE_PARAMS["cnn"] - 1) < 0.05
    assert abs(scnn / PAPER_CONTACT_TRAINABLE_PARAMS["scnn"] - 1) < 0.05
    assert trainable(build_contact_cnn(symmetrize_output=True)) == cnn


def test_symmetry_two_lengths_and_safe_mode_reload(tmp_path):
    rng = np.random.default_rng(0)
    scnn = build_contact_scnn(**TINY)
    cnn = build_contact_cnn(**TINY)
    cnn_sym = build_contact_cnn(symmetrize_output=True, **TINY)
    for length in (19, 31):
        x = inputs(rng, 2, length)
        for model in (scnn, cnn, cnn_sym):
            predicted = model.predict(list(x), verbose=0)
            assert predicted.shape == (2, length, length, 1)
            np.testing.assert_allclose(predicted, model(list(x)).numpy(), rtol=1e-5, atol=1e-6)
        ks.check_symmetric(scnn.predict(list(x), verbose=0), atol=1e-6, rtol=1e-5)
        ks.check_symmetric(cnn_sym.predict(list(x), verbose=0), atol=0, rtol=0)
        assert ks.asymmetry(cnn.predict(list(x), verbose=0)) > 1e-3
    path = os.path.join(tmp_path, "contact.keras")
    scnn.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    x = list(inputs(rng, 1, 23))
    np.testing.assert_array_equal(reloaded(x).numpy(), scnn(x).numpy())
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in scnn.layers)


def test_fused_default_equals_the_literal_graph():
    rng = np.random.default_rng(6)
    fused = build_contact_scnn(**TINY)
    literal = build_contact_scnn(fused=False, compute="full", **TINY)
    names = lambda m: {type(layer).__name__ for layer in m.layers}  # noqa: E731
    assert "FusedSymmetryGenerating2D" in names(fused) and "SelfCartesian" not in names(fused)
    assert "SelfCartesian" in names(literal)
    literal.set_weights(fused.get_weights())
    seq, pair = inputs(rng, 2, 15)
    np.testing.assert_allclose(
        fused.predict([seq, pair], verbose=0),
        literal.predict([seq, pair], verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_symmetric_multi_kernel_convolutions_run_one_after_another():
    # Each conv of a block after the first reads the block's input through
    # RunAfter([input, previous conv's output]); the CNN's, and those of an
    # SCNN on full maps, run side by side.
    scnn = build_contact_scnn(**TINY)
    chained = [layer for layer in scnn.layers if isinstance(layer, ks.RunAfter)]
    assert [layer.name for layer in chained] == ["block1_k3_after"]
    x, previous = chained[0].input
    assert previous is scnn.get_layer("block1_k5").output
    assert x is scnn.get_layer("block1_k5").input
    assert scnn.get_layer("block1_k3").input is chained[0].output
    for other in (build_contact_cnn(**TINY), build_contact_scnn(layout="full", **TINY)):
        assert not any(isinstance(layer, ks.RunAfter) for layer in other.layers)
