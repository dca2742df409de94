"""Runs: create, list, get, rename/tag, delete, cancel."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Query, Request, Response, status
from pydantic import AfterValidator, BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.access import Access
from core.inputs import check_inputs
from core.kinds import KINDS, KindName, stored_config
from core.lifecycle import cancel_run, finish_run
from core.lineage import reads as lineage_reads
from core.queue import revoke
from core.store import audit
from core.store.artifacts import remove_files
from core.store.models import MAX_ID, Project, Run, RunStatus, User
from core.store.projects import move_run
from core.store.query import SORT_FIELDS
from core.store.runs import NotFound, delete_run, find_run, list_runs, set_tags
from core.submit import EnqueueFailed, submit_run
from server.deps import (
    CurrentAccess,
    RunId,
    RunIdQuery,
    SessionDep,
    SettingsDep,
    cannot_write,
    project_to_add_to,
    run_or_404,
    run_to_write,
)
from server.schemas import (
    GroupCurves,
    RunCreate,
    RunFinish,
    RunGroups,
    RunPage,
    RunPublic,
    RunUpdate,
)
from server.services import run_public, runs_public
from server.strict import CONFLICT, api_router, invalid

router = api_router(prefix="/api/runs", tags=["runs"])

# the fields sort, columns, by and metric name, as patterns: a config path or a metric
# (with .last/.min/.max), dot-separated parts of a metric key's characters
_PART = r"[A-Za-z0-9_:/\-\[\]]+"
FIELD_PATTERN = rf"^((config|metrics)(\.{_PART})+|{'|'.join(SORT_FIELDS)})$"  # sort


def _sort_field(value: str | None) -> str | None:
    """``sort`` as :data:`FIELD_PATTERN` takes it, refused in words (not the pattern)."""
    if value is not None and not re.fullmatch(FIELD_PATTERN, value):
        raise ValueError(f"{value!r} is not a field to sort by: config.<path> or "
                         "metrics.<key>[.last|.min|.max] (parts of letters, digits and "
                         f"_ : / - [ ]), or one of the run's: {', '.join(SORT_FIELDS)}")
    return value


SortField = Annotated[str | None, Query(
    max_length=200, description="a config or metric field to sort by (config.alpha, "
    "metrics.test_acc.max), or one of the run's: id, name, kind, status, owner, project, "
    "parent, created, started, finished; runs without it last"), AfterValidator(_sort_field)]
METRIC_PATTERN = rf"^metrics(\.{_PART})+$"
GROUP_PATTERN = rf"^(config(\.{_PART})+|tag|owner|project|kind|status|name)$"
COLUMNS_PATTERN = (rf"^\s*((config|metrics)(\.{_PART})+\s*"
                   rf"(,\s*(config|metrics)(\.{_PART})+\s*){{0,29}})?$")
dry_run_router = api_router(prefix="/api", tags=["runs"])  # beside /api/runs/{id}, not under it


def _checked(body: RunCreate, session: SessionDep, access: Access, settings: SettingsDep
             ) -> tuple[int | None, Project]:
    """Every check a new run passes before it is stored; the run it reads (or None) and
    the project it goes into: the one named, else its parent's, else the caller's home
    (:meth:`core.access.Access.home`)."""
    parent = _check_parent(session, access, body.parent_id) if body.parent_id else None
    project = project_to_add_to(session, access, body.project, "create runs in",
                                parent=parent)
    reads = check_inputs(session, settings, kind=body.kind, config=body.config)
    if reads is not None and body.input_run_id not in (None, reads):
        raise NotFound(f"the config reads run {reads}, not {body.input_run_id}",
                       field="input_run_id")
    named = [(f"config.{r.field}", r.run_id) for r in lineage_reads(body.kind, body.config)]
    if body.input_run_id is not None:
        named.append(("input_run_id", body.input_run_id))
    for field, ref in named:  # a run you may not read is one that does not exist
        found = find_run(session, ref)
        if found is not None and not access.can_read(found):
            raise NotFound(f"run {ref} does not exist", field=field)
    return reads, project


class RunChecked(BaseModel):
    """A run as ``POST /api/runs`` would store it: its config with every default filled in
    and the run it reads."""

    kind: str
    name: str
    config: dict[str, Any]
    input_run_id: int | None
    project: str = "default"  # the project it would go into


@dry_run_router.post("/dry-run")
def dry_run(body: RunCreate, session: SessionDep, access: CurrentAccess,
            settings: SettingsDep) -> RunChecked:
    """Check a run without storing or queueing it: the same 422s (naming the field) as
    ``POST /api/runs``, or the config as it would run (``neuroreg submit --check``)."""
    try:
        reads, project = _checked(body, session, access, settings)
    except NotFound as exc:
        raise invalid(["body", *(exc.field or "").split(".")], exc.message,
                      "not_found") from None
    return RunChecked(kind=body.kind, name=body.name, config=stored_config(body.kind, body.config),
                      input_run_id=body.input_run_id if reads is None else reads,
                      project=project.name)


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    **CONFLICT, 200: {"model": RunPublic, "description": "The run this client_key created"}})
def create(
    body: RunCreate, request: Request, response: Response, session: SessionDep,
    access: CurrentAccess, settings: SettingsDep
) -> RunPublic:
    """Store a run (201) and queue it; an external run is running from now. A body whose
    ``client_key`` one of your runs already has is answered with that run (200), stored
    once however often it is sent. It goes into ``project`` (a name or id), else its
    parent's, else the default project (or the first you may create runs in)."""
    user = access.user
    if body.client_key is not None:
        existing = _keyed(session, user, body)
        if existing is not None:
            response.status_code = status.HTTP_200_OK
            return run_public(session, existing)
    try:
        reads, project = _checked(body, session, access, settings)
        run = submit_run(
            session,
            request.app.state.celery,
            owner=user,
            kind=body.kind,
            name=body.name,
            config=stored_config(body.kind, body.config),
            parent_id=body.parent_id,
            input_run_id=body.input_run_id if reads is None else reads,
            provenance=_provenance(body),
            client_key=body.client_key,
            started_at=getattr(body, "started_at", None),
            project_id=project.id,
        )
    except IntegrityError:  # the same client_key, sent twice at once: the other one won
        session.rollback()
        existing = _keyed(session, user, body)
        if existing is None:
            raise
        response.status_code = status.HTTP_200_OK
        return run_public(session, existing)
    except EnqueueFailed as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    except NotFound as exc:
        raise invalid(["body", *(exc.field or "").split(".")], exc.message,
                      "not_found") from None
    return run_public(session, run)


