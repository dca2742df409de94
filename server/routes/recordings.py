"""Recordings on the server that a similarity run can name in ``config.recording``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server import recordings
from server.deps import CurrentUser, SettingsDep

router = APIRouter(prefix="/api/recordings", tags=["recordings"])


@router.get("")
def list_(settings: SettingsDep, _: CurrentUser) -> dict[str, Any]:
    return {"root": str(settings.recordings), "items": recordings.listing(settings.recordings)}
