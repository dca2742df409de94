"""Health (the one unauthenticated route), the current user, and the names of the
artifacts runs store."""

from __future__ import annotations

from sqlalchemy import text

from ml import artifacts
from server.deps import CurrentUser, SessionDep
from server.schemas import UserPublic
from server.strict import api_router

router = api_router(prefix="/api", tags=["system"])


@router.get("/health")
def health(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.get("/artifact-names")
def artifact_names(_: CurrentUser) -> dict[str, str]:
    """The artifact each role is stored under (``model``: a train run's network,
    ``figures``: a similarity run's Fig. 1 panels, …), from :mod:`ml.artifacts`: pages ask
    here instead of spelling names."""
    return artifacts.public()
