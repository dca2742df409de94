"""Robustness across a study's runs: corruption heatmaps and CE / mCE against None."""

import numpy as np
import pytest

from ml.evaluate.corruptions import BENCHMARK
from ml.evaluate.measures import read_measures
from ml.evaluate.summary import robustness_table

NAMES = ["gaussian_noise", "fog", "saturate"]  # saturate: an extra, not in mCE


def _eval(target: str, seed: int, acc: dict[str, list[float]], **extra) -> dict:
    result = {"noise": {"sigmas": [0.0, 0.1], "accuracy": [0.9, 0.5]},
              "corruptions": {"names": NAMES, "severities": [1, 5], "accuracy": acc,
                              "mean_accuracy": float(np.mean([acc[n] for n in NAMES[:2]]))},
              **extra}
    return {"id": seed, "target": target, "alpha": 0 if target == "none" else 8.0,
            "backbone": "resnet18", "dataset": "digits32", "seed": seed, "result": result}


def test_ce_and_mce_pair_each_seed_with_the_none_of_the_same_seed():
    evals = [
        _eval("none", 0, {"gaussian_noise": [0.8, 0.4], "fog": [0.6, 0.2], "saturate": [0.9, 0.9]}),
        _eval("none", 1, {"gaussian_noise": [0.7, 0.3], "fog": [0.5, 0.1], "saturate": [0.9, 0.8]}),
        _eval("neural-model", 0, {"gaussian_noise": [0.9, 0.7], "fog": [0.6, 0.2],
                                  "saturate": [0.9, 0.9]}),
        _eval("neural-model", 1, {"gaussian_noise": [0.8, 0.5], "fog": [0.5, 0.3],
                                  "saturate": [0.9, 0.8]}),
    ]
    rows = {r["target"]: r for r in robustness_table(evals)}
    none, neural = rows["none"], rows["neural-model"]
    assert none["mce"]["mean"] == pytest.approx(1.0) and none["mce"]["sem"] == 0
    # seed 0: noise (0.1+0.3)/(0.2+0.6) = 0.5, fog 1.0 → 0.75; seed 1: 0.7/1.0, 1.2/1.4
    s0, s1 = (0.5 + 1.0) / 2, (0.7 + 1.2 / 1.4) / 2
    assert neural["mce"]["mean"] == pytest.approx((s0 + s1) / 2)
    assert neural["mce"]["sem"] == pytest.approx(abs(s0 - s1) / 2)  # SEM of two: |Δ|/2
    assert neural["mce"]["seeds"] == [0, 1] and "saturate" not in BENCHMARK
    assert neural["mce"]["ce"]["saturate"]["mean"] == pytest.approx(1.0)
    grid = neural["corruptions"]
    assert grid["names"] == NAMES and np.array(grid["mean"]).shape == (3, 2)
    assert grid["mean"][0] == pytest.approx([0.85, 0.6])
    assert neural["measures"]["corruption_accuracy"]["n"] == 2


def test_no_none_in_the_study_or_other_corruptions_give_no_mce():
    only = [_eval("neural-model", 0, dict.fromkeys(NAMES, [0.5, 0.5]))]
    (row,) = robustness_table(only)
    assert row["mce"] is None and row["corruptions"]["n"] == 1


def test_the_new_scores_are_measures_the_paired_tests_and_frontier_read():
    result = {"mean_l2": 0.4, "median_l2": 0.3,
              "autoattack": {"threat_models": {"linf": [{"epsilon": 0.03, "robust_accuracy": 0.1},
                                                        {"epsilon": 0.1, "robust_accuracy": 0.0}]}},
              "corruptions": {"mean_accuracy": 0.6}}
    m = read_measures(result)
    assert m["mean_l2"] == 0.4 and m["autoattack_linf"] == 0.1  # the first ε
    assert m["corruption_accuracy"] == 0.6 and "autoattack_l2" not in m
