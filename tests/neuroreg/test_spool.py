"""Offline logging: Client(offline=True) spools external runs, `neuroreg sync` uploads them
once however often it runs (or crashes), and a spool line that is cut short or corrupt
is reported with its number while the rest still syncs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cli import main
from core.settings import Settings, get_settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from neuroreg.client import Client, NeuroregError, OfflineError
from neuroreg.spool import EVENTS, STATE
from tests.conftest import admin_client
from tests.livesrv import free_port, live_server


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[str, str]]:
    """A live server on the embedded default: (url, admin token)."""
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        yield url, token


def _offline_run(spool: Path, *, steps: int = 30, artifact: Path | None = None) -> str:
    """A script's run on a machine without network; returns its offline id."""
    with Client(offline=True, spool_dir=spool) as nr:
        run = nr.create_external("node42", params={"lr": 0.1, "seed": 3}, tags=["offline"])
        assert run["id"].startswith("offline:") and run["offline"] is True
        for step in range(steps):
            nr.log_batch(run["id"], {"loss": 1 / (step + 1), "acc": step / steps}, step=step)
        nr.log(run["id"], "epoch 1\nepoch 2")
        nr.log(run["id"], ["done"], stream="stdout")
        if artifact is not None:
            nr.upload(run["id"], artifact, "weights.bin")
        nr.update(run["id"], name="node42 (renamed)")
        nr.finish(run["id"], result={"best": 0.97})
        return str(run["id"])


def _stored(nr: Client, run_id: int) -> tuple[list[int], list[int], list[str]]:
    steps, _ = nr.series(run_id, "loss")
    acc_steps, _ = nr.series(run_id, "acc")
    lines = [ln["line"] for ln in nr.logs(run_id, limit=100)["lines"]]
    return steps.tolist(), acc_steps.tolist(), lines


def test_an_offline_run_syncs_whole_and_once(server: tuple[str, str], tmp_path: Path) -> None:
    url, token = server
    spool = tmp_path / "spool"
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x00\x01" * 5000)
    _offline_run(spool, artifact=weights)
    weights.write_bytes(b"changed after the upload")  # the spool kept the uploaded bytes
    with Client(url, token, offline=False, spool_dir=spool) as nr:
        before = datetime.now().astimezone()
        (report,) = nr.sync()
        assert report.created and report.done and not report.problems
        assert (report.points, report.lines, report.artifacts) == (60, 3, 1)
        assert report.finished == "succeeded"
        run = nr.run(report.run_id)  # type: ignore[arg-type]
        assert run["name"] == "node42 (renamed)" and run["tags"] == ["offline"]
        assert run["config"] == {"params": {"lr": 0.1, "seed": 3}}
        assert run["status"] == "succeeded" and run["result"] == {"best": 0.97}
        # its times are the script's, not the sync's
        started = datetime.fromisoformat(run["started_at"])
        finished = datetime.fromisoformat(run["finished_at"])
        assert started <= finished < before
        assert run["created_at"] == run["started_at"]
        assert nr.provenance(report.run_id)["python"]  # type: ignore[arg-type,index]
        steps, acc, lines = _stored(nr, report.run_id)  # type: ignore[arg-type]
        assert steps == list(range(30)) and acc == list(range(30))
        assert lines == ["epoch 1", "epoch 2", "done"]
        dest = nr.download(report.run_id, "weights.bin", tmp_path / "back.bin")  # type: ignore[arg-type]
        assert dest.read_bytes() == b"\x00\x01" * 5000
        # again: nothing is sent; and with its progress file gone, nothing is stored twice
        (again,) = nr.sync()
        assert again.already and again.points == 0
        (report.folder / STATE).unlink()
        (third,) = nr.sync()
        assert third.run_id == report.run_id and not third.created and not third.problems
        assert _stored(nr, report.run_id) == (steps, acc, lines)  # type: ignore[arg-type]
        assert len(nr.runs(tag="offline")) == 1


class _Cut(httpx.BaseTransport):
    """A connection that breaks after ``n`` requests (a sync killed halfway)."""

    def __init__(self, n: int) -> None:
        self.n, self.inner = n, httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.n <= 0:
            raise httpx.ConnectError("the connection broke", request=request)
        self.n -= 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("cut_after", [1, 2, 4, 6])
