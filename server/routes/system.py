"""Health (the one unauthenticated route) and the current user."""

from __future__ import annotations

from sqlalchemy import text

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