def _keyed(session: SessionDep, user: User, body: RunCreate) -> Run | None:
    """The user's run with ``body.client_key``; a 409 when it is another kind of run."""
    run = session.execute(select(Run).where(
        Run.owner_id == user.id, Run.client_key == body.client_key)).scalar_one_or_none()
    if run is not None and run.kind != body.kind:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"client_key: your run {run.id} has this key and is a {run.kind} "
                            f"run, not a {body.kind} run")
    return run


def _provenance(body: RunCreate) -> dict[str, Any] | None:
    """An external run's script's provenance, as sent (other kinds' bodies have none)."""
    sent = getattr(body, "provenance", None)
    return None if sent is None else dict(sent.model_dump())


def _check_parent(session: SessionDep, access: Access, parent_id: int) -> Run:
    """A parent is a write into that run: only into one the creator may write, and never
    into a study (a study's runs are the ones it makes)."""
    parent = find_run(session, parent_id)
    if parent is None or not access.can_read(parent):
        raise NotFound(f"run {parent_id} does not exist", field="parent_id")
    if not access.can_write(parent):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "parent_id: " + cannot_write(
            access, parent, "parent a run under") + "; a run's parent must be a run you "
            "may write")
    if KINDS[parent.kind].fans_out:
        raise invalid(["body", "parent_id"], f"run {parent_id} is a {parent.kind}; its runs "
                      "are the ones it makes", "parent_is_study")
    return parent


