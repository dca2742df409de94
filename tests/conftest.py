"""Shared fixtures: settings on a temporary data dir, real PostgreSQL and Redis.

The suite touches only databases it creates or is told to use:

- PostgreSQL: each test session creates its own database (``neuroreg_test_<hex>``) through
  the connection ``NEUROREG_TEST_PG`` names (default the ``test`` database on
  127.0.0.1:5432) and drops it at the end;
- Redis: each test session starts its own ``redis-server`` (a free port, no persistence),
  unless ``NEUROREG_TEST_REDIS`` names a Redis database to use instead — then that
  database number (plus the pytest-xdist worker's index) is emptied and used.

With CI=true a missing service fails the run instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
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
REDIS_URL = os.environ.get("NEUROREG_TEST_REDIS")
# Under pytest-xdist each worker (gw0, gw1, ...) is its own session: PostgreSQL gets a
# database per session (pg_url), Redis a server of its own per session, or with
# NEUROREG_TEST_REDIS a database number per worker (redis_url), so one worker's flush
# never empties another's queue.
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


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    host, port = _host_port(PG_ADMIN_URL, 5432)
    if not _reachable(host, port):
        unavailable(f"PostgreSQL at {host}:{port} (NEUROREG_TEST_PG)")
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


class RedisServer:
    """A ``redis-server`` of our own on ``port`` (a free one by default), working in
    ``directory``; constructed once it says it accepts connections (its own log line, read
    as it is written); :meth:`stop` kills it."""

    def __init__(self, directory: Path, *, port: int | None = None,
                 appendonly: bool = False) -> None:
        from tests.livesrv import free_port

        exe = shutil.which("redis-server")
        if exe is None:
            unavailable("redis-server (install Debian's redis-server, or set "
                        "NEUROREG_TEST_REDIS)")
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "yes" if appendonly else "no", "--dir", str(directory)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            if "Ready to accept connections" in line:
                break
        else:
            self.stop()
            raise RuntimeError(f"redis-server on port {self.port} did not start: "
                               + "".join(seen))
        # keep reading its output so that a full pipe never blocks it
        self._drain = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._drain.start()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if getattr(self, "_drain", None) is not None:
            self._drain.join()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This session's Redis: a server of its own, or the database NEUROREG_TEST_REDIS names
    (plus the xdist worker's index), emptied first."""
    if REDIS_URL is None:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
        try:
            yield f"redis://127.0.0.1:{server.port}/0"
        finally:
            server.stop()
        return
    host, port = _host_port(REDIS_URL, 6379)
    if not _reachable(host, port):
        unavailable(f"Redis at {host}:{port} (NEUROREG_TEST_REDIS)")
    import redis

    base, number = REDIS_URL.rsplit("/", 1)
    url = f"{base}/{(int(number) + XDIST_WORKER) % 16}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


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
        conn.execute(text("DELETE FROM projects WHERE id <> 1"))  # the default one stays


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
