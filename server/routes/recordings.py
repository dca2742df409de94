"""Recordings on the server that a similarity run can name in ``config.recording``."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core import recordings
from ml.neural.io.options import ImportOptions
from server.deps import CurrentUser, SettingsDep
from server.schemas import RecordingInspection, Recordings
from server.strict import api_router, invalid

router = api_router(prefix="/api/recordings", tags=["recordings"])


@router.get("")
def list_(settings: SettingsDep, _: CurrentUser) -> Recordings:
    return Recordings.model_validate({"root": str(settings.recordings),
                                      "items": recordings.listing(settings.recordings)})


class InspectBody(BaseModel):
    """A recording under the server's root and the options to import it with."""

    model_config = ConfigDict(extra="forbid")
    recording: Annotated[str, Field(min_length=1, max_length=1000)]
    importer: ImportOptions = Field(default_factory=ImportOptions)


@router.post("/inspect")
def inspect(body: InspectBody, settings: SettingsDep, _: CurrentUser) -> RecordingInspection:
    """What a similarity run would import from ``recording`` with ``importer``: per file,
    the series, presentations, repeats, tiers and behaviour it would take (NWB: by
    path), and what it would drop and why. A file the import would refuse is a 422 with
    the importer's message, naming ``recording``."""
    from core.store.runs import NotFound
    from ml.neural.io.inspect import inspect_recording
    from ml.neural.scan import RecordingError

    try:
        path = recordings.resolve(settings.recordings, body.recording, "recording")
    except NotFound as exc:
        raise invalid(["body", "recording"], exc.message, "not_found") from None
    try:
        files = inspect_recording(path, body.importer)
    except RecordingError as exc:
        root = str(settings.recordings.resolve()) + "/"
        raise invalid(["body", "recording"], str(exc).replace(root, ""),
                      "recording_refused") from None
    root = str(settings.recordings.resolve()) + "/"
    for f in files:  # paths as a similarity run names them: under the root
        f["path"] = f["path"].removeprefix(root)
    return RecordingInspection.model_validate({"recording": body.recording,
                                               "importer": body.importer, "files": files})
