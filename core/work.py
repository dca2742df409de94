"""What a worker does to the store, one function per action, for both kinds of worker:
one with the database URL and the artifact folder (:class:`worker.backend.Direct` calls
these in its own sessions) and one with only the server's URL, a worker token and the
broker (:class:`worker.backend.Remote` asks ``/api/worker/...``, whose routes call these).

A worker over the API may act only on what its job needs: the run its token claimed
(:func:`held`), and what that run reads — the runs it names in its config and, through
them, theirs (:func:`readable`), and the files under the recordings and models roots
their configs name (:func:`named_files`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import recordings
from core.lifecycle import finish_run, release_run, start_run
from core.settings import Settings
from core.store.logs import Line, append_lines, next_seq, save_log_artifact
from core.store.models import Run, RunRead, RunStatus, WorkerClaim
from core.store.runs import NotFound, find_run, get_run, lock_run

log = logging.getLogger(__name__)

MAX_DEPTH = 4
"""How far back a run's reads are followed (evaluate → train → similarity is 2)."""


class NotHeld(Exception):
    """The run is not one this worker token claimed."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """A run a worker took: its kind and stored config; or, when another worker holds
    it, ``holder`` (that worker's ``host:pid``) and no kind."""

    kind: str | None
    config: dict[str, Any] | None
    holder: str | None = None


def claim(session: Session, settings: Settings, run_id: int, *, worker: str,
          takeover: str | None = None, token_id: int | None = None) -> Claim | None:
    """Start a queued run for ``worker`` (or a running one whose heartbeat is stale, or
    whose worker ``takeover`` names, which the caller saw is dead on its host). None when
    the run does not exist or has finished; a :class:`Claim` with its ``holder`` when
    another worker is alive on it."""
    run = find_run(session, run_id)
    if run is None or run.status.finished:
        return None
    dead = takeover is not None and run.worker == takeover and (
        token_id is None or _claimer(session, run_id) == token_id)
    stale = 0.0 if dead else settings.stale_after_s
    if not start_run(session, run_id, stale_after=stale, worker=worker,
                     worker_token_id=token_id):
        return Claim(None, None, holder=run.worker)
    session.refresh(run)
    return Claim(run.kind, dict(run.config or {}))


def held(session: Session, run_id: int, token_id: int) -> Run:
    """The run, when ``token_id`` claimed it (it may have ended since: a worker finishes
    what it started, and a cancel comes while it runs).

    Raises:
        NotHeld: it does not exist or another token (or a worker without one) holds it.
    """
    run = find_run(session, run_id)
    if run is None or _claimer(session, run_id) != token_id:
        raise NotHeld(f"run {run_id} is not one this worker token claimed")
    return run


def _claimer(session: Session, run_id: int) -> int | None:
    row = session.get(WorkerClaim, run_id)
    return None if row is None else row.token_id


def readable(session: Session, run: Run) -> set[int]:
    """The runs a worker holding ``run`` may read: itself and, up to :data:`MAX_DEPTH`
    steps back, the runs it reads (:mod:`core.lineage`): an evaluation reads its train
    run and, through it, the similarity run it was trained toward."""
    seen, frontier = {run.id}, {run.id}
    for _ in range(MAX_DEPTH):
        frontier = set(session.execute(select(RunRead.input_run_id).where(
            RunRead.run_id.in_(frontier))).scalars()) - seen
        if not frontier:
            break
        seen |= frontier
    return seen


def named_files(config: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (root, name) files a stored config names under the server's folders: a
    similarity run's recording (``recordings``), a cnn-features network's weights
    (``models``)."""
    out: set[tuple[str, str]] = set()
    if config.get("source") == "recording" and isinstance(config.get("recording"), str):
        out.add(("recordings", config["recording"]))
    features = config.get("features")
    if isinstance(features, Mapping) and isinstance(features.get("weights"), str):
        out.add(("models", features["weights"]))
    return out


def shared_file(session: Session, settings: Settings, run: Run, root: str, name: str) -> Path:
    """A file (or folder) under the server's ``recordings`` or ``models`` root that
    ``run`` or a run it reads names in its config.

    Raises:
        NotHeld: no such run names it.
        NotFound: it is not there.
    """
    allowed: set[tuple[str, str]] = set()
    for r in session.execute(select(Run).where(Run.id.in_(readable(session, run)))).scalars():
        if isinstance(r.config, Mapping):
            allowed |= named_files(r.config)
    if (root, name) not in allowed:
        raise NotHeld(f"{root} {name!r} is not named by run {run.id} or a run it reads")
    base = settings.recordings if root == "recordings" else settings.models
    return recordings.resolve(base, name, field="name")


def files_of(path: Path) -> list[tuple[str, int]]:
    """A recording's files as (path relative to it, bytes): one, named ``""``, for a
    file; each file below a folder."""
    if path.is_file():
        return [("", path.stat().st_size)]
    return sorted((str(f.relative_to(path)), f.stat().st_size)
                  for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def finish(session: Session, settings: Settings, celery: Celery, run_id: int,
           status: RunStatus, *, error: str | None = None,
           result: dict[str, Any] | None = None,
           check: Callable[[], None] | None = None) -> list[tuple[int, str]]:
    """Record a run's end (a cancel that came meanwhile stands), queue what it creates (a
    succeeded study child's evaluation) and tell its study; the (id, kind) queued.
    ``check``: called before the end is committed (the API reads the result as its pages
    do); what it raises leaves the transaction for the caller to roll back."""
    follow = [(r.id, r.kind) for r in finish_run(session, run_id, status, error=error,
                                                 result=result)]
    if check is not None:
        check()
    session.commit()
    enqueue(celery, settings, follow)
    tell_study(session, settings, run_id, status, follow)
    return follow


def release(session: Session, settings: Settings, celery: Celery, run_id: int, *,
            worker: str, message: str) -> bool:
    """Hand a run this worker is stopping for its shutdown back to the queue (a cancel
    that came meanwhile stands); whether it was."""
    handed = release_run(session, run_id, worker=worker, message=message)
    session.commit()
    if handed:
        enqueue(celery, settings, [(run_id, get_run(session, run_id).kind)])
    return handed


def enqueue(celery: Celery, settings: Settings, runs: Sequence[tuple[int, str]],
            packs: Sequence[list[int]] = ()) -> None:
    """Queue stored runs, those in ``packs`` as one pack task each."""
    from core.submit import enqueue_pack, enqueue_runs

    packed = {r for p in packs for r in p}
    for p in packs:
        enqueue_pack(celery, p)
    enqueue_runs(celery, settings.db_url, [r for r in runs if r[0] not in packed])


def children_to_queue(session: Session, study: Run, runs: Sequence[int],
                      packs: Sequence[Sequence[int]]) -> tuple[list[tuple[int, str]],
                                                                list[list[int]]]:
    """The (id, kind) of ``runs`` and the ``packs`` a worker asks to queue for the study it
    holds, each checked to be a queued child of it.

    Raises:
        NotHeld: one is not.
    """
    wanted = set(runs) | {r for p in packs for r in p}
    rows = {r.id: r for r in session.execute(select(Run).where(
        Run.id.in_(wanted))).scalars()} if wanted else {}
    for r in wanted:
        row = rows.get(r)
        if row is None or row.parent_id != study.id or row.status is not RunStatus.queued:
            raise NotHeld(f"run {r} is not a queued run of study {study.id}")
    return [(r, rows[r].kind) for r in runs], [list(p) for p in packs]


def tell_study(session: Session, settings: Settings, run_id: int, status: RunStatus,
               follow: Sequence[tuple[int, str]]) -> None:
    """A line in the parent study's log when one of its runs ends: how it ended, what it
    queued next, and how many of the study's runs have finished."""
    try:
        run = get_run(session, run_id)
        if run.parent_id is None:
            return
        study = run.parent_id
        counts = dict(session.execute(select(Run.status, func.count()).where(
            Run.parent_id == study).group_by(Run.status)).all())
        ended = sum(n for st, n in counts.items() if st in (
            RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled))
        text = f"run {run_id} ({run.kind}{f' {run.name}' if run.name else ''}) {status.value}"
        if follow:
            text += "; queued " + ", ".join(f"{kind} run {r}" for r, kind in follow)
        text += f"; {ended}/{sum(counts.values())} of the study's runs finished"
        lock_run(session, study)  # the seq read and the append in one turn
        append_lines(session, study, [Line(next_seq(session, study), "log", time.time(), text)],
                     max_bytes=settings.log_max_bytes)
        if get_run(session, study).status in (RunStatus.succeeded, RunStatus.failed,
                                              RunStatus.cancelled):
            save_log_artifact(session, settings.artifacts, study)  # its logs.txt, complete
        session.commit()
    except Exception:  # noqa: BLE001 — the run's outcome stands without the line
        session.rollback()
        log.warning("run %s: no line in its study's log", run_id, exc_info=True)


def worker_token_problem(url: str, token: str) -> tuple[str | None, dict[str, Any]]:
    """Whether a worker over the API could start: (why not, or None; the token's name and
    its admin, when the server took it) — for ``neuroreg worker`` and ``slurm up``."""
    import httpx

    try:
        r = httpx.get(f"{url}/api/worker", timeout=10,
                      headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        return f"server: cannot reach {url} (NEUROREG_API_URL): {type(exc).__name__}", {}
    if r.status_code != 200:
        return f"worker token: {url} refused NEUROREG_WORKER_TOKEN ({r.status_code})", {}
    return None, dict(r.json())


__all__ = ["Claim", "NotFound", "NotHeld", "claim", "children_to_queue", "enqueue",
           "files_of", "finish", "held", "named_files", "readable", "release",
           "shared_file", "tell_study", "worker_token_problem"]
