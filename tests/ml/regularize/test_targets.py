import numpy as np
import pytest

from ml.neural.estimators import unit_vectors
from ml.neural.target import SimilarityTarget
from ml.regularize.targets import (
    TARGETS,
    check_target,
    participation_ratio,
    pixel_target,
    random_matched_target,
    random_target,
)


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


def test_pixel_target_is_the_similarity_of_the_centred_flattened_images():
    from ml.neural.stimuli import natural_patches

    images = natural_patches(50, seed=4)  # 2,304 pixels > 50 stimuli: the factor is reduced
    ref = SimilarityTarget("neural-model", _neural(50).factor, np.arange(50), images)
    p = pixel_target(ref)
    flat = images.reshape(50, -1).astype(np.float64)
    e = flat - flat.mean(axis=0)  # unit_vectors' centring: the mean image over the stimuli
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert p.kind == "pixel" and p.factor.shape == (50, 50) and p.meta["pixels"] == 2304
    np.testing.assert_allclose(p.matrix(), e @ e.T, atol=2e-6)  # float32 rounding
    np.testing.assert_array_equal(p.image_ids, ref.image_ids)
    # fewer pixels than stimuli: the centred unit vectors themselves
    small = SimilarityTarget("neural-model", _neural(50).factor, np.arange(50),
                             images[:, :, :2, :3].copy())
    np.testing.assert_array_equal(pixel_target(small).factor,
                                  unit_vectors(small.images.reshape(50, -1)))


@pytest.fixture(scope="module")
def truth():
    """A realistic factor: a simulated V1 population's S_true over natural images."""
    from ml.neural.simulate import SimulationConfig, simulate

    sim = simulate(SimulationConfig(n_images=300, n_oracle=10, oracle_repeats=2, n_scans=1,
                                    neurons_per_scan=200, seed=1))
    return SimilarityTarget("neural-model", sim.truth, sim.image_ids,
                            sim.scans[0].images)


def test_random_matched_has_the_sources_spectrum_where_random_does_not(truth):
    m = random_matched_target(truth, seed=3)
    s = m.matrix().astype(np.float64)
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-5)
    ev, ev_source = (np.linalg.eigvalsh(x)[::-1] for x in (s, truth.matrix().astype(np.float64)))
    np.testing.assert_allclose(ev, ev_source, atol=2e-3)  # the whole spectrum, not just PR
    pr_source, pr = participation_ratio(truth.factor), participation_ratio(m.factor)
    assert m.meta["participation_ratio_source"] == pytest.approx(pr_source)
    assert m.meta["participation_ratio"] == pytest.approx(pr)
    assert pr == pytest.approx(pr_source, rel=0.02)
    pr_random = participation_ratio(random_target(truth, seed=3).factor)
    assert pr_random > 3 * pr_source  # plain random spreads over many more dimensions
    iu = np.triu_indices(len(truth), 1)
    assert abs(np.corrcoef(s[iu], truth.matrix()[iu])[0, 1]) < 0.2  # no image relation
    again = random_matched_target(truth, seed=3)
    np.testing.assert_array_equal(again.factor, m.factor)
    assert not np.array_equal(random_matched_target(truth, seed=4).factor, m.factor)
    assert m.kind == "random-matched" and m.factor.dtype == truth.factor.dtype


def test_participation_ratio_counts_the_dimensions_s_spans():
    rng = np.random.default_rng(0)
    one = np.tile(unit_vectors(rng.normal(size=(1, 5)), mean=np.zeros(5)), (10, 1))
    assert participation_ratio(one) == pytest.approx(1.0)  # S = 1 everywhere: one direction
    q, _ = np.linalg.qr(rng.normal(size=(12, 4)))
    assert participation_ratio(q) == pytest.approx(4.0)  # a flat spectrum over rank 4
    assert participation_ratio(q.T) == pytest.approx(4.0)  # wide factors alike
