"""MLflow's own client, in its own environment, as a lab's training script has it.

neuroreg does not depend on MLflow: its client lives in a virtual environment of its own
(``.cache/mlflow-client/``, made once by the first test that needs it, with
``pip install mlflow-skinny`` from the package index the suite was installed from). Its
dependencies could not share neuroreg's: torchattacks pins ``requests~=2.25.1``, MLflow's
``databricks-sdk`` needs ``requests>=2.28.1``. Scripts run there with the server's URL and a
token in MLflow's own variables, unchanged."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".cache" / "mlflow-client"
REQUIREMENT = "mlflow-skinny>=3,<4"


def mlflow_python() -> Path:
    """The environment's python, made on first use (a lock keeps two test workers from
    making it at once)."""
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / "mlflow-client.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = VENV / ".ready"
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", REQUIREMENT],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"pip install {REQUIREMENT} failed:\n{done.stderr[-3000:]}")
            ready.write_text(REQUIREMENT + "\n")
    return python


def version() -> str:
    return subprocess.run([str(mlflow_python()), "-c", "import mlflow; print(mlflow.__version__)"],
                          check=True, capture_output=True, text=True).stdout.strip()


def run_script(script: str, url: str, token: str, cwd: Path,
               env: dict[str, str] | None = None, *, raw: bool = False) -> Any:
    """Run ``script`` with MLflow's client pointed at ``url``; the JSON of its last printed
    line (``None`` when it printed none), or with ``raw`` all it printed. Its stderr is
    shown if it fails."""
    path = cwd / "mlflow_script.py"
    path.write_text(script)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environment.update({"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_TOKEN": token,
                        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", **(env or {})})
    done = subprocess.run([str(mlflow_python()), str(path)], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"the MLflow script failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    if raw:
        return done.stdout
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    with contextlib.suppress(IndexError, json.JSONDecodeError):
        return json.loads(lines[-1])
    return None
