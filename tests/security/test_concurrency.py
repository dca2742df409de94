"""Limits and idempotent writes under concurrent requests, on SQLite and PostgreSQL: eight
clients of one member write into one run at once (threads released together), and what
is stored keeps every bound and every uniqueness a lone client sees; each answer is a
2xx or a 409, never a 500."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from core.store.logs import size_of
from tests.concurrently import at_once
from tests.conftest import admin_client
from tests.security.conftest import as_token

WRITERS = 8
ROUNDS = 5
"""Rounds of writes at once, where one round may by chance not interleave."""
BOUND = 64 * 1024
"""The per-run log bound of these tests: the writers together send about 5x it."""


@pytest.fixture
def bounded(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(database_url=db_url, log_max_bytes=BOUND)


@pytest.fixture
def eve(bounded: Settings) -> Iterator[list[TestClient]]:
    """Eight clients of the member eve (a client each: each thread its own connection)."""
    with admin_client(bounded) as api:
        res = api.post("/api/users", json={"name": "eve"})
        assert res.status_code == 201, res.text
        yield [as_token(api, res.json()["token"]) for _ in range(WRITERS)]


def _external(client: TestClient) -> int:
    res = client.post("/api/runs", json={"kind": "external", "name": "raced"})
    assert res.status_code == 201, res.text
    return int(res.json()["id"])


def _lines(start: int, n: int) -> dict[str, Any]:
    return {"lines": [{"seq": s, "line": f"{s:08d} " + "x" * 90} for s in range(start, start + n)]}


def _statuses(answers: list[httpx.Response], allowed: set[int]) -> None:
    assert {r.status_code for r in answers} <= allowed, [(r.status_code, r.text[:200])
                                                         for r in answers]


def _read_log(client: TestClient, run_id: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines, after = [], -1
    while True:
        page = client.get(f"/api/runs/{run_id}/logs", params={"after": after,
                                                             "limit": 10_000}).json()
        lines += page["lines"]
        if not page["lines"]:
            return lines, page
        after = page["next_after"]


def test_concurrent_log_appenders_stay_within_the_runs_bound(eve: list[TestClient]) -> None:
    run_id = _external(eve[0])
    batches = 4  # each writer sends 4 batches of 50 lines (~100 B): ~5x the bound in all

    def append(w: int) -> list[httpx.Response]:
        return [eve[w].post(f"/api/runs/{run_id}/logs",
                            json=_lines((w * batches + b) * 50, 50)) for b in range(batches)]

    answers = [r for rs in at_once([lambda w=w: append(w) for w in range(WRITERS)])
               for r in rs]
    _statuses(answers, {200})
    lines, page = _read_log(eve[0], run_id)
    stored = sum(size_of(ln["line"]) for ln in lines)
    assert stored <= BOUND, f"{stored} bytes stored against a bound of {BOUND}"
    assert page["bytes"] == stored
    assert sum(r.json()["stored"] for r in answers) == len(lines)
    assert page["dropped"]["lines"] == sum(r.json()["dropped"] for r in answers)


def test_concurrent_resends_of_the_same_lines_store_them_once(eve: list[TestClient]) -> None:
    run_id = _external(eve[0])
    answers = []
    for r in range(ROUNDS):  # each round: all eight send one batch at once
        body = _lines(r * 100, 100)
        answers += at_once([lambda c=c, body=body: c.post(f"/api/runs/{run_id}/logs",
                                                          json=body) for c in eve])
    _statuses(answers, {200})
    assert sum(r.json()["stored"] for r in answers) == ROUNDS * 100
    assert sum(r.json()["skipped"] for r in answers) == ROUNDS * 100 * (WRITERS - 1)
    lines, page = _read_log(eve[0], run_id)
    assert [ln["seq"] for ln in lines] == list(range(ROUNDS * 100))
    assert page["bytes"] == sum(size_of(ln["line"]) for ln in lines)


def test_concurrent_metric_batches_into_one_series_count_every_point_once(
        eve: list[TestClient]) -> None:
    """Rounds of interleaved steps of one key, sent at once: each batch touches the
    rollup bucket of the others, and is sent by two writers."""
    run_id = _external(eve[0])
    span, apart, rounds = 256, WRITERS // 2, 20

    def batch(r: int, w: int) -> dict[str, Any]:
        return {"points": [{"key": "loss", "step": s, "value": float(s % 97)}
                           for s in range(r * span + w % apart, (r + 1) * span, apart)]}

    answers = []
    for r in range(rounds):
        answers += at_once([lambda r=r, w=w: eve[w].post(f"/api/runs/{run_id}/metrics",
                                                         json=batch(r, w))
                            for w in range(WRITERS)])
    _statuses(answers, {200})
    (key,) = eve[0].get(f"/api/runs/{run_id}/metrics").json()
    assert (key["count"], key["last_step"]) == (rounds * span, rounds * span - 1)
    series = eve[0].get(f"/api/runs/{run_id}/metrics/loss", params={"max_points": 100}).json()
    assert max(series["values"]) == 96 and min(series["values"]) == 0


def test_concurrent_creates_with_one_client_key_make_one_run(eve: list[TestClient]) -> None:
    body = {"kind": "external", "name": "offline", "client_key": "spool-0001"}
    answers = at_once([lambda c=c: c.post("/api/runs", json=body) for c in eve])
    _statuses(answers, {200, 201})
    assert [r.status_code for r in answers].count(201) == 1
    assert len({r.json()["id"] for r in answers}) == 1
    mine = eve[0].get("/api/runs", params={"kind": "external"}).json()
    assert mine["total"] == 1


def test_concurrent_uploads_of_one_name_leave_one_artifact_matching_its_file(
        eve: list[TestClient], bounded: Settings) -> None:
    run_id = _external(eve[0])
    bodies = [bytes([w]) * 200_000 for w in range(WRITERS)]
    answers = at_once([lambda w=w: eve[w].put(f"/api/runs/{run_id}/artifacts/weights.bin",
                                              content=bodies[w]) for w in range(WRITERS)])
    _statuses(answers, {201})
    rows = eve[0].get(f"/api/runs/{run_id}/artifacts").json()
    assert [r["name"] for r in rows] == ["weights.bin"]
    data = eve[0].get(f"/api/runs/{run_id}/artifacts/weights.bin").content
    assert data in bodies  # one upload whole, not a mix
    assert rows[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert rows[0]["size_bytes"] == len(data)
    assert sorted(p.name for p in (bounded.artifacts / str(run_id)).iterdir()) == [
        "weights.bin"]  # no temporary file left behind


def test_concurrent_retags_leave_the_last_tags(eve: list[TestClient]) -> None:
    run_id = _external(eve[0])
    answers = at_once([lambda c=c: c.patch(f"/api/runs/{run_id}", json={"tags": ["fig-3"]})
                       for c in eve])
    _statuses(answers, {200})
    assert eve[0].get(f"/api/runs/{run_id}").json()["tags"] == ["fig-3"]


def test_concurrent_users_of_one_name_one_is_made_the_rest_are_409s(
        bounded: Settings) -> None:
    with admin_client(bounded) as api:
        admins = [as_token(api, api.headers["Authorization"].split()[1])
                  for _ in range(WRITERS)]
        answers = at_once([lambda c=c: c.post("/api/users", json={"name": "mallory"})
                           for c in admins])
        _statuses(answers, {201, 409})
        assert [r.status_code for r in answers].count(201) == 1
        names = [u["name"] for u in api.get("/api/users").json()]
        assert names.count("mallory") == 1
