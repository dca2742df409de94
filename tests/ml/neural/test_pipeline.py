import json

import numpy as np
import pytest

from ml import artifacts
from ml.neural.io import save_npz
from ml.neural.pipeline import SimilarityConfig, run_similarity
from ml.neural.predictor import PredictorConfig
from ml.neural.simulate import SimulationConfig, simulate
from ml.neural.target import SimilarityTarget
from ml.recorder import Cancelled, MemoryRecorder

TINY_SIM = SimulationConfig(n_images=120, n_oracle=8, oracle_repeats=4, n_scans=2,
                            neurons_per_scan=24, seed=2)
TINY_FIT = PredictorConfig(hidden_channels=4, max_epochs=2, batch_size=32)


@pytest.fixture(scope="module")
def result():
    rec = MemoryRecorder()
    cfg = SimilarityConfig(simulation=TINY_SIM, predictor=TINY_FIT, pairs_for_r=5000)
    return run_similarity(cfg, rec), rec


def test_scores_cover_fig1_and_denoising(result):
    res, rec = result
    for key in ("r_model_oracle", "r_data_oracle", "r_model_true", "r_data_true",
                "r_oracle_true", "delta_scan_sd", "delta_repeat_sd", "snr_median",
                "v_median", "predictor_val_corr"):
        assert key in res.scores and np.isfinite(res.scores[key]), key
        assert rec.metrics[key][0] == pytest.approx(res.scores[key])
    assert res.scores["n_target_images"] == 112 and res.scores["n_neurons"] == 48
    assert rec.series("predictor/val_corr")  # the model's training is recorded
    assert rec.fractions == sorted(rec.fractions) and rec.fractions[-1] == 1.0  # never back


def test_targets_are_stored_and_describe_the_non_oracle_images(result):
    res, rec = result
    for kind in ("neural-model", "neural-data", "neural-true", "shuffle"):
        data, media = rec.artifacts[artifacts.target(kind)]
        target = SimilarityTarget.load(data)
        assert target.kind == kind and len(target) == 112
        s = target.matrix()
        np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-4)
        assert target.images.shape == (112, 1, 36, 64)
    model = SimilarityTarget.load(rec.artifacts[artifacts.target("neural-model")][0])
    oracle = set(simulate(TINY_SIM).oracle_ids.tolist())
    assert not oracle & set(model.image_ids.tolist())
    assert model.factor.shape[1] == 48  # two scans' neurons side by side (Eq. 6 mean)
    shuffle = res.targets["shuffle"].matrix()
    iu = np.triu_indices(112, 1)
    np.testing.assert_allclose(np.sort(shuffle[iu]), np.sort(model.matrix()[iu]), atol=1e-5)


def test_a_simulation_stores_its_noise_free_truth_over_the_model_targets_stimuli(result):
    res, rec = result
    true = SimilarityTarget.load(rec.artifacts[artifacts.target("neural-true")][0])
    model = res.targets["neural-model"]
    np.testing.assert_array_equal(true.image_ids, model.image_ids)
    np.testing.assert_array_equal(true.images, model.images)
    np.testing.assert_allclose(true.matrix(), simulate(TINY_SIM).s_true(model.image_ids),
                               atol=1e-5)
    assert true.meta["source"] == "simulated"
    assert "neural-true" in res.summary()["targets"]


def test_figure_data_shares_one_order_and_has_every_panel(result):
    res, rec = result
    fig = json.loads(rec.artifacts["figures.json"][0])
    n = 8
    assert sorted(fig["order"]) == list(range(n))
    assert len(fig["s_oracle"]) == len(fig["s_model"]) == 2
    assert np.array(fig["s_oracle"][0]).shape == (n, n)
    ordered = np.array(res.scans[0].s_oracle)[np.ix_(fig["order"], fig["order"])]
    np.testing.assert_allclose(fig["s_oracle"][0], ordered, atol=1e-4)
    scan, repeat = fig["fluctuations"]["scan"], fig["fluctuations"]["repeat"]
    assert scan["edges"] == repeat["edges"] and sum(repeat["counts"]) == repeat["n"] > 0
    assert len(fig["scatter"]["data"]["oracle"]) == len(fig["scatter"]["data"]["data"]) > 0
    assert fig["scatter"]["model"]["r"] == pytest.approx(res.scores["r_model_oracle"])
    assert sum(fig["snr"]["counts"]) == 48 and sum(fig["v"]["counts"]) == 48


def test_the_fitted_denoiser_is_stored_with_its_config(result):
    import io

    import torch

    res, rec = result
    ckpt = torch.load(io.BytesIO(rec.artifacts["predictor.pt"][0]), weights_only=True)
    assert ckpt["config"]["predictor"]["hidden_channels"] == 4
    assert set(ckpt["scans"]) == {a.name for a in res.scans}
    raw_v = ckpt["scans"][res.scans[0].name]["v"].numpy()  # the analysis weights by max(v, 0)
    np.testing.assert_allclose(np.clip(raw_v, 0, None), res.scans[0].v)
    assert any(k.startswith("core.") for k in ckpt["state_dict"])


