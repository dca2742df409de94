"""MLflow's own client, in its own environment, as a lab's training script has it.

neuroreg does not depend on MLflow: its client lives in a virtual environment of its own,
``.cache/mlflow/`` (made once by the first test that needs it, from the package index the
suite was installed from): MLflow whole (its client and its tracking server, ``mlflow
server``, for the import from one), and the trainers that log through it — Lightning's
MLFlowLogger and a Hugging Face Trainer with report_to="mlflow" (and neuroreg's own
NeuroregLogger, from this checkout on PYTHONPATH: its client needs httpx only). One
environment, not one per use: made together they take about 90 s here, apart 134 s
(17 + 53 + 64). Its dependencies could not share neuroreg's: torchattacks pins
``requests~=2.25.1``, MLflow's ``databricks-sdk`` needs ``requests>=2.28.1``. Scripts run
there with the server's URL and a token in MLflow's own variables, unchanged."""

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
ENVIRONMENTS = {
    # the trainers' own torch (the pinned CPU build, from local disk), not neuroreg's venv's:
    # that one holds torchattacks' torchvision, a build for another torch, which
    # torchmetrics imports
    "mlflow": ["torch==2.13.0", "mlflow>=3,<4", "lightning>=2.4", "transformers>=4.45",
               "accelerate>=1.0", "httpx>=0.27"],
    # an S3-speaking server (moto's) for the object-store tests (tests/s3server.py): its
    # `responses` needs requests>=2.30, which torchattacks' pin rules out in neuroreg's
    "s3": ["moto[server]>=5,<6"],
}


def mlflow_python(name: str = "mlflow") -> Path:
    """The environment's python, made on first use (a lock keeps two test workers from
    making it at once)."""
    venv = ROOT / ".cache" / name
    python = venv / "bin" / "python"
    requirements = ENVIRONMENTS[name]
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = venv / ".ready"
        if not ready.exists() or ready.read_text().split() != requirements:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"pip install {requirements} failed:\n{done.stderr[-3000:]}")
            ready.write_text(" ".join(requirements) + "\n")
    return python


def run_script(script: str, url: str, token: str, cwd: Path,
               env: dict[str, str] | None = None, *, raw: bool = False,
               environment_name: str = "mlflow") -> Any:
    """Run ``script`` with MLflow's client pointed at ``url``; the JSON of its last printed
    line (``None`` when it printed none), or with ``raw`` all it printed. Its stderr is
    shown if it fails."""
    path = cwd / "mlflow_script.py"
    path.write_text(script)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environment.update({"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_TOKEN": token,
                        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "NEUROREG_API_URL": url,
                        "NEUROREG_TOKEN": token, "PYTHONPATH": str(ROOT), **(env or {})})
    done = subprocess.run([str(mlflow_python(environment_name)), str(path)], cwd=cwd,
                          env=environment,
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


def api_get(url: str, token: str, path: str, **params: Any) -> Any:
    """A neuroreg API answer (JSON), which must be a 200."""
    import httpx

    res = httpx.get(f"{url}{path}", params=params, headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200, res.text
    return res.json()
