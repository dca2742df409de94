"""What a fuzzer and a hostile teammate send: every number stored is finite, no one writes
into another's run through ``parent_id``, and no request a client can send is a 500 — on
SQLite and on PostgreSQL."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import MAX_ID, Run, RunStatus, User
from core.store.runs import create_run
from core.store.users import ensure_admin
from core.studies import children
from server.app import create_app
from tests.conftest import admin_client

pytestmark = pytest.mark.no_numerics


@pytest.fixture
def api(make_settings: Callable[..., Settings], db_url: str) -> Iterator[TestClient]:
    """An admin's client on each backend (``db_url`` is SQLite, then PostgreSQL)."""
    with admin_client(make_settings(database_url=db_url)) as c:
        yield c


def _member(admin: TestClient, name: str) -> TestClient:
    res = admin.post("/api/users", json={"name": name})
    assert res.status_code == 201, res.text
    other = TestClient(admin.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {res.json()['token']}"
    return other


def _raw(client: TestClient, method: str, url: str, body: str) -> Any:
    """Send ``body`` as written (Python's json would refuse NaN on the way out)."""
    return client.request(method, url, content=body.encode(),
                          headers={"Content-Type": "application/json"})


def _external(client: TestClient, **body: Any) -> dict[str, Any]:
    res = client.post("/api/runs", json={"kind": "external", **body})
    assert res.status_code == 201, res.text
    return dict(res.json())


@pytest.mark.parametrize("field, token", [
    ("wall_time", "NaN"),
    ("wall_time", "Infinity"),
    ("value", "-Infinity"),
    ("value", "1e999"),  # parses to inf
    ("value", '"1.5"'),  # numbers are numbers
    ("value", "true"),
])
def test_a_batch_with_one_unstorable_number_is_refused_whole(
    api: TestClient, field: str, token: str
) -> None:
    run = _external(api)
    good = {"key": "a", "step": 1, "value": 1.0}
    middle = json.dumps({k: v for k, v in good.items() if k != field})[:-1]
    body = ('{"points": [{"key": "a", "step": 0, "value": 1}, '
            f'{middle}, "{field}": {token}}}, {{"key": "a", "step": 2, "value": 1}}]}}')
    res = _raw(api, "POST", f"/api/runs/{run['id']}/metrics", body)
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["loc"] == ["body", "points", 1, field]
    assert api.get(f"/api/runs/{run['id']}/series").json() == []  # nothing of it stored


def test_every_stored_number_is_finite_in_configs_and_results(api: TestClient) -> None:
    res = _raw(api, "POST", "/api/runs", '{"kind": "external", "config": {"params": '
               '{"lr": NaN}}}')
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == [
        "body", "config", "params", "lr"]
    run = _external(api)
    res = _raw(api, "POST", f"/api/runs/{run['id']}/finish",
               '{"status": "succeeded", "result": {"acc": [0.5, Infinity]}}')
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == [
        "body", "result", "acc", 1]
    assert api.get(f"/api/runs/{run['id']}").json()["status"] == "running"
    assert api.get("/api/runs").json()["total"] == 1  # the NaN config made no run


def test_a_parent_is_a_write_into_that_run(api: TestClient) -> None:
    ada, eve = _member(api, "ada"), _member(api, "eve")
    adas = _external(ada, name="ada's sweep")
    res = eve.post("/api/runs", json={"kind": "external", "parent_id": adas["id"]})
    assert res.status_code == 403 and "ada" in res.json()["detail"]
    assert api.get("/api/runs", params={"parent_id": adas["id"]}).json()["total"] == 0
    mine = _external(ada, parent_id=adas["id"])  # into her own run: fine
    assert mine["parent_id"] == adas["id"]
    assert _external(api, parent_id=adas["id"])["parent_id"] == adas["id"]  # an admin may


def test_no_one_attaches_a_run_to_a_study(api: TestClient, settings: Settings) -> None:
    with session_scope(api.app.state.settings.db_url) as s:
        admin = s.query(User).one()
        study = create_run(s, owner=admin, kind="study", name="s", config={})
        study_id = study.id
    res = api.post("/api/runs", json={"kind": "external", "parent_id": study_id})
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "parent_id"]
    assert "study" in res.json()["detail"][0]["msg"]


