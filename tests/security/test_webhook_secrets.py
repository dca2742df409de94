"""Webhook secrets at rest, on SQLite and PostgreSQL: a copy of the database alone does not
give a hook's secret (it is sealed with a key kept outside it: NEUROREG_SECRET_KEY or a
0600 key file), deliveries are still signed with the secret the receiver holds, and rows
stored in plaintext before keep working and are sealed when the API starts."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from sqlalchemy import select, text

from core.secretbox import SecretBox, Unreadable, _key_from, secret_box
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import DeliveryStatus, Webhook, WebhookDelivery, utcnow
from server.webhooks import dispatch_once
from tests.concurrently import at_once
from tests.conftest import admin_client
from tests.security.conftest import as_token
from tests.server.test_webhooks import Receiver, _no_proxy, _verify, receiver  # noqa: F401, F811

LONG = "L" * 256  # longer than SHA-256's block: HMAC hashes it first; still signs the same


@pytest.fixture
def lab(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    """A backend whose dispatcher the test drives; receivers listen on loopback."""
    return make_settings(database_url=db_url, webhook_interval_s=3600,
                         webhook_allow_private=True)


def _stored(settings: Settings) -> dict[str, str]:
    """url → the secret column as a copy of the database shows it."""
    with session_scope(settings.db_url) as s:
        return {url: secret for url, secret in s.execute(text("SELECT url, secret FROM webhooks"))}


def _make_hooks(settings: Settings, rx: Receiver) -> dict[str, str]:
    """eve's three hooks through the API (a secret of hers, a long one, a new one), one
    finished run of hers, and the secrets the API answered: url → secret."""
    with admin_client(settings) as api:
        eve = as_token(api, api.post("/api/users", json={"name": "eve"}).json()["token"])
        secrets: dict[str, str] = {}
        for i, secret in enumerate(("my-own-secret-of-16+", LONG, None)):
            url = f"{rx.url}?hook={i}"
            body = {"url": url} | ({"secret": secret} if secret else {})
            res = eve.post("/api/webhooks", json=body)
            assert res.status_code == 201, res.text
            secrets[url] = res.json()["secret"]
        run = eve.post("/api/runs", json={"kind": "external", "name": "r"}).json()
        eve.post(f"/api/runs/{run['id']}/finish", json={"status": "succeeded"})
    return secrets


def _signed_with(rx: Receiver) -> dict[str, tuple[bytes, str]]:
    """hook url → the body and signature it received."""
    return {f"{rx.url}?{r['path'].partition('?')[2]}":
            (r["body"], r["headers"]["X-Neuroreg-Signature"]) for r in rx.requests}


def test_a_copy_of_the_database_alone_does_not_give_a_hooks_secret(
        lab: Settings, receiver: Callable[..., Receiver]) -> None:  # noqa: F811
    rx = receiver()
    secrets = _make_hooks(lab, rx)
    stored = _stored(lab)
    for url, secret in secrets.items():
        assert secret not in stored[url] and stored[url].startswith("fernet ")
        assert len(stored[url]) <= 256  # the column's size
        with pytest.raises(Unreadable):  # another deployment's key does not open it
            SecretBox(Fernet.generate_key).signing_key(stored[url])
    assert stat.S_IMODE((lab.data_dir / "secret.key").stat().st_mode) == 0o600
    dispatch_once(lab, now=utcnow())
    got = _signed_with(rx)
    assert got.keys() == secrets.keys()
    for url, secret in secrets.items():  # receivers check with the secret they were given
        body, signature = got[url]
        assert _verify(secret, body, signature), url


def test_plaintext_secrets_keep_working_and_are_sealed_when_the_api_starts(
        lab: Settings, receiver: Callable[..., Receiver]) -> None:  # noqa: F811
    rx = receiver()
    urls = list(_make_hooks(lab, rx))
    old = dict(zip(urls, ("whsec_from-before-sealing-0123", LONG, "another-old-secret-99"),
                   strict=True))
    with session_scope(lab.db_url) as s:  # as a database from before sealing holds them
        for url, secret in old.items():
            s.execute(text("UPDATE webhooks SET secret = :s WHERE url = :u"),
                      {"s": secret, "u": url})
    dispatch_once(lab, now=utcnow())  # read as they are: signed with the old secrets
    assert all(_verify(old[url], *got) for url, got in _signed_with(rx).items())
    with admin_client(lab):  # the API starts: they are sealed
        pass
    assert all(v.startswith("fernet ") and v not in old.values()
               for v in _stored(lab).values())
    with session_scope(lab.db_url) as s:  # and still sign the same
        s.execute(text("UPDATE webhook_deliveries SET status = 'pending', "
                       "next_attempt_at = :t"), {"t": utcnow()})
    rx.requests.clear()
    dispatch_once(lab, now=utcnow())
    assert len(rx.requests) == 3
    assert all(_verify(old[url], *got) for url, got in _signed_with(rx).items())


def test_the_key_comes_from_the_environment_when_set(
        lab: Settings, receiver: Callable[..., Receiver]) -> None:  # noqa: F811
    key = Fernet.generate_key().decode()
    settings = lab.model_copy(update={"secret_key": key})
    rx = receiver()
    secrets = _make_hooks(settings, rx)
    assert not (settings.data_dir / "secret.key").exists()
    box = SecretBox(key.encode)
    stored = _stored(settings)
    assert all(box.signing_key(stored[url]) for url in secrets)  # the key opens them all
    dispatch_once(settings, now=utcnow())
    with session_scope(settings.db_url) as s:
        assert {d.status for d in s.execute(select(WebhookDelivery)).scalars()} == {
            DeliveryStatus.delivered}
    assert all(_verify(secrets[url], *got) for url, got in _signed_with(rx).items())
    with pytest.raises(ValidationError, match="NEUROREG_SECRET_KEY must be a Fernet key"):
        Settings(secret_key="hunter2")
    assert "secret_key" not in settings.model_dump(mode="json")  # never passed to workers
    assert key not in repr(settings)


def test_a_hook_sealed_with_a_lost_key_says_so_and_signs_nothing(
        lab: Settings, receiver: Callable[..., Receiver]) -> None:  # noqa: F811
    rx = receiver()
    _make_hooks(lab, rx)
    other = lab.model_copy(update={"secret_key": Fernet.generate_key().decode()})
    dispatch_once(other, now=utcnow())
    assert rx.requests == []
    with session_scope(lab.db_url) as s:
        errors = {d.last_error for d in s.execute(select(WebhookDelivery)).scalars()}
        assert len(s.execute(select(Webhook)).all()) == 3
    (said,) = errors
    assert said is not None and "can no longer read this hook's secret" in said


def test_processes_that_make_the_key_file_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    keys = at_once([lambda: _key_from(path) for _ in range(8)])
    assert len(set(keys)) == 1 and Fernet(keys[0])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["secret.key"]  # no drafts left behind
    assert secret_box(Settings(data_dir=tmp_path / "data")).seal("x" * 16).startswith("fernet ")
