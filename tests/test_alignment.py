"""Alignments: reading, local alignment, and the checked mapping onto a chain."""

import os

import numpy as np
import pytest

from keras_symconv.data import features
from keras_symconv.data.alignment import (
    local_alignment,
    map_alignment_to_chain,
    read_alignment,
)
from keras_symconv.data.protein import read_pdb

SHARED_PFAM = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "protein", "pfam_domains"
)


def test_read_alignment_and_errors(tmp_path):
    path = tmp_path / "a.fa"
    path.write_text(">one\nAC-D\nEF\n>two\nac.def\n")
    aln = read_alignment(str(path))
    assert aln.names == ["one", "two"] and aln.rows == ["AC-DEF", "ac.def"] and aln.columns == 6
    path.write_text(">one\nACD\n>two\nAC\n")
    with pytest.raises(ValueError, match=r"a.fa:3: row has 2 columns, the first row 3"):
        read_alignment(str(path))
    path.write_text("ACD\n")
    with pytest.raises(ValueError, match=r"a.fa:1: expected a '>name' line"):
        read_alignment(str(path))


def test_local_alignment():
    score, pairs = local_alignment("ACDEFGHIK", "WWCDEFGYY")
    assert pairs == [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6)] and score == 10
    score, pairs = local_alignment("MKTAYIAKQR", "MKTAIAKQR")  # one deletion
    assert (0, 0) in pairs and (9, 8) in pairs and score == 2 * 9 - 2


def test_mapping_onto_a_chain(tmp_path):
    rng = np.random.default_rng(0)
    chain = "".join(rng.choice(list(features.AMINO_ACIDS), size=60))
    # Row 0 is residues 10..49 of the chain with gap columns inserted.
    domain = chain[10:50]
    row0 = domain[:15] + "--" + domain[15:] + "-"
    others = [
        "".join(rng.choice(list(features.AMINO_ACIDS + "-"), size=len(row0))) for _ in range(5)
    ]
    path = tmp_path / "d.fa"
    path.write_text("".join(f">s{k}\n{r}\n" for k, r in enumerate([row0] + others)))
    codes, info = map_alignment_to_chain(read_alignment(str(path)), chain)
    assert info == {"row": "s0", "identity": 1.0, "aligned": 40}
    assert codes.shape == (6, 60)
    assert np.all(codes[:, :10] == 20) and np.all(codes[:, 50:] == 20)
    full = features.encode_alignment([row0] + others)
    np.testing.assert_array_equal(codes[:, 10:25], full[:, :15])
    np.testing.assert_array_equal(codes[:, 25:50], full[:, 17:42])
    with pytest.raises(ValueError, match=r"d.fa: no row matches the chain"):
        map_alignment_to_chain(read_alignment(str(path)), "".join(reversed(chain)))


@pytest.mark.skipif(not os.path.isdir(SHARED_PFAM), reason="../shared/data/protein is absent")
def test_pfam_domain_mapping():
    aln = read_alignment(os.path.join(SHARED_PFAM, "aln", "PF07686.align.80"))
    chain = read_pdb(os.path.join(SHARED_PFAM, "pdb", "2PND_A.pdb"))
    codes, info = map_alignment_to_chain(aln, chain.sequence)
    assert info["identity"] == 1.0 and info["aligned"] == 116
    assert codes.shape == (len(aln.rows), len(chain))
    pair = features.pair_features(len(chain), codes)
    np.testing.assert_allclose(pair, np.swapaxes(pair, 0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="no row matches the chain"):
        map_alignment_to_chain(
            aln, read_pdb(os.path.join(SHARED_PFAM, "pdb", "2PPN_A.pdb")).sequence
        )
