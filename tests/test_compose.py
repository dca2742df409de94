"""docker-compose.yml has what a team deployment needs; `docker compose config` when present.
The Dockerfile copies every package pyproject.toml installs and builds a CPU image (the api,
CPU workers) and a CUDA one (GPU workers). No Docker engine is needed: nothing is built."""

import fnmatch
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from setuptools import find_packages

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


def test_the_remote_worker_has_no_database_and_no_shared_volume_and_minio_is_there() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    remote = services["worker-remote"]
    env = remote["environment"]
    assert not any(k in env for k in ("NEUROREG_DATABASE_URL", "NEUROREG_ARTIFACT_DIR"))
    assert env["NEUROREG_API_URL"] == "http://api:8000"
    assert env["NEUROREG_WORKER_TOKEN"].startswith("${NEUROREG_WORKER_TOKEN")
    assert env["NEUROREG_BROKER_URL"].startswith("redis://redis")
    assert not any(v.split(":")[0] == "artifacts" for v in remote["volumes"])
    assert remote["profiles"] == ["remote"] and services["minio"]["profiles"] == ["s3"]
    api = services["api"]["environment"]
    assert api["NEUROREG_S3_BUCKET"] == "${NEUROREG_S3_BUCKET:-}"  # files unless asked
    assert api["NEUROREG_S3_ENDPOINT_URL"].endswith("http://minio:9000}")


def test_compose_runs_the_gpu_worker_on_the_cuda_image_and_the_rest_on_the_cpu_one() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["api"]["build"] == {"context": ".", "target": "cpu"}
    assert services["worker-gpu"]["build"] == {"context": ".", "target": "cuda"}
    images = {name: services[name]["image"] for name in ("api", "worker-cpu", "worker-gpu")}
    assert images == {"api": "neuroreg:cpu", "worker-cpu": "neuroreg:cpu",
                      "worker-gpu": "neuroreg:cuda"}
    # worker-cpu has no build of its own: it runs the image the api's build tags
    assert "build" not in services["worker-cpu"]
    assert set(_dockerfile().stages) >= {"cpu", "cuda"}


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


def test_docker_compose_config_has_the_gpu_worker_on_cuda_with_its_gpu() -> None:
    compose = _compose_command()
    if compose is None:
        unavailable("a docker compose client")
    out = subprocess.run(
        [*compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    gpu = services["worker-gpu"]
    assert gpu["build"]["target"] == "cuda" and gpu["image"] == "neuroreg:cuda"
    assert Path(gpu["build"]["context"]) == ROOT
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert int(device["count"]) == 1
    assert services["api"]["build"]["target"] == "cpu"
    assert services["api"]["image"] == services["worker-cpu"]["image"] == "neuroreg:cpu"
    for name in ("api", "worker-cpu"):
        assert "deploy" not in services[name], f"{name} reserves a device"


# --- the Dockerfile, read as the builder reads it ---------------------------------------


@dataclass
class _Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, args)

    def args(self) -> dict[str, str]:
        """This stage's ARG defaults (an ARG without one names a global ARG)."""
        out: dict[str, str] = {}
        for op, rest in self.instructions:
            if op == "ARG" and "=" in rest:
                k, v = rest.split("=", 1)
                out[k.strip()] = v.strip()
        return out

    def runs(self) -> list[str]:
        return [rest for op, rest in self.instructions if op == "RUN"]


@dataclass
class _Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, _Stage]

    def expand(self, stage: _Stage, text: str) -> str:
        env = {**self.global_args, **stage.args()}
        return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                      lambda m: env.get(m[1] or m[2], m[0]), text)


def _dockerfile() -> _Dockerfile:
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    logical = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    global_args: dict[str, str] = {}
    stages: dict[str, _Stage] = {}
    current: _Stage | None = None
    for line in logical.splitlines():
        if not line.strip():
            continue
        op, _, rest = line.strip().partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, re.I)
            assert m, f"every stage is named: FROM {rest}"
            current = stages[m[2]] = _Stage(name=m[2], base=m[1])
        elif current is None:
            assert op == "ARG", f"{op} before the first FROM"
            k, _, v = rest.partition("=")
            global_args[k.strip()] = v.strip()
        else:
            current.instructions.append((op, rest))
    return _Dockerfile(global_args, stages)


def _copies(stage: _Stage) -> list[tuple[list[str], str, dict[str, str]]]:
    """Each COPY as (sources, destination, flags)."""
    out = []
    for op, rest in stage.instructions:
        if op == "COPY":
            words = shlex.split(rest)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            out.append((paths[:-1], paths[-1], flags))
    return out


