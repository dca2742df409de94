"""Studies: fan a grid out into train runs, an evaluate run after each finished train
run, and the study's outcome when its last child finishes (applied by
:mod:`core.lifecycle`, the only code that changes a run's status).

A study's children are runs with ``parent_id`` = the study; each train run reads the
study's target run, each evaluate run reads its train run (``input_run_id``). The
functions here change the store and return the runs to enqueue; callers enqueue after
commit, so a worker never picks up a run it cannot see yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.models import Run, RunStatus
from core.store.runs import create_run, set_progress
from ml.study import StudyConfig, reference_of, study_cells


def children(session: Session, study: Run) -> Sequence[Run]:
    """The runs the study made: its owner's train and evaluate runs under it (the API
    lets no one else attach a run to a study; rows from before it did are not counted),
    as the store holds them now (a status changed by an UPDATE in this transaction too)."""
    return session.execute(
        select(Run).where(Run.parent_id == study.id, Run.owner_id == study.owner_id,
                          Run.kind.in_(("train", "evaluate"))).order_by(Run.id)
        .execution_options(populate_existing=True)
    ).scalars().unique().all()


def fan_out(session: Session, study: Run) -> list[Run]:
    """Create the study's train runs (once: a redelivered study task creates none), and
    return them in the order to queue them: seed by seed, each seed's conditions together,
    so the first seed's paired models train (and, queued ahead of trains, are evaluated)
    first — a study shows its first paired row while the rest still trains."""
    if children(session, study):
        return []
    config = StudyConfig(**study.config)
    runs = []
    for cell in study_cells(config):
        alpha = "" if cell.condition == "none" else f" α={cell.alpha:g}"
        runs.append(create_run(
            session, owner=study.owner, kind="train",
            name=f"{study.name or f'study {study.id}'}: {cell.condition}{alpha} seed {cell.seed}",
            config=dataclasses.asdict(cell.train), parent_id=study.id,
            input_run_id=cell.train.target_run))
    set_progress(session, study.id, 0.0, f"0/{2 * len(runs)} runs finished")
    return sorted(runs, key=lambda r: int(r.config["seed"]))  # stable: conditions' order


@dataclasses.dataclass
class Step:
    """What a child's end means for its study: ``new`` runs to create (already added to
    the session), and the study's ``outcome`` (status, result, error) once its last child
    has finished. :mod:`core.lifecycle` applies it."""

    study_id: int | None = None
    new: list[Run] = dataclasses.field(default_factory=list)
    outcome: tuple[RunStatus, dict[str, Any], str | None] | None = None


def advance(session: Session, run_id: int) -> Step:
    """After a child finished: create the evaluation of a succeeded train run, update the
    study's progress, and say how the study ends once every child has finished. Called by
    :mod:`core.lifecycle` on every end of a run, in its transaction."""
    run = _fresh(session, run_id)
    if run is None or run.parent_id is None or run.kind not in ("train", "evaluate"):
        return Step()
    study = _fresh(session, run.parent_id)
    if study is None or study.kind != "study" or study.status.finished \
            or run.owner_id != study.owner_id:
        return Step()
    step = Step(study_id=study.id)
    kids = list(children(session, study))
    pending = [k for k in kids if k.kind == "train" and k.status is RunStatus.succeeded
               and not any(e.kind == "evaluate" and e.input_run_id == k.id for e in kids)]
    if run.kind == "train" and pending:
        try:
            config = StudyConfig(**study.config)
        except (TypeError, ValueError) as exc:  # stored by an older version, say: the
            # study cannot go on, and the child's own end must not be lost with it
            step.outcome = (RunStatus.failed, {"runs": len(kids), "failed": []},
                            f"its stored config no longer validates: {exc}")
            return step
        for trained in pending:
            reference = _reference(config, trained, kids)
            if reference == _WAIT:  # its None model is still training
                continue
            evaluate = dataclasses.replace(config.evaluate, train_run=trained.id,
                                           reference_run=reference)
            step.new.append(create_run(
                session, owner=study.owner, kind="evaluate", name=f"{trained.name}: evaluate",
                config=dataclasses.asdict(evaluate), parent_id=study.id,
                input_run_id=trained.id))
        kids += step.new
    trains = [k for k in kids if k.kind == "train"]
    expected = len(trains) + sum(k.status is RunStatus.succeeded for k in trains)
    finished = [k for k in kids if k.status.finished]
    set_progress(session, study.id, len(finished) / max(2 * len(trains), 1),
                 f"{len(finished)}/{2 * len(trains)} runs finished")
    if len(finished) == expected and not step.new:
        failed = [k.id for k in finished if k.status is not RunStatus.succeeded]
        result: dict[str, Any] = {"runs": len(kids), "failed": failed}
        step.outcome = (RunStatus.failed, result,
                        f"{len(failed)} of {len(kids)} runs did not succeed: {failed}"
                        ) if failed else (RunStatus.succeeded, result, None)
    return step


_WAIT = -1


def _reference(config: StudyConfig, trained: Run, kids: Sequence[Run]) -> int | None:
    """The reference_run of a succeeded train run's evaluation: the study's own, or with
    ``soundness`` the None model of its seed (:func:`ml.study.reference_of`) once that
    has finished — :data:`_WAIT` while it trains; None where it did not succeed (the
    evaluation then runs without transfer attacks and says so)."""
    cell = reference_of(config, str(trained.config.get("target", "none")),
                        int(trained.config.get("seed", 0)))
    if cell is None:
        return config.evaluate.reference_run
    condition, seed = cell
    ref = next((k for k in kids if k.kind == "train" and k.config.get("target") == condition
                and k.config.get("seed") == seed), None)
    if ref is None:
        return None
    if not ref.status.finished:
        return _WAIT
    return ref.id if ref.status is RunStatus.succeeded else None


def _fresh(session: Session, run_id: int) -> Run | None:
    return session.execute(select(Run).where(Run.id == run_id)
                           .execution_options(populate_existing=True)).scalars().first()
