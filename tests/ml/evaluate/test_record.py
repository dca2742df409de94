"""RobustBench-style records of a real evaluation, the leaderboard row they rank by, and
the study summaries of evaluations that ran only some parts."""

import math
from typing import get_args

import numpy as np
import pytest

from ml.evaluate.autoattack import THREAT_MODELS
from ml.evaluate.record import eps_label, leaderboard_row, model_record, scores
from ml.evaluate.run import EvaluateConfig, evaluate_model
from ml.evaluate.summary import robustness_table
from ml.recorder import MemoryRecorder

MODEL = {"id": 7, "name": "neural α=8 seed 1", "parent_id": 3, "last_metrics": {"test_acc": 0.91},
         "config": {"backbone": "small_cnn", "width": 16, "dataset": "digits32",
                    "target": "neural-model", "alpha": 8.0, "seed": 1, "target_run": 2}}
SIMILARITY = {"id": 2, "name": "v1", "config": {"source": "simulated"}}


@pytest.fixture(scope="module")
def evaluated(trained):
    model, x, y = trained
    cfg = EvaluateConfig(attacks="quick", norms=("l2", "linf"), n_samples=20, batch_size=20,
                         noise_sigmas=(0.0, 0.1), autoattack_eps={"linf": [8 / 255, 0.1]},
                         autoattack_steps=5, autoattack_queries=20,
                         corruptions=("fog", "saturate"), corruption_severities=(1, 3),
                         corruption_samples=30, device="cpu")
    return evaluate_model(cfg, MemoryRecorder(), model, x, y, num_classes=10)


def test_a_record_holds_robustbench_fields_and_ours(evaluated):
    rec = model_record(evaluation={"id": 9, "name": "eval", "owner": "ana", "result": evaluated},
                       model=MODEL, similarity=SIMILARITY)
    assert (rec["evaluation_run"], rec["model_run"], rec["study"], rec["similarity_run"]) == (
        9, 7, 3, 2)
    assert rec["architecture"] == "small_cnn (width 16)" and rec["dataset"] == "digits32"
    assert (rec["target"], rec["alpha"], rec["seed"], rec["test_acc"]) == (
        "neural-model", 8.0, 1, 0.91)
    assert rec["similarity"] == {"run": 2, "source": "simulated", "recording": None,
                                 "name": "v1"}
    # clean accuracy from σ = 0 on the whole test split, not the 20 attacked samples
    assert rec["clean_acc"] == evaluated["noise"]["accuracy"][0]
    assert rec["clean_acc_n"] == evaluated["noise"]["n"] > 20
    rows = rec["autoattack"]["linf"]
    assert [r["eps_label"] for r in rows] == ["8/255", "0.1"] and "l2" not in rec["autoattack"]
    first = evaluated["autoattack"]["threat_models"]["linf"][0]
    assert rows[0]["robust_acc"] == first["robust_accuracy"] and rows[0]["n"] == 20
    assert list(rows[0]["after"]) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert rows[0]["version"] == "custom"  # 5 steps, 20 queries: not the standard
    assert rec["minimal"]["median"]["l2"] == evaluated["median_l2"]
    assert rec["minimal"]["mean"]["linf"] == evaluated["mean_linf"]
    assert rec["corruptions_acc"] == evaluated["corruptions"]["mean_accuracy"]
    assert rec["corruptions"]["names"] == ["fog", "saturate"]
    # RobustBench's model_info: percent strings with two decimals, one entry per ε
    rb = {(e["threat_model"], e.get("eps")): e for e in rec["robustbench"]}
    assert set(rb) == {("Linf", "8/255"), ("Linf", "0.1"), ("corruptions", None)}
    entry = rb[("Linf", "8/255")]
    assert entry["autoattack_acc"] == f"{100 * rows[0]['robust_acc']:.2f}"
    assert entry["clean_acc"] == f"{100 * rec['clean_acc']:.2f}" and entry["unreliable"]
    assert rb[("corruptions", None)]["corruptions_acc"] == f"{100 * rec['corruptions_acc']:.2f}"


