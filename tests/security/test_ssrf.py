"""Server-side requests through webhooks, on SQLite and PostgreSQL: a member cannot make the
API call loopback, private, link-local or metadata addresses (however written, or behind a
DNS name, or a name that resolves elsewhere by the time the delivery goes out), cannot
read what the API finds there from the deliveries page (an outcome, not the internals),
cannot hold the sender with a receiver that trickles, and has a bounded number of hooks.

DNS is this test's own (:func:`dns`): names it answers resolve to the addresses it gives,
through ``socket.getaddrinfo`` itself, so every resolver the code under test uses sees
them; other names go to the real resolver."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from cli import build_parser
from core.lifecycle import finish_run
from core.secretbox import secret_box
from core.settings import Settings
from core.store.db import migrate, session_scope
from core.store.models import DeliveryStatus, Role, RunStatus, User, WebhookDelivery, utcnow
from core.store.runs import create_run
from core.store.users import create_user
from core.store.webhooks import create_webhook
from server.webhooks import Sender, dispatch_once
from tests.concurrently import at_once
from tests.conftest import admin_client
from tests.security.conftest import as_token

PUBLIC = "8.8.8.8"  # a global address the test's DNS may give (nothing is sent there)


@pytest.fixture
def backend(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    """The suite's backend, with the API's own dispatcher asleep: tests dispatch."""
    return make_settings(database_url=db_url, webhook_interval_s=3600)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Names this test answers: name → the answers to successive lookups (the last one
    repeating), each a list of addresses."""
    table: dict[str, list[list[str]]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in table:
            return real(host, port, *args, **kwargs)
        answers = table[name]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        port = int(port or 0)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)) if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


