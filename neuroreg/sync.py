"""``neuroreg sync``: upload the offline spool (:mod:`neuroreg.spool`), marking done only
what the server acknowledged.

Per run folder, in the order its lines were written:

- The first line says whose run it is, and the server decides, on every sync: a create
  is sent again with the run's client key (the server answers with the syncing user's
  run of that key, or stores it); an attach is taken only for a run of the syncing user
  whose client key is the folder's. So a folder writes only into a run the server says
  is its user's and its own — never into another member's run, even when an admin syncs
  it. The run id ``synced.json`` holds is compared with that answer, never written to.
- A later line is done once the server acknowledged it: a 2xx, or its idempotent "I have
  it" (a 409 for log lines it holds, for the same finish). ``synced.json`` keeps the
  offset after the last line done, so the next sync goes on from there.
- A line the server can never take is reported (file, line number, reason) and skipped:
  one the client's copy of the server's checks refuses (not JSON, a non-finite value, a
  step out of range, a time outside 2000…now, an artifact name the API refuses, a missing
  or changed copy), or one the server answered 422. Skipped lines are counted, and
  :func:`clean` keeps the folder for a person to read.
- Any other answer (403, 413, 503, 507, …) leaves the line pending: the folder stops
  there, the problem is reported, and the next sync sends it again; a connection that
  breaks stops the whole sync the same way.

The events file is read a line at a time (a line longer than :data:`MAX_LINE` is
skipped) and points go in requests of at most :data:`~neuroreg.spool.BATCH`, so memory
stays bounded whatever the spool holds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from neuroreg.client import Client, NeuroregError, _raise_for
from neuroreg.names import artifact_name_problem
from neuroreg.spool import (
    BATCH,
    EVENTS,
    LOG_STREAMS,
    STATE,
    Spool,
    check_log_line,
    check_point,
    iso,
)

MAX_LINE = 4 << 20  # the longest events line read; the spool writes at most about 1 MiB
MAX_PROBLEMS = 20  # reported per folder and sync; the rest are counted
MAX_LOG_REQUEST = 8 << 20  # bytes of log lines per request (the server takes 16 MiB)
MAX_KEYS = 10_000  # metric keys clean() checks on the server; past it the folder stays
EARLIEST = 946_684_800.0  # 2000-01-01: the server refuses a script's time before it
CLOCK_SKEW_S = 60  # how far ahead of this clock a script's time may be (the server: 300)
MAX_TIME = 1e11  # the server's bound on a time sent as a number (a log line's)
FINISHED = ("succeeded", "failed", "cancelled")
_FOLDER = re.compile(r"(?:[0-9a-f]{32}|run-\d+-[0-9a-f]{8})")
_MEDIA = re.compile(r"[A-Za-z0-9.+-]{1,60}/[A-Za-z0-9.+-]{1,60}")


@dataclass
class RunSync:
    """What one folder's sync did."""

    folder: Path
    run_id: int | None = None
    created: bool = False  # the server stored the run in this sync (not before)
    points: int = 0
    lines: int = 0
    artifacts: int = 0
    finished: str | None = None  # the status the run was finished with in this sync
    done: bool = False  # every line is on the server or skipped, the finish included
    already: bool = False  # it was done before this sync
    pending: bool = False  # a write the server did not take: the next sync sends it again
    unreachable: bool = False  # the connection broke: the sync stopped here
    skipped: int = 0  # lines (or parts) skipped, in this sync and earlier ones
    problems: list[str] = field(default_factory=list)
    problems_left_out: int = 0  # past MAX_PROBLEMS
    kept: str | None = None  # why clean() kept the folder

    def problem(self, text: str, *, always: bool = False) -> None:
        """Report ``text``; past MAX_PROBLEMS only counted, unless ``always``."""
        if always or len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.problems_left_out += 1

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id is not None else "no run"
        if self.already:
            what = f"{run}, synced before"
        else:
            sent = [_count(self.points, "point"), _count(self.lines, "log line"),
                    _count(self.artifacts, "artifact")]
            what = f"{run} ({'created' if self.created else 'existing'}): " + ", ".join(sent)
            if self.finished:
                what += f"; finished {self.finished}"
            if self.pending:
                what += "; NOT ALL SYNCED: the rest waits for the next sync"
            elif not self.done and self.run_id is not None:
                what += "; not finished yet (the script has not called finish, or still runs)"
        if self.skipped:
            what += f"; {_count(self.skipped, 'line')} skipped"
        return f"{self.folder.name}: {what}"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


