"""``neuroreg sync`` against a server that refuses, a spool that lies and one that is huge:
only what the server acknowledged is marked done (a refusal stays pending, is reported
and exits 1, ``--clean`` keeps it), an odd line is reported and skipped while the rest
syncs, artifact names are checked as the API checks them, a folder writes only into the
run the server says it created for the syncing user (an admin's sync of a crafted folder
never writes into a member's run), and the events file streams."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cli import main
from cli import sync as sync_cli
from neuroreg import spool as spool_mod
from neuroreg import sync as sync_mod
from neuroreg.client import Client
from neuroreg.spool import EVENTS, STATE


class _Server(httpx.BaseTransport):
    """The app behind ``api`` through a transport that answers ``status`` to each request
    ``refused`` picks (a full disk's 507, a proxy's 503, a 403), and records how many
    points each metric batch carried."""

    def __init__(self, api: TestClient, status: int = 503,
                 refused: Callable[[httpx.Request], bool] = lambda _: False) -> None:
        self.inner: httpx.BaseTransport = api._transport
        self.status, self.refused = status, refused
        self.refusals = 0
        self.batches: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.refused(request):
            self.refusals += 1
            return httpx.Response(self.status, request=request,
                                  json={"detail": f"the test's server refused it ({self.status})"})
        if request.method == "POST" and request.url.path.endswith("/metrics"):
            self.batches.append(len(json.loads(request.content)["points"]))
        return self.inner.handle_request(request)

    def close(self) -> None:
        pass  # the TestClient owns the app's transport


def _client(api: TestClient, spool: Path, server: _Server | None = None) -> Client:
    """The admin's client over ``server`` (default: one that refuses nothing)."""
    token = api.headers["Authorization"].removeprefix("Bearer ")
    return Client("http://testserver", token, offline=False, spool_dir=spool,
                  transport=server or _Server(api))


def _cli(monkeypatch: pytest.MonkeyPatch, api: TestClient, spool: Path, server: _Server,
         *flags: str) -> int:
    """``neuroreg sync [flags] spool`` as the admin, talking to ``server``."""
    monkeypatch.setattr(sync_cli, "client", lambda _settings: _client(api, spool, server))
    return main(["sync", *flags, str(spool)])


def _offline_run(spool: Path, tmp_path: Path, *, steps: int = 30, name: str = "node42"
                 ) -> Path:
    """A script's whole run on a node without network: its spool folder."""
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x00\x01" * 5000)
    with Client(offline=True, spool_dir=spool) as nr:
        run = nr.create_external(name, params={"lr": 0.1}, tags=["offline"],
                                 provenance=False)
        for step in range(steps):
            nr.log_batch(run["id"], {"loss": 1 / (step + 1)}, step=step)
        nr.log(run["id"], "epoch 1\nepoch 2")
        nr.upload(run["id"], weights, "weights.bin")
        nr.finish(run["id"], result={"best": 0.97})
        return Path(run["spool"])


def _points(api: TestClient, run_id: int, key: str = "loss") -> list[int]:
    res = api.get(f"/api/runs/{run_id}/metrics/{key}", params={"max_points": 100_000})
    return res.json()["steps"] if res.status_code == 200 else []


def _writes(path_end: str) -> Callable[[httpx.Request], bool]:
    return lambda req: req.method in ("POST", "PUT", "PATCH") and (
        req.url.path.endswith(path_end) or f"{path_end}/" in req.url.path)


# refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [503, 507, 403])
def test_writes_the_server_refused_stay_pending_and_clean_keeps_them(
    api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], status: int
) -> None:
    spool = tmp_path / "spool"
    folder = _offline_run(spool, tmp_path)
    # points, log lines and the artifact are refused; the create and the finish go through
    refusing = _Server(api, status, lambda r: any(
        _writes(p)(r) for p in ("/metrics", "/logs", "/artifacts")))
    assert _cli(monkeypatch, api, spool, refusing, "--clean") == 1
    err = capsys.readouterr().err
    assert f"{folder / EVENTS}:2" in err and f"{status}" in err
    assert folder.is_dir()
    # the next sync, still refused: the same writes are tried again, and kept again
    before = refusing.refusals
    assert _cli(monkeypatch, api, spool, refusing, "--clean") == 1
    assert refusing.refusals > before and folder.is_dir()
    capsys.readouterr()
    # the server is back: everything arrives once, and only now may --clean delete it
    assert _cli(monkeypatch, api, spool, _Server(api)) == 0
    (run,) = [r for r in api.get("/api/runs", params={"tag": "offline"}).json()["items"]]
    assert _points(api, run["id"]) == list(range(30))
    lines = api.get(f"/api/runs/{run['id']}/logs").json()["lines"]
    assert [ln["line"] for ln in lines] == ["epoch 1", "epoch 2"]
    assert api.get(f"/api/runs/{run['id']}/artifacts/weights.bin").content == \
        b"\x00\x01" * 5000
    assert api.get(f"/api/runs/{run['id']}").json()["status"] == "succeeded"
    assert folder.is_dir()
    assert _cli(monkeypatch, api, spool, _Server(api), "--clean") == 0
    assert not folder.exists()


