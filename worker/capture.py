"""A job's stdout, stderr and ``logging`` lines, captured while its task runs and written
to the run's log in batches (:mod:`core.store.logs`).

How depends on whether the task has its process to itself:

- **In the main thread** (the prefork pool's child processes and the solo pool run one
  task at a time there): file descriptors 1 and 2 are pointed into pipes, so C
  extensions, child processes (a DataLoader's workers) and every thread are captured;
  what they write still reaches the worker's own console (teed to the original
  descriptors). ``sys.stdout``/``sys.stderr`` are pointed at the pipes too: a Celery
  worker has replaced them with proxies to its logger, which would take ``print()``
  elsewhere.
- **In another thread** (the threads pool runs several tasks in one process): descriptors
  are shared, so ``sys.stdout``/``sys.stderr`` become routers that give each task's thread
  its own lines and pass every other thread's through.

A handler on the root logger takes ``logging`` records (of the task's thread in the second
case; the root level is lowered to INFO while a task runs, so ``logging.info`` is kept).
A record that a handler already prints to the captured streams is kept once, as printed.

Nothing here may break the job: a database that is away keeps lines in memory (up to the
bound, then counts them as dropped) and retries; a capture that cannot be set up logs a
warning and the job runs without it; everything is undone when the job ends.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from core.store.logs import MAX_LINE, Dropped, Line, size_of
from worker.backend import Backend

log = logging.getLogger(__name__)


class LogSink:
    """Numbers lines as they come and writes them to run ``run_id``'s log every
    ``interval`` seconds from a thread (and on :meth:`close`)."""

    def __init__(self, backend: Backend, run_id: int, *, max_bytes: int,
                 interval: float = 1.0) -> None:
        self.backend, self.run_id, self.max_bytes = backend, run_id, max_bytes
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: list[tuple[int, str, float, str]] = []  # (index, stream, time, line)
        self._pending_bytes = 0
        self._count = 0  # lines numbered so far; seq = base + index
        self._base: int | None = None  # the store's next seq, read on the first write
        self._dropped = [0, 0, -1]  # lines, bytes and last index kept out of memory
        self._full = False  # the store reached the bound: later lines are only counted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"logs-{run_id}", daemon=True)
        self._thread.start()
        self.threads = {self._thread.ident}
        """Threads of the capture itself, whose own log records are not the job's."""

    def add(self, stream: str, line: str) -> None:
        now = time.time()
        with self._lock:
            index, self._count = self._count, self._count + 1
            size = size_of(line)
            if self._full or self._pending_bytes + size > self.max_bytes:
                d = self._dropped
                d[0], d[1], d[2] = d[0] + 1, d[1] + size, index
                return
            self._pending.append((index, stream, now, line))
            self._pending_bytes += size

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> bool:
        """Write what is pending; False (keeping it for the next try) when the store
        could not take it."""
        with self._lock:
            pending, dropped = self._pending, tuple(self._dropped)
            self._pending, self._pending_bytes, self._dropped = [], 0, [0, 0, -1]
        if not pending and not dropped[0]:
            return True
        try:
            if self._base is None:
                self._base = self.backend.next_seq(self.run_id)
            base = self._base
            full = self.backend.append_lines(
                self.run_id,
                [Line(base + i, stream, t, text) for i, stream, t, text in pending],
                max_bytes=self.max_bytes,
                dropped=Dropped(dropped[0], dropped[1], base + dropped[2])
                if dropped[0] else None)
        except Exception:  # noqa: BLE001 — a database blip must not break the job
            log.warning("run %s: could not write %d log lines; retrying", self.run_id,
                        len(pending), exc_info=True)
            with self._lock:  # back in front, in order; over the bound they are counted
                back = pending + self._pending
                self._pending, self._pending_bytes = [], 0
                for item in back:
                    size = size_of(item[3])
                    if self._pending_bytes + size > self.max_bytes:
                        d = self._dropped
                        d[0], d[1], d[2] = d[0] + 1, d[1] + size, max(d[2], item[0])
                    else:
                        self._pending.append(item)
                        self._pending_bytes += size
                d = self._dropped
                d[0], d[1], d[2] = d[0] + dropped[0], d[1] + dropped[1], max(d[2], dropped[2])
            return False
        if full:
            self._full = True
        return True

    def close(self, attempts: int = 3) -> None:
        """Stop the thread and write the rest, retrying a few times."""
        self._stop.set()
        self._thread.join(timeout=10)
        for n in range(attempts):
            if self.flush():
                return
            time.sleep(0.5 * (n + 1))
        log.warning("run %s: gave up writing its last log lines", self.run_id)


class TeeSink:
    """One capture written to several runs' logs (the members of a pack): every line to
    each, numbered in each."""

    def __init__(self, sinks: Sequence[LogSink]) -> None:
        self.sinks = list(sinks)
        self.run_id = self.sinks[0].run_id
        self.threads: set[int | None] = set().union(*(s.threads for s in self.sinks))

    def add(self, stream: str, line: str) -> None:
        for sink in self.sinks:
            sink.add(stream, line)

    def flush(self) -> bool:
        return all([sink.flush() for sink in self.sinks])

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


