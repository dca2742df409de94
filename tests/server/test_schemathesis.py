"""Schemathesis against the running API, every check and every phase (examples, coverage,
fuzzing, stateful), 50 examples per operation, a fixed seed, on SQLite and PostgreSQL:
no failure of any check (not only no 5xx)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import Settings
from core.store.db import migrate, session_scope
from core.store.models import ApiToken, User
from core.store.users import ensure_admin, hash_token
from tests.livesrv import live_server

# integration: a live server and Schemathesis's CLI, over two minutes a database; run
# first under xdist with the other long tests (tests/conftest.py)
pytestmark = [pytest.mark.no_numerics, pytest.mark.integration]

CONFIG = Path(__file__).with_name("schemathesis.toml")
TOKEN_ID = 2_000_000_007  # an id the fuzzer does not guess: it may revoke any other token


def _token(settings: Settings) -> tuple[str, str]:
    """The admin's member token and a worker token for the run, at ids far from the ones
    generated."""
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        ensure_admin(s)
        admin = s.query(User).filter_by(name="admin").one()
        token = "nr_schemathesis-" + "x" * 32
        worker = "nrw_schemathesis-" + "x" * 32
        s.add(ApiToken(id=TOKEN_ID, user_id=admin.id, name="schemathesis",
                       token_hash=hash_token(token)))
        s.add(ApiToken(id=TOKEN_ID + 1, user_id=admin.id, name="schemathesis-worker",
                       token_hash=hash_token(worker), scope="worker"))
    return token, worker


def _st(url: str, token: str, tmp_path: Path, *selection: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "run",
         f"{url}/openapi.json", "--checks", "all", "--max-examples", "50",
         "--seed", "20261201", *selection,
         "-H", f"Authorization: Bearer {token}", "--no-color",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
        cwd=tmp_path)  # its example database (.schemathesis/) goes there, not in the repo


def test_every_check_passes(make_settings: Callable[..., Settings], db_url: str,
                            tmp_path: Path) -> None:
    settings = make_settings(database_url=db_url)
    token, worker = _token(settings)
    with live_server(settings) as url:
        # a member's token on every route but a worker's; a worker token on those
        done = _st(url, token, tmp_path, "--exclude-path-regex", "^/api/worker")
        # (no stateful phase: a worker token holds no run here, so there is no chain of
        # calls to follow; each operation is fuzzed alone)
        as_worker = _st(url, worker, tmp_path, "--include-path-regex", "^/api/worker",
                        "--phases", "examples,coverage,fuzzing")
    summary = done.stdout[done.stdout.find("Stateful ("):]  # the stateful phase, the summary
    print(summary)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Scenarios:" in summary and "401/403" not in summary  # it ran; the token held
    # the worker token holds no run here, so a run's routes are 403s (or 404s, 422s), and
    # none answers anything its schema does not state
    assert as_worker.returncode == 0, as_worker.stdout[-6000:] + as_worker.stderr[-2000:]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
