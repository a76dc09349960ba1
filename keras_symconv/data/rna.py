"""RNA secondary structures: the record type, readers and writers.

Formats:

- ``.ct`` (connectivity table; also ``.nopct``): optional free-text header
  lines (``Filename: ...``, ``Organism: ...``), then per structure a header
  line ``N  title...`` and ``N`` lines ``index base prev next partner
  natural_index`` (partner 0 = unpaired). Several structures may follow each
  other in one file.
- ``.bpseq``: optional free-text header lines, then ``index base partner``.
- dot-bracket (``.db``, ``.dbn``, ``.dot``): FASTA-style records of three
  lines, ``>name``, sequence, structure. Brackets ``()``, ``[]``, ``{}``,
  ``<>`` and letter pairs ``Aa``, ``Bb``, ... (pseudoknots); ``.``, ``:``,
  ``,``, ``_``, ``-``, ``~`` are unpaired. Anything after the structure on its
  line (an energy such as ``(-12.30)``) is ignored.
- The 5-line integer format of the paper's 16S split (``.txt``): name, base
  codes ``0..4`` (A C G U other), 1-based partners (0 unpaired), paired
  flags, a blank line.

Bases: ``A C G U`` in either case; ``T``/``t`` is read as ``U``. The other
IUPAC nucleotide codes (``R Y S W K M B D H V N`` and ``I``, ``X`` is not one)
are kept in the sequence and map to the fifth, "other", one-hot channel.
Anything else is an error. Every malformed input raises ``ValueError`` naming
the file and the line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "RNAStructure",
    "BASES",
    "encode_sequence",
    "one_hot",
    "read_ct",
    "read_bpseq",
    "read_dot_bracket",
    "read_strand16s",
    "read_fasta_sequences",
    "read_structures",
    "parse_dot_bracket",
    "to_dot_bracket",
    "dot_bracket_levels",
    "write_ct",
    "write_bpseq",
    "write_dot_bracket",
    "STRUCTURE_SUFFIXES",
]

#: One-hot channel order: A, C, G, U, other.
BASES = "ACGU"
_IUPAC_OTHER = set("RYSWKMBDHVNI")
_UNPAIRED = set(".:,_-~")
_OPENERS = "([{<" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CLOSERS = ")]}>" + "abcdefghijklmnopqrstuvwxyz"

STRUCTURE_SUFFIXES = {
    ".ct": "ct",
    ".nopct": "ct",
    ".bpseq": "bpseq",
    ".db": "dot_bracket",
    ".dbn": "dot_bracket",
    ".dot": "dot_bracket",
    ".txt": "strand16s",
}


def _normalize_base(letter, where):
    up = letter.upper()
    if up == "T":
        return "U"
    if up in BASES or up in _IUPAC_OTHER:
        return up
    raise ValueError(f"{where}: unknown base letter {letter!r}")


def encode_sequence(sequence: str) -> np.ndarray:
    """Channel index (0..4: A, C, G, U, other) of each base of a sequence."""
    table = {b: i for i, b in enumerate(BASES)}
    return np.array([table.get(b.upper(), 4) for b in sequence.replace("T", "U")], np.int32)


def one_hot(sequence: str) -> np.ndarray:
    """One-hot encoding ``(L, 5)`` float32: A, C, G, U, other."""
    return np.eye(5, dtype=np.float32)[encode_sequence(sequence)]


@dataclasses.dataclass(frozen=True, eq=False)
class RNAStructure:
    """One RNA and its secondary structure.

    Attributes:
        name: identifier (file name, record name).
        sequence: upper-case bases, ``U`` not ``T``; IUPAC codes kept.
        partners: int32 array ``(L,)``, the 0-based partner of each base or
            -1 when unpaired. Pairs are reciprocal.
        family: optional family label (e.g. the folder the file came from).
    """

    name: str
    sequence: str
    partners: np.ndarray
    family: str | None = None

    def __post_init__(self):
        partners = np.asarray(self.partners, dtype=np.int32)
        object.__setattr__(self, "partners", partners)
        length = len(self.sequence)
        if partners.shape != (length,):
            raise ValueError(
                f"{self.name}: partners has shape {partners.shape}, expected ({length},)"
            )
        for i, j in enumerate(partners):
            if j == -1:
                continue
            if not 0 <= j < length or j == i or partners[j] != i:
                raise ValueError(f"{self.name}: base {i + 1} has an invalid partner {j + 1}")

    def __len__(self):
        return len(self.sequence)

    def __eq__(self, other):
        if not isinstance(other, RNAStructure):
            return NotImplemented
        return (
            self.name == other.name
            and self.sequence == other.sequence
            and np.array_equal(self.partners, other.partners)
            and self.family == other.family
        )

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """0-based pairs ``(i, j)``, ``i < j``, sorted."""
        return [(i, int(j)) for i, j in enumerate(self.partners) if j > i]

    @classmethod
    def from_pairs(cls, name, sequence, pairs, family=None):
        partners = np.full(len(sequence), -1, np.int32)
        for i, j in pairs:
            partners[i], partners[j] = j, i
        return cls(name, sequence, partners, family)

    def one_hot(self) -> np.ndarray:
        return one_hot(self.sequence)

    def contact_map(self) -> np.ndarray:
        """Symmetric 0/1 pair map ``(L, L)`` float32."""
        m = np.zeros((len(self), len(self)), np.float32)
        for i, j in self.pairs:
            m[i, j] = m[j, i] = 1.0
        return m

    def is_nested(self) -> bool:
        """True when no two pairs cross (no pseudoknot)."""
        stack = []
        for i, j in enumerate(self.partners):
            if j > i:
                stack.append(int(j))
            elif 0 <= j < i:
                if not stack or stack[-1] != i:
                    return False
                stack.pop()
        return True


# --------------------------------------------------------------------------- readers


def _lines(path):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read().splitlines()


def _int_or_none(token):
    try:
        return int(token)
    except ValueError:
        return None


def _finish(name, sequence, partners, family, path, first_line):
    for i, j in enumerate(partners):
        if j == -1:
            continue
        if partners[j] != i:
            raise ValueError(
                f"{path}:{first_line + i}: base {i + 1} pairs with {j + 1}, but base "
                f"{j + 1} pairs with {partners[j] + 1 if partners[j] >= 0 else 0} "
                "(non-reciprocal pair)"
            )
    return RNAStructure(name, "".join(sequence), np.array(partners, np.int32), family)


def _read_table(path, columns, partner_column, family, header_per_record):
    """Shared reader of the .ct (6 columns) and .bpseq (3 columns) tables."""
    lines = _lines(path)
    records = []
    base_name = os.path.basename(path)
    pos = 0
    # Free-text header lines before the first record.
    while pos < len(lines):
        tokens = lines[pos].split()
        if tokens and _int_or_none(tokens[0]) is not None:
            break
        pos += 1
    while pos < len(lines):
        if not lines[pos].strip():
            pos += 1
            continue
        if header_per_record:
            tokens = lines[pos].split()
            length = _int_or_none(tokens[0])
            if length is None or length < 1:
                raise ValueError(
                    f"{path}:{pos + 1}: expected a header line 'N title', got {lines[pos]!r}"
                )
            pos += 1
            body = lines[pos : pos + length]
            if len(body) < length:
                raise ValueError(
                    f"{path}:{pos + len(body)}: the header announces {length} bases, the "
                    f"file ends after {len(body)}"
                )
        else:
            body = list(lines[pos:])
            while body and not body[-1].strip():
                body.pop()
            length = len(body)
        first = pos + 1
        sequence, partners = [], []
        for k, line in enumerate(body):
            where = f"{path}:{first + k}"
            tokens = line.split()
            if len(tokens) != columns:
                raise ValueError(
                    f"{where}: expected {columns} columns, found {len(tokens)}: {line!r}"
                )
            index, partner = _int_or_none(tokens[0]), _int_or_none(tokens[partner_column])
            if index != k + 1:
                raise ValueError(f"{where}: expected index {k + 1}, found {tokens[0]!r}")
            if partner is None or not 0 <= partner <= length:
                raise ValueError(
                    f"{where}: partner {tokens[partner_column]!r} is out of range 0..{length}"
                )
            if partner == k + 1:
                raise ValueError(f"{where}: base {k + 1} pairs with itself")
            sequence.append(_normalize_base(tokens[1], where))
            partners.append(partner - 1)
        records.append(_finish(base_name, sequence, partners, family, path, first))
        pos += length
    if not records:
        raise ValueError(f"{path}:1: no structure found (empty file?)")
    if len(records) > 1:  # several structures in one file: name#1, name#2, ...
        records = [
            dataclasses.replace(r, name=f"{base_name}#{k}") for k, r in enumerate(records, 1)
        ]
    return records


def read_ct(path, family=None) -> list[RNAStructure]:
    """Read every structure of a ``.ct`` file (see the module docstring)."""
    return _read_table(path, 6, 4, family, header_per_record=True)


def read_bpseq(path, family=None) -> list[RNAStructure]:
    """Read a ``.bpseq`` file: one structure."""
    return _read_table(path, 3, 2, family, header_per_record=False)


def parse_dot_bracket(structure: str, where: str = "<string>") -> np.ndarray:
    """Partners ``(L,)`` (-1 unpaired) of a dot-bracket string.

    Raises:
        ValueError: unbalanced brackets or an unknown character, naming
            ``where`` and the 1-based column.
    """
    partners = np.full(len(structure), -1, np.int32)
    stacks: dict[str, list[int]] = {}
    for i, ch in enumerate(structure):
        if ch in _UNPAIRED:
            continue
        if ch in _OPENERS:
            stacks.setdefault(ch, []).append(i)
        elif ch in _CLOSERS:
            opener = _OPENERS[_CLOSERS.index(ch)]
            if not stacks.get(opener):
                raise ValueError(f"{where}: column {i + 1}: {ch!r} closes nothing")
            j = stacks[opener].pop()
            partners[i], partners[j] = j, i
        else:
            raise ValueError(f"{where}: column {i + 1}: unknown structure character {ch!r}")
    for opener, stack in stacks.items():
        if stack:
            raise ValueError(f"{where}: column {stack[-1] + 1}: {opener!r} is never closed")
    return partners


def read_dot_bracket(path, family=None) -> list[RNAStructure]:
    """Read FASTA-style dot-bracket records: ``>name``, sequence, structure."""
    lines = _lines(path)
    records = []
    pos = 0
    while pos < len(lines):
        if not lines[pos].strip():
            pos += 1
            continue
        if not lines[pos].startswith(">"):
            raise ValueError(f"{path}:{pos + 1}: expected a '>name' line, got {lines[pos]!r}")
        name = lines[pos][1:].strip() or f"{os.path.basename(path)}#{len(records) + 1}"
        if pos + 2 >= len(lines):
            raise ValueError(
                f"{path}:{pos + 1}: record {name!r} needs a sequence line and a structure line"
            )
        seq_line, struct_line = lines[pos + 1].strip(), lines[pos + 2].split()
        structure = struct_line[0] if struct_line else ""
        sequence = [_normalize_base(b, f"{path}:{pos + 2}") for b in seq_line]
        if len(structure) != len(sequence):
            raise ValueError(
                f"{path}:{pos + 3}: structure has {len(structure)} characters, the sequence "
                f"{len(sequence)}"
            )
        if not sequence:
            raise ValueError(f"{path}:{pos + 2}: empty sequence in record {name!r}")
        partners = parse_dot_bracket(structure, f"{path}:{pos + 3}")
        records.append(RNAStructure(name, "".join(sequence), partners, family))
        pos += 3
    if not records:
        raise ValueError(f"{path}:1: no record found (empty file?)")
    return records


def read_strand16s(path) -> list[RNAStructure]:
    """Read the paper's 5-line integer format (family = the name's folder)."""
    lines = _lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}:1: empty file")
    records = []
    for start in range(0, len(lines), 5):
        block = lines[start : start + 5]
        if len(block) < 4:
            raise ValueError(f"{path}:{start + 1}: incomplete record ({len(block)} of 5 lines)")
        name = block[0].strip()
        try:
            codes = [int(t) for t in block[1].split()]
        except ValueError as exc:
            raise ValueError(f"{path}:{start + 2}: base codes must be integers") from exc
        try:
            partners = [int(t) for t in block[2].split()]
        except ValueError as exc:
            raise ValueError(f"{path}:{start + 3}: partners must be integers") from exc
        length = len(codes)
        if length == 0:
            raise ValueError(f"{path}:{start + 2}: empty sequence")
        if any(not 0 <= c <= 4 for c in codes):
            raise ValueError(f"{path}:{start + 2}: base codes must be 0..4")
        if len(partners) != length:
            raise ValueError(f"{path}:{start + 3}: {len(partners)} partners for {length} bases")
        for k, p in enumerate(partners):
            if not 0 <= p <= length or p == k + 1:
                raise ValueError(
                    f"{path}:{start + 3}: partner {p} of base {k + 1} is out of range 0..{length}"
                )
        zero_based = [p - 1 for p in partners]
        for k, p in enumerate(zero_based):
            if p >= 0 and zero_based[p] != k:
                raise ValueError(
                    f"{path}:{start + 3}: base {k + 1} pairs with {p + 1} (non-reciprocal pair)"
                )
        sequence = "".join((BASES + "N")[c] for c in codes)
        family = os.path.basename(os.path.dirname(name)) or None
        records.append(RNAStructure(name, sequence, np.array(zero_based, np.int32), family))
    return records


def read_fasta_sequences(path) -> list[tuple[str, str]]:
    """``(name, sequence)`` pairs of a FASTA file (sequences may wrap lines).

    A dot-bracket line after a sequence is not allowed here; use
    :func:`read_dot_bracket` for structures.
    """
    records, name, chunks, start = [], None, [], 1
    lines = _lines(path)
    for k, line in enumerate(lines + [">"], start=1):
        if line.startswith(">"):
            if name is not None:
                if not chunks:
                    raise ValueError(f"{path}:{start}: record {name!r} has no sequence")
                records.append((name, "".join(chunks)))
            name, chunks, start = line[1:].strip() or f"sequence{len(records) + 1}", [], k
            continue
        if not line.strip():
            continue
        if name is None:
            raise ValueError(f"{path}:{k}: expected a '>name' line, got {line!r}")
        chunks.extend(_normalize_base(b, f"{path}:{k}") for b in line.strip())
    if not records:
        raise ValueError(f"{path}:1: no sequence found (empty file?)")
    return records


def _reader_for(path):
    suffix = os.path.splitext(path)[1].lower()
    kind = STRUCTURE_SUFFIXES.get(suffix)
    if kind is None:
        raise ValueError(
            f"{path}: unknown structure format {suffix!r}; expected one of "
            f"{sorted(STRUCTURE_SUFFIXES)}"
        )
    return kind


def read_structures(
    paths: str | Sequence[str], recursive: bool = True, suffixes: Iterable[str] | None = None
) -> list[RNAStructure]:
    """Read files or folders of structures, choosing the reader by suffix.

    A folder is walked (sorted, recursively by default); each structure's
    family is its folder relative to the given folder (``None`` at the top).
    ``suffixes`` limits which files of a folder are read (default: all of
    :data:`STRUCTURE_SUFFIXES`); files named directly are always read.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: an unknown suffix or a malformed file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    wanted = set(STRUCTURE_SUFFIXES if suffixes is None else (x.lower() for x in suffixes))
    records: list[RNAStructure] = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                if not recursive:
                    dirs.clear()
                rel = os.path.relpath(root, path)
                family = None if rel == "." else rel.replace(os.sep, "/")
                for fname in sorted(files):
                    if os.path.splitext(fname)[1].lower() in wanted:
                        records.extend(_read_one(os.path.join(root, fname), family))
        elif os.path.isfile(path):
            records.extend(_read_one(path, None))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return records


