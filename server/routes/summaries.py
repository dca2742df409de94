"""Summaries across runs: the γ table (the supplement's Table 1), robustness (Fig. 4, 5,
7: noise curves and perturbation medians, mean ± SEM over seeds per condition) and the
accuracy–robustness frontier with each condition against None at matched clean accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import HTTPException, Query, status
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import Access, readable_ids
from core.store.models import MAX_ID, Run, RunStatus
from ml.evaluate.summary import frequency_table, robustness_table
from ml.frontier import DEFAULT_TOLERANCE, FrontierError, frontier
from ml.train.joint import learns_gamma
from ml.train.summary import gamma_table
from server.deps import CurrentAccess, SessionDep
from server.schemas import Frontier, FrontierOfRuns, GammaSummary, RobustnessSummary
from server.strict import CONFLICT, api_router

router = api_router(prefix="/api/summaries", tags=["summaries"])

RunIds = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None, Query(
    max_length=1000, description="run ids (repeatable)")]

# > 0 and finite: NaN or inf is a 422 naming the field, like 0 or a negative
Tolerance = Annotated[float, Query(
    gt=0, allow_inf_nan=False,
    description="largest |clean accuracy − None's| (a fraction) that counts as matched")]


def _picked(session: Session, access: Access, kind: str, run_id: list[int] | None
            ) -> Sequence[Run]:
    """The runs of ``kind`` the caller may read named by ``run_id``; without ids, the
    newest 1,000 succeeded (an id they may not read is ``skipped``, as a missing one)."""
    query = select(Run).where(Run.kind == kind, access.runs())
    query = query.where(Run.id.in_(run_id)) if run_id else query.where(
        Run.status == RunStatus.succeeded).order_by(Run.id.desc()).limit(1000)
    return session.execute(query).scalars().unique().all()


@router.get("/gamma")
def gamma(
    session: SessionDep,
    access: CurrentAccess,
    run_id: RunIds = None,
) -> GammaSummary:
    """Final γ per tapped layer, mean ± SEM over the runs of each group: one condition (target,
    α) of one network setting and one study.

    ``run_id`` (repeatable) picks the runs; without it, every succeeded train run.
    Runs that are not succeeded train runs are listed under ``skipped``; runs that learn no
    γ (``target: none``, or α = 0) under ``no_gamma``.
    """
    runs = _picked(session, access, "train", run_id)
    usable, skipped = train_rows(runs)
    missing = sorted(set(run_id or ()) - {r.id for r in runs})
    with_gamma = [u for u in usable if u["gamma"]]
    return GammaSummary.model_validate({
        "rows": gamma_table(with_gamma), "skipped": sorted(skipped + missing),
        "no_gamma": sorted(u["id"] for u in usable if not u["gamma"])})


def train_rows(runs: Sequence[Run]) -> tuple[list[dict[str, Any]], list[int]]:
    """Finished train runs as γ-table rows (``gamma`` empty for a run that learns none),
    and the ids that are not finished."""
    usable, skipped = [], []
    for r in runs:
        result = r.result or {}
        if r.status is not RunStatus.succeeded or "layers" not in result:
            skipped.append(r.id)
            continue
        usable.append({"id": r.id, "target": r.config.get("target", "none"),
                       "alpha": r.config.get("alpha", 0.0), "seed": r.config.get("seed"),
                       "backbone": r.config.get("backbone"), "width": r.config.get("width"),
                       "dataset": r.config.get("dataset"), "study": r.parent_id,
                       # a run stored before γ was dropped for these may carry a flat one
                       "gamma": (result.get("gamma") or []) if learns_gamma(
                           r.config.get("target", "none"), float(r.config.get("alpha", 20.0)))
                       else [],
                       "layers": result["layers"],
                       "r_taps": result.get("r_similarity_per_tap") or []})
    return usable, skipped


def eval_rows(session: Session, evals: Sequence[Run], access: Access
              ) -> tuple[list[dict[str, Any]], list[int]]:
    """Finished evaluate runs with the condition of the model each evaluated; one whose
    model the caller may not read (moved to another project) is skipped."""
    usable, skipped = [], []
    readable = readable_ids(session, access, [e.input_run_id for e in evals if e.input_run_id])
    for e in evals:
        trained = session.get(Run, e.input_run_id) if e.input_run_id in readable else None
        if e.status is not RunStatus.succeeded or trained is None or not e.result:
            skipped.append(e.id)
            continue
        cfg = trained.config
        usable.append({"id": e.id, "target": cfg.get("target", "none"),
                       "alpha": cfg.get("alpha", 0.0), "backbone": cfg.get("backbone"),
                       "dataset": cfg.get("dataset"), "seed": cfg.get("seed"),
                       "stimulus_norm": cfg.get("stimulus_norm"),
                       "result": e.result})
    return usable, skipped


@router.get("/robustness")
def robustness(
    session: SessionDep,
    access: CurrentAccess,
    run_id: RunIds = None,
) -> RobustnessSummary:
    """Evaluate runs grouped by the condition of the train run each evaluated.

    ``run_id`` (repeatable) picks evaluate runs; without it, every succeeded one.
    """
    evals = _picked(session, access, "evaluate", run_id)
    usable, skipped = eval_rows(session, evals, access)
    missing = sorted(set(run_id or ()) - {e.id for e in evals})
    return RobustnessSummary.model_validate({"rows": robustness_table(usable),
                                             "skipped": sorted(skipped + missing),
                                             "frequency": frequency_table(usable)})


def frontier_or_409(evals: Sequence[dict[str, Any]], tolerance: float) -> Frontier:
    """:func:`ml.frontier.frontier` of ``evals``; what the runs lack for one is a 409."""
    try:
        return Frontier.model_validate(frontier(evals, tolerance=tolerance))
    except FrontierError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.get("/frontier", responses=CONFLICT)
def frontier_of_runs(
    session: SessionDep,
    access: CurrentAccess,
    run_id: RunIds = None,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
) -> FrontierOfRuns:
    """The accuracy–robustness frontier of evaluate runs, and each condition against None
    at the α of closest clean accuracy (within ``tolerance``), paired by seed.

    ``run_id`` (repeatable) picks evaluate runs; without it, every succeeded one. No
    finished evaluation, no None among them, or mixed datasets/backbones: 409.
    """
    evals = _picked(session, access, "evaluate", run_id)
    usable, skipped = eval_rows(session, evals, access)
    missing = sorted(set(run_id or ()) - {e.id for e in evals})
    return FrontierOfRuns(**dict(frontier_or_409(usable, tolerance)),
                          skipped=sorted(skipped + missing))
