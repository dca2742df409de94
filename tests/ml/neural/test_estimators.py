import numpy as np
import pytest

from ml.neural import estimators as est


def _trials(rng, repeats=(3, 4, 2, 5), neurons=6):
    ids = np.repeat(np.arange(len(repeats)) + 10, repeats)
    return ids, rng.normal(size=(ids.size, neurons))


def test_eq3_oracle_similarity_equals_brute_force_over_trial_pairs():
    rng = np.random.default_rng(0)
    ids, resp = _trials(rng)
    oracle = np.unique(ids)
    unit = est.unit_vectors(resp)
    fast = est.oracle_similarity(unit, ids, oracle)
    brute = np.zeros_like(fast)
    for a, i in enumerate(oracle):
        for b, j in enumerate(oracle):
            vals = [
                float(unit[p] @ unit[q])
                for p in np.flatnonzero(ids == i)
                for q in np.flatnonzero(ids == j)
                if not (i == j and p == q)  # Eq. 3: S_{it,it} = 1 excluded
            ]
            brute[a, b] = np.mean(vals)
    np.testing.assert_allclose(fast, brute, atol=1e-6)
    assert np.all(np.diag(fast) < 1.0)  # the excluded self-pairs would push it to 1


def test_eq1_snr_weights_match_definition_and_rank_reliable_neurons():
    rng = np.random.default_rng(1)
    n_img, reps = 20, 8
    signal = rng.normal(size=(n_img, 1)) * np.array([1.0, 1.0, 0.0])
    noise_sd = np.array([0.1, 1.0, 1.0])
    ids = np.repeat(np.arange(n_img), reps)
    resp = signal[ids] + rng.normal(size=(ids.size, 3)) * noise_sd
    w = est.snr_weights(resp, ids, np.arange(n_img))
    means = np.stack([resp[ids == i].mean(0) for i in range(n_img)])
    var_t = np.stack([resp[ids == i].var(0, ddof=1) for i in range(n_img)])
    np.testing.assert_allclose(w, np.sqrt(means.var(0) / var_t.mean(0)))
    assert w[0] > 5 * w[1] > 0  # same signal, 10x less noise
    assert w[2] < w[1]  # no signal at all


def test_snr_weight_of_a_silent_neuron_is_zero_not_nan():
    ids = np.repeat(np.arange(3), 2)
    resp = np.zeros((6, 2))
    resp[:, 1] = [1, 1.1, 2, 2.1, 0, 0.2]
    w = est.snr_weights(resp, ids, np.arange(3))
    assert w[0] == 0.0 and np.isfinite(w[1]) and w[1] > 0


def test_eq2_similarity_is_centered_cosine():
    rng = np.random.default_rng(2)
    r = rng.normal(size=(7, 30)) + 5.0
    w = rng.uniform(0.1, 2, 30)
    s = est.similarity(r, w)
    scaled = r * w
    c = scaled - scaled.mean(0)
    expect = (c @ c.T) / np.outer(np.linalg.norm(c, axis=1), np.linalg.norm(c, axis=1))
    np.testing.assert_allclose(s, expect, atol=1e-5)
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-5)


def test_eq4_scan_fluctuations_sum_to_zero_over_scans():
    rng = np.random.default_rng(3)
    mats = rng.normal(size=(3, 4, 4))
    mats = (mats + mats.transpose(0, 2, 1)) / 2
    d = est.scan_fluctuations(mats).reshape(3, -1)
    np.testing.assert_allclose(d.sum(0), 0.0, atol=1e-12)
    i, j = np.triu_indices(4)
    np.testing.assert_allclose(d[1], (mats[1] - mats.mean(0))[i, j])
    with pytest.raises(ValueError, match="H ≥ 2"):
        est.scan_fluctuations(mats[:1])


def test_eq5_repeat_fluctuations_average_to_zero_per_image():
    rng = np.random.default_rng(4)
    ids, resp = _trials(rng)
    oracle = np.unique(ids)
    unit = est.unit_vectors(resp)
    s = est.oracle_similarity(unit, ids, oracle)
    d = est.repeat_fluctuations(unit, ids, oracle, s)
    counts = [3, 4, 2, 5]
    assert d.size == sum(c * (c - 1) // 2 for c in counts)
    start = 0
    for c in counts:  # S_ii^oracle is the mean over repeat pairs, so deviations cancel
        n = c * (c - 1) // 2
        assert abs(d[start:start + n].sum()) < 1e-9
        start += n


def test_trial_pair_scatter_pairs_each_trial_value_with_its_oracle_mean():
    rng = np.random.default_rng(5)
    ids, resp = _trials(rng)
    oracle = np.unique(ids)
    unit = est.unit_vectors(resp)
    s = est.oracle_similarity(unit, ids, oracle)
    data, target = est.trial_pair_scatter(unit, ids, oracle, s)
    assert data.size == sum(a * b for k, a in enumerate([3, 4, 2, 5])
                            for b in [3, 4, 2, 5][k + 1:])
    # grouped by oracle pair, the single-trial values average to S^oracle
    assert np.isclose(np.mean(data[target == s[0, 1]]), s[0, 1])


def test_pearson_and_offdiag():
    a = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(est.offdiag(a), [1, 2, 5])
    assert est.pearson([1, 2, 3], [2, 4, 6.5]) > 0.99
    assert est.pearson([1, 1, 1], [1, 2, 3]) == 0.0