def test_a_refused_finish_is_sent_again(api: TestClient, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    _offline_run(spool, tmp_path)
    with _client(api, spool, _Server(api, 503, _writes("/finish"))) as nr:
        (report,) = nr.sync()
    assert not report.done and report.finished is None
    assert any("finish" in p and "503" in p for p in report.problems)
    with _client(api, spool) as nr:
        (again,) = nr.sync()
    assert again.done and again.finished == "succeeded" and not again.problems
    assert api.get(f"/api/runs/{report.run_id}").json()["status"] == "succeeded"


def test_clean_removes_only_what_the_server_holds(
    api: TestClient, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    folder = _offline_run(spool, tmp_path)
    size = (folder / EVENTS).stat().st_size
    # a progress file that claims everything went (to another server, or made up)
    (folder / STATE).write_text(json.dumps({"run_id": 1, "offset": size, "line": 99,
                                            "done": True, "finished": True}))
    with _client(api, spool) as nr:
        assert sync_mod.clean(nr, nr.sync()) == [folder]  # only once it was all sent again
    (run,) = api.get("/api/runs", params={"tag": "offline"}).json()["items"]
    assert _points(api, run["id"]) == list(range(30)) and run["status"] == "succeeded"
    assert api.get(f"/api/runs/{run['id']}/artifacts/weights.bin").status_code == 200
    # a progress file that marked refused writes done (as syncs before this fix did)
    other = _offline_run(spool, tmp_path, name="refused")
    with _client(api, spool, _Server(api, 507, _writes("/artifacts"))) as nr:
        nr.sync()
    state = json.loads((other / STATE).read_text())
    state.update(offset=(other / EVENTS).stat().st_size, line=99, done=True, finished=True)
    (other / STATE).write_text(json.dumps(state))
    api.post(f"/api/runs/{state['run_id']}/finish", json={"status": "succeeded"})
    with _client(api, spool) as nr:
        (report,) = nr.sync()
        assert report.already and sync_mod.clean(nr, [report]) == []
    assert other.is_dir() and "weights.bin" in str(report.kept)  # its artifact is not on the server


# odd lines ------------------------------------------------------------------------------
def _line(folder: Path, event: str) -> None:
    with open(folder / EVENTS, "a", encoding="utf-8") as fh:
        fh.write(event + "\n")


def test_an_odd_line_is_reported_and_skipped_and_the_rest_syncs(
    api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    spool = tmp_path / "spool"
    with Client(offline=True, spool_dir=spool) as nr:
        run = nr.create_external("odd", tags=["odd"], provenance=False)
        nr.log_batch(run["id"], [("loss", s, 1.0) for s in range(10)])
        folder = Path(run["spool"])
    _line(folder, '{"op": "metrics", "points": [["loss", 10, 1.0, 1e300]]}')
    _line(folder, '{"op": "metrics", "points": [["loss", 11, NaN, 0]]}')
    _line(folder, '{"op": "metrics", "points": [["loss", 1099511627776, 1.0, 0]]}')
    _line(folder, '{"op": "metrics", "points": [["loss", 12, 1e309, 0]]}')
    _line(folder, '{"op": "log", "first": 0, "stream": "client", "lines": [[1e300, "x"]]}')
    _line(folder, '{"op": "artifact", "name": "a", "file": "files/nope", "sha256": "0"}')
    _line(folder, '{"op": "metrics", "points": [["loss", 12, 1' + "0" * 400 + ', 0]]}')
    _line(folder, json.dumps({"op": "metrics", "points": [["loss", s, 2.0, 1.0e9]
                                                          for s in range(13, 20)]}))
    _line(folder, '{"op": "log", "first": 1, "stream": "client", "lines": '
                  '[[1e9, "after the odd lines"]]}')
    _line(folder, '{"op": "finish", "status": "succeeded", "time": 1e300}')
    # a second folder whose create time is 1e300 syncs too
    with Client(offline=True, spool_dir=spool) as nr:
        other = nr.create_external("other", tags=["odd"], provenance=False)
        nr.log_batch(other["id"], {"acc": 0.5}, step=0)
        other_folder = Path(other["spool"])
    text = (other_folder / EVENTS).read_text().splitlines(keepends=True)
    first = json.loads(text[0])
    first["time"] = 1e300
    (other_folder / EVENTS).write_text(json.dumps(first) + "\n" + "".join(text[1:]))

    assert _cli(monkeypatch, api, spool, _Server(api)) == 1
    out, err = capsys.readouterr()
    events = folder / EVENTS
    for number in (3, 4, 5, 6, 7, 8, 9, 12):
        assert f"{events}:{number}:" in err, (number, err)
    assert f"{other_folder / EVENTS}:1:" in err
    runs = {r["name"]: r for r in api.get("/api/runs", params={"tag": "odd"}).json()["items"]}
    assert set(runs) == {"odd", "other"}
    assert _points(api, runs["odd"]["id"]) == [*range(10), *range(13, 20)]
    lines = api.get(f"/api/runs/{runs['odd']['id']}/logs").json()["lines"]
    assert [ln["line"] for ln in lines] == ["after the odd lines"]
    assert runs["odd"]["status"] == "succeeded"  # its finish's time was odd, not its status
    assert _points(api, runs["other"]["id"], "acc") == [0]
    # the skipped lines are kept for a person to read: --clean leaves the folder
    assert _cli(monkeypatch, api, spool, _Server(api), "--clean") == 0
    assert folder.is_dir()


# names ----------------------------------------------------------------------------------
BAD_NAMES = ["../../{victim}/artifacts/evil", "../evil", "a/b", "..", ".hidden", "x" * 256,
             "a b", "a?b=1", "a#b", "%2e%2e", "a\n"]


def test_artifact_names_are_checked_like_the_api_checks_them(
    api: TestClient, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    victim = api.post("/api/runs", json={"kind": "external", "name": "mine too"}).json()["id"]
    names = [n.format(victim=victim) for n in BAD_NAMES]
    file = tmp_path / "f.txt"
    file.write_bytes(b"payload")
    with Client(offline=True, spool_dir=spool) as nr:
        run = nr.create_external("names", provenance=False)
        for name in names:  # the spool refuses them when the script uploads
            with pytest.raises(ValueError, match="name"):
                nr.upload(run["id"], file, name)
        nr.upload(run["id"], file, "fine.txt")
        folder = Path(run["spool"])
    copy = json.loads((folder / EVENTS).read_text().splitlines()[-1])
    for name in [*names, ""]:  # a crafted folder carries them anyway
        _line(folder, json.dumps({**copy, "name": name}))
    with _client(api, spool) as nr:
        (report,) = nr.sync()
        for name in names:  # and an online upload never puts one in its URL
            with pytest.raises(ValueError, match="name"):
                nr.upload(victim, file, name)
    assert report.artifacts == 1 and len(report.problems) == len(names) + 1
    assert all("name" in p for p in report.problems)
    assert api.get(f"/api/runs/{victim}/artifacts").json() == []
    stored = api.get(f"/api/runs/{report.run_id}/artifacts").json()
    assert [a["name"] for a in stored] == ["fine.txt"]


# another member's run -------------------------------------------------------------------
def test_an_admin_syncing_a_crafted_folder_never_writes_into_a_members_run(
    api: TestClient, member: Callable[[str], TestClient], tmp_path: Path
) -> None:
    eve = member("eve")
    key = "e" * 32
    target = eve.post("/api/runs", json={"kind": "external", "name": "eve's",
                                         "client_key": key}).json()
    assert target["client_key"] == key  # every member can read it
    spool = tmp_path / "spool"
    file = tmp_path / "f.txt"
    file.write_bytes(b"payload")
    # an attach folder naming eve's run and its key, and one without a key
    for n, claimed in enumerate([key, None]):
        folder = spool / f"run-{target['id']}-0000000{n}"
        folder.mkdir(parents=True)
        sp = spool_mod.SpoolRun(folder)
        sp.append({"op": "attach", "run_id": target["id"], "client_key": claimed,
                   "log_base": 0, "time": 1.0e9 + n})
        _fill(sp, file)
    # a run of the admin's own whose progress file names eve's run
    with Client(offline=True, spool_dir=spool) as nr:
        own = nr.create_external("admin's", tags=["admin"], provenance=False)
        sp = nr.spool.get(own["id"])
        _fill(sp, file)
    head = (sp.folder / EVENTS).read_text().index("\n") + 1
    (sp.folder / STATE).write_text(json.dumps({"run_id": target["id"], "offset": head,
                                               "line": 1}))
    with _client(api, spool) as nr:
        reports = {r.folder.name: r for r in nr.sync()}
    for name, r in reports.items():
        assert r.run_id != target["id"], name
    assert sum(bool(r.problems) for r in reports.values()) == 2
    assert all("eve" in r.problems[0] for r in reports.values() if r.problems)
    assert api.get(f"/api/runs/{target['id']}/metrics").json() == []
    assert api.get(f"/api/runs/{target['id']}/logs").json()["lines"] == []
    assert api.get(f"/api/runs/{target['id']}/artifacts").json() == []
    assert api.get(f"/api/runs/{target['id']}").json()["status"] == "running"
    # the admin's own folder synced whole into the admin's own run
    (mine,) = api.get("/api/runs", params={"tag": "admin"}).json()["items"]
    assert reports[sp.folder.name].run_id == mine["id"]
    assert _points(api, mine["id"]) == [0, 1, 2] and mine["status"] == "failed"
    with _client(api, spool) as nr:  # and only it may be cleaned
        assert sync_mod.clean(nr, nr.sync()) == [sp.folder]


def _fill(sp: spool_mod.SpoolRun, file: Path) -> None:
    sp.metrics([("loss", s, 1.0, 1.0e9) for s in range(3)])
    sp.log(["injected"], "client")
    sp.add_file(file, "planted.txt", "text/plain")
    sp.append({"op": "finish", "status": "failed", "error": "planted", "result": None,
               "time": time.time()})


# streaming ------------------------------------------------------------------------------
def _peak_while(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape", ["one huge line", "many lines"])
def test_the_events_file_streams_in_bounded_memory_and_batches(
    api: TestClient, tmp_path: Path, shape: str
) -> None:
    spool = tmp_path / "spool"
    with Client(offline=True, spool_dir=spool) as nr:
        run = nr.create_external("big", provenance=False)
        nr.log_batch(run["id"], [("loss", s, 1.0) for s in range(6_000)])  # one call
        folder = Path(run["spool"])
    size = 24 << 20
    with open(folder / EVENTS, "a", encoding="utf-8") as fh:
        if shape == "one huge line":
            fh.write('{"op": "log", "first": 0, "stream": "client", "lines": [[0, "')
            fh.write("x" * size + '"]]}\n')
        else:  # 24 MiB of lines that each say nothing
            fh.write(("{}" + " " * 4093 + "\n") * (size // 4096))
    _line(folder, '{"op": "metrics", "points": [["after", 0, 1.0, 0]]}')
    server = _Server(api)
    with _client(api, spool, server) as nr:
        reports: list[sync_mod.RunSync] = []
        peak = _peak_while(lambda: reports.extend(nr.sync()))
    (report,) = reports
    assert peak < 12 << 20, f"{peak / 2**20:.0f} MiB held to sync a 24 MiB file"
    assert report.points == 6_001 and report.problems
    assert len(report.problems) <= sync_mod.MAX_PROBLEMS  # the rest counted, not kept
    assert max(server.batches) <= spool_mod.BATCH
    assert _points(api, report.run_id, "after") == [0]  # type: ignore[arg-type]
