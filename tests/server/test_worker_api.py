"""``/api/worker``: worker tokens act only there and member tokens never do; a worker token
writes only to the run it claimed and reads only what that run reads; the store side
behaves as a worker with the database sees it (a point re-sent stored once, a cancel that
came meanwhile standing)."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.models import Role, RunStatus, User
from core.store.runs import create_run
from core.store.users import issue_token

pytestmark = pytest.mark.no_numerics

TARGET = "target-neural-model.npz"


def _as(client: TestClient, token: str) -> TestClient:
    other = TestClient(client.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


def _worker(client: TestClient, name: str = "gpu-box") -> TestClient:
    made = client.post("/api/tokens", json={"name": name, "scope": "worker"})
    assert made.status_code == 201, made.text
    assert made.json()["token"].startswith("nrw_") and made.json()["scope"] == "worker"
    return _as(client, made.json()["token"])


def _similarity(settings: Settings, data: bytes = b"target bytes") -> int:
    """A succeeded similarity run with a target artifact, as a worker leaves one."""
    with session_scope(settings.db_url) as s:
        admin = s.query(User).filter(User.role == Role.admin).one()
        run = create_run(s, owner=admin, kind="similarity", name="", config={})
        save_artifact(s, settings.artifacts, run_id=run.id, name=TARGET, data=data,
                      media_type="application/x-npz")
        finish_run(s, run.id, RunStatus.succeeded)
        return run.id


def _train(client: TestClient, target_run: int | None = None) -> int:
    config: dict[str, object] = {"epochs": 1}
    if target_run is not None:
        config |= {"target": "neural-model", "target_run": target_run}
    res = client.post("/api/runs", json={"kind": "train", "config": config})
    assert res.status_code == 201, res.text
    return int(res.json()["id"])


def test_each_token_acts_only_in_its_scope(client: TestClient) -> None:
    gpu = _worker(client)
    run = _train(client)
    assert gpu.get("/api/runs").status_code == 403
    assert "worker token" in gpu.get("/api/me").json()["detail"]
    assert gpu.post("/api/runs", json={"kind": "train", "config": {}}).status_code == 403
    refused = client.post(f"/api/worker/runs/{run}/claim", json={"worker": "h:1"})
    assert refused.status_code == 403 and "worker token" in refused.json()["detail"]
    assert TestClient(client.app).post(f"/api/worker/runs/{run}/claim",
                                       json={"worker": "h:1"}).status_code == 401
    # a member may not issue one; the admin's listing shows its scope; revoked, it is dead
    ada = _as(client, client.post("/api/users", json={"name": "ada"}).json()["token"])
    no = ada.post("/api/tokens", json={"name": "mine", "scope": "worker"})
    assert no.status_code == 403 and "admin" in no.json()["detail"]
    listed = {t["name"]: t["scope"] for t in client.get("/api/tokens").json()}
    assert listed["gpu-box"] == "worker" and listed["first-start"] == "member"
    wid = next(t["id"] for t in client.get("/api/tokens").json() if t["name"] == "gpu-box")
    assert client.delete(f"/api/tokens/{wid}").status_code == 204
    assert gpu.post(f"/api/worker/runs/{run}/claim",
                    json={"worker": "h:1"}).status_code == 401


def test_a_worker_writes_only_the_run_it_claimed(client: TestClient, settings: Settings) -> None:
    one, two = _worker(client, "one"), _worker(client, "two")
    run = _train(client)
    got = one.post(f"/api/worker/runs/{run}/claim", json={"worker": "a:1"}).json()
    assert got["kind"] == "train" and got["config"]["epochs"] == 1 and got["holder"] is None
    # another worker is told who holds it, and may not write to it
    assert two.post(f"/api/worker/runs/{run}/claim", json={"worker": "b:2"}).json() == {
        "kind": None, "config": None, "holder": "a:1"}
    point = {"points": [{"key": "loss", "step": 0, "value": 1.5, "wall_time": 1.0}]}
    for method, path, body in [("POST", "/beat", None), ("POST", "/points", point),
                               ("POST", "/sync", {"progress": {"fraction": 0.5}}),
                               ("PUT", "/artifacts/model.pt", None), ("GET", "", None),
                               ("POST", "/finish", {"status": "succeeded"})]:
        res = two.request(method, f"/api/worker/runs/{run}{path}", json=body)
        assert res.status_code == 403, (method, path, res.text)
    # the holder writes: a point sent twice is stored once
    assert one.post(f"/api/worker/runs/{run}/points", json=point).status_code == 204
    assert one.post(f"/api/worker/runs/{run}/points", json=point).status_code == 204
    series = client.get(f"/api/runs/{run}/metrics/loss").json()
    assert series["steps"] == [0] and series["values"] == [1.5]
    synced = one.post(f"/api/worker/runs/{run}/sync", json={
        "points": [{"key": "loss", "step": 1, "value": 0.5}],
        "progress": {"fraction": 0.6, "message": "epoch 2"}})
    assert synced.json() == {"status": "running"}
    assert client.get(f"/api/runs/{run}").json()["progress"] == 0.6
    assert one.put(f"/api/worker/runs/{run}/artifacts/model.pt", content=b"weights",
                   headers={"Content-Type": "application/x-pytorch"}).status_code == 204
    assert one.get(f"/api/worker/runs/{run}/artifacts/model.pt").content == b"weights"
    assert one.get(f"/api/worker/runs/{run}/artifacts/ckpt.pt").status_code == 204  # none
    lines = {"lines": [{"seq": 0, "stream": "stdout", "time": 1.0, "line": "epoch 1/1"}]}
    assert one.post(f"/api/worker/runs/{run}/logs", json=lines).json() == {"full": False}
    assert one.get(f"/api/worker/runs/{run}").json()["next_seq"] == 1
    assert one.post(f"/api/worker/runs/{run}/keep-logs").status_code == 204
    # a cancel that comes meanwhile shows, and stands when the worker finishes
    assert client.post(f"/api/runs/{run}/cancel").status_code == 200
    assert one.get(f"/api/worker/runs/{run}").json()["status"] == "cancelled"
    assert one.post(f"/api/worker/runs/{run}/finish", json={
        "status": "succeeded", "result": {"steps": 1}}).json() == {"queued": []}
    shown = client.get(f"/api/runs/{run}").json()
    assert shown["status"] == "cancelled"
    names = {a["name"] for a in client.get(f"/api/runs/{run}/artifacts").json()}
    assert names == {"model.pt", "logs.txt"}
    assert "epoch 1/1" in client.get(f"/api/runs/{run}/artifacts/logs.txt").text


def test_a_worker_reads_only_what_its_run_reads(client: TestClient, settings: Settings) -> None:
    gpu = _worker(client)
    sim, other = _similarity(settings, b"the target"), _similarity(settings, b"another")
    run = _train(client, target_run=sim)
    assert gpu.post(f"/api/worker/runs/{run}/claim", json={"worker": "a:1"}).json()["kind"]
    meta = gpu.get(f"/api/worker/runs/{run}/inputs/{sim}").json()
    assert meta["kind"] == "similarity"
    assert meta["artifacts"][TARGET] == {"sha256": hashlib.sha256(b"the target").hexdigest(),
                                         "size": 10}
    got = gpu.get(f"/api/worker/runs/{run}/inputs/{sim}/artifacts/{TARGET}")
    assert got.status_code == 200 and got.content == b"the target"
    assert gpu.get(f"/api/worker/runs/{run}/inputs/{run}").json()["kind"] == "train"
    # a run it does not read, though the worker holds a run: refused
    for path in (f"/inputs/{other}", f"/inputs/{other}/artifacts/{TARGET}"):
        res = gpu.get(f"/api/worker/runs/{run}{path}")
        assert res.status_code == 403 and f"run {other} is not one run {run} reads" in \
            res.json()["detail"]
    # nor through a run it does not hold
    assert gpu.get(f"/api/worker/runs/{sim}/inputs/{sim}").status_code == 403
    # files under the server's folders: only those its configs name
    (settings.recordings / "mouse.npz").parent.mkdir(parents=True, exist_ok=True)
    (settings.recordings / "mouse.npz").write_bytes(b"spikes")
    res = gpu.get(f"/api/worker/runs/{run}/files/recordings", params={"name": "mouse.npz"})
    assert res.status_code == 403 and "not named by run" in res.json()["detail"]
    assert gpu.get(f"/api/worker/runs/{run}/files/etc",
                   params={"name": "passwd"}).status_code == 422


def test_a_recording_a_similarity_run_names_is_served_file_by_file(
        client: TestClient, settings: Settings) -> None:
    folder = settings.recordings / "session1"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "responses.npy").write_bytes(b"r" * 100)
    (folder / "meta.json").write_bytes(b"{}")
    (settings.recordings / "secret.txt").write_bytes(b"not for workers")
    with session_scope(settings.db_url) as s:
        admin = s.query(User).filter(User.role == Role.admin).one()
        run = create_run(s, owner=admin, kind="similarity", name="",
                         config={"source": "recording", "recording": "session1"}).id
    gpu = _worker(client)
    assert gpu.post(f"/api/worker/runs/{run}/claim", json={"worker": "a:1"}).json()["kind"]
    files = gpu.get(f"/api/worker/runs/{run}/files/recordings",
                    params={"name": "session1"}).json()["files"]
    assert files == [{"path": "data/responses.npy", "bytes": 100},
                     {"path": "meta.json", "bytes": 2}]
    got = gpu.get(f"/api/worker/runs/{run}/files/recordings/content",
                  params={"name": "session1", "file": "data/responses.npy"})
    assert got.content == b"r" * 100
    for escape in ("../secret.txt", "/etc/passwd", "data/../../secret.txt"):
        res = gpu.get(f"/api/worker/runs/{run}/files/recordings/content",
                      params={"name": "session1", "file": escape})
        assert res.status_code == 404, escape


def test_a_study_fans_out_and_queues_only_its_own_runs(client: TestClient,
                                                       settings: Settings) -> None:
    sim = _similarity(settings)
    res = client.post("/api/runs", json={"kind": "study", "config": {
        "conditions": ["none"], "seeds": 2, "target_run": sim, "train": {"epochs": 1}}})
    assert res.status_code == 201, res.text
    study, stranger = res.json()["id"], _train(client)
    gpu = _worker(client)
    assert gpu.post(f"/api/worker/runs/{study}/claim", json={"worker": "a:1"}).json()["kind"]
    runs = gpu.post(f"/api/worker/runs/{study}/fan-out").json()["runs"]
    assert [r["kind"] for r in runs] == ["train", "train"]
    assert gpu.post(f"/api/worker/runs/{study}/fan-out").json()["runs"] == []  # once
    refused = gpu.post(f"/api/worker/runs/{study}/enqueue",
                       json={"runs": [runs[0]["id"], stranger]})
    assert refused.status_code == 403 and f"run {stranger} is not a queued run" in \
        refused.json()["detail"]
    assert gpu.post(f"/api/worker/runs/{study}/enqueue",
                    json={"runs": [r["id"] for r in runs]}).status_code == 204


def test_another_token_takes_over_only_a_stale_run(client: TestClient, settings: Settings,
                                                   ) -> None:
    one, two = _worker(client, "one"), _worker(client, "two")
    run = _train(client)
    assert one.post(f"/api/worker/runs/{run}/claim", json={"worker": "a:1"}).json()["kind"]
    # naming the holder as dead takes it over only for the token that claimed it
    assert two.post(f"/api/worker/runs/{run}/claim",
                    json={"worker": "b:2", "takeover": "a:1"}).json()["holder"] == "a:1"
    assert one.post(f"/api/worker/runs/{run}/claim",
                    json={"worker": "a:2", "takeover": "a:1"}).json()["kind"] == "train"
    with session_scope(settings.db_url) as s:
        token = issue_token(s, user=s.query(User).first(), name="three", scope="worker")
    three = _as(client, token)
    with session_scope(settings.db_url) as s:  # its heartbeat goes stale
        from sqlalchemy import update

        from core.store.models import Run, utcnow
        s.execute(update(Run).where(Run.id == run).values(
            heartbeat_at=utcnow().replace(year=2000)))
    assert three.post(f"/api/worker/runs/{run}/claim",
                      json={"worker": "c:3"}).json()["kind"] == "train"
    assert one.post(f"/api/worker/runs/{run}/beat").status_code == 403  # not its any more
    assert three.post(f"/api/worker/runs/{run}/beat").status_code == 204


def test_a_result_the_pages_cannot_read_is_refused_and_nothing_is_kept(
        client: TestClient, settings: Settings) -> None:
    """A worker token's finish is read as the pages read it, as an import is: a result
    that would break a page (or the scores) is a 422 naming it, and the run stays as it
    was for a finish that can be read."""
    from core.lifecycle import finish_run as end

    gpu = _worker(client)
    train = _train(client)
    with session_scope(settings.db_url) as s:
        save_artifact(s, settings.artifacts, run_id=train, name="model.pt", data=b"w",
                      media_type="application/octet-stream")
        end(s, train, RunStatus.succeeded)
    ev = client.post("/api/runs", json={"kind": "evaluate",
                                        "config": {"train_run": train}}).json()["id"]
    assert gpu.post(f"/api/worker/runs/{ev}/claim", json={"worker": "a:1"}).json()["kind"]
    for bad in ({"noise": 5}, {"noise": {"sigmas": "x"}}):
        res = gpu.post(f"/api/worker/runs/{ev}/finish",
                       json={"status": "succeeded", "result": bad})
        assert res.status_code == 422, (bad, res.text)
        assert res.json()["detail"][0]["loc"] == ["body", "result"]
    assert client.get(f"/api/runs/{ev}").json()["status"] == "running"
    assert client.get("/api/summaries/robustness").status_code == 200
    assert gpu.post(f"/api/worker/runs/{ev}/finish", json={
        "status": "failed", "error": "out of memory"}).status_code == 200
    assert client.get(f"/api/runs/{ev}").json()["status"] == "failed"


def test_any_worker_may_draw_a_succeeded_train_runs_overview_and_no_more(
        client: TestClient, settings: Settings) -> None:
    """The dashboard asks any worker for a missing S_CNN overview: a worker token reads a
    succeeded train run's model and target and writes its overview, nothing else of it,
    and nothing of a train run that has not succeeded."""
    gpu = _worker(client)
    sim = _similarity(settings, b"stimuli")
    done, queued = _train(client, target_run=sim), _train(client, target_run=sim)
    with session_scope(settings.db_url) as s:
        save_artifact(s, settings.artifacts, run_id=done, name="model.pt", data=b"w",
                      media_type="application/octet-stream")
        finish_run(s, done, RunStatus.succeeded)
    base = f"/api/worker/runs/{done}"
    assert gpu.get(f"{base}/inputs/{done}/artifacts/model.pt").content == b"w"
    assert gpu.get(f"{base}/inputs/{sim}/artifacts/{TARGET}").content == b"stimuli"
    assert gpu.put(f"{base}/artifacts/s-cnn-overview.npz", content=b"npz").status_code == 204
    assert gpu.get(f"{base}/artifacts/s-cnn-overview.npz").content == b"npz"
    assert gpu.put(f"{base}/artifacts/model.pt", content=b"evil").status_code == 403
    assert gpu.post(f"{base}/finish", json={"status": "failed"}).status_code == 403
    assert gpu.get(f"/api/worker/runs/{queued}/inputs/{sim}").status_code == 403
    assert gpu.put(f"/api/worker/runs/{queued}/artifacts/s-cnn-overview.npz",
                   content=b"npz").status_code == 403
