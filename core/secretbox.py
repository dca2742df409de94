"""Webhook secrets at rest: sealed with a key that is not in the database.

A hook's secret signs its deliveries (HMAC-SHA256), so the server must be able to read it
back; a copy of the database alone must not. The database holds ``fernet <token>``: the
signing key encrypted (Fernet: AES-128-CBC and an HMAC) with the deployment's key —
``NEUROREG_SECRET_KEY`` when set (every API host of one database needs the same one),
else ``<data_dir>/secret.key``, made on first use, readable by the service's user only.

What is sealed is the key HMAC-SHA256 uses for the secret (:func:`hmac_key`), which signs
exactly as the secret does and fits the column at any secret length. Rows written before
sealing hold the secret itself; they keep working and are sealed when the API starts
(:func:`core.store.webhooks.seal_plaintext_secrets`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from functools import cached_property, lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from core.settings import Settings

SEALED = "fernet "
"""What a sealed value starts with. It has a space, which no secret a member gives may
(printable ASCII without spaces), so a row from before sealing is never taken for one."""

_BLOCK = 64  # SHA-256's block size in bytes


class Unreadable(Exception):
    """A sealed secret this deployment's key does not open (the key changed or was lost)."""


def hmac_key(secret: str) -> bytes:
    """The key HMAC-SHA256 really uses for ``secret``: its bytes, or their SHA-256 when
    longer than a block (RFC 2104). ``hmac.new`` gives the same signature for either."""
    raw = secret.encode()
    return hashlib.sha256(raw).digest() if len(raw) > _BLOCK else raw


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED)


class SecretBox:
    """Seals secrets for the database and opens what it holds, with the key ``key()``
    gives, asked for when first needed (a key file is made on first use, not before)."""

    def __init__(self, key: Callable[[], bytes]) -> None:
        self._key = key

    @cached_property
    def _fernet(self) -> Fernet:
        return Fernet(self._key())

    def seal(self, secret: str) -> str:
        """What the database keeps for ``secret`` (at most 191 characters)."""
        return SEALED + self._fernet.encrypt(hmac_key(secret)).decode()

    def signing_key(self, stored: str) -> bytes:
        """The HMAC key of a stored secret, sealed or from before sealing."""
        if not is_sealed(stored):
            return hmac_key(stored)
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED))
        except InvalidToken:
            raise Unreadable("sealed with another key than this deployment's") from None


def secret_box(settings: Settings) -> SecretBox:
    """The deployment's box: ``NEUROREG_SECRET_KEY``, else the key file (made if absent)."""
    return _box(settings.secret_key, settings.data_dir.resolve() / "secret.key")


@lru_cache
def _box(configured: str, key_file: Path) -> SecretBox:
    return SecretBox(configured.encode if configured else lambda: _key_from(key_file))


def _key_from(path: Path) -> bytes:
    """The key in ``path``, written there first (mode 0600) when there is none. Two
    processes that start at once agree: the file appears whole, by a link, or not at all."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key() + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.link(draft, path)
        except FileExistsError:  # another process's came first: use that one
            pass
        finally:
            draft.unlink(missing_ok=True)
    return path.read_bytes().strip()
