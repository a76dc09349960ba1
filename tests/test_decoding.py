"""keras_symconv.training: the prior output logit, the threshold grid, the stored threshold."""

import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_symconv.training import (
    DECODING_MEMBER,
    THRESHOLDS,
    choose_threshold,
    prior_logit,
    read_decoding,
    write_decoding,
)


def test_prior_logit_counts_the_loss_positions():
    """Strict upper triangle, ignored labels left out; log(w r / (1 - r))."""
    y = np.zeros((2, 4, 4, 1), np.float32)
    y[0, 0, 1] = y[0, 1, 0] = 1  # one pair (both triangles, counted once)
    y[1, 2, 3] = y[1, 3, 2] = 1
    y[1, 0, :] = y[1, :, 0] = -1  # a masked residue: 3 of sample 1's 6 positions
    y[0, 2, 2] = 1  # the diagonal is no pair
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((2, 4, 5), np.float32), y)).batch(1)
    rate = 2 / (6 + 3)
    expected = np.log(5 * rate / (1 - rate))
    assert prior_logit(dataset, 5.0) == pytest.approx(expected, abs=1e-6)
    # A plain iterable of NumPy batches gives the same.
    assert prior_logit([(None, y[:1]), (None, y[1:])], 5.0) == pytest.approx(expected, abs=1e-6)


def test_prior_logit_without_pairs_is_an_error():
    y = np.zeros((1, 5, 5, 1), np.float32)
    with pytest.raises(ValueError, match="no pair .* 0 pairs among 10 positions"):
        prior_logit([(None, y)], 5.0)


def test_threshold_grid_and_choice():
    assert THRESHOLDS[0] == 0.1 and THRESHOLDS[-1] == 0.9 and len(THRESHOLDS) == 17
    # A score peaking at 0.35, flat (tied) from 0.6 up.
    best, figures = choose_threshold(lambda t: {"accuracy": 1 - abs(t - 0.35)})
    assert best == 0.35 and set(figures) == set(THRESHOLDS)
    best, _ = choose_threshold(lambda t: {"accuracy": min(t, 0.6)})
    assert best == 0.6  # ties go to the lowest threshold
    best, _ = choose_threshold(lambda t: {"sel": -t, "accuracy": t}, key="sel")
    assert best == 0.1
    with pytest.raises(ValueError, match="thresholds"):
        choose_threshold(lambda t: {"accuracy": t}, thresholds=())


def _tiny_model_file(path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.save(path)
    return model


def test_decoding_is_stored_inside_the_keras_file(tmp_path):
    path = str(tmp_path / "m.keras")
    model = _tiny_model_file(path)
    assert read_decoding(path) is None
    write_decoding(path, 0.35, chosen_on="validation", valid_accuracy=0.5)
    assert read_decoding(path) == {
        "threshold": 0.35,
        "chosen_on": "validation",
        "valid_accuracy": 0.5,
    }
    # Written again: one member, the new value.
    write_decoding(path, 0.4)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist().count(DECODING_MEMBER) == 1
    assert read_decoding(path) == {"threshold": 0.4}
    # Keras still loads the file, in safe mode, with the same weights.
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(loaded(x), model(x))


def test_decoding_errors(tmp_path):
    path = str(tmp_path / "m.keras")
    _tiny_model_file(path)
    with pytest.raises(ValueError, match=r"threshold.*\[0, 1\).*threshold=1.5"):
        write_decoding(path, 1.5)
    junk = tmp_path / "junk.keras"
    junk.write_text("not a zip")
    with pytest.raises(ValueError, match="junk.keras: not a .keras archive"):
        read_decoding(str(junk))
