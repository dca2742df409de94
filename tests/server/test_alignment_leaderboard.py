"""The alignment part's headline means in the record and on the leaderboard: sortable like
any score, null for the evaluations that did not run the part, through the CLI too."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.store.db import session_scope
from core.store.models import Run
from core.store.scores import write_scores
from tests.alignment_block import alignment_block
from tests.server.test_records_api import ids  # noqa: F401  (the stored runs' fixture)


@pytest.fixture
def aligned(ids, settings) -> dict:  # noqa: F811
    """Evaluations 2 and 3 (of four) ran the alignment part against the similarity run;
    their scores rewritten as a finishing run's are."""
    with session_scope(settings.db_url) as s:
        for k, rsa in ((1, 0.2), (3, 0.5)):
            run = s.execute(select(Run).where(Run.id == ids["evals"][k])).scalar_one()
            run.result = {**run.result, "parts": [*run.result["parts"], "alignment"],
                          "alignment": alignment_block(rsa, similarity_run=ids["sim"],
                                                       feve=None if k == 1 else 0.6)}
            run.config = {**(run.config or {}), "similarity_run": ids["sim"]}
            s.flush()
            write_scores(s, run.id)
    return ids


def test_the_leaderboard_sorts_by_alignment_with_the_unaligned_last(client, aligned) -> None:
    ev = aligned["evals"]
    data = client.get("/api/leaderboard", params={"sort": "rsa_mix_oracle"}).json()
    assert [r["evaluation_run"] for r in data["items"]][:2] == [ev[3], ev[1]]
    assert [r["rsa_mix_oracle"] for r in data["items"]] == [0.5, 0.2, None, None]
    assert data["items"][0]["feve_best"] == 0.6 and data["items"][1]["feve_best"] is None
    asc = client.get("/api/leaderboard", params={"sort": "cka_mix_oracle", "order": "asc"})
    assert [r["evaluation_run"] for r in asc.json()["items"]][:2] == [ev[1], ev[3]]
    norm = client.get("/api/leaderboard", params={"sort": "rsa_mix_oracle_normalized"})
    assert norm.json()["items"][0]["rsa_mix_oracle_normalized"] == pytest.approx(0.55)
    layout = {c["key"]: c for c in data["layout"]}
    assert layout["rsa_mix_oracle"]["sortable"] and layout["feve_best"]["sortable"]


def test_the_record_carries_the_alignment_headlines_and_similarity_run(client, aligned
                                                                       ) -> None:
    rec = client.get(f"/api/runs/{aligned['evals'][3]}/record").json()
    assert rec["alignment"]["similarity_run"] == aligned["sim"]
    assert rec["alignment"]["mean"]["rsa_mix_oracle"] == 0.5
    assert rec["alignment"]["n_scans"] == 2
    assert client.get(f"/api/runs/{aligned['evals'][0]}/record").json()["alignment"] is None


def test_the_cli_sorts_the_leaderboard_by_alignment(client, aligned, settings, capsys
                                                    ) -> None:
    from cli import build_parser, cmd_leaderboard
    from tests.livesrv import live_server

    with live_server(settings) as url:
        token = client.headers["Authorization"].split()[1]
        cli = settings.model_copy(update={"api_url": url, "token": token})
        args = build_parser().parse_args(["leaderboard", "--sort", "rsa_mix_oracle"])
        assert cmd_leaderboard(args, cli) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert "RSA oracle" in lines[0]
    assert lines[1].split()[0] == str(aligned["evals"][3]) and "0.500" in lines[1]
    assert lines[2].split()[0] == str(aligned["evals"][1]) and "0.200" in lines[2]
