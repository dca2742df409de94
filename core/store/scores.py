"""The leaderboard's scores in SQL: each succeeded evaluation's sortable columns
(:func:`ml.evaluate.record.scores`) stored in ``evaluation_scores`` when it ends, so the
leaderboard filters, sorts and pages in one query and builds records only for its page.

The scores are the record's own numbers: written by the same code that builds the rows
(:func:`ml.evaluate.record.model_record`), rewritten on every end of the run (a failed or
cancelled end leaves none), deleted with the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session, aliased

from core.store.models import EvaluationScore, Run, RunStatus, User
from core.store.query import config_absent, field_column
from ml.evaluate.autoattack import THREAT_MODELS
from ml.evaluate.record import model_record, scores

EPS_TOLERANCE = 1e-6
"""Relative: an AutoAttack score ranks at ε when its ε is this close (``math.isclose``,
as :func:`ml.evaluate.record.leaderboard_row` matches it)."""

if TYPE_CHECKING:
    from core.access import Access


def record_input(run: Run, last_metrics: Mapping[str, float] | None = None
                 ) -> dict[str, Any]:
    """A run as :func:`ml.evaluate.record.model_record` reads an evaluation, its model or
    a similarity run (``last_metrics``: the model's latest ``test_acc``)."""
    return {"id": run.id, "name": run.name, "owner": run.owner.name, "config": run.config,
            "result": run.result, "parent_id": run.parent_id,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "last_metrics": dict(last_metrics or {})}


def write_scores(session: Session, run_id: int) -> int:
    """Replace the scores of evaluate run ``run_id`` by those of its record: none unless it
    succeeded with a result and the model it evaluated still exists. Returns how many
    were written (0 for a run of another kind)."""
    row = session.execute(select(Run.kind, Run.status, Run.result, Run.input_run_id)
                          .where(Run.id == run_id)).one_or_none()
    if row is None or row.kind != "evaluate":
        return 0
    session.execute(delete(EvaluationScore).where(EvaluationScore.run_id == run_id))
    if row.status is not RunStatus.succeeded or not row.result or row.input_run_id is None:
        return 0
    model = session.execute(select(Run.id, Run.config, Run.parent_id)
                            .where(Run.id == row.input_run_id)).one_or_none()
    if model is None:
        return 0
    rec = model_record(evaluation={"id": run_id, "result": row.result},
                       model={"id": model.id, "config": model.config,
                              "parent_id": model.parent_id})
    values = [{"run_id": run_id, "column": column, "eps": eps, "value": value}
              for column, eps, value in scores(rec)]
    if values:
        session.execute(insert(EvaluationScore), values)
    return len(values)


def _eps_close(stored: Any, eps: float) -> ColumnElement[bool]:
    """``stored`` within :data:`EPS_TOLERANCE` of ``eps``, relative to the larger."""
    larger = case((stored > eps, stored), else_=eps)
    return func.abs(stored - eps) <= EPS_TOLERANCE * larger


def leaderboard(session: Session, *, sort: str, descending: bool, eps: Mapping[str, float],
                dataset: str | None = None, target: str | None = None,
                owner: str | None = None, study: int | None = None, limit: int = 100,
                offset: int = 0, readable: Access | None = None
                ) -> tuple[list[tuple[Run, Run]], int]:
    """One page of the leaderboard: (evaluation, model) pairs and how many rows there are.

    Every succeeded evaluate run that has scores (a non-empty result) of a model that
    still exists, filtered by the model's ``study`` (its parent), the evaluation's
    ``owner`` (a user name), the model's config ``dataset`` and ``target`` (a config
    without one is ``none``); sorted by the score ``sort`` (AutoAttack's at ``eps`` of its
    threat model), rows without one last in either order, ties newest evaluation first.

    Args:
        sort: a column of :data:`ml.evaluate.record.COLUMNS`.
        descending: highest first.
        eps: threat model → the ε its AutoAttack column ranks.
        readable: only rows whose evaluation and model the caller may read.
    """
    evaluation = aliased(Run, name="evaluation")
    dialect = session.get_bind().dialect.name
    where: list[ColumnElement[bool]] = [
        evaluation.kind == "evaluate", evaluation.status == RunStatus.succeeded,
        exists().where(EvaluationScore.run_id == evaluation.id)]
    if readable is not None:
        where += [readable.runs(evaluation.project_id), readable.runs()]
    if study is not None:
        where.append(Run.parent_id == study)  # Run: the model (config fields are its)
    if owner:
        where.append(exists().where(User.id == evaluation.owner_id, User.name == owner))
    if dataset:
        where.append(field_column("config.dataset", 0, dialect, "string") == dataset)
    if target:
        same = field_column("config.target", 0, dialect, "string") == target
        where.append(or_(same, config_absent(["target"], dialect)) if target == "none"
                     else same)
    rows = select(evaluation, Run).join(Run, evaluation.input_run_id == Run.id).where(*where)
    total = session.execute(select(func.count()).select_from(
        rows.with_only_columns(evaluation.id).subquery())).scalar_one()
    score = aliased(EvaluationScore)
    norm = next((n for n in THREAT_MODELS if sort == f"autoattack_{n}"), None)
    at = score.eps == 0.0 if norm is None else _eps_close(score.eps, eps[norm])
    page = session.execute(
        rows.outerjoin(score, and_(score.run_id == evaluation.id, score.column == sort, at))
        .order_by(score.value.is_(None), score.value.desc() if descending else score.value,
                  evaluation.id.desc())
        .limit(limit).offset(offset)).unique().all()
    return [(e, m) for e, m in page], total
