"""ruff on everything, mypy on cli/, core/, server/, worker/ and the client (STYLE.md:
from day one)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff() -> None:
    out = _run("ruff", "check", "cli", "core", "server", "worker", "ml", "neuroreg", "tests",
               "bench", ".ci")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_server_and_worker() -> None:
    out = _run("mypy", "cli", "core", "server", "worker", "neuroreg")
    assert out.returncode == 0, out.stdout + out.stderr