def test_a_study_counts_only_the_runs_it_made(api: TestClient) -> None:
    """Rows attached before the API refused it (a colleague's external run under a
    study) neither keep the study running nor stop it fanning out."""
    ada = _member(api, "ada")
    with session_scope(api.app.state.settings.db_url) as s:
        owner = s.query(User).filter_by(name="admin").one()
        stranger = s.query(User).filter_by(name="ada").one()
        study = create_run(s, owner=owner, kind="study", name="s", config={})
        foreign = create_run(s, owner=stranger, kind="external", name="x", config={},
                             parent_id=study.id)
        train = create_run(s, owner=owner, kind="train", name="t", config={},
                           parent_id=study.id)
        study_id, foreign_id, train_id = study.id, foreign.id, train.id
    with session_scope(api.app.state.settings.db_url) as s:
        assert [k.id for k in children(s, s.get(Run, study_id))] == [train_id]
        finish_run(s, foreign_id, RunStatus.succeeded)
        assert finish_run(s, train_id, RunStatus.failed, error="x") == []  # nothing to queue
    with session_scope(api.app.state.settings.db_url) as s:
        done = s.get(Run, study_id)
        assert done.status is RunStatus.failed and done.message == "1/2 runs finished"
    assert ada.get(f"/api/runs/{foreign_id}").status_code == 200


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        value = {"a": value}
    return value


BIG = "99999999999999999999"  # > 2⁶³


@pytest.mark.parametrize("method, url, body", [
    ("GET", f"/api/runs/{BIG}", None),
    ("GET", f"/api/runs/{MAX_ID + 1}", None),
    ("GET", f"/api/runs/{BIG}/series", None),
    ("GET", f"/api/runs/{BIG}/metrics/loss", None),
    ("GET", f"/api/runs/{BIG}/artifacts", None),
    ("GET", f"/api/studies/{BIG}/frontier", None),
    ("GET", f"/api/runs/{BIG}/matrices", None),
    ("POST", f"/api/runs/{BIG}/cancel", None),
    ("DELETE", f"/api/tokens/{BIG}", None),
    ("GET", f"/api/runs?offset={BIG}", None),
    ("GET", f"/api/runs?parent_id={BIG}", None),
    ("GET", f"/api/summaries/gamma?run_id={BIG}", None),
    ("GET", f"/api/summaries/robustness?run_id={MAX_ID + 1}", None),
    ("POST", "/api/runs", {"kind": "external", "parent_id": int(BIG)}),
    ("POST", "/api/runs", {"kind": "external", "input_run_id": MAX_ID + 1}),
    ("POST", "/api/runs", {"kind": "evaluate", "config": {"train_run": MAX_ID + 1}}),
    ("POST", "/api/runs", {"kind": "train", "config": {"target": "neural-model",
                                                         "target_run": int(BIG)}}),
    ("POST", "/api/runs", {"kind": "external", "name": "a\x00b"}),
    ("POST", "/api/runs", {"kind": "external", "config": {"params": {"k\x00": 1}}}),
    ("POST", "/api/runs", {"kind": "similarity", "config": {"recording": "r\x00"}}),
    ("GET", "/api/runs?owner=a%00b", None),
    ("GET", "/api/runs?tag=a%00b", None),
    ("GET", "/api/runs/1/metrics/a%00b", None),
    ("PUT", "/api/runs/1/artifacts/a%00b", None),
    ("PATCH", "/api/runs/1", {"name": "\x00"}),
    ("POST", "/api/users", {"name": "a\x00"}),
    ("POST", "/api/tokens", {"name": "t\x00"}),
    ("POST", "/api/runs", {"kind": "external", "config": {"params": _deep(400)}}),
    ("POST", "/api/runs", {"kind": "external", "config": {"params": _deep(40)}}),
    ("POST", "/api/runs", {"kind": "study"}),
    ("POST", "/api/runs", {"kind": "external", "config": {"params": {"n": 10**5000}}}),
])
def test_what_a_client_can_send_is_never_a_500(
    api: TestClient, method: str, url: str, body: Any
) -> None:
    _external(api, name="run 1")
    content = None if body is None else _dumps(body)
    res = api.request(method, url, content=content,
                      headers={"Content-Type": "application/json"})
    assert 400 <= res.status_code < 500, (res.status_code, res.text[:300])
    detail = res.json()["detail"]
    if res.status_code == 422:
        assert isinstance(detail, list) and detail[0]["loc"], detail  # names the field
    assert api.get("/api/runs").json()["total"] == 1  # nothing was created