def test_the_leaderboard_ranks_autoattack_at_one_eps_and_puts_the_unmeasured_last(evaluated):
    rec = model_record(evaluation={"id": 9, "result": evaluated}, model=MODEL)
    row = leaderboard_row(rec)  # RobustBench's 8/255 for L∞; no L2 measured
    assert row["autoattack_linf"] == rec["autoattack"]["linf"][0]["robust_acc"]
    assert row["autoattack_l2"] is None and row["autoattack_linf_version"] == "custom"
    assert leaderboard_row(rec, {"linf": 0.1})["autoattack_linf"] == (
        rec["autoattack"]["linf"][1]["robust_acc"])
    assert leaderboard_row(rec, {"linf": 0.05})["autoattack_linf"] is None


def test_a_record_scores_every_sortable_value_it_has_and_each_autoattack_eps(evaluated):
    """What the store sorts by (tests/core/test_scores.py) is the row's own value: at each
    ε measured for AutoAttack, at ε = 0 for the rest."""
    from ml.evaluate.record import COLUMNS

    rec = model_record(evaluation={"id": 9, "result": evaluated}, model=MODEL)
    got = {(c, e): v for c, e, v in scores(rec)}
    assert len(got) == len(scores(rec))  # one value per (column, ε)
    for eps in (8 / 255, 0.1):
        assert got[("autoattack_linf", eps)] == leaderboard_row(rec, {"linf": eps})[
            "autoattack_linf"]
    assert not any(c == "autoattack_l2" for c, _ in got)  # no L2 measured
    row = leaderboard_row(rec)
    rest = {c: v for (c, e), v in got.items() if not c.startswith("autoattack_")}
    assert rest == {c: float(row[c]) for c in COLUMNS
                    if not c.startswith("autoattack_") and row[c] is not None}
    assert rest["evaluation_run"] == 9 and rest["alpha"] == 8.0 and rest["seed"] == 1
    assert all(e == 0 for (c, e) in got if not c.startswith("autoattack_"))
    # two ε equal within a relative 1e-6: the first, as the row takes it
    twice = {**rec, "autoattack": {"linf": [
        {"eps": 0.1, "robust_acc": 0.3, "version": "standard", "n": 10},
        {"eps": 0.1 * (1 + 1e-9), "robust_acc": 0.4, "version": "standard", "n": 10}]}}
    assert [v for c, _, v in scores(twice) if c == "autoattack_linf"] == [0.3]
    assert leaderboard_row(twice, {"linf": 0.1})["autoattack_linf"] == 0.3


def test_the_leaderboard_columns_are_spelled_once():
    """The displayed columns (the page's and the CLI's) are fields of a row; the sortable
    ones are exactly those among :data:`COLUMNS`; ``{eps}`` only in AutoAttack headers."""
    from ml.evaluate.record import COLUMNS, LEADERBOARD, CellKind

    row = leaderboard_row({"autoattack": {}, "corruptions": None,
                           "minimal": {"median": {}, "mean": {}}})
    keys = [c.key for c in LEADERBOARD]
    assert len(set(keys)) == len(keys) and set(keys) <= set(row)
    assert keys[:3] == ["evaluation_run", "model_run", "target"] and keys[-1] == "owner"
    assert {c.key for c in LEADERBOARD if c.sortable} == set(keys) & set(COLUMNS)
    assert {c.kind for c in LEADERBOARD} <= set(get_args(CellKind))
    counted = {c.key for c in LEADERBOARD if c.count}
    assert {c.count for c in LEADERBOARD if c.count} <= set(row)  # counts are row fields
    # every measurement shown says how many samples it is over; the condition does not
    assert {c.key for c in LEADERBOARD if c.kind in (
        "pct", "autoattack", "corruptions", "soundness")} | {"median_l2", "median_linf",
                                                            "grad_l2_median"} <= counted
    assert not counted & {"evaluation_run", "model_run", "target", "alpha", "seed"}
    for c in LEADERBOARD:
        assert ("{eps}" in c.header) == (c.kind == "autoattack") == (c.threat_model is not None)
        assert (c.digits is not None) == (c.kind == "number")
        assert c.key == f"autoattack_{c.threat_model}" or c.threat_model is None
        assert c.page or c.cli
    labels = {"linf": "8/255", "l2": "0.5"}
    assert [c.heading(labels) for c in LEADERBOARD if c.kind == "autoattack"] == [
        "AA L∞ 8/255", "AA L2 0.5"]


def test_every_norm_and_score_of_a_record_is_a_leaderboard_column():
    from ml.evaluate.attacks import NORMS
    from ml.evaluate.record import COLUMNS

    assert {f"{s}_{n}" for s in ("median", "mean") for n in NORMS} <= set(COLUMNS)
    assert {f"autoattack_{n}" for n in THREAT_MODELS} <= set(COLUMNS)


