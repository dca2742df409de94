"""The offline spool: what a script logs while no server is reachable (a compute node
without network), kept on local disk until ``neuroreg sync`` uploads it.

One folder per run under the spool root (``NEUROREG_SPOOL_DIR``, default
``<data_dir>/spool``)::

    <root>/<key>/events.jsonl      one JSON object per line, only ever appended
    <root>/<key>/files/<n>-<name>  copies of the files the script uploaded, taken then
    <root>/<key>/synced.json       how far ``neuroreg sync`` got (it alone writes it)

``<key>`` is the run's client key (a new run's; :class:`~neuroreg.client.Client` sends
the same key when it creates the run online, so a run created before the server went
away and the offline copy of it are one run), or ``run-<id>-<uuid>`` for a run the
server already has whose server went away mid-run. The events, in the order they
happened:

- ``{"op": "create", "key", "name", "params", "tags", "provenance", "time"}`` — first in
  a new run's folder; ``{"op": "attach", "run_id", "client_key", "log_base", "time"}`` —
  first in an existing run's (``log_base``: the seq of the run's next log line when the
  client knew it, else null and the sync asks the server once, and keeps the answer);
- ``{"op": "metrics", "points": [[key, step, value, wall_time], …]}``;
- ``{"op": "log", "first": i, "stream", "lines": [[time, text], …]}`` — the folder's log
  lines ``i, i+1, …`` (the run's seqs ``log_base + i, …``);
- ``{"op": "update", "name"?, "tags"?}``;
- ``{"op": "artifact", "name", "file", "sha256", "bytes", "media_type"}``;
- ``{"op": "finish", "status", "error", "result", "time"}``.

Each line is written whole and flushed: a killed process leaves at most its last line
cut short (the page cache keeps what was flushed; a power cut may lose more). Syncing is
idempotent because the server is: a create repeats the run's ``client_key`` (the same run
comes back), metric points are keyed by (key, step), log lines by seq, an artifact by name;
a finish the server already has is recognised. So a sync that crashed halfway, or one run
twice, stores each point once; ``synced.json`` only saves re-sending. A line that is not
JSON, or not an event, is reported with its line number and skipped; the rest syncs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuroreg.client import Client

EVENTS = "events.jsonl"
STATE = "synced.json"
OFFLINE_PREFIX = "offline:"
BATCH = 5000  # points or lines per request, as the online client sends them
_KEY = re.compile(r"^[A-Za-z0-9_.:/\-\[\]]{1,128}$")  # the server's metric key pattern
_FOLDER = re.compile(r"^(?:[0-9a-f]{32}|run-\d+-[0-9a-f]{8})$")


def new_key() -> str:
    """A run's client key: 32 hex digits, unique without asking anyone."""
    return uuid.uuid4().hex


