"""A seeded generator of synthetic RNA secondary structures.

**Synthetic data, not real RNAs.** It exists so that the main job, the tests
and the tutorials run on a fresh machine with no download. Structures are
random and nested (no pseudoknots): helices of 3 to 8 base pairs, hairpin
loops of at least 3 bases, bulges, internal loops and multiloops arise from
recursively placing helices inside helices, with unpaired runs of geometric
length between them. Paired bases are complementary (G-C and C-G 30 % each,
A-U and U-A 15 % each, G-U and U-G 5 % each); unpaired bases are drawn with
an A-rich composition as in real loops. A model can learn the pairing rules
from this data; figures measured on it say nothing about real RNAs.
"""

from __future__ import annotations

import numpy as np

from keras_symconv.data.rna import RNAStructure

__all__ = ["synthetic_rna", "synthetic_rna_dataset"]

_PAIR_CHOICES = [("G", "C"), ("C", "G"), ("A", "U"), ("U", "A"), ("G", "U"), ("U", "G")]
_PAIR_WEIGHTS = [0.3, 0.3, 0.15, 0.15, 0.05, 0.05]
_LOOP_BASES = "ACGU"
_LOOP_WEIGHTS = [0.35, 0.2, 0.2, 0.25]
_HAIRPIN_MIN = 3


def _place_helices(rng, lo, hi, pairs):
    """Place nested helices in [lo, hi), appending (i, j) pairs."""
    i = lo
    while True:
        i += int(rng.geometric(0.3)) - 1  # unpaired run, mean ~2.3
        stem = int(rng.integers(3, 9))
        min_span = 2 * stem + _HAIRPIN_MIN
        if hi - i < min_span:
            return
        extra = min(hi - i - min_span, int(rng.exponential(25.0)))
        span = min_span + extra
        for k in range(stem):
            pairs.append((i + k, i + span - 1 - k))
        inner_lo, inner_hi = i + stem, i + span - stem
        # One-sided bulges/internal loops: shift into the helix interior.
        inner_lo += int(rng.random() < 0.3) * int(rng.integers(1, 4))
        if inner_hi - inner_lo >= 2 * 3 + _HAIRPIN_MIN:
            _place_helices(rng, inner_lo, inner_hi, pairs)
        i += span


def synthetic_rna(rng: np.random.Generator, length: int, name: str) -> RNAStructure:
    """One synthetic RNA of exactly ``length`` bases."""
    pairs: list[tuple[int, int]] = []
    _place_helices(rng, 0, length, pairs)
    seq = list(rng.choice(list(_LOOP_BASES), size=length, p=_LOOP_WEIGHTS))
    choices = rng.choice(len(_PAIR_CHOICES), size=len(pairs), p=_PAIR_WEIGHTS)
    for (i, j), c in zip(pairs, choices, strict=True):
        seq[i], seq[j] = _PAIR_CHOICES[c]
    return RNAStructure.from_pairs(name, "".join(seq), pairs, family="synthetic")


def synthetic_rna_dataset(
    count: int, min_length: int = 60, max_length: int = 160, seed: int = 0
) -> list[RNAStructure]:
    """``count`` synthetic RNAs with lengths uniform in [min_length, max_length].

    Same seed, same data. See the module docstring: these are not real RNAs.
    """
    if count < 1:
        raise ValueError(f"Argument `count` must be at least 1. Received: count={count}")
    if not 10 <= min_length <= max_length:
        raise ValueError(
            "Arguments must satisfy 10 <= min_length <= max_length. Received: "
            f"min_length={min_length}, max_length={max_length}"
        )
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, size=count)
    return [
        synthetic_rna(rng, int(length), f"synthetic_{k:05d}") for k, length in enumerate(lengths)
    ]
