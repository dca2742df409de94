"""Webhooks against a real local HTTP receiver, on SQLite and PostgreSQL: every path that
finishes a run writes the delivery in its own transaction, the dispatcher signs, retries
with backoff, gives up, never follows a redirect and never sends one delivery twice; the
API keeps each member's hooks their own."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.lifecycle import cancel_run, finish_run, reap, start_run
from core.secretbox import secret_box
from core.settings import Settings
from core.store.db import migrate, session_scope
from core.store.models import (
    DeliveryStatus,
    Role,
    Run,
    RunStatus,
    User,
    WebhookDelivery,
    utcnow,
)
from core.store.runs import create_run
from core.store.users import create_user, set_disabled
from core.store.webhooks import claim, create_webhook, due, not_delivered, shown_error
from server.webhooks import allowed, dispatch_once
from tests.conftest import admin_client

pytestmark = pytest.mark.no_numerics


class Receiver:
    """A real HTTP server on loopback that records each request and answers the next of
    ``codes`` (the last one repeating)."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.codes = list(codes or [200])
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body})
                    code = outer.codes.pop(0) if len(outer.codes) > 1 else outer.codes[0]
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(codes: list[int] | None = None) -> Receiver:
        made.append(Receiver(codes).__enter__())
        return made[-1]

    yield make
    for r in made:
        r.__exit__()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    """Settings on SQLite or PostgreSQL; the API's own dispatcher thread never wakes (the
    tests drive :func:`dispatch_once` with an explicit ``now``). Receivers listen on
    loopback, so the admin setting that lets hooks reach it is on."""
    settings = make_settings(database_url=db_url, webhook_interval_s=3600,
                             webhook_backoff_s=(10, 30, 120), webhook_max_attempts=4,
                             webhook_allow_private=True)
    migrate(settings.db_url)
    return settings


def _user(settings: Settings, name: str) -> int:
    with session_scope(settings.db_url) as s:
        return create_user(s, name=name, role=Role.member).id


def _hook(settings: Settings, owner: int, url: str, events: list[str] | None = None,
          secret: str = "s3cret-s3cret-s3cret") -> int:
    with session_scope(settings.db_url) as s:
        return create_webhook(s, owner=s.get_one(User, owner), url=url, events=events,
                              secret=secret, box=secret_box(settings)).id


def _run(settings: Settings, owner: int, kind: str = "train", **kw: Any) -> int:
    with session_scope(settings.db_url) as s:
        return create_run(s, owner=s.get_one(User, owner), kind=kind, name=f"{kind} run",
                          config={}, **kw).id


def _deliveries(settings: Settings) -> list[WebhookDelivery]:
    with session_scope(settings.db_url) as s:
        return list(s.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).scalars())


