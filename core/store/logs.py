"""A run's log lines: idempotent appends under a per-run byte bound, paged reads, and the
``logs.txt`` artifact they become when the run ends.

Lines are keyed by (run, seq): a re-sent line is a no-op. ``Run.log_bytes`` counts the
bytes stored (each line's UTF-8 and its newline). Past the bound (``NEUROREG_LOG_MAX_BYTES``)
lines are dropped, and one marker line at seq :data:`MARKER_SEQ` says how many and how
many bytes, up to which seq: a line re-sent at or below that seq is known (stored or
counted) and changes nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.store.models import MAX_ID, Run, RunLog
from core.store.runs import lock_run

MARKER_SEQ = MAX_ID
"""The marker line's seq: after every line a run can send."""
MARKER_STREAM = "dropped"
STREAMS = ("stdout", "stderr", "log", "client")
"""What a line's ``stream`` says it is: the job's stdout or stderr, a ``logging``
record, or a line a client sent."""
MAX_LINE = 16_384
"""The longest line (characters): capture splits longer ones."""

_MARKER = re.compile(r"^\[neuroreg\] (\d+) lines? \((\d+) bytes\) dropped\b.*up to line (\d+)")


@dataclass(frozen=True)
class Line:
    seq: int
    stream: str
    time: float
    line: str


@dataclass(frozen=True)
class Dropped:
    """What the bound dropped so far: ``lines``, ``bytes``, and the highest ``seq``."""

    lines: int
    bytes: int
    seq: int


@dataclass(frozen=True)
class Appended:
    stored: int
    dropped: int
    skipped: int  # re-sent: stored before, or known to the marker


def size_of(text: str) -> int:
    """A line's bytes against the bound: its UTF-8 and the newline."""
    return len(text.encode("utf-8", "replace")) + 1


def append_lines(session: Session, run_id: int, lines: Sequence[Line], *, max_bytes: int,
                 also_dropped: Dropped | None = None) -> Appended:
    """Store ``lines`` of run ``run_id`` in seq order until the run holds ``max_bytes``;
    the rest is counted in the marker. ``also_dropped``: lines the sender itself could not
    keep (its buffer was full while the store was away), added to the marker.

    The run is locked for the append (:func:`~core.store.runs.lock_run`): two senders
    count bytes and look up seqs one after the other, on either backend.
    """
    lock_run(session, run_id)
    used = session.execute(select(Run.log_bytes).where(Run.id == run_id)).scalar_one()
    marker = dropped_of(session, run_id)
    known_up_to = marker.seq if marker else -1
    wanted = sorted({ln.seq: ln for ln in lines if ln.seq < MARKER_SEQ}.values(),
                    key=lambda ln: ln.seq)
    seqs = [ln.seq for ln in wanted]
    have: set[int] = set()
    if seqs:
        have = set(session.execute(select(RunLog.seq).where(
            RunLog.run_id == run_id, RunLog.seq >= seqs[0], RunLog.seq <= seqs[-1],
            RunLog.seq.in_(seqs))).scalars())
    new: list[RunLog] = []
    n_dropped = b_dropped = skipped = 0
    last_dropped = known_up_to
    for ln in wanted:
        if ln.seq in have or ln.seq <= known_up_to:
            skipped += 1
            continue
        size = size_of(ln.line)
        if marker is None and used + size <= max_bytes:
            used += size
            new.append(RunLog(run_id=run_id, seq=ln.seq, stream=ln.stream, time=ln.time,
                              line=ln.line))
        else:  # past the bound: every later line is dropped too, so the log has no holes
            n_dropped, b_dropped = n_dropped + 1, b_dropped + size
            last_dropped = max(last_dropped, ln.seq)
            marker = marker or Dropped(0, 0, 0)
    if also_dropped is not None and also_dropped.lines:
        n_dropped += also_dropped.lines
        b_dropped += also_dropped.bytes
        last_dropped = max(last_dropped, also_dropped.seq)
    session.add_all(new)
    if new:
        session.execute(update(Run).where(Run.id == run_id).values(log_bytes=used))
    if n_dropped:
        before = dropped_of(session, run_id) or Dropped(0, 0, 0)
        _set_marker(session, run_id, Dropped(before.lines + n_dropped,
                                             before.bytes + b_dropped, last_dropped),
                    max_bytes)
    session.flush()
    return Appended(stored=len(new), dropped=n_dropped, skipped=skipped)


