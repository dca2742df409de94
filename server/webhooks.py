"""The webhook dispatcher: sends the outbox (:mod:`core.store.webhooks`).

Every ``webhook_interval_s`` each API process takes the due deliveries, claims each with
one conditional UPDATE (so two API processes never send one twice), and POSTs its JSON
body to the hook's URL with::

    Content-Type: application/json
    X-Neuroreg-Event: run.succeeded
    X-Neuroreg-Delivery: <uuid, the same on every retry>
    X-Neuroreg-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>

A hook is a member's way to make the server open connections, so each attempt:

- resolves the URL's host then and checks every address it has (:func:`allowed`): only
  public unicast addresses, unless the admin lets hooks reach private ones
  (``webhook_allow_private``); link-local (cloud metadata), multicast and reserved ones
  never. A name that resolved elsewhere when the hook was made is checked anew;
- connects to the very addresses it checked (:class:`_Pinned`), sending the URL's name
  as Host and TLS server name: no second lookup can point it elsewhere;
- ends by ``webhook_timeout_s`` in all — lookup, connect, TLS, sending, and the answer's
  status line — however slowly a receiver trickles bytes (:class:`_Deadline`);
- never follows a redirect and never reads the answer's body.

A 2xx marks it delivered. Anything else is retried after the next delay of
``webhook_backoff_s`` and marked failed after ``webhook_max_attempts`` attempts; what is
recorded is an outcome a member may read (the status a receiver answered, or that the
address is not allowed, or that nothing answered), never how a connection failed.

Deliveries go out on a pool of ``webhook_workers`` threads, at most
``webhook_workers_per_member`` of them for one member's hooks (:class:`Sender`), so a
receiver that holds its connections delays only its own owner's deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from core.secretbox import Unreadable, secret_box
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import utcnow
from core.store.webhooks import (
    NOT_HTTP,
    NOT_PUBLIC,
    UNREADABLE_SECRET,
    Claimed,
    answered,
    claim,
    due_in_turns,
    not_delivered,
    record_attempt,
    seal_plaintext_secrets,
)

log = logging.getLogger("neuroreg.webhooks")

USER_AGENT = "neuroreg-webhooks/1"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): the same on every retry."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False).encode()


def signature(key: bytes, body: bytes) -> str:
    """``X-Neuroreg-Signature``'s value for ``body``, under the hook's HMAC key
    (:meth:`core.secretbox.SecretBox.signing_key`)."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def retry_delay(settings: Settings, attempt: int) -> float | None:
    """Seconds until the next try after failed attempt number ``attempt`` (1, 2, …), or
    None when that was the last one."""
    if attempt >= settings.webhook_max_attempts:
        return None
    delays = settings.webhook_backoff_s
    return delays[min(attempt, len(delays)) - 1]


# --- where a hook may connect ----------------------------------------------------------

_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # "this host" to most stacks
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # an IPv4 address behind a translator


def _carried(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, 6to4, NAT64): where a
    connection to it ends up."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour


def allowed(ip: IPAddress, *, private: bool) -> bool:
    """Whether a hook may connect to ``ip``: public unicast; with ``private`` also
    loopback and private networks. Never link-local (169.254.169.254, the cloud metadata
    service, is one), multicast, unspecified, reserved or 0.0.0.0/8. An IPv6 address
    that carries an IPv4 one is judged as that one."""
    carried = _carried(ip)
    if carried is not None:
        return allowed(carried, private=private)
    if ip.is_loopback:  # before reserved: ::1 lies in ::/8
        return private
    if (ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved
            or (ip.version == 4 and ip in _THIS_NETWORK)):
        return False
    return ip.is_global or private


class Refused(Exception):
    """The URL's host is, or resolves to, an address hooks may not reach."""