@router.get("")
def list_(
    session: SessionDep,
    access: CurrentAccess,
    owner: str | None = None,
    kind: KindName | None = None,
    status: RunStatus | None = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    parent_id: RunIdQuery = None,
    top_level: bool = False,
    order: Literal["newest", "oldest", "name"] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    q: Annotated[str | None, Query(max_length=2000, description=(
        'a query: config.alpha >= 8 and metrics.test_acc.last > 0.9 and (tag = "fig4" '
        'or tag = "fig6"); fields config.<path>, metrics.<key>[.last|.min|.max], tag, '
        "owner, project, kind, status, parent, name, id, created, started, finished"))
    ] = None,
    sort: SortField = None,
    desc: bool = False,
    columns: Annotated[str | None, Query(max_length=2000, pattern=COLUMNS_PATTERN, description=(
        "comma-separated config and metric fields whose values the page carries in "
        "`values` (config.alpha,metrics.test_acc.max)"))] = None,
) -> RunPage:
    """Runs matching the filters and the query ``q``, newest first (or ``order``), or by
    ``sort`` (``desc``: highest first). A query that does not parse, names an unknown
    field or compares a string with a number is a 422 naming its position."""
    from core.store.query import QueryError

    cols = _columns(columns)
    try:
        runs, total = list_runs(
            session, owner=owner, kind=kind and kind.value, status=status, tag=tag,
            parent_id=parent_id, top_level=top_level, order=order, limit=limit,
            offset=offset, q=q, sort=sort, descending=desc, where=access.runs())
    except QueryError as exc:
        raise _query_422(exc) from None
    return RunPage(items=runs_public(session, runs), total=total, limit=limit, offset=offset,
                   values=column_values(session, runs, cols) if cols else {})


@dry_run_router.get("/runs.csv", response_class=Response,
            responses={200: {"description": "the matching runs as CSV",
                                   "content": {"text/csv": {"schema": {"type": "string"}}}}})
def export_csv(
    session: SessionDep,
    access: CurrentAccess,
    q: Annotated[str | None, Query(max_length=2000)] = None,
    columns: Annotated[str | None, Query(max_length=2000, pattern=COLUMNS_PATTERN)] = None,
    sort: SortField = None,
    desc: bool = False,
) -> Response:
    """Every run matching ``q`` as CSV: id, name, owner, project, kind, status, parent, created,
    finished, then each of ``columns`` (config and metric fields), in ``sort`` order
    (newest first without one)."""
    import csv
    import io

    from server.csv_cells import cell

    cols = _columns(columns)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "name", "owner", "project", "kind", "status", "parent_id",
                     "created_at", "finished_at", *cols])
    from core.store.query import QueryError

    offset, total = 0, 1
    while offset < total:  # a page at a time: the values of one page in a few queries
        try:
            runs, total = list_runs(session, q=q, sort=sort, descending=desc, limit=500,
                                    offset=offset, where=access.runs())
        except QueryError as exc:
            raise _query_422(exc) from None
        values = column_values(session, runs, cols) if cols else {}
        projects = dict(session.execute(
            select(Run.id, Project.name).join(Project, Project.id == Run.project_id)
            .where(Run.id.in_([r.id for r in runs]))).all()) if runs else {}
        for r in runs:
            row = values.get(str(r.id), {})
            writer.writerow([r.id, cell(r.name), cell(r.owner.name), cell(projects[r.id]),
                             r.kind, r.status.value,
                             r.parent_id, r.created_at.isoformat(),
                             r.finished_at.isoformat() if r.finished_at else "",
                             *["" if row.get(c) is None else cell(row[c]) for c in cols]])
        offset += len(runs)
        if not runs:
            break
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="runs.csv"'})


def _query_422(exc: Exception) -> Exception:
    """A query, sort, group or metric the store could not compile: a 422 naming the part
    (a query's message says where: ``at 14: …``)."""
    part = getattr(exc, "part", "q")
    return invalid(["query", part], str(exc) if part == "q" else getattr(exc, "message", ""),
                   "query_invalid")


def _columns(columns: str | None) -> list[str]:
    cols = [c.strip() for c in (columns or "").split(",") if c.strip()]
    bad = [c for c in cols if not c.startswith(("config.", "metrics.")) or c.endswith(".")]
    if bad or len(cols) > 30:
        raise invalid(["query", "columns"], f"{bad or cols[30:]}: columns are at most 30 "
                      "config.<path> or metrics.<key>[.last|.min|.max] fields", "columns")
    return cols


