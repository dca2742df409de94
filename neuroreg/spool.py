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

- ``{"op": "create", "key", "name", "params", "tags", "provenance", "time"}`` (and
  ``"project"`` when the script named one) — first in a new run's folder;
  ``{"op": "attach", "run_id", "client_key", "log_base", "time"}`` — first in an
  existing run's (``log_base``: the seq of the run's next log line when the
  client knew it, else null and the sync asks the server once, and keeps the answer);
- ``{"op": "metrics", "points": [[key, step, value, wall_time], …]}``;
- ``{"op": "log", "first": i, "stream", "lines": [[time, text], …]}`` — the folder's log
  lines ``i, i+1, …`` (the run's seqs ``log_base + i, …``);
- ``{"op": "update", "name"?, "tags"?}``;
- ``{"op": "artifact", "name", "file", "sha256", "bytes", "media_type"}``;
- ``{"op": "finish", "status", "error", "result", "time"}``.

Each line is written whole and flushed: a killed process leaves at most its last line
cut short (the page cache keeps what was flushed; a power cut may lose more). A line
carries at most :data:`BATCH` points or log lines and about :data:`LINE_TEXT` bytes of
log text, so the sync reads the file a line at a time in bounded memory. What the server
would refuse (a non-finite value, a step out of range, an artifact name the API refuses,
a log line too long) is refused here, at the call that logged it, rather than at the sync
days later. :mod:`neuroreg.sync` uploads the folders.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neuroreg.names import check_artifact_name

EVENTS = "events.jsonl"
STATE = "synced.json"
OFFLINE_PREFIX = "offline:"
BATCH = 5000  # points or lines per line and per request, as the online client sends them
LINE_TEXT = 1 << 20  # about the most log text one line carries
_KEY = re.compile(r"[A-Za-z0-9_.:/\-\[\]]{1,128}")  # the server's metric key pattern
LOG_STREAMS = ("stdout", "stderr", "log", "client")  # the server's log streams
LOG_LINE_MAX = 16_384  # the server's longest log line, in characters


def new_key() -> str:
    """A run's client key: 32 hex digits, unique without asking anyone."""
    return uuid.uuid4().hex


def check_point(key: str, step: int, value: float) -> None:
    """Refuse what the server would (a 422), at the call that logged it rather than at
    the sync days later."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"key: {key!r} is not a metric key (1–128 of A-Z a-z 0-9 _ . : / - [ ])")
    if not 0 <= step <= 2**31 - 1:
        raise ValueError(f"step: {step} is outside 0…2³¹−1 (key {key!r})")
    if not math.isfinite(value):
        raise ValueError(f"value: {value} is not a finite number (key {key!r}, step {step})")


def check_log_line(text: str) -> None:
    """Refuse a log line the server would (a 422)."""
    if len(text) > LOG_LINE_MAX:
        raise ValueError(f"lines: a line of {len(text):,} characters; at most {LOG_LINE_MAX:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("lines: a lone surrogate (\\ud800-\\udfff) is not text") from None


def _chunks(lines: Sequence[str]) -> Iterator[tuple[int, Sequence[str]]]:
    """(index of the first, lines) of at most BATCH lines and about LINE_TEXT bytes of
    JSON each."""
    start, size = 0, 0
    for i, text in enumerate(lines):
        n = len(json.dumps(text, ensure_ascii=False).encode())
        if i > start and (i - start >= BATCH or size + n > LINE_TEXT):
            yield start, lines[start:i]
            start, size = i, 0
        size += n
    yield start, lines[start:]


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
        for i in range(0, len(batch), BATCH):
            self.append({"op": "metrics", "points": batch[i:i + BATCH]})
        return len(batch)

    def log(self, lines: list[str], stream: str) -> int:
        """Spool ``lines`` (numbered after this folder's last), in events of at most
        :data:`BATCH` lines and about :data:`LINE_TEXT` bytes; what the server would
        refuse is a ValueError and nothing is written."""
        if stream not in LOG_STREAMS:
            raise ValueError(f"stream: {stream!r} is not one of {', '.join(LOG_STREAMS)}")
        for text in lines:
            check_log_line(text)
        if not lines:
            return 0
        now = time.time()
        with self._lock:
            first, self.next_log = self.next_log, self.next_log + len(lines)
        for start, chunk in _chunks(lines):
            self.append({"op": "log", "first": first + start, "stream": stream,
                         "lines": [[now, text] for text in chunk]})
        return len(lines)

    def add_file(self, path: Path, name: str, media_type: str) -> dict[str, Any]:
        """Copy ``path`` into the folder now (the script may delete or rewrite it before
        the sync), then record it."""
        check_artifact_name(name)
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
               provenance: dict[str, Any] | None, project: str | None = None) -> SpoolRun:
        run = self._new(key)
        extra = {} if project is None else {"project": project}
        run.append({"op": "create", "key": key, "name": name, "params": params,
                    "tags": tags, "provenance": provenance, "time": run.created, **extra})
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




def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()