def _context_copies(df: _Dockerfile) -> set[str]:
    """Every path copied from the build context (not from another stage), normalized."""
    return {
        src.rstrip("/").removeprefix("./")
        for stage in df.stages.values()
        for srcs, _, flags in _copies(stage)
        if "from" not in flags
        for src in srcs
    }


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_dockerfile_copies_every_package_pyproject_installs() -> None:
    tool = _pyproject()["tool"]["setuptools"]
    include = tool["packages"]["find"]["include"]
    installed = {p.split(".")[0] for p in find_packages(where=str(ROOT), include=include)}
    assert {"server", "worker", "ml", "frontend", "neuroreg"} <= installed
    copied = _context_copies(_dockerfile())
    assert installed <= copied, f"not copied into the image: {sorted(installed - copied)}"
    # the build reads these: the project's metadata and its readme (pyproject's `readme`)
    assert {"pyproject.toml", _pyproject()["project"]["readme"]} <= copied
    for package, patterns in tool["package-data"].items():
        for pattern in patterns:
            where = Path(package.replace(".", "/"), pattern).parent
            assert where.parts[0] in copied, f"{package}'s data {pattern} is not copied"
            assert list(ROOT.glob(f"{package.replace('.', '/')}/{pattern}")), \
                f"{package}'s data {pattern} matches no file"


def test_dockerfile_sends_the_builder_what_it_copies() -> None:
    """.dockerignore keeps the venv and caches out of the context, and none of the copies."""
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    assert ".venv" in patterns
    for copied in _context_copies(_dockerfile()):
        for pattern in patterns:
            assert not fnmatch.fnmatch(copied, pattern.removeprefix("**/")), (copied, pattern)


def test_dockerfile_cpu_and_cuda_targets_install_their_torch_before_the_project() -> None:
    df = _dockerfile()
    assert {"cpu", "cuda"} <= set(df.stages)
    indexes = {}
    for name in ("cpu", "cuda"):
        stage = df.stages[name]
        # the same code in both: the project from the stage that copies it
        (copy,) = _copies(stage)
        assert "from" in copy[2] and _copies(df.stages[copy[2]["from"]])
        runs = [df.expand(stage, r) for r in stage.runs()]
        torch_at = next(i for i, r in enumerate(runs) if re.search(r"pip install.*torch==", r))
        project_at = next(i for i, r in enumerate(runs) if re.search(r"pip install.* \.(\s|$)", r))
        assert torch_at < project_at, f"{name}: torch is installed after the project"
        torch_run, project_run = runs[torch_at], runs[project_at]
        assert "--no-cache-dir" in torch_run and "--no-cache-dir" in project_run
        (index,) = re.findall(r"--index-url[ =](\S+)", torch_run)
        indexes[name] = index
        # the project's install holds torch (and torchvision) at the version just installed
        assert "--constraint" in project_run
        for pin in re.findall(r"torch(?:vision)?==\S+", torch_run):
            assert pin.split("==")[1] in project_run, f"{name}: {pin} is not held"
        assert "--index-url" not in project_run  # the rest of the dependencies from PyPI
        last_user = [rest for op, rest in stage.instructions if op == "USER"][-1:]
        assert last_user == ["neuroreg"], f"{name} runs as root"
    assert indexes["cpu"] == "https://download.pytorch.org/whl/cpu"
    # PyPI's Linux torch is a CUDA build, as are PyTorch's cuXYZ indexes; never the CPU one
    assert re.fullmatch(
        r"https://pypi\.org/simple/?|https://download\.pytorch\.org/whl/cu\d+", indexes["cuda"]
    ), indexes["cuda"]
    assert "whl/cpu" not in " ".join(df.expand(df.stages["cuda"], r)
                                     for r in df.stages["cuda"].runs())
    # and each build checks the torch it ended with
    assert any("torch.version.cuda is None" in r for r in df.stages["cpu"].runs())
    assert any(re.search(r"assert torch\.version\.cuda\b(?! is None)", r)
               for r in df.stages["cuda"].runs())


def test_dockerfile_torch_is_the_readmes_and_within_pyprojects_range() -> None:
    df = _dockerfile()
    torch, vision = Version(df.global_args["TORCH_VERSION"]), \
        Version(df.global_args["TORCHVISION_VERSION"])
    (req,) = [Requirement(r) for r in _pyproject()["project"]["dependencies"]
              if Requirement(r).name == "torch"]
    assert req.specifier.contains(torch), (req, torch)
    readme = "".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    assert set(re.findall(r"pip install torch==(\S+)", readme)) == {str(torch)}
    # torchvision 0.(N+15) is built for torch 2.N
    assert (vision.major, vision.minor) == (0, torch.minor + 15), (torch, vision)
    assert {"TORCH_VERSION", "TORCHVISION_VERSION"} <= set(df.global_args)


def test_dockerfile_common_base_keeps_the_unprivileged_user_data_dir_and_command() -> None:
    df = _dockerfile()
    base = df.stages["base"]
    assert base.base.startswith("python:3.11")
    ops = dict(base.instructions)
    assert "useradd" in ops["RUN"] and "/data" in ops["RUN"]
    assert ops["ENV"] == "NEUROREG_DATA_DIR=/data"
    assert ops["EXPOSE"] == "8000"
    assert ops["CMD"] == '["neuroreg", "api"]'
    assert df.stages["cpu"].base == df.stages["cuda"].base == "base"
    # the last stage is what a plain `docker build .` makes
    assert list(df.stages)[-1] == "cuda"
