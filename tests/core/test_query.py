"""The runs query language on SQLite and PostgreSQL: the same runs for the same query,
compiled to SQL (never evaluated in Python), errors naming the position."""

from __future__ import annotations

import pytest

from core.lifecycle import finish_run
from core.store.db import migrate, session_scope
from core.store.metrics import insert_points
from core.store.models import Role, Run, RunStatus
from core.store.query import QueryError, compile_query
from core.store.runs import create_run, list_runs, set_tags
from core.store.users import create_user, ensure_admin

# name, owner, kind, config, metrics {key: [values by step]}, tags, status
RUNS = [
    ("a", "admin", "train", {"alpha": 8, "target": "neural-model", "train": {"width": 16}},
     {"test_acc": [0.5, 0.95, 0.91]}, ["fig4"], RunStatus.succeeded),
    ("b", "admin", "train", {"alpha": 2.5, "target": "none", "train": {"width": 8}},
     {"test_acc": [0.4, 0.8]}, ["fig6"], RunStatus.succeeded),
    ("c", "ada", "train", {"alpha": 16, "target": "neural-model"},
     {"test_acc": [0.3, 0.92]}, ["fig4", "sweep"], RunStatus.failed),
    ("d", "ada", "evaluate", {"alpha": "high", "note": "Alpha as text"}, {}, [],
     RunStatus.queued),
    ("e", "admin", "similarity", {"deterministic": True}, {"loss": [3.0, 1.0, 2.0]}, [],
     RunStatus.succeeded),
]


@pytest.fixture
def store(db_url: str) -> str:
    return stored(db_url)


def stored(db_url: str) -> str:
    """:data:`RUNS` in the store at ``db_url``."""
    migrate(db_url)
    with session_scope(db_url) as s:
        ensure_admin(s)
        if not s.query(Run.owner.property.mapper.class_).filter_by(name="ada").count():
            create_user(s, name="ada", role=Role.member)
        users = {u.name: u for u in s.query(Run.owner.property.mapper.class_).all()}
        for name, owner, kind, config, metrics, tags, status in RUNS:
            run = create_run(s, owner=users[owner], kind=kind, name=name, config=config)
            insert_points(s, run.id, [(k, step, v, None) for k, vs in metrics.items()
                                      for step, v in enumerate(vs)])
            set_tags(s, run, tags)
            if status.finished:
                finish_run(s, run.id, status)
    return db_url


def names(db_url: str, q: str | None = None, **kw: object) -> list[str]:
    with session_scope(db_url) as s:
        runs, total = list_runs(s, q=q, order="name", limit=100, **kw)
        assert total == len(runs)
        return [r.name for r in runs]


@pytest.mark.parametrize(("q", "want"), [
    ('config.alpha >= 8 and metrics.test_acc.last > 0.9 and (tag = "fig4" or tag = "fig6")',
     ["a", "c"]),
    ("config.alpha >= 8", ["a", "c"]),            # "high" is text: never a number
    ('config.alpha = "high"', ["d"]),
    ("config.alpha != 8", ["b", "c"]),            # a run without alpha does not match
    ("config.train.width < 10", ["b"]),           # nested
    ('config.note ~ "alpha"', ["d"]),             # contains, case-insensitive
    ("config.deterministic = true", ["e"]),
    ("metrics.test_acc.max >= 0.95", ["a"]),
    ("metrics.test_acc.min < 0.35", ["c"]),
    ("metrics.test_acc > 0.9", ["a", "c"]),       # .last by default
    ("metrics.loss.last == 2", ["e"]),
    ('not tag = "fig4"', ["b", "d", "e"]),
    ('not not not tag = "fig4"', ["b", "d", "e"]),
    ('tag != "fig4" and kind = "train"', ["b"]),
    ('owner = "ada" or status = "succeeded"', ["a", "b", "c", "d", "e"]),
    ('owner = "ada" and not (status = "failed")', ["d"]),
    ('name ~ "A" or name = "b"', ["a", "b"]),
    ("parent = null", ["a", "b", "c", "d", "e"]),
    ('created >= "2000-01-01" and created < "2999-01-01T00:00"', ["a", "b", "c", "d", "e"]),
    ('finished = null', ["d"]),
])
def test_queries_select_the_same_runs_on_both_databases(store: str, q: str, want: list) -> None:
    assert names(store, q) == want


