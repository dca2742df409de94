"""Shared fixtures: settings on a temporary data dir, real PostgreSQL and Redis.

PostgreSQL (127.0.0.1:5432, db ``test``) and Redis (127.0.0.1:6379) are used where
reachable. With CI=true an unreachable one fails the run instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

# Before torch, numpy or numba load (they read these once):
# - under pytest-xdist each core runs a test process and the worker processes it starts,
#   so each takes one thread: OpenMP's waiting threads spinning on a core another process
#   needs made a CPU train take several times longer. A value already set wins (CI's
#   second pass sets its own thread count, .ci/kernels.py);
# - numba compiles without LLVM's optimization passes: Brendel & Bethge's jitclasses are
#   compiled in every process that attacks (numba cannot cache a jitclass), and unoptimized
#   they compile in about 2/3 of the time with bitwise the same results (no fast-math, so
#   LLVM may not reorder a float operation at any level).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
os.environ.setdefault("NUMBA_OPT", "0")

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from core.settings import Settings  # noqa: E402
from core.store.db import session_scope  # noqa: E402
from core.store.users import ensure_admin  # noqa: E402
from server.app import create_app  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "NEUROREG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("NEUROREG_TEST_REDIS", "redis://127.0.0.1:6379/13")
# Under pytest-xdist each worker (gw0, gw1, ...) is its own session: PostgreSQL gets a
# database per session (pg_url), Redis a database number per worker (redis_url), so one
# worker's flush never empties another's queue.
XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests first (each runs for minutes; the examples' for several): under
    pytest-xdist each core starts on one of the long tests, and the short ones fill in
    around them instead of one long test running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


def unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is unreachable and CI=true: integration tests must not skip")
    pytest.skip(f"{what} is unreachable")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    if not _reachable("127.0.0.1", 5432):
        unavailable("PostgreSQL at 127.0.0.1:5432")
    name = f"neuroreg_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    from core.store.db import engine_for

    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable("127.0.0.1", 6379):
        unavailable("Redis at 127.0.0.1:6379")
    import redis

    base, number = REDIS_URL.rsplit("/", 1)
    url = f"{base}/{(int(number) + XDIST_WORKER) % 16}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


def _truncate(url: str) -> None:
    from core.store.db import engine_for, migrate

    migrate(url)
    with engine_for(url).begin() as conn:
        conn.execute(
            text("TRUNCATE metric_buckets, metrics, artifacts, runs, api_tokens, users, "
                 "audit_events CASCADE")
        )


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"data_dir": tmp_path / "data"}
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@contextlib.contextmanager
def admin_client(settings: Settings) -> Iterator[TestClient]:
    """An API client on ``settings``, authenticated as the first admin."""
    app = create_app(settings)
    with session_scope(settings.db_url) as s:
        token = ensure_admin(s)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An API client authenticated as the first admin (embedded default)."""
    with admin_client(settings) as c:
        yield c