@pytest.mark.parametrize(("eps", "label"), [(8 / 255, "8/255"), (0.5, "0.5"), (0.1, "0.1"),
                                            (1.0, "1"), (0.0123456, "0.0123456")])
def test_eps_is_written_as_robustbench_writes_it(eps, label):
    assert eps_label(eps) == label


def test_a_record_of_an_evaluation_without_noise_takes_the_samples_clean_accuracy(trained):
    model, x, y = trained
    cfg = EvaluateConfig(parts=("minimal",), attacks="quick", norms=("l2",), n_samples=10,
                         batch_size=10, device="cpu")
    out = evaluate_model(cfg, MemoryRecorder(), model, x, y, num_classes=10)
    rec = model_record(evaluation={"id": 1, "result": out}, model=MODEL)
    assert rec["clean_acc"] == out["clean_accuracy"] and rec["clean_acc_n"] == 10
    assert rec["noise"] is None and rec["autoattack"] == {} and rec["corruptions_acc"] is None
    # a study whose evaluations skipped the noise curve still summarizes
    (row,) = robustness_table([{"id": 1, "target": "none", "alpha": 0, "backbone": "b",
                                "dataset": "d", "seed": 0, "result": out}])
    assert row["noise"] is None and row["medians"]["l2"]["n"] == 1


def test_a_condition_averages_autoattack_per_eps_over_its_seeds(evaluated):
    other = {**evaluated, "autoattack": {"components": [], "threat_models": {"linf": [
        {**r, "robust_accuracy": r["robust_accuracy"] + 0.1}
        for r in evaluated["autoattack"]["threat_models"]["linf"]]}}}
    (row,) = robustness_table([
        {"id": i, "target": "none", "alpha": 0, "backbone": "b", "dataset": "d", "seed": i,
         "result": res} for i, res in enumerate([evaluated, other])])
    grid = row["autoattack"]["linf"]
    assert grid["eps"] == pytest.approx([8 / 255, 0.1]) and grid["n"] == 2
    first = evaluated["autoattack"]["threat_models"]["linf"][0]["robust_accuracy"]
    assert grid["mean"][0] == pytest.approx(first + 0.05)
    assert grid["sem"][0] == pytest.approx(0.05) and grid["versions"] == ["custom"]
    assert math.isfinite(np.sum(grid["mean"]))


# the soundness and mechanism parts in the shape ml.evaluate.soundness and .mechanism write
# them (tests/ml/evaluate/test_soundness.py and test_mechanism.py run the real ones)
SOUNDNESS = {"samples": 8, "reference_run": 4, "transfer_skipped": None, "norms": {
    "l2": {"agreement": {"samples": 7, "best_median": 0.4, "disagreement": 1.3,
                         "families": {"DDNAttack": {"median": 0.5, "ratio": 1.25}}},
           "decision_based": {"samples": 7, "median": 0.9, "white_box_median": 0.4,
                              "smaller": 0, "unbroken": 0, "smaller_share": 0.0},
           "transfer": None, "autoattack_inconsistent": 0, "verdict": "sound",
           "warnings": []},
    "linf": {"agreement": {"samples": 7, "best_median": 0.01, "disagreement": 1.1,
                           "families": {}},
             "decision_based": {"samples": 7, "median": 0.004, "white_box_median": 0.01,
                                "smaller": 5, "unbroken": 0, "smaller_share": 5 / 7},
             "transfer": None, "autoattack_inconsistent": 2, "verdict": "suspect",
             "warnings": ["L∞: HopSkipJump beats the gradient attacks", "L∞: AutoAttack "
                          "breaks 2 sample(s) below their minimal perturbation"]}}}
MECHANISM = {"samples": 20, "input_gradient": {"l2": {"n": 20, "median": 2.0, "mean": 2.5},
                                               "l1": {"n": 20, "median": 40.0, "mean": 50.0}},
             "subspace": {"k": 64, "dim": 1024, "skipped": None, "expected_random": 0.0625,
                          "random": {"n": 1000, "median": 0.06, "mean": 0.0625},
                          "norms": {"l2": {"n": 7, "median": 0.3, "mean": 0.35},
                                    "linf": {"n": 6, "median": 0.2, "mean": 0.25}}},
             "layers": None, "layers_skipped": "no similarity target"}