def _verify(secret: str, body: bytes, header: str) -> bool:
    """What docs/runs.md tells a receiver to do."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_a_finished_run_posts_a_signed_event(store: Settings,
                                             receiver: Callable[..., Receiver]) -> None:
    rx = receiver()
    ada = _user(store, "ada")
    _hook(store, ada, rx.url)
    run_id = _run(store, ada)
    with session_scope(store.db_url) as s:  # rolled back: no run finished, no delivery
        finish_run(s, run_id, RunStatus.succeeded)
        assert len(s.execute(select(WebhookDelivery)).all()) == 1
        s.rollback()
    assert _deliveries(store) == []
    with session_scope(store.db_url) as s:
        finish_run(s, run_id, RunStatus.succeeded)
    now = utcnow()
    assert dispatch_once(store, now=now) == [_deliveries(store)[0].id]
    (req,) = rx.requests
    h = req["headers"]
    assert req["path"] == "/hook" and h["Content-Type"] == "application/json"
    assert h["X-Neuroreg-Event"] == "run.succeeded"
    assert _verify("s3cret-s3cret-s3cret", req["body"], h["X-Neuroreg-Signature"])
    assert not _verify("another-secret-entirely", req["body"], h["X-Neuroreg-Signature"])
    payload = json.loads(req["body"])
    assert payload["id"] == h["X-Neuroreg-Delivery"] and payload["event"] == "run.succeeded"
    assert datetime.fromisoformat(payload["timestamp"]) <= now
    run = payload["run"]
    assert run["id"] == run_id and run["status"] == "succeeded" and run["kind"] == "train"
    assert run["owner"] == "ada" and run["name"] == "train run" and run["finished_at"]
    (d,) = _deliveries(store)
    assert d.status is DeliveryStatus.delivered and d.attempts == 1
    assert d.last_status_code == 200 and d.delivered_at == now
    assert dispatch_once(store, now=now + timedelta(hours=1)) == []  # sent once
    assert len(rx.requests) == 1


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
        store: Settings, receiver: Callable[..., Receiver]) -> None:
    rx = receiver([500, 500, 200])
    ada = _user(store, "ada")
    _hook(store, ada, rx.url)
    rid = _run(store, ada)
    with session_scope(store.db_url) as s:
        finish_run(s, rid, RunStatus.failed, error="boom")
    t0 = utcnow()
    dispatch_once(store, now=t0)
    (d,) = _deliveries(store)
    assert (d.status, d.attempts, d.last_status_code) == (DeliveryStatus.pending, 1, 500)
    assert d.next_attempt_at == t0 + timedelta(seconds=10) and d.last_error == "HTTP 500"
    assert dispatch_once(store, now=t0 + timedelta(seconds=9)) == []  # not due yet
    dispatch_once(store, now=t0 + timedelta(seconds=10))
    (d,) = _deliveries(store)
    assert d.attempts == 2 and d.next_attempt_at == t0 + timedelta(seconds=40)
    dispatch_once(store, now=t0 + timedelta(seconds=40))
    (d,) = _deliveries(store)
    assert (d.status, d.attempts, d.last_status_code) == (DeliveryStatus.delivered, 3, 200)
    assert d.last_error is None
    bodies = {r["body"] for r in rx.requests}
    uuids = {r["headers"]["X-Neuroreg-Delivery"] for r in rx.requests}
    assert len(rx.requests) == 3 and len(bodies) == 1 and len(uuids) == 1  # the same event
    assert json.loads(rx.requests[0]["body"])["run"]["error"] == "boom"


def test_after_the_last_attempt_a_delivery_fails_and_is_not_sent_again(
        store: Settings, receiver: Callable[..., Receiver]) -> None:
    rx = receiver([503])
    ada = _user(store, "ada")
    _hook(store, ada, rx.url)
    rid = _run(store, ada)
    with session_scope(store.db_url) as s:
        finish_run(s, rid, RunStatus.succeeded)
    t = utcnow()
    for delay in (0, 10, 30, 120):  # max 4 attempts; the delays 10, 30, 120
        t += timedelta(seconds=delay)
        assert len(dispatch_once(store, now=t)) == 1
    (d,) = _deliveries(store)
    assert (d.status, d.attempts, d.last_error) == (DeliveryStatus.failed, 4, "HTTP 503")
    assert dispatch_once(store, now=t + timedelta(days=1)) == [] and len(rx.requests) == 4


def test_an_unreachable_receiver_or_a_redirect_is_an_error_and_no_redirect_is_followed(
        store: Settings, receiver: Callable[..., Receiver]) -> None:
    rx = receiver([302])
    closed = receiver()
    closed.__exit__()  # nothing listens there any more
    ada = _user(store, "ada")
    redirecting, gone = _hook(store, ada, rx.url), _hook(store, ada, closed.url)
    rid = _run(store, ada)
    with session_scope(store.db_url) as s:
        finish_run(s, rid, RunStatus.succeeded)
    dispatch_once(store, now=utcnow())
    by_hook = {d.webhook_id: d for d in _deliveries(store)}
    assert by_hook[redirecting].last_status_code == 302
    assert "redirects are not followed" in (by_hook[redirecting].last_error or "")
    assert [r["path"] for r in rx.requests] == ["/hook"]  # /elsewhere never asked
    assert by_hook[gone].last_status_code is None and by_hook[gone].last_error
    assert all(d.status is DeliveryStatus.pending and d.attempts == 1
               for d in by_hook.values())


def test_two_dispatchers_never_send_one_delivery_twice(
        store: Settings, receiver: Callable[..., Receiver]) -> None:
    rx = receiver()
    ada = _user(store, "ada")
    _hook(store, ada, rx.url)
    for _ in range(12):
        rid = _run(store, ada)
        with session_scope(store.db_url) as s:
            finish_run(s, rid, RunStatus.succeeded)
    now = utcnow()
    # both see the same due row; the first claim wins, the second finds nothing to take
    with session_scope(store.db_url) as a, session_scope(store.db_url) as b:
        first = due(a, now=now, limit=1)
        assert due(b, now=now, limit=1) == first
        assert claim(a, first[0], now=now, lease_s=60) is not None
        a.commit()
        assert claim(b, first[0], now=now, lease_s=60) is None
    # two passes at once (two API processes): every delivery goes out exactly once
    later = now + timedelta(seconds=120)  # past the first one's lease
    start = threading.Barrier(2)
    done: list[list[int]] = []

    def run() -> None:
        start.wait()
        done.append(dispatch_once(store, now=later))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    sent = [i for d in done for i in d]
    assert len(sent) == len(set(sent)) == 12
    uuids = [r["headers"]["X-Neuroreg-Delivery"] for r in rx.requests]
    assert len(uuids) == len(set(uuids)) == 12
    assert all(d.status is DeliveryStatus.delivered for d in _deliveries(store))


def test_only_the_owners_hooks_fire_and_only_for_their_events(
        store: Settings, receiver: Callable[..., Receiver]) -> None:
    rx = receiver()
    ada, bob = _user(store, "ada"), _user(store, "bob")
    mine = _hook(store, ada, rx.url)
    studies_only = _hook(store, ada, rx.url, ["study.succeeded", "study.failed"])
    bobs = _run(store, bob)
    with session_scope(store.db_url) as s:
        finish_run(s, bobs, RunStatus.succeeded)  # bob's: none of ada's hooks
    assert _deliveries(store) == []
    run, study = _run(store, ada), _run(store, ada, kind="study")
    with session_scope(store.db_url) as s:
        finish_run(s, run, RunStatus.succeeded)
        finish_run(s, study, RunStatus.succeeded)
    got = sorted((d.webhook_id, d.event) for d in _deliveries(store))
    assert got == sorted([(mine, "run.succeeded"), (mine, "study.succeeded"),
                          (studies_only, "study.succeeded")])


def test_a_disabled_members_hooks_send_nothing_until_they_are_enabled_again(
        store: Settings, receiver: Callable[..., Receiver]) -> None:
    rx = receiver()
    with session_scope(store.db_url) as s:
        create_user(s, name="root", role=Role.admin)  # the lab keeps an admin
    ada = _user(store, "ada")
    _hook(store, ada, rx.url)
    before, during = _run(store, ada), _run(store, ada)
    with session_scope(store.db_url) as s:
        finish_run(s, before, RunStatus.succeeded)  # queued while ada was enabled
        set_disabled(s, s.get_one(User, ada), True, actor=None)
    with session_scope(store.db_url) as s:
        finish_run(s, during, RunStatus.failed)  # while disabled: queued, as every end is
    assert [d.run_id for d in _deliveries(store)] == [before, during]
    now = utcnow()
    assert dispatch_once(store, now=now) == [] and rx.requests == []  # but never sent
    assert all(d.status is DeliveryStatus.pending and d.attempts == 0
               for d in _deliveries(store))
    with session_scope(store.db_url) as s:
        set_disabled(s, s.get_one(User, ada), False, actor=None)
    assert sorted(dispatch_once(store, now=now)) == [d.id for d in _deliveries(store)]
    assert sorted(json.loads(r["body"])["run"]["id"] for r in rx.requests) == [before, during]


def test_every_path_that_finishes_a_run_queues_its_event(
        store: Settings, receiver: Callable[..., Receiver]) -> None:
    rx = receiver()
    ada = _user(store, "ada")
    _hook(store, ada, rx.url)
    cancelled, reaped, again = _run(store, ada), _run(store, ada), _run(store, ada)
    study = _run(store, ada, kind="study")
    child = _run(store, ada, parent_id=study)
    with session_scope(store.db_url) as s:
        cancel_run(s, s.get_one(Run, cancelled))
        cancel_run(s, s.get_one(Run, cancelled))  # already finished: nothing more
        for r in (reaped, study, child):
            start_run(s, r)
    with session_scope(store.db_url) as s:  # the reaper gives up on a run
        s.get_one(Run, reaped).heartbeat_at = utcnow() - timedelta(hours=1)
        s.get_one(Run, reaped).attempts = 3
    with session_scope(store.db_url) as s:
        assert reap(s, stale_after=60, max_attempts=3, kinds=["train"]) == []
    with session_scope(store.db_url) as s:  # a study's last child fails: the study fails
        finish_run(s, child, RunStatus.failed, error="diverged")
    with session_scope(store.db_url) as s:  # the same outcome twice is one event
        finish_run(s, again, RunStatus.succeeded)
        finish_run(s, again, RunStatus.succeeded)
    events = [(d.run_id, d.event) for d in _deliveries(store)]
    assert events == [(cancelled, "run.cancelled"), (reaped, "run.failed"),
                      (child, "run.failed"), (study, "study.failed"),
                      (again, "run.succeeded")]
    dispatch_once(store, now=utcnow())
    study_event = next(json.loads(r["body"]) for r in rx.requests
                       if r["headers"]["X-Neuroreg-Event"] == "study.failed")
    assert study_event["run"]["result"] == {"runs": 1, "failed": [child]}


# --- the API -----------------------------------------------------------------------


def _member(client: TestClient, name: str) -> TestClient:
    token = client.post("/api/users", json={"name": name}).json()["token"]
    other = TestClient(client.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(webhook_interval_s=3600, webhook_allow_private=True)
    with admin_client(settings) as c:
        yield c, settings


def test_members_register_list_and_delete_only_their_own_hooks(
        api: tuple[TestClient, Settings]) -> None:
    admin, _ = api
    ada, bob = _member(admin, "ada"), _member(admin, "bob")
    res = ada.post("/api/webhooks", json={"url": "https://lab.example/hooks/nr"})
    assert res.status_code == 201, res.text
    made = res.json()
    assert made["secret"].startswith("whsec_") and len(made["secret"]) > 40
    assert made["events"] == ["run.succeeded", "run.failed", "run.cancelled",
                              "study.succeeded", "study.failed", "study.cancelled"]
    own = ada.post("/api/webhooks", json={"url": "http://10.0.0.5:8080/x?y=1",
                                          "events": ["study.failed", "run.failed",
                                                     "run.failed"],
                                          "secret": "my-own-secret-of-16+"}).json()
    assert own["secret"] == "my-own-secret-of-16+"
    assert own["events"] == ["run.failed", "study.failed"]
    listed = ada.get("/api/webhooks").json()
    assert [h["id"] for h in listed] == [made["id"], own["id"]]
    assert all("secret" not in h for h in listed)  # shown once
    assert bob.get("/api/webhooks").json() == []
    for method, path in (("DELETE", f"/api/webhooks/{made['id']}"),
                         ("POST", f"/api/webhooks/{made['id']}/test"),
                         ("GET", f"/api/webhooks/{made['id']}/deliveries")):
        res = bob.request(method, path)
        assert res.status_code == 404 and "no webhook" in res.json()["detail"], path
    assert ada.delete(f"/api/webhooks/{made['id']}").status_code == 204
    assert [h["id"] for h in ada.get("/api/webhooks").json()] == [own["id"]]
    assert ada.delete(f"/api/webhooks/{made['id']}").status_code == 404
    assert admin.delete(f"/api/webhooks/{own['id']}").status_code == 204  # an admin may


@pytest.mark.parametrize(("body", "loc", "said"), [
    ({"url": "ftp://lab.example/x"}, ["body", "url"], "http:// or https://"),
    ({"url": "file:///etc/passwd"}, ["body", "url"], "http:// or https://"),
    ({"url": "javascript:alert(1)"}, ["body", "url"], "not javascript:"),
    ({"url": "lab.example/hook"}, ["body", "url"], "http:// or https://"),
    ({"url": "http://"}, ["body", "url"], "pattern"),
    ({"url": "http://a b/"}, ["body", "url"], "pattern"),
    ({"url": "https://x.org", "events": []}, ["body", "events"], "at least 1"),
    ({"url": "https://x.org", "events": ["run.finished"]}, ["body", "events", 0], "run.failed"),
    ({"url": "https://x.org", "secret": "short"}, ["body", "secret"], "16"),
    ({"url": "https://x.org", "extra": 1}, ["body", "extra"], "not permitted"),
    ({"events": ["run.failed"]}, ["body", "url"], "required"),
])
def test_bad_hooks_are_422s_naming_the_field(api: tuple[TestClient, Settings],
                                             body: dict[str, Any], loc: list[Any],
                                             said: str) -> None:
    admin, _ = api
    res = admin.post("/api/webhooks", json=body)
    assert res.status_code == 422, res.text
    (err,) = res.json()["detail"]
    assert err["loc"] == loc and said in err["msg"], err


def test_a_ping_is_queued_sent_and_listed_with_its_outcome(
        api: tuple[TestClient, Settings], receiver: Callable[..., Receiver],
        monkeypatch: pytest.MonkeyPatch) -> None:
    admin, settings = api
    rx = receiver([500, 204])
    ada = _member(admin, "ada")
    hook = ada.post("/api/webhooks", json={"url": rx.url, "events": ["run.failed"]}).json()
    res = ada.post(f"/api/webhooks/{hook['id']}/test")
    assert res.status_code == 202
    ping = res.json()
    assert ping["event"] == "ping" and ping["status"] == "pending" and ping["attempts"] == 0
    t0 = utcnow()
    dispatch_once(settings, now=t0)
    (d,) = ada.get(f"/api/webhooks/{hook['id']}/deliveries").json()
    assert (d["id"], d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == (
        ping["id"], "pending", 1, 500, "HTTP 500")
    assert datetime.fromisoformat(d["next_attempt_at"]) == t0 + timedelta(seconds=10)
    dispatch_once(settings, now=t0 + timedelta(seconds=10))
    (d,) = ada.get(f"/api/webhooks/{hook['id']}/deliveries").json()
    assert (d["status"], d["attempts"], d["next_attempt_at"]) == ("delivered", 2, None)
    body = rx.requests[-1]["body"]
    assert _verify(hook["secret"], body, rx.requests[-1]["headers"]["X-Neuroreg-Signature"])
    assert json.loads(body)["webhook"] == {"id": hook["id"], "url": rx.url,
                                           "events": ["run.failed"]}
    # an external run the member finishes through the API fires the hook
    run = ada.post("/api/runs", json={"kind": "external", "name": "script"}).json()
    assert ada.post(f"/api/runs/{run['id']}/finish",
                    json={"status": "failed", "error": "nan loss"}).status_code == 200
    latest = ada.get(f"/api/webhooks/{hook['id']}/deliveries").json()[0]
    assert (latest["event"], latest["run_id"], latest["status"]) == (
        "run.failed", run["id"], "pending")
    assert latest["payload"]["run"]["error"] == "nan loss"


def test_the_cli_and_client_manage_hooks_and_the_live_server_delivers(
        make_settings: Callable[..., Settings], receiver: Callable[..., Receiver],
        capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: a live server whose own dispatcher thread sends (the embedded default)."""
    import time

    from cli import build_parser
    from core.store.users import ensure_admin
    from neuroreg.client import Client, NeuroregError
    from tests.livesrv import live_server

    settings = make_settings(webhook_interval_s=0.05, webhook_allow_private=True)
    rx = receiver()
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        cli = settings.model_copy(update={"api_url": url, "token": token})

        def run(*argv: str) -> str:
            args = build_parser().parse_args(["webhooks", *argv])
            assert args.func(args, cli) == 0
            return capsys.readouterr().out

        out = run("add", rx.url, "--event", "run.succeeded", "--secret", "cli-secret-0123456")
        hook_id = int(out.split()[1].rstrip(":"))
        assert "secret (shown once" in out and "cli-secret-0123456" in out
        assert f"{rx.url}  [run.succeeded]  no deliveries yet" in run("list")
        assert "queued ping" in run("test", str(hook_id))
        with Client(url, token) as nr:
            run_id = nr.create_external("notify me")["id"]
            nr.finish(run_id)
            deadline = time.monotonic() + 20
            while len(rx.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            events = sorted(r["headers"]["X-Neuroreg-Event"] for r in rx.requests)
            assert events == ["ping", "run.succeeded"]
            assert all(_verify("cli-secret-0123456", r["body"],
                               r["headers"]["X-Neuroreg-Signature"]) for r in rx.requests)
            while (nr.webhook_deliveries(hook_id)[0]["status"] != "delivered"
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            assert [d["status"] for d in nr.webhook_deliveries(hook_id)] == ["delivered"] * 2
            assert [h["id"] for h in nr.webhooks()] == [hook_id]
            with pytest.raises(NeuroregError, match=r"422: url: must be an http"):
                nr.add_webhook("ftp://x.org/")
            other = nr.add_webhook("https://x.org/", ["study.failed"])
            assert other["secret"].startswith("whsec_")
            nr.delete_webhook(other["id"])
        assert "run.succeeded    delivered attempts 1  last 200" in run("deliveries",
                                                                        str(hook_id))
        assert f"deleted webhook {hook_id}" in run("rm", str(hook_id))
        assert "no webhooks" in run("list")


def test_the_readme_receiver_accepts_a_real_delivery_once_and_refuses_a_forged_one(
        store: Settings, receiver: Callable[..., Receiver]) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "runs.md").read_text()
    section = readme[readme.index("### Webhooks"):]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[0]  # the receiver
    scope: dict[str, Any] = {}
    exec(compile(block, "docs/runs.md", "exec"), scope)
    rx = receiver()
    ada = _user(store, "ada")
    _hook(store, ada, rx.url, secret="readme-secret-0123")
    rid = _run(store, ada)
    with session_scope(store.db_url) as s:
        finish_run(s, rid, RunStatus.succeeded)
    dispatch_once(store, now=utcnow())
    (req,) = rx.requests
    seen: set[str] = set()
    assert scope["handle"]("readme-secret-0123", req["body"], req["headers"], seen) == 204
    assert seen == {req["headers"]["X-Neuroreg-Delivery"]}
    assert scope["handle"]("readme-secret-0123", req["body"], req["headers"], seen) == 204
    forged = req["body"].replace(b'"succeeded"', b'"failed"')
    assert forged != req["body"]
    assert scope["handle"]("readme-secret-0123", forged, req["headers"], seen) == 401
    assert scope["handle"]("another-secret-000", req["body"], req["headers"], seen) == 401


@pytest.mark.parametrize(("address", "public", "private"), [
    ("8.8.8.8", True, True), ("2001:4860:4860::8888", True, True),
    ("127.0.0.1", False, True), ("::1", False, True), ("10.1.2.3", False, True),
    ("172.31.0.1", False, True), ("192.168.0.1", False, True), ("100.64.0.1", False, True),
    ("fd12::1", False, True), ("::ffff:127.0.0.1", False, True), ("::ffff:8.8.8.8", True, True),
    ("2002:7f00:1::1", False, True), ("64:ff9b::a00:1", False, True),
    ("169.254.169.254", False, False), ("fe80::1", False, False), ("::ffff:169.254.169.254",
                                                                   False, False),
    ("0.0.0.0", False, False), ("0.1.2.3", False, False), ("::", False, False),
    ("224.0.0.1", False, False), ("ff02::1", False, False), ("240.0.0.1", False, False),
    ("255.255.255.255", False, False), ("192.0.2.1", False, True),
])
def test_which_addresses_a_hook_may_reach(address: str, public: bool, private: bool) -> None:
    """Public unicast only; the admin setting adds loopback and private networks (the
    IPv4 address an IPv6 one carries counts too), never link-local, multicast, reserved."""
    ip = ipaddress.ip_address(address)
    assert allowed(ip, private=False) is public
    assert allowed(ip, private=True) is private


def test_stored_reasons_are_shown_as_outcomes_only() -> None:
    """Rows from before outcomes were worded held exception text: shown as the generic
    outcome, so no connection detail reaches the page."""
    generic = not_delivered(10)
    for stored in ("ConnectError: [Errno 111] Connection refused", "timed out after 10 s",
                   "ReadError: [Errno 104] Connection reset by peer", "HTTP 500 body"):
        assert shown_error(stored, 10) == generic
    for kept in ("HTTP 500", "HTTP 302: redirects are not followed; give the final URL",
                 generic, not_delivered(0.25), None):
        assert shown_error(kept, 10) == kept