Sink = LogSink | TeeSink


class _Console(logging.Filter):
    """On a handler the worker itself prints its log with (Celery's, to stderr): the lines
    it is about to print of the job's records, so that those reach the run's log once, as
    ``log`` lines in the capture's own format, not as ``stderr`` in the worker's
    ("[…: INFO/ForkPoolWorker-1] …"). The worker's console still shows them."""

    def __init__(self, handler: logging.Handler, threads: set[int | None]) -> None:
        super().__init__()
        self.handler, self.threads = handler, threads
        self._lock = threading.Lock()
        self._expected: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread not in self.threads and record.levelno >= logging.INFO:
            with contextlib.suppress(Exception), self._lock:
                for line in self.handler.format(record).split("\n"):
                    if len(self._expected) < 10_000:
                        self._expected[line] = self._expected.get(line, 0) + 1
        return True

    def take(self, line: str) -> bool:
        """Whether ``line`` is one this handler printed of a record (then counted off)."""
        with self._lock:
            n = self._expected.get(line)
            if not n:
                return False
            if n == 1:
                del self._expected[line]
            else:
                self._expected[line] = n - 1
            return True


class _Lines:
    """Text in, whole lines out: a newline ends a line; a carriage return starts it over,
    as on a terminal (a progress bar keeps its last state); longer than
    :data:`~core.store.logs.MAX_LINE` it is cut into pieces. A line a :class:`_Console`
    handler printed is left out (its record is in the log already)."""

    def __init__(self, sink: Sink, stream: str, consoles: Sequence[_Console] = ()) -> None:
        self.sink, self.stream, self._part = sink, stream, ""
        self.consoles = consoles
        self._lock = threading.Lock()

    def feed(self, text: str) -> None:
        with self._lock:
            text = self._part + text
            *whole, self._part = text.split("\n")
            for line in whole:
                self._emit(line)
            while len(self._part) > MAX_LINE:
                self._emit(self._part[:MAX_LINE])
                self._part = self._part[MAX_LINE:]

    def _emit(self, line: str) -> None:
        line = line.rstrip("\r").rpartition("\r")[2]
        if any(c.take(line) for c in self.consoles):
            return
        for i in range(0, max(len(line), 1), MAX_LINE):
            self.sink.add(self.stream, line[i:i + MAX_LINE])

    def end(self) -> None:
        with self._lock:
            if self._part:
                self._emit(self._part)
                self._part = ""


class _Handler(logging.Handler):
    """Root-logger handler: a record as one or more ``log`` lines."""

    def __init__(self, sink: Sink, thread: int | None, captured: Any) -> None:
        super().__init__(logging.INFO)
        self.sink, self.thread, self.captured = sink, thread, captured
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self.thread is not None and record.thread != self.thread:
            return
        if record.thread in self.sink.threads or record.name == log.name \
                or self._printed(record):
            return  # the capture's own (whichever thread flushed it) are not the job's
        try:
            for line in self.format(record).split("\n"):
                self.sink.add("log", line[:MAX_LINE])
        except Exception:  # noqa: BLE001
            self.handleError(record)

    def _printed(self, record: logging.LogRecord) -> bool:
        """Whether a handler on the record's way to the root prints it to a captured
        stream (then it is in the log already)."""
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            for h in logger.handlers:
                if any(isinstance(f, _Console) for f in h.filters):
                    continue  # the worker's console: its copy is left out, not this
                if (h is not self and isinstance(h, logging.StreamHandler)
                        and record.levelno >= h.level and self.captured(h.stream)):
                    return True
            logger = logger.parent if logger.propagate else None
        return False


_root_lock = threading.Lock()
_root_users = 0
_root_level = logging.WARNING


@contextlib.contextmanager
def _root_handler(handler: _Handler) -> Iterator[None]:
    """``handler`` on the root logger, whose level is INFO or lower meanwhile."""
    global _root_users, _root_level
    root = logging.getLogger()
    with _root_lock:
        if _root_users == 0:
            _root_level = root.level
            if root.level > logging.INFO:
                root.setLevel(logging.INFO)
        _root_users += 1
        root.addHandler(handler)
    try:
        yield
    finally:
        with _root_lock:
            root.removeHandler(handler)
            _root_users -= 1
            if _root_users == 0:
                root.setLevel(_root_level)


# -- the task's process to itself: descriptors -------------------------------------------

