"""Summaries across runs: the γ table (the supplement's Table 1)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from ml.train.summary import gamma_table
from server.deps import CurrentUser, SessionDep
from server.store.models import Run, RunStatus

router = APIRouter(prefix="/api/summaries", tags=["summaries"])


@router.get("/gamma")
def gamma(
    session: SessionDep,
    _: CurrentUser,
    run_id: Annotated[list[int] | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    """Final γ per tapped layer, mean ± SEM over the runs of each (target, α) group.

    ``run_id`` (repeatable) picks the runs; without it, every succeeded train run.
    Runs that are not succeeded train runs are listed under ``skipped``.
    """
    query = select(Run).where(Run.kind == "train")
    query = query.where(Run.id.in_(run_id)) if run_id else query.where(
        Run.status == RunStatus.succeeded).order_by(Run.id.desc()).limit(1000)
    runs = session.execute(query).scalars().unique().all()
    usable, skipped = [], []
    for r in runs:
        result = r.result or {}
        if r.status is not RunStatus.succeeded or "gamma" not in result:
            skipped.append(r.id)
            continue
        usable.append({"id": r.id, "target": r.config.get("target", "none"),
                       "alpha": r.config.get("alpha", 0.0), "seed": r.config.get("seed"),
                       "backbone": r.config.get("backbone"), "gamma": result["gamma"],
                       "layers": result["layers"]})
    missing = sorted(set(run_id or ()) - {r.id for r in runs})
    return {"rows": gamma_table(usable), "skipped": sorted(skipped + missing)}