def _dumps(body: Any) -> bytes:
    import sys

    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # a client in another language sends such numbers
    try:
        return json.dumps(body).encode()
    finally:
        sys.set_int_max_str_digits(old)


def test_a_chunked_body_over_the_limit_is_a_413(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(max_request_bytes=2048)
    app = create_app(settings)
    with session_scope(settings.db_url) as s:
        token = ensure_admin(s)
    c = TestClient(app, headers={"Authorization": f"Bearer {token}"})

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"kind": "external", "name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    res = c.post("/api/runs", content=chunks(), headers={"Content-Type": "application/json"})
    assert res.status_code == 413 and "2048" in res.json()["detail"]
    assert c.get("/api/runs").json()["total"] == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB filesystem (tmpfs), to fill; skipped where mounting is not allowed.
    (It holds a freshly migrated SQLite store while the migrations' write-ahead log is
    checkpointed into it: about 300 KiB at migration 0006.)"""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_or_read_only_store_is_a_clear_status_and_keeps_nothing(
    make_settings: Callable[..., Settings], tiny_disk: Path
) -> None:
    settings = make_settings(artifact_dir=tiny_disk / "artifacts")
    app = create_app(settings)
    with session_scope(settings.db_url) as s:
        token = ensure_admin(s)
    c = TestClient(app, raise_server_exceptions=False,
                   headers={"Authorization": f"Bearer {token}"})
    run = _external(c)
    url = f"/api/runs/{run['id']}/artifacts"
    assert c.put(f"{url}/small.bin", content=b"x" * 1000).status_code == 201
    res = c.put(f"{url}/big.bin", content=b"x" * (1 << 20))
    assert res.status_code == 507 and "full" in res.json()["detail"]
    assert [a["name"] for a in c.get(url).json()] == ["small.bin"]
    assert sorted(p.name for p in (tiny_disk / "artifacts" / str(run["id"])).iterdir()) == [
        "small.bin"]  # no partial file left behind
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    res = c.put(f"{url}/other.bin", content=b"y")
    assert res.status_code == 503 and "not writable" in res.json()["detail"]
    assert c.get(f"{url}/small.bin").content == b"x" * 1000


def _fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the disk)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_database_disk_is_a_507_and_nothing_is_stored(
    make_settings: Callable[..., Settings], tiny_disk: Path
) -> None:
    settings = make_settings(database_url=f"sqlite:///{tiny_disk / 'neuroreg.db'}")
    app = create_app(settings)
    with session_scope(settings.db_url) as s:
        token = ensure_admin(s)
    c = TestClient(app, raise_server_exceptions=False,
                   headers={"Authorization": f"Bearer {token}"})
    run = _external(c)
    points = [{"key": "loss", "step": i, "value": float(i)} for i in range(500)]
    filler = _fill(tiny_disk)
    for res in (c.post(f"/api/runs/{run['id']}/metrics", json={"points": points}),
                c.post("/api/runs", json={"kind": "external", "name": "second"})):
        assert res.status_code == 507, res.text
        assert res.json()["detail"] == "the database's disk is full; nothing was stored"
    filler.unlink()
    assert c.get(f"/api/runs/{run['id']}/metrics").json() == []
    assert c.get("/api/runs").json()["total"] == 1
    res = c.post(f"/api/runs/{run['id']}/metrics", json={"points": points})  # the retry
    assert res.status_code == 200 and res.json() == {"accepted": 500}


def test_a_method_a_path_does_not_take_is_405_with_every_method_it_does(
    client: TestClient,
) -> None:
    for method, path, allowed in [("OPTIONS", "/api/runs", "GET, POST"),
                                  ("PUT", "/api/runs/1", "DELETE, GET, PATCH"),
                                  ("DELETE", "/api/runs/1/artifacts/x", "GET, PUT")]:
        res = client.request(method, path)
        assert res.status_code == 405 and res.headers["allow"] == allowed, res.text
        assert allowed in res.json()["detail"]


def test_an_uploaded_page_is_downloaded_never_rendered(client: TestClient) -> None:
    run = _external(client)
    url = f"/api/runs/{run['id']}/artifacts/page.html"
    page = b"<script>fetch('/api/runs', {method: 'POST'})</script>"
    assert client.put(url, content=page, headers={"Content-Type": "text/html"}
                      ).status_code == 201
    res = client.get(url)
    assert res.content == page
    assert res.headers["content-disposition"].startswith("attachment")
    assert res.headers["content-security-policy"] == "sandbox"
    assert res.headers["x-content-type-options"] == "nosniff"
    assert client.get("/api/health").headers["x-content-type-options"] == "nosniff"


def test_the_schema_documents_what_each_operation_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, op in operations.items():
            codes = set(op["responses"])
            if path != "/api/health":
                assert {"401", "503"} <= codes, (method, path)
            if method in ("post", "put", "patch", "delete") and path != "/api/health":
                assert {"403", "507"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            for code, response in op["responses"].items():
                if code[0] in "45" and code != "422":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorDetail"), (method, path, code)
    assert "409" in paths["/api/runs/{run_id}/finish"]["post"]["responses"]
    assert "409" in paths["/api/studies/{run_id}/frontier"]["get"]["responses"]


def test_a_foreign_run_under_a_study_does_not_stop_it_fanning_out(api: TestClient) -> None:
    """A colleague's run attached (before the API refused it) to a study whose task has
    not run yet: the study still makes its own runs."""
    import dataclasses

    from core.studies import fan_out
    from ml.study import StudyConfig

    _member(api, "ada")
    with session_scope(api.app.state.settings.db_url) as s:
        owner = s.query(User).filter_by(name="admin").one()
        stranger = s.query(User).filter_by(name="ada").one()
        config = dataclasses.asdict(StudyConfig(conditions=("none",), seeds=2))
        study = create_run(s, owner=owner, kind="study", name="s", config=config)
        create_run(s, owner=stranger, kind="external", name="x", config={},
                   parent_id=study.id)
        made = fan_out(s, study)
        assert [r.kind for r in made] == ["train", "train"]
        assert [k.id for k in children(s, study)] == [r.id for r in made]


def test_no_free_database_connection_is_a_503_to_retry_not_a_500(
    client: TestClient,
) -> None:
    """Every pooled connection busy past the pool's timeout (heavy views on a loaded
    machine): the answer says to try again, with Retry-After, never a 500."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from server.deps import get_session

    def exhausted() -> None:
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached, connection "
                          "timed out, timeout 30.00")

    client.app.dependency_overrides[get_session] = exhausted  # type: ignore[attr-defined]
    try:
        for res in (client.get("/api/runs"), client.post("/api/runs", json={
                "kind": "external", "name": "x"})):
            assert res.status_code == 503, res.text
            assert res.headers["retry-after"] == "5"
            assert res.json()["detail"].startswith("the server is busy")
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert client.get("/api/runs").status_code == 200
