import pytest

from ml.evaluate.alignment_summary import alignment_table, spearman_ci
from ml.evaluate.measures import ROBUSTNESS


def _eval(i, target, seed, rsa, median_l2, *, alignment=True, cka=0.5):
    result = {"noise": {"sigmas": [0.0, 0.1], "accuracy": [0.9, 0.5]},
              "median_l2": median_l2}
    if alignment:
        result["alignment"] = {"mean": {"rsa_mix_oracle": rsa, "cka_mix_oracle": cka,
                                        "feve_best": None}}
    return {"id": i, "target": target, "alpha": 20.0, "seed": seed,
            "backbone": "tiny", "dataset": "cifar10", "result": result}


def _pair(table, score, measure):
    return next(p for p in table["pairs"] if p["score"] == score and p["measure"] == measure)


def test_a_planted_monotone_relation_gives_rho_one():
    evals = [_eval(i, "none" if i < 3 else "neural-model", i % 3, 0.1 * i, 0.2 + i ** 2)
             for i in range(6)]
    table = alignment_table(evals, replicates=200)
    pair = _pair(table, "rsa_mix_oracle", "median_l2")
    assert pair["r"] == pytest.approx(1.0) and pair["n"] == 6 and pair["skipped"] == 0
    assert -1 <= pair["ci_low"] <= 1.0 <= pair["ci_high"] <= 1
    assert pair["replicates"] > 0 and pair["reason"] is None
    assert [p["run_id"] for p in pair["points"]] == list(range(6))
    assert pair["points"][3] == {"run_id": 3, "condition": "neural-model", "alpha": 20.0,
                                 "seed": 0, "x": pytest.approx(0.3), "y": 9.2}
    assert table["measures"][0]["name"] == ROBUSTNESS[0].name
    assert all(m["name"] != "clean_accuracy" for m in table["measures"])
    # seeded: the same data give the same interval
    again = _pair(alignment_table(evals, replicates=200), "rsa_mix_oracle", "median_l2")
    assert (again["ci_low"], again["ci_high"]) == (pair["ci_low"], pair["ci_high"])
    none = next(c for c in table["conditions"] if c["target"] == "none")
    assert none["target"] == "none" and none["alpha"] == 0.0 and none["n"] == 3
    assert none["scores"]["rsa_mix_oracle"]["mean"] == pytest.approx(0.1)
    assert none["scores"]["rsa_mix_oracle"]["sem"] > 0
    assert none["scores"]["feve_best"] == {"mean": None, "sem": None, "n": 0}


def test_ties_and_a_reversed_relation():
    evals = [_eval(i, "none", i, [0.1, 0.1, 0.2, 0.3][i], [4.0, 4.0, 2.0, 1.0][i])
             for i in range(4)]
    pair = _pair(alignment_table(evals, replicates=100), "rsa_mix_oracle", "median_l2")
    assert pair["r"] == pytest.approx(-1.0)  # ties share a rank
    constant = _pair(alignment_table(evals, replicates=100), "cka_mix_oracle", "median_l2")
    assert constant["r"] is None and "constant" in constant["reason"]


def test_missing_scores_are_skipped_and_counted():
    evals = [_eval(0, "none", 0, 0.1, 1.0), _eval(1, "none", 1, None, 2.0),
             _eval(2, "shuffle", 0, 0.3, None), _eval(3, "shuffle", 1, 0.4, 3.0),
             _eval(4, "shuffle", 2, 0.5, 3.0, alignment=False)]
    table = alignment_table(evals, replicates=50)
    assert table["models"] == 4
    pair = _pair(table, "rsa_mix_oracle", "median_l2")
    assert pair["n"] == 2 and pair["skipped"] == 2
    assert pair["r"] is None and "2 model(s)" in pair["reason"]
    assert not any(p["score"] == "feve_best" for p in table["pairs"])


def test_no_alignment_part_no_table():
    assert alignment_table([_eval(0, "none", 0, 0.1, 1.0, alignment=False)]) is None
    assert alignment_table([]) is None


def test_spearman_ci_needs_three():
    assert spearman_ci([1.0, 2.0], [1.0, 2.0])["r"] is None


def test_the_percept_parts_headline_is_a_score_of_its_own_norm():
    """A model that ran only the percept part is in the table with its percept scores; the
    scores are named by the part's headline norm, L2's first, and averaged per condition."""
    from tests.percept_block import percept_block

    evals = [_eval(i, "none" if i < 3 else "neural-model", i % 3, 0.1 * i, 0.2 + i,
                   alignment=i % 2 == 0) for i in range(6)]
    for i, e in enumerate(evals):
        e["result"]["percept"] = percept_block(norms=("linf", "l2") if i else ("linf",),
                                               n=12, seed=i)
    table = alignment_table(evals, replicates=100)
    assert table["models"] == 6  # three without the alignment part
    assert table["scores"][-6:] == ["percept_v1_adv_l2", "percept_model_adv_l2",
                                    "percept_specificity_l2", "percept_v1_adv_linf",
                                    "percept_model_adv_linf", "percept_specificity_linf"]
    spec = _pair(table, "percept_specificity_l2", "median_l2")
    assert spec["n"] == 5 and spec["skipped"] == 1  # model 0's headline is L∞'s
    head = {e["id"]: e["result"]["percept"]["headline"] for e in evals}
    assert {p["run_id"]: p["x"] for p in spec["points"]} == {
        i: pytest.approx(head[i]["specificity_l2"]) for i in range(1, 6)}
    assert _pair(table, "percept_v1_adv_linf", "median_l2")["n"] == 1
    assert _pair(table, "rsa_mix_oracle", "median_l2")["n"] == 3
    model = next(c for c in table["conditions"] if c["target"] == "neural-model")
    assert model["scores"]["percept_model_adv_l2"]["n"] == 3
    assert model["scores"]["percept_model_adv_l2"]["mean"] == pytest.approx(
        sum(head[i]["model_adv_l2"] for i in (3, 4, 5)) / 3)


def test_a_score_that_is_not_a_number_is_left_out_not_raised():
    e = _eval(0, "none", 0, 0.1, 1.0)
    e["result"]["alignment"]["mean"]["cka_mix_oracle"] = "0.5"
    e["result"]["percept"] = {"headline_norm": "l2",
                              "headline": {"v1_adv_l2": {"x": 1}, "specificity_l2": True,
                                           "model_adv_l2": 0.2}}
    from ml.evaluate.alignment_summary import alignment_scores

    assert alignment_scores(e["result"]) == {"rsa_mix_oracle": 0.1,
                                             "percept_model_adv_l2": 0.2}


def test_a_percept_block_that_is_not_one_is_left_out_not_raised():
    from ml.evaluate.alignment_summary import alignment_scores

    e = _eval(0, "none", 0, 0.1, 1.0)
    alone = alignment_scores(e["result"])
    assert alone is not None and alone["rsa_mix_oracle"] == 0.1
    for block in (["a list"], "a string", 3):
        e["result"]["percept"] = block
        assert alignment_scores(e["result"]) == alone
    # a headline norm that is not a name reads as L2's, as the record reads it
    e["result"]["percept"] = {"headline_norm": 7, "headline": {"specificity_l2": 2.5}}
    assert alignment_scores(e["result"]) == {**alone, "percept_specificity_l2": 2.5}
