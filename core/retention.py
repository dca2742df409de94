"""Retention: delete the artifacts nobody needs, never one a kept result depends on.

A policy (:class:`~core.store.models.RetentionPolicy`) covers the runs its ``query``
matches (the run query language of :mod:`core.store.query`; empty: every run) and, of
their artifacts, those whose name matches ``pattern`` (a shell glob over the whole name,
``*`` crossing folders: ``checkpoints/*.ckpt``). Its ``rule`` says which of those go:

- ``keep-last``: all but the newest ``keep`` of each run (Lightning's epoch checkpoints);
- ``drop-finished``: all of each run that succeeded, ``days`` (default 0) after it
  finished (a train run's ``checkpoint.pt``: it only resumes an unfinished run);
- ``expire-failed``: all of each run that failed or was cancelled more than ``days``
  ago.

Whatever a policy says, an artifact another run reads (:mod:`core.lineage`: a target a
train run used, the model an evaluation scored) is kept, and the plan names who reads it;
a policy that would delete such an artifact when it is made is refused, naming the
dependant. :func:`plan` is the dry run, :func:`apply` deletes (rows in one transaction
with their audit events; files after it commits).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.lineage import Dependant, dependants
from core.store import audit
from core.store.artifacts import remove_files
from core.store.db import begin_write, session_scope
from core.store.models import Artifact, RetentionPolicy, Run, RunStatus, User, utcnow
from core.store.query import compile_query

RULES = {
    "keep-last": "all but the newest `keep` matching artifacts of each run",
    "drop-finished": "matching artifacts of succeeded runs, `days` (default 0) after they "
                     "finished",
    "expire-failed": "matching artifacts of failed or cancelled runs, `days` after they ended",
}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}")
MAX_KEEP, MAX_DAYS = 100_000, 36_500.0


class PolicyError(ValueError):
    """A policy that cannot be made as given; ``field`` names the request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class PolicyConflict(PolicyError):
    """A valid policy the store refuses now: its name is taken, or it would delete an
    artifact another run reads."""


@dataclass(frozen=True)
class Spec:
    """A policy as asked for (before it is stored)."""

    name: str
    rule: str
    pattern: str
    query: str = ""
    keep: int | None = None
    days: float | None = None


def check(spec: Spec, dialect: str) -> Spec:
    """``spec`` if it is a policy this module can apply; else :class:`PolicyError`."""
    if not NAME.fullmatch(spec.name):
        raise PolicyError("name", "1 to 64 letters, digits, spaces, '_', '.' or '-', "
                          "starting with a letter or digit")
    if spec.rule not in RULES:
        raise PolicyError("rule", f"one of {', '.join(RULES)}")
    if not spec.pattern or len(spec.pattern) > 255 or "\x00" in spec.pattern:
        raise PolicyError("pattern", "a glob over artifact names, 1 to 255 characters")
    if len(spec.query) > 2000:
        raise PolicyError("query", "at most 2,000 characters")
    if spec.query.strip():
        try:
            compile_query(spec.query, dialect)
        except ValueError as exc:
            raise PolicyError("query", str(exc)) from None
    if spec.rule == "keep-last":
        if spec.keep is None or not 1 <= spec.keep <= MAX_KEEP:
            raise PolicyError("keep", f"keep-last needs keep, 1 to {MAX_KEEP:,}")
        if spec.days is not None:
            raise PolicyError("days", "keep-last keeps by count, not age: leave days out")
    else:
        if spec.keep is not None:
            raise PolicyError("keep", f"{spec.rule} takes no keep (keep-last does)")
        if spec.rule == "expire-failed" and spec.days is None:
            raise PolicyError("days", "expire-failed needs days, the age at which a failed "
                              "run's artifacts go")
        if spec.days is not None and not 0 <= spec.days <= MAX_DAYS:
            raise PolicyError("days", f"0 to {MAX_DAYS:,.0f}")
    return spec


@dataclass(frozen=True)
class Item:
    """One artifact a policy covers: it goes (``dependants`` empty), or it is kept
    because they read it."""

    artifact_id: int
    run_id: int
    run_name: str
    name: str
    size_bytes: int
    path: str
    policy: str
    dependants: tuple[Dependant, ...] = ()


@dataclass
class Plan:
    """What applying the policies would delete and keep, now."""

    delete: list[Item] = field(default_factory=list)
    kept: list[Item] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(i.size_bytes for i in self.delete)


def _matching(session: Session, policy: RetentionPolicy | Spec, now: datetime
              ) -> Iterator[tuple[Artifact, Run]]:
    """The artifacts ``policy`` would delete were nothing reading them."""
    dialect = session.get_bind().dialect.name
    query = select(Artifact, Run).join(Run, Run.id == Artifact.run_id)
    if policy.query.strip():
        query = query.where(compile_query(policy.query, dialect))
    days = timedelta(days=policy.days or 0)
    if policy.rule == "drop-finished":
        query = query.where(Run.status == RunStatus.succeeded, Run.finished_at.is_not(None),
                            Run.finished_at <= now - days)
    elif policy.rule == "expire-failed":
        query = query.where(Run.status.in_([RunStatus.failed, RunStatus.cancelled]),
                            Run.finished_at.is_not(None), Run.finished_at <= now - days)
    query = query.order_by(Artifact.run_id, Artifact.created_at.desc(), Artifact.id.desc())
    seen: dict[int, int] = {}
    for artifact, run in session.execute(query):
        if not fnmatch.fnmatchcase(artifact.name, policy.pattern):
            continue
        if policy.rule == "keep-last":
            seen[run.id] = seen.get(run.id, 0) + 1
            if seen[run.id] <= (policy.keep or 0):
                continue
        yield artifact, run


