"""Artifacts in an S3-compatible object store (``NEUROREG_S3_BUCKET``), against a real
S3-speaking server (moto's): uploads land in the bucket and nowhere on the API's disk,
downloads are redirects to short-lived URLs, a worker over the API uploads straight to the
store at a URL the API hands out, deleting a run deletes its objects, and an outage is a
503 that records nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from core.store.artifacts import resolve
from core.store.db import session_scope
from core.store.models import Artifact, Role, User
from core.store.users import issue_token
from tests.conftest import admin_client
from tests.s3server import S3Server, s3_server
from worker.backend import Remote, RemoteError

pytestmark = pytest.mark.no_numerics


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    with s3_server(tmp_path) as server:
        yield server


@pytest.fixture
def stored(s3: S3Server, make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(s3_bucket=s3.bucket(), s3_endpoint_url=s3.endpoint,
                         s3_prefix="lab/", s3_url_ttl_s=60)


@pytest.fixture
def api(stored: Settings) -> Iterator[TestClient]:
    with admin_client(stored) as c:
        yield c


def _external(api: TestClient) -> int:
    res = api.post("/api/runs", json={"kind": "external", "name": "script"})
    assert res.status_code == 201, res.text
    return int(res.json()["id"])


def _keys(s3: S3Server, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get(
        "Contents", []))


def test_an_upload_lands_in_the_bucket_and_downloads_by_a_signed_url(
        api: TestClient, stored: Settings, s3: S3Server) -> None:
    run = _external(api)
    data = b"\x00weights" * 1000
    put = api.put(f"/api/runs/{run}/artifacts/model.pt", content=data,
                  headers={"Content-Type": "application/x-pytorch"})
    assert put.status_code == 201, put.text
    assert put.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert _keys(s3, stored.s3_bucket) == [f"lab/{run}/model.pt"]
    on_disk = [p for p in stored.artifacts.rglob("*") if p.is_file()]
    assert on_disk == []  # staged, uploaded, gone
    got = api.get(f"/api/runs/{run}/artifacts/model.pt", follow_redirects=False)
    assert got.status_code == 307
    url = got.headers["location"]
    assert url.startswith(s3.endpoint) and "X-Amz-Expires=60" in url
    fetched = httpx.get(url)  # no token: the URL is its own authorization
    assert fetched.content == data
    assert 'filename="model.pt"' in fetched.headers["content-disposition"]
    # what the API reads back itself (a matrix to draw) comes through its cache
    with session_scope(stored.db_url) as s:
        row = s.query(Artifact).one()
        assert resolve(stored.artifacts, row.path).read_bytes() == data
    # deleting the run deletes its objects
    assert api.post(f"/api/runs/{run}/finish", json={}).status_code == 200
    assert api.delete(f"/api/runs/{run}").status_code == 204
    assert _keys(s3, stored.s3_bucket) == []


def test_a_worker_uploads_and_downloads_straight_to_the_store(
        api: TestClient, stored: Settings, s3: S3Server, tmp_path: Path) -> None:
    with session_scope(stored.db_url) as s:
        admin = s.query(User).filter(User.role == Role.admin).one()
        token = issue_token(s, user=admin, name="box", scope="worker")
    run = api.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}}).json()["id"]
    seen: list[str] = []

    def log(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    transport = api._transport  # type: ignore[attr-defined]
    http = httpx.Client(transport=transport, base_url="http://testserver",
                        event_hooks={"request": [log]})
    remote = Remote("http://testserver", token, cache=tmp_path / "cache", retry_s=5,
                    backoff=0.01, client=http)
    assert remote.claim(run, "box:1")
    remote.save_artifact(run, "model.pt", b"trained" * 100, "application/x-pytorch")
    assert f"PUT /api/worker/runs/{run}/artifacts/model.pt" not in seen  # not through us
    assert f"POST /api/worker/runs/{run}/uploaded/model.pt" in seen
    assert _keys(s3, stored.s3_bucket) == [f"lab/{run}/model.pt"]
    assert remote.load_artifact(run, "model.pt") == b"trained" * 100
    path = remote.artifact_file(run, run, "model.pt")
    assert path.read_bytes() == b"trained" * 100
    listed = api.get(f"/api/runs/{run}/artifacts").json()
    assert listed[0]["sha256"] == hashlib.sha256(b"trained" * 100).hexdigest()
    # a signed upload is for the length asked (a real store checks the signed
    # Content-Length; moto checks no signature), and no more than the cap
    auth = {"Authorization": f"Bearer {token}"}
    url = http.post(f"/api/worker/runs/{run}/uploads/big.pt", headers=auth,
                    json={"size": 10}).json()["url"]
    assert "content-length" in parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0]
    over = http.post(f"/api/worker/runs/{run}/uploads/huge.pt", headers=auth,
                     json={"size": stored.max_upload_bytes + 1})
    assert over.status_code == 413
    # a record of an upload that is not in the store (or not whole) is refused
    bad = http.post(f"/api/worker/runs/{run}/uploaded/ghost.pt",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"size": 5, "sha256": "0" * 64})
    assert bad.status_code == 409 and "upload it again" in bad.json()["detail"]


def test_an_object_store_outage_is_a_503_that_records_nothing(
        api: TestClient, stored: Settings, s3: S3Server) -> None:
    run = _external(api)
    s3.stop()
    put = api.put(f"/api/runs/{run}/artifacts/model.pt", content=b"x" * 100)
    assert put.status_code == 503, put.text
    assert "object store is unavailable" in put.json()["detail"]
    assert put.headers["retry-after"] == "5"
    assert api.get(f"/api/runs/{run}/artifacts").json() == []
    assert [p for p in stored.artifacts.rglob("*") if p.is_file()] == []
    s3.start()  # back (empty: moto keeps nothing); a new API process makes the bucket
    with admin_client(stored):
        pass
    assert api.put(f"/api/runs/{run}/artifacts/model.pt", content=b"x" * 100
                   ).status_code == 201
    assert [a["name"] for a in api.get(f"/api/runs/{run}/artifacts").json()] == ["model.pt"]


def test_a_remote_worker_retries_through_an_outage(api: TestClient, stored: Settings,
                                                   s3: S3Server, tmp_path: Path) -> None:
    with session_scope(stored.db_url) as s:
        admin = s.query(User).filter(User.role == Role.admin).one()
        token = issue_token(s, user=admin, name="box", scope="worker")
    run = api.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}}).json()["id"]
    http = httpx.Client(transport=api._transport,  # type: ignore[attr-defined]
                        base_url="http://testserver")
    remote = Remote("http://testserver", token, cache=tmp_path / "cache", retry_s=0.3,
                    backoff=0.05, client=http)
    assert remote.claim(run, "box:1")
    s3.stop()
    with pytest.raises((RemoteError, httpx.TransportError)):
        remote.save_artifact(run, "ckpt.pt", b"state", "application/octet-stream")
    assert api.get(f"/api/runs/{run}/artifacts").json() == []  # nothing acknowledged


def test_signed_urls_name_the_address_workers_and_browsers_reach(
        s3: S3Server, make_settings) -> None:  # type: ignore[no-untyped-def]
    """The API reaches the store at one address (compose: minio:9000) and others at
    another (localhost:9000): the URLs are signed for the public one, and work there."""
    public = s3.endpoint.replace("127.0.0.1", "localhost")
    settings = make_settings(s3_bucket=s3.bucket(), s3_endpoint_url=s3.endpoint,
                             s3_public_url=public)
    with admin_client(settings) as api:
        run = _external(api)
        assert api.put(f"/api/runs/{run}/artifacts/a.bin", content=b"abc").status_code == 201
        url = api.get(f"/api/runs/{run}/artifacts/a.bin",
                      follow_redirects=False).headers["location"]
    assert url.startswith(public + "/")
    assert httpx.get(url).content == b"abc"
