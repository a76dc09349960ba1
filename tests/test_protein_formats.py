"""Protein inputs people have: chain-set JSON in both layouts, JSON Lines, mmCIF, FASTA."""

import gzip
import json

import numpy as np
import pytest

from keras_symconv.data.protein import (
    contact_map,
    read_pdb,
    read_protein_fasta,
    read_protein_files,
    read_protein_json,
    read_structure_file,
)

RNG = np.random.default_rng(7)


def _walk(n):
    """Backbone-like coordinates (n, 5, 3): N, CA, C, O, CB along a random walk."""
    steps = RNG.normal(size=(n, 3))
    ca = np.cumsum(3.8 * steps / np.linalg.norm(steps, axis=1, keepdims=True), axis=0)
    offsets = np.array([[-1.2, 0.6, 0.1], [0, 0, 0], [1.3, 0.7, -0.2], [2.1, 1.6, 0.3],
                        [0.4, -1.1, 1.0]])  # fmt: skip
    return (ca[:, None] + offsets[None]).round(3)


def test_json_layouts_agree_and_missing_atoms_are_masked(tmp_path):
    xyz = _walk(12)
    seq = "ACDEFGHIKLMN"
    rows = xyz[:, :4].tolist()
    rows[2] = None  # a whole residue missing
    rows[5][1] = None  # its C-alpha missing
    per_residue = {"name": "a", "seq": seq, "coords": rows, "cath": "1.10"}
    by_atom = {
        "name": "a",
        "seq": seq,
        "coords": {atom: xyz[:, a].tolist() for a, atom in enumerate(("N", "CA", "C", "O"))},
        "cath": "1.10",
    }
    by_atom["coords"]["N"][2] = by_atom["coords"]["CA"][2] = None
    by_atom["coords"]["C"][2] = [float("nan")] * 3
    by_atom["coords"]["O"][2] = [None, None, None]
    by_atom["coords"]["CA"][5] = [float("nan"), 1.0, 2.0]  # one NaN coordinate: missing
    (tmp_path / "r.json").write_text(json.dumps([per_residue]))
    # json.dumps writes NaN as the bare token NaN, which is what such files hold.
    (tmp_path / "a.json").write_text(json.dumps([by_atom]))
    (r,) = read_protein_json(tmp_path / "r.json")
    (a,) = read_protein_json(tmp_path / "a.json")
    assert r.sequence == a.sequence == seq and a.metadata == {"cath": "1.10"}
    for atom in range(4):
        finite = np.isfinite(r.coords[:, atom]).all(-1)
        assert np.array_equal(finite, np.isfinite(a.coords[:, atom]).all(-1))
        np.testing.assert_allclose(r.coords[finite, atom], a.coords[finite, atom])
    contacts_r, mask_r = contact_map(r)
    contacts_a, mask_a = contact_map(a)
    assert mask_a.tolist() == [1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1]
    np.testing.assert_array_equal(mask_r, mask_a)
    np.testing.assert_array_equal(contacts_r, contacts_a)
    # C-beta given in the per-atom layout is used instead of the placed one.
    by_atom["coords"]["CB"] = xyz[:, 4].tolist()
    (tmp_path / "cb.json").write_text(json.dumps(by_atom))  # a single record, not a list
    (cb,) = read_protein_json(tmp_path / "cb.json")
    np.testing.assert_allclose(cb.cb, xyz[:, 4], atol=1e-5)
    dist = np.linalg.norm(xyz[:, None, 4] - xyz[None, :, 4], axis=-1)
    expected = (dist < 8.0) & ~np.eye(12, dtype=bool)
    np.testing.assert_array_equal(contact_map(cb, atom="CB")[0], expected.astype(np.float32))


def test_json_lines_and_their_errors(tmp_path):
    records = []
    for k, n in enumerate((8, 10)):
        xyz = _walk(n)
        coords = {atom: xyz[:, a].tolist() for a, atom in enumerate(("N", "CA", "C", "O"))}
        records.append({"name": f"c{k}", "seq": "A" * n, "coords": coords})
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    chains = read_protein_json(path)
    assert [c.name for c in chains] == ["c0", "c1"] and [len(c) for c in chains] == [8, 10]
    np.testing.assert_allclose(chains[1].coords[:, 1], records[1]["coords"]["CA"], atol=1e-5)
    # The same file found in a folder, beside a per-residue JSON list.
    (tmp_path / "list.json").write_text(
        json.dumps([{"name": "d", "seq": "AA", "coords": [None, None]}])
    )
    assert [c.name for c in read_protein_files(tmp_path)] == ["d", "c0", "c1"]

    short = dict(records[1], name="short")
    short["coords"] = dict(short["coords"], CA=short["coords"]["CA"][:3])
    no_o = dict(records[0], name="no_o")
    no_o["coords"] = {k: v for k, v in no_o["coords"].items() if k != "O"}
    bad_atom = dict(records[0], name="bad")
    bad_atom["coords"] = dict(bad_atom["coords"], N=[[0, 0]] * 8)
    cases = [
        (json.dumps(short), r"bad.jsonl:2: record 1 \(short\): coords\['CA'\] has 3 rows for 10"),
        (json.dumps(no_o), r"bad.jsonl:2: record 1 \(no_o\): coords has the atoms .* missing"),
        (json.dumps(bad_atom), r"bad.jsonl:2: record 1 \(bad\): residue 1 atom N is not"),
        ('{"name": "x", "seq": ', r"bad.jsonl:2: invalid JSON"),
        ('{"name": "x"}', r"bad.jsonl:2: record 1: needs the keys"),
    ]
    for text, message in cases:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(records[0]) + "\n" + text + "\n")
        with pytest.raises(ValueError, match=message):
            read_protein_json(bad)


