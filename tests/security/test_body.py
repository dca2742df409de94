"""Work before authentication (issue 33, item 2) and the keep-alive connection after an
error (item 9): a body is not read before its sender is known, nor past its route's cap,
nor decoded where it would stall everyone else; an error answer keeps the connection."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import server.routes.metrics as metrics_route
import server.strict
from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from server.routes.logs import MAX_LOG_BATCH_BYTES
from server.routes.metrics import MAX_BATCH_BYTES
from server.schemas import MAX_BATCH_POINTS
from tests.livesrv import live_server

CHUNK = 64 * 1024
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class Body:
    """A request body of ``size`` bytes, made as the server pulls it: ``read`` counts what
    it pulled (an unread body costs the server nothing)."""

    def __init__(self, size: int, head: bytes = b'{"points": [') -> None:
        self.size, self.head, self.read = size, head, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.read < self.size:
            chunk = (self.head if self.read == 0 else b" " * CHUNK)[:self.size - self.read]
            self.read += len(chunk)
            yield chunk


def send(app: Any, method: str, path: str, body: Body, *, token: str | None = None,
         declared: bool = True) -> httpx.Response:
    """``body`` sent to ``app`` in-process, with its length declared or chunked."""
    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(body.size)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.request(method, path, content=body, headers=headers)

    return asyncio.run(go())


def token_of(client: TestClient) -> str:
    return str(client.headers["Authorization"]).removeprefix("Bearer ")


def writes(app: Any, run_id: int) -> list[tuple[str, str]]:
    """Every write the API documents, its path filled in (the class, not the examples)."""
    out = []
    for template, item in app.openapi()["paths"].items():
        path = template.replace("{run_id}", str(run_id)).replace("{name}", "x.bin")
        path = re.sub(r"\{[^}]+\}", "1", path)
        out += [(m.upper(), path) for m in item if m.upper() in WRITES]
    return sorted(out)


@pytest.mark.parametrize("who", ["no token", "a wrong token", "a revoked token"])
def test_no_write_route_reads_a_body_before_its_sender_is_known(
        api: TestClient, member: Callable[[str], TestClient], who: str) -> None:
    """46 MiB declared with no (valid) token: a 401 for every write route, nothing read."""
    eve = member("eve")
    run = eve.post("/api/runs", json={"kind": "external"}).json()
    token = {"no token": None, "a wrong token": "nr_" + "x" * 40}.get(who)
    if who == "a revoked token":
        issued = eve.post("/api/tokens", json={"name": "old"}).json()
        assert eve.delete(f"/api/tokens/{issued['id']}").status_code == 204
        token = issued["token"]
    routes = writes(api.app, run["id"])
    assert ("POST", f"/api/runs/{run['id']}/metrics") in routes and len(routes) > 10
    for method, path in routes:
        body = Body(46 * 2**20)
        res = send(api.app, method, path, body, token=token)
        assert res.status_code == 401, (method, path, res.text)
        assert res.headers["www-authenticate"] == "Bearer"
        assert body.read == 0, (method, path, body.read)


def test_a_member_with_a_token_is_still_heard(member: Callable[[str], TestClient]) -> None:
    eve = member("eve")
    run = eve.post("/api/runs", json={"kind": "external"}).json()
    points = json.dumps({"points": [{"key": "a", "step": 0, "value": 1.0}]}).encode()
    res = eve.post(f"/api/runs/{run['id']}/metrics", content=points,
                   headers={"Content-Type": "application/json"})
    assert res.status_code == 200 and res.json() == {"accepted": 1}


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "chunked"])
def test_each_route_caps_its_body_and_says_at_what(
        api: TestClient, member: Callable[[str], TestClient], declared: bool) -> None:
    """A member's body over its route's cap: a 413 naming the cap, read no further than
    the cap (not at all when the length is declared)."""
    eve = member("eve")
    run = eve.post("/api/runs", json={"kind": "external"}).json()
    small = 1024**2  # NEUROREG_MAX_REQUEST_BYTES: every other JSON body
    for method, path, cap in [
        ("POST", f"/api/runs/{run['id']}/metrics", MAX_BATCH_BYTES),
        ("POST", f"/api/runs/{run['id']}/logs", MAX_LOG_BATCH_BYTES),
        ("POST", "/api/runs", small),
        ("PATCH", f"/api/runs/{run['id']}", small),
        ("POST", "/api/tokens", small),
        ("POST", "/api/webhooks", small),
        ("POST", f"/api/runs/{run['id']}/finish", small),
    ]:
        body = Body(cap + 1)
        res = send(api.app, method, path, body, token=token_of(eve), declared=declared)
        assert res.status_code == 413, (path, res.text)
        assert str(cap) in res.json()["detail"], res.text
        assert body.read <= (0 if declared else cap + CHUNK), (path, body.read)
    assert MAX_BATCH_BYTES < 16 * 2**20 and MAX_LOG_BATCH_BYTES <= 16 * 2**20


def _point(step: int) -> dict[str, Any]:
    """The longest point a client can mean: a 128-character key, 17-digit numbers."""
    return {"key": "k/" + "x" * 126, "step": 2**31 - 1 - step,
            "value": -1.2345678901234567e-300, "wall_time": 1.7123456789012345e9}


def test_the_largest_batch_fits_its_cap_and_a_larger_one_is_a_422(
        member: Callable[[str], TestClient]) -> None:
    eve = member("eve")
    run = eve.post("/api/runs", json={"kind": "external"}).json()
    url = f"/api/runs/{run['id']}/metrics"
    most = json.dumps({"points": [_point(i) for i in range(MAX_BATCH_POINTS)]},
                      indent=4).encode()
    assert len(most) <= MAX_BATCH_BYTES
    res = eve.post(url, content=most, headers={"Content-Type": "application/json"})
    assert res.status_code == 200 and res.json() == {"accepted": MAX_BATCH_POINTS}, res.text
    res = eve.post(url, json={"points": [{"key": "a", "step": i, "value": 0.0}
                                         for i in range(MAX_BATCH_POINTS + 1)]})
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["loc"] == ["body", "points"]
    assert str(MAX_BATCH_POINTS) in res.json()["detail"][0]["msg"]


def test_an_upload_keeps_its_own_limit(member: Callable[[str], TestClient]) -> None:
    """An artifact streams to disk under NEUROREG_MAX_UPLOAD_BYTES, not the JSON cap."""
    eve = member("eve")
    run = eve.post("/api/runs", json={"kind": "external"}).json()
    res = eve.put(f"/api/runs/{run['id']}/artifacts/big.bin", content=b"\0" * (3 * 2**20))
    assert res.status_code == 201 and res.json()["size_bytes"] == 3 * 2**20


@pytest.fixture
def live(settings: Settings) -> Iterator[tuple[str, str]]:
    """A real uvicorn serving ``settings``: its URL and the admin's token."""
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        assert token is not None
        yield url, token


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_others_are_answered_while_a_big_batch_decodes(
        live: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Eve's batch is held in its decoding until /api/health and the admin's small write
    have been answered: they do not wait on it (on the event loop they would)."""
    url, token = live
    with contextlib.ExitStack() as stack:
        admin = stack.enter_context(httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=None))
        eve = stack.enter_context(httpx.Client(base_url=url, timeout=None, headers={
            "Authorization": "Bearer " + admin.post("/api/users", json={
                "name": "eve"}).json()["token"]}))
        hers = eve.post("/api/runs", json={"kind": "external"}).json()["id"]
        his = admin.post("/api/runs", json={"kind": "external"}).json()["id"]
        decoding, answered = threading.Event(), threading.Event()
        on_loop: list[bool] = []
        real = server.strict.loads

        def held(body: bytes) -> tuple[Any, bool]:
            if len(body) > 100_000:  # eve's batch, not the small writes
                on_loop.append(_on_event_loop())
                decoding.set()
                if not on_loop[-1]:
                    answered.wait()
            return real(body)

        monkeypatch.setattr(server.strict, "loads", held)
        big = {"points": [{"key": "loss", "step": i, "value": 1.0 / (i + 1)}
                          for i in range(MAX_BATCH_POINTS)]}
        result: list[httpx.Response] = []

        def post_big() -> None:
            try:
                result.append(eve.post(f"/api/runs/{hers}/metrics", json=big))
            finally:
                decoding.set()

        poster = threading.Thread(target=post_big)
        poster.start()
        try:
            decoding.wait()
            assert on_loop == [False], "the batch was decoded on the event loop"
            assert admin.get("/api/health").json() == {"status": "ok"}
            small = admin.post(f"/api/runs/{his}/metrics",
                               json={"points": [{"key": "a", "step": 0, "value": 1.0}]})
            assert small.json() == {"accepted": 1} and not result
        finally:
            answered.set()
            poster.join()
        assert result[0].json() == {"accepted": MAX_BATCH_POINTS}


@contextlib.contextmanager
def connection(url: str) -> Iterator[http.client.HTTPConnection]:
    """One keep-alive connection to the live server."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    conn.connect()
    try:
        yield conn
    finally:
        conn.close()


def assert_still_open(conn: http.client.HTTPConnection) -> None:
    """The next request is answered on the same socket (http.client would open a new one
    only after a close it was told of, and fails on one it was not)."""
    sock = conn.sock
    conn.request("GET", "/api/health")
    assert conn.getresponse().read() == b'{"status":"ok"}'
    assert conn.sock is sock


def _fail(exc: BaseException) -> Callable[..., None]:
    def insert_points(*_: Any, **__: Any) -> None:
        raise exc
    return insert_points


@pytest.mark.parametrize(("status", "exc"), [
    (507, OSError(errno.ENOSPC, "No space left on device")),
    (503, OSError(errno.EROFS, "Read-only file system")),
    (500, RuntimeError("a bug")),
], ids=["507", "503", "500"])
def test_the_connection_survives_an_error_answer(
        live: tuple[str, str], monkeypatch: pytest.MonkeyPatch, status: int,
        exc: BaseException) -> None:
    """One keep-alive connection: the failed write, then the next request on it."""
    url, token = live
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with connection(url) as conn:
        conn.request("POST", "/api/runs", body=json.dumps({"kind": "external"}),
                     headers=headers)
        run_id = json.loads(conn.getresponse().read())["id"]
        monkeypatch.setattr(metrics_route, "insert_points", _fail(exc))
        conn.request("POST", f"/api/runs/{run_id}/metrics", headers=headers,
                     body=json.dumps({"points": [{"key": "a", "step": 0, "value": 1.0}]}))
        res = conn.getresponse()
        assert res.status == status and "detail" in json.loads(res.read())
        assert_still_open(conn)


@pytest.mark.parametrize("who", ["anonymous", "over the cap"])
def test_the_connection_survives_a_body_refused_unread(
        live: tuple[str, str], who: str) -> None:
    """The refused body is left unread by the app; the server still takes it off the
    connection, and the next request is answered on it."""
    url, token = live
    headers = {"Content-Type": "application/json"}
    if who == "over the cap":
        headers["Authorization"] = f"Bearer {token}"
    with connection(url) as conn:
        conn.request("POST", "/api/runs", body=b"{" + b" " * (2 * 2**20) + b"}",
                     headers=headers)
        res = conn.getresponse()
        assert res.status == (401 if who == "anonymous" else 413)
        res.read()
        assert_still_open(conn)
