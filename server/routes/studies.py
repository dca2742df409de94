"""A study's page data: its runs and the aggregates of Fig. 4–7 and Table 1."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from ml.evaluate.summary import robustness_table
from ml.study import paired_tests
from ml.train.summary import gamma_table
from server.deps import CurrentUser, SessionDep, run_or_404
from server.routes.summaries import eval_rows, train_rows
from server.services import runs_public
from server.studies import children

router = APIRouter(prefix="/api/studies", tags=["studies"])


@router.get("/{run_id}")
def read(run_id: int, session: SessionDep, _: CurrentUser) -> dict[str, Any]:
    """The study, its train and evaluate runs, and across seeds per condition: noise
    curves and perturbation medians (mean ± SEM; by α for Fig. 6), the γ table, and
    each condition against ``none`` paired by seed."""
    study = run_or_404(session, run_id)
    if study.kind != "study":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} is not a study")
    kids = list(children(session, run_id))
    trains = train_rows([k for k in kids if k.kind == "train"])[0]
    evals = eval_rows(session, [k for k in kids if k.kind == "evaluate"])[0]
    return {
        "study": runs_public(session, [study])[0],
        "runs": runs_public(session, kids),
        "robustness": robustness_table(evals),
        "gamma": gamma_table(trains),
        "paired_vs_none": paired_tests(evals),
    }
