"""Protein chains: PDB and JSON readers, C-beta placement, contact maps with masks."""

import json
import os

import numpy as np
import pytest

from keras_symconv.data.protein import (
    ProteinChain,
    contact_map,
    read_pdb,
    read_protein_json,
    virtual_cb,
    write_casp_rr,
)

SHARED_PROTEIN = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "protein")
needs_shared = pytest.mark.skipif(
    not os.path.isdir(SHARED_PROTEIN), reason="../shared/data/protein is absent"
)


def atom_line(serial, name, resname, chain, resseq, xyz, altloc=" ", icode=" ", record="ATOM"):
    x, y, z = xyz
    return (
        f"{record:<6}{serial:>5} {name:<4}{altloc}{resname:>3} {chain}{resseq:>4}{icode}   "
        f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           {name[0]}"
    )


def residue(serial, resname, chain, resseq, origin, with_cb=True, **kw):
    o = np.array(origin, float)
    atoms = [("N", o), ("CA", o + [1.46, 0, 0]), ("C", o + [2.0, 1.4, 0]), ("O", o + [3.2, 1.5, 0])]
    if with_cb:
        atoms.append(("CB", o + [1.9, -0.8, 1.2]))
    return [
        atom_line(serial + k, n, resname, chain, resseq, xyz, **kw)
        for k, (n, xyz) in enumerate(atoms)
    ]


def test_pdb_first_model_one_chain_altloc_mse_gaps(tmp_path):
    lines = ["HEADER    TEST"]
    lines += residue(1, "ALA", "A", 1, (0, 0, 0), altloc="A")
    lines += [atom_line(9, "CA", "ALA", "A", 1, (50, 50, 50), altloc="B")]  # ignored altloc B
    lines += residue(10, "GLY", "A", 2, (3.8, 0, 0), with_cb=False)
    lines += residue(20, "MSE", "A", 3, (7.6, 0, 0), record="HETATM")
    lines += [atom_line(30, "O", "HOH", "A", 100, (9, 9, 9), record="HETATM")]  # water: skipped
    lines += residue(40, "LEU", "A", 6, (11.4, 0, 0))  # residues 4-5 missing
    lines += residue(50, "LEU", "A", 6, (15.2, 0, 0), icode="A")  # insertion code
    lines += residue(60, "SER", "B", 1, (0, 20, 0))  # another chain
    lines += ["ENDMDL", "MODEL        2"] + residue(70, "TRP", "A", 7, (0, 0, 30)) + ["END"]
    path = tmp_path / "t.pdb"
    path.write_text("\n".join(lines) + "\n")

    chain = read_pdb(str(path))
    assert chain.sequence == "AGMLL"
    np.testing.assert_allclose(chain.coords[0, 1], [1.46, 0, 0], atol=1e-3)
    assert np.isnan(chain.cb[1]).all() and not np.isnan(chain.cb[0]).any()
    filled = read_pdb(str(path), fill_gaps=True)
    assert filled.sequence == "AGMXXLL" and np.isnan(filled.coords[3]).all()
    assert read_pdb(str(path), chain="B").sequence == "S"
    with pytest.raises(ValueError, match=r"t.pdb:1: no ATOM records for chain 'C'"):
        read_pdb(str(path), chain="C")

    bad = tmp_path / "bad.pdb"
    bad.write_text(lines[1] + "\n" + lines[2][:30] + "   x.xxx   0.000   0.000\n")
    with pytest.raises(ValueError, match=r"bad.pdb:2: malformed ATOM record"):
        read_pdb(str(bad))


