"""Webhooks: a member's URLs, and the outbox of deliveries to them.

A notification is never lost: every path that moves a run to a finished status (a
worker's or an external script's :func:`~core.store.runs.finish_run`, a cancel, the
reaper giving up on a run, a study finishing with its last child) calls
:func:`queue_run_event` in the transaction that moved it, which writes one pending
delivery per matching hook of the run's owner. The dispatcher (:mod:`server.webhooks`)
claims due rows one conditional UPDATE at a time, so several API processes never send
one delivery twice, and records each attempt here: an outcome a member may read
(:data:`NOT_PUBLIC`, :func:`not_delivered`, ``HTTP <status>``), never how a connection
failed.

Secrets are kept sealed (:mod:`core.secretbox`): the database alone does not give them.
"""

from __future__ import annotations

import re
import secrets
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from core.access import access_of
from core.secretbox import SecretBox, is_sealed
from core.store.db import begin_write
from core.store.models import (
    MAX_ID,
    DeliveryStatus,
    Role,
    Run,
    RunStatus,
    User,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from neuroreg.names import WEBHOOK_EVENTS, WebhookEvent

# what a hook may subscribe to, one list for the API and the CLI's choices (neuroreg.names)
EventName = WebhookEvent
EVENTS = WEBHOOK_EVENTS
PING = "ping"  # POST /api/webhooks/{id}/test: sent whatever the hook's events


def event_name(kind: str, status: RunStatus) -> str:
    return f"{'study' if kind == 'study' else 'run'}.{status.value}"


class TooManyHooks(Exception):
    """The member has as many hooks as a member may."""


def create_webhook(session: Session, *, owner: User, url: str, secret: str, box: SecretBox,
                   events: Sequence[str] | None = None, limit: int | None = None) -> Webhook:
    """A hook of ``owner``'s for ``events`` (default: all), its ``secret`` sealed by
    ``box``. With a ``limit``, :class:`TooManyHooks` when the owner has that many already
    — counted under a lock on the owner, so hooks created at once cannot pass it."""
    if limit is not None:
        _lock_owner(session, owner)
        have = session.execute(select(func.count()).select_from(Webhook)
                               .where(Webhook.owner_id == owner.id)).scalar_one()
        if have >= limit:
            raise TooManyHooks(f"you have {have} webhooks, the most a member may have "
                               f"({limit}); delete one first")
    wanted = set(EVENTS if events is None else events)
    hook = Webhook(owner_id=owner.id, url=url, secret=box.seal(secret),
                   events=[e for e in EVENTS if e in wanted], active=True)
    session.add(hook)
    session.flush()
    return hook


def _lock_owner(session: Session, owner: User) -> None:
    """Hold the owner's row until commit (PostgreSQL: not a lock that blocks inserting
    rows that refer to it), or SQLite's one write lock."""
    begin_write(session)
    session.execute(select(User.id).where(User.id == owner.id)
                    .with_for_update(key_share=True)).one()


def new_secret() -> str:
    """A new random secret: ``whsec_`` and 256 bits."""
    return "whsec_" + secrets.token_urlsafe(32)


def seal_plaintext_secrets(session: Session, box: SecretBox) -> int:
    """Seal every secret still stored as written before sealing; how many there were."""
    rows = session.execute(select(Webhook.id, Webhook.secret)).all()
    plain = [(hook_id, secret) for hook_id, secret in rows if not is_sealed(secret)]
    for hook_id, secret in plain:
        session.execute(update(Webhook).where(Webhook.id == hook_id, Webhook.secret == secret)
                        .values(secret=box.seal(secret))
                        .execution_options(synchronize_session=False))
    return len(plain)


def list_webhooks(session: Session, *, owner: User) -> Sequence[Webhook]:
    return session.execute(
        select(Webhook).where(Webhook.owner_id == owner.id).order_by(Webhook.id)
    ).scalars().all()


def find_webhook(session: Session, hook_id: int, *, user: User) -> Webhook | None:
    """The hook if ``user`` owns it (or is an admin); else None, as if it did not exist."""
    hook = session.get(Webhook, hook_id) if 1 <= hook_id <= MAX_ID else None
    if hook is None or (hook.owner_id != user.id and user.role is not Role.admin):
        return None
    return hook


def delete_webhook(session: Session, hook: Webhook) -> None:
    """Delete the hook with its deliveries (pending ones are never sent)."""
    session.delete(hook)
    session.flush()


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _deliver(session: Session, hook: Webhook, event: str, body: dict[str, Any],
             run_id: int | None, now: datetime) -> WebhookDelivery:
    key = str(uuidlib.uuid4())
    payload = {"id": key, "event": event, "timestamp": now.isoformat(), **body}
    row = WebhookDelivery(uuid=key, webhook_id=hook.id, event=event, run_id=run_id,
                          payload=payload, status=DeliveryStatus.pending, attempts=0,
                          next_attempt_at=now, created_at=now)
    session.add(row)
    return row


def queue_run_event(session: Session, run_id: int) -> list[WebhookDelivery]:
    """Write a delivery of the run's finish (``run.succeeded``, ``study.failed``, …) for
    each active hook of its owner subscribed to it, while its owner may read it
    (:mod:`core.access`). Call inside the transaction that
    finished the run, after the change (it reads the run's row as that change left it)."""
    row = session.execute(
        select(Run.id, Run.name, Run.kind, Run.status, Run.owner_id,
               User.name.label("owner_name"), Run.parent_id,
               Run.error, Run.result, Run.created_at, Run.started_at, Run.finished_at)
        .join(User, User.id == Run.owner_id).where(Run.id == run_id)
    ).one_or_none()
    if row is None or not row.status.finished:
        return []
    event = event_name(row.kind, row.status)
    hooks = [h for h in session.execute(
        select(Webhook).where(Webhook.owner_id == row.owner_id, Webhook.active.is_(True))
        .order_by(Webhook.id)).scalars() if event in h.events]
    if not hooks:
        return []
    owner = session.get(User, row.owner_id)
    project_id = session.execute(select(Run.project_id).where(Run.id == run_id)).scalar_one()
    if owner is None or access_of(session, owner).role_in(project_id) is None:
        return []  # its owner may no longer read it (moved, or taken out of its project)
    run: dict[str, Any] = {
        "id": row.id, "name": row.name, "kind": row.kind, "status": row.status.value,
        "owner": row.owner_name, "parent_id": row.parent_id,
        "error": row.error[:2000] if row.error else None,
        "created_at": _iso(row.created_at), "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at)}
    if row.kind == "study":  # its result is small: how many runs, which failed
        run["result"] = row.result
    now = utcnow()
    out = [_deliver(session, h, event, {"run": run}, row.id, now) for h in hooks]
    session.flush()
    return out


def queue_ping(session: Session, hook: Webhook) -> WebhookDelivery:
    """A ``ping`` to the hook, to check the receiver and its signature check."""
    row = _deliver(session, hook, PING, {"webhook": {"id": hook.id, "url": hook.url,
                                                     "events": list(hook.events)}},
                   None, utcnow())
    session.flush()
    return row


def recent_deliveries(session: Session, hook: Webhook, *, limit: int = 20
                      ) -> Sequence[WebhookDelivery]:
    return session.execute(
        select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
    ).scalars().all()


def due_in_turns(session: Session, *, now: datetime, per_owner: int) -> list[tuple[int, int]]:
    """(delivery id, owner id) of due deliveries, each owner's oldest ``per_owner``, in
    turns: every owner's first, then every owner's second, … — so one member's backlog
    never hides another member's delivery. A disabled owner's deliveries are not sent:
    their URL hears nothing of the lab's runs while they are disabled (every event is still
    queued, as every end of a run queues one; they go out if an admin enables them
    again)."""
    turn = func.row_number().over(
        partition_by=Webhook.owner_id,
        order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.id)).label("turn")
    ranked = (select(WebhookDelivery.id, Webhook.owner_id, WebhookDelivery.next_attempt_at,
                     turn)
              .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
              .join(User, User.id == Webhook.owner_id)
              .where(WebhookDelivery.status == DeliveryStatus.pending,
                     WebhookDelivery.next_attempt_at <= now,
                     User.disabled_at.is_(None))).subquery()
    return [(r.id, r.owner_id) for r in session.execute(
        select(ranked.c.id, ranked.c.owner_id).where(ranked.c.turn <= per_owner)
        .order_by(ranked.c.turn, ranked.c.next_attempt_at, ranked.c.id))]


def due(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Ids of pending deliveries whose time has come, oldest due first."""
    return list(session.execute(
        select(WebhookDelivery.id).where(WebhookDelivery.status == DeliveryStatus.pending,
                                         WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
    ).scalars())


@dataclass(frozen=True)
class Claimed:
    """A delivery this dispatcher holds for one attempt (number ``attempt``)."""

    id: int
    uuid: str
    event: str
    url: str
    secret: str  # as stored: sealed, or from before sealing
    payload: dict[str, Any]
    attempt: int


def claim(session: Session, delivery_id: int, *, now: datetime, lease_s: float
          ) -> Claimed | None:
    """Take the delivery for one attempt, or None when another dispatcher has it (or it is
    no longer due). One conditional UPDATE: it moves ``next_attempt_at`` past ``now`` for
    the lease (a dispatcher that dies mid-send leaves it due again afterwards) and counts
    the attempt. Commit before sending, so other dispatchers see the claim."""
    done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id,
               WebhookDelivery.status == DeliveryStatus.pending,
               WebhookDelivery.next_attempt_at <= now)
        .values(next_attempt_at=now + timedelta(seconds=lease_s),
                attempts=WebhookDelivery.attempts + 1)
        .execution_options(synchronize_session=False))
    if not done.rowcount:
        return None
    row = session.execute(
        select(WebhookDelivery.uuid, WebhookDelivery.event, WebhookDelivery.payload,
               WebhookDelivery.attempts, Webhook.url, Webhook.secret)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.id == delivery_id)).one()
    return Claimed(id=delivery_id, uuid=row.uuid, event=row.event, url=row.url,
                   secret=row.secret, payload=row.payload, attempt=row.attempts)


NOT_PUBLIC = "refused: the URL's host is not a public address"
"""The outcome of an attempt whose host resolved to an address hooks may not reach."""
NOT_HTTP = "refused: only http:// and https:// URLs are called"
UNREADABLE_SECRET = ("failed: the server can no longer read this hook's secret (its key "
                     "changed); add the hook again")
_REDIRECT = "redirects are not followed; give the final URL"
_SHOWN = re.compile(r"HTTP [1-5][0-9]{2}(: " + re.escape(_REDIRECT) + ")?|"
                    r"could not deliver: no answer within [0-9.e+-]+ s \(nothing listening, "
                    r"not HTTP\(S\), or too slow\)")


def not_delivered(timeout_s: float) -> str:
    """The one outcome of every attempt that got no HTTP status, whatever the reason: a
    name that does not resolve, nothing listening, a refused or reset connection, TLS
    that fails, a service that is not HTTP, a receiver too slow. Telling them apart
    would tell a member which ports are open where the server stands."""
    return (f"could not deliver: no answer within {timeout_s:g} s (nothing listening, "
            "not HTTP(S), or too slow)")


def answered(status_code: int) -> str | None:
    """Why a receiver's answer is no delivery (None: a 2xx, delivered)."""
    if 200 <= status_code < 300:
        return None
    if 300 <= status_code < 400:
        return f"HTTP {status_code}: {_REDIRECT}"
    return f"HTTP {status_code}"


def shown_error(stored: str | None, timeout_s: float) -> str | None:
    """``last_error`` as a member may see it: an outcome this module words, or, for any
    other text (rows from before outcomes were worded), :func:`not_delivered`."""
    if stored is None or stored in (NOT_PUBLIC, NOT_HTTP, UNREADABLE_SECRET):
        return stored
    return stored if _SHOWN.fullmatch(stored) else not_delivered(timeout_s)


def record_attempt(session: Session, claimed: Claimed, *, now: datetime, ok: bool,
                   status_code: int | None, error: str | None, retry_in: float | None
                   ) -> None:
    """The attempt's outcome: delivered (``ok``), due again in ``retry_in`` s, or failed
    for good (``retry_in`` None). Only while the claim still holds: a dispatcher whose
    lease ran out and whose delivery another one took writes nothing."""
    values: dict[str, Any] = {"last_status_code": status_code,
                              "last_error": error[:500] if error else None}
    if ok:
        values |= {"status": DeliveryStatus.delivered, "delivered_at": now}
    elif retry_in is None:
        values |= {"status": DeliveryStatus.failed}
    else:
        values |= {"next_attempt_at": now + timedelta(seconds=retry_in)}
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == claimed.id,
               WebhookDelivery.status == DeliveryStatus.pending,
               WebhookDelivery.attempts == claimed.attempt)
        .values(**values).execution_options(synchronize_session=False))
