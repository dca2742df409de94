"""Recordings on the server that a similarity run can name in ``config.recording``."""

from __future__ import annotations

from typing import Any

from server import recordings
from server.deps import CurrentUser, SettingsDep
from server.strict import api_router

router = api_router(prefix="/api/recordings", tags=["recordings"])


@router.get("")
def list_(settings: SettingsDep, _: CurrentUser) -> dict[str, Any]:
    return {"root": str(settings.recordings), "items": recordings.listing(settings.recordings)}
