"""RobustBench-style records of evaluated models and the leaderboard across them
(:mod:`ml.evaluate.record` says what a record holds)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Query, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import Access
from core.store import scores
from core.store.metrics import latest_values
from core.store.models import MAX_ID, Run, RunStatus
from core.store.scores import record_input
from ml.evaluate.autoattack import DEFAULT_EPSILONS
from ml.evaluate.record import (
    COLUMNS,
    LEADERBOARD,
    Column,
    eps_label,
    leaderboard_row,
    model_record,
)
from server.deps import CurrentAccess, RunId, RunIdQuery, SessionDep, run_or_404
from server.schemas import LeaderboardPage, ModelRecord
from server.strict import CONFLICT, api_router

router = api_router(prefix="/api", tags=["records"])

Epsilon = Annotated[float | None, Query(
    gt=0, le=1, allow_inf_nan=False,
    description="the ε whose AutoAttack accuracy this column ranks (images in [0, 1])")]


def _records(session: Session, access: Access, pairs: list[tuple[Run, Run]]
             ) -> list[dict[str, Any]]:
    """The record of each (evaluation, model) pair, with the similarity runs they name
    (those the caller may read)."""
    tests = latest_values(session, [m.id for _, m in pairs], ["test_acc"])
    sim_ids = {m.config.get("target_run") for _, m in pairs} - {None}
    sims = {r.id: r for r in session.execute(
        select(Run).where(Run.id.in_(sim_ids), access.runs())).scalars().unique()
            } if sim_ids else {}
    out = []
    for e, m in pairs:
        sim = sims.get(m.config.get("target_run") or 0)
        out.append(model_record(evaluation=record_input(e),
                                model=record_input(m, tests.get(m.id)),
                                similarity=None if sim is None else record_input(sim)))
    return out


@router.get("/runs/{run_id}/record", responses={
    **CONFLICT, 200: {"model": ModelRecord, "description": "the record (a file to save with "
                                                          "``download=true``)"}})
def record(run_id: RunId, session: SessionDep, access: CurrentAccess,
           download: bool = False) -> Response:
    """The RobustBench-style record of a succeeded evaluate run (``download=true``: as a
    JSON file to save). A train run answers 409 naming its evaluations."""
    run = run_or_404(session, run_id, access)
    if run.kind != "evaluate":
        evals = session.execute(select(Run.id).where(
            Run.input_run_id == run.id, Run.kind == "evaluate",
            Run.status == RunStatus.succeeded, access.runs()).order_by(Run.id)).scalars().all()
        hint = (f"; its succeeded evaluations: {', '.join(map(str, evals))}" if evals
                else "; it has no succeeded evaluation")
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run_id} is a {run.kind} run: records are of evaluate "
                            f"runs{hint if run.kind == 'train' else ''}")
    if run.status is not RunStatus.succeeded or not run.result:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run_id} is {run.status}: a record needs a succeeded "
                            "evaluation")
    model = session.get(Run, run.input_run_id) if run.input_run_id else None
    if model is None or not access.can_read(model):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run_id}: the model it evaluated was deleted (or moved "
                            "where you may not read it)")
    rec = _records(session, access, [(run, model)])[0]
    ModelRecord.model_validate(rec)  # the schema the API publishes says what it holds
    headers = {"Content-Disposition": f'attachment; filename="neuroreg-record-{run_id}.json"'
               } if download else {}
    return Response(json.dumps(rec, indent=1), media_type="application/json",
                    headers=headers)


@router.get("/leaderboard")
def leaderboard(
    session: SessionDep,
    access: CurrentAccess,
    sort: Column = "autoattack_linf",
    order: Literal["desc", "asc"] = "desc",
    dataset: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    study: RunIdQuery = None,
    eps_linf: Epsilon = None,
    eps_l2: Epsilon = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> LeaderboardPage:
    """Every succeeded evaluation of a model that still exists, one row each, sorted by
    ``sort`` (rows without that score last). AutoAttack columns rank robust accuracy at
    ``eps_linf``/``eps_l2`` (default RobustBench's 8/255 and 0.5): an evaluation at
    another ε has no value there, as RobustBench keeps one leaderboard per ε. ``study``
    is the study of the evaluated models. Filtered, sorted and paged in SQL
    (:func:`core.store.scores.leaderboard`); records are built for the page's rows only.
    ``layout``: the columns to show, their headers at these ε."""
    chosen = {k: v for k, v in (("linf", eps_linf), ("l2", eps_l2)) if v is not None}
    eps = {n: chosen.get(n, v[0]) for n, v in DEFAULT_EPSILONS.items()}
    labels = {n: eps_label(v) for n, v in eps.items()}
    pairs, total = scores.leaderboard(
        session, sort=sort, descending=order == "desc", eps=eps, dataset=dataset,
        target=target, owner=owner, study=study, limit=limit, offset=offset,
        readable=access)
    layout = [{**asdict(c), "header": c.heading(labels), "sortable": c.sortable}
              for c in LEADERBOARD]
    return LeaderboardPage.model_validate({
            "items": [leaderboard_row(r, eps) for r in _records(session, access, pairs)],
            "total": total, "limit": limit, "offset": offset, "sort": sort, "order": order,
            "columns": list(COLUMNS), "eps": eps, "eps_labels": labels, "layout": layout})