def test_a_sync_cut_halfway_then_rerun_stores_each_point_once(
    server: tuple[str, str], tmp_path: Path, cut_after: int
) -> None:
    url, token = server
    spool = tmp_path / "spool"
    with Client(offline=True, spool_dir=spool) as nr:
        run = nr.create_external("long", tags=["cut"])
        for chunk in range(6):  # 6 lines of 2,000 steps: batches span lines
            nr.log_batch(run["id"], [("loss", s, s * 0.5) for s in
                                     range(chunk * 2000, (chunk + 1) * 2000)])
            nr.log(run["id"], f"chunk {chunk}")
        nr.finish(run["id"])
    with Client(url, token, offline=False, spool_dir=spool, transport=_Cut(cut_after)) as nr:
        (cut,) = nr.sync()  # the folder stops where the connection broke, kept
        assert cut.unreachable and cut.pending and not cut.done
        assert "could not be reached (ConnectError" in cut.problems[-1]
    with Client(url, token, offline=False, spool_dir=spool) as nr:
        (report,) = nr.sync()
        assert report.done and not report.problems
        run_id = report.run_id
        assert run_id is not None and nr.run(run_id)["status"] == "succeeded"
        steps, _ = nr.series(run_id, "loss")
        assert steps.tolist() == list(range(12_000))
        page = nr.logs(run_id, limit=100)["lines"]
        assert [ln["line"] for ln in page] == [f"chunk {c}" for c in range(6)]
        assert [ln["seq"] for ln in page] == list(range(6))
        assert [r["id"] for r in nr.runs(tag="cut")] == [run_id]


