"""SLURM jobs of workers over the API: what each job gets (the server's URL, the worker
token and the broker; no database URL, no artifact folder) and what ``neuroreg slurm up``
checks before it submits (the server and the token instead of the database and the
artifact folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from core.slurm import check_reachable, worker_env
from core.store.db import migrate, session_scope
from core.store.models import User
from core.store.users import ensure_admin, issue_token
from tests.livesrv import live_server

pytestmark = pytest.mark.no_numerics


def test_a_job_of_a_worker_over_the_api_gets_no_database_and_checks_the_server(
        settings: Settings, redis_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        ensure_admin(s)
        token = issue_token(s, user=s.query(User).one(), name="cluster", scope="worker")
    monkeypatch.setenv("NEUROREG_DATABASE_URL", "postgresql+psycopg://lab@db/neuroreg")
    folder = tmp_path / "jobs"
    folder.mkdir()
    with live_server(settings) as url:
        login = Settings(data_dir=tmp_path / "login", api_url=url, worker_token=token,
                         broker_url=redis_url)
        env = worker_env(login)
        assert env["NEUROREG_API_URL"] == url and env["NEUROREG_WORKER_TOKEN"] == token
        assert env["NEUROREG_BROKER_URL"] == redis_url
        assert "NEUROREG_DATABASE_URL" not in env and "NEUROREG_ARTIFACT_DIR" not in env
        assert check_reachable(login, folder) == []  # no database, no artifact folder
        wrong = login.model_copy(update={"worker_token": "nrw_revoked"})
        assert check_reachable(wrong, folder) == [
            f"worker token: {url} refused NEUROREG_WORKER_TOKEN (401)"]
    gone = check_reachable(login, folder)
    assert len(gone) == 1 and gone[0].startswith(f"server: cannot reach {url}")
