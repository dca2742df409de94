"""SQLAlchemy 2 typed models. Migrations in ``core/migrations`` mirror this file."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns timezone-aware datetimes (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Role(enum.StrEnum):
    admin = "admin"
    member = "member"


class ProjectRole(enum.StrEnum):
    """What a member may do in one project (:mod:`core.access`): a ``viewer`` reads its
    runs; an ``editor`` also creates runs in it and changes their own; an ``owner`` also
    changes anyone's runs in it and its members."""

    viewer = "viewer"
    editor = "editor"
    owner = "owner"

    @property
    def rank(self) -> int:
        return ("viewer", "editor", "owner").index(self.value)


DEFAULT_PROJECT_ID = 1
"""The project migration 0017 made and put every run before it in; every member was made
its editor (admins its owners), and a new member joins it as an editor: a lab that never
makes another project works as before projects."""


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)


MAX_ID = 2**31 - 1
"""The largest id a row can have: id columns are PostgreSQL ``integer``. Requests name
ids in ``1..MAX_ID``; a larger one names no row (and would overflow the column's type)."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # set by an admin: every token of a disabled user is refused (401) until re-enabled
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    # sha256 of the token; the token itself is shown once and never stored
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # "member": a person's, for everything but /api/worker; "worker": for /api/worker only
    # (a worker that reaches the service over its API: worker/backend.py)
    scope: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class Project(Base):
    """A set of runs and who may read or write them (:mod:`core.access`)."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProjectMember(Base):
    """A user's role in a project; no row: the project is not theirs to read (admins read
    and write every project)."""

    __tablename__ = "project_members"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)
    role: Mapped[ProjectRole] = mapped_column(Enum(ProjectRole, native_enum=False, length=16))


class Run(Base):
    __tablename__ = "runs"
    # no RETURNING of server defaults either (project_id, as above)
    __mapper_args__ = {"eager_defaults": False}
    __table_args__ = (Index("ix_runs_owner_created", "owner_id", "created_at"),
                      Index("ix_runs_owner_client_key", "owner_id", "client_key", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # the project whose members may read it (core.access); the default one unless named.
    # Loaded when first read (deferred): the code of a revision before 0017 — a migration
    # test's rows — never names it; queries that read many runs' filter on it in SQL
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True,
                                            server_default=str(DEFAULT_PROJECT_ID),
                                            deferred=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[RunStatus] = mapped_column(
        Enum(RunStatus, native_enum=False, length=16), default=RunStatus.queued, index=True
    )
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # written every few seconds by the worker running it; a stale one means a lost worker
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(128))  # "host:pid" running it
    task_id: Mapped[str | None] = mapped_column(String(64))  # the Celery message, to revoke
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    input_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    # the code, packages, host and GPU that ran it (a worker's, or an external run's script)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # bytes of log text stored so far in run_logs, against the per-run bound
    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # the creating client's idempotency key (an offline run's spool key): a create that
    # repeats it returns this run instead of making a second one
    client_key: Mapped[str | None] = mapped_column(String(64))

    owner: Mapped[User] = relationship(lazy="joined")


class RunTag(Base):
    """A label on a run (e.g. a paper figure or a sweep); (run, tag) is the key."""

    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class Metric(Base):
    """One point of one series; (run, key, step) is the key, so re-sent points are no-ops."""

    __tablename__ = "metrics"
    # clustered by (run, key, step) on SQLite: series reads are one range scan
    __table_args__ = {"sqlite_with_rowid": False}

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)


class RunLog(Base):
    """One captured log line; (run, seq) is the key, so a re-sent line is a no-op."""

    __tablename__ = "run_logs"
    __table_args__ = {"sqlite_with_rowid": False}

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String(16))  # stdout | stderr | log | client
    time: Mapped[float] = mapped_column(Float)
    line: Mapped[str] = mapped_column(Text)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_artifacts_run_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(1024))  # relative to the artifact root
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MetricBucket(Base):
    """Rollup of one series over steps [bucket·B, (bucket+1)·B) — see store/rollups.py."""

    __tablename__ = "metric_buckets"
    __table_args__ = {"sqlite_with_rowid": False}

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    first_step: Mapped[int] = mapped_column(Integer)
    last_step: Mapped[int] = mapped_column(Integer)
    min_step: Mapped[int] = mapped_column(Integer)
    min_value: Mapped[float] = mapped_column(Float)
    max_step: Mapped[int] = mapped_column(Integer)
    max_value: Mapped[float] = mapped_column(Float)


