"""System metrics of a running job, sampled from a thread: one home for the worker (which
writes them to the store) and the client (which sends an external run's).

Series, all under ``system/``:

- ``system/cpu_percent``: CPU of the process and its children, in % of one core (as
  ``top`` counts: 250 is two and a half cores busy);
- ``system/rss_mb``: their resident memory, MiB;
- per GPU the process uses (one it holds memory on, by NVML's process list, or whose
  CUDA context torch opened here), by NVML's index ``i`` (nvidia-smi's numbering):
  ``system/gpu<i>_util_percent`` (the device's), ``system/gpu<i>_memory_mb`` (the
  process's, or the device's used memory where NVML lists no processes) and
  ``system/gpu<i>_power_w``.

No NVML (no NVIDIA driver, or ``nvidia-ml-py`` cannot load it): no GPU series, no error.
The step of a sample is whole seconds since ``t0`` (the run's creation): a redelivered
job's samples follow the first attempt's, and a sample sent twice is one point.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "system/"
Point = tuple[str, int, float, float]  # (key, step, value, wall time)


class Sampler:
    """Reads the metrics of process ``pid`` (default: this one) and its children."""

    def __init__(self, pid: int | None = None) -> None:
        import psutil

        self._psutil = psutil
        self.proc = psutil.Process(pid)
        self._cpu: dict[int, Any] = {}  # processes by pid, primed for cpu_percent
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 — no driver, no library, no GPU: no GPU series
            self._nvml = None
        self.sample()  # the first CPU reading of a process is 0: prime them

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None

    def _tree(self) -> list[Any]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except self._psutil.Error:
            return [self.proc]

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        cpu = rss = 0.0
        seen: dict[int, Any] = {}
        for p in self._tree():
            p = self._cpu.get(p.pid, p)  # the same object: cpu_percent is since its last call
            try:
                with p.oneshot():
                    cpu += p.cpu_percent(None)
                    rss += p.memory_info().rss
                seen[p.pid] = p
            except self._psutil.Error:  # a child that just ended
                continue
        self._cpu = seen
        out[f"{PREFIX}cpu_percent"] = cpu
        out[f"{PREFIX}rss_mb"] = rss / 2**20
        if self._nvml is not None:
            try:
                out.update(self._gpus(set(seen)))
            except Exception:  # noqa: BLE001 — a GPU that fell off the bus: no sample
                log.debug("no GPU sample", exc_info=True)
        return out

    def _gpus(self, pids: set[int]) -> dict[str, float]:
        nv = self._nvml
        mine = _torch_uuids()
        out: dict[str, float] = {}
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            procs = []
            with contextlib.suppress(nv.NVMLError):
                procs = list(nv.nvmlDeviceGetComputeRunningProcesses(h))
            held = [p for p in procs if p.pid in pids]
            uuid = nv.nvmlDeviceGetUUID(h)
            uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
            if not held and uuid.removeprefix("GPU-") not in mine:
                continue
            k = f"{PREFIX}gpu{i}_"
            with contextlib.suppress(nv.NVMLError):
                out[k + "util_percent"] = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
            used = [p.usedGpuMemory for p in held if p.usedGpuMemory is not None]
            if used:
                out[k + "memory_mb"] = sum(used) / 2**20
            else:
                with contextlib.suppress(nv.NVMLError):
                    out[k + "memory_mb"] = nv.nvmlDeviceGetMemoryInfo(h).used / 2**20
            with contextlib.suppress(nv.NVMLError):
                out[k + "power_w"] = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
        return out

    @property
    def gpu(self) -> bool:
        """Whether NVML loaded (GPU series are possible)."""
        return self._nvml is not None


def _torch_uuids() -> set[str]:
    """The UUIDs of the CUDA devices torch has opened in this process (none unless the
    job imported torch and touched CUDA)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return set()
    out = set()
    for d in range(torch.cuda.device_count()):
        with contextlib.suppress(Exception):
            out.add(str(torch.cuda.get_device_properties(d).uuid).removeprefix("GPU-"))
    return out


class SystemMetrics:
    """Samples every ``interval`` s from a thread and hands each sample's points to
    ``send`` (its errors are logged, never raised) until :meth:`stop`; a context manager.

    Args:
        send: takes a list of ``(key, step, value, wall_time)``.
        t0: the time steps count from (the run's creation, a Unix time).
        interval: seconds between samples (at least 1: steps are whole seconds).
    """

    def __init__(self, send: Callable[[list[Point]], Any], *, t0: float,
                 interval: float = 5.0, pid: int | None = None) -> None:
        if interval < 1:
            raise ValueError(f"interval: {interval} s; samples are at least 1 s apart")
        self.send, self.t0, self.interval = send, t0, interval
        self.sampler = Sampler(pid)
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="system-metrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.take()

    def take(self) -> list[Point]:
        """One sample, sent now; returns its points."""
        now = time.time()
        step = max(0, int(now - self.t0))
        points = [(k, step, float(v), now) for k, v in self.sampler.sample().items()]
        try:
            self.send(points)
        except Exception:  # noqa: BLE001 — a lost sample; the job goes on
            if not self._warned:
                log.warning("could not record system metrics", exc_info=True)
                self._warned = True
        return points

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sampler.close()

    def __enter__(self) -> SystemMetrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
