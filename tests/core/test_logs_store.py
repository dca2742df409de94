"""Run logs in the store on SQLite and PostgreSQL: idempotent appends by seq, the byte
bound and its one marker line, paged reads, the logs.txt artifact."""

from pathlib import Path

from core.store.db import migrate, session_scope
from core.store.logs import (
    MARKER_SEQ,
    Appended,
    Dropped,
    Line,
    append_lines,
    dropped_of,
    log_text,
    marker_line,
    next_seq,
    read_lines,
    save_log_artifact,
    size_of,
)
from core.store.models import Role, Run
from core.store.runs import create_run
from core.store.users import create_user
from tests.concurrently import at_once


def _run(db_url: str) -> int:
    migrate(db_url)
    with session_scope(db_url) as s:
        user = create_user(s, name="ada", role=Role.member)
        return create_run(s, owner=user, kind="external", name="r", config={}).id


def _lines(start: int, n: int, text: str = "line") -> list[Line]:
    return [Line(i, "stdout", 1000.0 + i, f"{text} {i}") for i in range(start, start + n)]


def test_appends_are_idempotent_by_seq_and_read_in_pages(db_url: str) -> None:
    run_id = _run(db_url)
    with session_scope(db_url) as s:
        assert next_seq(s, run_id) == 0
        assert append_lines(s, run_id, _lines(0, 5), max_bytes=10**6).stored == 5
    with session_scope(db_url) as s:  # a retry re-sends 3 and 4 (other text: ignored)
        done = append_lines(s, run_id, _lines(3, 4, "again"), max_bytes=10**6)
        assert (done.stored, done.skipped, done.dropped) == (2, 2, 0)
    with session_scope(db_url) as s:
        assert next_seq(s, run_id) == 7
        first = read_lines(s, run_id, after=-1, limit=4)
        assert [ln.seq for ln in first] == [0, 1, 2, 3] and first[3].line == "line 3"
        rest = read_lines(s, run_id, after=first[-1].seq, limit=100)
        assert [(ln.seq, ln.line) for ln in rest] == [(4, "line 4"), (5, "again 5"),
                                                      (6, "again 6")]
        assert s.get(Run, run_id).log_bytes == sum(
            size_of(ln.line) for ln in first + rest)
        assert dropped_of(s, run_id) is None and marker_line(s, run_id) is None


def test_past_the_bound_lines_are_dropped_and_one_marker_counts_them(db_url: str) -> None:
    run_id = _run(db_url)
    lines = _lines(0, 100, "x" * 20)  # 20 + len(" NN") + newline bytes each
    bound = sum(size_of(ln.line) for ln in lines[:30]) + 5
    with session_scope(db_url) as s:
        done = append_lines(s, run_id, lines[:60], max_bytes=bound)
        assert (done.stored, done.dropped) == (30, 30)
    with session_scope(db_url) as s:  # later lines, and a re-send of dropped ones
        done = append_lines(s, run_id, lines[50:], max_bytes=bound)
        assert (done.stored, done.dropped, done.skipped) == (0, 40, 10)
        # a sender that kept 7 lines (70 bytes) out of memory says so
        append_lines(s, run_id, [], max_bytes=bound, also_dropped=Dropped(7, 70, 120))
    with session_scope(db_url) as s:
        run = s.get(Run, run_id)
        assert run.log_bytes <= bound and len(read_lines(s, run_id, limit=1000)) == 30
        dropped = dropped_of(s, run_id)
        assert dropped is not None and (dropped.lines, dropped.seq) == (77, 120)
        assert dropped.bytes == sum(size_of(ln.line) for ln in lines[30:]) + 70
        marker = marker_line(s, run_id)
        assert marker is not None and marker.seq == MARKER_SEQ
        assert marker.line.startswith("[neuroreg] 77 lines (") and str(bound) in marker.line
        assert read_lines(s, run_id, after=29) == []  # the marker is not a paged line
        assert next_seq(s, run_id) == 30


def test_the_log_becomes_logs_txt_with_time_stream_and_text(db_url: str, tmp_path: Path
                                                            ) -> None:
    from core.store.artifacts import get_artifact, resolve
    from ml import artifacts

    run_id = _run(db_url)
    with session_scope(db_url) as s:
        assert not save_log_artifact(s, tmp_path, run_id)  # no lines: no artifact
        append_lines(s, run_id, [Line(0, "stdout", 0.0, "hello"),
                                 Line(1, "stderr", 1.5, "<b>ünïcode</b>")], max_bytes=10**6)
        assert log_text(s, run_id) == ("1970-01-01T00:00:00.000Z stdout  hello\n"
                                       "1970-01-01T00:00:01.500Z stderr  <b>ünïcode</b>\n")
        assert save_log_artifact(s, tmp_path, run_id)
    with session_scope(db_url) as s:
        row = get_artifact(s, run_id, artifacts.LOGS)
        assert row is not None and row.media_type.startswith("text/plain")
        assert resolve(tmp_path, row.path).read_text("utf-8").endswith("<b>ünïcode</b>\n")



def _send(db_url: str, run_id: int, batch: list[Line], max_bytes: int) -> Appended:
    """One sender's append in a session of its own (as each request or worker has)."""
    with session_scope(db_url) as s:
        return append_lines(s, run_id, batch, max_bytes=max_bytes)


def test_senders_at_once_stay_within_the_bound(db_url: str) -> None:
    """Eight senders at once: SQLite let each count the run's bytes before any stored
    its lines (4x the bound stored)."""
    run_id = _run(db_url)
    lines = _lines(0, 400, "x" * 90)
    bound = sum(size_of(ln.line) for ln in lines[:100])
    done = at_once([lambda w=w: _send(db_url, run_id, lines[w * 50:(w + 1) * 50], bound)
                    for w in range(8)])
    with session_scope(db_url) as s:
        stored = read_lines(s, run_id, limit=1000)
        assert s.get(Run, run_id).log_bytes == sum(size_of(ln.line) for ln in stored)
        dropped = dropped_of(s, run_id)
    assert sum(size_of(ln.line) for ln in stored) <= bound
    assert sum(d.stored for d in done) == len(stored)
    assert dropped is not None and dropped.lines == sum(d.dropped for d in done) > 0


def test_a_batch_resent_at_once_is_stored_once(db_url: str) -> None:
    """Eight senders of the same lines at once, five times: one stores them, the others
    skip them (none fails on the key (run, seq))."""
    run_id = _run(db_url)
    for r in range(5):
        batch = _lines(r * 50, 50)
        done = at_once([lambda batch=batch: _send(db_url, run_id, batch, 10**6)] * 8)
        assert sorted(d.stored for d in done) == [0] * 7 + [50]
        assert sum(d.skipped for d in done) == 7 * 50
    with session_scope(db_url) as s:
        assert [ln.seq for ln in read_lines(s, run_id)] == list(range(250))
