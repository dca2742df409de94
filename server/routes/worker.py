"""``/api/worker``: what a worker that has only the server's URL, a worker token and the
broker does to the store (:class:`worker.backend.Remote`; :mod:`core.work` is the store
side, shared with workers that have the database).

Only a worker token is taken here (a member token is a 403, and a worker token is a 403
everywhere else). A token writes only to a run it claimed, and reads only what that run
reads (:func:`core.work.readable`, :func:`core.work.shared_file`); the one exception is a
succeeded train run's S_CNN overview, a cache the dashboard asks any worker to fill.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Path, Query, Request, Response, status
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from core import work
from core.access import Access
from core.store import objects
from core.store.artifacts import (
    UnsafePath,
    check_path,
    download_url,
    get_artifact,
    list_artifacts,
    record,
    resolve,
)
from core.store.logs import Dropped, Line, next_seq, save_log_artifact
from core.store.logs import append_lines as store_lines
from core.store.metrics import insert_points
from core.store.models import MAX_ID, ProjectRole, Run, RunStatus
from core.store.provenance import set_provenance
from core.store.runs import NotFound, beat, lock_run, set_progress
from core.transfer import ImportRefused
from ml import artifacts as names
from server.deps import RunId, SessionDep, SettingsDep, WorkerToken
from server.routes.artifacts import ArtifactPath, store_body
from server.routes.logs import MAX_LOG_BATCH_BYTES
from server.routes.metrics import MAX_BATCH_BYTES
from server.routes.transfer import pages_read
from server.schemas import MAX_BATCH_POINTS, LogStream, MetricPoint
from server.strict import CONFLICT, api_router, body_limit, invalid

router = api_router(prefix="/api/worker/runs/{run_id}", tags=["worker"])
hello_router = api_router(prefix="/api/worker", tags=["worker"])


class HelloOut(BaseModel):
    token: str  # the worker token's name
    user: str  # the admin who issued it


@hello_router.get("")
def hello(token: WorkerToken) -> HelloOut:
    """Whether this worker token is live: a worker checks it when it starts."""
    return HelloOut(token=token.name, user=token.user.name)

FILE: dict[int | str, dict[str, Any]] = {200: {
    "description": "the file's bytes (with an object store, a 307 to a signed URL of them)",
    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}}
"""A route answering with a file's bytes, as its OpenAPI document says."""

InputId = Annotated[int, Path(ge=1, le=MAX_ID, description="a run the held run reads")]
Root = Annotated[Literal["recordings", "models"], Path(description="the server's folder")]


def _held(session: Session, run_id: int, token: Any, *, overview: bool = False) -> Run:
    """The run ``token`` claimed (403 otherwise); with ``overview``, also any succeeded
    train run (its S_CNN overview, which any worker may be asked to compute)."""
    try:
        return work.held(session, run_id, token.id)
    except work.NotHeld as exc:
        run = session.get(Run, run_id)
        if overview and run is not None and run.kind == "train" \
                and run.status is RunStatus.succeeded:
            return run
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


def _readable(session: Session, held: Run, input_id: int) -> Run:
    if input_id not in work.readable(session, held):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"run {input_id} is not one run {held.id} reads")
    run = session.get(Run, input_id)
    assert run is not None  # readable() found it through the store
    return run


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker: str = Field(min_length=1, max_length=128)
    # the worker holding the run, which the caller saw is dead on its own host
    takeover: str | None = Field(None, max_length=128)


class ClaimOut(BaseModel):
    kind: str | None  # None: not taken (finished, missing, or held: then ``holder``)
    config: dict[str, Any] | None
    holder: str | None


@router.post("/claim")
def claim(run_id: RunId, body: ClaimIn, session: SessionDep, settings: SettingsDep,
          token: WorkerToken) -> ClaimOut:
    """Start a queued run for this worker (or one whose worker stopped beating): its kind
    and config. A finished or missing run is not taken; a run another worker is alive on
    names its ``holder``."""
    got = work.claim(session, settings, run_id, worker=body.worker, takeover=body.takeover,
                     token_id=token.id)
    session.commit()
    if got is None:
        return ClaimOut(kind=None, config=None, holder=None)
    return ClaimOut(kind=got.kind, config=got.config, holder=got.holder)


class StateOut(BaseModel):
    status: str
    next_seq: int  # the log's next line number
    created_at: str


@router.get("")
def state(run_id: RunId, session: SessionDep, token: WorkerToken) -> StateOut:
    """The held run's status (a cancel shows here), its log's next line number and when
    it was created (system metrics count from then)."""
    run = _held(session, run_id, token)
    return StateOut(status=run.status.value, next_seq=next_seq(session, run_id),
                    created_at=run.created_at.isoformat())