class Webhook(Base):
    """A member's URL that is POSTed a signed JSON event when one of their runs or
    studies finishes (:mod:`core.store.webhooks`)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # the HMAC-SHA256 key of X-Neuroreg-Signature: kept (it signs every delivery), shown once
    secret: Mapped[str] = mapped_column(String(256))
    events: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryStatus(enum.StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookDelivery(Base):
    """One event for one webhook: an outbox row, written in the transaction that finished
    the run, sent (and retried) by the dispatcher (:mod:`server.webhooks`)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_hook_created", "webhook_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # X-Neuroreg-Delivery: the same on every retry, for the receiver to drop repeats
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(Integer)  # no FK: the record outlives the run
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=16), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # when it is due; while a dispatcher sends it, the end of that dispatcher's lease
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Who did what to whom: one row per change to the team (users, roles, tokens) and per
    admin action on someone else's things, written in the transaction that made the change
    (:mod:`core.store.audit`). The actor's name is copied: the record reads the same
    whatever happens to the user later."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # no FK: the record outlives its actor and target; None: the service itself (first start)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # user.disabled, token.revoked, …
    target_kind: Mapped[str] = mapped_column(String(16))  # user, token, run, project, …
    target_id: Mapped[int | None] = mapped_column(Integer)
    # the project the change was in (a run's, a membership's): its owners read the event
    project_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class EvaluationScore(Base):
    """One score a succeeded evaluation ranks by on the leaderboard: a sortable column of
    :data:`ml.evaluate.record.COLUMNS` at ε (AutoAttack's, else 0) and its value, written
    when the run ends (:mod:`core.store.scores`), so the leaderboard filters, sorts and
    pages in SQL."""

    __tablename__ = "evaluation_scores"
    __table_args__ = (
        Index("ix_evaluation_scores_column_eps_value", "column", "eps", "value"),
    )

    # (run, column, ε) is the key: one value each
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    column: Mapped[str] = mapped_column(String(32), primary_key=True)
    eps: Mapped[float] = mapped_column(Float, primary_key=True)  # 0 for a column without ε
    value: Mapped[float] = mapped_column(Float)


class MlflowExperiment(Base):
    """An MLflow experiment, for the MLflow-compatible tracking API (:mod:`core.mlflow`).
    Its runs are external runs carrying its ``tag``: a neuroreg tag, so every page, query
    and group that takes tags takes an experiment. This row holds what MLflow has and a
    tag cannot: the numeric id clients address it by, its name as written, whether it is
    deleted, and its own key/value tags. Id 0 is MLflow's "Default"."""

    __tablename__ = "mlflow_experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(500), unique=True)
    tag: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RunRead(Base):
    """One artifact one run reads from another (:mod:`core.lineage`): a train run's target
    from its similarity run, an evaluation's model from its train run. Written when the
    run is created (and by migration 0015 for the runs before it), so that "what is built
    from this run" is one indexed lookup, and retention (:mod:`core.retention`) never
    deletes an artifact a kept result depends on."""

    __tablename__ = "run_reads"
    __table_args__ = (UniqueConstraint("run_id", "input_run_id", "artifact", "field",
                                       name="uq_run_reads"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    input_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                              index=True)
    artifact: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(64))  # the config field naming it


class RetentionPolicy(Base):
    """A rule for deleting artifacts nobody needs (:mod:`core.retention`): which runs it
    covers (a run query; empty: every run), which of their artifacts (a glob over names),
    and when one goes (``rule``: keep the newest ``keep`` per run, drop them once the run
    succeeded, or expire them ``days`` after the run failed or was cancelled)."""

    __tablename__ = "retention_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    rule: Mapped[str] = mapped_column(String(16))
    pattern: Mapped[str] = mapped_column(String(255))
    query: Mapped[str] = mapped_column(String(2000), default="")
    keep: Mapped[int | None] = mapped_column(Integer)
    days: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerClaim(Base):
    """The worker token that claimed a run (a worker over the API: :mod:`core.work`): only
    it may write to the run. None for a run a worker with the database took."""

    __tablename__ = "worker_claims"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"),
                                          index=True)
