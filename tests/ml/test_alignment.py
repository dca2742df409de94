"""The alignment evaluation (issue 38, item 1): RSA against rsatoolbox, FEVE against a
per-neuron loop of Sensorium's formula, CKA's known properties, a ridge readout that never
sees its test fold, and the whole evaluation on the simulated recording."""

import json

import numpy as np
import pytest
from scipy.stats import ortho_group, pearsonr, spearmanr

from ml.evaluate.alignment import (
    NO_REPEATS,
    AlignmentConfig,
    Responses,
    alignment,
    feve,
    kernel_cka,
    linear_cka,
    oracle_reference,
    rdm_correlations,
    ridge_cv_predictions,
    split_half_spearman,
)
from ml.neural import estimators as est
from ml.neural.simulate import SimulationConfig, simulate
from ml.neural.uncertainty import noise_ceiling


def similarity_pair(n=25, d=40, noise=1.0, seed=0):
    """Two similarity matrices (Eq. 2) of noisy copies of one representation."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return (est.similarity(x + noise * rng.normal(size=x.shape)).astype(np.float64),
            est.similarity(x + noise * rng.normal(size=x.shape)).astype(np.float64))


def population(n=120, neurons=40, repeats=4, latent=6, noise=1.0, seed=0):
    """Low-rank signal per stimulus and its repeats (signal + Gaussian noise); returns
    the latent factors, the signal, the trials and their stimulus rows."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, latent))
    signal = z @ rng.normal(size=(latent, neurons)) / np.sqrt(latent) + rng.normal(size=neurons)
    rows = np.repeat(np.arange(n), repeats)
    trials = signal[rows] + noise * rng.normal(size=(len(rows), neurons))
    return z, signal, trials, rows


# --- RSA -------------------------------------------------------------------------

@pytest.mark.parametrize("ties", [False, True])
def test_rdm_comparisons_agree_with_rsatoolbox(ties):
    """Pearson = rsatoolbox 'corr', Spearman = 'spearman' (and 'rho-a' when nothing is
    tied) on RDMs 1 − S, to 1e-6."""
    rsa = pytest.importorskip("rsatoolbox")
    a, b = similarity_pair(seed=1)
    if ties:  # few distinct values: many tied pairs in both
        a, b = np.round(a, 1), np.round(b, 1)
    ours = rdm_correlations({"a": a, "b": b})
    iu = np.triu_indices(len(a), k=1)
    rdm_a = rsa.rdm.RDMs(dissimilarities=(1 - a)[iu][None])
    rdm_b = rsa.rdm.RDMs(dissimilarities=(1 - b)[iu][None])
    r = rsa.rdm.compare(rdm_a, rdm_b, method="corr")[0, 0]
    rho = rsa.rdm.compare(rdm_a, rdm_b, method="spearman")[0, 0]
    assert ours["pearson"][0, 1] == pytest.approx(r, abs=1e-6)
    assert ours["spearman"][0, 1] == pytest.approx(rho, abs=1e-6)
    if not ties:
        rho_a = rsa.rdm.compare(rdm_a, rdm_b, method="rho-a")[0, 0]
        assert ours["spearman"][0, 1] == pytest.approx(rho_a, abs=1e-6)
    assert ours["pearson"][0, 0] == pytest.approx(1.0)


def test_a_bootstrap_replicate_is_the_resampled_rdms_correlation():
    """One replicate equals Pearson and Spearman over the explicitly resampled matrix's
    pairs of distinct originals (weighted mid-ranks = ranks of the written-out multiset)."""
    a, b = similarity_pair(n=20, seed=2)
    b = np.round(b, 2)  # ties among originals too
    out = rdm_correlations({"a": a, "b": b}, replicates=1, seed=7)
    idx = np.random.default_rng(7).integers(0, 20, 20)
    p, q = np.triu_indices(20, k=1)
    keep = idx[p] != idx[q]
    x, y = a[idx[p], idx[q]][keep], b[idx[p], idx[q]][keep]
    assert out["pearson_ci"][0, 1, 0] == pytest.approx(pearsonr(x, y).statistic, abs=1e-10)
    assert out["spearman_ci"][0, 1, 0] == pytest.approx(spearmanr(x, y).statistic, abs=1e-10)


