"""A real one-node Slurm cluster on 127.0.0.1 for the tests: Debian's munge, slurmctld and
slurmd (``.ci/run`` installs them), state and spool under a temporary folder, stopped
afterwards — every daemon it started, munged included.

It needs root (slurmd runs jobs as their users) and the Debian packages; without them
:func:`slurm_cluster` raises :class:`Unavailable` and the tests skip (fail under CI=true).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


class Unavailable(RuntimeError):
    """No Slurm here: what is missing."""


@dataclass(frozen=True)
class Cluster:
    conf: Path       # its slurm.conf; SLURM_CONF for every command
    folder: Path     # state, spool, logs
    partition: str
    node: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True) -> str:
        out = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                             timeout=60, check=False)
        if check and out.returncode:
            raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    def log(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.folder.glob("*.log")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conf(folder: Path, node: str, cpus: int, memory_mb: int) -> str:
    ctl, slurmd = _free_port(), _free_port()
    return f"""\
ClusterName=neuroreg-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctl}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobRequeue=1
KillWait=30
MinJobAge=300
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _munge_ok() -> bool:
    try:
        enc = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=False)
        dec = subprocess.run(["unmunge"], input=enc.stdout, capture_output=True, timeout=10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return enc.returncode == 0 and dec.returncode == 0


def _start_munge(folder: Path) -> int | None:
    """munged as user munge, unless one already answers; its pid when started here."""
    if _munge_ok():
        return None
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    pidfile = run_dir / "munged.pid"
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force"],
                   check=True, timeout=30)
    for _ in range(100):
        if _munge_ok():
            return int(pidfile.read_text()) if pidfile.exists() else None
        time.sleep(0.1)
    raise Unavailable("munged started but munge -n | unmunge fails")


def _stop(pid: int | None, name: str) -> None:
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


@contextlib.contextmanager
def slurm_cluster(folder: Path, *, cpus: int | None = None,
                  memory_mb: int = 8000) -> Iterator[Cluster]:
    """Start munged (if none answers), slurmctld and slurmd on this machine; yield the
    cluster once its node is idle; cancel every job and stop every daemon started here."""
    missing = [d for d in DAEMONS if not shutil.which(d) and not Path(f"/usr/sbin/{d}").exists()]
    missing += [c for c in ("sbatch", "squeue", "scontrol", "munge") if not shutil.which(c)]
    if missing:
        raise Unavailable(f"Slurm is not installed (no {', '.join(missing)}; "
                          "apt-get install slurmctld slurmd slurm-client munge)")
    if os.geteuid() != 0:
        raise Unavailable("a test Slurm cluster needs root (slurmd runs jobs as their users)")
    node = socket.gethostname().split(".")[0]
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(_conf(folder, node, cpus or os.cpu_count() or 1, memory_mb))
    cluster = Cluster(conf=conf, folder=folder, partition="debug", node=node)
    munged = _start_munge(folder)
    started: list[tuple[int | None, str]] = []
    try:
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([f"/usr/sbin/{daemon}", "-f", str(conf)], env=cluster.env,
                           check=True, timeout=30)
            started.append((_pid(folder / f"{daemon}.pid"), daemon))
        deadline = time.monotonic() + 60
        while "idle" not in cluster.run("sinfo", "-h", "-o", "%t", check=False):
            if time.monotonic() > deadline:
                raise Unavailable(f"the Slurm node never became idle\n{cluster.log()}")
            time.sleep(0.2)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.run("scancel", "--full", "--partition", cluster.partition, check=False)
            for _ in range(100):  # let slurmd end its jobs' processes before it stops
                if not cluster.run("squeue", "-h", check=False).strip():
                    break
                time.sleep(0.2)
        for pid, name in reversed(started):
            _stop(pid or _pid(folder / f"{name}.pid"), name)
        _stop(munged, "munged")
