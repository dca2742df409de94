"""Run logs, system metrics and provenance through the API, the client and the CLI:
an external run's owner appends lines (idempotent by seq; others get 403; bad bodies a
422 naming the field), readers follow them, the script's provenance travels with
create_external, and the provenance diff names what differs between runs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Run
from core.store.users import ensure_admin
from neuroreg.client import Client, NeuroregError
from tests.livesrv import live_server

pytestmark = pytest.mark.no_numerics


def _member(admin: TestClient, name: str) -> TestClient:
    res = admin.post("/api/users", json={"name": name})
    assert res.status_code == 201, res.text
    other = TestClient(admin.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {res.json()['token']}"
    return other


def _external(client: TestClient, **body: Any) -> dict[str, Any]:
    res = client.post("/api/runs", json={"kind": "external", **body})
    assert res.status_code == 201, res.text
    return dict(res.json())


def _lines(*texts: str, start: int = 0, stream: str = "client") -> dict[str, Any]:
    return {"lines": [{"seq": start + i, "line": t, "stream": stream}
                      for i, t in enumerate(texts)]}


def test_the_owner_appends_lines_idempotently_and_readers_page_through_them(
        client: TestClient) -> None:
    ada = _member(client, "ada")
    run = _external(ada, name="script")
    url = f"/api/runs/{run['id']}/logs"
    assert ada.get(url).json()["next_seq"] == 0
    res = ada.post(url, json=_lines("epoch 0", "epoch 1", "a warning", start=0))
    assert res.status_code == 200 and res.json() == {"stored": 3, "skipped": 0, "dropped": 0}
    again = ada.post(url, json=_lines("epoch 1", "a warning", "epoch 2", start=1))
    assert again.json() == {"stored": 1, "skipped": 2, "dropped": 0}  # a retried batch
    page = client.get(url, params={"after": -1, "limit": 2}).json()  # anyone signed in reads
    assert [(ln["seq"], ln["line"]) for ln in page["lines"]] == [(0, "epoch 0"), (1, "epoch 1")]
    assert page["next_after"] == 1 and page["running"] and page["status"] == "running"
    rest = client.get(url, params={"after": page["next_after"]}).json()
    assert [ln["line"] for ln in rest["lines"]] == ["a warning", "epoch 2"]
    assert rest["next_seq"] == 4 and rest["dropped"] is None
    assert rest["bytes"] == sum(len(t) + 1 for t in ("epoch 0", "epoch 1", "a warning",
                                                    "epoch 2"))
    # finishing keeps the log as logs.txt
    assert ada.post(f"/api/runs/{run['id']}/finish", json={}).status_code == 200
    text = ada.get(f"/api/runs/{run['id']}/artifacts/logs.txt").text
    assert text.splitlines()[0].endswith(" client  epoch 0") and len(text.splitlines()) == 4
    assert ada.get(url).json()["running"] is False
    assert ada.post(url, json=_lines("late", start=4)).status_code == 409


def test_only_the_owner_writes_and_bad_bodies_name_the_field(client: TestClient) -> None:
    ada, bob = _member(client, "ada"), _member(client, "bob")
    run = _external(ada)
    url = f"/api/runs/{run['id']}/logs"
    res = bob.post(url, json=_lines("not mine"))
    assert res.status_code == 403 and "owner" in res.json()["detail"]
    assert client.post(url, json=_lines("an admin may")).status_code == 200
    for body, field in (({"lines": []}, ["body", "lines"]),
                        ({"lines": [{"seq": -1, "line": "x"}]}, ["body", "lines", 0, "seq"]),
                        ({"lines": [{"seq": 0, "line": "x", "stream": "tty"}]},
                         ["body", "lines", 0, "stream"]),
                        ({"lines": [{"seq": 0, "line": "x" * 20_000}]},
                         ["body", "lines", 0, "line"]),
                        ({"lines": [{"seq": 0}]}, ["body", "lines", 0, "line"])):
        res = ada.post(url, json=body)
        assert res.status_code == 422, (body, res.text)
        assert res.json()["detail"][0]["loc"] == field
    assert client.get(url, params={"after": -2}).status_code == 422
    assert client.get("/api/runs/999/logs").status_code == 404
    train = client.post("/api/runs", json={"kind": "train", "config": {}}).json()
    res = client.post(f"/api/runs/{train['id']}/logs", json=_lines("x"))
    assert res.status_code == 409 and "worker" in res.json()["detail"]


def test_a_log_past_its_bound_reports_what_was_dropped(
        make_settings: Any) -> None:
    from tests.conftest import admin_client

    with admin_client(make_settings(log_max_bytes=1024)) as c:
        run = _external(c)
        url = f"/api/runs/{run['id']}/logs"
        lines = [f"line {i:03d}" for i in range(200)]  # 9 bytes each: 113 fit
        assert c.post(url, json=_lines(*lines)).json() == {"stored": 113, "skipped": 0,
                                                           "dropped": 87}
        page = c.get(url).json()
        assert len(page["lines"]) == 113 and page["bytes"] == 1017 and page["max_bytes"] == 1024
        assert page["dropped"]["lines"] == 87 and page["dropped"]["bytes"] == 87 * 9
        assert page["dropped"]["line"].startswith("[neuroreg] 87 lines (783 bytes) dropped")


@pytest.fixture
def nr(settings: Settings):  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as client:
            yield client


def test_the_client_logs_follows_and_sends_system_metrics_and_provenance(
        nr: Client, settings: Settings) -> None:
    import threading
    import time

    run = nr.create_external("script")
    prov = nr.provenance(run["id"])
    assert prov is not None and prov["packages"]["httpx"] and prov["host"]
    assert nr.log(run["id"], "first\nsecond") == 2
    assert nr.log(run["id"], ["third"]) == 1
    nr._log_seq.clear()  # a new client (or a restarted script) numbers after the last line
    assert nr.log(run["id"], ["fourth"]) == 1
    page = nr.logs(run["id"])
    assert [(ln["seq"], ln["line"]) for ln in page["lines"]] == [
        (0, "first"), (1, "second"), (2, "third"), (3, "fourth")]
    with nr.start_system_metrics(run["id"], interval=1) as sampler:
        time.sleep(2.3)
        assert sampler.sampler.gpu is False  # no NVIDIA driver here
    keys = nr.metric_keys(run["id"])
    assert "system/cpu_percent" in keys and "system/rss_mb" in keys
    assert not [k for k in keys if k.startswith("system/gpu")]
    figure = nr._call("GET", f"/api/runs/{run['id']}/system")
    assert [p["measure"] for p in figure["panels"]] == ["cpu_percent", "rss_mb"]
    assert figure["panels"][1]["traces"][0]["x"][0].startswith(run["created_at"][:10])

    followed: list[str] = []
    follower = threading.Thread(target=lambda: followed.extend(
        ln["line"] for ln in nr.follow_logs(run["id"], poll=0.2)))
    follower.start()
    nr.log(run["id"], "fifth")
    nr.finish(run["id"])
    follower.join(timeout=20)
    assert followed == ["first", "second", "third", "fourth", "fifth"]
    assert not follower.is_alive() and nr.last_logs["running"] is False


def test_neuroreg_logs_prints_the_lines_and_follows_until_the_run_ends(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import build_parser
    from cli.logs import cmd_logs

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as nr:
            run = nr.create_external("cli")
            nr._call("POST", f"/api/runs/{run['id']}/logs", json=_lines("to stdout", start=0))
            nr._call("POST", f"/api/runs/{run['id']}/logs",
                     json=_lines("to stderr", start=1, stream="stderr"))
            cli = settings.model_copy(update={"api_url": url, "token": token})
            args = build_parser().parse_args(["logs", str(run["id"])])
            assert cmd_logs(args, cli) == 0
            out = capsys.readouterr()
            assert out.out == "to stdout\n" and out.err == "to stderr\n"
            nr.finish(run["id"])
            args = build_parser().parse_args(["logs", str(run["id"]), "--follow", "--streams"])
            assert cmd_logs(args, cli) == 0
            out = capsys.readouterr()
            assert out.out == "client  to stdout\n"
            assert out.err == f"stderr  to stderr\nrun {run['id']} succeeded\n"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    *args], check=True, capture_output=True)


def test_provenance_of_a_clean_a_dirty_checkout_and_of_no_checkout(tmp_path: Path) -> None:
    from neuroreg.provenance import collect, git_state

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    clean = git_state(repo / "train.py")
    assert clean == {"git_commit": commit, "git_dirty": False, "git_branch": "main",
                     "git_root": str(repo.resolve())}
    (repo / "notes.txt").write_text("untracked: still clean\n")
    assert git_state(repo)["git_dirty"] is False
    (repo / "train.py").write_text("print(2)\n")
    assert git_state(repo) == {**clean, "git_dirty": True}
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    assert git_state(elsewhere) == {"git_commit": None, "git_dirty": None, "git_branch": None,
                                    "git_root": None}
    site = repo / ".venv" / "lib" / "site-packages" / "pkg"  # installed code in a checkout
    site.mkdir(parents=True)
    assert git_state(site)["git_commit"] is None
    full = collect(elsewhere)
    assert full["git_commit"] is None and full["python"] and full["packages"]["pytest"]


def test_without_git_the_fields_are_null_and_nothing_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroreg.provenance import git_state

    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert git_state(Path.cwd())["git_commit"] is None


def test_create_external_validates_provenance_and_the_diff_names_what_differs(
        client: TestClient) -> None:
    base = {"git_commit": "a" * 40, "git_dirty": False, "host": "gpu1", "python": "3.11.7",
            "gpus": ["NVIDIA H100"], "packages": {"numpy": "2.1.0", "torch": "2.4.0",
                                                  "scipy": "1.14.0"}}
    other = {**base, "git_dirty": True, "host": "gpu2",
             "packages": {"numpy": "2.2.0", "torch": "2.4.0", "einops": "0.8.0"}}
    one = _external(client, provenance=base)
    two = _external(client, provenance=other)
    bare = _external(client)
    assert client.get(f"/api/runs/{one['id']}/provenance").json()["provenance"]["host"] == "gpu1"
    res = client.get("/api/provenance-diff",
                     params={"run_id": [one["id"], two["id"], bare["id"]]})
    assert res.status_code == 200, res.text
    d = res.json()
    assert d["runs"] == [one["id"], two["id"], bare["id"]] and d["missing"] == [bare["id"]]
    assert d["fields"] == [{"field": "git_dirty", "values": [False, True, None]},
                           {"field": "host", "values": ["gpu1", "gpu2", None]}]
    assert d["packages"] == [{"name": "einops", "versions": [None, "0.8.0", None]},
                             {"name": "numpy", "versions": ["2.1.0", "2.2.0", None]},
                             {"name": "scipy", "versions": ["1.14.0", None, None]}]
    assert d["same"] == {"fields": 10, "packages": 1}
    assert client.get("/api/provenance-diff", params={"run_id": [one["id"], 9999]}
                      ).status_code == 404
    assert client.get("/api/provenance-diff", params={"run_id": ["x"]}).status_code == 422
    for bad, loc in (({"git_dirty": "yes"}, "git_dirty"), ({"packages": {"numpy": 2}},
                                                           "packages"),
                     ({"packages": {f"p{i}": "1" * 190 for i in range(2000)}}, "provenance"),
                     ("a string", "provenance")):
        res = client.post("/api/runs", json={"kind": "external", "provenance": bad})
        assert res.status_code == 422, (bad, res.text)
        assert loc in [str(p) for e in res.json()["detail"] for p in e["loc"]], res.text
    res = client.post("/api/runs", json={"kind": "train", "provenance": base})
    assert res.status_code == 422  # a worker records its own
    with session_scope(client.app.state.settings.db_url) as s:
        assert s.get(Run, bare["id"]).provenance is None


def test_a_run_created_without_provenance_has_none_and_a_bad_stream_is_a_422(
        nr: Client) -> None:
    run = nr.create_external("mine", provenance=False)
    assert nr.provenance(run["id"]) is None
    with pytest.raises(NeuroregError, match="422"):
        nr.log(run["id"], ["x"], stream="tty")


def test_neuroreg_logs_says_when_a_run_wrote_no_lines(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import build_parser
    from cli.logs import cmd_logs

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as nr:
            run = nr.create_external("quiet")
            cli = settings.model_copy(update={"api_url": url, "token": token})
            assert cmd_logs(build_parser().parse_args(["logs", str(run["id"])]), cli) == 0
            out = capsys.readouterr()
            assert out.out == "" and out.err == f"run {run['id']} running: no lines yet\n"
            nr.finish(run["id"])
            for argv in (["logs", str(run["id"])], ["logs", str(run["id"]), "--follow"]):
                assert cmd_logs(build_parser().parse_args(argv), cli) == 0
                out = capsys.readouterr()
                assert out.out == ""
                assert out.err == f"run {run['id']} succeeded: this run wrote no log lines\n"
