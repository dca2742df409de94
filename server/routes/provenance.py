"""What ran a run (:mod:`neuroreg.provenance`), and how that differs between runs (the
Compare page's provenance diff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, status

from core.access import readable_ids
from core.store.models import MAX_ID
from core.store.provenance import provenance_of
from neuroreg.provenance import diff
from server.deps import CurrentAccess, RunId, SessionDep, run_or_404
from server.schemas import ProvenanceDiff, RunProvenance
from server.strict import ErrorDetail, api_router

router = api_router(prefix="/api", tags=["provenance"])


@router.get("/runs/{run_id}/provenance")
def read(run_id: RunId, session: SessionDep, access: CurrentAccess) -> RunProvenance:
    """The run's provenance: ``git_commit``, ``git_dirty``, ``git_branch``, ``git_root``
    (null outside a git checkout), ``neuroreg_version``, ``python``, ``host``,
    ``platform``, ``torch``, ``cuda``, ``gpus``, ``script`` (an external run's) and
    ``packages`` ({name: version}); ``provenance`` is null for a run that has none (queued,
    or stored before provenance was recorded)."""
    run = run_or_404(session, run_id, access)
    return RunProvenance(run_id=run.id, provenance=run.provenance)


@router.get("/provenance-diff", responses={
    404: {"model": ErrorDetail, "description": "A run named in run_id does not exist"}})
def provenance_diff(
    session: SessionDep,
    access: CurrentAccess,
    run_id: Annotated[list[Annotated[int, Query(ge=1, le=MAX_ID)]], Query(
        min_length=1, max_length=100, description="the runs to compare (repeatable)")],
) -> ProvenanceDiff:
    """What differs in the provenance of runs ``run_id`` (in their order): ``fields``
    (``[{"field", "values"}]``, a value per run), ``packages`` (``[{"name",
    "versions"}]``, a version per run, null where not installed), ``same`` (how many
    fields and packages are equal), ``missing`` (runs without provenance, whose values are
    null and take no part)."""
    ids = list(dict.fromkeys(run_id))
    readable = readable_ids(session, access, ids)
    found = {i: p for i, p in provenance_of(session, ids).items() if i in readable}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"run_id: run {unknown[0]} does not exist")
    provs = [found[i] if isinstance(found[i], dict) else None for i in ids]
    return ProvenanceDiff.model_validate({
        "runs": ids, "missing": [i for i, p in zip(ids, provs, strict=True) if p is None],
        **diff(provs)})
