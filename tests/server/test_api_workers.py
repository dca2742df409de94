"""``neuroreg api --workers 2``: two uvicorn processes answer on one port against
PostgreSQL, and the points of one run written through both are each stored once.

Which process answered a request is read from the outside (psutil: the process holding
the server end of the client's connection), so the API reports nothing about itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import _truncate
from tests.livesrv import free_port

pytestmark = [pytest.mark.integration, pytest.mark.no_numerics]

ROOT = Path(__file__).resolve().parents[2]


def _children(parent: psutil.Process) -> list[psutil.Process]:
    """uvicorn's server processes (spawned; not multiprocessing's resource tracker)."""
    return [c for c in parent.children()
            if any("spawn_main" in part for part in c.cmdline())]


@pytest.fixture
def two_apis(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str, list[psutil.Process]]]:
    """(url, admin token, the two server processes) of ``neuroreg api --workers 2``."""
    _truncate(pg_url)
    port = free_port()
    env = dict(os.environ, NEUROREG_DATA_DIR=str(tmp_path / "data"),
               XDG_STATE_HOME=str(tmp_path / "state"),
               NEUROREG_DATABASE_URL=pg_url, NEUROREG_PORT=str(port),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "api", "--workers", "2"],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # readiness: both processes through startup
        while log.read_text(errors="replace").count("Application startup complete") < 2:
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        kids = _children(psutil.Process(proc.pid))
        assert len(kids) == 2, log.read_text(errors="replace")
        yield url, token, kids
    finally:
        proc.send_signal(signal.SIGTERM)  # uvicorn's parent stops its processes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        from core.store.db import engine_for

        engine_for(pg_url).dispose()


def _owner(kids: list[psutil.Process], port: int, res: httpx.Response) -> int | None:
    """The process holding the server end of the connection ``res`` came on."""
    client_port = res.extensions["network_stream"].get_extra_info("client_addr")[1]
    for kid in kids:
        for conn in kid.net_connections(kind="tcp"):
            if conn.laddr.port == port and conn.raddr and conn.raddr.port == client_port:
                return kid.pid
    return None


def test_two_api_processes_share_a_port_and_store_each_point_once(two_apis) -> None:  # type: ignore[no-untyped-def]
    url, token, kids = two_apis
    port = int(url.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {token}"}
    clients: dict[int, list[httpx.Client]] = {k.pid: [] for k in kids}
    try:
        with httpx.Client(base_url=url, headers=headers) as api:
            run_id = api.post("/api/runs", json={"kind": "external", "name": "two"}
                              ).json()["id"]
        # one connection per client, kept alive: each client talks to one process
        for _ in range(200):
            if all(len(c) >= 2 for c in clients.values()):
                break
            client = httpx.Client(base_url=url, headers=headers)
            res = client.get("/api/health")
            assert res.json() == {"status": "ok"}
            pid = _owner(kids, port, res)
            assert pid is not None
            clients[pid].append(client)
        assert all(len(c) >= 2 for c in clients.values()), {p: len(c) for p, c in
                                                              clients.items()}
        chosen = [c for cs in clients.values() for c in cs[:2]]  # 2 per process
        for i, client in enumerate(chosen):  # steps 0..399, 100 through each connection
            res = client.post(f"/api/runs/{run_id}/metrics", json={"points": [
                {"key": "loss", "step": s, "value": float(s)} for s in range(100 * i,
                                                                             100 * i + 100)]})
            assert res.status_code == 200 and res.json()["accepted"] == 100, res.text
        # the same steps again, each batch through a connection of the other process
        for i, client in enumerate(reversed(chosen)):
            res = client.post(f"/api/runs/{run_id}/metrics", json={"points": [
                {"key": "loss", "step": s, "value": -1.0} for s in range(100 * i,
                                                                          100 * i + 100)]})
            assert res.status_code == 200, res.text
        for client in chosen:  # every process reads every point
            series = client.get(f"/api/runs/{run_id}/metrics/loss",
                                params={"max_points": 1000}).json()
            assert series["total"] == 400
            assert series["steps"] == list(range(400))
            assert series["values"] == [float(s) for s in range(400)]  # the first writes
        assert {k.pid for k in kids} == set(clients)
        assert all(k.is_running() for k in kids)
    finally:
        for cs in clients.values():
            for client in cs:
                client.close()