def test_bootstrap_intervals_hold_the_estimate_and_shrink_with_more_stimuli():
    widths = []
    for n in (30, 120):
        a, b = similarity_pair(n=n, d=60, noise=1.5, seed=3)
        out = rdm_correlations({"a": a, "b": b}, replicates=200, seed=0)
        for method in ("pearson", "spearman"):
            lo, hi = out[f"{method}_ci"][0, 1]
            assert lo < out[method][0, 1] < hi, (n, method, lo, hi)
        widths.append(np.diff(out["pearson_ci"][0, 1])[0])
    assert widths[1] < 0.7 * widths[0]  # ~1/√N: half as wide at 4× the stimuli


# --- FEVE ------------------------------------------------------------------------

def reference_feve(trials_per_image, predictions):
    """The published formula (Sensorium / neuralpredictors ``fev``) neuron by neuron."""
    fev, fe = [], []
    for a in range(predictions.shape[1]):
        all_trials = np.concatenate([t[:, a] for t in trials_per_image])
        total = np.var(all_trials, ddof=1)
        noise = np.mean([np.var(t[:, a], ddof=1) for t in trials_per_image])
        sq = np.concatenate([(t[:, a] - predictions[i, a]) ** 2
                             for i, t in enumerate(trials_per_image)])
        fev.append((total - noise) / total)
        fe.append(1 - (np.mean(sq) - noise) / (total - noise))
    return np.array(fev), np.array(fe)


def test_feve_matches_a_per_neuron_loop_of_the_published_formula():
    rng = np.random.default_rng(0)
    n, a = 15, 12
    repeats = rng.integers(2, 7, n)  # unequal repeats
    rows = np.repeat(np.arange(n), repeats)
    signal = rng.normal(size=(n, a))
    trials = signal[rows] + rng.normal(size=(len(rows), a)) * rng.uniform(0.3, 2, a)
    pred = signal + 0.5 * rng.normal(size=signal.shape)
    order = rng.permutation(len(rows))  # trials need not be grouped by stimulus
    ours = feve(trials[order], rows[order], pred)
    fev, fe = reference_feve([trials[rows == i] for i in range(n)], pred)
    np.testing.assert_allclose(ours["fev"], fev, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours["feve"], fe, atol=1e-6, rtol=0)


# --- CKA -------------------------------------------------------------------------

def test_linear_cka_properties_and_the_feature_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 30))
    y = np.tanh(x[:, :20]) + 0.5 * rng.normal(size=(50, 20))
    c = linear_cka(x, y)
    assert linear_cka(x, x) == pytest.approx(1.0)
    q = ortho_group.rvs(30, random_state=1)
    assert linear_cka(x @ q, y) == pytest.approx(c, abs=1e-10)  # orthogonal transform
    assert linear_cka(3.7 * x, 0.2 * y) == pytest.approx(c, abs=1e-10)  # isotropic scale
    assert linear_cka(x + 5.0, y) == pytest.approx(c, abs=1e-10)  # a shift is centred away
    xc, yc = x - x.mean(0), y - y.mean(0)
    direct = (np.linalg.norm(yc.T @ xc) ** 2
              / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))
    assert c == pytest.approx(direct, abs=1e-10)
    assert 0 < c < 1
    assert kernel_cka(np.ones((5, 5)), np.eye(5)) == 0.0  # a constant kernel


# --- ridge readout -----------------------------------------------------------------

def test_a_stimulus_prediction_never_depends_on_its_own_responses():
    """Leakage check at the source: change the test stimulus' target arbitrarily and its
    out-of-fold prediction stays the same (penalty choice and centring included)."""
    z, signal, _, _ = population(n=40, seed=1)
    gram = z @ z.T
    alphas = AlignmentConfig().alpha_grid()
    pred, _ = ridge_cv_predictions(gram, signal, folds=5, alphas=alphas, seed=3)
    for i in (0, 17, 39):
        moved = signal.copy()
        moved[i] += 1e3 * np.random.default_rng(i).normal(size=signal.shape[1])
        again, _ = ridge_cv_predictions(gram, moved, folds=5, alphas=alphas, seed=3)
        np.testing.assert_allclose(again[i], pred[i], atol=1e-8)


