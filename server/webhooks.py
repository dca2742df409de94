"""The webhook dispatcher: sends the outbox (:mod:`server.store.webhooks`).

Every ``webhook_interval_s`` each API process takes the due deliveries, claims each with
one conditional UPDATE (so two API processes never send one twice), and POSTs its JSON
body to the hook's URL with::

    Content-Type: application/json
    X-Neuroreg-Event: run.succeeded
    X-Neuroreg-Delivery: <uuid, the same on every retry>
    X-Neuroreg-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>

A 2xx marks it delivered. Anything else — another status, a timeout, a refused
connection, a redirect (never followed: a hook reaches the URL its owner gave and no
other) — is retried after the next delay of ``webhook_backoff_s``, and marked failed
after ``webhook_max_attempts`` attempts. Only the status code and a short reason are
kept; a receiver's response body is never read, so a hook cannot be used to read pages
the server can reach.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from datetime import datetime
from typing import Any

import httpx

from server.settings import Settings
from server.store.db import session_scope
from server.store.models import utcnow
from server.store.webhooks import Claimed, claim, due, record_attempt

log = logging.getLogger("neuroreg.webhooks")

BATCH = 50  # deliveries a pass takes at most; the rest wait for the next pass
USER_AGENT = "neuroreg-webhooks/1"


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): the same on every retry."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """``X-Neuroreg-Signature``'s value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(settings: Settings, attempt: int) -> float | None:
    """Seconds until the next try after failed attempt number ``attempt`` (1, 2, …), or
    None when that was the last one."""
    if attempt >= settings.webhook_max_attempts:
        return None
    delays = settings.webhook_backoff_s
    return delays[min(attempt, len(delays)) - 1]


def _send(http: httpx.Client, c: Claimed) -> tuple[bool, int | None, str | None]:
    """POST the delivery once: (delivered, status code, why not)."""
    url = httpx.URL(c.url)
    if url.scheme not in ("http", "https"):  # checked on creation; checked again here
        return False, None, f"{url.scheme}: only http and https URLs are called"
    body = body_of(c.payload)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Neuroreg-Event": c.event, "X-Neuroreg-Delivery": c.uuid,
               "X-Neuroreg-Signature": signature(c.secret, body)}
    try:
        # streamed and closed unread: only the status line matters
        with http.stream("POST", url, content=body, headers=headers) as res:
            code = res.status_code
    except httpx.TimeoutException:
        return False, None, f"timed out after {http.timeout.read:g} s"
    except httpx.HTTPError as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= code < 300:
        return True, code, None
    if 300 <= code < 400:
        return False, code, f"HTTP {code}: redirects are not followed; give the final URL"
    return False, code, f"HTTP {code}"


def dispatch_once(settings: Settings, *, now: datetime | None = None,
                  http: httpx.Client | None = None) -> list[int]:
    """One pass: send every delivery due at ``now`` (default: the clock) that no other
    dispatcher holds; returns the ids this pass attempted."""
    now = now or utcnow()
    lease = settings.webhook_timeout_s + 60.0  # longer than one attempt can take
    own = http is None
    http = http or httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)
    sent = []
    try:
        with session_scope(settings.db_url) as s:
            ids = due(s, now=now, limit=BATCH)
        for delivery_id in ids:
            with session_scope(settings.db_url) as s:  # committed: others see the claim
                claimed = claim(s, delivery_id, now=now, lease_s=lease)
            if claimed is None:
                continue
            ok, code, error = _send(http, claimed)
            retry = None if ok else retry_delay(settings, claimed.attempt)
            with session_scope(settings.db_url) as s:
                record_attempt(s, claimed, now=now, ok=ok, status_code=code, error=error,
                               retry_in=retry)
            if not ok:
                log.warning("webhook delivery %s (%s, attempt %d) failed: %s%s", claimed.uuid,
                            claimed.event, claimed.attempt, error,
                            "" if retry is None else f"; retrying in {retry:g} s")
            sent.append(delivery_id)
    finally:
        if own:
            http.close()
    return sent


class Dispatcher:
    """A daemon thread running :func:`dispatch_once` every ``webhook_interval_s``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.webhook_timeout_s + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.webhook_interval_s):
            try:
                dispatch_once(self.settings)
            except Exception:  # the database is down: try again next time
                log.exception("webhook pass failed")
