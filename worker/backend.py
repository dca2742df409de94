"""How a worker reaches the store: :class:`Direct` (the database URL and the artifact
folder, as on the service's own machine) or :class:`Remote` (only the server's URL and a
worker token, besides the broker: a GPU box in another network, a cloud instance, a
cluster without the shared volume). :func:`get_backend` picks by the settings:
``NEUROREG_WORKER_TOKEN`` set means :class:`Remote` to ``NEUROREG_API_URL``.

Both do the same actions (:mod:`core.work` holds their store side; ``/api/worker`` serves
it to :class:`Remote`), so every task, the recorder, the log capture, the heartbeat and the
system metrics run unchanged on either. Methods that read another run take ``held``, the
run the job is for: a worker over the API may read only what that run reads.

:class:`Remote` keeps what it downloads (an input artifact, by its sha256; a recording or
network, by size and time) under ``<data_dir>/worker-cache``, and retries a call the
server could not answer (a restart, a 503 from the database or the object store) for
``retry_s`` before it gives up, so nothing it was asked to store is lost to a blip: the
recorder and the log sink keep what a failed call did not store, and send it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from core.settings import Settings, get_settings
from core.store.logs import Dropped, Line
from core.store.metrics import Point
from core.store.models import RunStatus
from core.store.runs import NotFound
from core.work import Claim

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class Backend(Protocol):
    """A worker's actions on the store (see the module docstring)."""

    def claim(self, run_id: int, worker: str, takeover: str | None = None) -> Claim | None:
        """Start a run (:class:`~core.work.Claim`: its kind and config, or the worker alive
        on it); None when it is missing or finished."""

    def beat(self, run_id: int) -> None: ...

    def points(self, run_id: int, points: Sequence[Point]) -> None: ...

    def status(self, run_id: int) -> RunStatus: ...

    def sync(self, run_id: int, points: Sequence[Point],
             progress: tuple[float, str] | None) -> RunStatus:
        """Store points and the progress (either may be empty) and read the run's status:
        a recorder's flush, in one round trip."""

    def created_at(self, run_id: int) -> datetime: ...

    def save_artifact(self, run_id: int, name: str, data: bytes, media_type: str) -> None: ...

    def load_artifact(self, run_id: int, name: str) -> bytes | None: ...

    def artifact_file(self, held: int, run_id: int, name: str) -> Path:
        """A local path of artifact ``name`` of run ``run_id`` (``held`` or a run it
        reads). Raises :class:`NotFound` when it has none."""

    def config_of(self, held: int, run_id: int) -> tuple[str, dict[str, Any]]:
        """The kind and stored config of ``held`` or a run it reads."""

    def shared_file(self, held: int, root: str, name: str) -> Path:
        """A local path of ``name`` under the server's ``recordings`` or ``models``
        root, which ``held`` or a run it reads names in its config."""

    def next_seq(self, run_id: int) -> int: ...

    def append_lines(self, run_id: int, lines: Sequence[Line], *, max_bytes: int,
                     dropped: Dropped | None) -> bool:
        """Store log lines; True when the log reached its bound (later lines are only
        counted)."""

    def keep_logs(self, run_id: int) -> None: ...

    def provenance(self, run_id: int, provenance: dict[str, Any]) -> None: ...

    def finish(self, run_id: int, status: RunStatus, *, error: str | None,
               result: Any) -> list[tuple[int, str]]:
        """Record the end, queue what it creates, tell its study; the (id, kind)
        queued."""

    def release(self, run_id: int, worker: str, message: str) -> bool: ...

    def fan_out(self, study_id: int) -> list[tuple[int, str, dict[str, Any]]]: ...

    def enqueue(self, study_id: int, runs: Sequence[int], packs: Sequence[list[int]]) -> None:
        """Queue a study's children (``packs`` as one task each)."""


