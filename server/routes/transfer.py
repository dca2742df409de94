"""Import and export (``neuroreg import`` / ``neuroreg export``, :mod:`neuroreg.transfer`):
a run stored whole as another tracker held it, its log lines and artifacts written into
it, and a series read raw, page by page. The rules are :mod:`core.transfer`'s."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core.access import Access
from core.kinds import KINDS, stored_config
from core.store import audit
from core.store.runs import find_run
from core.transfer import ImportRefused, Record, import_run, may_import, points_page
from server.deps import (
    CurrentAccess,
    RunId,
    SessionDep,
    SettingsDep,
    project_to_add_to,
    run_or_404,
    run_to_write,
)
from server.routes.artifacts import ArtifactPath, store_body
from server.routes.logs import MAX_LOG_BATCH_BYTES, append_batch
from server.schemas import (
    CREATE_MODELS,
    MAX_IMPORT_BYTES,
    ArtifactPublic,
    LogBatch,
    LogBatchResult,
    PastTime,
    PointsPage,
    RunImport,
    RunPublic,
)
from server.services import run_public
from server.strict import CONFLICT, api_router, body_limit, invalid

router = api_router(prefix="/api/import/runs", tags=["import and export"])
export_router = api_router(prefix="/api/export/runs", tags=["import and export"])


def _refused(exc: ImportRefused) -> Exception:
    if exc.forbidden:
        return HTTPException(status.HTTP_403_FORBIDDEN, str(exc))
    if exc.conflict:
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    return invalid(["body", *exc.field.split(".")], exc.message)


def _config(body: RunImport) -> dict[str, Any]:
    """The record's config, checked as its kind's (a 422 naming the field) and stored as
    that kind stores it."""
    if body.kind not in KINDS:
        raise invalid(["body", "kind"], f"{body.kind!r} is not a run kind here "
                      f"({', '.join(sorted(KINDS))})")
    try:
        made = CREATE_MODELS[body.kind].model_validate({"kind": body.kind,
                                                        "config": body.config})
    except ValidationError as exc:
        raise RequestValidationError([
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"], "input": None}
            for e in exc.errors()]) from None
    return stored_config(body.kind, made.config)  # type: ignore[attr-defined]


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    **CONFLICT, 200: {"model": RunPublic, "description": "Your run of this key, updated "
                      "to the record"}})
@body_limit(MAX_IMPORT_BYTES)
def import_(body: RunImport, response: Response, session: SessionDep,
            access: CurrentAccess) -> RunPublic:
    """Store a run as another tracker held it — kind, status, times, config, tags,
    provenance, result — as yours (201); a record whose ``key`` one of your runs has
    updates that run to it (200). External runs: any member; runs a worker runs (train,
    similarity, evaluate, study): an admin, finished, with the runs they read imported
    first. It goes into ``project``, else its parent's, else your home project (a
    ``project`` other than its parent's is a 422, as for a new run). Nothing is queued and
    no webhook fires."""
    rec = Record(key=body.key, kind=body.kind, name=body.name, status=body.status,
                 created_at=body.created_at, started_at=body.started_at,
                 finished_at=body.finished_at, config=_config(body), tags=body.tags,
                 provenance=body.provenance, result=body.result, error=body.error,
                 message=body.message, progress=body.progress, parent_id=body.parent_id,
                 input_run_id=body.input_run_id)
    parent = find_run(session, body.parent_id) if body.parent_id is not None else None
    if parent is not None and not access.can_read(parent):
        parent = None  # as if it did not exist: import_run refuses parent_id so
    project_id = project_to_add_to(session, access, body.project, "add runs to",
                                   parent=parent).id
    try:
        run, created = import_run(session, access, rec, project_id)
        if created:
            audit.record(session, access.user, "run.imported", "run", run.id,
                         project_id=run.project_id, name=run.name, kind=run.kind)
        pages_read(session, access, run)
    except ImportRefused as exc:
        session.rollback()
        raise _refused(exc) from None
    session.commit()
    session.refresh(run)
    if not created:
        response.status_code = status.HTTP_200_OK
    return run_public(session, run)


def pages_read(session: SessionDep, access: Access, run: Any) -> None:
    """Read the stored run as the pages read it — the run, its study, the γ table,
    the robustness summary, the frontier, the leaderboard's record — before committing:
    a result no page can read (a hand-edited export, another version's shape, a worker
    token's finish) is refused here, naming it, rather than stored to make those pages
    fail."""
    from server.routes import records, studies, summaries

    reads: list[Any] = [lambda: run_public(session, run)]
    if run.kind == "train":
        reads.append(lambda: summaries.gamma(session, access, run_id=[run.id]))
    if run.kind == "evaluate":
        reads += [lambda: summaries.robustness(session, access, run_id=[run.id]),
                  lambda: summaries.frontier_of_runs(session, access, run_id=[run.id]),
                  lambda: records.record(run.id, session, access)]
    study = run.id if run.kind == "study" else run.parent_id
    if study is not None:
        reads += [lambda: studies.read(study, session, access),
                  lambda: studies.frontier(study, session, access)]
    for read in reads:
        try:
            read()
        except HTTPException:  # a 404 or 409 a page shows as such (no evaluation yet, …)
            continue
        except Exception as exc:  # noqa: BLE001 (whatever a reader trips on is refused)
            raise ImportRefused("result", f"neuroreg's pages cannot read this {run.kind} "
                                f"run's result ({type(exc).__name__}: {str(exc)[:200]}); "
                                "is it from another version of neuroreg?") from None


def _importable(session: SessionDep, access: Access, run_id: int, what: str) -> None:
    run = run_to_write(session, run_id, access, f"import {what} into")
    if not may_import(access.user, run.kind):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"run {run_id} is a {run.kind} run: importing its {what} needs "
                            "an admin")


@router.post("/{run_id}/logs", responses=CONFLICT)
@body_limit(MAX_LOG_BATCH_BYTES)
def import_logs(run_id: RunId, body: LogBatch, session: SessionDep, settings: SettingsDep,
                access: CurrentAccess) -> LogBatchResult:
    """Lines of a run's log as its source kept them (seq, stream, time; no time: now),
    into a run of any status: a re-sent seq is ignored. Past ``NEUROREG_LOG_MAX_BYTES``
    lines are dropped and counted, as for a running run."""
    _importable(session, access, run_id, "log lines")
    return append_batch(session, settings, run_id, body)


@router.put("/{run_id}/artifacts/{name:path}", status_code=status.HTTP_201_CREATED,
            responses=CONFLICT)
async def import_artifact(
    run_id: RunId, name: ArtifactPath, request: Request, session: SessionDep,
    settings: SettingsDep, access: CurrentAccess,
    created_at: Annotated[PastTime | None, Query(
        description="when the source stored it (default now)")] = None,
) -> ArtifactPublic:
    """The request body as artifact ``name`` (a path may have folders) of a run of any
    kind and status, replacing one of that name; up to ``NEUROREG_MAX_UPLOAD_BYTES``. A
    run a worker runs: an admin only (workers read its artifacts back)."""
    _importable(session, access, run_id, "artifacts")
    row = await store_body(request, session, settings, run_id, name)
    if created_at is not None:
        row.created_at = created_at
    session.commit()
    return ArtifactPublic.model_validate(row)


@export_router.get("/{run_id}/points/{key:path}")
def export_points(
    run_id: RunId,
    key: Annotated[str, Path(min_length=1, max_length=128)],
    session: SessionDep,
    access: CurrentAccess,
    after: Annotated[int, Query(ge=-1, le=2**31 - 1, description="the last step you have "
                                "(-1: from the first)")] = -1,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 50_000,
) -> PointsPage:
    """A series' raw points after step ``after``, in step order, never decimated (the
    export reads every point this way, a page at a time)."""
    run_or_404(session, run_id, access)
    rows = points_page(session, run_id, key, after=after, limit=limit)
    return PointsPage(key=key, steps=[r[0] for r in rows], values=[r[1] for r in rows],
                      wall_times=[r[2] for r in rows],
                      next_after=rows[-1][0] if len(rows) == limit else None)

