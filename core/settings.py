"""Deployment configuration: one ``Settings`` per process, from ``NEUROREG_*`` variables."""

from __future__ import annotations

import contextlib
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def private_dir(path: Path) -> Path:
    """``path`` as a folder only this user may enter: created 0700 (its missing parents
    with it), or, when it exists and is ours, with what others may do taken away. What
    the service keeps (the database, artifacts, the queue's messages, tokens) is not for
    other accounts on the machine."""
    for folder in reversed([f for f in (path, *path.parents) if not f.exists()]):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        folder.chmod(0o700)  # whatever the umask
    return owner_only(path)


def private_file(path: Path) -> Path:
    """``path`` created empty as a file only this user may read (0600), or, when it exists
    and is ours, with what others may do taken away."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return owner_only(path)


def owner_only(path: Path) -> Path:
    """Clear the group's and others' bits of ``path`` if it is ours (never adds one: a
    folder left read-only stays so); a file system that refuses (read-only) keeps it."""
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        with contextlib.suppress(OSError):
            path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
    return path


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "neuroreg"


class Settings(BaseSettings):
    """Everything a deployment sets. Unset values derive from ``data_dir``.

    The embedded default keeps the SQLite database, the artifact folder and the
    filesystem broker's queue under one ``data_dir``.
    """

    model_config = SettingsConfigDict(env_prefix="NEUROREG_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str = ""
    artifact_dir: Path | None = None
    # artifacts in an S3-compatible object store (core/store/objects.py) instead of
    # artifact_dir: its bucket, the endpoint for anything but AWS (MinIO:
    # http://minio:9000), a key prefix, and how long the download and upload URLs the API
    # hands out live. Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    # where workers and browsers reach the store, if not at s3_endpoint_url (the compose
    # file's api reaches http://minio:9000, a browser http://localhost:9000): the signed
    # URLs name it
    s3_public_url: str = ""
    s3_prefix: str = ""
    s3_url_ttl_s: int = Field(default=300, ge=10, le=7 * 24 * 3600)
    # recordings a similarity run may read (config.recording is relative to it)
    recordings_dir: Path | None = None
    # CIFAR archives for train runs (cifar-10-python.tar.gz, cifar-100-python.tar.gz)
    datasets_dir: Path | None = None
    # networks a cnn-features target may read (config.features.weights is relative to it)
    models_dir: Path | None = None
    broker_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # a JSON body's limit where its route sets none (a metric or log batch sets its own:
    # server/routes/metrics.py, logs.py); past it a 413, before the body is read
    max_request_bytes: int = Field(default=1024**2, ge=1024)
    # artifact uploads (PUT /api/runs/{id}/artifacts/{name}) stream to disk up to this
    max_upload_bytes: int = Field(default=4 * 1024**3, ge=1024)
    # what the API may decode one stored file to for a view (a similarity matrix, an
    # S_CNN overview), and hold of such files at once; a file that would take more is a 422
    max_view_bytes: int = Field(default=1024**3, ge=1024**2)
    # a study's report (GET /api/studies/{id}/report) draws its figures in this headless
    # chromium and prints their PDFs; without it that route is a 503 saying so
    chromium: str = "/usr/bin/chromium"
    # liveness: workers beat every heartbeat_s; the API's reaper requeues a running run
    # whose beat is older than stale_after_s (failing it after max_attempts starts)
    heartbeat_s: float = Field(default=10.0, gt=0)
    stale_after_s: float = Field(default=120.0, gt=0)
    reaper_interval_s: float = Field(default=30.0, gt=0)
    # the API applies the lab's artifact retention policies (core/retention.py) every
    # retention_interval_s; 0: only when an admin applies them (POST /api/retention/apply)
    retention_interval_s: float = Field(default=3600.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    # a run's captured log (stdout, stderr, logging; lines a client sends) holds at most
    # this many bytes; past it lines are dropped and one marker line counts them
    log_max_bytes: int = Field(default=4 * 1024**2, ge=1024)
    # seconds between a running job's system/* samples (CPU, memory, GPU); 0: none
    system_metrics_s: float = Field(default=5.0, ge=0)
    # webhooks: the API's dispatcher sends due deliveries every webhook_interval_s, each
    # attempt (lookup, connect, TLS, send, the answer's status line) ending by
    # webhook_timeout_s in all; a failed one is retried after the next of
    # webhook_backoff_s (the last repeating), and failed for good after
    # webhook_max_attempts attempts
    webhook_interval_s: float = Field(default=2.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300)
    webhook_backoff_s: tuple[float, ...] = Field(default=(10.0, 30.0, 120.0, 600.0, 3600.0),
                                                 min_length=1)
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    # deliveries one API process sends at once, and of those one member's hooks at most
    # (a slow receiver holds only its owner's share); hooks a member may have
    webhook_workers: int = Field(default=8, ge=1, le=256)
    webhook_workers_per_member: int = Field(default=2, ge=1, le=256)
    webhook_max_per_member: int = Field(default=20, ge=1, le=10_000)
    # hooks may reach loopback and private-network addresses (a receiver on this host or
    # the lab's LAN); off, only public ones. Link-local (cloud metadata), multicast and
    # reserved addresses never
    webhook_allow_private: bool = False
    # the Fernet key webhook secrets are sealed with in the database (see
    # core/secretbox.py); default: <data_dir>/secret.key, made on first use. Never
    # passed on to workers, never shown
    secret_key: str = Field(default="", repr=False, exclude=True)
    # a worker told to shut down (SIGTERM: a SLURM requeue, preemption or time limit)
    # stops its running task at the next step and puts the run back in the queue, to
    # resume from its checkpoint elsewhere; off, it lets the task finish first
    requeue_on_shutdown: bool = False
    # `neuroreg slurm up` defaults (its flags override them): see core/slurm.py
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    slurm_time: str = "4:00:00"
    slurm_workers: int = Field(default=1, ge=1, le=10_000)
    slurm_gpus_per_worker: int = Field(default=1, ge=0, le=64)
    slurm_cpus_per_worker: int | None = Field(default=None, ge=1, le=1024)
    slurm_mem: str | None = None
    slurm_array: bool = False
    slurm_signal_delay_s: int = Field(default=120, ge=10, le=3600)
    # shell lines run in the job before the worker starts (JSON list: ["module load cuda"])
    slurm_setup: tuple[str, ...] = ()
    # the job folder (submitit's pickles and logs, jobs.json): on a file system the
    # compute nodes share; default <data_dir>/slurm
    slurm_dir: Path | None = None
    # what the CLI's client commands talk to (default: this machine's own server)
    api_url: str = ""
    token: str = ""
    # a worker with a worker token reaches the store only through the API at api_url
    # (worker/backend.py): no database URL and no shared folder on its machine. An admin
    # issues it: `neuroreg tokens create NAME --worker`
    worker_token: str = Field(default="", repr=False)
    # the client's offline mode (neuroreg.client.Client): false, true (spool every external
    # run) or auto (spool a run once its server cannot be reached); and the spool's folder
    # (`neuroreg sync` uploads it), default <data_dir>/spool
    offline: bool | Literal["auto"] = False
    spool_dir: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        if v and not v.startswith(("sqlite", "postgresql")):
            raise ValueError("NEUROREG_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return v

    @field_validator("webhook_backoff_s")
    @classmethod
    def _positive_delays(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < d < 10**7 for d in v):
            raise ValueError("NEUROREG_WEBHOOK_BACKOFF_S: each delay is a positive number of "
                             "seconds, e.g. [10, 30, 120, 600, 3600]")
        return v

    @field_validator("secret_key")
    @classmethod
    def _fernet_key(cls, v: str) -> str:
        if v:
            try:
                Fernet(v.encode())
            except ValueError:
                raise ValueError(
                    "NEUROREG_SECRET_KEY must be a Fernet key (32 random bytes, url-safe "
                    "base64): python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'") from None
        return v

    @field_validator("system_metrics_s")
    @classmethod
    def _whole_seconds(cls, v: float) -> float:
        if 0 < v < 1:
            raise ValueError("NEUROREG_SYSTEM_METRICS_S is 0 (off) or at least 1 second")
        return v

    def make_dirs(self) -> None:
        """The data directory and the folders the service writes into it, private
        (:func:`private_dir`): the artifact store and the filesystem queue's."""
        for folder in (self.data_dir, self.artifacts):
            private_dir(folder)
        if self.broker.startswith("filesystem"):
            private_dir(self.broker_dir)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'neuroreg.db'}"

    @property
    def artifacts(self) -> Path:
        """The artifact folder (with an object store: where files are staged and what
        was read back is cached; the store backs it from the first use on)."""
        root = (self.artifact_dir or self.data_dir / "artifacts").resolve()
        if self.s3_bucket:
            from core.store import objects

            if objects.for_root(root) is None:
                objects.register(root, objects.ObjectStore(
                    bucket=self.s3_bucket, prefix=self.s3_prefix,
                    endpoint_url=self.s3_endpoint_url or None,
                    public_url=self.s3_public_url or None, cache=root / ".cache",
                    url_ttl_s=self.s3_url_ttl_s))
        return root

    @property
    def recordings(self) -> Path:
        return (self.recordings_dir or self.data_dir / "recordings").resolve()

    @property
    def datasets(self) -> Path:
        return (self.datasets_dir or self.data_dir / "datasets").resolve()

    @property
    def models(self) -> Path:
        return (self.models_dir or self.data_dir / "models").resolve()

    @property
    def slurm_folder(self) -> Path:
        return (self.slurm_dir or self.data_dir / "slurm").resolve()

    @property
    def spool(self) -> Path:
        return (self.spool_dir or self.data_dir / "spool").resolve()

    @property
    def broker(self) -> str:
        return self.broker_url or "filesystem://localhost//"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def url(self) -> str:
        return self.api_url or f"http://{self.host}:{self.port}"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "admin-token"

    def api_token(self) -> str:
        """The token clients use: ``NEUROREG_TOKEN``, else this machine's admin token
        file (``neuroreg up`` writes it; the one a running ``up`` recorded for this URL
        when no data directory is named: :func:`neuroreg.settings.admin_token_file`),
        else ``""``."""
        from neuroreg.settings import admin_token_file

        if self.token:
            return self.token
        path = admin_token_file(self.url, self.data_dir, "data_dir" in self.model_fields_set)
        return path.read_text().strip() if path.exists() else ""


@lru_cache
def get_settings() -> Settings:
    return Settings()