class Direct:
    """The store itself: the database URL and the artifact folder in the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        from core.store.db import session_scope

        with session_scope(self.settings.db_url) as s:
            yield s

    def _celery(self) -> Any:
        from worker.app import celery_app

        return celery_app

    def claim(self, run_id: int, worker: str, takeover: str | None = None) -> Claim | None:
        from core import work

        with self._session() as s:
            return work.claim(s, self.settings, run_id, worker=worker, takeover=takeover)

    def beat(self, run_id: int) -> None:
        from core.store.runs import beat

        with self._session() as s:
            beat(s, run_id)

    def points(self, run_id: int, points: Sequence[Point]) -> None:
        from core.store.metrics import insert_points

        with self._session() as s:
            insert_points(s, run_id, points)

    def status(self, run_id: int) -> RunStatus:
        from core.store.runs import status_of

        with self._session() as s:
            return status_of(s, run_id)

    def sync(self, run_id: int, points: Sequence[Point],
             progress: tuple[float, str] | None) -> RunStatus:
        from core.store.metrics import insert_points
        from core.store.runs import set_progress, status_of

        with self._session() as s:
            if points:
                insert_points(s, run_id, points)
            if progress is not None:
                set_progress(s, run_id, *progress)
            return status_of(s, run_id)

    def created_at(self, run_id: int) -> datetime:
        from core.store.runs import get_run

        with self._session() as s:
            return get_run(s, run_id).created_at

    def save_artifact(self, run_id: int, name: str, data: bytes, media_type: str) -> None:
        from core.store.artifacts import save_artifact

        with self._session() as s:
            save_artifact(s, self.settings.artifacts, run_id=run_id, name=name, data=data,
                          media_type=media_type)

    def load_artifact(self, run_id: int, name: str) -> bytes | None:
        from core.store.artifacts import get_artifact, resolve

        with self._session() as s:
            row = get_artifact(s, run_id, name)
            return None if row is None else resolve(self.settings.artifacts,
                                                     row.path).read_bytes()

    def artifact_file(self, held: int, run_id: int, name: str) -> Path:
        from core.inputs import artifact_path

        with self._session() as s:
            return artifact_path(s, self.settings, run_id, name)

    def config_of(self, held: int, run_id: int) -> tuple[str, dict[str, Any]]:
        from core.store.runs import get_run

        with self._session() as s:
            run = get_run(s, run_id)
            return run.kind, dict(run.config or {})

    def shared_file(self, held: int, root: str, name: str) -> Path:
        from core import recordings

        base = self.settings.recordings if root == "recordings" else self.settings.models
        field = "config.recording" if root == "recordings" else "config.features.weights"
        return recordings.resolve(base, name, field)

    def next_seq(self, run_id: int) -> int:
        from core.store.logs import next_seq

        with self._session() as s:
            return next_seq(s, run_id)

    def append_lines(self, run_id: int, lines: Sequence[Line], *, max_bytes: int,
                     dropped: Dropped | None) -> bool:
        from core.store.logs import append_lines

        with self._session() as s:
            return bool(append_lines(s, run_id, lines, max_bytes=max_bytes,
                                     also_dropped=dropped).dropped)

    def keep_logs(self, run_id: int) -> None:
        from core.store.logs import save_log_artifact

        with self._session() as s:
            save_log_artifact(s, self.settings.artifacts, run_id)

    def provenance(self, run_id: int, provenance: dict[str, Any]) -> None:
        from core.store.provenance import set_provenance

        with self._session() as s:
            set_provenance(s, run_id, provenance)

    def finish(self, run_id: int, status: RunStatus, *, error: str | None,
               result: Any) -> list[tuple[int, str]]:
        from core import work

        with self._session() as s:
            return work.finish(s, self.settings, self._celery(), run_id, status,
                               error=error, result=result)

    def release(self, run_id: int, worker: str, message: str) -> bool:
        from core import work

        with self._session() as s:
            return work.release(s, self.settings, self._celery(), run_id, worker=worker,
                                message=message)

    def fan_out(self, study_id: int) -> list[tuple[int, str, dict[str, Any]]]:
        from core.store.runs import get_run
        from core.studies import fan_out

        with self._session() as s:
            return [(r.id, r.kind, dict(r.config)) for r in fan_out(s, get_run(s, study_id))]

    def enqueue(self, study_id: int, runs: Sequence[int], packs: Sequence[list[int]]) -> None:
        from core import work
        from core.store.runs import get_run

        with self._session() as s:
            pairs, groups = work.children_to_queue(s, get_run(s, study_id), runs, packs)
        work.enqueue(self._celery(), self.settings, pairs, groups)


class RemoteError(RuntimeError):
    """The server refused a worker's call (a 4xx): retrying would not help."""