class Listener:
    """A TCP server on 127.0.0.1 that hands each connection to ``serve`` in a thread of
    its own, and records the requests it read."""

    def __init__(self, serve: Callable[[Listener, socket.socket], None],
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.serve = serve
        self.requests: list[bytes] = []
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            t = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.serve(self, conn)
            except OSError:  # the client went away
                pass

    def read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        self.requests.append(head + b"\r\n\r\n" + body)
        return self.requests[-1]

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hook"

    def close(self) -> None:
        try:  # wakes the accepting thread (a close alone leaves it listening)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # closed already
            pass
        self.sock.close()
        for t in self._threads:
            t.join(timeout=30)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def answer(code: int) -> Callable[[Listener, socket.socket], None]:
    def serve(rx: Listener, conn: socket.socket) -> None:
        rx.read_request(conn)
        conn.sendall(f"HTTP/1.1 {code} X\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
                     "body".encode())
    return serve


@pytest.fixture
def listen() -> Iterator[Callable[[Callable[[Listener, socket.socket], None]], Listener]]:
    made: list[Listener] = []

    def make(serve: Callable[[Listener, socket.socket], None], **where: Any) -> Listener:
        made.append(Listener(serve, **where))
        return made[-1]

    yield make
    for rx in made:
        rx.close()


def _store(settings: Settings) -> Settings:
    migrate(settings.db_url)
    return settings


def _user(settings: Settings, name: str) -> int:
    with session_scope(settings.db_url) as s:
        return create_user(s, name=name, role=Role.member).id


def _hook(settings: Settings, owner: int, url: str) -> int:
    """A hook written to the store as it is, past the API's check: a row from before it,
    or a name that resolved elsewhere when it was made."""
    with session_scope(settings.db_url) as s:
        return create_webhook(s, owner=s.get_one(User, owner), url=url,
                              secret="s3cret-s3cret-s3cret", box=secret_box(settings)).id


def _finish_a_run(settings: Settings, owner: int) -> None:
    with session_scope(settings.db_url) as s:
        run = create_run(s, owner=s.get_one(User, owner), kind="external", name="r", config={})
        finish_run(s, run.id, RunStatus.succeeded)


def _by_hook(settings: Settings) -> dict[int, WebhookDelivery]:
    with session_scope(settings.db_url) as s:
        return {d.webhook_id: d for d in s.execute(select(WebhookDelivery)).scalars()}


# --- at creation: a clear 422 naming the url ------------------------------------------


INTERNAL = [
    "http://127.0.0.1:6379/", "http://localhost:5432/", "http://LocalHost/",
    "http://api.localhost/", "http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/",
    "http://127.1/", "http://10.0.0.5/", "http://172.16.3.4:8080/x", "http://192.168.1.1/",
    "http://100.64.0.1/", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:8000/",
    "http://0/", "http://224.0.0.1/", "http://255.255.255.255/", "http://240.0.0.1/",
    "https://user:pw@127.0.0.1/", "http://[::1]:8000/", "http://[::ffff:127.0.0.1]/",
    "http://loop.test/", "http://v6loop.test/", "http://mapped.test/", "http://meta.test/",
    "http://ula.test/", "http://mixed.test/", "http://sixtofour.test/", "http://nat64.test/",
]


def _internal_names(dns: dict[str, list[list[str]]]) -> None:
    dns.update({"loop.test": [["127.0.0.1"]], "v6loop.test": [["::1"]],
                "mapped.test": [["::ffff:127.0.0.1"]], "meta.test": [["169.254.169.254"]],
                "ula.test": [["fd00::1"]], "mixed.test": [[PUBLIC, "10.1.2.3"]],
                "sixtofour.test": [["2002:7f00:1::1"]], "nat64.test": [["64:ff9b::a00:1"]],
                "public.test": [[PUBLIC, "2001:4860:4860::8888"]]})


@pytest.mark.parametrize("url", INTERNAL)
def test_a_hook_to_an_internal_address_is_a_422_naming_the_url(
        url: str, member: Callable[[str], TestClient],
        dns: dict[str, list[list[str]]]) -> None:
    _internal_names(dns)
    eve = member("eve")
    res = eve.post("/api/webhooks", json={"url": url})
    assert res.status_code == 422, res.text
    (err,) = res.json()["detail"]
    assert err["loc"] == ["body", "url"], err
    if "[" not in url:  # an IPv6 literal is no host name the URL pattern takes
        assert "not a public address" in err["msg"], err
    assert eve.get("/api/webhooks").json() == []


def test_public_names_and_names_that_do_not_resolve_yet_are_taken(
        member: Callable[[str], TestClient], dns: dict[str, list[list[str]]]) -> None:
    _internal_names(dns)
    eve = member("eve")
    for url in ("https://public.test/hook", f"http://{PUBLIC}:8080/x",
                "https://no-such-host.invalid/hook"):  # checked again when sent
        assert eve.post("/api/webhooks", json={"url": url}).status_code == 201, url


# --- at delivery: resolved, checked, and connected to the very address checked ----------


def test_deliveries_to_internal_addresses_are_refused_however_written(
        backend: Settings, dns: dict[str, list[list[str]]],
        listen: Callable[..., Listener]) -> None:
    settings = _store(backend)
    rx = listen(answer(200))
    dns.update({"loop.test": [["127.0.0.1"]], "mapped.test": [["::ffff:127.0.0.1"]]})
    eve = _user(settings, "eve")
    hooks = [_hook(settings, eve, rx.url(host)) for host in (
        "127.0.0.1", "localhost", "2130706433", "0x7f.1", "0177.0.0.1", "127.1",
        "loop.test", "mapped.test")]
    _finish_a_run(settings, eve)
    assert len(dispatch_once(settings, now=utcnow())) == len(hooks)
    assert rx.requests == []  # nothing reached the listener
    for d in _by_hook(settings).values():
        assert d.status is DeliveryStatus.pending and d.last_status_code is None
        assert d.last_error is not None and d.last_error.startswith("refused:"), d.last_error
        assert "not a public address" in d.last_error


def test_a_name_that_rebinds_after_the_check_is_not_followed(
        backend: Settings, dns: dict[str, list[list[str]]],
        listen: Callable[..., Listener]) -> None:
    """The name's first answer is the address checked; every later lookup gives another.
    The POST goes to the first (two loopback listeners on one port; the admin setting lets
    both be called, so only pinning tells them apart), and a later attempt whose check
    resolves to loopback with the setting off is refused."""
    settings = _store(backend.model_copy(update={"webhook_allow_private": True}))
    checked = listen(answer(204), host="127.0.0.2")
    other = listen(answer(200), host="127.0.0.1", port=checked.port)
    dns["flip.test"] = [["127.0.0.2"], ["127.0.0.1"]]
    eve = _user(settings, "eve")
    _hook(settings, eve, checked.url("flip.test"))
    _finish_a_run(settings, eve)
    dispatch_once(settings, now=utcnow())
    assert len(checked.requests) == 1 and other.requests == []
    assert b"\r\nhost: flip.test:" in checked.requests[0].lower()  # the name, not the IP
    (d,) = _by_hook(settings).values()
    assert (d.status, d.last_status_code) == (DeliveryStatus.delivered, 204)
    closed = _store(backend)  # the setting off: the name now resolves to loopback
    _finish_a_run(closed, eve)
    dispatch_once(closed, now=utcnow())
    (d,) = [d for d in _by_hook(closed).values() if d.status is DeliveryStatus.pending]
    assert d.last_error is not None and d.last_error.startswith("refused:")
    assert len(checked.requests) == 1 and other.requests == []


def _self_signed(tmp: Path) -> ssl.SSLContext:
    """A TLS server context with a certificate no authority signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("tls.test")]), False)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


def test_https_goes_to_the_address_checked_with_the_name_as_server_name(
        backend: Settings, dns: dict[str, list[list[str]]], listen: Callable[..., Listener],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS to the pinned address still names the host (SNI) and checks the certificate
    against it: one no authority we trust signed is no delivery; trusted, it is."""
    settings = _store(backend.model_copy(update={"webhook_allow_private": True}))
    context, names = _self_signed(tmp_path), []

    def sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = sni

    def tls(rx: Listener, conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as secure:
            rx.read_request(secure)
            secure.sendall(OK)

    rx = listen(tls)
    dns["tls.test"] = [["127.0.0.1"]]
    eve = _user(settings, "eve")
    _hook(settings, eve, f"https://tls.test:{rx.port}/hook")
    _finish_a_run(settings, eve)
    dispatch_once(settings, now=utcnow())
    assert names == ["tls.test"] and rx.requests == []
    (d,) = _by_hook(settings).values()
    assert (d.last_status_code, (d.last_error or "")[:17]) == (None, "could not deliver")
    trusting = ssl.create_default_context(cafile=tmp_path / "cert.pem")
    monkeypatch.setattr("server.webhooks._tls", lambda: trusting)
    dispatch_once(settings, now=d.next_attempt_at)
    (d,) = _by_hook(settings).values()
    assert (d.status, d.last_status_code) == (DeliveryStatus.delivered, 200)
    assert names == ["tls.test"] * 2 and len(rx.requests) == 1


def test_the_admin_setting_opens_private_receivers_but_never_link_local(
        backend: Settings, listen: Callable[..., Listener]) -> None:
    settings = _store(backend.model_copy(update={"webhook_allow_private": True}))
    rx = listen(answer(200))
    eve = _user(settings, "eve")
    lan, metadata = _hook(settings, eve, rx.url()), _hook(settings, eve,
                                                            "http://169.254.169.254/x")
    _finish_a_run(settings, eve)
    dispatch_once(settings, now=utcnow())
    got = _by_hook(settings)
    assert got[lan].status is DeliveryStatus.delivered and len(rx.requests) == 1
    assert (got[metadata].last_error or "").startswith("refused:")


# --- what the deliveries page tells: an outcome, not a port scan ------------------------


def test_deliveries_show_one_outcome_for_every_way_a_connection_fails(
        make_settings: Callable[..., Settings], db_url: str,
        listen: Callable[..., Listener], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening, a service that is not HTTP, one that never answers: the same
    words, no status, no exception text — so the page cannot tell open ports from closed
    ones. A receiver that answers gets its status shown (its owner's to debug)."""
    settings = make_settings(database_url=db_url, webhook_interval_s=3600,
                             webhook_timeout_s=0.3, webhook_allow_private=True)

    def not_http(rx: Listener, conn: socket.socket) -> None:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        rx.read_request(conn)

    def silent(rx: Listener, conn: socket.socket) -> None:
        rx.read_request(conn)
        conn.recv(1)  # until the client gives up

    closed = listen(answer(200))
    closed.close()
    ssh, quiet, teapot = listen(not_http), listen(silent), listen(answer(418))
    with admin_client(settings) as api:
        res = api.post("/api/users", json={"name": "eve"})
        eve = as_token(api, res.json()["token"])
        ids = {name: eve.post("/api/webhooks", json={"url": rx.url()}).json()["id"]
               for name, rx in (("closed", closed), ("ssh", ssh), ("quiet", quiet),
                                ("teapot", teapot))}
        run = eve.post("/api/runs", json={"kind": "external", "name": "r"}).json()
        assert eve.post(f"/api/runs/{run['id']}/finish",
                        json={"status": "succeeded"}).status_code == 200
        dispatch_once(settings, now=utcnow())
        shown = {name: eve.get(f"/api/webhooks/{i}/deliveries").json()[0]
                 for name, i in ids.items()}
        assert shown["teapot"]["last_status_code"] == 418
        assert shown["teapot"]["last_error"] == "HTTP 418"
        failed = {shown[n]["last_error"] for n in ("closed", "ssh", "quiet")}
        assert len(failed) == 1, failed
        (said,) = failed
        assert said.startswith("could not deliver")
        for word in ("Errno", "refused", "reset", "Error", "Timeout", "timed out", "SSH"):
            assert word not in said
        assert all(shown[n]["last_status_code"] is None for n in ("closed", "ssh", "quiet"))
        # a row written before this check, with the old verbatim reason, is shown the same
        with session_scope(settings.db_url) as s:
            s.execute(update(WebhookDelivery)
                      .where(WebhookDelivery.webhook_id == ids["closed"])
                      .values(last_error="ConnectError: [Errno 111] Connection refused"))
        again = eve.get(f"/api/webhooks/{ids['closed']}/deliveries").json()[0]
        assert again["last_error"] == said
        # the CLI prints what the API says
        monkeypatch.setattr("cli.webhooks.client", lambda _: _TestClientAdapter(eve))
        args = build_parser().parse_args(["webhooks", "deliveries", str(ids["closed"])])
        assert args.func(args, settings) == 0
        out = capsys.readouterr().out
        assert said in out and "Errno" not in out


class _TestClientAdapter:
    """The CLI's client over a TestClient."""

    def __init__(self, http: TestClient) -> None:
        self.http = http

    def __enter__(self) -> _TestClientAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def webhook_deliveries(self, hook_id: int, limit: int = 20) -> list[dict[str, Any]]:
        res = self.http.get(f"/api/webhooks/{hook_id}/deliveries", params={"limit": limit})
        assert res.status_code == 200, res.text
        out: list[dict[str, Any]] = res.json()
        return out


# --- a slow receiver holds nobody but its owner -----------------------------------------


def test_a_trickling_receiver_is_abandoned_at_the_deadline(
        backend: Settings, listen: Callable[..., Listener]) -> None:
    """One byte at a time, each well within any per-read timeout: the attempt still ends
    at the total deadline (0.2 s here) and is a failed attempt, retried later."""
    settings = _store(backend.model_copy(update={"webhook_timeout_s": 0.2,
                                                 "webhook_allow_private": True}))
    stop = threading.Event()

    def trickle(rx: Listener, conn: socket.socket) -> None:
        rx.read_request(conn)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
            if stop.wait(0.02):
                break
            conn.sendall(bytes([byte]))
        conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")  # only if never abandoned

    slow = listen(trickle)
    eve = _user(settings, "eve")
    _hook(settings, eve, slow.url())
    _finish_a_run(settings, eve)
    try:
        dispatch_once(settings, now=utcnow())
    finally:
        stop.set()
    (d,) = _by_hook(settings).values()
    assert (d.status, d.attempts, d.last_status_code) == (DeliveryStatus.pending, 1, None)
    assert d.last_error is not None and d.last_error.startswith("could not deliver")


def test_a_slow_receiver_does_not_hold_another_members_delivery(
        backend: Settings, listen: Callable[..., Listener]) -> None:
    """eve's three hooks answer only once bob's delivery has arrived (or after 10 s):
    with two senders and one for each member at most, bob's goes out beside eve's first,
    however many of hers wait."""
    settings = _store(backend.model_copy(update={
        "webhook_timeout_s": 30.0, "webhook_allow_private": True, "webhook_workers": 2,
        "webhook_workers_per_member": 1}))
    arrived = threading.Event()
    saw: list[bool] = []

    def hold(rx: Listener, conn: socket.socket) -> None:
        rx.read_request(conn)
        saw.append(arrived.wait(10))
        conn.sendall(OK)

    def fast(rx: Listener, conn: socket.socket) -> None:
        rx.read_request(conn)
        arrived.set()
        conn.sendall(OK)

    held, quick = listen(hold), listen(fast)
    eve, bob = _user(settings, "eve"), _user(settings, "bob")
    for _ in range(3):
        _hook(settings, eve, held.url())
    bobs = _hook(settings, bob, quick.url())
    _finish_a_run(settings, eve)  # due first
    _finish_a_run(settings, bob)
    assert len(dispatch_once(settings, now=utcnow())) == 4
    assert saw[0] is True  # bob's arrived while eve's first was held
    got = _by_hook(settings)
    assert got[bobs].status is DeliveryStatus.delivered
    assert all(d.status is DeliveryStatus.delivered for d in got.values())


def test_the_running_dispatcher_starts_others_deliveries_while_one_is_held(
        backend: Settings, listen: Callable[..., Listener]) -> None:
    """The API's dispatcher starts what is due without waiting for what is in flight:
    bob's run finishes while eve's delivery is held, and his goes out meanwhile."""
    settings = _store(backend.model_copy(update={"webhook_timeout_s": 30.0,
                                                 "webhook_allow_private": True}))
    arrived = threading.Event()
    saw: list[bool] = []

    def hold(rx: Listener, conn: socket.socket) -> None:
        rx.read_request(conn)
        saw.append(arrived.wait(10))
        conn.sendall(OK)

    def fast(rx: Listener, conn: socket.socket) -> None:
        rx.read_request(conn)
        arrived.set()
        conn.sendall(OK)

    eve, bob = _user(settings, "eve"), _user(settings, "bob")
    _hook(settings, eve, listen(hold).url())
    bobs = _hook(settings, bob, listen(fast).url())
    sender = Sender(settings)
    try:
        _finish_a_run(settings, eve)
        (held,) = sender.start_due(utcnow())
        _finish_a_run(settings, bob)
        (quick,) = sender.start_due(utcnow())
        assert quick.result(timeout=30) in (d.id for d in _by_hook(settings).values())
        held.result(timeout=30)
    finally:
        sender.close()
    assert saw == [True]
    assert {d.status for d in _by_hook(settings).values()} == {DeliveryStatus.delivered}
    assert _by_hook(settings)[bobs].last_status_code == 200


# --- a bounded number of hooks ---------------------------------------------------------


def test_hooks_per_member_are_bounded_even_when_created_at_once(
        make_settings: Callable[..., Settings], db_url: str) -> None:
    settings = make_settings(database_url=db_url, webhook_interval_s=3600,
                             webhook_max_per_member=3)
    with admin_client(settings) as api:
        token = api.post("/api/users", json={"name": "eve"}).json()["token"]
        clients = [as_token(api, token) for _ in range(8)]
        answers = at_once([lambda c=c: c.post("/api/webhooks",  # type: ignore[misc]
                                              json={"url": f"http://{PUBLIC}/hook"})
                           for c in clients])
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] * 3 + [409] * 5, [r.text for r in answers]
        refused = next(r for r in answers if r.status_code == 409).json()["detail"]
        assert "3 webhooks" in refused and "delete one" in refused
        assert len(clients[0].get("/api/webhooks").json()) == 3
        other = api.post("/api/users", json={"name": "bob"}).json()["token"]
        assert as_token(api, other).post(
            "/api/webhooks", json={"url": f"http://{PUBLIC}/hook"}).status_code == 201