def test_any_config_or_metric_field_sorts_with_the_missing_last(store: str) -> None:
    with session_scope(store) as s:
        by = lambda **kw: [r.name for r in list_runs(s, limit=100, **kw)[0]]  # noqa: E731
        assert by(sort="config.alpha") == ["b", "a", "c", "d", "e"]  # numbers, then text
        assert by(sort="config.alpha", descending=True)[:3] == ["c", "a", "b"]
        assert by(sort="metrics.test_acc.max", descending=True)[:3] == ["a", "c", "b"]
        assert by(sort="metrics.test_acc.last")[:3] == ["b", "a", "c"]


def test_a_run_field_sorts_too(store: str) -> None:
    """``sort=id`` (``neuroreg runs --sort id``) and the run's other fields, on both
    databases; ties newest first."""
    with session_scope(store) as s:
        by = lambda **kw: [r.name for r in list_runs(s, limit=100, **kw)[0]]  # noqa: E731
        assert by(sort="id") == ["a", "b", "c", "d", "e"]
        assert by(sort="id", descending=True) == ["e", "d", "c", "b", "a"]
        assert by(sort="name", descending=True) == ["e", "d", "c", "b", "a"]
        assert by(sort="created") == ["a", "b", "c", "d", "e"]
        assert by(sort="owner") == ["d", "c", "e", "b", "a"]  # ada, then admin's
        assert by(sort="status") == ["c", "d", "e", "b", "a"]  # failed, queued, succeeded
        assert by(sort="kind", descending=True) == ["c", "b", "a", "e", "d"]  # train first
        assert by(sort="finished")[-1] == "d"  # never finished: last either way
        assert by(sort="finished", descending=True)[-1] == "d"


@pytest.mark.parametrize(("q", "position", "message"), [
    ("config.alpha >", 14, "ends too soon"),
    ("config.alpha >= 8 and", 21, "ends too soon"),
    ("confg.alpha > 1", 0, "unknown field 'confg.alpha'"),
    ("(kind = \"train\"", 0, "never closed"),
    ('owner = 3', 8, "owner compares with a string, not a number"),
    ('metrics.test_acc > "high"', 19, "compares with a number, not a string"),
    ("config.alpha > 1 kind", 17, "expected and, or or the end"),
    ('status = "done"', 9, "status is one of"),
    ('created > "last week"', 10, "ISO date"),
    ("config.alpha ?? 3", 13, "unexpected '?'"),
    ('name = "open', 7, "no closing"),
    ("", 0, "empty"),
    ("(" * 40 + "id = 1" + ")" * 40, 32, "nest deeper than 32"),
    # out of range: each names the term instead of overflowing a column or a datetime
    ("id = 9223372036854775807", 5, "whole number from -2147483647 to 2147483647"),
    ("parent > 1.5", 9, "not 1.5"),
    ("metrics.acc > 1e999", 14, "1e999 is out of range"),
    ("config.alpha < -123" + "0" * 400, 15, "is out of range"),
    ('created > "0001-01-01T00:00+05:00"', 10, "out of range (years 1 to 9999 in UTC)"),
    ('finished ~ "2026"', 9, "finished takes"),
])
def test_a_query_that_cannot_run_names_the_position(q: str, position: int,
                                                     message: str) -> None:
    with pytest.raises(QueryError) as err:
        compile_query(q, "sqlite")
    assert err.value.position == position and message in err.value.message, err.value


def test_ids_compare_as_numbers(store: str) -> None:
    with session_scope(store) as s:
        b = s.query(Run).filter_by(name="b").one().id
    assert names(store, f"id = {b}") == ["b"] and names(store, f"id > {b}") == ["c", "d", "e"]


def test_the_query_is_one_sql_statement(store: str) -> None:
    from sqlalchemy import select

    where = compile_query('config.alpha > 1 and metrics.test_acc.max > 0.5 and tag = "x"',
                          "postgresql" if store.startswith("postgresql") else "sqlite")
    sql = str(select(Run.id).where(where).compile())
    assert "metric_buckets" in sql and "run_tags" in sql and "WHERE" in sql


