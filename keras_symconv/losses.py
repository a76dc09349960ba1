"""Losses for symmetric pair maps.

A symmetric map holds every pair twice and its diagonal is no pair at all, so
the loss is taken on the strict upper triangle ``i < j`` only. Padded
positions are excluded: pass ``lengths`` or a ``mask``, or (in ``fit``) mark
them with a negative label in ``y_true``, as the package's tf.data pipelines
do (:data:`IGNORE_LABEL`).

:class:`SampledBinaryCrossentropy` is the loss of sequential recommenders
trained on targets and sampled negatives (CosRec).

Written with ``keras.ops``: the losses run on every Keras backend.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_symconv.data.labels import IGNORE_LABEL

__all__ = [
    "IGNORE_LABEL",
    "pair_binary_crossentropy",
    "PairBinaryCrossentropy",
    "pair_mask",
    "sampled_binary_crossentropy",
    "SampledBinaryCrossentropy",
]


def _squeeze_channel(x):
    x = ops.convert_to_tensor(x)
    if len(x.shape) == 4:
        x = ops.squeeze(x, -1)
    return x


def pair_mask(y_true, lengths=None, mask=None):
    """Float mask ``(batch, L, L)``: 1 on valid strict-upper-triangle pairs.

    Valid means ``i < j``, both below the sequence's length (``lengths``,
    shape ``(batch,)``) and/or both unmasked (``mask``, ``(batch, L)``), and
    ``y_true`` not negative.
    """
    y_true = _squeeze_channel(y_true)
    length = ops.shape(y_true)[1]
    upper = ops.triu(ops.ones((length, length), "float32"), 1)
    valid = upper[None] * ops.cast(y_true >= 0, "float32")
    if lengths is not None:
        lengths = ops.reshape(ops.cast(lengths, "int32"), (-1, 1))
        pos = ops.arange(length, dtype="int32")[None, :] < lengths
        mask = pos if mask is None else ops.logical_and(ops.cast(mask, "bool"), pos)
    if mask is not None:
        m = ops.cast(mask, "float32")
        valid = valid * m[:, :, None] * m[:, None, :]
    return valid


def pair_binary_crossentropy(
    y_true, y_pred, lengths=None, mask=None, positive_weight=5.0, from_logits=False
):
    """Per-sample weighted binary cross-entropy on the strict upper triangle.

    ``loss_b = sum_{valid i<j} w_ij * bce(y_ij, p_ij) / #valid pairs of b``
    with ``w_ij = positive_weight`` for a true pair and 1 otherwise. The mean
    over valid pairs makes a padded sample's loss equal to its loss alone.

    Args:
        y_true: ``(batch, L, L[, 1])`` 0/1 labels; negative = ignored.
        y_pred: probabilities (or logits with ``from_logits=True``), same shape.
        lengths: optional ``(batch,)`` true lengths.
        mask: optional ``(batch, L)`` 1 for real positions.
        positive_weight: weight of true pairs (the paper: 5).

    Returns:
        ``(batch,)`` float32.
    """
    y_true = ops.cast(_squeeze_channel(y_true), "float32")
    y_pred = ops.cast(_squeeze_channel(y_pred), "float32")
    valid = pair_mask(y_true, lengths, mask)
    labels = ops.maximum(y_true, 0.0)
    if from_logits:
        # -z log sigmoid(x) - (1 - z) log(1 - sigmoid(x)), without overflow
        bce = ops.softplus(-ops.abs(y_pred)) + ops.maximum(y_pred, 0.0) - y_pred * labels
    else:
        eps = keras.config.epsilon()
        p = ops.clip(y_pred, eps, 1.0 - eps)
        bce = -(labels * ops.log(p) + (1.0 - labels) * ops.log(1.0 - p))
    weights = 1.0 + (positive_weight - 1.0) * labels
    total = ops.sum(bce * weights * valid, axis=(1, 2))
    return total / ops.maximum(ops.sum(valid, axis=(1, 2)), 1.0)


@keras.saving.register_keras_serializable(package="keras_symconv")
class PairBinaryCrossentropy(keras.losses.Loss):
    """Keras loss: :func:`pair_binary_crossentropy`, padding marked in ``y_true``.

    Positions whose label is negative (:data:`IGNORE_LABEL`, what the
    package's pipelines put on padding) are excluded.

    Args:
        positive_weight: weight of true pairs (default 5, the paper's).
        from_logits: whether ``y_pred`` holds logits.
    """

    def __init__(
        self,
        positive_weight=5.0,
        from_logits=False,
        reduction="sum_over_batch_size",
        name="pair_binary_crossentropy",
        **kwargs,
    ):
        super().__init__(reduction=reduction, name=name, **kwargs)
        if positive_weight <= 0:
            raise ValueError(
                "Argument `positive_weight` must be positive. "
                f"Received: positive_weight={positive_weight}"
            )
        self.positive_weight = float(positive_weight)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return pair_binary_crossentropy(
            y_true, y_pred, positive_weight=self.positive_weight, from_logits=self.from_logits
        )

    def get_config(self):
        config = super().get_config()
        config.update(positive_weight=self.positive_weight, from_logits=self.from_logits)
        return config


def sampled_binary_crossentropy(y_true, logits):
    """CosRec's loss on scored targets and sampled negatives, per sample.

    ``loss_b = mean_{targets} -log sigmoid(z) + mean_{negatives} -log(1 - sigmoid(z))``:
    targets (label 1) and negatives (label 0) weigh the same however many
    negatives are drawn. Labels :data:`IGNORE_LABEL` (padding targets) are
    left out; a sample with none of one kind gets 0 for that term.

    Args:
        y_true: ``(batch, K)`` labels 1, 0 or :data:`IGNORE_LABEL`.
        logits: ``(batch, K)`` scores (logits).

    Returns:
        ``(batch,)`` float32.
    """
    y_true = ops.cast(y_true, "float32")
    logits = ops.cast(logits, "float32")
    positive = ops.cast(y_true > 0.5, "float32")
    negative = ops.cast(ops.equal(y_true, 0.0), "float32")
    pos_term = ops.sum(positive * ops.softplus(-logits), axis=-1)
    neg_term = ops.sum(negative * ops.softplus(logits), axis=-1)
    return pos_term / ops.maximum(ops.sum(positive, -1), 1.0) + neg_term / ops.maximum(
        ops.sum(negative, -1), 1.0
    )


@keras.saving.register_keras_serializable(package="keras_symconv")
class SampledBinaryCrossentropy(keras.losses.Loss):
    """Keras loss: :func:`sampled_binary_crossentropy` (``y_pred`` are logits).

    What :func:`~keras_symconv.data.recsys.rec_training_dataset` batches are
    trained with: labels 1 for the targets, 0 for the negatives,
    :data:`IGNORE_LABEL` for padding targets.
    """

    def __init__(
        self, reduction="sum_over_batch_size", name="sampled_binary_crossentropy", **kwargs
    ):
        super().__init__(reduction=reduction, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return sampled_binary_crossentropy(y_true, y_pred)