def _set_marker(session: Session, run_id: int, d: Dropped, max_bytes: int) -> None:
    text = (f"[neuroreg] {d.lines} line{'s' if d.lines != 1 else ''} ({d.bytes} bytes) "
            f"dropped: this run's log reached its bound of {max_bytes} bytes "
            f"(NEUROREG_LOG_MAX_BYTES), up to line {d.seq}")
    row = session.get(RunLog, (run_id, MARKER_SEQ))
    if row is None:
        session.add(RunLog(run_id=run_id, seq=MARKER_SEQ, stream=MARKER_STREAM,
                           time=time.time(), line=text))
    else:
        row.line, row.time = text, time.time()


def dropped_of(session: Session, run_id: int) -> Dropped | None:
    """What the bound has dropped of the run's log (None: nothing)."""
    row = session.get(RunLog, (run_id, MARKER_SEQ))
    if row is None:
        return None
    m = _MARKER.match(row.line)
    return Dropped(int(m[1]), int(m[2]), int(m[3])) if m else Dropped(0, 0, 0)


def next_seq(session: Session, run_id: int) -> int:
    """The seq after the run's highest line (0 for none): where a new sender starts, so a
    resumed job's lines follow the earlier attempt's."""
    top = session.execute(select(func.max(RunLog.seq)).where(
        RunLog.run_id == run_id, RunLog.seq < MARKER_SEQ)).scalar_one()
    return 0 if top is None else int(top) + 1


def read_lines(session: Session, run_id: int, *, after: int = -1, limit: int = 1000
               ) -> list[Line]:
    """Up to ``limit`` lines with seq > ``after``, in seq order, the marker excluded; a
    reader that got fewer than ``limit`` is at the end (see :func:`marker_line`)."""
    rows = session.execute(
        select(RunLog.seq, RunLog.stream, RunLog.time, RunLog.line)
        .where(RunLog.run_id == run_id, RunLog.seq > after, RunLog.seq < MARKER_SEQ)
        .order_by(RunLog.seq).limit(limit)).all()
    return [Line(*r) for r in rows]


def marker_line(session: Session, run_id: int) -> Line | None:
    row = session.get(RunLog, (run_id, MARKER_SEQ))
    return None if row is None else Line(row.seq, row.stream, row.time, row.line)


def _all_lines(session: Session, run_id: int, page: int = 5000) -> Iterator[Line]:
    after = -1
    while batch := read_lines(session, run_id, after=after, limit=page):
        yield from batch
        after = batch[-1].seq
    marker = marker_line(session, run_id)
    if marker is not None:
        yield marker


def log_text(session: Session, run_id: int) -> str:
    """The whole log as text, one line each: ``<UTC time> <stream> <line>``."""
    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    return "".join(f"{stamp(ln.time)} {ln.stream:<7} {ln.line}\n"
                   for ln in _all_lines(session, run_id))


def save_log_artifact(session: Session, artifact_root: Path, run_id: int) -> bool:
    """Keep the run's log as its ``logs.txt`` artifact (:data:`ml.artifacts.LOGS`);
    False when it has no lines."""
    from core.store.artifacts import save_artifact
    from ml import artifacts

    text = log_text(session, run_id)
    if not text:
        return False
    save_artifact(session, artifact_root, run_id=run_id, name=artifacts.LOGS,
                  data=text.encode("utf-8", "replace"), media_type="text/plain; charset=utf-8")
    return True