def test_the_api_client_and_cli_take_a_query_and_a_sort(client, settings, capsys) -> None:
    from cli import build_parser, cmd_runs
    from neuroreg.client import Client
    from tests.livesrv import live_server

    stored(settings.db_url)
    q = 'config.alpha >= 8 and (tag = "fig4" or tag = "fig6")'
    res = client.get("/api/runs", params={"q": q, "sort": "config.alpha", "desc": True})
    assert res.status_code == 200, res.text
    assert [r["name"] for r in res.json()["items"]] == ["c", "a"] and res.json()["total"] == 2
    for params, loc, msg in (({"q": "config.alpha >"}, "q", "at 14: the query ends too soon"),
                             ({"q": 'owner = 3'}, "q", "at 8: owner compares with a string"),
                             ({"sort": "tag"}, "sort", "'tag' is not a field to sort by: "
                              "config.<path> or metrics.<key>[.last|.min|.max]"),
                             ({"sort": "metrics..max"}, "sort", "or one of the run's: id, "
                              "name, kind, status, owner, project, parent, created, started, "
                              "finished")):
        res = client.get("/api/runs", params=params)
        assert res.status_code == 422, res.text
        (err,) = res.json()["detail"]
        assert err["loc"] == ["query", loc] and msg in err["msg"], err
    # the page carries the chosen columns: config fields and each metric's last/min/max
    res = client.get("/api/runs", params={"q": 'kind = "train"', "order": "name", "columns":
                                          "config.alpha,config.train.width,metrics.test_acc,"
                                          "metrics.test_acc.min,metrics.test_acc.max"})
    assert res.status_code == 200, res.text
    page = res.json()
    a, c = (page["values"][str(r["id"])] for r in page["items"] if r["name"] in "ac")
    assert a == {"config.alpha": 8, "config.train.width": 16, "metrics.test_acc": 0.91,
                 "metrics.test_acc.min": 0.5, "metrics.test_acc.max": 0.95}
    assert c["config.train.width"] is None and c["metrics.test_acc.max"] == 0.92
    res = client.get("/api/runs", params={"columns": "name,config."})
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["query", "columns"]
    token = client.headers["Authorization"].split()[1]
    with live_server(settings) as url:
        with Client(url, token) as nr:
            assert [r["name"] for r in nr.runs(q="metrics.test_acc.max > 0.9",
                                               sort="metrics.test_acc.max")] == ["c", "a"]
            frame = nr.runs_frame('kind = "train"', ["config.alpha", "metrics.test_acc.max"],
                                  sort="config.alpha")
            assert frame["name"].tolist() == ["b", "a", "c"]
            assert frame["config.alpha"].tolist() == [2.5, 8, 16]
            assert frame["metrics.test_acc.max"].tolist() == [0.8, 0.95, 0.92]
            with pytest.raises(Exception, match="422"):
                nr.runs_frame("kind =")
            (fig4,) = [g for g in nr.groups(["tag"], ["metrics.test_acc.max"], q="id > 0")
                       if g["group"]["tag"] == "fig4"]
            assert fig4["count"] == 2 and fig4["metrics"]["metrics.test_acc.max"][
                "mean"] == pytest.approx(0.935)
            (fig6,) = [g for g in nr.group_curves(["tag"], "test_acc")
                       if g["group"]["tag"] == "fig6"]
            assert fig6["steps"] == [0, 1] and fig6["mean"] == pytest.approx([0.4, 0.8])
        cli = settings.model_copy(update={"api_url": url, "token": token})
        args = build_parser().parse_args(["runs", "-q", 'owner = "ada"', "--sort",
                                          "config.alpha", "--desc"])
        assert cmd_runs(args, cli) == 0
        out = capsys.readouterr().out.splitlines()
        assert [ln.split()[-1] for ln in out[1:-1]] == ["c", "d"] and out[-1] == "(2 of 2)"


