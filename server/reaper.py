"""The reaper: no run stays ``running`` after its worker vanished.

Workers beat every ``heartbeat_s`` (worker/tasks.py). Every ``reaper_interval_s`` the
API requeues running runs whose beat is older than ``stale_after_s`` — a worker killed
outright, a machine that lost power — and fails them after ``max_attempts`` starts. The
requeued task resumes from the run's checkpoint. Several API processes may reap at once:
each run is moved by one conditional UPDATE, so only one of them requeues it.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from core.kinds import HELD
from core.lifecycle import reap
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


class Reaper:
    """A daemon thread running :func:`reap_once` every ``reaper_interval_s``."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self.settings, self.celery = settings, celery
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reaper_interval_s):
            try:
                reap_once(self.settings, self.celery)
            except Exception:  # the database or broker is down: try again next time
                log.exception("reaper pass failed")