def _read_one(path, family):
    kind = _reader_for(path)
    if kind == "ct":
        return read_ct(path, family)
    if kind == "bpseq":
        return read_bpseq(path, family)
    if kind == "dot_bracket":
        return read_dot_bracket(path, family)
    records = read_strand16s(path)
    if family is not None:
        records = [dataclasses.replace(r, family=r.family or family) for r in records]
    return records


# --------------------------------------------------------------------------- writers


def dot_bracket_levels(structure: RNAStructure) -> tuple[str, list[tuple[int, int]]]:
    """Dot-bracket string of the pairs it can write, and the pairs left out.

    Pairs are assigned, in order of their opening base, to the first bracket
    kind (``()``, ``[]``, ``{}``, ``<>``, ``Aa`` ... ``Zz``: 30 in all) none of
    whose pairs they cross. A pair that would need a 31st kind is left out
    of the string and returned instead, so that nothing is lost silently:
    the ``.ct`` and ``.bpseq`` formats hold any pairing.

    Returns:
        ``(text, omitted)``: the string, and the 0-based pairs ``(i, j)`` not in it.
    """
    chars = ["."] * len(structure)
    levels: list[list[tuple[int, int]]] = []
    omitted = []
    for i, j in structure.pairs:
        level = next(
            (
                k
                for k, assigned in enumerate(levels)
                if not any(a < i < b < j or i < a < j < b for a, b in assigned)
            ),
            len(levels),
        )
        if level >= len(_OPENERS):
            omitted.append((int(i), int(j)))
            continue
        if level == len(levels):
            levels.append([])
        levels[level].append((i, j))
        chars[i], chars[j] = _OPENERS[level], _CLOSERS[level]
    return "".join(chars), omitted


