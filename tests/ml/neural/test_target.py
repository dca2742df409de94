import numpy as np
import pytest

from ml.neural.estimators import similarity, unit_vectors
from ml.neural.target import SimilarityTarget, average_factors, shuffled
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