def _structure():
    """Atoms of a small entry: chain H with an altloc, MSE, water, a gap, an
    insertion code; chain L; a second model. Label chains differ from the
    author's, as in real entries. Each atom: (record, name, altloc, residue,
    author chain, label chain, number, insertion code, xyz, model)."""
    xyz = _walk(8)
    atoms = []

    def add(k, resname, chain, label, number, icode=" ", record="ATOM", model=1, cb=True):
        names = ("N", "CA", "C", "O", "CB") if cb else ("N", "CA", "C", "O")
        for a, name in enumerate(names):
            atoms.append((record, name, "A" if k == 0 else " ", resname, chain, label, number,
                          icode, xyz[k, a], model))  # fmt: skip
            if k == 0 and name == "CA":  # altloc B, after A: ignored
                atoms.append((record, name, "B", resname, chain, label, number, icode,
                              xyz[k, a] + 40.0, model))  # fmt: skip

    add(0, "ALA", "H", "A", 1)
    add(1, "GLY", "H", "A", 2, cb=False)
    add(2, "MSE", "H", "A", 3, record="HETATM")
    add(3, "LEU", "H", "A", 6)  # residues 4-5 unobserved
    add(4, "LEU", "H", "A", 6, icode="A")
    atoms.append(("HETATM", "O", " ", "HOH", "H", "C", 101, " ", np.array([9.0, 9, 9]), 1))
    add(5, "SER", "L", "B", 1)
    add(6, "TRP", "L", "B", 2)
    add(7, "TYR", "H", "A", 7, model=2)
    return atoms


def _pdb_text(atoms):
    lines, model = ["HEADER    TEST"], 1
    for serial, (rec, name, alt, res, chain, _, num, icode, (x, y, z), m) in enumerate(atoms, 1):
        if m != model:
            lines += ["ENDMDL", f"MODEL     {m:>4}"]
            model = m
        lines.append(
            f"{rec:<6}{serial:>5} {name:<4}{alt}{res:>3} {chain}{num:>4}{icode}   "
            f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           {name[0]}"
        )
    return "\n".join(lines + ["END"]) + "\n"


def _cif_text(atoms):
    columns = ("group_PDB id type_symbol label_atom_id label_alt_id label_comp_id "
               "label_asym_id label_entity_id label_seq_id pdbx_PDB_ins_code Cartn_x Cartn_y "
               "Cartn_z occupancy B_iso_or_equiv auth_seq_id auth_asym_id "
               "pdbx_PDB_model_num").split()  # fmt: skip
    lines = ["data_test", "#", "loop_"] + [f"_atom_site.{c}" for c in columns]
    for serial, (rec, name, alt, res, chain, label, num, icode, (x, y, z), m) in enumerate(
        atoms, 1
    ):
        entity = 3 if res == "HOH" else (1 if chain == "H" else 2)
        seq_id = "." if res == "HOH" else num
        lines.append(
            f"{rec} {serial} {name[0]} {name} {alt.strip() or '.'} {res} {label} {entity} "
            f"{seq_id} {icode.strip() or '?'} {x:.3f} {y:.3f} {z:.3f} 1.00 20.00 {num} "
            f"{chain} {m}"
        )
    return "\n".join(lines + ["#"]) + "\n"