@router.post("/beat", status_code=status.HTTP_204_NO_CONTENT)
def heartbeat(run_id: RunId, session: SessionDep, token: WorkerToken) -> None:
    _held(session, run_id, token)
    beat(session, run_id)
    session.commit()


class PointsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: list[MetricPoint] = Field(min_length=1, max_length=MAX_BATCH_POINTS)


@router.post("/points", status_code=status.HTTP_204_NO_CONTENT)
@body_limit(MAX_BATCH_BYTES)
def points(run_id: RunId, body: PointsIn, session: SessionDep, token: WorkerToken) -> None:
    """Metric points (``system/*`` included); a point sent again is stored once."""
    _held(session, run_id, token)
    insert_points(session, run_id, [(p.key, p.step, p.value, p.wall_time)
                                    for p in body.points])
    session.commit()


class ProgressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fraction: float = Field(ge=0, le=1)
    message: str = Field("", max_length=512)


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: list[MetricPoint] = Field(default_factory=list, max_length=MAX_BATCH_POINTS)
    progress: ProgressIn | None = None


class SyncOut(BaseModel):
    status: str  # the run's, after the write (a cancel shows here)


@router.post("/sync")
@body_limit(MAX_BATCH_BYTES)
def sync(run_id: RunId, body: SyncIn, session: SessionDep, token: WorkerToken) -> SyncOut:
    """A recorder's flush in one round trip: its points and progress (either may be
    absent), answered with the run's status, its cancellation check."""
    run = _held(session, run_id, token)
    if body.points:
        insert_points(session, run_id, [(p.key, p.step, p.value, p.wall_time)
                                        for p in body.points])
    if body.progress is not None:
        set_progress(session, run_id, body.progress.fraction, body.progress.message)
    session.commit()
    session.refresh(run)
    return SyncOut(status=run.status.value)


@router.put("/artifacts/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
async def save(run_id: RunId, name: ArtifactPath, request: Request, session: SessionDep,
               settings: SettingsDep, token: WorkerToken) -> None:
    """Store the body as the held run's artifact ``name`` (streamed to disk, up to
    ``NEUROREG_MAX_UPLOAD_BYTES``; saved again, replaced)."""
    _held(session, run_id, token, overview=name == names.S_CNN_OVERVIEW)
    await store_body(request, session, settings, run_id, name)
    session.commit()


@router.get("/artifacts/{name:path}", response_class=FileResponse,
            responses={**FILE, 204: {"description": "the run has no such artifact"}})
def load(run_id: RunId, name: ArtifactPath, session: SessionDep, settings: SettingsDep,
         token: WorkerToken) -> Response:
    """The held run's artifact ``name`` (a checkpoint to resume from); 204 when it has
    none."""
    _held(session, run_id, token, overview=name == names.S_CNN_OVERVIEW)
    row = get_artifact(session, run_id, name)
    if row is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return _file(settings.artifacts, row)


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_type: str = Field("application/octet-stream", max_length=128)
    size: int = Field(ge=0)  # what the URL takes: the store refuses any other length


class UploadOut(BaseModel):
    url: str | None  # None: no object store; PUT the bytes to /artifacts/{name} instead


@router.post("/uploads/{name:path}")
def upload_url(run_id: RunId, name: ArtifactPath, body: UploadIn, session: SessionDep,
               settings: SettingsDep, token: WorkerToken) -> UploadOut:
    """A short-lived URL the worker uploads the held run's artifact ``name`` to, straight
    into the object store (then :func:`uploaded` records it); None without one."""
    _held(session, run_id, token, overview=name == names.S_CNN_OVERVIEW)
    store = objects.for_root(settings.artifacts)
    if store is None:
        return UploadOut(url=None)
    if body.size > settings.max_upload_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"upload exceeds {settings.max_upload_bytes} bytes")
    return UploadOut(url=store.put_url(f"{run_id}/{_checked(name)}", media_type=body.media_type,
                                       size=body.size))


class UploadedIn(UploadIn):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


@router.post("/uploaded/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
def uploaded(run_id: RunId, name: ArtifactPath, body: UploadedIn, session: SessionDep,
             settings: SettingsDep, token: WorkerToken) -> None:
    """Record an artifact the worker uploaded to the URL :func:`upload_url` gave: it must
    be in the store, of the size the worker says (a 409 otherwise; nothing recorded)."""
    _held(session, run_id, token, overview=name == names.S_CNN_OVERVIEW)
    store = objects.for_root(settings.artifacts)
    if store is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "this server keeps artifacts itself: "
                            f"PUT them to /api/worker/runs/{run_id}/artifacts/{name}")
    relative = f"{run_id}/{_checked(name)}"
    found = store.size(relative)
    if found != body.size:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the store holds {found} bytes at "
                            f"{name!r}, not {body.size}: upload it again")
    lock_run(session, run_id)
    record(session, run_id=run_id, name=name, relative=relative,
           media_type=body.media_type, size=body.size, sha256=body.sha256)
    session.commit()


