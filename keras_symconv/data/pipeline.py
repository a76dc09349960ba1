"""tf.data pipelines for RNA structures.

Training (:func:`rna_training_dataset`) follows the paper: each epoch the
structures are shuffled (seeded; a different order every epoch), grouped into
batches, and every sequence of a batch is cut to a random window of the same
length ``min(max_length, shortest sequence in the batch)``, so a batch needs
no padding. ``crop="pad"`` instead cuts each sequence on its own to at most
``max_length`` and pads the batch: padded positions have zero one-hot rows
and the label :data:`~keras_symconv.losses.IGNORE_LABEL` in ``y``, which
:class:`~keras_symconv.losses.PairBinaryCrossentropy` and
:class:`~keras_symconv.metrics.PairMetric` skip (the BiLSTM still reads the
zero rows, which is why the paper's scheme is the default).

Evaluation (:func:`rna_eval_dataset`) yields whole sequences, one at a time.

Elements are ``(x, y)`` with ``x`` ``(batch, L, 5)`` one-hot float32 and
``y`` ``(batch, L, L, 1)`` float32 pair maps; with ``return_lengths=True``
they are ``(x, y, lengths)`` (not for ``fit``, which reads a third element
as sample weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_symconv.data.rna import RNAStructure
from keras_symconv.losses import IGNORE_LABEL

__all__ = ["rna_training_dataset", "rna_eval_dataset", "encode_structure"]


def encode_structure(structure: RNAStructure, start: int = 0, length: int | None = None):
    """``(x (L, 5), y (L, L, 1))`` of a window of a structure, as NumPy arrays.

    Pairs with one base outside the window are dropped from the window.
    """
    stop = len(structure) if length is None else start + length
    x = structure.one_hot()[start:stop]
    y = structure.contact_map()[start:stop, start:stop, None]
    return x, y


def _check(structures, batch_size, max_length):
    if not structures:
        raise ValueError("Argument `structures` is empty.")
    if batch_size < 1:
        raise ValueError(f"Argument `batch_size` must be >= 1. Received: batch_size={batch_size}")
    if max_length is not None and max_length < 2:
        raise ValueError(f"Argument `max_length` must be >= 2. Received: max_length={max_length}")


def _options():
    options = tf.data.Options()
    # Generator-backed: shard by element under multi-worker strategies.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def rna_training_dataset(
    structures: Sequence[RNAStructure],
    batch_size: int,
    max_length: int | None = 500,
    seed: int = 0,
    crop: str = "paper",
    shuffle: bool = True,
    drop_remainder: bool = False,
    return_lengths: bool = False,
) -> tf.data.Dataset:
    """Random-crop training batches (see the module docstring).

    Args:
        structures: the training records.
        batch_size: sequences per batch.
        max_length: longest window (the paper: 500); ``None`` for no cap.
        seed: shuffling and window seed; iterating the dataset again (a new
            epoch) continues the same random stream, so epochs differ and the
            whole run is reproducible.
        crop: ``"paper"`` (one window length per batch, no padding) or
            ``"pad"`` (each sequence on its own, padded batch).
        shuffle: shuffle the structures every epoch.
        drop_remainder: drop a last, smaller batch.
        return_lengths: also yield the lengths ``(batch,)`` int32.
    """
    _check(structures, batch_size, max_length)
    if crop not in ("paper", "pad"):
        raise ValueError(f"Argument `crop` must be 'paper' or 'pad'. Received: crop={crop!r}")
    structures = list(structures)
    rng = np.random.default_rng(seed)

    def generate():
        order = rng.permutation(len(structures)) if shuffle else np.arange(len(structures))
        for start in range(0, len(order), batch_size):
            batch = [structures[k] for k in order[start : start + batch_size]]
            if len(batch) < batch_size and drop_remainder:
                return
            if crop == "paper":
                window = min(len(s) for s in batch)
                if max_length is not None:
                    window = min(window, max_length)
                windows = [window] * len(batch)
            else:
                windows = [len(s) if max_length is None else min(len(s), max_length) for s in batch]
            size = max(windows)
            xs = np.zeros((len(batch), size, 5), np.float32)
            ys = np.full((len(batch), size, size, 1), IGNORE_LABEL, np.float32)
            for k, (s, w) in enumerate(zip(batch, windows, strict=True)):
                offset = int(rng.integers(0, len(s) - w + 1))
                x, y = encode_structure(s, offset, w)
                xs[k, :w], ys[k, :w, :w] = x, y
            lengths = np.array(windows, np.int32)
            yield (xs, ys, lengths) if return_lengths else (xs, ys)

    signature = (
        tf.TensorSpec((None, None, 5), tf.float32),
        tf.TensorSpec((None, None, None, 1), tf.float32),
    )
    if return_lengths:
        signature += (tf.TensorSpec((None,), tf.int32),)
    batches = len(structures) // batch_size if drop_remainder else -(-len(structures) // batch_size)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(2).with_options(_options())


def rna_eval_dataset(
    structures: Sequence[RNAStructure], return_lengths: bool = False
) -> tf.data.Dataset:
    """Whole sequences, one per batch, in the given order."""
    _check(structures, 1, None)
    structures = list(structures)

    def generate():
        for s in structures:
            x, y = encode_structure(s)
            if return_lengths:
                yield x[None], y[None], np.array([len(s)], np.int32)
            else:
                yield x[None], y[None]

    signature = (
        tf.TensorSpec((1, None, 5), tf.float32),
        tf.TensorSpec((1, None, None, 1), tf.float32),
    )
    if return_lengths:
        signature += (tf.TensorSpec((1,), tf.int32),)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(structures)))
    return dataset.with_options(_options())
