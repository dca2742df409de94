"""The security suite: attacks a hostile member or an anonymous client can make, each run
against our own routes on SQLite and on PostgreSQL (``backend``).

Fixtures:
    api: an API client authenticated as the first admin, on the backend under test.
    anon: a client with no token on the same app.
    member: ``member("eve")`` adds a member through the API and returns her client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.browser.conftest import browser  # noqa: F401  (headless chromium, for test_xss)
from tests.conftest import admin_client


@pytest.fixture
def backend(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    """Settings on a fresh store of each backend (``db_url``: SQLite, then PostgreSQL), the
    embedded queue either way."""
    return make_settings(database_url=db_url)


@pytest.fixture
def api(backend: Settings) -> Iterator[TestClient]:
    with admin_client(backend) as c:
        yield c


@pytest.fixture
def anon(api: TestClient) -> TestClient:
    return TestClient(api.app, raise_server_exceptions=False)


def as_token(api: TestClient, token: str) -> TestClient:
    other = TestClient(api.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


@pytest.fixture
def member(api: TestClient) -> Callable[[str], TestClient]:
    def make(name: str) -> TestClient:
        res = api.post("/api/users", json={"name": name})
        assert res.status_code == 201, res.text
        return as_token(api, res.json()["token"])

    return make