def _checked(name: str) -> str:
    try:
        return check_path(name)
    except UnsafePath as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


class InputOut(BaseModel):
    kind: str
    config: dict[str, Any] | None
    artifacts: dict[str, dict[str, Any]]  # name → {sha256, size}


@router.get("/inputs/{input_id}")
def input_run(run_id: RunId, input_id: InputId, session: SessionDep,
              token: WorkerToken) -> InputOut:
    """A run the held run reads (or the held run itself): its kind, config and
    artifacts' digests (a worker keeps what it downloaded by them)."""
    run = _readable(session, _held(session, run_id, token, overview=True), input_id)
    return InputOut(kind=run.kind, config=dict(run.config) if isinstance(run.config, dict)
                    else None, artifacts={a.name: {"sha256": a.sha256, "size": a.size_bytes}
                                          for a in list_artifacts(session, input_id)})


@router.get("/inputs/{input_id}/artifacts/{name:path}", response_class=FileResponse,
            responses=FILE)
def input_artifact(run_id: RunId, input_id: InputId, name: ArtifactPath, session: SessionDep,
                   settings: SettingsDep, token: WorkerToken) -> Response:
    """An artifact of a run the held run reads."""
    _readable(session, _held(session, run_id, token, overview=True), input_id)
    row = get_artifact(session, input_id, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {input_id} has no artifact {name!r}")
    return _file(settings.artifacts, row)


def _file(root: FilePath, row: Any) -> Response:
    """The artifact's file, or with an object store a redirect to a short-lived URL of it
    (the worker downloads from the store itself)."""
    url = download_url(root, row)
    if url is not None:
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    try:
        path = resolve(root, row.path)
    except UnsafePath:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "artifact file unavailable") from None
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "artifact file is missing on disk")
    return FileResponse(path, media_type=row.media_type)


FileName = Annotated[str, Query(min_length=1, max_length=1024,
                                description="the recording or network, as a config names it")]


def _shared(session: Session, settings: Any, run: Run, root: str, name: str) -> FilePath:
    try:
        return work.shared_file(session, settings, run, root, name)
    except work.NotHeld as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


class FileOut(BaseModel):
    path: str  # inside the recording ("" when it is one file)
    bytes: int


class FilesOut(BaseModel):
    files: list[FileOut]


@router.get("/files/{root}")
def files(run_id: RunId, root: Root, name: FileName, session: SessionDep,
          settings: SettingsDep, token: WorkerToken) -> FilesOut:
    """The files of a recording (or network) under the server's ``root`` that the held
    run, or a run it reads, names."""
    path = _shared(session, settings, _held(session, run_id, token), root, name)
    return FilesOut(files=[FileOut(path=p, bytes=n) for p, n in work.files_of(path)])


@router.get("/files/{root}/content", response_class=FileResponse, responses=FILE)
def file_content(run_id: RunId, root: Root, name: FileName, session: SessionDep,
                 settings: SettingsDep, token: WorkerToken,
                 file: Annotated[str, Query(max_length=1024)] = "") -> FileResponse:
    """One file of it (``file``: its path inside a folder; "" for a file)."""
    base = _shared(session, settings, _held(session, run_id, token), root, name)
    path = (base / file).resolve() if file else base
    if not path.is_relative_to(base) or not path.is_file() or path.is_symlink():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{name!r} has no file {file!r}")
    return FileResponse(path, media_type="application/octet-stream")


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0, lt=MAX_ID)
    stream: LogStream
    time: float = Field(ge=0, le=1e11)
    line: str = Field(max_length=16_384)


class DroppedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: int = Field(ge=0, lt=MAX_ID)
    bytes: int = Field(ge=0)
    seq: int = Field(ge=0, lt=MAX_ID)


class LogsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[LineIn] = Field(max_length=50_000)
    dropped: DroppedIn | None = None


class LogsOut(BaseModel):
    full: bool  # the log reached its bound: later lines are only counted


