import numpy as np
import pytest

from ml.neural.estimators import unit_vectors
from ml.neural.target import SimilarityTarget
from ml.regularize.targets import TARGETS, check_target, random_target


def _neural(n=40, d=30):
    rng = np.random.default_rng(0)
    return SimilarityTarget("neural-model", unit_vectors(rng.normal(size=(n, d))),
                            np.arange(n), np.zeros((n, 1, 36, 64), np.float32))


def test_random_target_is_a_valid_similarity_unrelated_to_the_images():
    ref = _neural()
    r = random_target(ref, seed=3)
    s = r.matrix()
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-5)
    assert np.linalg.eigvalsh(s.astype(np.float64)).min() > -1e-4  # PSD
    assert r.kind == "random" and r.factor.shape == ref.factor.shape
    np.testing.assert_array_equal(r.image_ids, ref.image_ids)
    iu = np.triu_indices(40, 1)
    assert abs(np.corrcoef(s[iu], ref.matrix()[iu])[0, 1]) < 0.2
    again = random_target(ref, seed=3)  # exact on purpose: the same path twice
    np.testing.assert_array_equal(again.factor, r.factor)


def test_unknown_target_lists_the_known_ones():
    for name in TARGETS:
        check_target(name)
    with pytest.raises(ValueError, match="neural-model"):
        check_target("brain")
