"""RNA formats: readers, writers, round trips, errors, real files, synthetic data."""

import dataclasses
import os

import numpy as np
import pytest

from keras_symconv import data
from keras_symconv.data import RNAStructure

SHARED_RNA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "rna")
needs_shared = pytest.mark.skipif(
    not os.path.isdir(SHARED_RNA), reason="../shared/data/rna is absent (real data not mounted)"
)

PSEUDOKNOT = RNAStructure.from_pairs(
    "pk", "GGGAAACCCAGGGUUUCCCU", [(0, 8), (1, 7), (4, 12), (5, 11), (14, 19)]
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_ct_with_free_text_header(tmp_path):
    path = write(
        tmp_path,
        "x.ct",
        "Filename: x.ct\nOrganism: Someone\n    6   dG = -1.0  [initially 0.0]\n"
        "    1 G     0     2     6     1\n    2 g     1     3     5     2\n"
        "    3 A     2     4     0     3\n    4 t     3     5     0     4\n"
        "    5 C     4     6     2     5\n    6 N     5     0     1     6\n",
    )
    (rec,) = data.read_ct(path, family="fam")
    assert rec.sequence == "GGAUCN"
    assert rec.pairs == [(0, 5), (1, 4)]
    assert rec.family == "fam" and rec.name == "x.ct"
    np.testing.assert_array_equal(rec.one_hot().argmax(-1), [2, 2, 0, 3, 1, 4])


def test_round_trips(tmp_path):
    structures = data.synthetic_rna_dataset(4, 30, 80, seed=3) + [PSEUDOKNOT]
    ct = str(tmp_path / "all.ct")
    data.write_ct(ct, structures)
    back = data.read_ct(ct)
    assert [r.sequence for r in back] == [s.sequence for s in structures]
    for a, b in zip(back, structures, strict=True):
        np.testing.assert_array_equal(a.partners, b.partners)
    db = str(tmp_path / "all.db")
    data.write_dot_bracket(db, structures)
    assert data.read_dot_bracket(db) == [dataclasses.replace(s, family=None) for s in structures]
    for s in structures:
        path = str(tmp_path / f"{s.name}.bpseq")
        data.write_bpseq(path, s)
        (r,) = data.read_bpseq(path)
        assert r.sequence == s.sequence
        np.testing.assert_array_equal(r.partners, s.partners)


def test_dot_bracket_pseudoknots():
    assert data.to_dot_bracket(PSEUDOKNOT) == "((..[[.))..]].(....)"
    partners = data.parse_dot_bracket("((..[[..))..]]..(..)")
    assert RNAStructure("s", "A" * 20, partners).pairs == [
        (0, 9),
        (1, 8),
        (4, 13),
        (5, 12),
        (16, 19),
    ]
    assert data.parse_dot_bracket("(<..)>Aa")[[0, 1, 6]].tolist() == [4, 5, 7]
    nested = data.synthetic_rna_dataset(1, seed=0)[0]
    assert set(data.to_dot_bracket(nested)) <= set("().")


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("cols.ct", "2 t\n1 G 0 2 2\n2 C 1 0 1 2\n", r"cols.ct:2: expected 6 columns, found 5"),
        (
            "range.ct",
            "2 t\n1 G 0 2 7 1\n2 C 1 0 0 2\n",
            r"range.ct:2: partner '7' is out of range 0..2",
        ),
        (
            "recip.ct",
            "3 t\n1 G 0 2 3 1\n2 C 1 3 0 2\n3 C 2 0 2 3\n",
            r"recip.ct:2: base 1 pairs with 3, but base 3 pairs with 2 \(non-reciprocal pair\)",
        ),
        ("base.ct", "2 t\n1 G 0 2 0 1\n2 X 1 0 0 2\n", r"base.ct:3: unknown base letter 'X'"),
        ("empty.ct", "", r"empty.ct:1: no structure found"),
        ("short.ct", "3 t\n1 G 0 2 0 1\n", r"short.ct:2: the header announces 3 bases"),
        ("cols.bpseq", "1 G 2\n2 C\n", r"cols.bpseq:2: expected 3 columns, found 2"),
        ("range.bpseq", "1 G 3\n2 C 0\n", r"range.bpseq:1: partner '3' is out of range 0..2"),
        ("empty.bpseq", "# nothing\n", r"empty.bpseq:1: no structure found"),
        ("bad.db", ">a\nGGAC\n((.)\n", r"bad.db:3: column 1: '\(' is never closed"),
        ("len.db", ">a\nGGAC\n(.)\n", r"len.db:3: structure has 3 characters, the sequence 4"),
        ("chars.db", ">a\nGGAC\n(?.)\n", r"chars.db:3: column 2: unknown structure character"),
        ("base.db", ">a\nGG#C\n(..)\n", r"base.db:2: unknown base letter '#'"),
        ("empty.db", "\n", r"empty.db:1: no record found"),
        ("bad.txt", "x\n0 1 5\n0 0 0\n0 0 0\n\n", r"bad.txt:2: base codes must be 0..4"),
        (
            "pairs.txt",
            "x\n0 1 2\n2 0 0\n1 0 0\n\n",
            r"pairs.txt:3: base 1 pairs with 2 \(non-reciprocal",
        ),
        ("empty.txt", "", r"empty.txt:1: empty file"),
        ("fmt.xyz", "whatever", r"fmt.xyz: unknown structure format '.xyz'"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError, match=message):
        data.read_structures(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        data.read_structures("/nonexistent/x.ct")


def test_fasta_sequences(tmp_path):
    path = write(tmp_path, "s.fa", ">one\nACGU\nacgt\n>two\nGGNRY\n")
    assert data.read_fasta_sequences(path) == [("one", "ACGUACGU"), ("two", "GGNRY")]
    assert data.one_hot("GGNRY")[:, 4].tolist() == [0, 0, 1, 1, 1]


def test_synthetic_dataset_is_seeded_nested_and_complementary():
    a = data.synthetic_rna_dataset(20, 40, 120, seed=7)
    assert a == data.synthetic_rna_dataset(20, 40, 120, seed=7)
    assert a != data.synthetic_rna_dataset(20, 40, 120, seed=8)
    allowed = {"GC", "CG", "AU", "UA", "GU", "UG"}
    paired = 0
    for s in a:
        assert 40 <= len(s) <= 120 and s.is_nested() and s.family == "synthetic"
        for i, j in s.pairs:
            assert s.sequence[i] + s.sequence[j] in allowed
            assert j - i - 1 >= 3 or any(i < k < j for k in s.partners[i + 1 : j])
        paired += 2 * len(s.pairs)
    fraction = paired / sum(len(s) for s in a)
    assert 0.3 < fraction < 0.8, fraction
    with pytest.raises(ValueError, match="count=0"):
        data.synthetic_rna_dataset(0)


@needs_shared
def test_real_ct_files_equal_their_strand16s_records():
    records = data.read_strand16s(os.path.join(SHARED_RNA, "strand16s", "test.txt"))
    assert len(records) == 35
    ct_files = data.read_structures(os.path.join(SHARED_RNA, "ct"))
    assert len(ct_files) == 35
    by_key = {(r.family, os.path.splitext(os.path.basename(r.name))[0]): r for r in records}
    for ct in ct_files:
        key = (ct.family, os.path.splitext(ct.name)[0])
        ref = by_key[key]
        assert (
            data.encode_sequence(ct.sequence).tolist()
            == data.encode_sequence(ref.sequence).tolist()
        ), key
        np.testing.assert_array_equal(ct.partners, ref.partners, err_msg=str(key))
    families = sorted({r.family for r in records})
    assert families == ["16s_extra", "16s_long", "16s_med", "16s_small", "5S", "intron", "rnasep"]


@needs_shared
def test_strand16s_split_sizes():
    sizes = {
        split: len(data.read_strand16s(os.path.join(SHARED_RNA, "strand16s", f"{split}.txt")))
        for split in ("train", "valid", "test")
    }
    assert sizes == {"train": 550, "valid": 28, "test": 35}
