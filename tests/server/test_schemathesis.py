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

pytestmark = pytest.mark.no_numerics

CONFIG = Path(__file__).with_name("schemathesis.toml")
TOKEN_ID = 2_000_000_007  # an id the fuzzer does not guess: it may revoke any other token


def _token(settings: Settings) -> str:
    """The admin's token for the run, at an id far from the ones generated."""
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        ensure_admin(s)
        admin = s.query(User).filter_by(name="admin").one()
        token = "nr_schemathesis-" + "x" * 32
        s.add(ApiToken(id=TOKEN_ID, user_id=admin.id, name="schemathesis",
                       token_hash=hash_token(token)))
    return token


def test_every_check_passes(make_settings: Callable[..., Settings], db_url: str,
                            tmp_path: Path) -> None:
    settings = make_settings(database_url=db_url)
    token = _token(settings)
    with live_server(settings) as url:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "run",
             f"{url}/openapi.json", "--checks", "all", "--max-examples", "50",
             "--seed", "20261201",
             "-H", f"Authorization: Bearer {token}", "--no-color",
             "--report", "junit", "--report-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=900,
            cwd=tmp_path)  # its example database (.schemathesis/) goes there, not in the repo
    summary = done.stdout[done.stdout.find("Stateful ("):]  # the stateful phase, the summary
    print(summary)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Scenarios:" in summary and "401/403" not in summary  # it ran; the token held


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
