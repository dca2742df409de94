"""The worker's Celery app: ``celery -A worker.app worker -Q gpu,cpu``."""

from server.queue import make_celery
from server.settings import get_settings

celery_app = make_celery(get_settings())
celery_app.conf.include = ["worker.tasks"]