def test_a_truncated_or_corrupt_line_is_named_and_the_rest_syncs(
    server: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    url, token = server
    spool = tmp_path / "spool"
    _offline_run(spool, steps=5)
    folder = next(spool.iterdir())
    lines = (folder / EVENTS).read_text().splitlines(keepends=True)
    # line 3 becomes garbage, line 4 valid JSON but no event; a last line is cut short
    lines[2] = '{"op": "metrics", "points": [["loss", 2, 0.33\n'
    lines[3] = '{"op": "teleport"}\n'
    text = "".join(lines) + '{"op": "metrics", "points": [["late", 0, 1.0, 0'
    (folder / EVENTS).write_text(text)
    monkeypatch.setenv("NEUROREG_API_URL", url)
    monkeypatch.setenv("NEUROREG_TOKEN", token)
    get_settings.cache_clear()
    try:
        assert main(["sync", str(spool)]) == 1
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    events = folder / EVENTS
    assert f"{events}:3: corrupt, skipped: not JSON" in err
    assert f"{events}:4: corrupt, skipped: not an event (op is 'teleport')" in err
    assert f"{events}:{len(lines) + 1}: truncated" in err
    assert "(created): 6 points, 3 log lines, 0 artifacts; finished succeeded" in out
    with Client(url, token, offline=False) as nr:
        (run,) = nr.runs(tag="offline")
        steps, _ = nr.series(run["id"], "loss")
        assert steps.tolist() == [0, 3, 4]  # steps 1 and 2 were on the two bad lines
        assert run["status"] == "succeeded"  # the finish after them still synced
        assert "late" not in nr.metric_keys(run["id"])
        # the cut line is reported again until it is whole; the skipped ones are not
        (folder / EVENTS).write_text(text + '.5]]}\n')
        (again,) = nr.sync(spool)
        assert again.problems == [] and again.points == 1 and again.done
        assert "late" in nr.metric_keys(run["id"])


def test_auto_falls_back_to_the_spool_when_the_server_goes_away(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = tmp_path / "spool"
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        nr = Client(url, token, offline="auto", spool_dir=spool, timeout=5)
        run = nr.create_external("flaky network")
        nr.log_batch(run["id"], {"loss": 1.0}, step=0)
        nr.log(run["id"], "online line")
    # the server is gone: the same calls go on in the spool, with one warning
    nr.log_batch(run["id"], {"loss": 0.5}, step=1)
    nr.log(run["id"], ["offline line 1", "offline line 2"])
    nr.finish(run["id"])
    err = capsys.readouterr().err
    assert err.count("is unreachable") == 1 and f"run {run['id']}" in err
    # a new run while it is gone is an offline one
    other = nr.create_external("while down")
    assert str(other["id"]).startswith("offline:")
    nr.log_batch(other["id"], {"loss": 2.0}, step=0)
    nr.close()
    with live_server(settings) as url2, Client(url2, token, spool_dir=spool) as nr2:
        reports = {r.run_id: r for r in nr2.sync()}
        assert all(not r.problems for r in reports.values())
        attached = reports[run["id"]]
        assert not attached.created and attached.finished == "succeeded"
        steps, values = nr2.series(run["id"], "loss")
        assert steps.tolist() == [0, 1] and values.tolist() == [1.0, 0.5]
        page = nr2.logs(run["id"])["lines"]
        assert [(ln["seq"], ln["line"]) for ln in page] == [
            (0, "online line"), (1, "offline line 1"), (2, "offline line 2")]
        assert nr2.run(run["id"])["status"] == "succeeded"
        (new_id,) = set(reports) - {run["id"]}
        assert new_id is not None and nr2.run(new_id)["status"] == "running"


def test_an_attach_folder_is_not_written_into_another_servers_run(
    server: tuple[str, str], tmp_path: Path
) -> None:
    url, token = server
    spool = tmp_path / "spool"
    with Client(url, token, offline=False, spool_dir=spool) as nr:
        other = nr.create_external("someone else's run 1")
        sp = nr.spool.attach(other["id"], client_key="f" * 32, log_base=0)
        sp.metrics([("loss", 0, 1.0, 0.0)])
        (report,) = nr.sync()
        assert report.problems and "is not the run this folder was logged for" in \
            report.problems[0]
        assert nr.metric_keys(other["id"]) == []


def test_an_offline_client_needs_no_server_and_refuses_what_only_a_server_has(
    tmp_path: Path,
) -> None:
    nr = Client(f"http://127.0.0.1:{free_port()}", token="", offline=True,
                spool_dir=tmp_path / "spool")
    run = nr.create_external("x")
    with pytest.raises(OfflineError, match="needs the server"):
        nr.runs()
    with pytest.raises(OfflineError):
        nr.sync()
    with pytest.raises(ValueError, match="value: nan is not a finite number"):
        nr.log_batch(run["id"], {"loss": float("nan")}, step=0)
    with pytest.raises(ValueError, match="key: 'bad key'"):
        nr.log_batch(run["id"], {"bad key": 1.0}, step=0)
    with pytest.raises(ValueError, match="run_id: 'offline:nope'"):
        nr.log_batch("offline:nope", {"loss": 1.0}, step=0)
    with pytest.raises(ValueError, match="status"):
        nr.finish(run["id"], status="cancelled")
    events = [json.loads(x) for x in
              (Path(nr.spool.root) / run["client_key"] / EVENTS).read_text().splitlines()]
    assert [e["op"] for e in events] == ["create"]  # nothing refused was written
    with pytest.raises(NeuroregError, match="401: no token"):
        Client(f"http://127.0.0.1:{free_port()}", token="", offline=False)


@pytest.fixture
def api(make_settings: Callable[..., Settings], db_url: str) -> Iterator[TestClient]:
    with admin_client(make_settings(database_url=db_url)) as c:
        yield c


def test_a_client_key_creates_one_run_however_often_it_is_sent(api: TestClient) -> None:
    body = {"kind": "external", "name": "k", "client_key": "a1b2c3d4e5f6"}
    first = api.post("/api/runs", json=body)
    second = api.post("/api/runs", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["client_key"] == "a1b2c3d4e5f6"
    clash = api.post("/api/runs", json={"kind": "train", "client_key": "a1b2c3d4e5f6",
                                        "config": {"epochs": 1}})
    assert clash.status_code == 409 and clash.json()["detail"].startswith("client_key:")
    for bad in ("short", "has space here", "x" * 65):
        res = api.post("/api/runs", json={**body, "client_key": bad})
        assert res.status_code == 422 and res.json()["detail"][0]["loc"][-1] == "client_key"


def test_times_a_script_sends_are_checked(api: TestClient) -> None:
    future = api.post("/api/runs", json={"kind": "external", "started_at": "2999-01-01T00:00:00Z"})
    assert future.status_code == 422
    assert future.json()["detail"][0]["loc"][-1] == "started_at"
    assert "in the future" in future.json()["detail"][0]["msg"]
    assert api.post("/api/runs", json={"kind": "train", "started_at": "2020-01-01T00:00:00Z",
                                       "config": {"epochs": 1}}).status_code == 422
    run = api.post("/api/runs", json={"kind": "external",
                                      "started_at": "2026-01-02T03:04:05"}).json()
    assert run["started_at"].startswith("2026-01-02T03:04:05")  # naive is UTC
    early = api.post(f"/api/runs/{run['id']}/finish", json={"finished_at": "2026-01-01T00:00:00Z"})
    assert early.status_code == 422 and early.json()["detail"][0]["loc"][-1] == "finished_at"
    assert api.get(f"/api/runs/{run['id']}").json()["status"] == "running"  # nothing lost
    done = api.post(f"/api/runs/{run['id']}/finish", json={"finished_at": "2026-01-02T05:00:00Z"})
    assert done.status_code == 200 and done.json()["finished_at"].startswith("2026-01-02T05:00")


def test_the_readme_offline_block_runs_as_written_and_syncs(
    server: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S)
                if "Client(offline=True)" in b]
    url, token = server
    monkeypatch.setenv("NEUROREG_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NEUROREG_API_URL", "http://127.0.0.1:9")  # no server is asked
    exec(compile(block, "docs/deployment.md", "exec"), {})
    with Client(url, token, offline=False, spool_dir=tmp_path / "spool") as nr:
        (report,) = nr.sync()
        assert report.done and report.points == 100 and report.lines == 1
        assert nr.run(report.run_id)["status"] == "succeeded"  # type: ignore[arg-type]