def to_dot_bracket(structure: RNAStructure) -> str:
    """Dot-bracket string; crossing pairs get ``[]``, ``{}``, ``<>``, ``Aa``...

    Pairs are assigned, in order of their opening base, to the first bracket
    kind none of whose pairs they cross.

    Raises:
        ValueError: the pairs need more than the 30 bracket kinds (see
            :func:`dot_bracket_levels` to write what fits and list the rest).
    """
    text, omitted = dot_bracket_levels(structure)
    if omitted:
        raise ValueError(
            f"{structure.name}: too many crossing pair levels for dot-bracket "
            f"({len(omitted)} pairs need more than {len(_OPENERS)} bracket kinds)"
        )
    return text


def write_dot_bracket(path, structures: Iterable[RNAStructure]):
    with open(path, "w", encoding="utf-8") as handle:
        for s in structures:
            handle.write(f">{s.name}\n{s.sequence}\n{to_dot_bracket(s)}\n")


def write_ct(path, structures: Iterable[RNAStructure]):
    """Write one or more structures as a ``.ct`` file."""
    with open(path, "w", encoding="utf-8") as handle:
        for s in structures:
            length = len(s)
            handle.write(f"{length:5d}  {s.name}\n")
            for i, (base, partner) in enumerate(zip(s.sequence, s.partners, strict=True)):
                nxt = i + 2 if i + 1 < length else 0
                handle.write(f"{i + 1:5d} {base} {i:5d} {nxt:5d} {partner + 1:5d} {i + 1:5d}\n")


def write_bpseq(path, structure: RNAStructure):
    """Write one structure as a ``.bpseq`` file (a ``# name`` comment first)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"# {structure.name}\n")
        for i, (base, partner) in enumerate(
            zip(structure.sequence, structure.partners, strict=True)
        ):
            handle.write(f"{i + 1} {base} {partner + 1}\n")
