"""The pair loss against hand-computed cases, on every Keras backend."""

import keras
import numpy as np
import pytest
from tiny import pair_map

from keras_symconv import losses


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def test_loss_hand_computed():
    y = pair_map(3, [(0, 2)])
    p = np.full((3, 3), 0.5, np.float32)
    p[0, 2] = p[2, 0] = 0.8
    p[0, 1] = 0.1
    p[1, 0] = 0.9  # lower triangle: ignored
    expected = (5 * -np.log(0.8) + -np.log(0.9) + -np.log(0.5)) / 3
    got = _np(losses.pair_binary_crossentropy(y[None], p[None]))
    np.testing.assert_allclose(got, [expected], rtol=1e-6)
    logits = np.log(p / (1 - p))
    got_logits = _np(losses.pair_binary_crossentropy(y[None], logits[None], from_logits=True))
    np.testing.assert_allclose(got_logits, [expected], rtol=1e-5)


def test_padded_batch_equals_each_sample_alone():
    rng = np.random.default_rng(0)
    lengths = [5, 9, 7]
    samples = []
    for n in lengths:
        y = pair_map(n, [(0, n - 1), (1, n - 2)])
        p = rng.uniform(0.05, 0.95, size=(n, n)).astype(np.float32)
        samples.append((y, (p + p.T) / 2))
    alone = [_np(losses.pair_binary_crossentropy(y[None], p[None]))[0] for y, p in samples]
    big = max(lengths)
    y_pad = np.zeros((3, big, big), np.float32)
    y_ign = np.full((3, big, big), losses.IGNORE_LABEL, np.float32)
    p_pad = rng.uniform(size=(3, big, big)).astype(np.float32)  # garbage in the padding
    for k, (y, p) in enumerate(samples):
        n = len(y)
        y_pad[k, :n, :n] = y
        y_ign[k, :n, :n] = y
        p_pad[k, :n, :n] = p
    by_lengths = losses.pair_binary_crossentropy(y_pad, p_pad, lengths=lengths)
    mask = np.arange(big)[None] < np.array(lengths)[:, None]
    by_mask = losses.pair_binary_crossentropy(y_pad, p_pad, mask=mask)
    by_label = losses.PairBinaryCrossentropy(reduction=None)(y_ign[..., None], p_pad[..., None])
    for got in (by_lengths, by_mask, by_label):
        np.testing.assert_allclose(_np(got), alone, rtol=1e-5)
    # Without the mask the padding does change the loss.
    assert not np.allclose(_np(losses.pair_binary_crossentropy(y_pad, p_pad)), alone)


def test_loss_serialization_and_validation():
    loss = losses.PairBinaryCrossentropy(positive_weight=3.0)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, losses.PairBinaryCrossentropy)
    assert restored.positive_weight == 3.0
    with pytest.raises(ValueError, match="positive_weight=0"):
        losses.PairBinaryCrossentropy(positive_weight=0)


def test_from_logits_is_stable_at_large_logits():
    # Saturated logits: the naive log(sigmoid) form gives inf or nan.
    y = pair_map(2, [(0, 1)])[None]
    logits = np.array([[[0.0, -200.0], [-200.0, 0.0]]], np.float32)
    got = _np(losses.pair_binary_crossentropy(y, logits, positive_weight=1.0, from_logits=True))
    np.testing.assert_allclose(got, [200.0], rtol=1e-6)


def test_sampled_binary_crossentropy_against_numpy():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3, 6)).astype(np.float32)
    labels = np.array([[1, 1, 0, 0, 0, 0], [1, -1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]], np.float32)
    got = _np(losses.sampled_binary_crossentropy(labels, logits))
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    pos, neg = labels > 0.5, labels == 0
    expected = [-np.log(p[b][pos[b]]).mean() - np.log(1 - p[b][neg[b]]).mean() for b in range(3)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
