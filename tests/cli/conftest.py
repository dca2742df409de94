"""The CLI tests' live server."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.livesrv import live_server


@dataclasses.dataclass
class Server:
    url: str
    token: str
    settings: Settings


@pytest.fixture
def server(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
           ) -> Iterator[Server]:
    """A live server; the CLI in this process talks to it as its admin."""
    with live_server(settings) as url:  # the app migrates the store
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        assert token is not None
        monkeypatch.setenv("NEUROREG_API_URL", url)
        monkeypatch.setenv("NEUROREG_TOKEN", token)
        monkeypatch.setenv("NEUROREG_DATA_DIR", str(tmp_path / "client"))
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        yield Server(url, token, settings)