class _Stop(Exception):
    """The folder stops here, kept for the next sync: the server did not take a write, or
    the folder may not write where it says."""


class _Bad(Exception):
    """This line cannot go, ever: the server refused its content (422), or the client's
    copy of the server's checks did."""


# reading ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Line:
    number: int
    end: int  # the offset after it
    event: dict[str, Any] | None = None
    problem: str | None = None
    cut: bool = False  # the last line, without its end: still being written, or killed


_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "create": {"key": str, "name": str, "params": dict, "tags": list, "time": (int, float)},
    "attach": {"run_id": int, "time": (int, float)},
    "metrics": {"points": list},
    "log": {"first": int, "stream": str, "lines": list},
    "update": {},
    "artifact": {"name": str, "file": str, "sha256": str},
    "finish": {"status": str, "time": (int, float)},
}


def _event(text: bytes) -> dict[str, Any]:
    """The event on one line, or ValueError saying what is wrong with it."""
    try:
        ev = json.loads(text)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deep
        raise ValueError(f"not JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(ev, dict) or ev.get("op") not in _FIELDS:
        op = ev.get("op") if isinstance(ev, dict) else type(ev).__name__
        raise ValueError(f"not an event (op is {str(op)[:60]!r})")
    for name, kind in _FIELDS[ev["op"]].items():
        value = ev.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"a {ev['op']} event whose {name} is {str(value)[:60]!r}")
    return ev


def _read(path: Path, offset: int, number: int) -> Generator[_Line]:
    """The lines of ``path`` from ``offset`` (line ``number`` ended there), one at a time;
    a line longer than MAX_LINE is read past, not kept."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        pos = offset
        while raw := fh.readline(MAX_LINE + 1):
            number += 1
            size = len(raw)
            while not raw.endswith(b"\n") and size > MAX_LINE:  # read on to its end
                raw = fh.readline(1 << 20)
                size += len(raw)
                if not raw:
                    break
            if not raw.endswith(b"\n"):
                yield _Line(number, pos, problem="truncated (the line has no end; the process "
                            "writing it was killed, or still runs: sync again later)", cut=True)
                return
            pos += size
            if size > MAX_LINE:
                yield _Line(number, pos, problem=f"{size:,} bytes long, more than any event "
                            f"the spool writes ({MAX_LINE:,}): skipped")
            elif raw.strip():
                try:
                    yield _Line(number, pos, event=_event(raw))
                except ValueError as exc:
                    yield _Line(number, pos, problem=f"corrupt, skipped: {exc}")


def _number(value: Any) -> bool:
    """Whether ``value`` is a finite JSON number (an integer past a float's range is not)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _point(p: Any) -> dict[str, Any]:
    """A spooled ``[key, step, value, wall_time]`` as the API takes it, or ValueError."""
    if not isinstance(p, list) or len(p) != 4:
        raise ValueError(f"a point is [key, step, value, wall_time], not {str(p)[:60]}")
    key, step, value, wall = p
    if not isinstance(step, int) or isinstance(step, bool):
        raise ValueError(f"step: {str(step)[:30]} is not a whole number")
    if not _number(value):
        raise ValueError(f"value: {str(value)[:30]} is not a finite number")
    check_point(key, step, value)
    if not _number(wall) or not 0 <= wall <= MAX_TIME:
        raise ValueError(f"wall_time: {wall} is not a time (0…{MAX_TIME:g} s)")
    return {"key": key, "step": step, "value": value, "wall_time": wall}


def _log_line(item: Any) -> tuple[float, str]:
    """A spooled ``[time, text]`` log line as the API takes it, or ValueError."""
    if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], str):
        raise ValueError(f"a log line is [time, text], not {str(item)[:60]}")
    t, text = item
    if not _number(t) or not 0 <= t <= MAX_TIME:
        raise ValueError(f"time: {t} is not a time (0…{MAX_TIME:g} s)")
    check_log_line(text)
    return float(t), text


