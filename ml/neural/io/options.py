"""How a recording is imported: the NWB importer's options, as a similarity run's config
names them (``importer``) and ``neuroreg recordings inspect`` takes them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le

from ml._validate import validate_config


@dataclass(frozen=True, kw_only=True)
class ImportOptions:
    """How an NWB 2 recording is read (docs/recordings.md); Sensorium trees and ``.npz``
    files take none of these.

    Attributes:
        responses: the RoiResponseSeries to use, by its path
            (``processing/ophys/Fluorescence/traces``), ``container/series`` or a unique
            name; empty: the first, DfOverF before Fluorescence.
        intervals: the presentation table in ``nwb.intervals`` (or an IndexSeries in
            ``nwb.stimulus``); empty: found by its image column.
        template: the entry of ``nwb.stimulus_template`` when there are several.
        image_column: the table column holding each presentation's frame; empty: the
            first of image_id, frame, image_index, stimulus_index, image.
        allow_missing_behavior: zeros for pupil or running series the file lacks,
            instead of refusing it.
        behavior_gaps: a presentation a behaviour series has no sample in (a tracking
            dropout): ``error``, ``fill`` (interpolated) or ``drop`` the presentation.
        response_offset: seconds from onset to the start of the response window (the
            indicator's rise; GCaMP6 peaks 0.2–0.5 s after a flash).
        response_window: the window's length in seconds; empty: the presentation's.
        frame_fit: frames not 9:16 are refused (``refuse``), centre-cropped (``crop``) or
            padded with their mean grey (``pad``).
    """

    responses: str | None = None
    intervals: str | None = None
    template: str | None = None
    image_column: str | None = None
    allow_missing_behavior: bool = False
    behavior_gaps: Literal["error", "fill", "drop"] = "error"
    response_offset: Annotated[float, Ge(0.0), Le(10.0)] = 0.0
    response_window: Annotated[float, Gt(0.0), Le(60.0)] | None = None
    frame_fit: Literal["refuse", "crop", "pad"] = "refuse"

    def __post_init__(self) -> None:
        validate_config(self)
        for name in ("responses", "intervals", "template", "image_column"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                object.__setattr__(self, name, None)  # the form's empty field: unset

    def given(self) -> list[str]:
        """The options set to other than their default."""
        default = ImportOptions()
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)]

    def nwb(self) -> dict[str, Any]:
        """Keyword arguments for :func:`ml.neural.io.nwb.load_nwb`."""
        return asdict(self)
