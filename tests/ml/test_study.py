import numpy as np
import pytest
from scipy import stats

from ml.study import StudyConfig, paired_difference, paired_tests, study_cells
from ml.train import FeatureSource


def test_the_paper_grid_expands_to_train_configs():
    cfg = StudyConfig(target_run=3, features=FeatureSource(weights="vgg19.pth"))
    cells = study_cells(cfg)
    assert len(cells) == 5 * 5  # five conditions × five seeds, one α
    assert {c.condition for c in cells} == {"none", "shuffle", "cnn-features", "neural-data",
                                            "neural-model"}
    none = [c for c in cells if c.condition == "none"]
    assert [c.seed for c in none] == [0, 1, 2, 3, 4] and none[0].train.target_run is None
    # no target, no similarity loss: α = 0 in its config (Compare places it there)
    assert {c.train.alpha for c in none} == {0.0} and not none[0].train.learns_gamma
    vgg = next(c for c in cells if c.condition == "cnn-features")
    assert vgg.train.features == FeatureSource(weights="vgg19.pth")
    assert vgg.train.target_run == 3 and vgg.train.alpha == 20.0
    assert next(c for c in cells if c.condition == "shuffle").train.features is None

    fig6 = study_cells(StudyConfig(conditions=("none", "neural-model"), seeds=3,
                                   alphas=(2, 4, 8, 16, 32), target_run=3))
    assert len(fig6) == 3 + 5 * 3  # none is not repeated per α
    assert sorted({c.train.alpha for c in fig6 if c.condition != "none"}) == [2, 4, 8, 16, 32]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"conditions": ("none", "brain")}, "conditions"),
    ({"conditions": ("none", "none")}, "conditions"),
    ({"alphas": (0,)}, "alphas"),
    ({"seeds": 0}, "seeds"),
    ({"conditions": ("cnn-features",)}, "features"),
    ({"train": {"epochs": 0}}, "epochs"),
])
def test_bad_studies_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StudyConfig(**kwargs)


def test_paired_tests_match_scipy_on_per_seed_pairs():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.3, 5)
    neural = base + rng.uniform(0.01, 0.05, 5)
    evals = [{"target": "none", "alpha": 20, "seed": s,
              "result": {"noise": {"sigmas": [0, 0.1, 0.2], "accuracy": [0.9, base[s], base[s]]},
                         "median_l2": 0.1 + s}} for s in range(5)]
    evals += [{"target": "neural-model", "alpha": 20, "seed": s,
               "result": {"noise": {"sigmas": [0, 0.1, 0.2],
                                    "accuracy": [0.9, neural[s], neural[s]]},
                          "median_l2": 0.1 + s}} for s in range(4)]  # seed 4 missing
    rows = {r["measure"]: r for r in paired_tests(evals)}
    noise = rows["noise_accuracy"]
    assert noise["pairs"] == 4 and noise["condition"] == "neural-model"
    assert noise["mean_difference"] == pytest.approx(np.mean(neural[:4] - base[:4]))
    assert noise["t_test_p"] == pytest.approx(stats.ttest_rel(neural[:4], base[:4]).pvalue)
    assert noise["wilcoxon_p"] == pytest.approx(stats.wilcoxon(neural[:4] - base[:4]).pvalue)
    assert rows["median_l2"]["mean_difference"] == 0 and rows["median_l2"]["t_test_p"] is None


def test_constant_differences_give_a_p_value_not_a_crash():
    evals = [{"target": t, "alpha": 2, "seed": s,
              "result": {"noise": {"sigmas": [0, 0.1], "accuracy": [0.9, base]}}}
             for s in range(3) for t, base in (("none", 0.5), ("neural-model", 0.6))]
    rows = {r["measure"]: r for r in paired_tests(evals)}  # every difference is exactly 0.1
    row = rows["noise_accuracy"]
    assert row["mean_difference"] == pytest.approx(0.1) and row["pairs"] == 3
    assert row["sem_difference"] == pytest.approx(0.0, abs=1e-12)
    assert rows["clean_accuracy"]["mean_difference"] == 0  # both 0.9 at σ = 0
    assert set(rows) == {"clean_accuracy", "noise_accuracy", "noise_accuracy_highest"}


def test_mean_curves_average_the_seeds_that_reached_each_step():
    from ml.study import mean_curves

    runs = [
        {"id": 1, "target": "neural-model", "alpha": 20.0, "seed": 0,
         "steps": [9, 19, 29], "values": [0.5, 0.6, 0.7]},
        {"id": 2, "target": "neural-model", "alpha": 20.0, "seed": 1,
         "steps": [9, 19], "values": [0.3, 0.8]},  # still running
        {"id": 3, "target": "none", "alpha": 20.0, "seed": 0, "steps": [9], "values": [0.4]},
        {"id": 4, "target": "none", "alpha": 5.0, "seed": 1, "steps": [], "values": []},
    ]
    rows = mean_curves(runs)
    assert [(r["target"], r["alpha"], r["n"]) for r in rows] == [
        ("neural-model", 20.0, 2), ("none", 0.0, 1)]  # none: α 0, the empty run left out
    nm = rows[0]
    assert nm["steps"] == [9, 19, 29] and nm["run_ids"] == [1, 2] and nm["n_at"] == [2, 2, 1]
    assert np.allclose(nm["mean"], [0.4, 0.7, 0.7])
    assert np.allclose(nm["sem"], [np.std([0.5, 0.3], ddof=1) / np.sqrt(2),
                                   np.std([0.6, 0.8], ddof=1) / np.sqrt(2), 0.0])
    assert rows[1]["sem"] == [0.0]
    with pytest.raises(ValueError, match="run 9"):
        mean_curves([{"id": 9, "target": "none", "alpha": 0, "seed": 0, "steps": [1],
                      "values": []}])


