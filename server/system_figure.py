"""The run page's System figure: a run's ``system/*`` series (:mod:`neuroreg.system`)
as panels over wall-clock time, one per measure, a trace per GPU."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.store.metrics import read_series, summarize_keys
from core.store.models import Run
from neuroreg.system import PREFIX

# (measure, panel title, y-axis title); a key is system/<measure> or system/gpu<i>_<measure>
PANELS = (
    ("cpu_percent", "CPU", "% of one core"),
    ("rss_mb", "Resident memory", "MiB"),
    ("util_percent", "GPU utilization", "%"),
    ("memory_mb", "GPU memory", "MiB"),
    ("power_w", "GPU power", "W"),
)
_GPU = re.compile(rf"^{re.escape(PREFIX)}gpu(\d+)_(\w+)$")


def system_figure(session: Session, run: Run, *, max_points: int = 2000) -> dict[str, Any]:
    """``panels``: ``[{"measure", "title", "y_title", "traces": [{"key", "name", "x",
    "y"}]}]`` in :data:`PANELS` order, only those with data; x are UTC ISO times (a
    sample's step is whole seconds since the run's creation)."""
    keys = [k["key"] for k in summarize_keys(session, run.id) if k["key"].startswith(PREFIX)]
    t0 = run.created_at
    by_measure: dict[str, list[dict[str, Any]]] = {}
    for key in sorted(keys, key=_gpu_order):
        m = _GPU.match(key)
        measure, name = (m[2], f"GPU {m[1]}") if m else (key[len(PREFIX):], "worker + children")
        s = read_series(session, run.id, key, max_points=max_points)
        x = [(t0 + timedelta(seconds=step)).astimezone(UTC).isoformat() for step in s.steps]
        by_measure.setdefault(measure, []).append({"key": key, "name": name, "x": x,
                                                   "y": s.values})
    return {"title": "System", "panels": [
        {"measure": measure, "title": title, "y_title": unit, "traces": by_measure[measure]}
        for measure, title, unit in PANELS if measure in by_measure]}


def _gpu_order(key: str) -> tuple[int, str]:
    m = _GPU.match(key)
    return (int(m[1]), key) if m else (-1, key)
