"""Celery worker: thin tasks that load a run, call ml through a Recorder, store."""
