"""A run's system metrics as the run page's System figure."""

from __future__ import annotations

from server.deps import CurrentAccess, RunId, SessionDep, run_or_404
from server.schemas import SystemFigure
from server.strict import api_router
from server.system_figure import system_figure

router = api_router(prefix="/api/runs/{run_id}/system", tags=["metrics"])


@router.get("")
def figure(run_id: RunId, session: SessionDep, access: CurrentAccess) -> SystemFigure:
    """The run's ``system/*`` series (CPU, memory and, on CUDA, each GPU's utilization,
    memory and power) as the System figure's panels over time (empty without them)."""
    return SystemFigure.model_validate(system_figure(session, run_or_404(session, run_id, access)))
