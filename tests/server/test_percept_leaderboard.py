"""The percept part's L2 headline in the record and on the leaderboard: sortable like any
score, null for the evaluations that did not run the part or whose headline is no number,
through the CLI too."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.store.db import session_scope
from core.store.models import Run
from core.store.scores import write_scores
from tests.percept_block import percept_block
from tests.server.test_records_api import ids  # noqa: F401  (the stored runs' fixture)


def _block(specificity: Any) -> dict[str, Any]:
    block = percept_block()
    return {**block, "headline": {**block["headline"], "specificity_l2": specificity}}


@pytest.fixture
def percepts(ids, settings) -> dict:  # noqa: F811
    """Evaluations 1, 2 and 4 (of four) ran the percept part: specificity 0.8, 1.6 and, as
    an imported result might hold it, a string; their scores rewritten as a finishing
    run's are."""
    with session_scope(settings.db_url) as s:
        for k, spec in ((0, 0.8), (1, 1.6), (3, "1.2")):
            run = s.execute(select(Run).where(Run.id == ids["evals"][k])).scalar_one()
            run.result = {**run.result, "parts": [*run.result["parts"], "percept"],
                          "percept": _block(spec)}
            s.flush()
            write_scores(s, run.id)
    return ids


def test_the_leaderboard_sorts_by_specificity_with_the_rest_last(client, percepts) -> None:
    ev = percepts["evals"]
    data = client.get("/api/leaderboard", params={"sort": "percept_specificity_l2"}).json()
    assert [r["evaluation_run"] for r in data["items"]][:2] == [ev[1], ev[0]]
    assert [r["percept_specificity_l2"] for r in data["items"]] == [1.6, 0.8, None, None]
    assert {r["evaluation_run"] for r in data["items"][2:]} == {ev[2], ev[3]}
    head = percept_block()["headline"]
    top = data["items"][0]
    assert top["percept_v1_adv_l2"] == head["v1_adv_l2"]
    assert top["percept_model_adv_l2"] == head["model_adv_l2"]
    assert top["percept_specificity_l2_n"] == percept_block()["norms"]["l2"]["specificity"]["n"]
    asc = client.get("/api/leaderboard", params={"sort": "percept_specificity_l2",
                                                 "order": "asc"}).json()
    assert [r["evaluation_run"] for r in asc["items"]][:2] == [ev[0], ev[1]]
    # the string specificity is left out; the same evaluation's V1 number still sorts
    v1 = client.get("/api/leaderboard", params={"sort": "percept_v1_adv_l2"}).json()
    assert {r["evaluation_run"] for r in v1["items"][:3]} == {ev[0], ev[1], ev[3]}
    layout = {c["key"]: c for c in data["layout"]}
    assert layout["percept_specificity_l2"]["sortable"]
    assert not layout["percept_specificity_l2"]["page"]


def test_the_record_carries_the_percept_headline(client, percepts) -> None:
    rec = client.get(f"/api/runs/{percepts['evals'][1]}/record").json()
    assert rec["percept"]["headline_norm"] == "l2"
    assert rec["percept"]["headline"]["specificity_l2"] == 1.6
    assert rec["percept"]["layer"] == "layer3" and rec["percept"]["samples"] > 0
    odd = client.get(f"/api/runs/{percepts['evals'][3]}/record").json()
    assert odd["percept"]["headline"]["specificity_l2"] is None
    assert client.get(f"/api/runs/{percepts['evals'][2]}/record").json()["percept"] is None


def test_the_cli_sorts_the_leaderboard_by_specificity(client, percepts, settings, capsys
                                                      ) -> None:
    from cli import build_parser, cmd_leaderboard
    from tests.livesrv import live_server

    with live_server(settings) as url:
        token = client.headers["Authorization"].split()[1]
        cli = settings.model_copy(update={"api_url": url, "token": token})
        args = build_parser().parse_args(["leaderboard", "--sort", "percept_specificity_l2"])
        assert cmd_leaderboard(args, cli) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert "specificity L2" in lines[0]
    assert lines[1].split()[0] == str(percepts["evals"][1]) and "1.600" in lines[1]
    assert lines[2].split()[0] == str(percepts["evals"][0]) and "0.800" in lines[2]
