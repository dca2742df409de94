"""The Celery app's configuration, shared by the API (which only sends) and the worker.

The embedded default uses kombu's filesystem transport, through :mod:`core.broker`
(first in, first out across restarts): messages are files under ``<data_dir>/broker``,
so a worker needs no server. (The SQLAlchemy transport also
works without a server but warns of deprecations under SQLAlchemy 2.1 and polls the
database the API is writing to.) A team sets ``NEUROREG_BROKER_URL=redis://...``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from core.settings import Settings, private_dir

TASK_QUEUES = ("gpu", "cpu")


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,  # outcomes live in SQL, not in a result backend
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "cpu",
        "worker_hijack_root_logger": False,
    }
    if settings.broker.startswith("filesystem"):
        queue_dir = settings.broker_dir / "queue"
        control_dir = settings.broker_dir / "control"
        for d in (queue_dir, control_dir):
            private_dir(d)
        config["broker_transport"] = "core.broker:Transport"
        config["broker_transport_options"] = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "control_folder": str(control_dir),
            "store_processed": False,
        }
    elif settings.broker.startswith("redis"):
        # an unacked (acks_late) task is redelivered after this long; longer than any job
        config["broker_transport_options"] = {"visibility_timeout": 6 * 3600}
    return config


def make_celery(settings: Settings) -> Celery:
    app = Celery("neuroreg")
    app.conf.update(celery_config(settings))
    return app


def send(app: Celery, *, task: str, queue: str, args: list[Any], priority: int = 0) -> str:
    """Send a task by name (the API never imports task code) at ``priority`` (0 first, 9
    last: :attr:`core.kinds.JobKind.priority`); returns the task id."""
    return str(app.send_task(task, args=args, queue=queue, priority=priority).id)


def enqueue(app: Celery, *, task: str, queue: str, run_id: int, priority: int) -> str:
    """Send a run's job."""
    return send(app, task=task, queue=queue, args=[run_id], priority=priority)


def revoke(app: Celery, task_id: str) -> None:
    """Tell workers to drop a task not yet started (best effort: the worker's own check
    of the run's status stops a running one within a second)."""
    app.control.revoke(task_id)
