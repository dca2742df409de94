"""Artifacts: list and download."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from server.deps import CurrentUser, SessionDep, SettingsDep, run_or_404
from server.schemas import ArtifactPublic
from server.store.artifacts import UnsafePath, get_artifact, list_artifacts, resolve

router = APIRouter(prefix="/api/runs/{run_id}/artifacts", tags=["artifacts"])


@router.get("")
def list_(run_id: int, session: SessionDep, _: CurrentUser) -> list[ArtifactPublic]:
    run_or_404(session, run_id)
    return [ArtifactPublic.model_validate(a) for a in list_artifacts(session, run_id)]


@router.get("/{name}", response_class=FileResponse)
def download(
    run_id: int, name: str, session: SessionDep, settings: SettingsDep, _: CurrentUser
) -> FileResponse:
    run_or_404(session, run_id)
    row = get_artifact(session, run_id, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no artifact {name!r}")
    try:
        path = resolve(settings.artifacts, row.path)
    except UnsafePath:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "artifact file unavailable") from None
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "artifact file is missing on disk")
    return FileResponse(path, media_type=row.media_type, filename=row.name)