@router.post("/logs")
@body_limit(MAX_LOG_BATCH_BYTES)
def logs(run_id: RunId, body: LogsIn, session: SessionDep, settings: SettingsDep,
         token: WorkerToken) -> LogsOut:
    """The job's captured lines, numbered by the worker (a re-sent line is a no-op)."""
    _held(session, run_id, token)
    done = store_lines(session, run_id, [Line(ln.seq, ln.stream, ln.time, ln.line)
                                         for ln in body.lines],
                       max_bytes=settings.log_max_bytes,
                       also_dropped=Dropped(body.dropped.lines, body.dropped.bytes,
                                            body.dropped.seq) if body.dropped else None)
    session.commit()
    return LogsOut(full=bool(done.dropped))


@router.post("/keep-logs", status_code=status.HTTP_204_NO_CONTENT)
def keep_logs(run_id: RunId, session: SessionDep, settings: SettingsDep,
              token: WorkerToken) -> None:
    """The held run's log, as its logs.txt artifact."""
    _held(session, run_id, token)
    save_log_artifact(session, settings.artifacts, run_id)
    session.commit()


@router.put("/provenance", status_code=status.HTTP_204_NO_CONTENT)
def provenance(run_id: RunId, body: dict[str, Any], session: SessionDep,
               token: WorkerToken) -> None:
    """The worker's code, packages, host and GPUs."""
    _held(session, run_id, token)
    set_provenance(session, run_id, body)
    session.commit()


class FinishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "failed", "cancelled"]
    error: str | None = Field(None, max_length=4000)
    result: Any = None


class QueuedRun(BaseModel):
    id: int
    kind: str


class FinishOut(BaseModel):
    queued: list[QueuedRun]  # what its end created and queued


@router.post("/finish")
def finish(run_id: RunId, body: FinishIn, request: Request, session: SessionDep,
           settings: SettingsDep, token: WorkerToken) -> FinishOut:
    """The held run's end (a cancel that came meanwhile stands): queues what it creates
    (a study child's evaluation) and tells its study."""
    run = _held(session, run_id, token)
    result = body.result if isinstance(body.result, dict) else None

    def readable() -> None:
        session.refresh(run)  # as finish_run left it
        # read as a viewer of the run's project would: the run, its study
        pages_read(session, Access(user=token.user,
                                   roles={run.project_id: ProjectRole.viewer}), run)

    try:  # a result the pages cannot read is refused, as an import's is
        queued = work.finish(session, settings, request.app.state.celery, run_id,
                             RunStatus(body.status), error=body.error, result=result,
                             check=readable)
    except ImportRefused as exc:
        session.rollback()
        raise invalid(["body", "result"], exc.message) from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        session.rollback()  # the scores of its result could not be read from it
        raise invalid(["body", "result"], f"neuroreg cannot read this {run.kind} run's "
                      f"result ({type(exc).__name__}: {str(exc)[:200]})") from None
    return FinishOut(queued=[QueuedRun(id=r, kind=k) for r, k in queued])


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker: str = Field(min_length=1, max_length=128)
    message: str = Field(max_length=200)


class ReleaseOut(BaseModel):
    released: bool


@router.post("/release")
def release(run_id: RunId, body: ReleaseIn, request: Request, session: SessionDep,
            settings: SettingsDep, token: WorkerToken) -> ReleaseOut:
    """Hand the held run back to the queue (this worker shuts down), to resume from its
    checkpoint elsewhere."""
    _held(session, run_id, token)
    return ReleaseOut(released=work.release(session, settings, request.app.state.celery,
                                            run_id, worker=body.worker, message=body.message))


class StudyRun(QueuedRun):
    config: dict[str, Any]


class FanOutOut(BaseModel):
    runs: list[StudyRun]  # in queue order


@router.post("/fan-out", responses=CONFLICT)
def fan_out(run_id: RunId, session: SessionDep, token: WorkerToken) -> FanOutOut:
    """Create the held study's runs (once: asked again, none)."""
    from core.studies import fan_out as create

    run = _held(session, run_id, token)
    if run.kind != "study":
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is not a study")
    made = create(session, run)
    session.commit()
    return FanOutOut(runs=[StudyRun(id=r.id, kind=r.kind, config=dict(r.config)) for r in made])


RunRef = Annotated[int, Field(ge=1, le=MAX_ID)]


class EnqueueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[RunRef] = Field(max_length=10_000)
    packs: list[list[RunRef]] = Field(default_factory=list, max_length=10_000)


@router.post("/enqueue", status_code=status.HTTP_204_NO_CONTENT)
def enqueue(run_id: RunId, body: EnqueueIn, request: Request, session: SessionDep,
            settings: SettingsDep, token: WorkerToken) -> None:
    """Queue the held study's queued runs (``packs`` as one task each)."""
    study = _held(session, run_id, token)
    try:
        pairs, groups = work.children_to_queue(session, study, body.runs, body.packs)
    except work.NotHeld as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    work.enqueue(request.app.state.celery, settings, pairs, groups)
