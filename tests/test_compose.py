"""docker-compose.yml has what a team deployment needs; `docker compose config` when present."""

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parent.parent


def test_compose_services_healthchecks_gpu_and_shared_volume() -> None:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"postgres", "redis", "api", "worker-gpu", "worker-cpu"} <= set(services)
    queues = {name: services[name]["command"][services[name]["command"].index("--queues") + 1]
              for name in ("worker-gpu", "worker-cpu")}
    assert queues == {"worker-gpu": "gpu", "worker-cpu": "cpu"}
    gpu_cmd = services["worker-gpu"]["command"]
    assert gpu_cmd[gpu_cmd.index("--concurrency") + 1] == "1"  # one task per GPU
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"
    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert services["api"]["volumes"] == services["worker-gpu"]["volumes"] \
        == services["worker-cpu"]["volumes"]
    env = services["api"]["environment"]
    assert (
        env["NEUROREG_DATABASE_URL"].startswith("postgresql")
        and "@postgres:" in env["NEUROREG_DATABASE_URL"]
    )
    assert env["NEUROREG_BROKER_URL"].startswith("redis://redis")
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (ROOT / "Dockerfile").is_file()


def _compose_command() -> list[str] | None:
    """Docker's compose plugin, else Debian's docker-compose (which .ci/run installs)."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_validates() -> None:
    compose = _compose_command()
    if compose is None:
        unavailable("a docker compose client")
    out = subprocess.run(
        [*compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
