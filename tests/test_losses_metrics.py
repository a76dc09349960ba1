"""The paper's metrics, against hand-computed cases (the losses: test_losses.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import pair_map

from keras_symconv import losses, metrics


def test_decoding_greedy_authors_rule_and_strict():
    p = np.zeros((5, 5))
    # (0, 3) highest; (0, 4) then blocked by row 0; (1, 3) blocked by column 3;
    # (3, 4) allowed by the authors' rule (3 used only as a column), not strict.
    for (i, j), v in {(0, 3): 0.9, (0, 4): 0.8, (1, 3): 0.7, (3, 4): 0.6, (1, 2): 0.55}.items():
        p[i, j] = v
    assert metrics.decode_pairs(p) == [(0, 3), (3, 4), (1, 2)]
    assert metrics.decode_pairs(p, strict=True) == [(0, 3), (1, 2)]
    # Threshold is strict: 0.5 itself is not a pair; lower triangle is never read.
    q = np.zeros((3, 3))
    q[0, 1], q[2, 0] = 0.5, 0.99
    assert metrics.decode_pairs(q) == []


def test_decoding_ties_first_in_row_major_order():
    p = np.zeros((4, 4))
    p[0, 2] = p[0, 3] = p[1, 2] = 0.7
    assert metrics.decode_pairs(p) == [(0, 2)]  # (0, 3) row 0 used; (1, 2) column 2 used
    p[1, 3] = 0.7
    assert metrics.decode_pairs(p) == [(0, 2), (1, 3)]


def test_scores_hand_computed_and_empty_cases():
    native = [(0, 9), (1, 8), (2, 7)]
    assert metrics.pair_scores(native, [(0, 9), (1, 7)]) == (0.5, 1 / 3, (0.5 + 1 / 3) / 2)
    assert metrics.pair_scores(native, []) == (0.0, 0.0, 0.0)  # empty prediction
    assert metrics.pair_scores([], [(0, 3)]) == (0.0, 0.0, 0.0)  # empty native structure
    assert metrics.pair_scores([], []) == (1.0, 1.0, 1.0)
    assert metrics.pair_scores([(9, 0)], [(0, 9)]) == (1.0, 1.0, 1.0)


def test_pair_metrics_per_sequence_then_averaged():
    y1, y2 = pair_map(6, [(0, 5), (1, 4)]), pair_map(6, [])
    p1 = pair_map(6, [(0, 5), (2, 3)]) * 0.9
    p2 = pair_map(6, [(0, 2)]) * 0.9
    result = metrics.pair_metrics(np.stack([y1, y2]), np.stack([p1, p2]))
    assert result["per_sequence"] == [(0.5, 0.5, 0.5), (0.0, 0.0, 0.0)]
    assert result["accuracy"] == 0.25 and result["ppv"] == 0.25
    # Lengths drop padding; a list of different sizes works too.
    padded_y = np.zeros((1, 9, 9))
    padded_y[0, :6, :6] = y1
    padded_p = np.full((1, 9, 9), 0.99)
    padded_p[0, :6, :6] = p1
    assert metrics.pair_metrics(padded_y, padded_p, lengths=[6])["per_sequence"] == [
        (0.5, 0.5, 0.5)
    ]
    assert metrics.pair_metrics([y1, pair_map(3, [])], [p1, np.zeros((3, 3))])["accuracy"] == 0.75


def test_keras_pair_metric_thresholded_and_in_fit():
    y = np.stack([pair_map(6, [(0, 5), (1, 4)]), pair_map(6, [])])[..., None]
    p = np.stack([pair_map(6, [(0, 5), (2, 3)]) * 0.9, pair_map(6, [(0, 2)]) * 0.9])[..., None]
    for kind, expected in (("ppv", 0.25), ("sensitivity", 0.25), ("accuracy", 0.25)):
        metric = metrics.PairMetric(kind)
        metric.update_state(y, p)
        np.testing.assert_allclose(float(metric.result()), expected)
    # Thresholded, not decoded: two candidates for base 0 both count.
    q = pair_map(6, [(0, 5)]) * 0.9 + pair_map(6, [(0, 4)]) * 0.8
    metric = metrics.PairMetric("ppv")
    metric.update_state(y[:1], q[None, ..., None])
    assert float(metric.result()) == 0.5
    assert metrics.pair_metrics(y[:1, ..., 0], q[None])["ppv"] == 1.0
    # Padding labels are ignored.
    padded = np.full((1, 8, 8, 1), losses.IGNORE_LABEL, np.float32)
    padded[0, :6, :6] = y[0]
    pp = np.ones((1, 8, 8, 1), np.float32)
    pp[0, :6, :6] = p[0]
    metric = metrics.PairMetric("accuracy")
    metric.update_state(padded, pp)
    assert float(metric.result()) == 0.5
    with pytest.raises(ValueError, match="kind='f1'"):
        metrics.PairMetric("f1")
    # Usable in compile/fit, also with XLA.
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(inputs))
    model.compile(
        loss=losses.PairBinaryCrossentropy(),
        metrics=[metrics.PairMetric("accuracy")],
        jit_compile=True,
    )
    logits = np.where(p > 0.5, 3.0, -3.0).astype(np.float32)
    result = model.evaluate(logits, y.astype(np.float32), verbose=0, return_dict=True)
    np.testing.assert_allclose(result["pair_accuracy"], 0.25, rtol=1e-6)
    assert tf.reduce_all(tf.math.is_finite(result["loss"]))
