"""Protein chains: readers (FASTA, PDB, mmCIF, chain-set JSON) and contact maps.

A :class:`ProteinChain` holds the one-letter sequence, the backbone
coordinates ``(L, 4, 3)`` of N, CA, C, O and, where the source has them, the
C-beta coordinates ``(L, 3)``; a missing atom is NaN.

Structure files (:func:`read_structure_file`, :func:`read_pdb`,
:func:`read_mmcif`): ``.pdb``, ``.pdb.gz``, ``.cif``, ``.cif.gz``, one chain
of the first model (the first chain, or the one asked for). The same rules
hold for every format:

- Alternate locations: the first one seen for each atom is kept (usually
  ``A``).
- ``HETATM`` records of selenomethionine (``MSE``) are read as methionine;
  other hetero groups (ligands, water) are skipped.
- Missing residues: by default the chain is the residues observed, in file
  order (a jump in the numbering, e.g. an unresolved loop or an excised
  segment, is not filled in); with ``fill_gaps=True`` a jump inserts that
  many unknown residues (``X``) with NaN coordinates, so that sequence
  separation ``|i - j|`` follows the numbering. Insertion codes (``52A``)
  are separate residues.

PDB files are read by this module's own fixed-column reader (no dependency;
gzip through the standard library): PDB is the format most users have, and
reading it must not need the optional parser, while the fixed columns make
a reader short and exact. mmCIF (PDBx), whose tokenized loops are not, goes
through gemmi, the optional extra ``keras-symconv[structure]``; its chain and residue numbers
are the author's (``auth_asym_id``, ``auth_seq_id``), as in the PDB format,
so a chain gives the same result from either file. Malformed records raise
``ValueError`` with the file (and, for PDB, the line).

JSON (:func:`read_protein_json`): a JSON list of chain records, or JSON Lines
(``.jsonl``: one record per line). A record has ``name``, ``seq`` and
``coords`` in either layout:

- per residue: ``coords[i]`` is ``[N, CA, C, O]``, each ``[x, y, z]``;
- per atom (the layout of the CATH 4.2 chain set and of most
  protein-structure code): ``coords`` is ``{"N": [[x, y, z], ...], "CA":
  [...], "C": [...], "O": [...]}`` with one row per residue, and ``"CB"``
  when present.

``null`` or NaN (a residue, an atom or a coordinate) marks a missing atom.
Extra keys (e.g. ``cath``) are kept in ``metadata``. Errors name the file,
the record and, for JSON Lines, the line.

FASTA (:func:`read_protein_fasta`): sequences without a structure (every
coordinate NaN), for prediction; the 20 amino acids and ``X``.

Contact maps (:func:`contact_map`): residues ``i != j`` are in contact when
their C-alpha (or C-beta) atoms are closer than the threshold (8 A). C-beta
is read from the structure where present and otherwise placed from the
backbone (N, CA, C) with ideal geometry, which is also how glycine gets one.
Residues lacking the atoms needed are masked out (``mask == 0``), never
counted as non-contacts.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os

import numpy as np

__all__ = [
    "ProteinChain",
    "AMINO_ACIDS",
    "THREE_TO_ONE",
    "STRUCTURE_SUFFIXES",
    "SEQUENCE_SUFFIXES",
    "read_pdb",
    "read_mmcif",
    "read_structure_file",
    "read_protein_json",
    "read_protein_fasta",
    "read_protein_files",
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

#: Suffixes of the structure files the readers take (chain-set JSON, PDB, mmCIF).
STRUCTURE_SUFFIXES = (".json", ".jsonl", ".pdb", ".pdb.gz", ".cif", ".cif.gz", ".mmcif")
#: Suffixes of sequence files (FASTA), read for prediction only.
SEQUENCE_SUFFIXES = (".fa", ".fasta", ".faa")


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


def _number(value, where):
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {value!r} is not a number")
    return float(value)


def _point(atom, where):
    """``[x, y, z]`` of one atom; ``None`` or any NaN / null coordinate: missing (NaN)."""
    if atom is None:
        return [math.nan] * 3
    if not isinstance(atom, (list, tuple)) or len(atom) != 3:
        raise ValueError(f"{where} is not (x, y, z)")
    return [_number(v, where) for v in atom]


def _chain_from_record(rec, where) -> ProteinChain:
    """One chain-set record, per-residue or per-atom ``coords`` (module docstring)."""
    if not isinstance(rec, dict) or not {"name", "seq", "coords"} <= set(rec):
        raise ValueError(f"{where}: needs the keys 'name', 'seq' and 'coords'")
    name, seq, raw = rec["name"], str(rec["seq"]).upper(), rec["coords"]
    where = f"{where} ({name})"
    length = len(seq)
    coords = np.full((length, 4, 3), np.nan, np.float32)
    cb = np.full((length, 3), np.nan, np.float32)
    if isinstance(raw, dict):
        missing = [a for a in _BACKBONE if a not in raw]
        if missing:
            raise ValueError(
                f"{where}: coords has the atoms {sorted(raw)}, missing {missing} "
                "(per-atom layout: N, CA, C, O and optionally CB)"
            )
        for a, atom in enumerate((*_BACKBONE, "CB")):
            rows = raw.get(atom)
            if rows is None:
                continue
            if not isinstance(rows, list) or len(rows) != length:
                got = len(rows) if isinstance(rows, list) else type(rows).__name__
                raise ValueError(f"{where}: coords[{atom!r}] has {got} rows for {length} residues")
            target = cb if atom == "CB" else coords[:, a]
            for i, xyz in enumerate(rows):
                target[i] = _point(xyz, f"{where}: residue {i + 1} atom {atom}")
    elif isinstance(raw, list):
        if len(raw) != length:
            raise ValueError(f"{where}: {len(raw)} coordinate rows for {length} residues")
        for i, residue in enumerate(raw):
            if residue is None:
                continue
            if not isinstance(residue, list) or len(residue) != 4:
                got = len(residue) if isinstance(residue, list) else type(residue).__name__
                raise ValueError(f"{where}: residue {i + 1} has {got} atoms, expected 4")
            for a, atom in enumerate(residue):
                coords[i, a] = _point(atom, f"{where}: residue {i + 1} atom {_BACKBONE[a]}")
    else:
        raise ValueError(
            f"{where}: coords must be a list of residues or a dict of atoms. "
            f"Received: {type(raw).__name__}"
        )
    metadata = {key: v for key, v in rec.items() if key not in ("name", "seq", "coords")}
    return ProteinChain(str(name), seq, coords, cb, metadata)


def read_protein_json(path) -> list[ProteinChain]:
    """Read chain-set JSON or JSON Lines (see the module docstring).

    A ``.jsonl`` file holds one record per line; any other file one JSON
    list of records (or a single record).
    """
    chains = []
    if os.fspath(path).endswith(".jsonl"):
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}: record {len(chains)}"
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
                chains.append(_chain_from_record(rec, where))
        if not chains:
            raise ValueError(f"{path}:1: no records (empty file?)")
        return chains
    try:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path}: expected a non-empty list of chains")
    return [_chain_from_record(rec, f"{path}: record {k}") for k, rec in enumerate(records)]


def read_protein_fasta(path) -> list[ProteinChain]:
    """Chains without structure from FASTA: one record per chain, name = first word.

    Sequences may wrap lines and be in either case. Their coordinates are all
    NaN (``contact_map`` masks every residue), so they serve prediction only.

    Raises:
        ValueError: a letter other than the 20 amino acids and ``X``, or a
            record without a sequence, naming the file and line.
    """
    allowed = set(AMINO_ACIDS + "X")
    records, name, chunks, start = [], None, [], 1
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    for lineno, line in enumerate(lines + [">"], start=1):
        line = line.strip()
        if line.startswith(">"):
            if name is not None:
                if not chunks:
                    raise ValueError(f"{path}:{start}: record {name!r} has no sequence")
                records.append((name, "".join(chunks)))
            words = line[1:].split()
            name, chunks, start = (words[0] if words else f"sequence{len(records) + 1}"), [], lineno
            continue
        if not line:
            continue
        if name is None:
            raise ValueError(f"{path}:{lineno}: expected a '>name' line, got {line[:40]!r}")
        residues = line.upper()
        bad = next((c for c in residues if c not in allowed), None)
        if bad is not None:
            raise ValueError(
                f"{path}:{lineno}: {bad!r} is not an amino acid; expected the 20 standard "
                "one-letter codes or X"
            )
        chunks.append(residues)
    if not records:
        raise ValueError(f"{path}:1: no sequence found (empty file?)")
    return [
        ProteinChain(n, seq, np.full((len(seq), 4, 3), np.nan, np.float32), None, {"source": path})
        for n, seq in records
    ]


def _open_text(path):
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _stem(path):
    name = os.path.basename(os.fspath(path))
    for suffix in sorted(STRUCTURE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


def _assemble(path, chain, residues, order, fill_gaps) -> ProteinChain:
    """A chain from residues ``{(number, icode): {"name", "atoms"}}`` in file order."""
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
    return ProteinChain(
        _stem(path), "".join(sequence), np.array(coords), np.array(cbs), {"chain": chain}
    )


def read_pdb(path, chain: str | None = None, fill_gaps: bool = False) -> ProteinChain:
    """Read one chain of a PDB file, ``.pdb`` or ``.pdb.gz`` (see the module docstring).

    Args:
        path: the file.
        chain: chain identifier; default the first chain with ATOM records.
        fill_gaps: insert ``X`` residues for jumps in the residue numbering
            (default: keep the observed residues only).

    Raises:
        ValueError: no ATOM records (for the chain), or a malformed record,
            naming the file and line.
    """
    residues: dict[tuple[int, str], dict] = {}
    order: list[tuple[int, str]] = []
    with _open_text(path) as handle:
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
    return _assemble(path, chain, residues, order, fill_gaps)


def _import_gemmi(path):
    try:
        import gemmi
    except ImportError as exc:
        raise ImportError(
            f"{path}: reading mmCIF needs gemmi: pip install 'keras-symconv[structure]'"
        ) from exc
    return gemmi


def read_mmcif(path, chain: str | None = None, fill_gaps: bool = False) -> ProteinChain:
    """Read one chain of an mmCIF (PDBx) file, ``.cif`` or ``.cif.gz``, with gemmi.

    The rules, arguments and result are those of :func:`read_pdb`; chains and
    residue numbers are the author's (``auth_asym_id``, ``auth_seq_id``).

    Raises:
        ImportError: gemmi is not installed (the ``[structure]`` extra).
        ValueError: the file cannot be parsed, or has no ATOM records (for
            the chain), naming the file.
    """
    gemmi = _import_gemmi(path)
    try:
        structure = gemmi.read_structure(os.fspath(path), merge_chain_parts=True)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable mmCIF file: {exc}") from exc
    residues: dict[tuple[int, str], dict] = {}
    order: list[tuple[int, str]] = []
    if len(structure) > 0:
        for part in structure[0]:  # the first model
            for residue in part:
                if residue.het_flag == "H" and residue.name != "MSE":
                    continue
                if chain is None:
                    chain = part.name
                if part.name != chain:
                    break
                key = (residue.seqid.num, residue.seqid.icode.strip())
                if key not in residues:
                    residues[key] = {"name": residue.name, "atoms": {}}
                    order.append(key)
                atoms = residues[key]["atoms"]
                for atom in residue:  # alternate locations in file order: the first wins
                    atoms.setdefault(atom.name, [atom.pos.x, atom.pos.y, atom.pos.z])
    if not order:
        raise ValueError(f"{path}: no ATOM records" + (f" for chain {chain!r}" if chain else ""))
    return _assemble(path, chain, residues, order, fill_gaps)


def _suffix(path):
    name = os.fspath(path).lower()
    return next(
        (s for s in sorted(STRUCTURE_SUFFIXES + SEQUENCE_SUFFIXES, key=len, reverse=True)
         if name.endswith(s)),
        None,
    )  # fmt: skip


def read_structure_file(path, chain: str | None = None, fill_gaps: bool = False):
    """The chains of one structure file, chosen by suffix (:data:`STRUCTURE_SUFFIXES`).

    JSON files give all their records; PDB and mmCIF files one chain
    (``chain`` and ``fill_gaps`` as in :func:`read_pdb`).
    """
    suffix = _suffix(path)
    if suffix in (".json", ".jsonl"):
        return read_protein_json(path)
    if suffix in (".pdb", ".pdb.gz"):
        return [read_pdb(path, chain, fill_gaps)]
    if suffix in (".cif", ".cif.gz", ".mmcif"):
        return [read_mmcif(path, chain, fill_gaps)]
    raise ValueError(
        f"{path}: unknown protein format; expected one of {', '.join(STRUCTURE_SUFFIXES)}"
    )


def read_protein_files(paths, chain: str | None = None, sequences: bool = False):
    """Chains of files and folders (folders: their structure files, sorted, recursively).

    Args:
        paths: a path or a list of paths.
        chain: chain identifier for PDB and mmCIF files.
        sequences: also accept FASTA files (:data:`SEQUENCE_SUFFIXES`),
            whose chains have no coordinates (prediction).

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a file of another format, naming it.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    wanted = STRUCTURE_SUFFIXES + (SEQUENCE_SUFFIXES if sequences else ())
    files = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names) if _suffix(n) in wanted]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    chains = []
    for f in files:
        if _suffix(f) in SEQUENCE_SUFFIXES:
            if not sequences:
                raise ValueError(
                    f"{f}: a sequence file has no structure to score or learn from; "
                    f"give structures ({', '.join(STRUCTURE_SUFFIXES)})"
                )
            chains += read_protein_fasta(f)
        else:
            chains += read_structure_file(f, chain)
    return chains


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
