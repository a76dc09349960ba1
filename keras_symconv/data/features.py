"""Per-residue (1D) and pairwise (2D) input features for contact prediction.

1D features, ``(L, 25)`` by default (:func:`sequence_features`):

======  ===========================================================
column  meaning
======  ===========================================================
0-19    one-hot amino acid, in the order ``ACDEFGHIKLMNPQRSTVWY``
20      unknown or non-standard residue (``X``, ``U``, ``B``, ...)
21      Kyte-Doolittle hydropathy / 4.5 (0 for unknown)
22      side-chain charge at pH 7: K, R +1; D, E -1; others 0
23      side-chain volume / 230 A^3 (residue volumes of Zamyatnin)
24      relative position ``i / (L - 1)`` (0 for a single residue)
======  ===========================================================

With an alignment profile ``(L, 21)`` (:func:`alignment_profile`: weighted
frequencies of the 20 amino acids and the gap in each column),
``profile_mode="replace"`` puts it in columns 0-20 (the gap frequency in
column 20) and ``"join"`` appends it (``L x 46``).

2D features, ``(L, L, 3)`` (:func:`pair_features`), symmetric by
construction:

0. mutual information of the two alignment columns with the average-product
   correction (APC);
1. a covariance coupling score: the Frobenius norm of the 20 x 20 covariance
   block ``f_ij(a, b) - f_i(a) f_j(b)`` (gaps excluded), with APC;
2. ``log(1 + |i - j|)``, the log sequence separation.

Without an alignment, channels 0 and 1 are zero. The alignment must already
be in the chain's coordinates: one column per residue (see
:func:`encode_alignment`).
"""

from __future__ import annotations

import numpy as np

from keras_symconv.data.protein import AMINO_ACIDS

__all__ = [
    "N1D",
    "N2D",
    "sequence_features",
    "encode_alignment",
    "sequence_weights",
    "alignment_profile",
    "mutual_information_apc",
    "covariance_coupling_apc",
    "pair_features",
]

N1D = 25
N2D = 3
_STATES = 21  # 20 amino acids + gap/unknown
_INDEX = {a: i for i, a in enumerate(AMINO_ACIDS)}
_HYDROPATHY = dict(zip(AMINO_ACIDS, [1.8, 2.5, -3.5, -3.5, 2.8, -0.4, -3.2, 4.5, -3.9, 3.8,
                                     1.9, -3.5, -1.6, -3.5, -4.5, -0.8, -0.7, 4.2, -0.9, -1.3],
                       strict=True))  # fmt: skip
_CHARGE = {"K": 1.0, "R": 1.0, "D": -1.0, "E": -1.0}
_VOLUME = dict(zip(AMINO_ACIDS, [88.6, 108.5, 111.1, 138.4, 189.9, 60.1, 153.2, 166.7, 168.6,
                                 166.7, 162.9, 114.1, 112.7, 143.8, 173.4, 89.0, 116.1, 140.0,
                                 227.8, 193.6], strict=True))  # fmt: skip


def sequence_features(sequence: str, profile=None, profile_mode: str = "replace") -> np.ndarray:
    """1D features (see the module docstring), float32."""
    length = len(sequence)
    out = np.zeros((length, N1D), np.float32)
    for i, aa in enumerate(sequence.upper()):
        k = _INDEX.get(aa)
        if k is None:
            out[i, 20] = 1.0
            continue
        out[i, k] = 1.0
        out[i, 21] = _HYDROPATHY[aa] / 4.5
        out[i, 22] = _CHARGE.get(aa, 0.0)
        out[i, 23] = _VOLUME[aa] / 230.0
    if length > 1:
        out[:, 24] = np.arange(length) / (length - 1)
    if profile is None:
        return out
    profile = np.asarray(profile, np.float32)
    if profile.shape != (length, _STATES):
        raise ValueError(
            f"Argument `profile` must have shape ({length}, {_STATES}). "
            f"Received shape {profile.shape}"
        )
    if profile_mode == "replace":
        out[:, :_STATES] = profile
        return out
    if profile_mode == "join":
        return np.concatenate([out, profile], axis=1)
    raise ValueError(
        "Argument `profile_mode` must be 'replace' or 'join'. "
        f"Received: profile_mode={profile_mode!r}"
    )


