import numpy as np
import pytest

from ml.neural.estimators import similarity, unit_vectors
from ml.neural.target import (
    SimilarityTarget,
    _gram,
    average_factors,
    participation_ratio,
    shuffled,
    spectrum,
)
from tests.floats import assert_within, one_path, two_paths


def _target(n=12, d=9, seed=0, kind="neural-model"):
    rng = np.random.default_rng(seed)
    factor = unit_vectors(rng.normal(size=(n, d)))
    images = rng.uniform(size=(n, 1, 36, 64)).astype(np.float32)
    return SimilarityTarget(kind, factor, np.arange(n) + 100, images, {"scans": ["a"]})


def test_pairs_block_and_matrix_agree_with_the_full_similarity():
    rng = np.random.default_rng(1)
    resp = rng.normal(size=(15, 40))
    t = SimilarityTarget("neural-data", unit_vectors(resp), np.arange(15),
                         np.zeros((15, 1, 36, 64), np.float32))
    full = similarity(resp)
    np.testing.assert_allclose(t.matrix(), full, atol=1e-5)
    i, j = np.array([0, 3, 14]), np.array([5, 3, 2])
    np.testing.assert_allclose(t.pairs(i, j), full[i, j], atol=1e-5)
    np.testing.assert_allclose(t.block(np.array([1, 2]), np.array([7])), full[[1, 2]][:, [7]],
                               atol=1e-5)


def test_average_factor_reproduces_the_mean_of_scan_matrices():
    rng = np.random.default_rng(2)
    scans = [rng.normal(size=(10, a)) for a in (5, 30, 12)]
    factor = average_factors([unit_vectors(r) for r in scans])
    assert factor.shape == (10, 47)
    np.testing.assert_allclose(np.linalg.norm(factor, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(factor @ factor.T, np.mean([similarity(r) for r in scans], 0),
                               atol=1e-5)
    half = average_factors([unit_vectors(r) for r in scans], np.float16)
    assert half.dtype == np.float16
    assert np.abs(half.astype(np.float32) @ half.T.astype(np.float32) - factor @ factor.T
                  ).max() < 2e-3
    with pytest.raises(ValueError, match="same stimuli"):
        average_factors([unit_vectors(scans[0]), unit_vectors(scans[1][:5])])


def test_shuffle_keeps_the_value_distribution_but_moves_pairs():
    t = _target()
    s = shuffled(t, seed=3)
    a, b = t.matrix(), s.matrix()
    iu = np.triu_indices(len(t), 1)
    # the same dot products of unit rows (Σ|f_ik f_jk| ≤ 1), summed in another GEMM's order
    d = t.factor.shape[1]
    assert_within(np.sort(a[iu]), np.sort(b[iu]), two_paths(d, 1.0, np.float32))
    assert not np.allclose(a, b)
    assert s.kind == "shuffle" and s.meta["shuffled_from"] == "neural-model"
    np.testing.assert_array_equal(s.image_ids, t.image_ids)


def test_round_trip_through_bytes_keeps_everything():
    t = _target()
    back = SimilarityTarget.load(t.to_bytes())
    assert back.kind == t.kind and back.meta == t.meta
    np.testing.assert_array_equal(back.factor, t.factor)
    np.testing.assert_array_equal(back.image_ids, t.image_ids)
    np.testing.assert_array_equal(back.images, t.images)


def test_load_refuses_other_npz_files(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, factor=np.zeros((2, 2)), image_ids=np.arange(2),
             images=np.zeros((2, 1, 36, 64)), meta=np.array('{"format": "other"}'))
    with pytest.raises(ValueError, match="neuroreg-target/1"):
        SimilarityTarget.load(str(path))


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="agree on N"):
        SimilarityTarget("x", np.zeros((3, 2)), np.arange(4), np.zeros((3, 1, 36, 64)))


def test_pair_similarity_in_chunks_matches_one_product():
    from ml.neural.target import pair_similarity

    rng = np.random.default_rng(7)
    factor = unit_vectors(rng.normal(size=(50, 16))).astype(np.float16)
    i, j = rng.integers(0, 50, (2, 1003))
    f64 = factor.astype(np.float64)  # float16 products are exact in float64
    full = f64 @ f64.T
    # float32 sums of 16 products (Σ|f_ik f_jk| ≤ 1), in whatever order the chunks take
    assert_within(pair_similarity(factor, i, j, chunk=7), full[i, j], one_path(16, 1.0))
    assert pair_similarity(factor, i.reshape(17, 59), j.reshape(17, 59)).shape == (17, 59)


def _orthonormal(rng, rows, cols):
    q, _ = np.linalg.qr(rng.normal(size=(rows, cols)))
    return q


@pytest.mark.parametrize("wide", [False, True])
def test_spectrum_of_a_known_factor_is_its_squared_singular_values(wide):
    """F = Q diag(σ) Wᵀ has S = Q diag(σ²) Qᵀ: λ = σ² = 5, 3, 1, 0.5, 0.5 (fractions 0.5,
    0.3, 0.1, 0.05, 0.05), PR = 10²/35.5, and 50 / 90 / 99 % take 1 / 3 / 5 components,
    for a tall factor (D < N: from FᵀF) and a wide one (D > N)."""
    rng = np.random.default_rng(0)
    n, d = (40, 7) if not wide else (8, 30)
    lam = np.array([5.0, 3.0, 1.0, 0.5, 0.5])
    f = _orthonormal(rng, n, 5) * np.sqrt(lam) @ _orthonormal(rng, d, 5).T
    sp = spectrum(f)
    np.testing.assert_allclose(sp.fractions, [0.5, 0.3, 0.1, 0.05, 0.05], atol=1e-12)
    assert sp.participation_ratio == pytest.approx(100 / 35.5, rel=1e-12)
    assert sp.participation_ratio == pytest.approx(participation_ratio(f), rel=1e-12)
    assert (sp.components_50, sp.components_90, sp.components_99) == (1, 3, 5)
    assert sp.rank == 5 and sp.n == n
    if not wide:  # FᵀF summed a few rows at a time is FᵀF
        np.testing.assert_allclose(_gram(f, chunk=7), f.T @ f, atol=1e-12)
    capped = spectrum(f, max_components=2)  # a shorter list; the summaries use all λ
    np.testing.assert_allclose(capped.fractions, [0.5, 0.3], atol=1e-12)
    assert capped.participation_ratio == sp.participation_ratio
    assert capped.components_99 == 5 and capped.rank == 5


def test_spectrum_of_one_direction_and_of_a_flat_one():
    rng = np.random.default_rng(1)
    one = np.tile(unit_vectors(rng.normal(size=(1, 6)), mean=np.zeros(6)), (20, 1))
    sp = spectrum(one)  # S = 1 everywhere: rank 1
    np.testing.assert_allclose(sp.fractions, [1.0])
    assert sp.participation_ratio == pytest.approx(1.0)
    assert (sp.components_50, sp.components_90, sp.components_99, sp.n) == (1, 1, 1, 20)
    flat = spectrum(np.eye(10, dtype=np.float32))  # S = I: every stimulus its own direction
    np.testing.assert_allclose(flat.fractions, np.full(10, 0.1), atol=1e-7)
    assert flat.participation_ratio == pytest.approx(10.0)
    assert (flat.components_50, flat.components_90, flat.components_99) == (5, 9, 10)
    empty = spectrum(np.zeros((4, 3)))
    assert empty.fractions.size == 0 and empty.participation_ratio == 0.0
    with pytest.raises(ValueError, match="max_components"):
        spectrum(one, max_components=0)