def is_local_name(host: str) -> bool:
    """``localhost`` and names under it (RFC 6761), however a resolver answers them."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """Every address ``host`` has — an address literal in any form the system takes
    (``2130706433``, ``0x7f.1``, ``0177.0.0.1``), or a name — within ``timeout`` s; [] when
    it has none by then. The lookup runs in a thread of its own, so a slow DNS server
    cannot hold the caller past its deadline."""
    found: list[list[IPAddress]] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            infos = []
        found.append([ipaddress.ip_address(str(info[4][0]).partition("%")[0])
                      for info in infos])

    thread = threading.Thread(target=lookup, name="webhook-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    return list(dict.fromkeys(found[0])) if found else []


def checked_addresses(host: str, port: int, *, private: bool, timeout: float
                      ) -> list[IPAddress]:
    """The addresses to connect to for ``host`` ([] when it does not resolve in time);
    :class:`Refused` when any of them is one hooks may not reach — a name with one
    private address among public ones is refused, not half-trusted."""
    if not host or (is_local_name(host) and not private):  # no host: the system's own
        raise Refused(host)
    addresses = resolve(host, port, timeout)
    if not all(allowed(a, private=private) for a in addresses):
        raise Refused(host)
    return addresses


def check_url(url: str, settings: Settings) -> None:
    """:class:`Refused` when ``url``'s host is, or now resolves to, an address hooks may
    not reach; a name that does not resolve (yet) passes — each delivery checks again."""
    parts = urlsplit(url)
    checked_addresses(parts.hostname or "", parts.port or _default_port(parts.scheme),
                      private=settings.webhook_allow_private,
                      timeout=settings.webhook_timeout_s)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


# --- one attempt, pinned and bounded ---------------------------------------------------


class _Deadline:
    """The moment an attempt ends; every wait in it is cut to what is left."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self, timeout: float | None = None) -> float:
        """Seconds a step may take now: ``timeout`` or what is left, the smaller;
        :class:`httpcore.ReadTimeout` when nothing is left."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the delivery's deadline passed")
        return left if timeout is None else min(timeout, left)


class _Bounded(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline."""

    CHUNK = 16 * 1024  # written a piece at a time, each given only what time is left

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for i in range(0, len(buffer), self.CHUNK):
            self._inner.write(buffer[i:i + self.CHUNK], self._deadline.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Bounded(self._inner.start_tls(ssl_context, server_hostname,
                                              self._deadline.left(timeout)), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Pinned(httpcore.NetworkBackend):
    """Connects to the addresses checked, whatever host the URL names (which still goes
    out as Host and as the TLS server name), each connection bounded by the deadline."""

    def __init__(self, addresses: Iterable[IPAddress], deadline: _Deadline) -> None:
        self._addresses, self._deadline = list(addresses), deadline
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        error: Exception = httpcore.ConnectError("no address")
        for address in self._addresses:
            try:
                stream = self._tcp.connect_tcp(str(address), port, self._deadline.left(timeout),
                                               socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _Bounded(stream, self._deadline)
        raise error


_FAILURES = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
             httpcore.UnsupportedProtocol, OSError)
"""What a receiver (or its absence) can make an attempt raise."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None  # as recorded and shown: see core.store.webhooks


def _headers(parts: Any, claimed: Claimed, key: bytes, body: bytes) -> list[tuple[str, str]]:
    headers = [("Host", parts.netloc.rpartition("@")[2]),
               ("Content-Type", "application/json"), ("User-Agent", USER_AGENT),
               ("Content-Length", str(len(body))), ("Connection", "close"),
               ("X-Neuroreg-Event", claimed.event), ("X-Neuroreg-Delivery", claimed.uuid),
               ("X-Neuroreg-Signature", signature(key, body))]
    if parts.username is not None:  # user:password@ in the URL, as Basic auth
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers.append(("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()))
    return headers


def send(settings: Settings, claimed: Claimed) -> Outcome:
    """POST the delivery once, checked, pinned and bounded (see the module's docstring)."""
    deadline = _Deadline(settings.webhook_timeout_s)
    failed = Outcome(False, None, not_delivered(settings.webhook_timeout_s))
    parts = urlsplit(claimed.url)
    if parts.scheme not in ("http", "https"):  # checked on creation; checked again here
        return Outcome(False, None, NOT_HTTP)
    try:
        port = parts.port or _default_port(parts.scheme)
        key = secret_box(settings).signing_key(claimed.secret)
        addresses = checked_addresses(parts.hostname or "", port, timeout=deadline.left(),
                                      private=settings.webhook_allow_private)
    except Refused:
        return Outcome(False, None, NOT_PUBLIC)
    except Unreadable:
        log.error("webhook delivery %s: its hook's secret was sealed with another key than "
                  "this deployment's (NEUROREG_SECRET_KEY or <data_dir>/secret.key)",
                  claimed.uuid)
        return Outcome(False, None, UNREADABLE_SECRET)
    except (ValueError, httpcore.TimeoutException):  # a port out of range; no time left
        return failed
    if not addresses:
        return failed
    body = body_of(claimed.payload)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    url = httpcore.URL(scheme=parts.scheme.encode(), host=(parts.hostname or "").encode(),
                       port=port, target=target.encode())
    headers = _headers(parts, claimed, key, body)
    try:
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), deadline.left())
        with (httpcore.ConnectionPool(ssl_context=_tls(), max_connections=1,
                                      network_backend=_Pinned(addresses, deadline)) as pool,
              pool.stream("POST", url, headers=headers, content=body,
                          extensions={"timeout": timeouts}) as res):
            code = res.status  # the status line only: the body is never read
    except _FAILURES as exc:  # the admin's log says why; the member's outcome does not
        log.info("webhook delivery %s: %s: %s", claimed.uuid, type(exc).__name__, exc)
        return failed
    return Outcome(200 <= code < 300, code, answered(code))


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """Certificates checked against certifi's authorities, as httpx does."""
    return httpx.create_ssl_context()


# --- the senders -----------------------------------------------------------------------


class Sender:
    """Sends due deliveries on ``webhook_workers`` threads, at most
    ``webhook_workers_per_member`` of them for one member's hooks at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(settings.webhook_workers,
                                        thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._busy: Counter[int] = Counter()  # owner id → deliveries in flight

    def start_due(self, now: datetime) -> list[Future[int]]:
        """Claim and start what is due at ``now`` and fits: each member's oldest first, in
        turns; returns the attempts started (each gives its delivery's id)."""
        cap = self.settings.webhook_workers_per_member
        with session_scope(self.settings.db_url) as s:
            candidates = due_in_turns(s, now=now, per_owner=cap)
        lease = self.settings.webhook_timeout_s + 60.0  # longer than one attempt can take
        started: list[Future[int]] = []
        for delivery_id, owner in candidates:
            with self._lock:
                if sum(self._busy.values()) >= self.settings.webhook_workers:
                    break
                if self._busy[owner] >= cap:
                    continue
                self._busy[owner] += 1
            with session_scope(self.settings.db_url) as s:  # committed: others see it
                claimed = claim(s, delivery_id, now=now, lease_s=lease)
            if claimed is None:
                self._release(owner)
                continue
            started.append(self._pool.submit(self._attempt, claimed, owner, now))
        return started

    def _release(self, owner: int) -> None:
        with self._lock:
            self._busy[owner] -= 1

    def _attempt(self, claimed: Claimed, owner: int, now: datetime) -> int:
        try:
            outcome = send(self.settings, claimed)
            retry = None if outcome.ok else retry_delay(self.settings, claimed.attempt)
            with session_scope(self.settings.db_url) as s:
                record_attempt(s, claimed, now=now, ok=outcome.ok,
                               status_code=outcome.status_code, error=outcome.error,
                               retry_in=retry)
        except Exception:  # the database went away: the lease runs out, it is due again
            log.exception("webhook delivery %s: its attempt could not be recorded",
                          claimed.uuid)
            raise
        finally:
            self._release(owner)
        if not outcome.ok:
            log.warning("webhook delivery %s (%s, attempt %d) failed: %s%s", claimed.uuid,
                        claimed.event, claimed.attempt, outcome.error,
                        "" if retry is None else f"; retrying in {retry:g} s")
        return claimed.id

    def close(self) -> None:
        """Wait for the attempts in flight (each ends by its deadline), start no more."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def dispatch_once(settings: Settings, *, now: datetime | None = None) -> list[int]:
    """One pass: send every delivery due at ``now`` (default: the clock) that no other
    dispatcher holds, and wait for them; returns the ids this pass attempted."""
    now = now or utcnow()
    sender = Sender(settings)
    sent: list[int] = []
    try:
        running = set(sender.start_due(now))
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            sent += [f.result() for f in done]
            running |= set(sender.start_due(now))
    finally:
        sender.close()
    return sent


class Dispatcher:
    """A daemon thread that starts what is due every ``webhook_interval_s`` without
    waiting for what is in flight: a slow receiver holds only its own owner's share of
    the senders. On start, seals the secrets of hooks made before sealing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self._sender = Sender(settings)

    def start(self) -> None:
        self._seal_old_secrets()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.webhook_timeout_s + 5)
        self._sender.close()

    def _seal_old_secrets(self) -> None:
        try:
            with session_scope(self.settings.db_url) as s:
                sealed = seal_plaintext_secrets(s, secret_box(self.settings))
        except Exception:  # the key file cannot be written, the database is down: not fatal
            log.exception("sealing webhook secrets stored in plaintext failed")
            return
        if sealed:
            log.info("sealed %d webhook secrets stored in plaintext", sealed)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.webhook_interval_s):
            try:
                self._sender.start_due(utcnow())
            except Exception:  # the database is down: try again next time
                log.exception("webhook pass failed")
