"""Runs' provenance (:mod:`neuroreg.provenance`): what ran them, stored on the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.store.models import Run


def set_provenance(session: Session, run_id: int, provenance: dict[str, Any]) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(provenance=provenance))


def provenance_of(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, Any] | None]:
    """Each existing run's provenance (None: it has none) by id; unknown ids are left out."""
    rows = session.execute(select(Run.id, Run.provenance).where(Run.id.in_(list(run_ids))))
    return {i: p for i, p in rows}
