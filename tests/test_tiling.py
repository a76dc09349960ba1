"""Tiled prediction equals the untiled model's, on every backend."""

import keras
import numpy as np
import pytest
from keras_symconv.models import build_contact_scnn, build_rna_cnn, build_rna_scnn

from keras_symconv import SelfCartesian, SymmetryPreserving2D
from keras_symconv.tiling import TiledPredictor

pytestmark = pytest.mark.backends

RNG = np.random.default_rng(3)


def _settled(model):
    """Batch-norm moving statistics away from (0, 1), so that they matter."""
    for w in model.weights:
        if "moving_mean" in w.path:
            w.assign((0.1 * RNG.normal(size=w.shape)).astype("float32"))
        elif "moving_variance" in w.path:
            w.assign((1.0 + 0.3 * RNG.random(size=w.shape)).astype("float32"))
    return model


def _rna_inputs(length):
    return [np.eye(5, dtype="float32")[RNG.integers(0, 5, length)][None]]


def _contact_inputs(length):
    pair = RNG.normal(size=(1, length, length, 3)).astype("float32")
    return [
        RNG.normal(size=(1, length, 25)).astype("float32"),
        (pair + pair.transpose(0, 2, 1, 3)) / 2,
    ]


CASES = {
    "rna_scnn": (build_rna_scnn, _rna_inputs),
    "rna_cnn": (build_rna_cnn, _rna_inputs),
    "rna_cnn_sym": (lambda: build_rna_cnn(symmetrize_output=True), _rna_inputs),
    "contact_scnn": (build_contact_scnn, _contact_inputs),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tiles_equal_the_untiled_map(name):
    if name.startswith("contact") and keras.backend.backend() == "jax":
        pytest.skip("JAX compiles each eager op once per tile shape: too slow for CI here")
    build, make_inputs = CASES[name]
    keras.utils.set_random_seed(0)
    model = _settled(build())
    inputs = make_inputs(40)
    reference = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    reference = keras.ops.convert_to_numpy(reference)[0]
    tiled = TiledPredictor(model, tile_size=16)
    assert tiled.symmetric == name.endswith("scnn")
    assert tiled.halo == (19 if name.startswith("contact") else 13)
    calls = []
    one_tile = tiled._tile
    tiled._tile = lambda *a: calls.append(a[2:]) or one_tile(*a)
    out = tiled(inputs)
    # 3 x 3 tiles of the 40 x 40 map: the upper 6 when the model is symmetric.
    assert len(calls) == (6 if tiled.symmetric else 9)
    assert out.shape == reference.shape
    np.testing.assert_allclose(out, reference, atol=2e-6)
    # The halo is what makes it exact: one entry less and the tile borders show.
    tiled.halo -= 1
    assert np.abs(tiled(inputs) - reference).max() > 1e-5


def test_errors_name_the_argument_or_layer():
    sequence = keras.Input((None, 5))
    x = SelfCartesian()(sequence)
    x = keras.layers.Conv2D(4, 3, padding="valid", name="valid_conv")(x)
    with pytest.raises(ValueError, match=r"'valid_conv' has .* padding='valid'"):
        TiledPredictor(keras.Model(sequence, x))
    y = keras.layers.Permute((2, 1, 3), name="transpose")(SelfCartesian()(sequence))
    with pytest.raises(ValueError, match=r"cannot run layer 'transpose' \(Permute\)"):
        TiledPredictor(keras.Model(sequence, y))
    with pytest.raises(ValueError, match=r"`tile_size` must be a positive int"):
        TiledPredictor(keras.Model(sequence, x), tile_size=0)
    tiled = TiledPredictor(build_rna_scnn(), 16)
    with pytest.raises(ValueError, match=r"batch size 1"):
        tiled([np.zeros((2, 10, 5), "float32")])
    # Maps alive at once: the product (10) and the first conv's output (4).
    sequence = keras.Input((None, 5))
    x = SelfCartesian()(sequence)
    x = keras.layers.Conv2D(3, 3, padding="same")(keras.layers.Conv2D(4, 3, padding="same")(x))
    chain = TiledPredictor(keras.Model(sequence, x))
    assert chain.pair_channels == 14 and chain.untiled_bytes(100) == 4 * 14 * 100 * 100
    assert chain.halo == 2 and not chain.symmetric
    assert tiled.should_tile(1000, memory=tiled.untiled_bytes(1000))
    assert not tiled.should_tile(1000, memory=3 * tiled.untiled_bytes(1000))
    # A plain Conv2D over the whole map is tiled above MAX_WHOLE_CONV_SIDE
    # whatever the memory; the SCNN's upper-layout blocks are not (its
    # builder uses the full layout off TensorFlow, whole-map convolutions).
    side = TiledPredictor.MAX_WHOLE_CONV_SIDE
    plenty = 100 * chain.untiled_bytes(side + 1)
    assert chain.whole_map_convs
    assert chain.should_tile(side + 1, memory=plenty) and not chain.should_tile(side, memory=plenty)
    full = [
        layer.layout == "full"
        for layer in tiled.model.layers
        if isinstance(layer, SymmetryPreserving2D) and layer.kernel_size > 1
    ]
    assert full and tiled.whole_map_convs == any(full)
    plenty = 100 * tiled.untiled_bytes(side + 1)
    assert tiled.should_tile(side + 1, memory=plenty) == any(full)
