"""Multiple sequence alignments: reading, and mapping onto a structure's chain.

:func:`read_alignment` reads aligned FASTA (all rows the same number of
columns; ``-`` and ``.`` are gaps, case is ignored).

:func:`map_alignment_to_chain` puts an alignment into the chain's residue
coordinates, which is what the 2D features need (one column per residue).
The row that matches the chain is found by shared 5-mers and confirmed by a
local (Smith-Waterman) alignment of its ungapped sequence to the chain
sequence; the chain residues aligned to that row's residues take that row's
columns, the others get gap columns. When the chain's own sequence is not
in the alignment (alignments filtered at 80 % identity, such as Pfam's
``align.80``, often leave it out), the closest homologous row carries the
mapping. The mapping is checked: when no row reaches ``min_identity``
(default 0.8) over at least ``min_aligned`` residues, it raises
``ValueError`` naming the file and the best identity found, rather than
silently using a wrong register. On the project's 40 Pfam domains each
chain passes this check for exactly one of the 40 alignments (a different
one for each chain), at 83-100 % identity.

:func:`find_alignment` picks, among several alignments, the one a chain maps
onto best.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_symconv.data.features import encode_alignment

__all__ = [
    "Alignment",
    "read_alignment",
    "local_alignment",
    "map_alignment_to_chain",
    "find_alignment",
]

_GAPS = "-."


@dataclasses.dataclass(frozen=True)
class Alignment:
    """Rows of an aligned FASTA file."""

    path: str
    names: list
    rows: list

    @property
    def columns(self) -> int:
        return len(self.rows[0])


def read_alignment(path) -> Alignment:
    """Read aligned FASTA; every row must have the first row's column count."""
    names, rows, starts = [], [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                names.append(line[1:].strip())
                rows.append([])
                starts.append(lineno)
            elif not rows:
                raise ValueError(f"{path}:{lineno}: expected a '>name' line, got {line[:40]!r}")
            else:
                rows[-1].append(line)
    if not rows:
        raise ValueError(f"{path}:1: no sequence found (empty file?)")
    rows = ["".join(r) for r in rows]
    for row, start in zip(rows, starts, strict=True):
        if len(row) != len(rows[0]):
            raise ValueError(
                f"{path}:{start}: row has {len(row)} columns, the first row {len(rows[0])}"
            )
    return Alignment(str(path), names, rows)


def local_alignment(a: str, b: str, match=2, mismatch=-1, gap=-2):
    """Smith-Waterman alignment of two sequences.

    Returns:
        ``(score, pairs)``: the best local score and the aligned index pairs
        ``(i, j)`` (0-based in ``a`` and ``b``), in order.
    """
    n, m = len(a), len(b)
    h = np.zeros((n + 1, m + 1), np.int32)
    bb = np.frombuffer(b.encode("latin-1"), np.uint8)
    for i in range(1, n + 1):
        diag = h[i - 1, :-1] + np.where(bb == ord(a[i - 1]), match, mismatch)
        up = h[i - 1, 1:] + gap
        row = np.maximum(np.maximum(diag, up), 0)
        # Horizontal gaps: a running maximum along the row.
        for j in range(1, m + 1):
            v = max(row[j - 1], h[i, j - 1] + gap)
            h[i, j] = v
    i, j = (int(v) for v in np.unravel_index(int(np.argmax(h)), h.shape))
    score = int(h[i, j])
    pairs = []
    while i > 0 and j > 0 and h[i, j] > 0:
        s = match if a[i - 1] == b[j - 1] else mismatch
        if h[i, j] == h[i - 1, j - 1] + s:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif h[i, j] == h[i - 1, j] + gap:
            i -= 1
        else:
            j -= 1
    return score, pairs[::-1]


def _kmers(sequence, k=5):
    return {sequence[i : i + k] for i in range(len(sequence) - k + 1)}


def map_alignment_to_chain(
    alignment: Alignment,
    sequence: str,
    min_identity: float = 0.8,
    min_aligned: int = 30,
    candidates: int = 5,
):
    """Alignment codes in the chain's coordinates.

    Args:
        alignment: from :func:`read_alignment`.
        sequence: the chain's one-letter sequence.
        min_identity: identity the matching row must reach over the aligned
            residues.
        min_aligned: fewest chain residues that must align to it.
        candidates: rows (by shared 5-mers) checked with the local alignment.

    Returns:
        ``(codes, info)``: int8 ``(N, L)`` codes (see
        :func:`~keras_symconv.data.features.encode_alignment`; gap where a
        residue has no column) and a dict with the matching row's name,
        identity and number of aligned residues.

    Raises:
        ValueError: no row matches well enough, naming the file.
    """
    sequence = sequence.upper()
    ungapped = [r.upper().translate({ord(g): None for g in _GAPS}) for r in alignment.rows]
    chain_kmers = _kmers(sequence)
    shared = np.array([len(chain_kmers & _kmers(u)) for u in ungapped])
    best = None
    for row in np.argsort(-shared, kind="stable")[:candidates]:
        if shared[row] == 0:
            break
        score, pairs = local_alignment(sequence, ungapped[row])
        if not pairs:
            continue
        same = sum(sequence[i] == ungapped[row][j] for i, j in pairs)
        if best is None or score > best[3]:
            best = (int(row), same / len(pairs), pairs, score)
    if best is None or best[1] < min_identity or len(best[2]) < min_aligned:
        found = "none" if best is None else f"identity {best[1]:.2f} over {len(best[2])} residues"
        raise ValueError(
            f"{alignment.path}: no row matches the chain (best: {found}; need identity >= "
            f"{min_identity} over >= {min_aligned} residues)"
        )
    row, identity, pairs, _ = best
    # Column of each residue of the matching row.
    columns = [c for c, ch in enumerate(alignment.rows[row]) if ch not in _GAPS]
    all_codes = encode_alignment(alignment.rows, where=alignment.path)
    codes = np.full((len(alignment.rows), len(sequence)), 20, np.int8)
    for i, j in pairs:
        codes[:, i] = all_codes[:, columns[j]]
    info = {"row": alignment.names[row], "identity": identity, "aligned": len(pairs)}
    return codes, info


def find_alignment(alignments, sequence: str, **kwargs):
    """The alignment a chain maps onto best: ``(alignment, codes, info)``.

    Every alignment is tried with :func:`map_alignment_to_chain` (``kwargs``
    passed on); the best is the one with the most identical aligned residues.

    Raises:
        ValueError: the chain maps onto none of them.
    """
    best = None
    for alignment in alignments:
        try:
            codes, info = map_alignment_to_chain(alignment, sequence, **kwargs)
        except ValueError:
            continue
        score = info["identity"] * info["aligned"]
        if best is None or score > best[0]:
            best = (score, alignment, codes, info)
    if best is None:
        raise ValueError(f"the chain maps onto none of the {len(alignments)} alignments")
    return best[1:]
