"""The study page's data carries alignment against robustness across its models
(:func:`ml.evaluate.alignment_summary.alignment_table`)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Run
from tests.alignment_block import alignment_block
from tests.server.test_frontier_api import stored_study

# (target, α) → rsa_mix_oracle at seed 0; median L2 grows with it in stored_study's GRID
RSA = {"none": 0.1, "neural-model": 0.3, "shuffle": 0.15}


def add_alignment(settings: Settings, evals: dict, *, skip: tuple = ()) -> None:
    """Give each stored evaluation (by (target, α, seed)) an alignment block whose
    rsa_mix_oracle rises with its condition's and α's robustness, except ``skip``'s."""
    with session_scope(settings.db_url) as s:
        for (target, alpha, seed), run_id in evals.items():
            if target in skip:
                continue
            run = s.execute(select(Run).where(Run.id == run_id)).scalar_one()
            rsa = RSA[target] + alpha / 100 + 0.001 * seed
            run.result = {**(run.result or {}), "alignment": alignment_block(rsa)}


def add_percept(settings: Settings, evals: dict) -> None:
    """Give each stored evaluation a percept block (its own seeded stand-in readout)."""
    from tests.percept_block import percept_block

    with session_scope(settings.db_url) as s:
        for k, run_id in enumerate(sorted(evals.values())):
            run = s.execute(select(Run).where(Run.id == run_id)).scalar_one()
            run.result = {**(run.result or {}), "percept": percept_block(n=12, seed=k)}


def test_a_study_serves_alignment_against_robustness(
    client: TestClient, settings: Settings
) -> None:
    ids = stored_study(settings)
    add_alignment(settings, ids["evals"])
    body = client.get(f"/api/studies/{ids['study']}").json()
    table = body["alignment"]
    assert table["models"] == 12 and table["scores"][0] == "rsa_mix_oracle"
    assert "clean_accuracy" not in [m["name"] for m in table["measures"]]
    pair = next(p for p in table["pairs"]
                if (p["score"], p["measure"]) == ("rsa_mix_oracle", "median_l2"))
    assert pair["n"] == 12 and pair["skipped"] == 0 and pair["r"] > 0.9
    assert -1 <= pair["ci_low"] <= pair["r"] <= pair["ci_high"] <= 1
    assert {p["run_id"] for p in pair["points"]} == set(ids["evals"].values())
    assert {p["condition"] for p in pair["points"]} == {"none", "neural-model", "shuffle"}
    conds = {(c["target"], c["alpha"]): c for c in table["conditions"]}
    assert len(conds) == 4
    none = conds[("none", 0.0)]["scores"]["rsa_mix_oracle"]
    assert none["mean"] == pytest.approx(0.101) and none["n"] == 3 and none["sem"] > 0


def test_a_study_without_the_part_serves_no_alignment(
    client: TestClient, settings: Settings
) -> None:
    ids = stored_study(settings)
    assert client.get(f"/api/studies/{ids['study']}").json()["alignment"] is None


def test_the_percept_parts_scores_are_served_beside_the_alignment_scores(
    client: TestClient, settings: Settings
) -> None:
    ids = stored_study(settings)
    add_percept(settings, ids["evals"])  # no alignment part: the percept scores alone
    table = client.get(f"/api/studies/{ids['study']}").json()["alignment"]
    assert table["models"] == 12
    assert [s for s in table["scores"] if s.startswith("percept_")] == [
        "percept_v1_adv_l2", "percept_model_adv_l2", "percept_specificity_l2"]
    pair = next(p for p in table["pairs"]
                if (p["score"], p["measure"]) == ("percept_specificity_l2", "median_l2"))
    assert pair["n"] == 12 and pair["skipped"] == 0
    assert not any(p["score"] == "rsa_mix_oracle" for p in table["pairs"])
    assert all(c["scores"]["percept_specificity_l2"]["n"] >= 1 for c in table["conditions"])
