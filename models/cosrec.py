"""Sequential recommendation: CosRec and its symmetric twin SCosRec (section IV-A).

CosRec (Yan et al., 2019) encodes the last ``L`` items of a user as the
pairwise tensor of their embeddings and reads it with a small 2D CNN:

1. item embeddings ``(L, d)`` -> self-Cartesian product ``(L, L, 2d)``;
2. blocks of conv 1x1 -> BN -> ReLU -> conv 3x3 'valid' -> BN -> ReLU
   (widths 128 then 256: ``5x5 -> 3x3 -> 1x1``);
3. average pooling, a tanh fully connected layer (150), dropout 0.5;
4. concat the user embedding (``d``) -> ``x`` of size 200;
5. the score of item ``i`` is ``W2[i] . x + b2[i]``, with ``W2`` and ``b2``
   looked up only for the items being scored (:class:`ItemScorer`).

SCosRec: the first conv is symmetry generating (fused with the
self-Cartesian product by default), every other conv symmetry preserving,
so every feature map is symmetric and the 3x3 kernels hold 6 of 9 entries.

The models output logits, ``(batch, K)`` for the ``K`` items of the
``items`` input; train them with
:class:`~keras_symconv.losses.SampledBinaryCrossentropy` on
:func:`~keras_symconv.data.recsys.rec_training_dataset`. For evaluation,
:func:`all_items_model` scores every item from the same layers and
:func:`evaluate_recommender` applies CosRec's protocol.

Regularization as in CosRec, whose ``Adam(weight_decay=l2)`` adds
``l2 * w`` to the gradient of every weight: here an L2 penalty
``l2 / 2 * sum(w^2)`` on every trainable weight (embeddings, kernels, biases,
batch-norm scales and offsets, the item table) gives the same gradient.
Batch-norm momentum 0.9 and epsilon 1e-5 are PyTorch's defaults, CosRec's.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_symconv import _backend
from keras_symconv import _validation as check
from keras_symconv.layers import (
    FusedSymmetryGenerating2D,
    SelfCartesian,
    SymmetryGenerating2D,
    SymmetryPreserving2D,
)

__all__ = [
    "build_cosrec",
    "build_scosrec",
    "ItemScorer",
    "all_items_model",
    "score_all_items",
    "evaluate_recommender",
    "PAPER_COSREC_TRAINABLE_PARAMS",
]

#: Table I of the paper (MovieLens-1M: 6,040 users, 3,416 items + padding).
PAPER_COSREC_TRAINABLE_PARAMS = {"cosrec": 1_983_000, "scosrec": 1_730_000}

_DEFAULTS = dict(
    sequence_length=5,
    embedding_dim=50,
    blocks=(128, 256),
    fc_units=150,
    fc_activation="tanh",
    dropout=0.5,
    l2=5e-6,
    batch_norm_momentum=0.9,
    batch_norm_epsilon=1e-5,
    synchronized_batch_norm=False,
)
_SYMMETRIC_DEFAULTS = dict(fused=True, compute="auto")


@keras.saving.register_keras_serializable(package="keras_symconv")
class ItemScorer(keras.layers.Layer):
    """Per-item output weights: ``score[b, k] = W[items[b, k]] . x[b] + bias[items[b, k]]``.

    Called on ``[x, items]`` it looks up only the rows of the items to score
    (training on targets and sampled negatives); called on ``x`` alone it
    scores every item with one matrix product, ``x @ W^T + bias`` (ranking
    at evaluation), without building anything per item.

    Args:
        num_items: rows of the item table (item ids ``0 .. num_items - 1``).
        weight_initializer: default normal with stddev ``1 / dim`` (CosRec).
        regularizer: applied to both the weights and the biases.

    Input shape:
        ``x (batch, dim)`` and optionally ``items (batch, K)`` int.

    Output shape:
        ``(batch, K)`` or ``(batch, num_items)``.
    """

    def __init__(self, num_items, weight_initializer=None, regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_items = check.integer(num_items, "num_items")
        self.weight_initializer = (
            keras.initializers.get(weight_initializer) if weight_initializer else None
        )
        self.regularizer = keras.regularizers.get(regularizer)

    def build(self, input_shape):
        x_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        dim = x_shape[-1]
        if dim is None:
            raise ValueError(f"ItemScorer needs a known feature size. Received: {x_shape}")
        init = self.weight_initializer or keras.initializers.RandomNormal(stddev=1.0 / dim)
        self.item_weights = self.add_weight(
            shape=(self.num_items, int(dim)),
            initializer=init,
            regularizer=self.regularizer,
            name="item_weights",
        )
        self.item_bias = self.add_weight(
            shape=(self.num_items,),
            initializer="zeros",
            regularizer=self.regularizer,
            name="item_bias",
        )

    def call(self, inputs):
        if not _backend.TENSORFLOW:
            return self._call_keras_ops(inputs)
        import tensorflow as tf  # tf.gather: sparse gradients for the item table

        if isinstance(inputs, (list, tuple)):
            x, items = inputs
            items = tf.cast(items, "int32")
            w = tf.gather(self.item_weights, items)
            return tf.einsum("bkd,bd->bk", w, x) + tf.gather(self.item_bias, items)
        return tf.matmul(inputs, self.item_weights, transpose_b=True) + self.item_bias

    def _call_keras_ops(self, inputs):
        ops = keras.ops
        if isinstance(inputs, (list, tuple)):
            x, items = inputs
            items = ops.cast(items, "int32")
            w = ops.take(self.item_weights, items, axis=0)
            return ops.einsum("bkd,bd->bk", w, x) + ops.take(self.item_bias, items, axis=0)
        return ops.matmul(inputs, ops.transpose(self.item_weights)) + self.item_bias

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape[0], (list, tuple)):
            return (input_shape[0][0], input_shape[1][1])
        return (input_shape[0], self.num_items)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_items=self.num_items,
            weight_initializer=(
                keras.initializers.serialize(self.weight_initializer)
                if self.weight_initializer
                else None
            ),
            regularizer=keras.regularizers.serialize(self.regularizer),
        )
        return config


def _build(symmetric, num_users, num_items, name, **overrides):
    defaults = {**_DEFAULTS, **(_SYMMETRIC_DEFAULTS if symmetric else {})}
    cfg = check.overrides(defaults, overrides)
    num_users = check.integer(num_users, "num_users")
    num_items = check.integer(num_items, "num_items", 2)
    length = check.integer(cfg["sequence_length"], "sequence_length")
    dim = check.integer(cfg["embedding_dim"], "embedding_dim")
    blocks = tuple(check.integer(f, "blocks") for f in cfg["blocks"])
    if not blocks or length - 2 * len(blocks) < 1:
        raise ValueError(
            f"Argument `blocks`: each block's 3x3 'valid' conv shrinks the {length}x{length} "
            f"map by 2, so at most {(length - 1) // 2} block(s) fit. Received: blocks={blocks}"
        )
    reg = keras.regularizers.L2(cfg["l2"] / 2) if cfg["l2"] else None
    bn = dict(
        momentum=cfg["batch_norm_momentum"],
        epsilon=cfg["batch_norm_epsilon"],
        synchronized=cfg["synchronized_batch_norm"],
        gamma_regularizer=reg,
        beta_regularizer=reg,
    )
    conv = dict(kernel_regularizer=reg, bias_regularizer=reg, padding="valid")

    def conv2d(filters, size, name):
        if not symmetric:
            return keras.layers.Conv2D(filters, size, name=name, **conv)
        return SymmetryPreserving2D(filters, size, compute=cfg["compute"], name=name, **conv)

    user = keras.Input((), dtype="int32", name="user")
    sequence = keras.Input((length,), dtype="int32", name="sequence")
    items = keras.Input((None,), dtype="int32", name="items")
    embed = dict(embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0 / dim))
    item_emb = keras.layers.Embedding(
        num_items, dim, embeddings_regularizer=reg, name="item_embedding", **embed
    )(sequence)
    user_emb = keras.layers.Embedding(
        num_users, dim, embeddings_regularizer=reg, name="user_embedding", **embed
    )(user)
    if symmetric and cfg["fused"]:
        x = FusedSymmetryGenerating2D(blocks[0], 1, name="block1_conv1", **conv)(item_emb)
    else:
        x = SelfCartesian(name="pairs")(item_emb)
        first = SymmetryGenerating2D if symmetric else keras.layers.Conv2D
        x = first(blocks[0], 1, name="block1_conv1", **conv)(x)
    for k, filters in enumerate(blocks, start=1):
        if k > 1:
            x = conv2d(filters, 1, f"block{k}_conv1")(x)
        x = keras.layers.BatchNormalization(name=f"block{k}_bn1", **bn)(x)
        x = keras.layers.ReLU(name=f"block{k}_relu1")(x)
        x = conv2d(filters, 3, f"block{k}_conv2")(x)
        x = keras.layers.BatchNormalization(name=f"block{k}_bn2", **bn)(x)
        x = keras.layers.ReLU(name=f"block{k}_relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(
        check.integer(cfg["fc_units"], "fc_units"),
        activation=cfg["fc_activation"],
        kernel_regularizer=reg,
        bias_regularizer=reg,
        name="fc",
    )(x)
    if cfg["dropout"]:
        x = keras.layers.Dropout(cfg["dropout"], name="dropout")(x)
    x = keras.layers.Concatenate(name="features")([x, user_emb])
    scores = ItemScorer(num_items, regularizer=reg, name="item_scorer")([x, items])
    return keras.Model([user, sequence, items], scores, name=name)


def build_cosrec(num_users, num_items, name="cosrec", **kwargs):
    """CosRec: the plain-CNN sequential recommender (module docstring).

    Args:
        num_users: rows of the user table.
        num_items: rows of the item table, the padding id 0 included.
        name: the model's name.
        **kwargs: ``sequence_length`` (L, 5), ``embedding_dim`` (d, 50),
            ``blocks`` (widths, ``(128, 256)``), ``fc_units`` (150),
            ``fc_activation`` (``"tanh"``), ``dropout`` (0.5), ``l2``
            (CosRec's weight decay, 5e-6), ``batch_norm_momentum`` (0.9),
            ``batch_norm_epsilon`` (1e-5), ``synchronized_batch_norm``
            (False; True for batch statistics over all replicas under a
            ``tf.distribute`` strategy).

    Returns:
        A Functional ``keras.Model`` with inputs ``user (batch,)``,
        ``sequence (batch, L)`` and ``items (batch, K)`` (int32) and output
        the logits ``(batch, K)``.

    Example (MovieLens-1M's sizes, Table I's 1.983M):

    >>> model = build_cosrec(6040, 3417)
    >>> sum(int(w.numpy().size) for w in model.trainable_weights)
    1983369
    """
    return _build(False, num_users, num_items, name, **kwargs)


def build_scosrec(num_users, num_items, name="scosrec", **kwargs):
    """SCosRec: :func:`build_cosrec` with symmetry-structured convolutions.

    Takes the arguments of :func:`build_cosrec`, and ``fused`` (True: the
    first conv reads the embeddings through
    :class:`~keras_symconv.FusedSymmetryGenerating2D`; False: the literal
    ``SelfCartesian`` + ``SymmetryGenerating2D`` graph, same weights) and
    ``compute`` (of the symmetry-preserving convs).

    Example (Table I: 1.730M):

    >>> model = build_scosrec(6040, 3417)
    >>> sum(int(w.numpy().size) for w in model.trainable_weights)
    1731209
    """
    return _build(True, num_users, num_items, name, **kwargs)


def all_items_model(model):
    """A model scoring every item: ``(user, sequence) -> (batch, num_items)`` logits.

    Shares the layers (and so the weights) of ``model``, a CosRec or SCosRec
    from :func:`build_cosrec` / :func:`build_scosrec` or loaded from a
    ``.keras`` file.
    """
    try:
        user = model.get_layer("user").output
        sequence = model.get_layer("sequence").output
        features = model.get_layer("features").output
        scorer = model.get_layer("item_scorer")
    except ValueError as exc:
        raise ValueError(
            f"Argument `model` ({model.name!r}) is not a CosRec / SCosRec model: {exc}"
        ) from None
    return keras.Model([user, sequence], scorer(features), name=f"{model.name}_all_items")


def score_all_items(model, users, sequences, batch_size=1024):
    """Logits of every item for each ``(user, sequence)`` row, ``(rows, num_items)`` numpy.

    ``model`` is a CosRec / SCosRec model or an :func:`all_items_model`.
    """
    if "items" in [t.name for t in model.inputs]:
        model = all_items_model(model)
    users = np.asarray(users, np.int32)
    sequences = np.asarray(sequences, np.int32)
    return np.asarray(
        model.predict({"user": users, "sequence": sequences}, batch_size=batch_size, verbose=0)
    )


def evaluate_recommender(model, split, part="test", ks=(1, 5, 10), batch_size=1024, chunk=4096):
    """CosRec's evaluation of ``model`` on ``split``'s ``part`` (``"valid"``/``"test"``).

    For each user with items in ``part``: score every item from the last
    ``L`` items of the user's history (``split.history(part)``: the training
    items, and for ``"test"`` the validation items after them), remove the
    history's items and the padding id from the ranking, and compare with
    the part's items (:func:`keras_symconv.metrics.ranking_metrics`).

    Returns:
        ``{"map", "precision@k", "recall@k", "users"}``.
    """
    from keras_symconv.data.recsys import PAD_ITEM, last_items
    from keras_symconv.metrics import ranking_metrics

    history, targets = split.history(part), split.targets(part)
    scorer = all_items_model(model)
    length = int(model.get_layer("sequence").output.shape[1])
    users = np.asarray([u for u, t in enumerate(targets) if len(t)], np.int64)
    if users.size == 0:
        raise ValueError(f"No user has items in the {part!r} part.")
    parts = []
    for start in range(0, len(users), chunk):
        rows = users[start : start + chunk]
        seqs = last_items([history[u] for u in rows], length)
        scores = score_all_items(scorer, rows, seqs, batch_size)
        exclude = [np.append(history[u], PAD_ITEM) for u in rows]
        parts.append(ranking_metrics(scores, [targets[u] for u in rows], exclude, ks, True))
    out = {}
    for key in parts[0]:
        if key != "users":
            out["map" if key == "ap" else key] = float(
                np.concatenate([p[key] for p in parts]).mean()
            )
    out["users"] = int(sum(len(p["users"]) for p in parts))
    return out
