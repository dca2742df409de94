"""A worker told to shut down hands its running run back to the queue.

With ``NEUROREG_REQUEUE_ON_SHUTDOWN`` (every SLURM job's worker has it), a warm shutdown —
SIGTERM from ``scontrol requeue``, ``scancel`` or a time limit, or SIGUSR2, Slurm's
warning ahead of a time limit or a preemption — makes the recorder's ``should_stop``
true: the running task stops at its next step, and :func:`worker.tasks.execute` puts its
run back in the queue, to resume from its checkpoint in another worker. Without it a
warm shutdown lets the task finish first, as Celery does.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from celery.signals import worker_init, worker_shutting_down

from core.settings import get_settings

REQUESTED = threading.Event()


def requested() -> bool:
    """True once this worker is shutting down and hands its runs back."""
    return REQUESTED.is_set()


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _shutting_down(**_: Any) -> None:
    if get_settings().requeue_on_shutdown:
        REQUESTED.set()


@worker_init.connect  # type: ignore[untyped-decorator]
def _usr2_is_a_warm_shutdown(**_: Any) -> None:
    """SIGUSR2 (Slurm's ``--signal`` warning) would kill the worker outright; with
    requeue on shutdown it starts a warm shutdown, as SIGTERM does."""
    if not get_settings().requeue_on_shutdown:
        return

    def handler(signum: int, frame: Any) -> None:
        REQUESTED.set()
        os.kill(os.getpid(), signal.SIGTERM)  # Celery's own warm shutdown

    signal.signal(signal.SIGUSR2, handler)