@contextlib.contextmanager
def _descriptors(sink: Sink) -> Iterator[None]:
    saved: dict[int, int] = {}
    readers: list[threading.Thread] = []
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    for s in streams.values():
        with contextlib.suppress(Exception):
            s.flush()
    ours: dict[str, TextIO] = {}
    # the worker's own console handlers (Celery's, on the root logger, to fd 2), there
    # before the job: their copies of the job's records are left out of the captured lines
    consoles = [_Console(h, sink.threads) for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and _on_descriptor(h.stream)]
    try:
        for c in consoles:
            c.handler.addFilter(c)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            saved[fd] = os.dup(fd)
            os.dup2(write_end, fd)
            os.close(write_end)
            t = threading.Thread(target=_read, args=(read_end, saved[fd],
                                                     _Lines(sink, name, consoles)),
                                 name=f"logs-{name}-{sink.run_id}", daemon=True)
            t.start()
            readers.append(t)
            sink.threads.add(t.ident)
            ours[name] = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                                          errors="backslashreplace", line_buffering=True,
                                          write_through=True)
        sys.stdout, sys.stderr = ours["stdout"], ours["stderr"]

        def captured(stream: Any) -> bool:
            if stream in ours.values():
                return True
            try:
                return bool(stream.fileno() in (1, 2))
            except Exception:  # noqa: BLE001 — no descriptor: not ours
                return False

        with _root_handler(_Handler(sink, None, captured)):
            yield
    finally:
        for s in ours.values():
            with contextlib.suppress(Exception):
                s.flush()
        for c in consoles:
            c.handler.removeFilter(c)
        sys.stdout, sys.stderr = streams["stdout"], streams["stderr"]
        for fd, original in saved.items():
            os.dup2(original, fd)  # the pipe's last write end closes: its reader ends
        for t in readers:
            t.join(timeout=5)  # a child process still holding the pipe: let it be
        for original in saved.values():
            os.close(original)


def _on_descriptor(stream: Any) -> bool:
    """Whether ``stream`` writes to file descriptor 1 or 2."""
    try:
        return bool(stream.fileno() in (1, 2))
    except Exception:  # noqa: BLE001 — no descriptor
        return False


def _read(fd: int, tee: int, lines: _Lines) -> None:
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while chunk := os.read(fd, 65536):
            with contextlib.suppress(OSError):
                os.write(tee, chunk)
            lines.feed(decode.decode(chunk))
        lines.feed(decode.decode(b"", final=True))
        lines.end()
    except Exception:  # noqa: BLE001 — the job goes on without its output captured
        log.warning("run %s: log capture stopped", lines.sink.run_id, exc_info=True)
    finally:
        os.close(fd)


# -- several tasks per process: sys.stdout/sys.stderr routed by thread -------------------

class _Router(io.TextIOBase):
    """A standard stream that gives the lines of threads with a route to their run and
    passes every other thread's to the stream it replaced."""

    def __init__(self, name: str, under: TextIO) -> None:
        self.name_, self.under = name, under
        self.routes: dict[int, _Lines] = {}

    def write(self, s: str) -> int:
        route = self.routes.get(threading.get_ident())
        if route is None:
            return self.under.write(s)
        route.feed(s)
        return len(s)

    def flush(self) -> None:
        if threading.get_ident() not in self.routes:
            self.under.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.under.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


_routers_lock = threading.Lock()


@contextlib.contextmanager
def _routed(sink: Sink) -> Iterator[None]:
    me = threading.get_ident()
    with _routers_lock:
        routers: dict[str, _Router] = {}
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, _Router):
                current = _Router(name, current)
                setattr(sys, name, current)
            routers[name] = current
            current.routes[me] = _Lines(sink, name)

    def captured(stream: Any) -> bool:
        return stream in routers.values()

    try:
        with _root_handler(_Handler(sink, me, captured)):
            yield
    finally:
        with _routers_lock:
            for name, router in routers.items():
                lines = router.routes.pop(me, None)
                if lines is not None:
                    lines.end()
                if not router.routes and getattr(sys, name) is router:
                    setattr(sys, name, router.under)


class Capture:
    """A task's capture, from :func:`capture_logs`; :meth:`end` undoes it and writes the
    rest (once; the block's end does it otherwise)."""

    def __init__(self, sink: Sink | None, stack: contextlib.ExitStack) -> None:
        self.sink, self._stack = sink, stack

    def end(self) -> None:
        stack, self._stack = self._stack, contextlib.ExitStack()
        try:
            stack.close()
        finally:
            if self.sink is not None:
                self.sink.close()
                self.sink = None


@contextlib.contextmanager
def capture_logs(backend: Backend, run_id: int | Sequence[int], *, max_bytes: int,
                 interval: float = 1.0) -> Iterator[Capture]:
    """Capture the calling task's output into run ``run_id``'s log (each of several runs'
    logs: a pack's) until the block ends or :meth:`Capture.end`; if capture cannot start
    the job runs without it."""
    stack = contextlib.ExitStack()
    sink: Sink | None = None
    try:
        if isinstance(run_id, int):
            sink = LogSink(backend, run_id, max_bytes=max_bytes, interval=interval)
        else:
            sink = TeeSink([LogSink(backend, r, max_bytes=max_bytes, interval=interval)
                            for r in run_id])
        exclusive = threading.current_thread() is threading.main_thread()
        stack.enter_context(_descriptors(sink) if exclusive else _routed(sink))
    except Exception:  # noqa: BLE001 — e.g. out of descriptors
        log.warning("run %s: no log capture", run_id, exc_info=True)
    capture = Capture(sink, stack)
    try:
        yield capture
    finally:
        capture.end()
