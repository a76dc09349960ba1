"""Protein chains: readers (PDB, the project's JSON layout) and contact maps.

A :class:`ProteinChain` holds the one-letter sequence, the backbone
coordinates ``(L, 4, 3)`` of N, CA, C, O and, where the source has them, the
C-beta coordinates ``(L, 3)``; a missing atom is NaN.

PDB files (:func:`read_pdb`): ``ATOM`` records of the first model only, one
chain (the first, or the one asked for). Alternate locations: the first one
seen for each atom is kept (usually ``A``). ``HETATM`` records of
selenomethionine (``MSE``) are read as methionine; other hetero groups are
skipped. Missing residues: by default the chain is the residues observed,
in file order (a jump in the numbering, e.g. an unresolved loop or an
excised segment, is not filled in); with ``fill_gaps=True`` a jump inserts
that many unknown residues (``X``) with NaN coordinates, so that sequence
separation ``|i - j|`` follows the numbering. Insertion codes (``52A``) are
separate residues. Malformed records raise ``ValueError`` with
the file and line.

JSON (:func:`read_protein_json`): a list of objects with ``name``, ``seq``
and ``coords`` ``[L][4][3]`` (N, CA, C, O; ``null`` for a missing atom),
extra keys (e.g. ``cath``) kept in ``metadata``.

Contact maps (:func:`contact_map`): residues ``i != j`` are in contact when
their C-alpha (or C-beta) atoms are closer than the threshold (8 A). C-beta
is read from the structure where present and otherwise placed from the
backbone (N, CA, C) with ideal geometry, which is also how glycine gets one.
Residues lacking the atoms needed are masked out (``mask == 0``), never
counted as non-contacts.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

__all__ = [
    "ProteinChain",
    "AMINO_ACIDS",
    "THREE_TO_ONE",
    "read_pdb",
    "read_protein_json",
    "virtual_cb",
    "contact_map",
    "write_casp_rr",
]

#: The 20 standard amino acids, in one-hot order; anything else is "unknown".
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"

THREE_TO_ONE = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C", "GLN": "Q", "GLU": "E",
    "GLY": "G", "HIS": "H", "ILE": "I", "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F",
    "PRO": "P", "SER": "S", "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V", "MSE": "M",
    "SEC": "U", "PYL": "O", "UNK": "X",
}  # fmt: skip

_BACKBONE = ("N", "CA", "C", "O")


@dataclasses.dataclass(frozen=True, eq=False)
class ProteinChain:
    """One protein chain.

    Attributes:
        name: identifier.
        sequence: one-letter codes (``X`` unknown or missing).
        coords: float32 ``(L, 4, 3)``: N, CA, C, O; NaN where missing.
        cb: float32 ``(L, 3)`` C-beta from the structure, NaN where absent.
        metadata: other fields of the source (e.g. ``cath``).
    """

    name: str
    sequence: str
    coords: np.ndarray
    cb: np.ndarray | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        coords = np.asarray(self.coords, np.float32)
        length = len(self.sequence)
        if coords.shape != (length, 4, 3):
            raise ValueError(
                f"{self.name}: coords has shape {coords.shape}, expected ({length}, 4, 3)"
            )
        cb = np.full((length, 3), np.nan, np.float32) if self.cb is None else self.cb
        cb = np.asarray(cb, np.float32)
        if cb.shape != (length, 3):
            raise ValueError(f"{self.name}: cb has shape {cb.shape}, expected ({length}, 3)")
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "cb", cb)

    def __len__(self):
        return len(self.sequence)


def read_protein_json(path) -> list[ProteinChain]:
    """Read the JSON layout described in the module docstring."""
    try:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path}: expected a non-empty list of chains")
    chains = []
    for k, rec in enumerate(records):
        where = f"{path}: record {k}"
        if not isinstance(rec, dict) or not {"name", "seq", "coords"} <= set(rec):
            raise ValueError(f"{where}: needs the keys 'name', 'seq' and 'coords'")
        name, seq, raw = rec["name"], str(rec["seq"]).upper(), rec["coords"]
        where = f"{path}: record {k} ({name})"
        if len(raw) != len(seq):
            raise ValueError(f"{where}: {len(raw)} coordinate rows for {len(seq)} residues")
        coords = np.full((len(seq), 4, 3), np.nan, np.float32)
        for i, residue in enumerate(raw):
            if residue is None:
                continue
            if len(residue) != 4:
                raise ValueError(f"{where}: residue {i + 1} has {len(residue)} atoms, expected 4")
            for a, atom in enumerate(residue):
                if atom is None:
                    continue
                if len(atom) != 3:
                    raise ValueError(f"{where}: residue {i + 1} atom {a} is not (x, y, z)")
                coords[i, a] = atom
        metadata = {key: v for key, v in rec.items() if key not in ("name", "seq", "coords")}
        chains.append(ProteinChain(str(name), seq, coords, None, metadata))
    return chains


def read_pdb(path, chain: str | None = None, fill_gaps: bool = False) -> ProteinChain:
    """Read one chain of a PDB file (see the module docstring).

    Args:
        path: the ``.pdb`` file.
        chain: chain identifier; default the first chain with ATOM records.
        fill_gaps: insert ``X`` residues for jumps in the residue numbering
            (default: keep the observed residues only).

    Raises:
        ValueError: no ATOM records (for the chain), or a malformed record,
            naming the file and line.
    """
    residues: dict[tuple[int, str], dict] = {}
    order: list[tuple[int, str]] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    for lineno, line in enumerate(lines, start=1):
        record = line[:6].strip()
        if record == "ENDMDL":
            break
        if record not in ("ATOM", "HETATM"):
            continue
        resname = line[17:20].strip()
        if record == "HETATM" and resname != "MSE":
            continue
        chain_id = line[21:22]
        if chain is None:
            chain = chain_id
        if chain_id != chain:
            continue
        try:
            resseq = int(line[22:26])
            xyz = [float(line[30:38]), float(line[38:46]), float(line[46:54])]
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: malformed {record} record: {line!r}") from exc
        key = (resseq, line[26:27].strip())
        if key not in residues:
            residues[key] = {"name": resname, "atoms": {}}
            order.append(key)
        atom = line[12:16].strip()
        residues[key]["atoms"].setdefault(atom, xyz)  # first alternate location wins
    if not order:
        raise ValueError(f"{path}:1: no ATOM records" + (f" for chain {chain!r}" if chain else ""))
    sequence, coords, cbs = [], [], []
    previous = None
    for key in order:
        if fill_gaps and previous is not None and key[0] > previous + 1:
            for _ in range(key[0] - previous - 1):
                sequence.append("X")
                coords.append(np.full((4, 3), np.nan))
                cbs.append(np.full(3, np.nan))
        previous = key[0]
        res = residues[key]
        sequence.append(THREE_TO_ONE.get(res["name"], "X"))
        coords.append([res["atoms"].get(a, [np.nan] * 3) for a in _BACKBONE])
        cbs.append(res["atoms"].get("CB", [np.nan] * 3))
    name = f"{os.path.splitext(os.path.basename(path))[0]}"
    return ProteinChain(name, "".join(sequence), np.array(coords), np.array(cbs), {"chain": chain})


def virtual_cb(coords: np.ndarray) -> np.ndarray:
    """C-beta placed from N, CA, C with ideal geometry, ``(L, 3)`` (NaN if any is missing)."""
    n, ca, c = coords[:, 0], coords[:, 1], coords[:, 2]
    b = ca - n
    cc = c - ca
    a = np.cross(b, cc)
    return -0.58273431 * a + 0.56802827 * b - 0.54067466 * cc + ca


def contact_map(chain: ProteinChain, threshold: float = 8.0, atom: str = "CA"):
    """Contacts and their mask.

    Args:
        chain: the protein chain.
        threshold: distance in Angstrom (strictly closer is a contact).
        atom: ``"CA"`` or ``"CB"`` (see the module docstring for C-beta).

    Returns:
        ``(contacts, mask)``: float32 ``(L, L)`` 0/1 map with a zero diagonal,
        and float32 ``(L,)`` 1 where the residue has the atom.
    """
    if atom == "CA":
        points = chain.coords[:, 1]
    elif atom == "CB":
        points = np.where(np.isnan(chain.cb), virtual_cb(chain.coords), chain.cb)
    else:
        raise ValueError(f"Argument `atom` must be 'CA' or 'CB'. Received: atom={atom!r}")
    mask = np.all(np.isfinite(points), axis=-1)
    safe = np.where(mask[:, None], points, 0.0)
    dist = np.sqrt(((safe[:, None] - safe[None]) ** 2).sum(-1))
    contacts = (dist < threshold) & mask[:, None] & mask[None]
    np.fill_diagonal(contacts, False)
    return contacts.astype(np.float32), mask.astype(np.float32)


def write_casp_rr(path, target: str, sequence: str, prob, min_separation: int = 6, top=None):
    """Write predicted contacts in the CASP RR format.

    Header ``PFRMAT RR``, ``TARGET``, ``MODEL 1``, the sequence in lines of
    50, then ``i j 0 8 p`` (1-based, ``i < j``, ``|i - j| >= min_separation``)
    by decreasing probability, at most ``top`` lines, and ``END``.
    """
    prob = np.asarray(prob, np.float64)
    length = len(sequence)
    if prob.shape != (length, length):
        raise ValueError(
            f"Argument `prob` must have shape ({length}, {length}). Received {prob.shape}"
        )
    rows, cols = np.triu_indices(length, k=min_separation)
    values = prob[rows, cols]
    order = np.argsort(-values, kind="stable")[:top]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"PFRMAT RR\nTARGET {target}\nMODEL 1\n")
        for start in range(0, length, 50):
            handle.write(sequence[start : start + 50] + "\n")
        for k in order:
            handle.write(f"{rows[k] + 1} {cols[k] + 1} 0 8 {values[k]:.4f}\n")
        handle.write("END\n")
