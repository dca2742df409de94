"""``worker.backend.Remote`` against the app in this process: the recorder and the log sink
write through it as through the database; what it downloads it keeps by digest; a server
that answers 503 or is away for a while loses nothing the worker was asked to store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.models import Role, RunStatus, User
from core.store.runs import create_run
from core.store.users import issue_token
from worker.backend import Remote, RemoteError
from worker.capture import LogSink
from worker.recorder import SqlRecorder

pytestmark = pytest.mark.no_numerics


class Flaky(httpx.BaseTransport):
    """The app's transport, answering 503 to the first ``fail`` requests (a database or
    object store that is away) and counting what reaches the app."""

    def __init__(self, inner: httpx.BaseTransport, fail: int = 0) -> None:
        self.inner, self.fail, self.seen = inner, fail, []  # type: list[str]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.fail > 0:
            self.fail -= 1
            return httpx.Response(503, json={"detail": "the store is away"})
        self.seen.append(f"{request.method} {request.url.path}")
        return self.inner.handle_request(request)


def _remote(client: TestClient, settings: Settings, tmp_path: Path, fail: int = 0
            ) -> tuple[Remote, Flaky]:
    with session_scope(settings.db_url) as s:
        admin = s.query(User).filter(User.role == Role.admin).one()
        token = issue_token(s, user=admin, name="box", scope="worker")
    flaky = Flaky(client._transport, fail)  # type: ignore[attr-defined]
    http = httpx.Client(transport=flaky, base_url="http://testserver")
    return Remote("http://testserver", token, cache=tmp_path / "cache", retry_s=30,
                  backoff=0.01, client=http), flaky


def _queued(client: TestClient, config: dict[str, object] | None = None) -> int:
    res = client.post("/api/runs", json={"kind": "train", "config": config or {"epochs": 1}})
    assert res.status_code == 201, res.text
    return int(res.json()["id"])


def test_the_recorder_and_the_log_sink_write_through_the_api(
        client: TestClient, settings: Settings, tmp_path: Path) -> None:
    remote, _ = _remote(client, settings, tmp_path)
    run = _queued(client)
    got = remote.claim(run, "box:1")
    assert got is not None and got.kind == "train" and got.holder is None
    assert got.config is not None and got.config["epochs"] == 1
    with SqlRecorder(backend=remote, run_id=run) as rec:
        rec.log_metrics({"loss": 2.0, "acc": 0.1}, 0)
        rec.log_metrics({"loss": 1.0, "acc": 0.4}, 1)
        rec.progress(0.5, "epoch 1/2")
        rec.save_artifact("checkpoint.pt", b"state", "application/octet-stream")
        assert rec.load_artifact("checkpoint.pt") == b"state"
        assert rec.load_artifact("nothing.pt") is None
        assert not rec.should_stop()
    assert client.get(f"/api/runs/{run}/metrics/loss").json()["values"] == [2.0, 1.0]
    shown = client.get(f"/api/runs/{run}").json()
    assert shown["progress"] == 0.5 and shown["message"] == "epoch 1/2"
    sink = LogSink(remote, run, max_bytes=10_000, interval=3600)
    for i in range(3):
        sink.add("stdout", f"line {i}")
    sink.close()
    remote.keep_logs(run)
    assert client.get(f"/api/runs/{run}/artifacts/logs.txt").text.count("line ") == 3
    assert remote.next_seq(run) == 3
    # a cancel reaches the job through it
    client.post(f"/api/runs/{run}/cancel")
    assert remote.status(run) is RunStatus.cancelled
    assert SqlRecorder(backend=remote, run_id=run).should_stop()


def test_inputs_are_downloaded_once_and_checked(client: TestClient, settings: Settings,
                                                tmp_path: Path) -> None:
    with session_scope(settings.db_url) as s:
        admin = s.query(User).filter(User.role == Role.admin).one()
        sim = create_run(s, owner=admin, kind="similarity", name="", config={})
        save_artifact(s, settings.artifacts, run_id=sim.id, name="target-neural-model.npz",
                      data=b"T" * 1000, media_type="application/x-npz")
        sim_id = sim.id
    from core.lifecycle import finish_run

    with session_scope(settings.db_url) as s:
        finish_run(s, sim_id, RunStatus.succeeded)
    run = _queued(client, {"epochs": 1, "target": "neural-model", "target_run": sim_id})
    remote, flaky = _remote(client, settings, tmp_path)
    assert remote.claim(run, "box:1")
    path = remote.artifact_file(run, sim_id, "target-neural-model.npz")
    assert path.read_bytes() == b"T" * 1000 and path.is_relative_to(tmp_path / "cache")
    downloads = [r for r in flaky.seen if "/artifacts/" in r]
    assert remote.artifact_file(run, sim_id, "target-neural-model.npz") == path
    assert [r for r in flaky.seen if "/artifacts/" in r] == downloads  # from the cache
    path.write_bytes(b"damaged")  # a cache file that no longer matches is fetched again
    assert remote.artifact_file(run, sim_id, "target-neural-model.npz").read_bytes() == \
        b"T" * 1000
    assert remote.config_of(run, sim_id)[0] == "similarity"
    with pytest.raises(RemoteError, match="403"):
        remote.artifact_file(run, run + 1000, "model.pt")


def test_a_store_that_answers_503_for_a_while_loses_nothing(
        client: TestClient, settings: Settings, tmp_path: Path) -> None:
    remote, flaky = _remote(client, settings, tmp_path)
    run = _queued(client)
    assert remote.claim(run, "box:1")
    flaky.fail = 3  # the next three calls: 503
    remote.points(run, [("loss", s, float(s), None) for s in range(5)])
    assert client.get(f"/api/runs/{run}/metrics/loss").json()["steps"] == [0, 1, 2, 3, 4]
    flaky.fail = 2
    remote.save_artifact(run, "model.pt", b"weights", "application/octet-stream")
    assert client.get(f"/api/runs/{run}/artifacts/model.pt").content == b"weights"
    flaky.fail = 1
    assert remote.finish(run, RunStatus.succeeded, error=None, result={"ok": 1}) == []
    assert client.get(f"/api/runs/{run}").json()["status"] == "succeeded"
    # past its patience, the call raises: the recorder keeps its points for the next flush
    short = Remote("http://testserver", "x", cache=tmp_path / "c2", retry_s=0.05,
                   backoff=0.01, client=httpx.Client(transport=Flaky(
                       client._transport, fail=10**6),  # type: ignore[attr-defined]
                       base_url="http://testserver"))
    with pytest.raises(RemoteError, match="503"):
        short.beat(run)


def test_a_bad_token_is_refused_not_retried(client: TestClient, settings: Settings,
                                            tmp_path: Path) -> None:
    remote, flaky = _remote(client, settings, tmp_path)
    remote.http.headers["Authorization"] = "Bearer nrw_not-a-token"
    with pytest.raises(RemoteError, match="401"):
        remote.claim(_queued(client), "box:1")
    assert len(flaky.seen) == 1  # once: a 4xx is an answer