def test_leave_one_out_penalty_choice_matches_refitting():
    """The penalty each neuron gets is the one with the least brute-force leave-one-out
    error on the training fold (ridge with an unpenalised intercept)."""
    from sklearn.linear_model import Ridge

    z, signal, _, _ = population(n=30, neurons=5, seed=2)
    x = np.hstack([z, np.random.default_rng(0).normal(size=(30, 20))])
    alphas = np.logspace(-3, 3, 7)
    _, chosen = ridge_cv_predictions(x @ x.T, signal, folds=3, alphas=alphas, seed=0)
    perm = np.random.default_rng(0).permutation(30)
    train = np.setdiff1d(perm, np.array_split(perm, 3)[0])
    xt, yt = x[train], signal[train]
    xc = xt - xt.mean(0)
    scale = np.linalg.eigvalsh(xc @ xc.T).clip(0).mean()
    errors = np.zeros((len(alphas), 5))
    for k, a in enumerate(alphas):
        for i in range(len(train)):
            rest = np.arange(len(train)) != i
            fit = Ridge(alpha=a * scale).fit(xt[rest], yt[rest])
            errors[k] += (fit.predict(xt[i:i + 1])[0] - yt[i]) ** 2
    np.testing.assert_array_equal(chosen[0], alphas[errors.argmin(0)])


def test_features_that_carry_the_signal_reach_the_expected_feve():
    z, signal, trials, rows = population(n=150, neurons=30, repeats=4, seed=4)
    rng = np.random.default_rng(5)
    feats = z @ rng.normal(size=(6, 80)) + 0.05 * rng.normal(size=(150, 80))
    ids = np.arange(1000, 1150)
    resp = Responses(trials, ids[rows])
    cfg = AlignmentConfig(replicates=0, fev_threshold=0.0, ceiling_splits=0)
    out = alignment({"layer": feats}, ids, responses=resp, config=cfg)
    expected = feve(trials, rows, signal)  # what the true signal itself scores
    p = out["predictivity"]["layer"]
    assert p["ceiling"] == 1.0 and p["neurons"] == 30
    assert p["feve"] == pytest.approx(np.mean(expected["feve"]), abs=0.05)
    assert p["feve"] > 0.9
    assert p["r2"] == pytest.approx(np.mean(expected["r2"]), abs=0.05)
    assert p["fev"] == pytest.approx(np.mean(expected["fev"]))  # r2's ceiling

    shuffled = feats[rng.permutation(150)]  # the same features, given to other stimuli
    out = alignment({"layer": shuffled}, ids, responses=resp, config=cfg)
    assert out["predictivity"]["layer"]["feve"] < 0.05


# --- the whole evaluation on the simulated recording -----------------------------------

@pytest.fixture(scope="module")
def recording():
    return simulate(SimulationConfig(n_images=120, n_oracle=30, oracle_repeats=6, n_scans=1,
                                     neurons_per_scan=120, seed=2))


@pytest.fixture(scope="module")
def held_out(recording):
    """Pixel and random-ReLU features of the oracle images, and their trials."""
    scan, ids = recording.scans[0], recording.oracle_ids
    pixels = scan.images[np.searchsorted(scan.image_ids, ids)].reshape(len(ids), -1)
    rng = np.random.default_rng(0)
    relu = np.maximum(pixels @ rng.normal(size=(pixels.shape[1], 200)), 0)
    return {"pixels": pixels, "relu": relu}, ids, Responses.from_scan(scan)