@dry_run_router.get("/run-groups")
def groups(
    session: SessionDep,
    access: CurrentAccess,
    by: Annotated[list[Annotated[str, Query(max_length=200, pattern=GROUP_PATTERN)]], Query(
        min_length=1, max_length=5, description="fields to group by (repeatable): "
        "config.<path>, tag, owner, kind, status")],
    metric: Annotated[list[Annotated[str, Query(max_length=200, pattern=METRIC_PATTERN)]]
                      | None, Query(max_length=20, description="metrics.<key>[.last|.min|"
                                    ".max] to average per group (repeatable)")] = None,
    q: Annotated[str | None, Query(max_length=2000)] = None,
) -> RunGroups:
    """Runs matching ``q`` grouped by ``by``: per group the count and, per ``metric``,
    the mean ± SEM over the runs that have it (W&B's grouping; averaging over seeds)."""
    from core.store.query import QueryError, group_runs

    try:
        rows = group_runs(session, by=list(by), metrics=list(metric or []), q=q,
                          where=access.runs())
    except QueryError as exc:
        raise _query_422(exc) from None
    return RunGroups.model_validate({"by": list(by), "metrics": list(metric or []),
                                     "groups": rows})


@dry_run_router.get("/run-groups/curves")
def group_curves(
    session: SessionDep,
    access: CurrentAccess,
    by: Annotated[list[Annotated[str, Query(max_length=200, pattern=GROUP_PATTERN)]], Query(
        min_length=1, max_length=5, description="fields to group by (repeatable), as "
        "GET /api/run-groups")],
    key: Annotated[str, Query(min_length=1, max_length=128, description="the metric")],
    q: Annotated[str | None, Query(max_length=2000)] = None,
    max_points: Annotated[int, Query(ge=2, le=10_000)] = 500,
    max_runs: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> GroupCurves:
    """Each group's curve of ``key`` as mean ± SEM over its runs (Compare's grouped
    overlay): every step some run of the group reached, with the count ``n_at`` of runs
    there. Series longer than ``max_points`` are averaged over the same bins of steps
    for every run. At most ``max_runs`` runs are read (``truncated`` says when more
    matched); runs that never logged ``key`` count in ``run_ids`` but not in ``n_at``."""
    from core.store.metrics import binned_many
    from core.store.query import QueryError, group_members
    from ml.study import mean_curve

    try:
        groups, truncated = group_members(session, by=list(by), q=q, limit=max_runs,
                                          where=access.runs())
    except QueryError as exc:
        raise _query_422(exc) from None
    ids = sorted({i for g in groups for i in g["run_ids"]})
    width, series = binned_many(session, ids, key, max_points=max_points)
    curve_of = dict(zip(ids, series, strict=True))
    rows = [{"group": g["group"], "n": len(g["run_ids"]),
             **mean_curve({"id": i, "steps": curve_of[i][0], "values": curve_of[i][1]}
                          for i in g["run_ids"])} for g in groups]
    return GroupCurves.model_validate({"by": list(by), "key": key, "bin_steps": width,
                                       "truncated": truncated, "groups": rows})


def column_values(session: SessionDep, runs: Sequence[Run], cols: list[str]
                  ) -> dict[str, dict[str, Any]]:
    """The page's runs' value of each column: a config field read from the run's config,
    a metric's last, min or max from the store (one query per statistic)."""
    from core.store.metrics import extreme_values, latest_values

    ids = [r.id for r in runs]
    metric_cols = {}
    for c in cols:
        if c.startswith("metrics."):
            key, _, stat = c[len("metrics."):].rpartition(".")
            if stat not in ("last", "min", "max") or not key:
                key, stat = c[len("metrics."):], "last"
            metric_cols[c] = (key, stat)
    found: dict[str, dict[int, dict[str, float]]] = {}
    for stat in {s for _, s in metric_cols.values()}:
        keys = sorted({k for k, s in metric_cols.values() if s == stat})
        found[stat] = (latest_values(session, ids, keys) if stat == "last"
                       else extreme_values(session, ids, keys, stat))
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        row: dict[str, Any] = {}
        for c in cols:
            if c in metric_cols:
                key, stat = metric_cols[c]
                row[c] = found[stat][r.id].get(key)
            else:
                v: Any = r.config
                for part in c.split(".")[1:]:
                    v = v.get(part) if isinstance(v, dict) else None
                row[c] = v if isinstance(v, int | float | str | bool) or v is None else (
                    json.dumps(v))  # a list or mapping, as JSON text
        out[str(r.id)] = row
    return out


@router.get("/{run_id}")
def read(run_id: RunId, session: SessionDep, access: CurrentAccess) -> RunPublic:
    return run_public(session, run_or_404(session, run_id, access))


def _audit(session: SessionDep, user: User, run: Run, action: str, **detail: Any) -> None:
    """A change to a run goes in the audit trail, with the change (recorded only if it
    commits), for its project's owners to read."""
    audit.record(session, user, action, "run", run.id, project_id=run.project_id,
                 name=run.name, owner_id=run.owner_id, owner=run.owner.name, **detail)


@router.patch("/{run_id}")
def update(run_id: RunId, body: RunUpdate, session: SessionDep, access: CurrentAccess
           ) -> RunPublic:
    """Rename, retag, or move into another ``project`` with everything it made (its
    owner while an editor of its project, the project's owners, admins; a move also needs
    the right to create runs in the other project)."""
    run = run_to_write(session, run_id, access, "change")
    changed: dict[str, Any] = {}
    if body.name is not None and body.name != run.name:
        changed["before"], changed["after"] = run.name, body.name
        run.name = body.name
    if body.tags is not None:
        changed["tags"] = sorted(set(body.tags))
        set_tags(session, run, body.tags)
    if changed:
        _audit(session, access.user, run, "run.changed", **changed)
    if body.project is not None:
        project = project_to_add_to(session, access, body.project, "move runs into")
        if project.id != run.project_id:
            if run.parent_id is not None:
                raise invalid(["body", "project"], f"run {run.id} is part of run "
                              f"{run.parent_id}; move that run", "project_child")
            move_run(session, run, project, actor=access.user)
    session.commit()
    return run_public(session, run)


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONFLICT)
def delete(run_id: RunId, session: SessionDep, access: CurrentAccess,
           settings: SettingsDep) -> None:
    """Delete a finished run with its metrics and artifacts (as ``PATCH``)."""
    run = run_to_write(session, run_id, access, "delete")
    _audit(session, access.user, run, "run.deleted", kind=run.kind)
    try:
        paths = delete_run(session, run)
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()
    remove_files(settings.artifacts, paths)