def check_point(key: str, step: int, value: float) -> None:
    """Refuse what the server would (a 422), at the call that logged it rather than at
    the sync days later."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"key: {key!r} is not a metric key (1–128 of A-Z a-z 0-9 _ . : / - [ ])")
    if not 0 <= step <= 2**31 - 1:
        raise ValueError(f"step: {step} is outside 0…2³¹−1 (key {key!r})")
    if not math.isfinite(value):
        raise ValueError(f"value: {value} is not a finite number (key {key!r}, step {step})")


class SpoolRun:
    """One run's folder, written by one process (threads may share it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._files = 0
        self.next_log = 0  # this folder's next log line
        self.created = time.time()

    @property
    def id(self) -> str:
        """How the client names the run until it is synced: ``offline:<key>``."""
        return OFFLINE_PREFIX + self.folder.name

    def append(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n"
        with self._lock, open(self.folder / EVENTS, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()

    def metrics(self, points: Iterable[tuple[str, int, float, float]]) -> int:
        batch = [[k, int(s), float(v), float(w)] for k, s, v, w in points]
        if batch:
            self.append({"op": "metrics", "points": batch})
        return len(batch)

    def log(self, lines: list[str], stream: str) -> int:
        if not lines:
            return 0
        now = time.time()
        with self._lock:
            first, self.next_log = self.next_log, self.next_log + len(lines)
        self.append({"op": "log", "first": first, "stream": stream,
                     "lines": [[now, text] for text in lines]})
        return len(lines)

    def add_file(self, path: Path, name: str, media_type: str) -> dict[str, Any]:
        """Copy ``path`` into the folder now (the script may delete or rewrite it before
        the sync), then record it."""
        files = self.folder / "files"
        files.mkdir(exist_ok=True)
        with self._lock:
            self._files += 1
            dest = files / f"{self._files}-{Path(name).name}"
        digest = hashlib.sha256()
        tmp = dest.with_name(dest.name + ".part")
        with open(path, "rb") as src, open(tmp, "wb") as out:
            while block := src.read(1 << 20):
                digest.update(block)
                out.write(block)
        tmp.replace(dest)
        event = {"op": "artifact", "name": name, "file": f"files/{dest.name}",
                 "sha256": digest.hexdigest(), "bytes": dest.stat().st_size,
                 "media_type": media_type}
        self.append(event)
        return {"name": name, "size": event["bytes"], "offline": True}


class Spool:
    """The spool root: where offline runs are written, and read back by the sync."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._open: dict[str, SpoolRun] = {}

    def _new(self, name: str) -> SpoolRun:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=False)
        run = SpoolRun(folder)
        self._open[run.id] = run
        return run

    def create(self, *, key: str, name: str, params: dict[str, Any], tags: list[str],
               provenance: dict[str, Any] | None) -> SpoolRun:
        run = self._new(key)
        run.append({"op": "create", "key": key, "name": name, "params": params,
                    "tags": tags, "provenance": provenance, "time": run.created})
        return run

    def attach(self, run_id: int, *, client_key: str | None, log_base: int | None
               ) -> SpoolRun:
        run = self._new(f"run-{run_id}-{uuid.uuid4().hex[:8]}")
        run.append({"op": "attach", "run_id": run_id, "client_key": client_key,
                    "log_base": log_base, "time": run.created})
        return run

    def get(self, run_id: str) -> SpoolRun:
        """An offline run this process created (``offline:<key>``)."""
        try:
            return self._open[run_id]
        except KeyError:
            raise ValueError(f"run_id: {run_id!r} is not an offline run of this client "
                             f"(spool {self.root})") from None

    def folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted((p for p in self.root.iterdir()
                       if p.is_dir() and (p / EVENTS).is_file()),
                      key=lambda p: ((p / EVENTS).stat().st_mtime, p.name))


# syncing ------------------------------------------------------------------------------
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
    done: bool = False  # every event is on the server, the finish included
    already: bool = False  # it was done before this sync
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id is not None else "no run"
        if self.already:
            return f"{self.folder.name}: {run}, synced before"
        sent = [_count(self.points, "point"), _count(self.lines, "log line"),
                _count(self.artifacts, "artifact")]
        what = (f"{run} ({'created' if self.created else 'existing'}): "
                + ", ".join(sent))
        if self.finished:
            what += f"; finished {self.finished}"
        elif not self.done and self.run_id is not None:
            what += "; not finished yet (the script has not called finish, or still runs)"
        return f"{self.folder.name}: {what}"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


class _Refused(Exception):
    pass


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(ev, dict) or ev.get("op") not in _FIELDS:
        raise ValueError(f"not an event (op is {ev.get('op') if isinstance(ev, dict) else ev!r})")
    for name, kind in _FIELDS[ev["op"]].items():
        if not isinstance(ev.get(name), kind) or isinstance(ev.get(name), bool):
            raise ValueError(f"a {ev['op']} event whose {name} is {ev.get(name)!r}")
    return ev


def _lines(raw: bytes, offset: int, line_no: int
           ) -> Iterator[tuple[int, int, dict[str, Any] | None, str | None]]:
    """(line number, offset after it, event or None, problem or None) from ``offset``;
    stops before a last line without its newline (cut short, or still being written)."""
    pos = offset
    while pos < len(raw):
        line_no += 1
        end = raw.find(b"\n", pos)
        if end < 0:
            yield line_no, pos, None, "truncated (the line has no end; the process " \
                "writing it was killed, or still runs: sync again later)"
            return
        text, pos = raw[pos:end], end + 1
        if not text.strip():
            continue
        try:
            yield line_no, pos, _event(text), None
        except ValueError as exc:
            yield line_no, pos, None, f"corrupt, skipped: {exc}"


def _load_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / STATE).read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_state(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / (STATE + ".part")
    tmp.write_text(json.dumps(state))
    tmp.replace(folder / STATE)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class _Syncer:
    """Sends one folder's events from where the last sync stopped."""

    def __init__(self, nr: Client, folder: Path) -> None:
        from neuroreg.client import NeuroregError

        self.nr, self.folder, self.error = nr, folder, NeuroregError
        self.state = _load_state(folder)
        self.out = RunSync(folder, run_id=self.state.get("run_id"))
        self.metrics: list[dict[str, Any]] = []  # points not sent yet
        self.metric_lines: list[int] = []  # the lines they are on
        self.pending: tuple[int, int] | None = None  # (offset, line) after the last of them

    def where(self, line_no: int | None) -> str:
        at = f":{line_no}" if line_no is not None else ""
        return f"{self.folder / EVENTS}{at}"

    def run(self) -> RunSync:
        if self.state.get("done"):
            self.out.already = self.out.done = True
            return self.out
        raw = (self.folder / EVENTS).read_bytes()
        offset, line_no = int(self.state.get("offset", 0)), int(self.state.get("line", 0))
        truncated = False
        for number, end, ev, problem in _lines(raw, offset, line_no):
            if problem is not None:
                self.out.problems.append(f"{self.where(number)}: {problem}")
                truncated = problem.startswith("truncated")
                if truncated:
                    break
                self._advance(end, number)
                continue
            assert ev is not None
            if self.out.run_id is None and ev["op"] not in ("create", "attach"):
                self.out.problems.append(
                    f"{self.where(number)}: a {ev['op']} event before the run's create or "
                    "attach line (is line 1 corrupt?): this folder cannot be synced")
                return self.out
            if ev["op"] == "metrics":
                self.pending = (end, number)  # saved once its points are sent
            try:
                self._handle(ev, number)
            except _Refused as exc:
                self.out.problems.append(f"{self.where(number)}: {exc}")
                if self.out.run_id is None:
                    return self.out
            if ev["op"] != "metrics":
                self._advance(end, number)
        self._flush_metrics()
        if self.state.get("finished") and not truncated:
            self.state["done"] = self.out.done = True
            _save_state(self.folder, self.state)
        return self.out

    def _advance(self, end: int, number: int) -> None:
        """Everything up to line ``number`` (ending at ``end``) is on the server."""
        self._flush_metrics()
        self.state.update(offset=end, line=number, run_id=self.out.run_id)
        _save_state(self.folder, self.state)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            return self.nr._call(method, path, **kw)
        except self.error as exc:
            raise _Refused(f"the server refused it: {exc}") from None

    def _handle(self, ev: dict[str, Any], number: int) -> None:
        op = ev["op"]
        if op == "create":
            self._create(ev)
        elif op == "attach":
            self._attach(ev)
        elif op == "metrics":
            for p in ev["points"]:
                self.metrics.append({"key": p[0], "step": p[1], "value": p[2],
                                     "wall_time": p[3]})
            self.metric_lines.append(number)
            if len(self.metrics) >= BATCH:
                self._flush_metrics()
        elif op == "log":
            self._flush_metrics()
            self._log(ev)
        elif op == "update":
            self._flush_metrics()
            body = {k: ev[k] for k in ("name", "tags") if k in ev}
            if body:
                self._call("PATCH", f"/api/runs/{self.out.run_id}", json=body)
        elif op == "artifact":
            self._flush_metrics()
            self._artifact(ev)
        elif op == "finish":
            self._flush_metrics()
            self._finish(ev)

    def _create(self, ev: dict[str, Any]) -> None:
        # sent again when an earlier sync stopped before this line was done: the key
        # makes the server answer with the run it stored then
        body: dict[str, Any] = {"kind": "external", "name": ev["name"],
                                "config": {"params": ev["params"]},
                                "client_key": ev["key"], "started_at": iso(ev["time"])}
        if ev.get("provenance"):
            body["provenance"] = ev["provenance"]
        from neuroreg.client import _raise_for

        res = self.nr._http.request("POST", "/api/runs", json=body)
        try:
            _raise_for(res)  # 201 stored now, 200 stored by an earlier sync
        except self.error as exc:
            raise _Refused(f"the server refused the run: {exc}") from None
        run = res.json()
        self.out.run_id, self.out.created = int(run["id"]), res.status_code == 201
        self.state["run_id"] = self.out.run_id
        _save_state(self.folder, self.state)
        if ev["tags"]:
            self._call("PATCH", f"/api/runs/{self.out.run_id}", json={"tags": ev["tags"]})

    def _attach(self, ev: dict[str, Any]) -> None:
        run_id = ev["run_id"]
        try:
            run = self.nr._call("GET", f"/api/runs/{run_id}")
        except self.error as exc:
            raise _Refused(f"run {run_id}: {exc}") from None
        key = ev.get("client_key")
        if key and run.get("client_key") != key:
            raise _Refused(f"run {run_id} on {self.nr._http.base_url} is not the run this "
                           "folder was logged for (its client key differs): is this the "
                           "server it was logged to?")
        self.out.run_id = run_id
        if "log_base" not in self.state:
            base = ev.get("log_base")
            self.state["log_base"] = base
        self.state["run_id"] = run_id
        _save_state(self.folder, self.state)

    def _log_base(self) -> int:
        base = self.state.get("log_base", 0)
        if base is None:  # asked once, then kept: a re-sync numbers the lines alike
            base = int(self._call("GET", f"/api/runs/{self.out.run_id}/logs",
                                  params={"after": -1, "limit": 1})["next_seq"])
            self.state["log_base"] = base
            _save_state(self.folder, self.state)
        return int(base)

    def _log(self, ev: dict[str, Any]) -> None:
        base = self._log_base()
        lines = [{"seq": base + ev["first"] + i, "line": str(text), "stream": ev["stream"],
                  "time": float(t)} for i, (t, text) in enumerate(ev["lines"])]
        for i in range(0, len(lines), BATCH):
            batch = lines[i:i + BATCH]
            try:
                self.nr._call("POST", f"/api/runs/{self.out.run_id}/logs",
                              json={"lines": batch})
            except self.error as exc:
                if exc.status == 409 and self._has_lines(batch[-1]["seq"]):
                    continue  # sent before the run was finished, in an earlier sync
                raise _Refused(f"the server refused its log lines: {exc}") from None
            self.out.lines += len(batch)

    def _has_lines(self, last_seq: int) -> bool:
        page = self.nr._call("GET", f"/api/runs/{self.out.run_id}/logs",
                             params={"after": -1, "limit": 1})
        return int(page["next_seq"]) > last_seq

    def _flush_metrics(self) -> None:
        if not self.metrics:
            return
        points, lines = self.metrics, self.metric_lines
        self.metrics, self.metric_lines = [], []
        try:
            for i in range(0, len(points), BATCH):
                self.nr._call("POST", f"/api/runs/{self.out.run_id}/metrics",
                              json={"points": points[i:i + BATCH]})
                self.out.points += len(points[i:i + BATCH])
        except self.error as exc:
            span = f"{lines[0]}" if lines[0] == lines[-1] else f"{lines[0]}–{lines[-1]}"
            self.out.problems.append(f"{self.where(None)}:{span}: the server refused "
                                     f"these points: {exc}")
        if self.pending is not None:
            end, number = self.pending
            self.pending = None
            self.state.update(offset=end, line=number, run_id=self.out.run_id)
            _save_state(self.folder, self.state)

    def _artifact(self, ev: dict[str, Any]) -> None:
        path = self.folder / ev["file"]
        if not path.is_file() or path.resolve().parent != (self.folder / "files").resolve():
            raise _Refused(f"artifact {ev['name']!r}: its copy {path} is missing")
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != ev["sha256"]:
            raise _Refused(f"artifact {ev['name']!r}: its copy {path} changed since it was "
                           "spooled (sha256 differs); not uploaded")
        try:
            self.nr.upload(self.out.run_id, path, ev["name"],  # type: ignore[arg-type]
                           media_type=ev.get("media_type") or "application/octet-stream")
        except self.error as exc:
            raise _Refused(f"artifact {ev['name']!r}: the server refused it: {exc}") from None
        self.out.artifacts += 1

    def _finish(self, ev: dict[str, Any]) -> None:
        body: dict[str, Any] = {"status": ev["status"], "finished_at": iso(ev["time"])}
        for name in ("error", "result"):
            if ev.get(name) is not None:
                body[name] = ev[name]
        try:
            self.nr._call("POST", f"/api/runs/{self.out.run_id}/finish", json=body)
            self.out.finished = ev["status"]
        except self.error as exc:
            if exc.status != 409:
                raise _Refused(f"the server refused the finish: {exc}") from None
            status = self.nr._call("GET", f"/api/runs/{self.out.run_id}")["status"]
            if status != ev["status"]:  # finished otherwise (cancelled on the dashboard)
                self.out.problems.append(f"{self.where(None)}: run {self.out.run_id} is "
                                         f"{status} on the server; its finish "
                                         f"({ev['status']}) was not applied")
        self.state["finished"] = True


def sync(nr: Client, root: str | os.PathLike[str]) -> list[RunSync]:
    """Upload every run folder under ``root`` that is not synced yet, oldest first."""
    out = []
    for folder in Spool(root).folders():
        if not _FOLDER.match(folder.name):
            continue
        out.append(_Syncer(nr, folder).run())
    return out


def clean(reports: Iterable[RunSync]) -> list[Path]:
    """Delete the folders whose every event is on the server."""
    gone = []
    for r in reports:
        if r.done and not r.problems:
            shutil.rmtree(r.folder, ignore_errors=True)
            gone.append(r.folder)
    return gone
