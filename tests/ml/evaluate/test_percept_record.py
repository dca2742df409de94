"""The percept part's headline in the record and the leaderboard row: its L2 numbers as
sortable columns with their sample counts, None without the part or at another headline
norm, and a result holding something else than a number where one belongs left out rather
than raising (an imported evaluation's may)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ml.evaluate.record import (
    COLUMNS,
    LEADERBOARD,
    PERCEPT_COLUMNS,
    leaderboard_row,
    model_record,
    percept_record,
    scores,
)
from tests.percept_block import percept_block

MODEL = {"id": 7, "name": "m", "config": {"backbone": "small_cnn", "dataset": "digits32"}}


@pytest.fixture(scope="module")
def block() -> dict[str, Any]:
    return percept_block()


def _rec(**parts: Any) -> dict[str, Any]:
    result = {"parts": ["noise", *parts], "noise": {"sigmas": [0.0], "accuracy": [0.9],
                                                    "n": 100}, **parts}
    return model_record(evaluation={"id": 9, "result": result}, model=MODEL)


def test_a_record_with_the_percept_part_has_its_l2_headline_as_columns(block) -> None:
    rec = _rec(percept=block)
    head = block["headline"]
    l2 = block["norms"]["l2"]
    assert rec["percept"]["headline_norm"] == "l2"
    assert rec["percept"]["headline"] == head  # every headline number, as the part wrote it
    assert rec["percept"]["samples"] == l2["n"] and rec["percept"]["layer"] == "layer3"
    v1 = next(r for r in l2["readouts"] if r["name"] == "v1")
    deep = next(r for r in l2["readouts"] if r["name"] == "layer3")
    assert rec["percept"]["n"] == {"v1_adv": v1["adv"]["n"], "model_adv": deep["adv"]["n"],
                                   "specificity": l2["specificity"]["n"]}
    row = leaderboard_row(rec)
    assert row["percept_v1_adv_l2"] == head["v1_adv_l2"]
    assert row["percept_model_adv_l2"] == head["model_adv_l2"]
    assert row["percept_specificity_l2"] == head["specificity_l2"]
    assert row["percept_specificity_l2_n"] == l2["specificity"]["n"] > 0
    assert row["percept_v1_adv_l2_n"] == v1["adv"]["n"]
    got = {c: v for c, _, v in scores(rec)}
    assert {k: got[k] for k in PERCEPT_COLUMNS} == {
        f"percept_{k}_l2": head[f"{k}_l2"] for k in ("v1_adv", "model_adv", "specificity")}
    assert not any(c.endswith("_n") for c in got)


def test_a_record_without_the_part_has_none_and_no_scores_for_it() -> None:
    rec = _rec()
    assert rec["percept"] is None
    row = leaderboard_row(rec)
    assert all(row[k] is None and row[f"{k}_n"] is None for k in PERCEPT_COLUMNS)
    assert not any(c.startswith("percept_") for c, _, _ in scores(rec))


def test_a_part_run_without_l2_keeps_its_headline_but_fills_no_l2_column() -> None:
    linf = percept_block(norms=("linf",))
    rec = _rec(percept=linf)
    assert rec["percept"]["headline_norm"] == "linf"
    assert rec["percept"]["headline"]["specificity_linf"] == linf["headline"]["specificity_linf"]
    row = leaderboard_row(rec)
    assert all(row[k] is None and row[f"{k}_n"] is None for k in PERCEPT_COLUMNS)
    assert not any(c.startswith("percept_") for c, _, _ in scores(rec))


@pytest.mark.parametrize("bad", ["0.5", True, False, {"median": 0.5}, [0.5], math.nan,
                                 math.inf, None])
def test_a_headline_that_is_no_real_number_is_left_out(block, bad) -> None:
    """A string, a bool, a container or a non-finite number where a headline number
    belongs: None in the record and the row, no score, nothing raised."""
    head = {**block["headline"], "specificity_l2": bad, "v1_adv_l2": bad}
    rec = _rec(percept={**block, "headline": head})
    assert rec["percept"]["headline"]["specificity_l2"] is None
    assert rec["percept"]["headline"]["model_adv_l2"] == block["headline"]["model_adv_l2"]
    row = leaderboard_row(rec)
    assert row["percept_specificity_l2"] is None and row["percept_v1_adv_l2"] is None
    assert row["percept_model_adv_l2"] == block["headline"]["model_adv_l2"]
    got = {c for c, _, _ in scores(rec)}
    assert "percept_model_adv_l2" in got
    assert not {"percept_specificity_l2", "percept_v1_adv_l2"} & got


@pytest.mark.parametrize("part", [
    {"headline_norm": 2, "headline": "junk", "norms": [1]},
    {"headline": {"specificity_l2": 1.5}, "norms": {"l2": {"n": "7", "readouts": "x",
                                                           "specificity": 3}}},
    {"headline_norm": "l2", "headline": {"specificity_l2": 1.5},
     "norms": {"l2": {"n": True, "readouts": [1, {"name": "v1", "adv": None}],
                      "specificity": {"n": -1, "layer": 4}}}}])
def test_a_malformed_block_reads_what_it_can(part) -> None:
    """Whatever an imported block holds, the record reads the numbers that are numbers and
    None for the rest (a headline norm that is no name counts as L2, the part's default)."""
    rec = percept_record(part)
    assert rec is not None and rec["headline_norm"] == "l2"
    assert rec["samples"] is None and rec["layer"] is None
    assert rec["n"] == {"v1_adv": None, "model_adv": None, "specificity": None}
    spec = rec["headline"]["specificity_l2"]
    assert spec == (None if part["headline"] == "junk" else 1.5)
    assert leaderboard_row(_rec(percept=part))["percept_specificity_l2"] == spec


def test_a_percept_block_that_is_no_mapping_is_no_part() -> None:
    assert percept_record("percept") is None and percept_record([1, 2]) is None  # type: ignore[arg-type]
    assert _rec(percept="percept")["percept"] is None


def test_the_percept_columns_sort_off_the_page_beside_their_counts() -> None:
    """Sortable (in :data:`COLUMNS`), not on the page, each beside its sample count, titled
    with what the number is."""
    cols = {c.key: c for c in LEADERBOARD}
    assert set(PERCEPT_COLUMNS) <= set(COLUMNS)
    for key in PERCEPT_COLUMNS:
        assert cols[key].sortable and not cols[key].page and cols[key].count == f"{key}_n"
        assert cols[key].kind == "number" and cols[key].title.startswith("percept:")
    assert "clean" in cols["percept_v1_adv_l2"].title
    assert "÷" in cols["percept_specificity_l2"].title


def test_the_leaderboard_and_the_study_name_the_same_percept_scores() -> None:
    """The study reads the record's names (one definition, in ml.evaluate.record)."""
    from ml.evaluate import alignment_summary, record

    assert record.PERCEPT_SCORES == alignment_summary.PERCEPT_SCORES
    assert set(record.PERCEPT_SCORES) <= set(record.PERCEPT_HEADLINES)