def test_a_recording_file_goes_through_the_same_pipeline(tmp_path):
    path = tmp_path / "rec.npz"
    save_npz(simulate(TINY_SIM).scans, path)
    cfg = SimilarityConfig(source="recording", recording=str(path), predictor=TINY_FIT,
                           pairs_for_r=5000, target_dtype="float16")
    res = run_similarity(cfg, MemoryRecorder())
    assert "r_model_true" not in res.scores  # a real recording has no ground truth
    assert "neural-true" not in res.targets  # nor a neural-true target
    assert res.targets["neural-model"].factor.dtype == np.float16
    assert len(res.targets["neural-data"]) == 112


def test_cancel_stops_the_run():
    rec = MemoryRecorder(stop_after_steps=1)
    cfg = SimilarityConfig(simulation=TINY_SIM, predictor=TINY_FIT)
    with pytest.raises(Cancelled):
        run_similarity(cfg, rec)
    assert not rec.artifacts  # nothing half-written


def test_config_round_trips_as_stored_json_and_refuses_bad_values():
    cfg = SimilarityConfig(simulation=TINY_SIM, predictor=TINY_FIT)
    from dataclasses import asdict

    again = SimilarityConfig(**json.loads(json.dumps(asdict(cfg))))
    assert again == cfg
    with pytest.raises(ValueError, match="recording"):
        SimilarityConfig(source="recording")
    with pytest.raises(ValueError, match="pairs_for_r"):
        SimilarityConfig(pairs_for_r=1)


def test_scans_with_different_oracle_images_still_analyse(tmp_path):
    from dataclasses import replace

    scans = simulate(TINY_SIM).scans
    ids = scans[0].oracle_ids
    split = [replace(scans[0], oracle_ids=ids[:4]), replace(scans[1], oracle_ids=ids[4:])]
    path = tmp_path / "two.npz"
    save_npz(split, path)
    rec = MemoryRecorder()
    cfg = SimilarityConfig(source="recording", recording=str(path), predictor=TINY_FIT,
                           pairs_for_r=5000)
    res = run_similarity(cfg, rec)
    assert "delta_scan_sd" not in res.scores  # Eq. 4 needs images shared across scans
    fig = json.loads(rec.artifacts["figures.json"][0])
    assert fig["scans"] == [split[0].name] and sorted(fig["image_ids"]) == ids[:4].tolist()
    assert len(res.targets["neural-model"]) == 112  # every scan's oracle images excluded
    assert [a.oracle_ids.tolist() for a in res.scans] == [ids[:4].tolist(), ids[4:].tolist()]


def test_r_over_factor_pairs_is_exact_blockwise_and_close_when_sampled():
    from ml.neural.estimators import offdiag, pearson, unit_vectors
    from ml.neural.pipeline import _factor_r
    from tests.floats import assert_within, one_path

    rng = np.random.default_rng(0)
    shared = rng.normal(size=(300, 5))
    a = unit_vectors(np.hstack([shared, rng.normal(size=(300, 20))]))
    b = unit_vectors(np.hstack([shared, rng.normal(size=(300, 7))]))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)  # the reference, not float32 GEMMs
    exact = pearson(offdiag(a64 @ a64.T), offdiag(b64 @ b64.T))
    # float32 GEMM entries of unit rows each err by ≤ one_path(width, 1), and r moves by at
    # most 2ε/σ under entries moved by ≤ ε (first order: cov by ε·σ_y, σ_x by ε)
    xs, ys = offdiag(a64 @ a64.T), offdiag(b64 @ b64.T)
    bound = 2 * (one_path(a.shape[1], 1.0) / xs.std() + one_path(b.shape[1], 1.0) / ys.std())
    assert_within(_factor_r(a, b, rng, 1000, block=64), exact, bound)
    sampled = _factor_r(a, b, rng, 40_000, exact_up_to=10)
    assert sampled == pytest.approx(exact, abs=0.03)


def test_the_scores_come_with_bootstrap_intervals_and_a_noise_ceiling(result):
    res, rec = result
    s = res.scores
    for name in ("r_model_oracle", "r_data_oracle"):
        for over in ("stimuli", "neurons"):
            lo, hi = s[f"{name}_ci_{over}_lo"], s[f"{name}_ci_{over}_hi"]
            assert lo < hi and rec.series(f"{name}_ci_{over}_lo") == [lo]
    assert 0 < s["oracle_reliability"] <= 1 and s["oracle_noise_ceiling"] == pytest.approx(
        s["oracle_reliability"] ** 0.5)
    bars = json.loads(rec.artifacts[artifacts.FIGURES][0])["error_bars"]
    assert bars["bootstrap"]["replicates"] == 100 and bars["noise_ceiling"]["splits"] == 50
    assert bars["bootstrap"]["r_model_oracle"] == pytest.approx(s["r_model_oracle"], abs=1e-5)