def test_the_simulated_recording_scores_beside_their_ceilings(recording, held_out):
    feats, ids, resp = held_out
    s_true = recording.s_true(ids)
    s_target = est.similarity(feats["relu"] + 50 * np.random.default_rng(1).normal(
        size=feats["relu"].shape))
    cfg = AlignmentConfig(replicates=30, ceiling_splits=10)
    out = alignment(feats, ids, gamma=[0.25, 0.75], s_target=s_target, s_true=s_true,
                    responses=resp, config=cfg)
    json.dumps(out, allow_nan=False)  # JSON-able, no NaN

    # S_oracle is the pipeline's (Eq. 1 weights, Eq. 3), its ceiling the repo's noise_ceiling
    s_oracle, data = oracle_reference(resp, ids)
    w = est.snr_weights(resp.trials, resp.trial_ids, ids)
    np.testing.assert_allclose(s_oracle, est.oracle_similarity(
        est.unit_vectors(resp.trials, weights=w), resp.trial_ids, ids), atol=1e-12)
    ref = noise_ceiling([data], splits=10, seed=0)
    c = out["ceilings"]
    assert c["s_oracle"]["ceiling"] == pytest.approx(ref["ceiling"])
    assert 0 < c["s_oracle"]["ceiling_spearman"] <= 1
    assert c["s_true"]["ceiling"] == 1.0 and c["s_target"]["ceiling"] is None
    assert split_half_spearman(data, splits=10, seed=0)["split_half_r"] == pytest.approx(
        ref["split_half_r"], abs=1e-5)  # the same split halves as noise_ceiling's

    rsa = out["rsa"]
    assert set(rsa) == {"pixels", "relu", "mix", "s_target"}
    assert set(rsa["mix"]) == {"s_target", "s_oracle", "s_true"}
    assert set(rsa["s_target"]) == {"s_oracle", "s_true"}  # what the target itself scores
    mix_s = 0.25 * est.similarity(feats["pixels"]) + 0.75 * est.similarity(feats["relu"])
    iu = np.triu_indices(len(ids), k=1)
    assert rsa["mix"]["s_true"]["pearson"]["r"] == pytest.approx(
        pearsonr(mix_s[iu], s_true[iu]).statistic, abs=1e-6)  # Eq. 10 against S_true
    for model in rsa.values():
        for ref_name, scores in model.items():
            for method in ("pearson", "spearman"):
                s = scores[method]
                assert np.isfinite(s["r"]) and s["ci"][0] <= s["r"] <= s["ci"][1]
                if s["ceiling"] is None:
                    assert s["normalized"] is None and ref_name == "s_target"
                else:
                    assert s["normalized"] == pytest.approx(s["r"] / s["ceiling"])

    assert set(out["cka"]) == {"pixels", "relu", "mix"}
    for scores in out["cka"].values():
        assert set(scores) == {"responses", "s_target", "s_oracle", "s_true"}
        assert all(0 <= v <= 1 for v in scores.values())
    for p in out["predictivity"].values():
        assert p["ceiling"] == 1.0 and p["neurons"] > 0 and p["stimuli_with_repeats"] == 30
        assert np.isfinite(p["feve"]) and 0 < p["fev"] < 1
        assert p["r2"] < p["fev"]  # R² stays under its ceiling


def test_a_one_hot_gamma_mix_is_that_layer(held_out, recording):
    feats, ids, _ = held_out
    out = alignment(feats, ids, gamma=[0.0, 1.0], s_true=recording.s_true(ids),
                    config=AlignmentConfig(replicates=0))
    assert out["rsa"]["mix"]["s_true"]["spearman"]["r"] == pytest.approx(
        out["rsa"]["relu"]["s_true"]["spearman"]["r"], abs=1e-9)
    assert "predictivity" not in out and out["rsa"]["relu"]["s_true"]["pearson"]["ci"] is None


def test_without_repeats_the_scores_are_unnormalized_and_say_why(recording, held_out):
    feats, ids, resp = held_out
    first = np.unique(resp.trial_ids, return_index=True)[1]  # one trial per stimulus
    single = Responses(resp.trials[first], resp.trial_ids[first])
    s_oracle = oracle_reference(resp, ids)[0]  # given, as a run would have stored it
    out = alignment(feats, ids, s_oracle=s_oracle, s_true=recording.s_true(ids),
                    responses=single, config=AlignmentConfig(replicates=10))
    json.dumps(out, allow_nan=False)
    assert out["ceiling"] is None and out["message"] == NO_REPEATS
    assert "no repeats" in out["message"]
    assert out["ceilings"]["s_oracle"] == {"ceiling": None, "message": NO_REPEATS}
    assert out["rsa"]["relu"]["s_oracle"]["pearson"]["normalized"] is None
    assert np.isfinite(out["rsa"]["relu"]["s_oracle"]["pearson"]["r"])
    for p in out["predictivity"].values():
        assert p["ceiling"] is None and p["feve"] is None and p["message"] == NO_REPEATS
        assert np.isfinite(p["r2"])


def test_bad_inputs_name_the_problem(held_out):
    feats, ids, resp = held_out
    with pytest.raises(ValueError, match="gamma"):
        alignment(feats, ids, gamma=[0.5, 0.6])
    with pytest.raises(ValueError, match=r"features\['relu'\]"):
        alignment({"relu": feats["relu"][:-1]}, ids)
    with pytest.raises(ValueError, match="s_true"):
        alignment(feats, ids, s_true=np.eye(3))
    with pytest.raises(ValueError, match="no trial"):
        alignment(feats, ids, responses=Responses(resp.trials[:5], resp.trial_ids[:5]))
    with pytest.raises(ValueError, match="replicates"):
        AlignmentConfig(replicates=-1)