def encode_alignment(rows, where: str = "<alignment>") -> np.ndarray:
    """Aligned sequences (equal lengths) -> int8 codes ``(N, L)``: 0-19 amino acids, 20 other.

    Gaps (``-``, ``.``) and non-standard letters are state 20.
    """
    rows = list(rows)
    if not rows:
        raise ValueError(f"{where}: empty alignment")
    length = len(rows[0])
    table = np.full(256, 20, np.int8)
    for i, aa in enumerate(AMINO_ACIDS):
        table[ord(aa)] = table[ord(aa.lower())] = i
    codes = np.empty((len(rows), length), np.int8)
    for k, row in enumerate(rows):
        if len(row) != length:
            raise ValueError(
                f"{where}: sequence {k + 1} has {len(row)} columns, the first has {length}"
            )
        codes[k] = table[np.frombuffer(row.encode("latin-1"), np.uint8)]
    return codes


def sequence_weights(codes: np.ndarray, identity: float = 0.8, chunk: int = 1024) -> np.ndarray:
    """``1 / (number of sequences at >= identity)`` per sequence (itself included)."""
    n, length = codes.shape
    counts = np.zeros(n, np.float64)
    for start in range(0, n, chunk):
        block = codes[start : start + chunk]
        same = (block[:, None, :] == codes[None, :, :]).sum(-1) / length
        counts[start : start + chunk] = (same >= identity).sum(1)
    return (1.0 / counts).astype(np.float32)


def _one_hot(codes):
    n, length = codes.shape
    x = np.zeros((n, length * _STATES), np.float32)
    x[np.arange(n)[:, None], np.arange(length)[None] * _STATES + codes] = 1.0
    return x


def alignment_profile(codes: np.ndarray, weights=None, pseudocount: float = 0.0) -> np.ndarray:
    """Weighted column frequencies ``(L, 21)``: 20 amino acids, then gap/other."""
    n, length = codes.shape
    w = np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32)
    f = (w @ _one_hot(codes)).reshape(length, _STATES) / w.sum()
    return ((1 - pseudocount) * f + pseudocount / _STATES).astype(np.float32)


def _frequencies(codes, weights, pseudocount):
    n, length = codes.shape
    w = np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32)
    x = _one_hot(codes)
    total = float(w.sum())
    fi = (w @ x).reshape(length, _STATES) / total
    fij = ((x * w[:, None]).T @ x).reshape(length, _STATES, length, _STATES) / total
    fij = fij.transpose(0, 2, 1, 3)  # (L, L, 21, 21)
    fi = (1 - pseudocount) * fi + pseudocount / _STATES
    fij = (1 - pseudocount) * fij + pseudocount / _STATES**2
    return fi, fij


def _apc(score):
    s = score.copy()
    np.fill_diagonal(s, np.nan)
    row = np.nanmean(s, axis=1)
    mean = np.nanmean(s)
    out = score - np.outer(row, row) / mean if mean != 0 else score.copy()
    np.fill_diagonal(out, 0.0)
    return out.astype(np.float32)


def mutual_information_apc(codes, weights=None, pseudocount: float = 0.05) -> np.ndarray:
    """Mutual information of every column pair, APC-corrected, ``(L, L)``, zero diagonal."""
    fi, fij = _frequencies(codes, weights, pseudocount)
    ratio = fij / (fi[:, None, :, None] * fi[None, :, None, :])
    mi = np.sum(fij * np.log(ratio), axis=(2, 3))
    mi = 0.5 * (mi + mi.T)
    return _apc(mi)


def covariance_coupling_apc(codes, weights=None, pseudocount: float = 0.05) -> np.ndarray:
    """Frobenius norm of the 20 x 20 covariance blocks (gaps excluded), APC, ``(L, L)``."""
    fi, fij = _frequencies(codes, weights, pseudocount)
    cov = fij - fi[:, None, :, None] * fi[None, :, None, :]
    score = np.sqrt(np.sum(cov[:, :, :20, :20] ** 2, axis=(2, 3)))
    score = 0.5 * (score + score.T)
    return _apc(score)


def pair_features(length: int, codes=None, weights=None) -> np.ndarray:
    """2D features ``(L, L, 3)`` (see the module docstring), float32, symmetric."""
    out = np.zeros((length, length, N2D), np.float32)
    if codes is not None:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != length:
            raise ValueError(
                f"The alignment must have one column per residue ({length}). "
                f"Received codes of shape {codes.shape}"
            )
        out[..., 0] = mutual_information_apc(codes, weights)
        out[..., 1] = covariance_coupling_apc(codes, weights)
    idx = np.arange(length)
    out[..., 2] = np.log1p(np.abs(idx[:, None] - idx[None]))
    return out
