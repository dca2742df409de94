"""Webhooks: a member's URLs called when their runs or studies finish (signed JSON POSTs,
retried with backoff; see :mod:`server.webhooks`). A member sees and changes only their
own hooks; another's is a 404, as if it did not exist (an admin may reach any). A URL to
an address hooks may not reach is a 422 naming ``url``; a member has at most
``webhook_max_per_member`` hooks (a 409 past it). Deliveries show their outcome, never
how a connection failed."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from core.secretbox import secret_box
from core.settings import Settings
from core.store.models import MAX_ID, DeliveryStatus, User, Webhook, WebhookDelivery
from core.store.webhooks import (
    TooManyHooks,
    create_webhook,
    delete_webhook,
    find_webhook,
    list_webhooks,
    new_secret,
    queue_ping,
    recent_deliveries,
    shown_error,
)
from server.deps import CurrentUser, SessionDep, SettingsDep
from server.schemas import DeliveryPublic, WebhookCreate, WebhookIssued, WebhookPublic
from server.strict import ErrorDetail, api_router
from server.webhooks import Refused, check_url

router = api_router(prefix="/api/webhooks", tags=["webhooks"])

HookId = Annotated[int, Path(ge=1, le=MAX_ID, description="a webhook's id")]


def _hook_or_404(session: Session, hook_id: int, user: User) -> Webhook:
    hook = find_webhook(session, hook_id, user=user)
    if hook is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no webhook {hook_id}")
    return hook


def _delivery(d: WebhookDelivery, timeout_s: float) -> DeliveryPublic:
    return DeliveryPublic(
        id=d.uuid, event=d.event, run_id=d.run_id, status=d.status.value, attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status is DeliveryStatus.pending else None,
        last_status_code=d.last_status_code, last_error=shown_error(d.last_error, timeout_s),
        created_at=d.created_at, delivered_at=d.delivered_at, payload=d.payload)


def _reachable_or_422(url: str, settings: Settings) -> None:
    """A 422 naming ``url`` when its host is, or resolves to, an address hooks may not
    reach (each delivery checks again: a name may resolve elsewhere later)."""
    try:
        check_url(url, settings)
    except Refused:
        why = ("its host is not a public address (loopback, private, link-local, multicast "
               "or reserved): a hook reaches public receivers only"
               + ("" if settings.webhook_allow_private else
                  "; an admin may allow private ones (NEUROREG_WEBHOOK_ALLOW_PRIVATE)"))
        raise RequestValidationError([{"loc": ("body", "url"), "msg": why,
                                       "type": "url_not_public", "input": None}]) from None


@router.get("")
def list_(session: SessionDep, user: CurrentUser) -> list[WebhookPublic]:
    """Your webhooks (their secrets are never shown again)."""
    return [WebhookPublic.model_validate(h) for h in list_webhooks(session, owner=user)]


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {
    "model": ErrorDetail, "description": "You have as many webhooks as a member may"}})
def create(body: WebhookCreate, session: SessionDep, user: CurrentUser,
           settings: SettingsDep) -> WebhookIssued:
    """Register a URL for your runs' and studies' events; the answer carries the secret
    (yours, or a new one) once — the server keeps it sealed."""
    _reachable_or_422(body.url, settings)
    secret = body.secret or new_secret()
    try:
        hook = create_webhook(session, owner=user, url=body.url, events=body.events,
                              secret=secret, box=secret_box(settings),
                              limit=settings.webhook_max_per_member)
    except TooManyHooks as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()
    return WebhookIssued(id=hook.id, url=hook.url, events=hook.events, active=hook.active,
                         created_at=hook.created_at, secret=secret)


@router.delete("/{hook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(hook_id: HookId, session: SessionDep, user: CurrentUser) -> None:
    """Delete one of your webhooks with its deliveries (pending ones are not sent)."""
    delete_webhook(session, _hook_or_404(session, hook_id, user))
    session.commit()


@router.post("/{hook_id}/test", status_code=status.HTTP_202_ACCEPTED)
def test(hook_id: HookId, session: SessionDep, user: CurrentUser,
         settings: SettingsDep) -> DeliveryPublic:
    """Queue a ``ping`` to the hook (sent within a few seconds, signed like every event)."""
    delivery = queue_ping(session, _hook_or_404(session, hook_id, user))
    session.commit()
    return _delivery(delivery, settings.webhook_timeout_s)


@router.get("/{hook_id}/deliveries")
def deliveries(hook_id: HookId, session: SessionDep, user: CurrentUser,
               settings: SettingsDep,
               limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[DeliveryPublic]:
    """The hook's latest deliveries, newest first: status, attempts, the last outcome (the
    status your receiver answered, an address not allowed, or no answer)."""
    hook = _hook_or_404(session, hook_id, user)
    return [_delivery(d, settings.webhook_timeout_s)
            for d in recent_deliveries(session, hook, limit=limit)]
