"""Records of evaluated models and the leaderboard over HTTP: sorted, filtered, at one ε,
through the client and the CLI; what a run that has no record answers."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.db import session_scope
from core.store.metrics import insert_points
from core.store.models import RunStatus, User
from core.store.runs import create_run
from tests.ml.evaluate.test_record import MECHANISM, SOUNDNESS

SIGMAS = [0.0, 0.1]


def _result(clean: float, linf: float | None, l2: float, corr: float, *,
            eps: float = 8 / 255, **parts: dict) -> dict:
    """An evaluate run's result in the shape ml.evaluate.run writes (tests/ml checks it),
    with the optional ``parts`` (soundness, mechanism) given."""
    aa = {"l2": [{"norm": "l2", "epsilon": 0.5, "version": "standard", "n": 100,
                  "clean_accuracy": clean, "robust_accuracy": l2, "after": {"square": l2},
                  "over_budget": 0, "inconsistent": 0}]}
    if linf is not None:
        aa["linf"] = [{"norm": "linf", "epsilon": eps, "version": "custom", "n": 100,
                       "clean_accuracy": clean, "robust_accuracy": linf,
                       "after": {"apgd-ce": linf}, "over_budget": 0, "inconsistent": 2}]
    return {"parts": ["noise", "minimal", "autoattack", "corruptions", *parts], **parts,
            "noise": {"sigmas": SIGMAS, "accuracy": [clean, clean / 2], "n": 1000, "seed": 0},
            "n": 100, "clean_accuracy": clean, "median_l2": l2 / 2, "mean_l2": l2,
            "unbroken_l2": 0, "autoattack": {"components": ["apgd-ce"], "threat_models": aa},
            "corruptions": {"names": ["fog"], "severities": [1], "accuracy": {"fog": [corr]},
                            "mean_accuracy": corr, "clean_accuracy": clean, "n": 50,
                            "seed": 0}}


# the soundness part of run 1's evaluation: sound; run 2's: suspect in L∞ (tests/ml's)
SOUND = {**SOUNDNESS, "norms": {"l2": SOUNDNESS["norms"]["l2"]}}
CALM = {**MECHANISM, "input_gradient": {"l2": {"n": 100, "median": 0.75, "mean": 0.8},
                                        "l1": {"n": 100, "median": 30.0, "mean": 31.0}}}


def stored(settings: Settings) -> dict:
    """A similarity run, three trained models (one in a study, one by another member)
    and their evaluations (the first two with the soundness and mechanism parts); a failed
    evaluation and a train run without one."""
    ids: dict = {}
    with session_scope(settings.db_url) as s:
        admin = s.query(User).filter_by(name="admin").one()
        ada = s.query(User).filter_by(name="ada").one()
        sim = create_run(s, owner=admin, kind="similarity", name="v1",
                         config={"source": "simulated"})
        finish_run(s, sim.id, RunStatus.succeeded, result={})
        study = create_run(s, owner=admin, kind="study", name="grid", config={})
        rows = [("none", 0.0, admin, None, _result(0.9, 0.10, 0.30, 0.70, soundness=SOUND,
                                                   mechanism=CALM)),
                ("neural-model", 8.0, admin, study.id, _result(
                    0.88, 0.20, 0.25, 0.75, soundness=SOUNDNESS, mechanism=MECHANISM)),
                ("neural-model", 2.0, ada, None, _result(0.86, None, 0.40, 0.60)),
                ("shuffle", 8.0, ada, None, _result(0.8, 0.5, 0.5, 0.5, eps=0.1))]
        ids["evals"], ids["models"] = [], []
        for target, alpha, owner, parent, result in rows:
            m = create_run(s, owner=owner, kind="train", name=f"{target} α={alpha:g}",
                           parent_id=parent,
                           config={"backbone": "resnet18", "width": 16, "dataset": "cifar10",
                                   "target": target, "alpha": alpha, "seed": 1,
                                   "target_run": None if target == "none" else sim.id})
            finish_run(s, m.id, RunStatus.succeeded, result={})
            insert_points(s, m.id, [("test_acc", 0, result["noise"]["accuracy"][0], None)])
            e = create_run(s, owner=owner, kind="evaluate", name="e", input_run_id=m.id,
                           config={})
            finish_run(s, e.id, RunStatus.succeeded, result=result)
            ids["evals"].append(e.id)
            ids["models"].append(m.id)
        failed = create_run(s, owner=admin, kind="evaluate", name="e",
                            input_run_id=ids["models"][0], config={})
        finish_run(s, failed.id, RunStatus.failed, error="boom")
        lone = create_run(s, owner=admin, kind="train", name="lone", config={})
        ids.update(sim=sim.id, study=study.id, failed=failed.id, lone=lone.id)
    return ids


@pytest.fixture
def ids(client: TestClient, settings: Settings) -> dict:
    assert client.post("/api/users", json={"name": "ada"}).status_code == 201
    return stored(settings)


def test_a_record_downloads_as_json_with_the_model_and_its_target(client, ids) -> None:
    res = client.get(f"/api/runs/{ids['evals'][1]}/record", params={"download": True})
    assert res.status_code == 200, res.text
    assert res.headers["content-disposition"] == (
        f'attachment; filename="neuroreg-record-{ids["evals"][1]}.json"')
    rec = json.loads(res.content)
    assert rec["schema"] == "neuroreg.record/1" and rec["model_run"] == ids["models"][1]
    assert (rec["target"], rec["alpha"], rec["study"]) == ("neural-model", 8.0, ids["study"])
    assert rec["similarity"]["run"] == ids["sim"] and rec["similarity"]["source"] == "simulated"
    assert rec["clean_acc"] == 0.88 and rec["test_acc"] == 0.88
    assert rec["autoattack"]["linf"][0]["eps_label"] == "8/255"
    assert {e["threat_model"] for e in rec["robustbench"]} == {"Linf", "L2", "corruptions"}
    plain = client.get(f"/api/runs/{ids['evals'][1]}/record")
    assert "content-disposition" not in plain.headers and plain.json() == rec


def test_runs_without_a_record_say_why(client, ids) -> None:
    res = client.get(f"/api/runs/{ids['models'][0]}/record")
    assert res.status_code == 409
    assert f"its succeeded evaluations: {ids['evals'][0]}" in res.json()["detail"]
    res = client.get(f"/api/runs/{ids['lone']}/record")
    assert res.status_code == 409 and "no succeeded evaluation" in res.json()["detail"]
    res = client.get(f"/api/runs/{ids['failed']}/record")
    assert res.status_code == 409 and "failed" in res.json()["detail"]
    assert client.get(f"/api/runs/{ids['sim']}/record").status_code == 409
    assert client.get("/api/runs/999999/record").status_code == 404


def test_the_leaderboard_sorts_by_any_score_with_the_unmeasured_last(client, ids) -> None:
    ev = ids["evals"]
    res = client.get("/api/leaderboard")
    assert res.status_code == 200, res.text
    data = res.json()
    assert data["total"] == 4 and data["sort"] == "autoattack_linf"
    # at 8/255: 0.2, 0.1; run 3 measured no L∞, run 4 another ε (0.1): both last
    assert [r["evaluation_run"] for r in data["items"]] == [ev[1], ev[0], ev[3], ev[2]]
    assert data["items"][0]["autoattack_linf_version"] == "custom"
    at = client.get("/api/leaderboard", params={"eps_linf": 0.1}).json()
    assert at["items"][0]["evaluation_run"] == ev[3] and at["eps"]["linf"] == 0.1
    asc = client.get("/api/leaderboard", params={"sort": "clean_acc", "order": "asc"}).json()
    assert [r["clean_acc"] for r in asc["items"]] == [0.8, 0.86, 0.88, 0.9]
    l2 = client.get("/api/leaderboard", params={"sort": "median_l2"}).json()
    assert [r["median_l2"] for r in l2["items"]] == [0.25, 0.2, 0.15, 0.125]
    page = client.get("/api/leaderboard", params={"sort": "corruptions_acc", "limit": 2,
                                                  "offset": 1}).json()
    assert [r["corruptions_acc"] for r in page["items"]] == [0.7, 0.6] and page["total"] == 4


def test_the_leaderboard_shows_soundness_and_mechanism_and_every_numbers_count(client, ids
                                                                                ) -> None:
    ev = ids["evals"]
    data = client.get("/api/leaderboard", params={"sort": "grad_l2_median"}).json()
    # the mechanism's medians sort like any number; the evaluations without the part last
    assert [r["evaluation_run"] for r in data["items"]][:2] == [ev[1], ev[0]]
    assert [r["grad_l2_median"] for r in data["items"]] == [2.0, 0.75, None, None]
    rows = {r["evaluation_run"]: r for r in data["items"]}
    assert rows[ev[0]]["soundness"] == "sound" and rows[ev[0]]["soundness_warnings"] == []
    assert rows[ev[1]]["soundness"] == "suspect" and rows[ev[1]]["soundness_suspect"] == ["L∞"]
    assert len(rows[ev[1]]["soundness_warnings"]) == 2 and rows[ev[1]]["soundness_n"] == 8
    assert rows[ev[1]]["subspace_share_l2"] == 0.3 and rows[ev[1]]["subspace_share_l2_n"] == 7
    assert rows[ev[2]]["soundness"] is None and rows[ev[2]]["grad_l2_median"] is None
    # each measured column names its count, and every row has it where it has the number
    counts = {c["key"]: c["count"] for c in data["layout"] if c["count"]}
    assert counts["clean_acc"] == "clean_acc_n" and counts["autoattack_linf"] == (
        "autoattack_linf_n")
    r = rows[ev[1]]
    assert [r[counts[k]] for k in ("clean_acc", "autoattack_linf", "autoattack_l2",
                                   "corruptions_acc", "median_l2", "soundness",
                                   "grad_l2_median", "subspace_share_l2")] == [
        1000, 100, 100, 50, 100, 8, 20, 7]
    asc = client.get("/api/leaderboard", params={"sort": "subspace_share_l2", "order": "asc"})
    assert [r["subspace_share_l2"] for r in asc.json()["items"]] == [0.3, 0.3, None, None]


def test_the_leaderboard_filters_by_owner_study_target_and_dataset(client, ids) -> None:
    def got(**params) -> list[int]:
        res = client.get("/api/leaderboard", params={"sort": "evaluation_run", **params})
        assert res.status_code == 200, res.text
        return sorted(r["evaluation_run"] for r in res.json()["items"])

    ev = ids["evals"]
    assert got(owner="ada") == [ev[2], ev[3]]
    assert got(study=ids["study"]) == [ev[1]]
    assert got(target="neural-model") == [ev[1], ev[2]]
    assert got(dataset="cifar10") == sorted(ev) and got(dataset="digits32") == []


@pytest.mark.parametrize(("params", "field"), [
    ({"sort": "robustness"}, "sort"), ({"order": "up"}, "order"), ({"eps_linf": 0}, "eps_linf"),
    ({"eps_l2": 1.5}, "eps_l2"), ({"eps_l2": "nan"}, "eps_l2"), ({"limit": 0}, "limit"),
    ({"study": 0}, "study")])
def test_bad_leaderboard_queries_are_422s_naming_the_field(client, ids, params, field) -> None:
    res = client.get("/api/leaderboard", params=params)
    assert res.status_code == 422, res.text
    assert [e["loc"][-1] for e in res.json()["detail"]] == [field]


def test_the_client_and_cli_show_the_leaderboard_and_save_a_record(
        client, ids, settings, tmp_path, capsys) -> None:
    from cli import build_parser, cmd_leaderboard
    from neuroreg.client import Client
    from tests.livesrv import live_server

    with live_server(settings) as url:
        token = client.headers["Authorization"].split()[1]  # the admin's
        with Client(url, token) as nr:
            rows = nr.leaderboard(sort="clean_acc")
            assert [r["clean_acc"] for r in rows] == [0.9, 0.88, 0.86, 0.8]
            assert [r["evaluation_run"] for r in nr.leaderboard(owner="ada", limit=1)] == [
                ids["evals"][3]]
            assert nr.record(ids["evals"][0])["model_run"] == ids["models"][0]
            path = nr.record(ids["evals"][0], dest=tmp_path / "r.json")
            assert json.loads(path.read_text())["evaluation_run"] == ids["evals"][0]
        cli = settings.model_copy(update={"api_url": url, "token": token})
        args = build_parser().parse_args(["leaderboard", "--sort", "corruptions_acc"])
        assert cmd_leaderboard(args, cli) == 0
        out = capsys.readouterr().out
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert "AA L∞ 8/255" in lines[0] and "AA L2 0.5" in lines[0]
        # the server's layout: its headers, the columns it marks for the terminal
        layout = client.get("/api/leaderboard").json()["layout"]
        assert lines[0].split("  ")[0] == "eval" and "network · data" in lines[0]
        assert all(c["header"] in lines[0] for c in layout if c["cli"])
        assert "owner" not in lines[0] and "study" not in lines[0]
        first = lines[1]  # the best corruption accuracy: run 2's 75 %
        assert first.split()[0] == str(ids["evals"][1])
        assert "75.0" in first and "20.0*" in first and "88.0" in first
        assert "* a reduced (custom) AutoAttack" in out and "4 of 4" in out
        # the soundness verdict, the mechanism's medians, and the counts of reduced samples:
        # AutoAttack and the medians over 100, corruptions over 50, the clean accuracy 1000
        assert "attacks" in lines[0] and "‖∇ₓ‖₂" in lines[0] and "PC share L2" in lines[0]
        assert "suspect L∞" in first and "20.0* n=100" in first and "75.0 n=50" in first
        assert "88.0 n=" not in first and "2.000 n=20" in first and "0.300 n=7" in first
        row = {ln.split()[0]: ln for ln in lines[1:5]}
        assert " sound " in row[str(ids["evals"][0])] and "suspect" not in row[str(ids["evals"][0])]
        assert "suspect: the attacks' soundness check warned" in out
        assert "n=…: how many samples a number is over" in out
        args = build_parser().parse_args(["leaderboard", "--eps-linf", "0.1", "--json"])
        assert cmd_leaderboard(args, cli) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["items"][0]["evaluation_run"] == ids["evals"][3]
        # the per-condition summary prints the new scores too
        from cli import cmd_robustness

        assert cmd_robustness(build_parser().parse_args(["robustness"]), cli) == 0
        out = capsys.readouterr().out
        none = out[out.index("none  α=0"):].split("\n\n")[0]
        assert "AutoAttack linf  ε 8/255: 0.100 ± 0  (n=1) (custom" in none
        assert "AutoAttack l2    ε 0.5: 0.300 ± 0" in none
        assert "corruption accuracy 0.7 ± 0" in none and "mCE vs None 1 ± 0" in none
        # and the frontier's table has a column per new score the points have
        from cli import print_frontier

        with Client(url, token) as nr:
            print_frontier(nr.frontier(run_ids=ids["evals"], tolerance=0.5))
        head = capsys.readouterr().out.splitlines()[1]
        assert "AutoAttack L∞" in head and "AutoAttack L2" in head and "corruption acc" in head
        assert "median L∞" not in head  # no evaluation measured it


def test_the_leaderboard_page_is_typed_and_names_its_sortable_columns(client, ids) -> None:
    """The schema keeps every column leaderboard_row builds (none dropped on the way out),
    and the page serves the columns it sorts by, so neither the page nor the CLI spells
    them."""
    from ml.evaluate.record import COLUMNS, leaderboard_row

    page = client.get("/api/leaderboard").json()
    assert page["columns"] == list(COLUMNS)
    built = leaderboard_row({"autoattack": {}, "corruptions": None,
                             "minimal": {"median": {}, "mean": {}}})
    assert all(set(r) == set(built) for r in page["items"]) and page["items"]
    responses = client.get("/openapi.json").json()["paths"]
    for path, schema in (("/api/leaderboard", "LeaderboardPage"), ("/api/labels", "Labels")):
        ok = responses[path]["get"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"]["$ref"].endswith(f"/{schema}"), (path, ok)
    kinds = responses["/api/kinds"]["get"]["responses"]["200"]["content"]["application/json"]
    assert kinds["schema"]["items"]["$ref"].endswith("/KindPublic")


def test_the_leaderboard_serves_its_layout_with_the_eps_it_ranks(client, ids) -> None:
    """The columns to show come with the page (the page and the CLI spell none): in order,
    their headers at the ε asked, sortable exactly where the page sorts."""
    from ml.evaluate.record import LEADERBOARD

    page = client.get("/api/leaderboard", params={"eps_linf": 0.1}).json()
    layout = page["layout"]
    assert [c["key"] for c in layout] == [c.key for c in LEADERBOARD]
    heads = {c["key"]: c["header"] for c in layout}
    assert heads["autoattack_linf"] == "AA L∞ 0.1" and heads["autoattack_l2"] == "AA L2 0.5"
    assert {c["key"] for c in layout if c["sortable"]} == (
        {c["key"] for c in layout} & set(page["columns"]))
    assert {c["key"] for c in layout if not c["cli"]} == {"study", "owner"}
    # the alignment columns: the CLI's and the API's; the page's 1280-px table has no room
    assert {"rsa_mix_oracle", "rsa_mix_oracle_normalized", "feve_best", "cka_mix_oracle"} <= {
        c["key"] for c in layout if not c.get("page", True)}
    # and so are the percept part's, each with its sample count
    percept = {"percept_v1_adv_l2", "percept_model_adv_l2", "percept_specificity_l2"}
    assert percept <= {c["key"] for c in layout if not c.get("page", True) and c["sortable"]}
    assert {c["count"] for c in layout if c["key"] in percept} == {f"{k}_n" for k in percept}
    assert all(c["title"] for c in layout)


def test_the_leaderboard_builds_records_only_for_its_page(client, ids, monkeypatch) -> None:
    """Filtered, sorted and paged in SQL: a record is built for each row of the page and
    for no other."""
    import server.routes.records as records
    from ml.evaluate.record import model_record

    built: list[int] = []

    def counting(*, evaluation, model, similarity=None):
        built.append(evaluation["id"])
        return model_record(evaluation=evaluation, model=model, similarity=similarity)

    monkeypatch.setattr(records, "model_record", counting)
    page = client.get("/api/leaderboard", params={"sort": "clean_acc", "limit": 2,
                                                  "offset": 1}).json()
    assert [r["evaluation_run"] for r in page["items"]] == built == ids["evals"][1:3]
    assert page["total"] == 4
    built.clear()
    page = client.get("/api/leaderboard", params={"owner": "ada", "limit": 1}).json()
    assert built == [ids["evals"][3]] and page["total"] == 2