def test_groups_count_and_average_their_metrics_on_both_databases(store: str) -> None:
    from core.store.query import group_runs

    with session_scope(store) as s:
        rows = group_runs(s, by=["config.target"], metrics=["metrics.test_acc.last",
                                                            "metrics.test_acc.max"],
                          q='kind = "train"')
    got = {r["group"]["config.target"]: r for r in rows}
    assert set(got) == {"neural-model", "none"}
    neural = got["neural-model"]  # runs a (last 0.91, max 0.95) and c (0.92, 0.92)
    assert neural["count"] == 2
    last = neural["metrics"]["metrics.test_acc.last"]
    assert last["n"] == 2 and last["mean"] == pytest.approx(0.915)
    assert last["sem"] == pytest.approx(0.005)  # SEM of two: |Δ| / 2
    assert got["none"]["metrics"]["metrics.test_acc.max"] == {"n": 1, "mean": 0.8, "sem": 0.0}
    with session_scope(store) as s:
        two = group_runs(s, by=["kind", "config.alpha"], metrics=[])
        tags = group_runs(s, by=["tag"], metrics=["metrics.test_acc.last"])
    assert {(r["group"]["kind"], r["group"]["config.alpha"]) for r in two} == {
        ("train", 8), ("train", 2.5), ("train", 16), ("evaluate", "high"), ("similarity", None)}
    by_tag = {r["group"]["tag"]: r["count"] for r in tags}
    assert by_tag == {"fig4": 2, "fig6": 1, "sweep": 1}  # c is in both of its tags' groups


def test_the_groups_route_names_what_it_cannot_read(client, settings) -> None:
    stored(settings.db_url)
    res = client.get("/api/run-groups", params={"by": ["config.target"],
                                                 "metric": ["metrics.test_acc.last"]})
    assert res.status_code == 200, res.text
    assert {g["group"]["config.target"] for g in res.json()["groups"]} >= {"none",
                                                                          "neural-model"}
    for params, loc in (({"by": "colour"}, "by"), ({"by": "kind", "q": "kind ="}, "q"),
                        ({"by": "kind", "metric": "metrics."}, "metric"), ({}, "by")):
        res = client.get("/api/run-groups", params=params)
        assert res.status_code == 422, res.text
        assert res.json()["detail"][0]["loc"][:2] == ["query", loc], res.json()


def test_group_members_and_their_curves_on_both_databases(store: str) -> None:
    from core.store.metrics import binned_many
    from core.store.query import group_members
    from ml.study import mean_curve

    with session_scope(store) as s:
        groups, truncated = group_members(s, by=["config.target"], q='kind = "train"')
        ids = {r.name: r.id for r in s.query(Run).all()}
        cut, was_cut = group_members(s, by=["tag"], limit=3)
        _, series = binned_many(s, ids_of := sorted(ids.values()), "test_acc", max_points=500)
    assert not truncated and was_cut
    got = {g["group"]["config.target"]: g["run_ids"] for g in groups}
    assert got == {"neural-model": [ids["a"], ids["c"]], "none": [ids["b"]]}
    assert sum(len(g["run_ids"]) for g in cut) == 3  # pairs (run, tag), not runs
    curve = mean_curve({"id": i, "steps": st, "values": v}
                       for i, (st, v) in zip(ids_of, series, strict=True)
                       if i in (ids["a"], ids["c"]))
    # a: 0.5, 0.95, 0.91; c: 0.3, 0.92 — step 2 has only a
    assert curve["steps"] == [0, 1, 2] and curve["n_at"] == [2, 2, 1]
    assert curve["mean"] == pytest.approx([0.4, 0.935, 0.91])
    assert curve["sem"] == pytest.approx([0.1, 0.015, 0.0])


def test_the_group_curves_route_draws_mean_and_sem_per_group(client, settings) -> None:
    stored(settings.db_url)
    res = client.get("/api/run-groups/curves", params={
        "by": ["config.target"], "key": "test_acc", "q": 'kind = "train" and name != "e"'})
    assert res.status_code == 200, res.text
    body = res.json()
    rows = {r["group"]["config.target"]: r for r in body["groups"]}
    assert rows["neural-model"]["n"] == 2 and rows["neural-model"]["n_at"] == [2, 2, 1]
    assert rows["none"]["mean"] == pytest.approx([0.4, 0.8]) and rows["none"]["sem"] == [0, 0]
    assert body["bin_steps"] == 1 and body["truncated"] is False
    binned = client.get("/api/run-groups/curves", params={
        "by": "config.target", "key": "test_acc", "max_points": 2, "q": 'kind = "train"'})
    assert binned.json()["bin_steps"] == 2  # 3 steps cut into 2 bins, the same for each run
    for params, loc in (({"by": "colour", "key": "x"}, "by"), ({"by": "kind"}, "key"),
                        ({"by": "kind", "key": "x", "q": "kind ="}, "q")):
        res = client.get("/api/run-groups/curves", params=params)
        assert res.status_code == 422, res.text
        assert res.json()["detail"][0]["loc"][:2] == ["query", loc], res.json()
