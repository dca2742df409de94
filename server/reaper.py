"""The API's periodic passes: the reaper (no run stays ``running`` after its worker
vanished) and retention (the lab's artifact policies, :mod:`core.retention`).

Workers beat every ``heartbeat_s`` (worker/tasks.py). Every ``reaper_interval_s`` the
API requeues running runs whose beat is older than ``stale_after_s`` — a worker killed
outright, a machine that lost power — and fails them after ``max_attempts`` starts. The
requeued task resumes from the run's checkpoint. Several API processes may reap at once:
each run is moved by one conditional UPDATE, so only one of them requeues it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from celery import Celery

from core.kinds import HELD
from core.lifecycle import reap
from core.retention import apply_once
from core.settings import Settings
from core.store.db import session_scope
from core.submit import enqueue_runs

log = logging.getLogger("neuroreg.reaper")


def reap_once(settings: Settings, celery: Celery) -> list[int]:
    """One pass; returns the requeued run ids."""
    with session_scope(settings.db_url) as s:
        runs = [(r.id, r.kind) for r in reap(s, stale_after=settings.stale_after_s,
                                             max_attempts=settings.max_attempts, kinds=HELD)]
    enqueue_runs(celery, settings.db_url, runs)
    for run_id, _ in runs:
        log.warning("run %s lost its worker; requeued", run_id)
    return [r for r, _ in runs]


def retain_once(settings: Settings) -> int:
    """One pass of the retention policies (:mod:`core.retention`); returns how many
    artifacts went."""
    done = apply_once(settings.db_url, settings.artifacts)
    if done.delete:
        log.warning("retention deleted %d artifacts (%d bytes); kept %d that other runs read",
                    len(done.delete), done.bytes_freed, len(done.kept))
    return len(done.delete)


class Every:
    """A daemon thread calling ``step`` every ``interval_s`` seconds (never when 0)."""

    def __init__(self, name: str, interval_s: float, step: Callable[[], object]) -> None:
        self.name, self.interval_s, self.step = name, interval_s, step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        if self.interval_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:  # the database or broker is down: try again next time
                log.exception("%s pass failed", self.name)


def Reaper(settings: Settings, celery: Celery) -> Every:  # noqa: N802 (what app.py starts)
    """:func:`reap_once` every ``reaper_interval_s``."""
    return Every("reaper", settings.reaper_interval_s, lambda: reap_once(settings, celery))


def Retention(settings: Settings) -> Every:  # noqa: N802
    """:func:`retain_once` every ``retention_interval_s`` (0: only when an admin applies)."""
    return Every("retention", settings.retention_interval_s, lambda: retain_once(settings))
