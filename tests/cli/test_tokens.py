"""``neuroreg tokens create NAME --worker`` against a live server: the worker token it
prints claims a run over /api/worker and is refused on the member routes; a member's
``--worker`` is refused in one line; ``neuroreg tokens`` lists each token's scope."""

from __future__ import annotations

import json

import httpx
import pytest

from cli import main
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import User
from core.store.runs import create_run
from tests.cli.conftest import Server


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_create_worker_prints_a_token_that_acts_only_as_a_worker(
        server: Server, settings: Settings, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, admin = server.url, server.token
    assert main(["tokens", "create", "gpu-box", "--worker"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = "worker token 2 (gpu-box), shown once: "
    assert out[0].startswith(head)
    token = out[0].removeprefix(head)
    assert token.startswith("nrw_")
    assert out[1:] == [
        "a worker on another machine needs no database, only the broker "
        "(NEUROREG_BROKER_URL) and:",
        f"  NEUROREG_API_URL={url} NEUROREG_WORKER_TOKEN={token} neuroreg worker"]

    with session_scope(settings.db_url) as s:
        run = create_run(s, owner=s.query(User).one(), kind="train", name="t", config={}).id
    claimed = httpx.post(f"{url}/api/worker/runs/{run}/claim", json={"worker": "w1@box"},
                         headers=_bearer(token))
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["kind"] == "train"
    assert httpx.get(f"{url}/api/worker/runs/{run}", headers=_bearer(token)
                     ).json()["status"] == "running"
    refused = httpx.get(f"{url}/api/runs", headers=_bearer(token))
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("a worker token acts only as a worker")
    assert main(["tokens"]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(t[0], t[1], t[2]) for t in listed] == [("1", "first-start", "member"),
                                                   ("2", "gpu-box", "worker")]
    assert all(t[-1] == "active" for t in listed)
    # a member token (the default) is no worker
    assert main(["tokens", "create", "laptop"]) == 0
    member = capsys.readouterr().out.split(": ", 1)[1].strip()
    assert member.startswith("nr_") and not member.startswith("nrw_")
    assert httpx.post(f"{url}/api/worker/runs/{run}/claim", json={"worker": "w2@box"},
                      headers=_bearer(member)).status_code == 403
    assert httpx.get(f"{url}/api/runs", headers=_bearer(member)).status_code == 200
    assert httpx.get(f"{url}/api/runs", headers=_bearer(admin)).status_code == 200
    # the CLI with the worker token as NEUROREG_TOKEN says why in one line
    monkeypatch.setenv("NEUROREG_TOKEN", token)
    assert main(["runs"]) == 1
    assert capsys.readouterr().err.startswith(
        "error 403: a worker token acts only as a worker (/api/worker/...)")


def test_a_members_worker_token_is_refused_in_one_line(
        server: Server, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["users", "add", "eve"]) == 0
    eve = capsys.readouterr().out.splitlines()[1].rsplit(" ", 1)[1]
    monkeypatch.setenv("NEUROREG_TOKEN", eve)
    assert main(["tokens", "create", "box", "--worker"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error 403: only an admin may issue worker tokens\n"
    assert main(["tokens", "list", "--json"]) == 0
    assert [(t["name"], t["scope"]) for t in json.loads(capsys.readouterr().out)] == [
        ("first", "member")]
    assert main(["tokens", "create", "laptop"]) == 0  # her member tokens she makes
    assert capsys.readouterr().out.startswith("token ")
