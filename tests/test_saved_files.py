"""Files saved by earlier versions still load and compute the same.

``tests/data/layers_0_1_0.keras`` holds every registered layer of version
0.1.0 (written by ``tests/data/make_layers_0_1_0.py`` before the layers and
their compute moved to ``keras_symconv.layers`` and ``keras_symconv.ops``),
with its inputs and outputs in the ``.npz`` beside it.
"""

import pathlib

import keras
import numpy as np

import keras_symconv  # noqa: F401  (registers the layers)

DATA = pathlib.Path(__file__).parent / "data"
REGISTERED = (
    "SelfCartesian",
    "SymmetryGenerating2D",
    "FusedSymmetryGenerating2D",
    "SymmetryPreserving2D",
    "Symmetrize",
    "ToUpper",
    "FromUpper",
    "UpperBatchNormalization",
    "RunAfter",
    "ItemScorer",
)


def test_layers_saved_by_0_1_0_load_in_safe_mode_and_give_the_same_outputs():
    model = keras.saving.load_model(DATA / "layers_0_1_0.keras", safe_mode=True)
    kinds = {type(layer).__name__ for layer in model.layers}
    for name in REGISTERED:
        assert name in kinds, name
    saved = np.load(DATA / "layers_0_1_0.npz")
    maps, scores = model.predict([saved["x"], saved["items"]], verbose=0)
    np.testing.assert_allclose(maps, saved["maps"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores, saved["scores"], rtol=1e-5, atol=1e-5)
    # Still symmetric by construction after the round trip.
    np.testing.assert_array_equal(maps, maps.transpose(0, 2, 1, 3))