def test_json_reader_and_errors(tmp_path):
    good = [
        {
            "name": "p",
            "seq": "ag",
            "coords": [[[0, 0, 0], [1, 0, 0], [2, 1, 0], None], None],
            "cath": ["1.10"],
        }
    ]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(good))
    (chain,) = read_protein_json(str(path))
    assert chain.sequence == "AG" and chain.metadata == {"cath": ["1.10"]}
    assert np.isnan(chain.coords[0, 3]).all() and np.isnan(chain.coords[1]).all()
    cases = [
        ("[]", r"expected a non-empty list"),
        ('[{"name": "x"}]', r"record 0: needs the keys"),
        (
            '[{"name": "x", "seq": "AA", "coords": [null]}]',
            r"record 0 \(x\): 1 coordinate rows for 2",
        ),
        (
            '[{"name": "x", "seq": "A", "coords": [[[0,0,0]]]}]',
            r"residue 1 has 1 atoms, expected 4",
        ),
        ('[{"name": "x",\n "seq": }]', r"bad.json:2: invalid JSON"),
    ]
    for text, message in cases:
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_protein_json(str(bad))


def test_contact_map_brute_force_and_masking():
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 20, size=(12, 4, 3)).astype(np.float32)
    coords[4, 1] = np.nan  # residue 5 has no C-alpha
    chain = ProteinChain("r", "A" * 12, coords)
    contacts, mask = contact_map(chain, threshold=8.0)
    assert mask.tolist() == [1.0] * 4 + [0.0] + [1.0] * 7
    for i in range(12):
        for j in range(12):
            d = np.linalg.norm(coords[i, 1] - coords[j, 1])
            expected = i != j and mask[i] and mask[j] and d < 8.0
            assert contacts[i, j] == float(expected), (i, j)
    np.testing.assert_array_equal(contacts, contacts.T)
    with pytest.raises(ValueError, match="atom='CG'"):
        contact_map(chain, atom="CG")


@needs_shared
def test_shared_structures():
    ts50 = read_protein_json(os.path.join(SHARED_PROTEIN, "ts50.json"))
    cath = read_protein_json(os.path.join(SHARED_PROTEIN, "cath.json"))
    assert len(ts50) == 50 and (min(map(len, ts50)), max(map(len, ts50))) == (79, 173)
    assert len(cath) == 157 and (min(map(len, cath)), max(map(len, cath))) == (40, 299)
    assert sum(int(np.isnan(c.coords).any(-1).sum()) for c in cath) == 44  # null atoms
    assert not {c.name for c in ts50} & {c.name for c in cath}
    pdb_dir = os.path.join(SHARED_PROTEIN, "pfam_domains", "pdb")
    chains = [read_pdb(os.path.join(pdb_dir, f)) for f in sorted(os.listdir(pdb_dir))]
    assert len(chains) == 40 and min(map(len, chains)) == 50
    # Virtual C-beta against the real one, on every residue that has one.
    errors = []
    for chain in chains:
        real = ~np.isnan(chain.cb).any(-1)
        errors.append(np.linalg.norm(virtual_cb(chain.coords)[real] - chain.cb[real], axis=-1))
    errors = np.concatenate(errors)
    errors = errors[np.isfinite(errors)]
    assert np.median(errors) < 0.1 and np.percentile(errors, 99) < 0.5, np.percentile(errors, 99)
    ca, _ = contact_map(chains[0], atom="CA")
    cb, _ = contact_map(chains[0], atom="CB")
    assert ca.sum() > 0 and cb.sum() > 0 and not np.array_equal(ca, cb)


def test_casp_rr_writer(tmp_path):
    seq = "A" * 60
    prob = np.zeros((60, 60))
    prob[0, 30] = 0.9
    prob[2, 5] = 0.8  # separation 3: below min_separation
    prob[10, 40] = 0.95
    path = tmp_path / "t.rr"
    write_casp_rr(str(path), "T1", seq, prob, top=2)
    lines = path.read_text().splitlines()
    assert lines[:5] == ["PFRMAT RR", "TARGET T1", "MODEL 1", "A" * 50, "A" * 10]
    assert lines[5:] == ["11 41 0 8 0.9500", "1 31 0 8 0.9000", "END"]
    with pytest.raises(ValueError, match=r"`prob` must have shape \(60, 60\)"):
        write_casp_rr(str(path), "T1", seq, prob[:5])
