"""The worker's Celery app: ``celery -A worker.app worker -Q gpu,cpu``."""

from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from core.queue import make_celery
from core.settings import get_settings
from worker import shutdown  # noqa: F401 — its signal handlers, before the worker starts

celery_app = make_celery(get_settings())
celery_app.conf.include = ["worker.tasks"]

P = ParamSpec("P")
R = TypeVar("R")


def task(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``celery_app.task(name=…)``, keeping the function's signature for type checking
    (Celery's decorator is untyped); the tasks are sent by name, never called here."""
    return cast(Callable[[Callable[P, R]], Callable[P, R]], celery_app.task(name=name))
