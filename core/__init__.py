"""The run core every process imports — the API, the workers, the CLI's service commands:
settings, the store (models, runs, metrics, artifacts, logs, query, rollups, webhooks,
users, audit), migrations, run kinds and their input checks, studies, the queue and the
embedded broker. No HTTP here: ``server/`` is the API built on it, ``worker/`` the tasks."""
