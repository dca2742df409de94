"""``neuroreg up`` leaves nothing behind: SIGTERM, SIGINT and SIGHUP stop the API and
every process of its worker (the Celery main process and its pool)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.livesrv import free_port

pytestmark = pytest.mark.no_numerics


def _marked(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (inherited by every child,
    also one re-parented to init after its parent died)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if f"NEUROREG_TEST_MARK={marker}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _read_until(proc: subprocess.Popen[bytes], wanted: list[bytes], timeout: float) -> bytes:
    """Everything ``proc`` prints until each of ``wanted`` has appeared."""
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not all(w in seen for w in wanted):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise AssertionError(f"`neuroreg up` did not start:\n{seen.decode()[-3000:]}")
            if sel.select(timeout=left):
                chunk = os.read(proc.stdout.fileno(), 65536)
                seen += chunk
    return seen


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
def test_up_stops_every_process_it_started(tmp_path: Path, sig: int) -> None:
    marker = uuid.uuid4().hex
    port = free_port()
    env = {**os.environ, "NEUROREG_DATA_DIR": str(tmp_path / "data"),
           "NEUROREG_PORT": str(port), "NEUROREG_TEST_MARK": marker,
           "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("NEUROREG_DATABASE_URL", None)
    env.pop("NEUROREG_BROKER_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "up", "--no-demo"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _read_until(proc, [b"Uvicorn running on", b"ready."], timeout=120)
        started = _marked(marker)
        assert proc.pid in started and len(started) >= 3, started  # up, celery, its pool
        # while it runs, a client naming no data dir finds its admin token by its URL
        servers = tmp_path / "state" / "neuroreg" / "servers.json"
        assert json.loads(servers.read_text()) == {f"http://127.0.0.1:{port}": {
            "data_dir": str(tmp_path / "data"), "pid": proc.pid}}
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
        assert _marked(marker) == []
        assert json.loads(servers.read_text()) == {}  # and forgets it when it stops
    finally:
        for pid in _marked(marker):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
