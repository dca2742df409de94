"""A study's page data: its runs, the aggregates of Fig. 4–7 and Table 1, its
accuracy–robustness frontier, and the paper's values beside them."""

from __future__ import annotations

import shutil
import threading
from typing import Annotated, Any

from fastapi import HTTPException, Query, Request, Response, status

from core.access import Access
from core.store.metrics import binned_many, summarize_keys
from core.store.runs import find_run
from core.studies import children
from ml.evaluate.alignment_summary import alignment_table
from ml.evaluate.attacks import NORM_LABELS, NORMS
from ml.evaluate.summary import frequency_table, robustness_table
from ml.frontier import DEFAULT_TOLERANCE
from ml.paper import paper_values, setting_beside
from ml.study import mean_curves, paired_tests
from ml.train.summary import gamma_table
from server.deps import CurrentAccess, RunId, SessionDep, SettingsDep, run_or_404
from server.report import in_process, nothing_finished, report_zip
from server.routes.summaries import Tolerance, eval_rows, frontier_or_409, train_rows
from server.schemas import CurveRow, Frontier, StudyCurves, StudyDetail
from server.services import runs_public
from server.strict import CONFLICT, ErrorDetail, api_router

router = api_router(prefix="/api/studies", tags=["studies"])


def _study(session: Any, run_id: int, access: Access) -> Any:
    study = run_or_404(session, run_id, access)
    if study.kind != "study":
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"run {run_id} is {'an' if study.kind[0] in 'aeiou' else 'a'} "
                            f"{study.kind} run, not a study")
    return study


@router.get("/{run_id}")
def read(run_id: RunId, session: SessionDep, access: CurrentAccess) -> StudyDetail:
    """The study, its train and evaluate runs, and across seeds per condition: noise
    curves and perturbation medians (mean ± SEM; by α for Fig. 6), the γ table, and
    each condition against ``none`` paired by seed; ``paper``: the paper's reported
    values and its setting beside this study's."""
    study = _study(session, run_id, access)
    kids = list(children(session, study))
    trains = train_rows([k for k in kids if k.kind == "train"])[0]
    evals = eval_rows(session, [k for k in kids if k.kind == "evaluate"], access)[0]
    target = find_run(session, study.input_run_id) if study.input_run_id else None
    if target is not None and not access.can_read(target):  # moved out of their reach
        target = None
    robustness = robustness_table(evals)
    return StudyDetail.model_validate({
        "study": runs_public(session, [study])[0],
        "runs": runs_public(session, kids),
        "robustness": robustness,
        # the norms the evaluations measured, in the figures' order, as they are written
        "norms": [{"name": n, "label": NORM_LABELS[n]} for n in NORMS
                  if any(n in r["medians"] for r in robustness)],
        "gamma": gamma_table([t for t in trains if t["gamma"]]),
        "paired_vs_none": paired_tests(evals),
        "alignment": alignment_table(evals),
        "frequency": frequency_table(evals),
        "paper": {**paper_values(),
                  "beside": setting_beside(study.config, target.config if target else None)},
    })


@router.get("/{run_id}/frontier", responses=CONFLICT)
def frontier(
    run_id: RunId, session: SessionDep, access: CurrentAccess,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
) -> Frontier:
    """The study's accuracy–robustness frontier: per (condition, α) clean accuracy and
    each robustness measure as mean ± SEM over seeds, and each condition against None at
    the α of closest clean accuracy within ``tolerance``, paired by seed. A study with no
    finished evaluation or no evaluated None yet: 409 saying which."""
    kids = [k for k in children(session, _study(session, run_id, access)) if k.kind == "evaluate"]
    return frontier_or_409(eval_rows(session, kids, access)[0], tolerance)


@router.get("/{run_id}/curves")
def curves(
    run_id: RunId, session: SessionDep, access: CurrentAccess,
    key: Annotated[str, Query(min_length=1, max_length=128)] = "test_acc",
    max_points: Annotated[int, Query(ge=2, le=10_000)] = 500,
) -> StudyCurves:
    """A training curve of the study's train runs (finished or not) as mean ± SEM over
    seeds per condition. A series longer than ``max_points`` is averaged over equal bins
    of steps, the same bins for every run. ``keys`` lists what the runs log."""
    trains = [k for k in children(session, _study(session, run_id, access)) if k.kind == "train"]
    keys = sorted({k["key"] for t in trains for k in summarize_keys(session, t.id)})
    if trains and key not in keys:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"key: the study's runs log no {key!r} (they log {keys})")
    width, series = binned_many(session, [t.id for t in trains], key, max_points=max_points)
    runs = [{"id": t.id, "target": t.config.get("target", "none"),
             "alpha": t.config.get("alpha", 0.0), "seed": t.config.get("seed"),
             "steps": steps, "values": values} for t, (steps, values) in zip(trains, series,
                                                                             strict=True)]
    return StudyCurves(key=key, keys=keys, bin_steps=width,
                       rows=[CurveRow.model_validate(r) for r in mean_curves(runs)])


MAX_BUILDS = 2
"""Reports one API process draws at once; another asker meanwhile gets a 503."""
_BUILDS = threading.BoundedSemaphore(MAX_BUILDS)


@router.get("/{run_id}/report", response_class=Response, responses={
    200: {"description": "the report, one folder study-<id>-report/ zipped",
          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
    **CONFLICT,
    503: {"model": ErrorDetail, "description": "No chromium on the server to draw it with "
          "(NEUROREG_CHROMIUM), or the database is unreachable"}})
def report(run_id: RunId, request: Request, session: SessionDep, settings: SettingsDep,
           access: CurrentAccess) -> Response:
    """The study as a folder that opens offline (docs/report.md): ``index.html`` with every
    figure of the study page (interactive) and its tables, each figure as SVG, PDF and
    CSV, the configs, provenance, the API answers it was drawn from, and the commands that
    reproduce it. The study page's button and ``neuroreg report`` fetch this. A study with
    no finished train run: 409 saying what it has."""
    study = _study(session, run_id, access)
    missing = nothing_finished(list(children(session, study)))
    if missing:
        raise HTTPException(status.HTTP_409_CONFLICT, f"study {run_id} has {missing}")
    if not shutil.which(settings.chromium):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"a report is drawn in headless chromium, and there is none at "
                            f"{settings.chromium!r} on the server: install chromium or set "
                            "NEUROREG_CHROMIUM")
    session.rollback()  # no transaction held open while the report is drawn
    if not _BUILDS.acquire(blocking=False):  # each build is a chromium of ~200 MB
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"{MAX_BUILDS} reports are being drawn on this server now; ask "
                            "again in a few seconds", headers={"Retry-After": "5"})
    try:
        base = str(request.base_url).rstrip("/")
        with in_process(request.app, request.headers.get("authorization", "")) as fetch:
            body = report_zip(fetch, run_id, chromium=settings.chromium, server_url=base)
    finally:
        _BUILDS.release()
    return Response(body, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="study-{run_id}-report.zip"'})
