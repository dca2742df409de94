"""Runs as the API shows them (with their latest metrics and tags)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.metrics import latest_values
from core.store.models import Project, Run
from core.store.runs import tags_of
from server.schemas import RunPublic

TABLE_KEYS = ("loss", "acc", "test_acc")


def runs_public(session: Session, runs: Sequence[Run]) -> list[RunPublic]:
    ids = [r.id for r in runs]
    latest = latest_values(session, ids, TABLE_KEYS)
    tags = tags_of(session, ids)
    projects = {i: (pid, name) for i, pid, name in session.execute(
        select(Run.id, Project.id, Project.name).join(Project, Project.id == Run.project_id)
        .where(Run.id.in_(ids)))} if ids else {}
    return [
        RunPublic.model_validate(
            {**_fields(r), "project_id": projects[r.id][0], "project": projects[r.id][1],
             "last_metrics": latest.get(r.id, {}), "tags": tags[r.id]})
        for r in runs
    ]


def run_public(session: Session, run: Run) -> RunPublic:
    return runs_public(session, [run])[0]


def _fields(run: Run) -> dict[str, Any]:
    names = RunPublic.model_fields.keys() - {"owner", "project", "project_id",
                                             "last_metrics", "tags"}
    return {"owner": run.owner.name, **{n: getattr(run, n) for n in names}}