def test_mmcif_reads_as_the_same_chain_in_pdb_format(tmp_path):
    pytest.importorskip("gemmi", reason="mmCIF needs gemmi (the [structure] extra)")
    from keras_symconv.data.protein import read_mmcif

    atoms = _structure()
    (tmp_path / "e.pdb").write_text(_pdb_text(atoms))
    (tmp_path / "e.cif").write_text(_cif_text(atoms))
    with gzip.open(tmp_path / "z.cif.gz", "wt") as handle:
        handle.write(_cif_text(atoms))
    with gzip.open(tmp_path / "z.pdb.gz", "wt") as handle:
        handle.write(_pdb_text(atoms))
    pdb = read_pdb(tmp_path / "e.pdb")
    assert pdb.sequence == "AGMLL"  # first model, chain H, MSE as M, water skipped
    for fill_gaps, chain in ((False, None), (True, None), (False, "L")):
        reference = read_pdb(tmp_path / "e.pdb", chain, fill_gaps)
        for path in ("e.cif", "z.cif.gz", "z.pdb.gz"):
            (got,) = read_structure_file(tmp_path / path, chain, fill_gaps)
            assert got.sequence == reference.sequence, (path, chain, fill_gaps)
            np.testing.assert_allclose(got.coords, reference.coords, atol=1e-3)
            np.testing.assert_allclose(got.cb, reference.cb, atol=1e-3)
            for atom in ("CA", "CB"):
                for a, b in zip(contact_map(got, atom=atom), contact_map(reference, atom=atom),
                                strict=True):  # fmt: skip
                    np.testing.assert_array_equal(a, b)
    assert read_pdb(tmp_path / "e.pdb", fill_gaps=True).sequence == "AGMXXLL"
    assert read_mmcif(tmp_path / "e.cif", "L").metadata == {"chain": "L"}
    assert read_mmcif(tmp_path / "z.cif.gz").name == "z"
    with pytest.raises(ValueError, match=r"e.cif: no ATOM records for chain 'A'"):
        read_mmcif(tmp_path / "e.cif", "A")  # label chain IDs are not the author's
    assert [c.name for c in read_protein_files(tmp_path)] == ["e", "e", "z", "z"]
    (tmp_path / "bad.cif").write_text("data_x\nloop_\n_atom_site.id\n_atom_site.Cartn_x\n1\n")
    with pytest.raises(ValueError, match=r"bad.cif: not a readable mmCIF file: .*bad.cif:2"):
        read_mmcif(tmp_path / "bad.cif")
    (tmp_path / "bad.cif").write_text("data_x\nloop_\n_atom_site.id\n1\n")
    with pytest.raises(ValueError, match=r"bad.cif: no ATOM records"):
        read_mmcif(tmp_path / "bad.cif")


def test_fasta_sequences_and_errors(tmp_path):
    path = tmp_path / "s.fa"
    path.write_text(">T1 first target\nACDEFGHIK\nlmnpqrstvwyx\n\n>T2\nMKV\n")
    chains = read_protein_fasta(path)
    assert [c.name for c in chains] == ["T1", "T2"]
    assert chains[0].sequence == "ACDEFGHIKLMNPQRSTVWYX"
    contacts, mask = contact_map(chains[1])
    assert not mask.any() and not contacts.any()
    cases = [
        (">a\nACDB\n", r"s.fa:2: 'B' is not an amino acid"),
        (">a\nAC\nAC-D\n", r"s.fa:3: '-' is not an amino acid"),
        ("ACD\n", r"s.fa:1: expected a '>name' line"),
        (">a\n>b\nAC\n", r"s.fa:1: record 'a' has no sequence"),
        ("\n", r"s.fa:1: no sequence found"),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_protein_fasta(path)
    path.write_text(">a\nACD\n")
    with pytest.raises(ValueError, match=r"s.fa: a sequence file has no structure"):
        read_protein_files(path)
    assert read_protein_files(path, sequences=True)[0].sequence == "ACD"
    with pytest.raises(ValueError, match=r"x.txt: unknown protein format"):
        (tmp_path / "x.txt").write_text("")
        read_protein_files(tmp_path / "x.txt")


def _entry_files(folder):
    """A JSON Lines chain set (two chains, per-atom layout) and one mmCIF entry."""
    folder.mkdir()
    records = []
    for k, n in enumerate((9, 11)):
        xyz = _walk(n)
        coords = {atom: xyz[:, a].tolist() for a, atom in enumerate(("N", "CA", "C", "O"))}
        coords["CA"][1] = None
        records.append({"name": f"c{k}", "seq": "ACDEFGHIKLM"[:n], "coords": coords})
    (folder / "set.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (folder / "entry.cif").write_text(_cif_text(_structure()))
    return records


def test_tool_and_tfds_builder_read_json_lines_and_mmcif(tmp_path):
    pytest.importorskip("gemmi", reason="mmCIF needs gemmi (the [structure] extra)")
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_symconv.cli import build_parser
    from keras_symconv.data import tfds_protein  # noqa: F401 (registers the builder)
    from keras_symconv.tasks import TASKS

    folder = tmp_path / "chains"
    _entry_files(folder)
    expected = {"c0": 9, "c1": 11, "entry": 5}
    # What train and evaluate read (--chain picks the mmCIF chain).
    args = build_parser().parse_args(["contact", "evaluate", "m.keras", str(folder)])
    examples = TASKS["contact"].read([str(folder)], args)
    assert {e.name: len(e) for e in examples} == expected
    assert all(e.mask[1] == 0 for e in examples if e.name != "entry")
    args = build_parser().parse_args(
        ["contact", "evaluate", "m.keras", str(folder / "entry.cif"), "--chain", "L"]
    )
    (entry,) = TASKS["contact"].read([str(folder / "entry.cif")], args)
    assert entry.sequence == "SW"

    builder = tfds.builder("protein_chains", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=folder))
    sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
    assert sizes == {"set": 2, "pdb": 1}
    reference = {e.name: e for e in examples}
    for split in ("set", "pdb"):
        for example in builder.as_dataset(split=split):
            name = example["name"].numpy().decode()
            np.testing.assert_array_equal(example["contacts"].numpy(), reference[name].contacts)
            np.testing.assert_array_equal(example["mask"].numpy(), reference[name].mask)
