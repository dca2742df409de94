"""Fixtures of the MLflow tests (tests/server/test_mlflow*.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import Settings
from core.store.db import migrate, session_scope
from core.store.models import Role
from core.store.users import create_user, issue_token
from tests.livesrv import live_server


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, str]]:
    """A live server on ``settings`` and a member's token: (URL, token)."""
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        token = issue_token(s, user=create_user(s, name="ada", role=Role.member), name="mlflow")
    with live_server(settings) as url:
        yield url, token
