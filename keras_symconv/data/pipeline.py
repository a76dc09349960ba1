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

from keras_symconv._backend import import_tensorflow
from keras_symconv.data.labels import IGNORE_LABEL
from keras_symconv.data.rna import RNAStructure

tf = import_tensorflow("keras_symconv.data.pipeline (tf.data pipelines)")

__all__ = ["rna_training_dataset", "rna_eval_dataset", "encode_structure", "window_batches"]


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
        raise ValueError("The input is empty: nothing to batch.")
    if batch_size < 1:
        raise ValueError(f"Argument `batch_size` must be >= 1. Received: batch_size={batch_size}")
    if max_length is not None and max_length < 2:
        raise ValueError(f"Argument `max_length` must be >= 2. Received: max_length={max_length}")


def pipeline_options() -> tf.data.Options:
    """The ``tf.data.Options`` of the package's pipelines.

    - Shard by element under multi-worker strategies (the pipelines are
      backed by generators or tensors, not files).
    - Autotuning off. The pipelines' buffer sizes are fixed, so it has
      nothing to tune, and with it on, deleting an iterator (which
      ``model.fit`` does at the end of every epoch) waits for the autotuner
      to wake from its current sleep, whose period doubles from 10 ms: an
      epoch of ``t`` seconds then takes up to ``2 t`` (benchmarks/RESULTS.md,
      "fit's epoch-end wait with tf.data autotuning"). Apply the same to a
      pipeline of your own with ``dataset.with_options(pipeline_options())``.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = False
    return options


def window_batches(
    items,
    encode,
    specs,
    pads,
    *,
    batch_size,
    max_length=None,
    seed=0,
    crop="paper",
    shuffle=True,
    drop_remainder=False,
    return_lengths=False,
):
    """Random-window batches of any items (the RNA and contact pipelines' common part).

    ``encode(item, start, length)`` returns a tuple of float32 arrays whose
    axes marked ``None`` in ``specs`` (shapes without the batch axis) have the
    window's length; shorter windows are padded with ``pads``. The other
    arguments are :func:`rna_training_dataset`'s.
    """
    _check(items, batch_size, max_length)
    if crop not in ("paper", "pad"):
        raise ValueError(f"Argument `crop` must be 'paper' or 'pad'. Received: crop={crop!r}")
    items = list(items)
    rng = np.random.default_rng(seed)

    def generate():
        order = rng.permutation(len(items)) if shuffle else np.arange(len(items))
        for start in range(0, len(order), batch_size):
            batch = [items[k] for k in order[start : start + batch_size]]
            if len(batch) < batch_size and drop_remainder:
                return
            caps = [len(s) if max_length is None else min(len(s), max_length) for s in batch]
            windows = [min(caps)] * len(batch) if crop == "paper" else caps
            size = max(windows)
            arrays = [
                np.full(
                    (len(batch),) + tuple(size if d is None else d for d in spec), pad, np.float32
                )
                for spec, pad in zip(specs, pads, strict=True)
            ]
            for k, (item, w) in enumerate(zip(batch, windows, strict=True)):
                offset = int(rng.integers(0, len(item) - w + 1))
                for array, spec, part in zip(arrays, specs, encode(item, offset, w), strict=True):
                    index = (k,) + tuple(slice(0, w) if d is None else slice(None) for d in spec)
                    array[index] = part
            if return_lengths:
                arrays.append(np.array(windows, np.int32))
            yield tuple(arrays)

    signature = tuple(tf.TensorSpec((None,) + tuple(spec), tf.float32) for spec in specs)
    if return_lengths:
        signature += (tf.TensorSpec((None,), tf.int32),)
    batches = len(items) // batch_size if drop_remainder else -(-len(items) // batch_size)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(2).with_options(pipeline_options())


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
    return window_batches(
        structures,
        encode_structure,
        ((None, 5), (None, None, 1)),
        (0.0, IGNORE_LABEL),
        batch_size=batch_size,
        max_length=max_length,
        seed=seed,
        crop=crop,
        shuffle=shuffle,
        drop_remainder=drop_remainder,
        return_lengths=return_lengths,
    )


def rna_eval_dataset(
    structures: Sequence[RNAStructure], return_lengths: bool = False
) -> tf.data.Dataset:
    """Whole sequences, one per batch, in the given order."""
    return window_batches(
        structures,
        encode_structure,
        ((None, 5), (None, None, 1)),
        (0.0, IGNORE_LABEL),
        batch_size=1,
        crop="pad",
        shuffle=False,
        return_lengths=return_lengths,
    )
