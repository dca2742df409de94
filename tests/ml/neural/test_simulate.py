import numpy as np
import pytest

from ml.neural import estimators as est
from ml.neural.simulate import SimulationConfig, simulate
from ml.neural.stimuli import natural_patches


@pytest.fixture(scope="module")
def rec():
    return simulate(SimulationConfig(n_images=300, n_oracle=20, oracle_repeats=6, n_scans=2,
                                     neurons_per_scan=200, seed=1))


def test_protocol_shapes_and_tiers(rec):
    assert len(rec.scans) == 2
    for s in rec.scans:
        assert s.images.shape == (300, 1, 36, 64)
        assert s.n_trials == 280 + 20 * 6 and s.n_neurons == 200
        ids, counts = np.unique(s.trial_image_ids, return_counts=True)
        assert set(ids[counts == 6]) == set(rec.oracle_ids) and (counts[counts != 6] == 1).all()
        assert set(s.tiers[np.isin(s.trial_image_ids, rec.oracle_ids)]) == {"test"}
        assert {"train", "validation"} <= set(s.tiers)
        assert (s.responses >= 0).all()
    # scans record different neurons of one population
    assert not set(rec.scans[0].neurons["unit_ids"]) & set(rec.scans[1].neurons["unit_ids"])


def test_noise_scales_with_the_rate(rec):
    s = rec.scans[0]
    on = np.isin(s.trial_image_ids, rec.oracle_ids)
    means = np.stack([s.responses[s.trial_image_ids == i].mean(0) for i in rec.oracle_ids])
    var = np.stack([s.responses[s.trial_image_ids == i].var(0) for i in rec.oracle_ids])
    assert on.sum() == 120
    assert est.pearson(means.ravel(), var.ravel()) > 0.5


def test_running_raises_the_population_gain(rec):
    s = rec.scans[0]
    running = s.behavior[:, 3] > 5
    assert 0.1 < running.mean() < 0.9  # bouts of both
    assert s.responses[running].mean() > s.responses[~running].mean()


def test_s_true_is_a_similarity_and_oracle_estimates_approach_it(rec):
    truth = rec.s_true(rec.oracle_ids)
    np.testing.assert_allclose(np.diag(truth), 1.0, atol=1e-4)
    s = rec.scans[0]
    on = np.isin(s.trial_image_ids, rec.oracle_ids)
    w = est.snr_weights(s.responses, s.trial_image_ids, rec.oracle_ids)
    unit = est.unit_vectors(s.responses[on] * w)
    s_oracle = est.oracle_similarity(unit, s.trial_image_ids[on], rec.oracle_ids)
    data, oracle = est.trial_pair_scatter(unit, s.trial_image_ids[on], rec.oracle_ids, s_oracle)
    r_oracle = est.pearson(est.offdiag(s_oracle), est.offdiag(truth))
    assert r_oracle > 0.5  # averaging repeats recovers the structure...
    assert est.pearson(data, oracle) < 0.95  # ...that single trials only see noisily


def test_same_seed_same_recording_and_different_seed_differs():
    cfg = SimulationConfig(n_images=40, n_oracle=4, oracle_repeats=3, n_scans=1,
                           neurons_per_scan=10, seed=5)
    a, b = simulate(cfg), simulate(cfg)  # exact on purpose: the same path twice
    np.testing.assert_array_equal(a.scans[0].responses, b.scans[0].responses)
    c = simulate(SimulationConfig(n_images=40, n_oracle=4, oracle_repeats=3, n_scans=1,
                                  neurons_per_scan=10, seed=6))
    assert not np.array_equal(a.scans[0].responses, c.scans[0].responses)


def test_natural_patches_are_varied_photographs():
    p = natural_patches(50, seed=0)
    assert p.shape == (50, 1, 36, 64) and p.dtype == np.float32
    assert 0.0 <= p.min() and p.max() <= 1.0
    assert p.std(axis=(1, 2, 3)).min() > 0.05  # not blank
    assert len({round(float(x), 4) for x in p.mean(axis=(1, 2, 3))}) == 50


def test_a_simulation_can_show_leaves_scenes_of_the_tasks_kind_not_its_images():
    from ml.data import load_dataset
    from ml.data.leaves import scenes

    cfg = dict(n_images=40, n_oracle=4, oracle_repeats=3, n_scans=1, neurons_per_scan=10,
               seed=5)
    leaves = simulate(SimulationConfig(stimuli="leaves", **cfg))
    photos = simulate(SimulationConfig(**cfg))
    shown = leaves.scans[0].images
    np.testing.assert_array_equal(shown, scenes(40, seed=5))  # the leaves stream, as asked
    assert not np.array_equal(shown, photos.scans[0].images)
    task = load_dataset("leaves32", seed=0)
    at32 = {t.tobytes() for t in task.train_images.numpy()[:, 0, :32, :32]}
    assert not any(s[0, :32, :32].tobytes() in at32 for s in shown)
    with pytest.raises(ValueError, match="stimuli"):
        SimulationConfig(stimuli="imagenet", **cfg)


@pytest.mark.parametrize(("field", "value"), [("n_scans", 0), ("fano", 0.0), ("n_oracle", 1)])
def test_bad_simulation_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SimulationConfig(**{field: value})


def test_scans_agree_more_than_repeats_do_as_in_fig1c():
    rec = simulate(SimulationConfig(n_images=150, n_oracle=30, oracle_repeats=8, n_scans=3,
                                    neurons_per_scan=600, seed=3))
    mats, repeats = [], []
    for s in rec.scans:
        on = np.isin(s.trial_image_ids, rec.oracle_ids)
        w = est.snr_weights(s.responses, s.trial_image_ids, rec.oracle_ids)
        unit = est.unit_vectors(s.responses[on] * w)
        m = est.oracle_similarity(unit, s.trial_image_ids[on], rec.oracle_ids)
        mats.append(m)
        repeats.append(est.repeat_fluctuations(unit, s.trial_image_ids[on], rec.oracle_ids, m))
    scan_sd = est.scan_fluctuations(np.stack(mats)).std()
    repeat_sd = np.concatenate(repeats).std()
    assert scan_sd < 0.5 * repeat_sd, (scan_sd, repeat_sd)
