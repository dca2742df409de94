"""Files at rest are the service user's alone: everything the service writes under its data
directory (the SQLite database and its -wal/-shm, artifacts and their run folders, logs
saved as artifacts, the filesystem queue's messages, the admin token) is 0600 in 0700
folders, with no help from the process's umask; folders and a database left readable by
an older version are tightened; the service's commands set a private umask for what
their children write."""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cli import service
from core.settings import Settings
from server.app import create_app
from tests.conftest import admin_client


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The most permissive usual umask, as a login shell has it: what is private must be
    made private by the code, not by the environment."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def _readable_by_others(root: Path) -> list[str]:
    return [f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p.relative_to(root.parent)}"
            for p in [root, *root.rglob("*")] if p.lstat().st_mode & 0o077]


def _use(api: TestClient) -> None:
    """An upload, a log line saved as logs.txt when the run ends, a queued train run."""
    rid = api.post("/api/runs", json={"kind": "external", "config": {"params": {}}}).json()["id"]
    assert api.put(f"/api/runs/{rid}/artifacts/notes.txt", content=b"x").status_code == 201
    res = api.post(f"/api/runs/{rid}/logs", json={"lines": [{"seq": 0, "line": "hello"}]})
    assert res.status_code == 200
    assert api.post(f"/api/runs/{rid}/finish", json={"status": "succeeded"}).status_code == 200
    res = api.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}})
    assert res.status_code == 201


def test_everything_under_a_fresh_data_dir_is_private(settings: Settings) -> None:
    with admin_client(settings) as api:
        _use(api)
    data = settings.data_dir
    assert (data / "neuroreg.db").exists() and (data / "artifacts" / "1" / "logs.txt").exists()
    assert any((data / "broker" / "queue").glob("*.msg"))  # the train run's message
    assert _readable_by_others(data) == []


def test_an_older_readable_data_dir_is_tightened(
        make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    data = tmp_path / "data"
    for folder in (data, data / "artifacts", data / "broker" / "queue"):
        folder.mkdir(parents=True, mode=0o755)
        folder.chmod(0o755)
    (data / "neuroreg.db").touch(mode=0o644)
    with admin_client(make_settings(data_dir=data)) as api:
        _use(api)
    assert _readable_by_others(data) == []


def test_the_admin_token_file_is_private(settings: Settings) -> None:
    settings.data_dir.mkdir(mode=0o755)
    settings.token_file.write_text("an old token\n")  # left 0644 by an older version
    create_app(settings)
    service._admin_token(settings)
    assert _readable_by_others(settings.data_dir) == []


def test_the_service_commands_run_under_a_private_umask(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the worker (a child of ``neuroreg up``, or exec'd by ``neuroreg worker``)
    writes outside the store's own calls is private too: the umask is inherited."""
    seen: list[int] = []

    def exec_instead(*_: object) -> None:
        seen.append(os.umask(0o022))

    monkeypatch.setattr(os, "execvpe", exec_instead)
    service.cmd_worker(argparse.Namespace(queues="gpu", concurrency=1, pool="solo"), settings)
    assert seen == [0o077]
