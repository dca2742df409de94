"""Artifacts: list, download, and upload into a run (its owner or an admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response

from core.kinds import KINDS
from core.store.artifacts import (
    NAME_MAX,
    NAME_PATTERN,
    PATH_PATTERN,
    UnsafePath,
    download_url,
    get_artifact,
    list_artifacts,
    resolve,
    save_artifact_stream,
)
from core.store.models import Artifact
from server.deps import (
    CurrentAccess,
    RunId,
    SessionDep,
    SettingsDep,
    run_or_404,
    run_to_write,
)
from server.schemas import ArtifactPublic
from server.strict import CONFLICT, api_router, invalid

ArtifactName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=NAME_MAX,
                                   description="the artifact's name")]
ArtifactPath = Annotated[str, Path(pattern=PATH_PATTERN, max_length=NAME_MAX,
                                   description="the artifact's name, or its path: names joined "
                                   "by '/' (an MLflow client's folders)")]
router = api_router(prefix="/api/runs/{run_id}/artifacts", tags=["artifacts"])


@router.get("")
def list_(run_id: RunId, session: SessionDep, access: CurrentAccess) -> list[ArtifactPublic]:
    run_or_404(session, run_id, access)
    return [ArtifactPublic.model_validate(a) for a in list_artifacts(session, run_id)]


@router.get("/{name:path}", response_class=FileResponse, responses={200: {
    "description": "the artifact's bytes, with the media type it was stored with",
    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}})
def download(
    run_id: RunId, name: ArtifactPath, session: SessionDep, settings: SettingsDep,
    access: CurrentAccess,
) -> Response:
    """The artifact's bytes (with an object store, a redirect to a short-lived URL that
    downloads them from it)."""
    run_or_404(session, run_id, access)
    row = get_artifact(session, run_id, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no artifact {name!r}")
    url = download_url(settings.artifacts, row)
    if url is not None:
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    try:
        path = resolve(settings.artifacts, row.path)
    except UnsafePath:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "artifact file unavailable") from None
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "artifact file is missing on disk")
    # an attachment, sandboxed: an uploaded HTML file is downloaded, never run as our page
    return FileResponse(path, media_type=row.media_type, filename=row.name.rsplit("/", 1)[-1],
                        headers={"Content-Security-Policy": "sandbox"})


@router.put("/{name}", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
async def upload(
    run_id: RunId, name: ArtifactName, request: Request, session: SessionDep,
    settings: SettingsDep,
    access: CurrentAccess,
) -> ArtifactPublic:
    """Store the request body as artifact ``name`` of an external run (replacing one of
    that name); the body streams to disk, up to ``NEUROREG_MAX_UPLOAD_BYTES``. A run a
    worker runs takes no uploads: its checkpoints, models and targets are read back by
    workers, so only the worker writes them."""
    run = run_to_write(session, run_id, access, "upload to")
    if KINDS[run.kind].task is not None:  # its worker writes what workers read back
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run_id} is a {run.kind} run: its artifacts are written by "
                            "the worker that runs it; upload into an external run")
    row = await store_body(request, session, settings, run_id, name)
    session.commit()
    return ArtifactPublic.model_validate(row)


async def store_body(request: Request, session: SessionDep, settings: SettingsDep,
                     run_id: int, name: str) -> Artifact:
    """Stream the request body to disk as artifact ``name`` of run ``run_id`` (with the
    body's media type), up to ``NEUROREG_MAX_UPLOAD_BYTES``: a bad name is a 422, a body
    past the bound a 413. The caller commits."""
    media_type = request.headers.get("content-type", "application/octet-stream")[:128]
    try:
        return await save_artifact_stream(
            session, settings.artifacts, run_id=run_id, name=name, chunks=request.stream(),
            media_type=media_type, limit=settings.max_upload_bytes)
    except UnsafePath as exc:
        raise invalid(["path", "name"], str(exc)) from None
    except OverflowError as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
