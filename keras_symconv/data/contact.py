"""Contact-prediction examples and their tf.data pipelines.

A :class:`ContactExample` holds a chain's model inputs (1D and 2D features,
:mod:`keras_symconv.data.features`), its contact map and the mask of
residues with coordinates. Labels of pairs that touch a masked residue are
:data:`~keras_symconv.losses.IGNORE_LABEL`, so the loss and the metrics skip
them instead of counting them as non-contacts.

Training (:func:`contact_training_dataset`): windows of at most 100 residues
(the paper's crop), one window length per batch by default (as for RNA),
seeded shuffling. Evaluation (:func:`contact_eval_dataset`): whole chains,
one at a time. Elements are ``((sequence_features, pair_features), y)``, the
inputs of :func:`keras_symconv.models.build_contact_scnn`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from keras_symconv._backend import import_tensorflow
from keras_symconv.data import features
from keras_symconv.data.labels import IGNORE_LABEL
from keras_symconv.data.pipeline import window_batches
from keras_symconv.data.protein import ProteinChain, contact_map

tf = import_tensorflow("keras_symconv.data.contact (tf.data pipelines)")

__all__ = ["ContactExample", "contact_example", "contact_training_dataset", "contact_eval_dataset"]


@dataclasses.dataclass(frozen=True, eq=False)
class ContactExample:
    """Inputs and labels of one chain (see the module docstring)."""

    name: str
    sequence_features: np.ndarray
    pair_features: np.ndarray
    contacts: np.ndarray
    mask: np.ndarray
    #: The chain's one-letter sequence.
    sequence: str | None = None
    #: Where the co-evolution features came from (file, matching row,
    #: identity), ``None`` without an alignment.
    alignment: dict | None = None

    @property
    def has_structure(self) -> bool:
        """Whether any residue has coordinates (``False`` for a sequence-only chain)."""
        return bool(np.any(self.mask))

    def __len__(self):
        return len(self.mask)

    def labels(self) -> np.ndarray:
        """``(L, L, 1)`` float32: 0/1 contacts, IGNORE_LABEL where a residue is masked."""
        valid = self.mask[:, None] * self.mask[None] > 0
        return np.where(valid, self.contacts, IGNORE_LABEL).astype(np.float32)[..., None]

    def window(self, start: int, length: int):
        """``(sequence_features, pair_features, labels)`` of residues start..start+length."""
        stop = start + length
        return (
            self.sequence_features[start:stop],
            self.pair_features[start:stop, start:stop],
            self.labels()[start:stop, start:stop],
        )


def contact_example(
    chain: ProteinChain,
    codes=None,
    weights=None,
    threshold: float = 8.0,
    atom: str = "CA",
    profile_mode: str | None = None,
) -> ContactExample:
    """Features and labels of a chain.

    Args:
        chain: the structure.
        codes: optional alignment ``(N, L)`` in the chain's columns
            (:func:`~keras_symconv.data.features.encode_alignment`).
        weights: optional sequence weights of the alignment.
        threshold, atom: the contact definition (8 A between C-alpha atoms).
        profile_mode: ``"replace"`` or ``"join"`` to use the alignment's
            profile in the 1D features; ``None`` keeps the one-hot columns.
    """
    profile = None
    if codes is not None and profile_mode is not None:
        profile = features.alignment_profile(codes, weights)
    seq = features.sequence_features(chain.sequence, profile, profile_mode or "replace")
    pair = features.pair_features(len(chain), codes, weights)
    contacts, mask = contact_map(chain, threshold, atom)
    return ContactExample(chain.name, seq, pair, contacts, mask, chain.sequence)


def _specs(examples):
    n1d = examples[0].sequence_features.shape[1]
    n2d = examples[0].pair_features.shape[2]
    return ((None, n1d), (None, None, n2d), (None, None, 1))


def _nest(seq, pair, y, *lengths):
    return ((seq, pair), y, *lengths)


def _batches(examples, batch_size, max_length, seed, crop, shuffle, drop_remainder, lengths):
    examples = list(examples)
    dataset = window_batches(
        examples,
        lambda e, start, length: e.window(start, length),
        _specs(examples) if examples else (),
        (0.0, 0.0, IGNORE_LABEL),
        batch_size=batch_size,
        max_length=max_length,
        seed=seed,
        crop=crop,
        shuffle=shuffle,
        drop_remainder=drop_remainder,
        return_lengths=lengths,
    )
    return dataset.map(_nest)


def contact_training_dataset(
    examples: Sequence[ContactExample],
    batch_size: int,
    max_length: int | None = 100,
    seed: int = 0,
    crop: str = "paper",
    shuffle: bool = True,
    drop_remainder: bool = False,
    return_lengths: bool = False,
) -> tf.data.Dataset:
    """Random-window training batches; arguments as ``rna_training_dataset``."""
    return _batches(
        examples, batch_size, max_length, seed, crop, shuffle, drop_remainder, return_lengths
    )


def contact_eval_dataset(examples: Sequence[ContactExample]) -> tf.data.Dataset:
    """Whole chains, one per batch, in the given order."""
    return _batches(examples, 1, None, 0, "pad", False, False, False)