def test_a_study_note_is_a_short_string() -> None:
    assert StudyConfig(conditions=("none",), note="why: the BatchNorm question").note
    with pytest.raises(ValueError, match="note: at most 2000"):
        StudyConfig(conditions=("none",), note="x" * 2001)
    with pytest.raises(ValueError, match="note: expected a string"):
        StudyConfig(conditions=("none",), note=3)  # type: ignore[arg-type]


# Student's t quantiles with 2 degrees of freedom (tables): 0.975 and 0.8
T975_2, T80_2 = 4.302653, 1.060660


def test_a_difference_whose_interval_covers_zero_is_unresolved():
    """Differences 1, 2, 3 (mean 2, SD 1): the 95 % interval 2 ± 4.303/√3 covers 0."""
    out = paired_difference([(1.0, 0.0), (2.0, 0.0), (3.0, 0.0)])
    half = T975_2 / np.sqrt(3)
    assert out["ci_low"] == pytest.approx(2 - half) and out["ci_high"] == pytest.approx(2 + half)
    assert out["ci_low"] < 0 < out["ci_high"] and out["verdict"] == "unresolved"
    assert out["detectable"] == pytest.approx((T975_2 + T80_2) / np.sqrt(3))
    assert out["t_test_p"] > 0.05  # the t-test and the interval agree


def test_an_interval_clear_of_zero_says_which_way():
    up = paired_difference([(1.1, 0.0), (1.0, 0.0), (0.9, 0.0)])
    assert up["verdict"] == "higher" and up["ci_low"] > 0 and up["t_test_p"] < 0.05
    down = paired_difference([(0.0, 1.1), (0.0, 1.0), (0.0, 0.9)])
    assert down["verdict"] == "lower" and down["ci_high"] < 0


def test_one_pair_says_nothing():
    out = paired_difference([(2.0, 1.0)])
    assert out["verdict"] == "unresolved" and out["ci_low"] is None
    assert out["detectable"] is None and out["mean_difference"] == 1.0


def test_holm_matches_the_step_down_rule_by_hand() -> None:
    from ml.study import holm

    # p sorted 0.01 < 0.03 < 0.04 of m = 3: ×3, ×2, ×1, then made monotone
    out = holm({"a": 0.01, "b": 0.04, "c": 0.03, "skipped": None})
    assert out["a"] == pytest.approx(0.03)
    assert out["c"] == pytest.approx(0.06)
    assert out["b"] == pytest.approx(0.06)  # 0.04 × 1 is raised to the one before it
    assert out["skipped"] is None
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}  # capped at 1


def test_hierarchical_bootstrap_finds_a_shift_and_leaves_no_shift_unresolved() -> None:
    from ml.study import hierarchical_bootstrap

    rng = np.random.default_rng(3)
    # ten seeds, 500 samples each: the condition's distances 20 % larger on every sample
    base = [rng.exponential(1.0, 500) for _ in range(10)]
    shifted = hierarchical_bootstrap([(1.2 * b, b) for b in base], resamples=500)
    assert shifted["verdict"] == "higher" and shifted["ci_low"] > 0
    assert shifted["difference"] == pytest.approx(
        np.mean([0.2 * np.median(b) for b in base]))
    assert shifted["pairs"] == 10 and shifted["samples"] == 500
    # the same distribution on both sides: the interval covers 0
    same = hierarchical_bootstrap([(rng.exponential(1.0, 500), rng.exponential(1.0, 500))
                                   for _ in range(10)], resamples=500)
    assert same["ci_low"] < 0 < same["ci_high"] and same["verdict"] == "unresolved"
    # the seed level counts: a per-seed offset as large as the effect widens the interval
    wobble = [rng.normal(0, 0.3) for _ in range(10)]
    noisy = hierarchical_bootstrap([(1.2 * b + w, b) for b, w in zip(base, wobble, strict=True)],
                                   resamples=500)
    assert noisy["ci_high"] - noisy["ci_low"] > 2 * (shifted["ci_high"] - shifted["ci_low"])
    one = hierarchical_bootstrap([(1.2 * base[0], base[0])], resamples=100)
    assert one["verdict"] == "unresolved"  # one seed says nothing about seeds
    with pytest.raises(ValueError, match=r"pairs\[0\]"):
        hierarchical_bootstrap([(np.ones(5), np.ones(4))])