@router.post("/{run_id}/finish", responses=CONFLICT)
def finish(run_id: RunId, body: RunFinish, session: SessionDep, access: CurrentAccess,
           settings: SettingsDep) -> RunPublic:
    """End an external run (owner or admin); worker-run kinds end themselves. Its log
    becomes its logs.txt."""
    from core.store.logs import save_log_artifact

    run = run_to_write(session, run_id, access, "finish")
    if run.kind != "external":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run_id} is a {run.kind} run; its worker finishes it")
    if run.status.finished:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is already {run.status}")
    if body.finished_at is not None and run.started_at is not None \
            and body.finished_at < run.started_at:
        raise invalid(["body", "finished_at"], f"{body.finished_at.isoformat()} is before the "
                      f"run started ({run.started_at.isoformat()})", "before_start")
    # an external run is no study's child (studies count train and evaluate runs), so its
    # end creates no run to enqueue
    finish_run(session, run_id, RunStatus(body.status), error=body.error, result=body.result,
               finished_at=body.finished_at)
    save_log_artifact(session, settings.artifacts, run_id)
    session.commit()
    session.refresh(run)
    return run_public(session, run)


@router.post("/{run_id}/cancel")
def cancel(run_id: RunId, request: Request, session: SessionDep, access: CurrentAccess
           ) -> RunPublic:
    """Cancel (as ``PATCH``): a queued task is revoked and skipped, a running one stops
    at its next check (within about a second); a study cancels its children."""
    run = run_to_write(session, run_id, access, "cancel")
    was_finished = run.status.finished
    if not was_finished:
        _audit(session, access.user, run, "run.cancelled", status=run.status.value)
    tasks = [r.task_id for r in cancel_run(session, run)]  # a study's children with it
    session.commit()
    if not was_finished:
        for task_id in filter(None, tasks):
            with contextlib.suppress(Exception):  # the broker may be down; status rules
                revoke(request.app.state.celery, task_id)
    return run_public(session, run)