class Remote:
    """The store through the server's ``/api/worker`` routes, with a worker token."""

    def __init__(self, url: str, token: str, *, cache: Path, retry_s: float = 120.0,
                 backoff: float = 0.5, client: httpx.Client | None = None) -> None:
        """``retry_s``: how long a call is retried while the server is away or answers
        5xx, the first pause ``backoff`` s, doubling up to 10 s."""
        self.url, self.cache, self.retry_s = url.rstrip("/"), cache, retry_s
        self.backoff = backoff
        self.http = client or httpx.Client(base_url=self.url, timeout=httpx.Timeout(60.0))
        self.http.headers["Authorization"] = f"Bearer {token}"
        # the object store's signed URLs carry their own authorization: never our token
        self.store_http = httpx.Client(timeout=httpx.Timeout(60.0))

    # -- transport ------------------------------------------------------------------------

    def _retrying(self, what: str, attempt: Callable[[], _T]) -> _T:
        """``attempt()``, again with backoff for ``retry_s`` while the server is away or
        answers 5xx (:class:`_Again`); each worker action is idempotent (a point, a line,
        an artifact stored twice is stored once). Past its patience the last problem
        is raised."""
        deadline, pause = time.monotonic() + self.retry_s, self.backoff
        while True:
            try:
                return attempt()
            except httpx.TransportError as exc:
                if time.monotonic() >= deadline:
                    raise
                problem = str(exc)
            except _Again as exc:
                if time.monotonic() >= deadline:
                    raise RemoteError(f"{what}: {exc}") from None
                problem = str(exc)
            log.warning("%s: %s; retrying", what, problem)
            time.sleep(pause)
            pause = min(pause * 2, 10.0)

    def _call(self, method: str, path: str, *, ok: Sequence[int] = (200,),
              client: httpx.Client | None = None, **kw: Any) -> httpx.Response:
        """One call, retried (:meth:`_retrying`); a 4xx other than ``ok`` raises
        :class:`RemoteError` or, for a 404, :class:`NotFound`."""
        def attempt() -> httpx.Response:
            r = (client or self.http).request(method, path, **kw)
            if r.status_code not in ok:
                _refused(r, f"{method} {path}")
            return r

        return self._retrying(f"{method} {path}", attempt)

    def _run(self, run_id: int, rest: str = "") -> str:
        return f"/api/worker/runs/{run_id}{rest}"

    def _download(self, path: str, target: Path, **kw: Any) -> Path:
        """Stream a file into ``target`` (atomically), retried (:meth:`_retrying`); one in
        the object store is streamed from the short-lived URL the API redirects to (asked
        afresh on each attempt)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        what = f"GET {path}"

        def save(r: httpx.Response) -> Path:
            if r.status_code != 200:
                r.read()
                _refused(r, what)
            with open(tmp, "wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
            os.replace(tmp, target)
            return target

        def attempt() -> Path:
            with self.http.stream("GET", path, **kw) as r:
                if r.status_code != 307:
                    return save(r)
                r.read()
                location = r.headers["location"]
            with self.store_http.stream("GET", location) as r:
                return save(r)

        return self._retrying(what, attempt)

    # -- the actions ----------------------------------------------------------------------

    def claim(self, run_id: int, worker: str, takeover: str | None = None) -> Claim | None:
        body = self._call("POST", self._run(run_id, "/claim"),
                          json={"worker": worker, "takeover": takeover}).json()
        if body["kind"] is None and body["holder"] is None:
            return None
        return Claim(body["kind"], body["config"], body["holder"])

    def beat(self, run_id: int) -> None:
        self._call("POST", self._run(run_id, "/beat"), ok=(204,))

    def points(self, run_id: int, points: Sequence[Point]) -> None:
        for k in range(0, len(points), 10_000):  # the route's bound
            self._call("POST", self._run(run_id, "/points"), ok=(204,),
                       json={"points": _points(points[k:k + 10_000])})

    def sync(self, run_id: int, points: Sequence[Point],
             progress: tuple[float, str] | None) -> RunStatus:
        head, last = points[:-10_000], points[-10_000:]
        if head:
            self.points(run_id, head)
        body = self._call("POST", self._run(run_id, "/sync"), json={
            "points": _points(last),
            "progress": None if progress is None else
            {"fraction": progress[0], "message": progress[1]}}).json()
        return RunStatus(body["status"])

    def _state(self, run_id: int) -> dict[str, Any]:
        return dict(self._call("GET", self._run(run_id)).json())

    def status(self, run_id: int) -> RunStatus:
        return RunStatus(self._state(run_id)["status"])

    def created_at(self, run_id: int) -> datetime:
        return datetime.fromisoformat(self._state(run_id)["created_at"])

    def next_seq(self, run_id: int) -> int:
        return int(self._state(run_id)["next_seq"])

    def save_artifact(self, run_id: int, name: str, data: bytes, media_type: str) -> None:
        """Straight into the deployment's object store, at a URL the API hands out (then
        recorded through the API); else through the API itself."""
        url = self._call("POST", self._run(run_id, f"/uploads/{quote(name)}"),
                         json={"media_type": media_type, "size": len(data)}).json()["url"]
        if url is None:
            self._call("PUT", self._run(run_id, f"/artifacts/{quote(name)}"), ok=(204,),
                       content=data, headers={"Content-Type": media_type})
            return
        self._call("PUT", url, ok=(200,), content=data, headers={"Content-Type": media_type},
                   client=self.store_http)
        self._call("POST", self._run(run_id, f"/uploaded/{quote(name)}"), ok=(204,), json={
            "media_type": media_type, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()})

    def load_artifact(self, run_id: int, name: str) -> bytes | None:
        r = self._call("GET", self._run(run_id, f"/artifacts/{quote(name)}"),
                       ok=(200, 204, 307))
        if r.status_code == 307:  # in the object store: fetched from there
            r = self._call("GET", r.headers["location"], client=self.store_http)
        return None if r.status_code == 204 else r.content

    def _input(self, held: int, run_id: int) -> dict[str, Any]:
        return dict(self._call("GET", self._run(held, f"/inputs/{run_id}")).json())

    def artifact_file(self, held: int, run_id: int, name: str) -> Path:
        meta = self._input(held, run_id)["artifacts"].get(name)
        if meta is None:
            raise NotFound(f"run {run_id} has no artifact {name!r}")
        digest = str(meta["sha256"])
        target = self.cache / "artifacts" / digest[:2] / digest / Path(name).name
        if target.is_file() and _sha256(target) == digest:
            return target
        got = self._download(self._run(held, f"/inputs/{run_id}/artifacts/{quote(name)}"),
                             target)
        if _sha256(got) != digest:
            got.unlink()
            raise RemoteError(f"run {run_id}'s {name} arrived damaged (sha256 differs)")
        return got

    def config_of(self, held: int, run_id: int) -> tuple[str, dict[str, Any]]:
        meta = self._input(held, run_id)
        return str(meta["kind"]), dict(meta["config"] or {})

    def shared_file(self, held: int, root: str, name: str) -> Path:
        listing = self._call("GET", self._run(held, f"/files/{root}"),
                             params={"name": name}).json()
        base = self.cache / root / name
        for entry in listing["files"]:
            rel, size = entry["path"], entry["bytes"]
            target = base / rel if rel else base
            if target.is_file() and target.stat().st_size == size:
                continue
            self._download(self._run(held, f"/files/{root}/content"), target,
                           params={"name": name, "file": rel})
        return base

    def append_lines(self, run_id: int, lines: Sequence[Line], *, max_bytes: int,
                     dropped: Dropped | None) -> bool:
        body = {"lines": [{"seq": ln.seq, "stream": ln.stream, "time": ln.time,
                           "line": ln.line} for ln in lines],
                "dropped": None if dropped is None else
                {"lines": dropped.lines, "bytes": dropped.bytes, "seq": dropped.seq}}
        return bool(self._call("POST", self._run(run_id, "/logs"), json=body).json()["full"])

    def keep_logs(self, run_id: int) -> None:
        self._call("POST", self._run(run_id, "/keep-logs"), ok=(204,))

    def provenance(self, run_id: int, provenance: dict[str, Any]) -> None:
        self._call("PUT", self._run(run_id, "/provenance"), ok=(204,), json=provenance)

    def finish(self, run_id: int, status: RunStatus, *, error: str | None,
               result: Any) -> list[tuple[int, str]]:
        body = self._call("POST", self._run(run_id, "/finish"), json={
            "status": status.value, "error": error, "result": result}).json()
        return [(int(r["id"]), str(r["kind"])) for r in body["queued"]]

    def release(self, run_id: int, worker: str, message: str) -> bool:
        return bool(self._call("POST", self._run(run_id, "/release"), json={
            "worker": worker, "message": message}).json()["released"])

    def fan_out(self, study_id: int) -> list[tuple[int, str, dict[str, Any]]]:
        runs = self._call("POST", self._run(study_id, "/fan-out")).json()["runs"]
        return [(int(r["id"]), str(r["kind"]), dict(r["config"])) for r in runs]

    def enqueue(self, study_id: int, runs: Sequence[int], packs: Sequence[list[int]]) -> None:
        self._call("POST", self._run(study_id, "/enqueue"), ok=(204,),
                   json={"runs": list(runs), "packs": [list(p) for p in packs]})


class _Again(Exception):
    """The server (or the object store) answered 5xx or 429: worth another try."""


def _refused(r: httpx.Response, what: str) -> None:
    """Raise for an answer that is not the one wanted: :class:`NotFound` (404),
    :class:`RemoteError` (another 4xx: an answer), :class:`_Again` (5xx, 429)."""
    if r.status_code == 404:
        raise NotFound(_detail(r))
    if r.status_code < 500 and r.status_code != 429:
        raise RemoteError(f"{what}: {r.status_code} {_detail(r)}")
    raise _Again(f"{r.status_code} {_detail(r)}")


def _points(points: Sequence[Point]) -> list[dict[str, Any]]:
    return [{"key": key, "step": step, "value": value, "wall_time": t}
            for key, step, value, t in points]


def _detail(r: httpx.Response) -> str:
    with contextlib.suppress(Exception):
        return str(r.json().get("detail"))
    return r.text[:200]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def get_backend() -> Backend:
    """:class:`Remote` when the settings hold a worker token, else :class:`Direct`."""
    settings = get_settings()
    if settings.worker_token:
        return _remote(settings.url, settings.worker_token, settings.data_dir / "worker-cache")
    return Direct(settings)


@lru_cache
def _remote(url: str, token: str, cache: Path) -> Remote:
    return Remote(url, token, cache=cache)  # one connection pool per process