def _parted(**parts) -> dict:
    """An evaluation of 20 attacked samples (clean accuracy on 359), AutoAttack L∞ on 10,
    corruptions on 30, with ``parts``."""
    return {"parts": ["noise", "minimal", "autoattack", "corruptions", *parts],
            "noise": {"sigmas": [0.0], "accuracy": [0.9], "n": 359}, "n": 20,
            "median_l2": 0.4, "median_linf": 0.01, "mean_l2": 0.5,
            "autoattack": {"threat_models": {"linf": [
                {"epsilon": 8 / 255, "robust_accuracy": 0.4, "version": "custom", "n": 10}]}},
            "corruptions": {"names": ["fog"], "severities": [1], "accuracy": {"fog": [0.6]},
                            "mean_accuracy": 0.6, "n": 30}, **parts}


def test_the_row_shows_the_soundness_verdict_and_the_mechanism_medians_with_their_counts():
    rec = model_record(evaluation={"id": 9, "result": _parted(
        soundness=SOUNDNESS, mechanism=MECHANISM)}, model=MODEL)
    row = leaderboard_row(rec)
    # one verdict for the row: suspect when any norm is, naming those norms and every warning
    assert row["soundness"] == "suspect" and row["soundness_suspect"] == ["L∞"]
    assert row["soundness_warnings"] == SOUNDNESS["norms"]["linf"]["warnings"]
    assert row["soundness_n"] == 8
    assert (row["grad_l2_median"], row["grad_l1_median"], row["grad_n"]) == (2.0, 40.0, 20)
    assert (row["subspace_share_l2"], row["subspace_share_l2_n"]) == (0.3, 7)
    assert (row["subspace_share_linf"], row["subspace_share_linf_n"]) == (0.2, 6)
    assert row["subspace_share_l1"] is None and row["subspace_share_random"] == 0.06
    # every number beside the count it is over
    assert (row["clean_acc_n"], row["autoattack_linf_n"], row["minimal_n"],
            row["corruptions_n"]) == (359, 10, 20, 30)
    assert rec["mechanism"]["grad_n"] == 20 and rec["mechanism"]["subspace_share_n"] == {
        "l2": 7, "linf": 6}
    # the mechanism's medians sort like the other numbers; the verdict is no number
    got = {c: v for c, e, v in scores(rec)}
    assert {k: got[k] for k in ("grad_l2_median", "grad_l1_median", "subspace_share_l2",
                                "subspace_share_linf")} == {
        "grad_l2_median": 2.0, "grad_l1_median": 40.0, "subspace_share_l2": 0.3,
        "subspace_share_linf": 0.2}
    assert not any(c.startswith("soundness") or c.endswith("_n") for c in got)
    sound = {**SOUNDNESS, "norms": {"l2": SOUNDNESS["norms"]["l2"]}}
    row = leaderboard_row(model_record(evaluation={"id": 9, "result": _parted(
        soundness=sound)}, model=MODEL))
    assert row["soundness"] == "sound" and row["soundness_suspect"] == []
    assert row["soundness_warnings"] == [] and row["grad_l2_median"] is None
    unread = {**SOUNDNESS, "norms": {"l2": {**SOUNDNESS["norms"]["l2"], "verdict": None}}}
    assert leaderboard_row(model_record(evaluation={"id": 9, "result": _parted(
        soundness=unread)}, model=MODEL))["soundness"] is None  # no verdict: not "sound"


def test_a_row_without_the_parts_has_empty_cells_and_no_scores_for_them():
    rec = model_record(evaluation={"id": 9, "result": _parted()}, model=MODEL)
    row = leaderboard_row(rec)
    assert row["soundness"] is None and row["soundness_n"] is None
    assert row["soundness_suspect"] == [] == row["soundness_warnings"]
    assert all(row[k] is None for k in ("grad_l2_median", "grad_l1_median", "grad_n",
                                        "subspace_share_l2", "subspace_share_l2_n",
                                        "subspace_share_random"))
    assert not any(c.startswith(("grad_", "subspace_")) for c, _, _ in scores(rec))
    # no minimal search: no count for medians there are none of
    bare = model_record(evaluation={"id": 9, "result": {"parts": ["noise"], "noise": {
        "sigmas": [0.0], "accuracy": [0.9], "n": 359}}}, model=MODEL)
    assert leaderboard_row(bare)["minimal_n"] is None