def plan(session: Session, policies: Sequence[RetentionPolicy | Spec], *,
         now: datetime | None = None) -> Plan:
    """The dry run: each artifact at most once (under the first policy that covers it),
    in run and name order."""
    now = now or utcnow()
    covered: dict[int, tuple[Artifact, Run, str]] = {}
    for policy in policies:
        for artifact, run in _matching(session, policy, now):
            covered.setdefault(artifact.id, (artifact, run, policy.name))
    readers = dependants(session, sorted({run.id for _, run, _ in covered.values()}))
    out = Plan()
    for artifact, run, policy_name in sorted(covered.values(),
                                              key=lambda c: (c[1].id, c[0].name)):
        needed = tuple(d for d in readers.get(run.id, []) if d.artifact == artifact.name)
        item = Item(artifact.id, run.id, run.name, artifact.name, artifact.size_bytes,
                    artifact.path, policy_name, needed)
        (out.kept if needed else out.delete).append(item)
    return out


def refuse_dependants(session: Session, spec: Spec) -> None:
    """:class:`PolicyError` naming the first dependant if ``spec`` applied now would
    delete an artifact another run reads."""
    kept = plan(session, [spec]).kept
    if kept:
        item, reader = kept[0], kept[0].dependants[0]
        more = len(kept) - 1
        raise PolicyConflict("pattern", (
            f"would delete run {item.run_id}'s {item.name}, which {reader.kind} run "
            f"{reader.run_id} reads" + (f" (and {more} more artifact{'s' * (more > 1)} "
                                        "other runs read)" if more else "")
            + ": narrow the pattern or the query"))


def create(session: Session, user: User, spec: Spec) -> RetentionPolicy:
    """Store ``spec``; the caller commits.

    Raises:
        PolicyConflict: its name is taken, or it would delete a depended-on artifact.
        PolicyError: it is not a policy this module can apply (naming the field).
    """
    check(spec, session.get_bind().dialect.name)
    refuse_dependants(session, spec)
    if session.execute(select(RetentionPolicy.id).where(
            RetentionPolicy.name == spec.name)).first() is not None:
        raise PolicyConflict("name", f"a policy named {spec.name!r} exists")
    policy = RetentionPolicy(name=spec.name, rule=spec.rule, pattern=spec.pattern,
                             query=spec.query, keep=spec.keep, days=spec.days,
                             created_by=user.id)
    session.add(policy)
    session.flush()
    audit.record(session, user, "policy.created", "policy", policy.id, name=spec.name,
                 rule=spec.rule, pattern=spec.pattern, query=spec.query[:200])
    return policy


def policies(session: Session) -> Sequence[RetentionPolicy]:
    return session.execute(select(RetentionPolicy).order_by(RetentionPolicy.id)).scalars().all()


def apply(session: Session, actor: User | None, *, now: datetime | None = None
          ) -> tuple[Plan, list[str]]:
    """Delete what :func:`plan` says goes, under every stored policy, in this session's
    write transaction (the plan is made inside it, so a run that starts reading an
    artifact before it commits keeps it); one audit event per run. Returns the plan and
    the artifact paths for the caller to unlink after it commits."""
    begin_write(session)
    done = plan(session, policies(session), now=now)
    by_run: dict[int, list[Item]] = {}
    for item in done.delete:
        by_run.setdefault(item.run_id, []).append(item)
    for run_id, items in by_run.items():
        session.execute(delete(Artifact).where(
            Artifact.id.in_([i.artifact_id for i in items])))
        audit.record(session, actor, "artifacts.expired", "run", run_id,
                     names=[i.name for i in items[:20]], count=len(items),
                     bytes=sum(i.size_bytes for i in items),
                     policies=sorted({i.policy for i in items}))
    session.flush()
    return done, [i.path for i in done.delete]


def apply_once(db_url: str, root: Path) -> Plan:
    """One pass of every policy by the service itself (the API's retention loop)."""
    with session_scope(db_url) as session:
        done, paths = apply(session, None)
    remove_files(root, paths)
    return done


def describe(item: Item) -> dict[str, Any]:
    """An item as the API and the CLI show it."""
    return {"run_id": item.run_id, "run_name": item.run_name, "name": item.name,
            "size_bytes": item.size_bytes, "policy": item.policy,
            "dependants": [{"run_id": d.run_id, "kind": d.kind, "name": d.name,
                            "status": d.status} for d in item.dependants]}


__all__ = ["RULES", "Item", "Plan", "PolicyConflict", "PolicyError", "Spec", "apply",
           "apply_once", "check", "create", "describe", "plan", "policies",
           "refuse_dependants"]
