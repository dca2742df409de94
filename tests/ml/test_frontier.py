import numpy as np
import pytest
from scipy import stats

from ml.frontier import FrontierError, frontier

SIGMAS = [0.0, 0.1, 0.3]


def _eval(target, alpha, seed, clean, noisy, l2=None, **kw):
    result = {"noise": {"sigmas": SIGMAS, "accuracy": [clean, noisy, noisy / 2]}}
    if l2 is not None:
        result["median_l2"] = l2
    return {"id": hash((target, alpha, seed)) % 1000, "target": target, "alpha": alpha,
            "seed": seed, "backbone": kw.get("backbone", "small_cnn"),
            "dataset": "digits32", "result": result}


def _grid():
    rng = np.random.default_rng(1)
    evals = [_eval("none", 20.0, s, 0.95 + 0.01 * s, 0.6 + 0.01 * s, l2=0.1) for s in range(3)]
    # α=2 costs 1 point of clean accuracy, α=8 costs 15: only α=2 is comparable
    for alpha, cost, gain in ((2.0, 0.01, 0.05), (8.0, 0.15, 0.10)):
        for s in range(3):
            evals.append(_eval("neural-model", alpha, s, 0.95 + 0.01 * s - cost,
                               0.6 + 0.01 * s + gain + rng.normal(0, 0.01), l2=0.1 + gain))
    evals += [_eval("shuffle", 4.0, s, 0.80, 0.5) for s in range(3)]  # never within 2 pts
    return evals


def test_points_follow_each_condition_through_its_alphas_with_sem_over_seeds():
    evals = _grid()
    out = frontier(evals)
    assert out["curves"] == {"neural-model": [2.0, 8.0], "none": [0.0], "shuffle": [4.0]}
    nm8 = next(p for p in out["points"] if p["condition"] == "neural-model" and p["alpha"] == 8)
    clean = [e["result"]["noise"]["accuracy"][0] for e in evals
             if e["target"] == "neural-model" and e["alpha"] == 8.0]
    assert nm8["measures"]["clean_accuracy"]["mean"] == pytest.approx(np.mean(clean))
    assert nm8["measures"]["clean_accuracy"]["sem"] == pytest.approx(stats.sem(clean))
    assert nm8["n"] == 3 and nm8["seeds"] == [0, 1, 2]
    highest = [e["result"]["noise"]["accuracy"][2] for e in evals
               if e["target"] == "neural-model" and e["alpha"] == 8.0]
    assert nm8["measures"]["noise_accuracy_highest"]["mean"] == pytest.approx(np.mean(highest))


def test_each_condition_is_compared_with_none_at_the_closest_clean_accuracy_by_seed():
    evals = _grid()
    out = frontier(evals, tolerance=0.02)
    rows = {r["condition"]: r for r in out["matched"]}
    nm = rows["neural-model"]
    assert nm["alpha"] == 2.0 and nm["matched"] and nm["clean_gap"] == pytest.approx(-0.01)
    a = [e["result"]["noise"]["accuracy"][1:] for e in evals
         if e["target"] == "neural-model" and e["alpha"] == 2.0]
    b = [e["result"]["noise"]["accuracy"][1:] for e in evals if e["target"] == "none"]
    mine = np.mean(a, axis=1) - np.mean(b, axis=1)
    t = nm["tests"]["noise_accuracy"]
    assert t["pairs"] == 3 and t["mean_difference"] == pytest.approx(mine.mean())
    assert t["sem_difference"] == pytest.approx(stats.sem(mine))
    assert t["t_test_p"] == pytest.approx(stats.ttest_rel(np.mean(a, 1), np.mean(b, 1)).pvalue)
    assert t["wilcoxon_p"] == pytest.approx(0.25)  # the smallest two-sided p with 3 pairs
    assert nm["tests"]["median_l2"]["mean_difference"] == pytest.approx(0.05)
    sh = rows["shuffle"]  # 15 points below None: reported with its gap, never tested
    assert not sh["matched"] and sh["tests"] == {}
    assert sh["clean_gap"] == pytest.approx(0.80 - 0.96)
    # a looser tolerance admits it
    assert {r["condition"]: r for r in frontier(evals, tolerance=0.2)["matched"]}[
        "shuffle"]["matched"]


@pytest.mark.parametrize("tolerance", [0, -0.1, float("nan"), float("inf")])
def test_a_tolerance_must_be_positive_and_finite(tolerance):
    with pytest.raises(ValueError, match="tolerance"):
        frontier(_grid(), tolerance=tolerance)


def test_what_a_frontier_lacks_is_said():
    with pytest.raises(FrontierError, match="no finished evaluations"):
        frontier([])
    with pytest.raises(FrontierError, match="None"):
        frontier([e for e in _grid() if e["target"] != "none"])
    mixed = _grid() + [_eval("none", 0.0, 9, 0.9, 0.5, backbone="resnet18")]
    with pytest.raises(FrontierError, match="mix"):
        frontier(mixed)


def test_runs_of_different_stimulus_norms_are_different_conditions():
    evals = [_eval("none", 0.0, s, 0.95, 0.6) for s in range(2)]
    for mode, clean in (("shared", 0.90), ("separate", 0.95)):
        evals += [{**_eval("neural-model", 8.0, s, clean, 0.7), "stimulus_norm": mode}
                  for s in range(2)]
    out = frontier(evals)
    assert set(out["curves"]) == {"none", "neural-model (shared)", "neural-model (separate)"}
    rows = {r["condition"]: r for r in out["matched"]}
    assert rows["neural-model (separate)"]["matched"]
    assert not rows["neural-model (shared)"]["matched"]
    one = frontier([e for e in evals if e.get("stimulus_norm") != "shared"])
    assert set(one["curves"]) == {"none", "neural-model"}  # one mode: the plain name