def _when(t: float) -> str | None:
    """A script's time as the server takes it (ISO, from 2000 to now), or None."""
    if not _number(t) or not EARLIEST <= t <= time.time() + CLOCK_SKEW_S:
        return None
    return iso(t)


def _body(payload: Any) -> bytes:
    """``payload`` as JSON, or _Bad when it cannot be (NaN, a lone surrogate)."""
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
    except (ValueError, TypeError, RecursionError) as exc:
        raise _Bad(f"it cannot be sent as JSON ({exc})") from None


# progress -----------------------------------------------------------------------------
def _load_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / STATE).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return state if isinstance(state, dict) else {}


def _save_state(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / (STATE + ".part")
    tmp.write_text(json.dumps(state))
    tmp.replace(folder / STATE)


def _whole_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _starts_line(path: Path, offset: int) -> bool:
    """Whether ``offset`` is within ``path`` and just after a newline."""
    if offset > path.stat().st_size:
        return False
    with open(path, "rb") as fh:
        fh.seek(offset - 1)
        return fh.read(1) == b"\n"


# syncing ------------------------------------------------------------------------------
class _Syncer:
    """Sends one folder's lines from where the last sync stopped."""

    def __init__(self, nr: Client, folder: Path, me: Callable[[], str]) -> None:
        self.nr, self.folder, self.me = nr, folder, me
        self.events = folder / EVENTS
        self.state: dict[str, Any] = {}
        self.out = RunSync(folder)
        self.at = "1"  # the line (or lines) being sent, for a problem's place
        self.batch: list[tuple[_Line, list[dict[str, Any]]]] = []  # metric lines unsent
        self.batched = 0

    def note(self, text: str, *, always: bool = False) -> None:
        self.out.problem(f"{self.events}:{self.at}: {text}", always=always)

    def run(self) -> RunSync:
        try:
            self._run()
        except _Stop as exc:
            self.out.pending = True
            self.note(f"{exc}; kept for the next sync", always=True)
        except httpx.TransportError as exc:
            self.out.pending = self.out.unreachable = True
            self.note(f"the server could not be reached ({type(exc).__name__}: {exc}); "
                      "the rest is kept for the next sync", always=True)
        self.out.skipped = int(self.state.get("skipped", 0))
        return self.out

    def _run(self) -> None:
        lines = _read(self.events, 0, 0)
        head = next(lines, None)
        lines.close()
        if head is None:
            raise _Stop("the folder has no events yet")
        self.at = str(head.number)
        if head.event is None or head.event["op"] not in ("create", "attach"):
            what = head.problem or f"a {head.event and head.event['op']} event"
            raise _Stop(f"{what}; the first line must be the run's create or attach, so "
                        "this folder cannot be synced")
        try:
            self._open(head)
        except _Bad as exc:
            raise _Stop(str(exc)) from None
        if self.state.get("done"):
            self.out.already = self.out.done = True
            return
        cut = False
        for line in _read(self.events, self.state["offset"], self.state["line"]):
            if line.cut:
                cut = True
                self.at = str(line.number)
                self.note(str(line.problem))
            elif line.event is None:
                self._skip(line, str(line.problem))
            elif line.event["op"] == "metrics":
                self._metrics(line)
            else:
                self._flush()
                self.at = str(line.number)
                try:
                    self._handle(line.event)
                except _Bad as exc:
                    self._skip(line, str(exc))
                    continue
                self._done(line)
        self._flush()
        if self.state.get("finished") and not cut:
            self.state["done"] = self.out.done = True
        _save_state(self.folder, self.state)

    # the run ----------------------------------------------------------------------
    def _open(self, head: _Line) -> None:
        """Ask the server which run this folder is (creating it at the first sync), and go
        on from ``synced.json`` only when it names that run; else from line 2."""
        assert head.event is not None
        ev = head.event
        run_id, created = self._create(ev) if ev["op"] == "create" else (self._attach(ev), False)
        self.out.run_id, self.out.created = run_id, created
        saved = _load_state(self.folder)
        if (not created and saved.get("run_id") == run_id and _whole_int(saved.get("line"))
                and _whole_int(saved.get("offset")) and saved["offset"] >= head.end
                and _starts_line(self.events, saved["offset"])):
            skipped = saved.get("skipped", 0)
            self.state = {**saved, "skipped": skipped if _whole_int(skipped) else 0}
            return
        self.state = {"run_id": run_id, "offset": head.end, "line": head.number, "skipped": 0}
        if ev["op"] == "create":
            if _when(ev["time"]) is None:
                self._note_part(f"its time {ev['time']} is not one the server takes (from "
                                "2000 to now): the run starts at the server's time")
            if ev["tags"]:
                try:
                    self._request("PATCH", f"/api/runs/{run_id}", "the run's tags",
                                  body={"tags": ev["tags"]})
                except _Bad as exc:
                    self._note_part(str(exc))
        else:
            base = ev.get("log_base")
            self.state["log_base"] = base if _whole_int(base) else None
        _save_state(self.folder, self.state)

    def _create(self, ev: dict[str, Any]) -> tuple[int, bool]:
        body: dict[str, Any] = {"kind": "external", "name": ev["name"],
                                "config": {"params": ev["params"]}, "client_key": ev["key"]}
        started = _when(ev["time"])
        if started is not None:
            body["started_at"] = started
        if isinstance(ev.get("provenance"), dict):
            body["provenance"] = ev["provenance"]
        if isinstance(ev.get("project"), str):
            body["project"] = ev["project"]
        # 201: stored now; 200: the syncing user's run with this key, stored before
        res = self._request("POST", "/api/runs", "the run's create", body=body)
        return int(res.json()["id"]), res.status_code == 201

    def _attach(self, ev: dict[str, Any]) -> int:
        """The run an online client was logging to when its server went away, if it is
        the syncing user's and (when the folder knows it) has the folder's client key."""
        run_id, key = ev["run_id"], ev.get("client_key")
        res = self._request("GET", f"/api/runs/{run_id}", f"run {run_id}", ok=(404,))
        if res.status_code == 404:
            raise _Stop(f"run {run_id} is not on {self.nr._http.base_url}: is this the "
                        "server it was logged to?")
        run = res.json()
        if run["owner"] != self.me():
            raise _Stop(f"run {run_id} is {run['owner']}'s, not {self.me()}'s: a spool folder "
                        "writes only into a run of the user who syncs it (its owner syncs it)")
        if key is not None and run.get("client_key") != key:
            raise _Stop(f"run {run_id} on {self.nr._http.base_url} is not the run this folder "
                        "was logged for (its client key differs): is this the server it was "
                        "logged to?")
        return int(run_id)

    # requests -----------------------------------------------------------------------
    def _request(self, method: str, path: str, what: str, *, body: Any = None,
                 ok: tuple[int, ...] = (), **kw: Any) -> httpx.Response:
        """The server's answer: a 2xx or one of ``ok``; a 422 is _Bad (the line can never
        go), anything else _Stop (not taken: the next sync sends it again)."""
        if body is not None:
            kw["content"] = _body(body)
            kw["headers"] = {"content-type": "application/json"}
        res = self.nr._http.request(method, path, **kw)
        if res.is_success or res.status_code in ok:
            return res
        try:
            _raise_for(res)
        except NeuroregError as exc:
            if res.status_code == 422:
                raise _Bad(f"the server refused {what}: {exc}") from None
            raise _Stop(f"the server did not take {what}: {exc}") from None
        raise AssertionError("unreachable")  # _raise_for raised: res did not succeed

    # lines --------------------------------------------------------------------------
    def _done(self, line: _Line, *, save: bool = True) -> None:
        """Everything up to ``line`` is on the server (or skipped)."""
        self.state.update(offset=line.end, line=line.number)
        if save:
            _save_state(self.folder, self.state)

    def _skip(self, line: _Line, reason: str) -> None:
        self._flush()  # the lines before it go first: the offset passes only what is done
        self.at = str(line.number)
        self._note_part(reason)
        self._done(line, save=False)

    def _note_part(self, reason: str) -> None:
        """A line, or part of it, that will never be on the server."""
        self.state["skipped"] = self.state.get("skipped", 0) + 1
        self.note(reason)

    def _handle(self, ev: dict[str, Any]) -> None:
        op = ev["op"]
        if op in ("create", "attach"):
            raise _Bad(f"a second {op} line (a folder is one run)")
        if op == "log":
            self._log(ev)
        elif op == "update":
            body = {k: ev[k] for k in ("name", "tags") if k in ev}
            if body:
                self._request("PATCH", f"/api/runs/{self.out.run_id}", "the rename or retag",
                              body=body)
        elif op == "artifact":
            self._artifact(ev)
        elif op == "finish":
            self._finish(ev)

    def _metrics(self, line: _Line) -> None:
        assert line.event is not None
        points, bad = [], []
        for p in line.event["points"]:
            try:
                points.append(_point(p))
            except ValueError as exc:
                bad.append(str(exc))
        if not points:
            self._skip(line, f"its {_count(len(bad), 'point')} skipped: "
                             f"{bad[0] if bad else 'none'}")
            return
        if bad:
            self.at = str(line.number)
            self._note_part(f"{len(bad):,} of its {len(bad) + len(points):,} points skipped: "
                            f"{bad[0]}")
        self.batch.append((line, points))
        self.batched += len(points)
        if self.batched >= BATCH:
            self._flush()

    def _flush(self) -> None:
        """Send the metric lines read since the last flush, in requests of at most BATCH
        points; when the server refuses a request spanning lines (422), each line again
        alone, so only the line it refuses is skipped."""
        if not self.batch:
            return
        batch, self.batch, self.batched = self.batch, [], 0
        first, last = batch[0][0].number, batch[-1][0].number
        self.at = str(first) if first == last else f"{first}–{last}"
        try:
            self.out.points += self._send_points([p for _, points in batch for p in points])
        except _Bad as exc:
            if len(batch) == 1:
                self._note_part(str(exc))
            else:
                self._line_by_line(batch)
        self._done(batch[-1][0])

    def _line_by_line(self, batch: list[tuple[_Line, list[dict[str, Any]]]]) -> None:
        for line, points in batch:
            self.at = str(line.number)
            try:
                self.out.points += self._send_points(points)
            except _Bad as exc:
                self._note_part(str(exc))

    def _send_points(self, points: list[dict[str, Any]]) -> int:
        """Send ``points``; how many the server took (all, or _Bad or _Stop)."""
        for i in range(0, len(points), BATCH):
            chunk = points[i:i + BATCH]
            self._request("POST", f"/api/runs/{self.out.run_id}/metrics",
                          _count(len(chunk), "point"), body={"points": chunk})
        return len(points)

    def _log_base(self) -> int:
        """The run's seq of this folder's line 0: 0 for a run the folder created; for an
        attached run as the client knew it, else asked once and kept, so a re-sync
        numbers the lines alike."""
        base = self.state.get("log_base", 0)
        if base is None:
            page = self._request("GET", f"/api/runs/{self.out.run_id}/logs", "the log's end",
                                 params={"after": -1, "limit": 1}).json()
            base = self.state["log_base"] = int(page["next_seq"])
        return int(base)

    def _log(self, ev: dict[str, Any]) -> None:
        if ev["stream"] not in LOG_STREAMS:
            raise _Bad(f"stream {ev['stream'][:30]!r} is not one of {', '.join(LOG_STREAMS)}")
        base, lines, bad = self._log_base(), [], []
        for i, item in enumerate(ev["lines"]):
            try:
                t, text = _log_line(item)
            except ValueError as exc:
                bad.append(str(exc))
                continue
            lines.append({"seq": base + ev["first"] + i, "line": text,
                          "stream": ev["stream"], "time": t})
        if not lines:
            raise _Bad(f"its {_count(len(bad), 'log line')} skipped: {bad[0] if bad else 'none'}")
        if bad:
            self._note_part(f"{len(bad):,} of its {len(bad) + len(lines):,} log lines skipped: "
                            f"{bad[0]}")
        for chunk in _log_chunks(lines):
            res = self._request("POST", f"/api/runs/{self.out.run_id}/logs",
                                _count(len(chunk), "log line"), body={"lines": chunk},
                                ok=(409,))
            if res.status_code == 409 and not self._has_lines(chunk[-1]["seq"]):
                raise _Bad(f"the server takes no more log lines: {res.json().get('detail')}")
            self.out.lines += len(chunk)

    def _has_lines(self, last_seq: int) -> bool:
        """Whether the run's log reaches ``last_seq`` (sent by an earlier sync, before the
        run was finished)."""
        page = self._request("GET", f"/api/runs/{self.out.run_id}/logs", "the log's end",
                             params={"after": -1, "limit": 1}).json()
        return int(page["next_seq"]) > last_seq

    def _artifact(self, ev: dict[str, Any]) -> None:
        name = ev["name"]
        problem = artifact_name_problem(name)
        if problem is not None:
            raise _Bad(f"{problem}: not uploaded")
        path = _copy(self.folder, ev["file"])
        if path is None:
            raise _Bad(f"artifact {name!r}: its copy {ev['file'][:200]!r} is missing")
        if _sha256(path) != ev["sha256"]:
            raise _Bad(f"artifact {name!r}: its copy {path} changed since it was spooled "
                       "(sha256 differs); not uploaded")
        media = ev.get("media_type")
        res = self._request(
            "PUT", f"/api/runs/{self.out.run_id}/artifacts/{name}", f"artifact {name!r}",
            content=_chunks(path), headers={"content-type": media if isinstance(media, str)
                                            and _MEDIA.fullmatch(media)
                                            else "application/octet-stream"})
        if res.json().get("sha256") != ev["sha256"]:
            raise _Stop(f"artifact {name!r}: its copy changed while it was uploaded")
        self.out.artifacts += 1

    def _finish(self, ev: dict[str, Any]) -> None:
        status = ev["status"]
        if status not in ("succeeded", "failed"):
            raise _Bad(f"status {status[:30]!r} is not succeeded or failed")
        body: dict[str, Any] = {"status": status}
        when = _when(ev["time"])
        if when is None:
            self._note_part(f"its time {ev['time']} is not one the server takes (from 2000 "
                            "to now): the run ends at the server's time")
        else:
            body["finished_at"] = when
        for name in ("error", "result"):
            if ev.get(name) is not None:
                body[name] = ev[name]
        res = self._request("POST", f"/api/runs/{self.out.run_id}/finish", "the finish",
                            body=body, ok=(409,))
        if res.status_code == 409:
            now = self._request("GET", f"/api/runs/{self.out.run_id}", "the run").json()
            if now["status"] not in FINISHED:
                raise _Stop(f"the server did not take the finish: {res.json().get('detail')}")
            if now["status"] != status:  # finished otherwise (cancelled on the dashboard)
                self.note(f"run {self.out.run_id} is {now['status']} on the server; its "
                          f"finish ({status}) was not applied")
        else:
            self.out.finished = status
        self.state["finished"] = True


def _log_chunks(lines: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``lines`` in requests of at most BATCH lines and MAX_LOG_REQUEST bytes."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for line in lines:
        n = len(line["line"].encode()) * 6 // 4 + 80  # escapes, generously, and the fields
        if chunk and (len(chunk) >= BATCH or size + n > MAX_LOG_REQUEST):
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += n
    if chunk:
        yield chunk


def _copy(folder: Path, file: str) -> Path | None:
    """The spooled copy ``file`` names: a plain file in the folder's ``files/``, else None."""
    files = (folder / "files").resolve()
    path = folder / file
    if path.is_symlink() or not path.is_file() or path.resolve().parent != files:
        return None
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            yield block


def sync(nr: Client, root: str | os.PathLike[str]) -> list[RunSync]:
    """Upload every run folder under ``root`` that is not synced yet, oldest first; a
    connection that breaks stops the sync at the folder it broke in."""
    me: list[str] = []

    def whoami() -> str:
        if not me:
            me.append(str(nr.me()["name"]))
        return me[0]

    out = []
    folders = [f for f in Spool(root).folders() if _FOLDER.fullmatch(f.name)]
    for i, folder in enumerate(folders):
        report = _Syncer(nr, folder, whoami).run()
        out.append(report)
        if report.unreachable:
            if i + 1 < len(folders):
                left = _count(len(folders) - i - 1, "more folder")
                report.problem(f"the sync stopped here: {left} not tried", always=True)
            break
    return out


# cleaning -----------------------------------------------------------------------------
def clean(nr: Client, reports: Iterable[RunSync]) -> list[Path]:
    """Delete the folders the server holds whole: synced without a problem or a skipped
    line, and checked against the server (the run finished, each artifact there with its
    sha256, each key's last step and the last log line there). Each folder kept says why
    in its ``kept``; when in doubt, a folder stays."""
    gone = []
    for r in reports:
        r.kept = _why_keep(nr, r)
        if r.kept is None:
            shutil.rmtree(r.folder)
            gone.append(r.folder)
    return gone


def _why_keep(nr: Client, r: RunSync) -> str | None:
    if r.pending or not r.done or r.run_id is None:
        return "not all of it is on the server yet"
    if r.problems:
        return "this sync had problems"
    if r.skipped:
        return ("it has lines the server never got (reported when they were skipped): "
                "read them, then delete it by hand")
    try:
        held = _Held.scan(r.folder)
        if held is None:
            return f"more than {MAX_KEYS:,} metric keys to check"
        return held.lacking(nr, r.run_id, _load_state(r.folder).get("log_base") or 0)
    except NeuroregError as exc:
        return f"the server could not confirm it holds the run: {exc}"


@dataclass
class _Held:
    """What a folder holds, in the terms the server can confirm."""

    steps: dict[str, int] = field(default_factory=dict)  # the last step of each key
    last_log: int = -1  # the folder's last log line
    artifacts: dict[str, str] = field(default_factory=dict)  # name: sha256

    @classmethod
    def scan(cls, folder: Path) -> _Held | None:
        held = cls()
        for line in _read(folder / EVENTS, 0, 0):
            ev = line.event or {}
            if ev.get("op") == "metrics":
                for p in ev["points"]:
                    try:
                        point = _point(p)
                    except ValueError:
                        continue
                    key = point["key"]
                    held.steps[key] = max(held.steps.get(key, -1), point["step"])
                if len(held.steps) > MAX_KEYS:
                    return None
            elif ev.get("op") == "log" and ev["lines"]:
                held.last_log = max(held.last_log, ev["first"] + len(ev["lines"]) - 1)
            elif ev.get("op") == "artifact":
                held.artifacts[ev["name"]] = ev["sha256"]
        return held

    def lacking(self, nr: Client, run_id: int, log_base: int) -> str | None:
        """What of it the server does not hold, or None."""
        run = nr._call("GET", f"/api/runs/{run_id}")
        if run["status"] not in FINISHED:
            return f"run {run_id} is {run['status']} on the server"
        stored = {a["name"]: a["sha256"] for a in
                  nr._call("GET", f"/api/runs/{run_id}/artifacts")}
        for name, sha in self.artifacts.items():
            if stored.get(name) != sha:
                return f"the server does not hold artifact {name!r} as spooled"
        last = {k["key"]: k["last_step"] for k in nr._call("GET", f"/api/runs/{run_id}/metrics")}
        for key, step in self.steps.items():
            if last.get(key, -1) < step:
                return f"the server does not hold metric {key!r} up to step {step}"
        if self.last_log >= 0:
            page = nr._call("GET", f"/api/runs/{run_id}/logs", params={"after": -1, "limit": 1})
            if int(page["next_seq"]) <= log_base + self.last_log:
                return "the server does not hold all its log lines"
        return None
