"""The study page's data carries the frequency part's curves per condition
(:func:`ml.evaluate.summary.frequency_table`)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Run
from tests.frequency_block import CUTOFFS, frequency_block
from tests.server.test_frontier_api import stored_study


def add_frequency(settings: Settings, evals: dict, *, skip: tuple = ()) -> None:
    """Give each stored evaluation (by (target, α, seed)) a frequency block, except the
    conditions in ``skip``."""
    with session_scope(settings.db_url) as s:
        for (target, alpha, seed), run_id in evals.items():
            if target in skip:
                continue
            run = s.execute(select(Run).where(Run.id == run_id)).scalar_one()
            run.result = {**(run.result or {}),
                          "frequency": frequency_block(seed, 0.02 * alpha / 16)}


def test_a_study_serves_its_frequency_rows_per_condition(
    client: TestClient, settings: Settings
) -> None:
    ids = stored_study(settings)
    add_frequency(settings, ids["evals"], skip=("shuffle",))
    body = client.get(f"/api/studies/{ids['study']}").json()
    rows = {(r["target"], r["alpha"]): r for r in body["frequency"]}
    # shuffle ran no frequency part: no row for it
    assert set(rows) == {("none", 0.0), ("neural-model", 2.0), ("neural-model", 16.0)}
    f = rows[("neural-model", 16.0)]["frequency"]
    assert f["cutoffs"] == CUTOFFS and f["n"] == 3
    assert len(f["lowpass"]["mean"]) == len(CUTOFFS) and f["lowpass"]["sem"][3] > 0
    assert set(f["hybrid"]) == {"low", "high", "other"}
    assert f["fourier_map"]["eps"] == 4.0 and len(f["fourier_map"]["mean"]) == 8
    assert set(f["spectrum"]) == {"l2", "linf", "clean"}  # l1's spectrum is null
    assert sorted(rows[("neural-model", 16.0)]["run_ids"]) == sorted(
        v for (t, a, _), v in ids["evals"].items() if (t, a) == ("neural-model", 16.0))


def test_a_study_without_the_part_serves_no_frequency_rows(
    client: TestClient, settings: Settings
) -> None:
    ids = stored_study(settings)
    assert client.get(f"/api/studies/{ids['study']}").json()["frequency"] == []


def test_the_robustness_summary_carries_the_frequency_rows_of_the_picked_runs(
    client: TestClient, settings: Settings
) -> None:
    ids = stored_study(settings)
    add_frequency(settings, ids["evals"])
    picked = [v for (t, _, _), v in ids["evals"].items() if t == "none"]
    body = client.get("/api/summaries/robustness", params={"run_id": picked}).json()
    (row,) = body["frequency"]
    assert (row["target"], row["n"], sorted(row["run_ids"])) == ("none", 3, sorted(picked))
    assert row["frequency"]["hybrid"]["low"]["mean"]
