"""1D and 2D protein features against hand-computed values and NumPy loops."""

import numpy as np
import pytest

from keras_symconv.data import features


def test_sequence_features_columns():
    f = features.sequence_features("IWKDX")
    assert f.shape == (5, features.N1D)
    assert f[0, features.AMINO_ACIDS.index("I")] == 1 and f[0, 21] == pytest.approx(1.0)
    assert f[1, 23] == pytest.approx(227.8 / 230)
    assert (f[2, 22], f[3, 22], f[0, 22]) == (1.0, -1.0, 0.0)
    assert f[4, 20] == 1 and f[4, :20].sum() == 0 and f[4, 21:24].sum() == 0
    np.testing.assert_allclose(f[:, 24], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(f[:, :21].sum(1), 1)
    profile = np.full((5, 21), 1 / 21, np.float32)
    np.testing.assert_allclose(features.sequence_features("IWKDX", profile)[:, :21], profile)
    assert features.sequence_features("IWKDX", profile, "join").shape == (5, 46)
    with pytest.raises(ValueError, match=r"`profile` must have shape \(5, 21\)"):
        features.sequence_features("IWKDX", profile[:4])
    with pytest.raises(ValueError, match="profile_mode='both'"):
        features.sequence_features("IWKDX", profile, "both")


def test_encode_alignment_and_weights():
    codes = features.encode_alignment(["AC-D", "ac.d", "WXYZ"])
    assert codes[0].tolist() == [0, 1, 20, 2] and codes[1].tolist() == codes[0].tolist()
    assert codes[2].tolist() == [18, 20, 19, 20]
    np.testing.assert_allclose(features.sequence_weights(codes, 0.8), [0.5, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"x.aln: sequence 2 has 3 columns, the first has 4"):
        features.encode_alignment(["ACDE", "ACD"], where="x.aln")
    profile = features.alignment_profile(codes)
    assert profile.shape == (4, 21) and profile[0, 0] == pytest.approx(2 / 3)
    np.testing.assert_allclose(profile.sum(1), 1, rtol=1e-6)


def _mi_loops(codes, lam):
    n, length = codes.shape
    q = 21
    mi = np.zeros((length, length))
    for i in range(length):
        for j in range(length):
            fi = np.bincount(codes[:, i], minlength=q) / n
            fj = np.bincount(codes[:, j], minlength=q) / n
            fij = np.zeros((q, q))
            for a, b in zip(codes[:, i], codes[:, j], strict=True):
                fij[a, b] += 1 / n
            fi = (1 - lam) * fi + lam / q
            fj = (1 - lam) * fj + lam / q
            fij = (1 - lam) * fij + lam / q**2
            mi[i, j] = sum(
                fij[a, b] * np.log(fij[a, b] / (fi[a] * fj[b])) for a in range(q) for b in range(q)
            )
    off = ~np.eye(length, dtype=bool)
    row = np.array([mi[i][off[i]].mean() for i in range(length)])
    apc = mi - np.outer(row, row) / mi[off].mean()
    np.fill_diagonal(apc, 0)
    return apc


def planted(rng, n=200, length=7):
    codes = rng.integers(0, 20, size=(n, length)).astype(np.int8)
    codes[:, 4] = (codes[:, 1] * 7 + 3) % 20  # column 4 is a function of column 1
    return codes


def test_mutual_information_matches_loops_and_finds_the_planted_pair():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 21, size=(25, 5)).astype(np.int8)
    np.testing.assert_allclose(
        features.mutual_information_apc(small, pseudocount=0.05), _mi_loops(small, 0.05), atol=1e-5
    )
    codes = planted(rng)
    for score in (features.mutual_information_apc(codes), features.covariance_coupling_apc(codes)):
        np.testing.assert_allclose(score, score.T, atol=1e-6)
        assert np.all(np.diag(score) == 0)
        upper = np.triu(score, 1)
        assert np.unravel_index(np.argmax(upper), upper.shape) == (1, 4)


def test_pair_features_symmetric_with_and_without_alignment():
    rng = np.random.default_rng(1)
    codes = planted(rng, length=6)
    with_msa = features.pair_features(6, codes)
    without = features.pair_features(6)
    assert with_msa.shape == without.shape == (6, 6, features.N2D)
    np.testing.assert_allclose(with_msa, np.swapaxes(with_msa, 0, 1), atol=1e-6)
    assert np.all(without[..., :2] == 0) and with_msa[1, 4, 0] > 0
    np.testing.assert_allclose(
        without[..., 2], np.log1p(np.abs(np.subtract.outer(range(6), range(6))))
    )
    with pytest.raises(ValueError, match=r"one column per residue \(6\)"):
        features.pair_features(6, codes[:, :5])
