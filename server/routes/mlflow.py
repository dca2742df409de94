"""MLflow's tracking REST API (2.0, which MLflow 3's client still speaks) and its artifact
proxy (``mlflow-artifacts``), on neuroreg's store: an unchanged MLflow client logs into
neuroreg with ``MLFLOW_TRACKING_URI`` set to this server and ``MLFLOW_TRACKING_TOKEN`` to
a neuroreg token. How MLflow's entities map onto neuroreg's: :mod:`core.mlflow`.

Every answer is MLflow's shape; every refusal MLflow's ``{"error_code", "message"}`` with
its status — an endpoint neuroreg does not implement included (``ENDPOINT_NOT_FOUND``,
never a 500 and never a silent accept). These routes follow MLflow's own API reference,
not neuroreg's OpenAPI document, so they are left out of it.
"""

from __future__ import annotations

import json
import posixpath
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from core import mlflow as m
from core.access import Access
from core.store.artifacts import (
    UnsafePath,
    check_path,
    download_url,
    get_artifact,
    list_artifacts,
    resolve,
    save_artifact_stream,
)
from core.submit import submit_run
from server.deps import CurrentAccess, CurrentUser, SessionDep, SettingsDep
from server.strict import api_router, loads

PREFIXES = ("/api/2.0/mlflow/", "/api/2.0/preview/mlflow/", "/ajax-api/2.0/mlflow/",
            "/api/2.0/mlflow-artifacts/", "/api/3.0/mlflow/", "/ajax-api/3.0/mlflow/")
"""MLflow's paths: every answer on them is MLflow's error shape (MLflow 3's client also
calls /api/3.0/mlflow/…: traces, datasets, scorers, server-info)."""
MAX_BATCH = {"metrics": 1000, "params": 100, "tags": 100}  # MLflow's log-batch bounds

router = api_router(prefix="/api/2.0/mlflow", tags=["mlflow"], include_in_schema=False)
artifacts_router = api_router(prefix="/api/2.0/mlflow-artifacts", tags=["mlflow"],
                              include_in_schema=False)


def is_mlflow(path: str) -> bool:
    return path.startswith(PREFIXES)


def error(code: str, message: str, status: int | None = None) -> JSONResponse:
    """MLflow's error shape."""
    return JSONResponse({"error_code": code, "message": message},
                        status_code=status or m.MlflowError.STATUS.get(code, 400))


STATUS_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED",
                403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                405: "ENDPOINT_NOT_FOUND", 409: "INVALID_STATE",
                413: "REQUEST_LIMIT_EXCEEDED", 422: "INVALID_PARAMETER_VALUE",
                503: "TEMPORARILY_UNAVAILABLE", 507: "RESOURCE_EXHAUSTED"}
"""A neuroreg refusal on an MLflow path, as MLflow names it (422s are 400s there)."""


def as_mlflow(status: int, message: str) -> JSONResponse:
    if status == 404 and message == "Not Found":  # no route: an endpoint neuroreg lacks
        return error("ENDPOINT_NOT_FOUND", "neuroreg does not implement this MLflow "
                     "endpoint; it implements experiments, runs, params, tags, metrics and "
                     "artifacts (see docs/mlflow.md)", 404)
    code = STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    return error(code, message, 400 if status == 422 else status)


async def _fields(request: Request) -> dict[str, Any]:
    """A request's fields: its JSON body (by neuroreg's rules: no NaN, no NUL, bounded
    depth), else its query string (MLflow's GETs), repeated keys as lists."""
    body = await request.body()
    if body:
        try:
            parsed, _ = loads(body)
        except json.JSONDecodeError:
            raise m.MlflowError("MALFORMED_REQUEST", "Malformed request: the body is not "
                                "JSON") from None
        if not isinstance(parsed, dict):
            raise m.MlflowError("MALFORMED_REQUEST", "Malformed request: the body is not a "
                                "JSON object")
        return parsed
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        out[key] = values if len(values) > 1 or key.endswith("_ids") else values[0]
    return out


Fields = Annotated[dict[str, Any], Depends(_fields)]


def _bounded(fields: dict[str, Any], name: str, default: int, most: int) -> int:
    value = m.integer(fields, name, default=default)
    assert value is not None
    if not 1 <= value <= most:
        raise m.invalid(f"Invalid value {value} for parameter '{name}' supplied: 1 to {most}")
    return value


# -- experiments ----------------------------------------------------------------------------

@router.post("/experiments/create")
def create_experiment(fields: Fields, session: SessionDep, user: CurrentUser) -> Any:
    name = m.required(fields, "name", limit=500)
    e = m.create_experiment(session, user, name, m.key_values(fields, "tags", 100))
    session.commit()
    return {"experiment_id": str(e.id)}


@router.get("/experiments/get")
def get_experiment(fields: Fields, session: SessionDep, _: CurrentUser) -> Any:
    return {"experiment": m.experiment_json(m.get_experiment(session,
                                                             m.experiment_id(fields)))}


@router.get("/experiments/get-by-name")
def get_experiment_by_name(fields: Fields, session: SessionDep, _: CurrentUser) -> Any:
    name = m.required(fields, "experiment_name", limit=500)
    return {"experiment": m.experiment_json(m.experiment_by_name(session, name))}


@router.post("/experiments/delete")
def delete_experiment(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    m.set_experiment_deleted(session, access, m.get_experiment(session, m.experiment_id(fields)),
                             True)
    session.commit()
    return {}


@router.post("/experiments/restore")
def restore_experiment(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    m.set_experiment_deleted(session, access, m.get_experiment(session, m.experiment_id(fields)),
                             False)
    session.commit()
    return {}


@router.post("/experiments/update")
def update_experiment(fields: Fields, session: SessionDep, user: CurrentUser) -> Any:
    e = m.get_experiment(session, m.experiment_id(fields))
    name = m.required(fields, "new_name", limit=500)
    m.rename_experiment(session, user, e, name)
    session.commit()
    return {}


@router.post("/experiments/set-experiment-tag")
def set_experiment_tag(fields: Fields, session: SessionDep, user: CurrentUser) -> Any:
    e = m.get_experiment(session, m.experiment_id(fields))
    m.set_experiment_tag(session, user, e, *m.key_value(fields))
    session.commit()
    return {}


@router.post("/experiments/delete-experiment-tag")
def delete_experiment_tag(fields: Fields, session: SessionDep, user: CurrentUser) -> Any:
    e = m.get_experiment(session, m.experiment_id(fields))
    m.set_experiment_tag(session, user, e, m.required(fields, "key", limit=250), None)
    session.commit()
    return {}


@router.get("/experiments/search")
@router.post("/experiments/search")
def search_experiments(fields: Fields, session: SessionDep, _: CurrentUser) -> Any:
    found, token = m.search_experiments(
        session, view_type=str(fields.get("view_type") or "ACTIVE_ONLY"),
        max_results=_bounded(fields, "max_results", 1000, 50_000),
        filter_string=m.text(fields, "filter", required=False, limit=2000),
        order_by=m.strings(fields, "order_by"),
        page_token=m.text(fields, "page_token", required=False, limit=200))
    return {"experiments": [m.experiment_json(e) for e in found],
            **({"next_page_token": token} if token else {})}


# -- runs -----------------------------------------------------------------------------------

@router.post("/runs/create")
def create_run(fields: Fields, request: Request, session: SessionDep, access: CurrentAccess
               ) -> Any:
    exp_id = m.experiment_id(fields) if fields.get("experiment_id") not in (None, "") \
        else m.DEFAULT_EXPERIMENT
    e = m.get_experiment(session, exp_id)

    project_id = access.home()  # MLflow names no project: the caller's default one
    if project_id is None:
        raise m.MlflowError("PERMISSION_DENIED", "you may create runs in no project; ask a "
                            "project's owner to make you its editor")

    def submit(**kwargs: Any) -> Any:
        return submit_run(session, request.app.state.celery, project_id=project_id, **kwargs)

    run = m.create_run(session, submit, access.user, e,
                       run_name=m.text(fields, "run_name", required=False, limit=200),
                       start_time=m.integer(fields, "start_time"),
                       tags=m.key_values(fields, "tags", 100))
    return {"run": m.run_json(session, [run])[0]}


def _run(fields: dict[str, Any], session: Any, access: Access) -> Any:
    return m.run_of(session, fields.get("run_id") or fields.get("run_uuid"), access)


def _writable_run(fields: dict[str, Any], session: Any, access: Access) -> Any:
    """The run the request names, if the caller may write into it."""
    run = _run(fields, session, access)
    m.writable(access, run)
    return run


@router.get("/runs/get")
def get_run(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    return {"run": m.run_json(session, [_run(fields, session, access)])[0]}


@router.post("/runs/update")
def update_run(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    run = _run(fields, session, access)
    m.update_run(session, access, run, status=m.text(fields, "status", required=False),
                 end_time=m.integer(fields, "end_time"),
                 run_name=m.text(fields, "run_name", required=False, limit=200))
    session.commit()
    session.refresh(run)
    return {"run_info": m.run_json(session, [run])[0]["info"]}


@router.post("/runs/delete")
def delete_run(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    m.set_run_deleted(session, access, _run(fields, session, access), True)
    session.commit()
    return {}


@router.post("/runs/restore")
def restore_run(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    m.set_run_deleted(session, access, _run(fields, session, access), False)
    session.commit()
    return {}


@router.post("/runs/log-metric")
def log_metric(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    run = _writable_run(fields, session, access)
    m.log_metrics(session, run, m.metric_points([fields]))
    session.commit()
    return {}


@router.post("/runs/log-parameter")
def log_param(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    run = _writable_run(fields, session, access)
    m.log_params(session, run, [m.key_value(fields)])
    session.commit()
    return {}


@router.post("/runs/set-tag")
def set_tag(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    run = _writable_run(fields, session, access)
    m.set_run_tags(session, run, [m.key_value(fields)])
    session.commit()
    return {}


@router.post("/runs/delete-tag")
def delete_tag(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    run = _writable_run(fields, session, access)
    m.set_run_tags(session, run, [], delete=[m.required(fields, "key", limit=250)])
    session.commit()
    return {}


@router.post("/runs/log-batch")
def log_batch(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    """Params, tags and metrics at once, all or nothing."""
    run = _writable_run(fields, session, access)
    metrics = fields.get("metrics") or []
    if not isinstance(metrics, list) or len(metrics) > MAX_BATCH["metrics"]:
        raise m.invalid(f"A batch logging request can contain at most {MAX_BATCH['metrics']} "
                        "metrics")
    params = m.key_values(fields, "params", MAX_BATCH["params"])
    tags = m.key_values(fields, "tags", MAX_BATCH["tags"])
    points = m.metric_points(metrics)
    m.log_params(session, run, params)
    m.set_run_tags(session, run, tags)
    m.log_metrics(session, run, points)
    session.commit()
    return {}


@router.get("/runs/search")
@router.post("/runs/search")
def search_runs(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    found, token = m.search_runs(
        session, experiment_ids=m.strings(fields, "experiment_ids", 1000),
        filter_string=m.text(fields, "filter", required=False, limit=2000),
        view_type=str(fields.get("run_view_type") or "ACTIVE_ONLY"),
        max_results=_bounded(fields, "max_results", 1000, m.MAX_RESULTS),
        order_by=m.strings(fields, "order_by"),
        page_token=m.text(fields, "page_token", required=False, limit=200),
        where=access.runs())
    return {"runs": m.run_json(session, found), **({"next_page_token": token} if token else {})}


@router.get("/metrics/get-history")
def metric_history(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    run = _run(fields, session, access)
    key = m.required(fields, "metric_key", limit=250)
    points, token = m.metric_history(
        session, run, key, max_results=_bounded(fields, "max_results", 25_000, 25_000),
        page_token=m.text(fields, "page_token", required=False, limit=200))
    return {"metrics": points, **({"next_page_token": token} if token else {})}


@router.get("/artifacts/list")
def list_run_artifacts(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    run = _run(fields, session, access)
    path = m.text(fields, "path", required=False, default="") or ""
    exp = m.experiment_of(session, run)
    return {"root_uri": f"mlflow-artifacts:/{exp}/{run.id}/artifacts",
            "files": _children(session, run.id, path, relative_to_root=True)}


@router.post("/logged-models/search")
def search_logged_models(fields: Fields, session: SessionDep, _: CurrentUser) -> Any:
    """MLflow 3's logged models: neuroreg stores none (creating one is refused), so a search
    finds none — MLflow's client asks whenever it lists a run's artifacts by path."""
    return {"models": []}


# -- the artifact proxy ---------------------------------------------------------------------

def _children(session: Any, run_id: int, path: str, *, relative_to_root: bool
              ) -> list[dict[str, Any]]:
    """The files and folders directly under ``path`` of a run's artifacts: each as MLflow
    lists it (its path from the run's root, or its base name for the proxy)."""
    prefix = path.strip("/") + "/" if path.strip("/") else ""
    files: dict[str, dict[str, Any]] = {}
    for a in list_artifacts(session, run_id):
        if not a.name.startswith(prefix):
            continue
        rest = a.name[len(prefix):]
        head, sep, _ = rest.partition("/")
        full = prefix + head
        shown = full if relative_to_root else head
        if sep:
            files.setdefault(head, {"path": shown, "is_dir": True})
        else:
            files[head] = {"path": shown, "is_dir": False, "file_size": a.size_bytes}
    return [files[k] for k in sorted(files)]


def _locate(session: Any, path: str, access: Access) -> tuple[Any, str]:
    """``<experiment>/<run>/artifacts/<name>`` as (run, name)."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts" or not parts[1].isdigit():
        raise m.MlflowError("RESOURCE_DOES_NOT_EXIST", f"No artifact at {path!r}: neuroreg's "
                            "artifact paths are <experiment id>/<run id>/artifacts/<path>")
    run = m.run_of(session, parts[1], access)
    return run, parts[3] if len(parts) == 4 else ""


@artifacts_router.get("/artifacts")
def proxy_list(fields: Fields, session: SessionDep, access: CurrentAccess) -> Any:
    path = m.text(fields, "path", required=False, default="") or ""
    if not path.strip("/"):
        return {"files": []}
    run, name = _locate(session, path, access)
    return {"files": _children(session, run.id, name, relative_to_root=False)}


@artifacts_router.put("/artifacts/{path:path}")
async def upload_artifact(path: str, request: Request, session: SessionDep,
                          settings: SettingsDep, access: CurrentAccess) -> Any:
    """An artifact's bytes, streamed to disk (up to ``NEUROREG_MAX_UPLOAD_BYTES``)."""
    run, name = _locate(session, path, access)
    m.writable(access, run)
    try:
        check_path(name)
        await save_artifact_stream(
            session, settings.artifacts, run_id=run.id, name=name, chunks=request.stream(),
            media_type=request.headers.get("content-type", "application/octet-stream")[:128],
            limit=settings.max_upload_bytes)
    except UnsafePath as exc:
        raise m.invalid(str(exc)) from None
    except OverflowError as exc:
        raise m.MlflowError("REQUEST_LIMIT_EXCEEDED", str(exc)) from None
    session.commit()
    return {}


@artifacts_router.get("/artifacts/{path:path}", response_model=None)
def download_artifact(path: str, session: SessionDep, settings: SettingsDep,
                      access: CurrentAccess) -> Response:
    run, name = _locate(session, path, access)
    row = get_artifact(session, run.id, name)
    if row is None:
        raise m.MlflowError("RESOURCE_DOES_NOT_EXIST",
                            f"run {run.id} has no artifact {name!r}")
    url = download_url(settings.artifacts, row)
    if url is not None:  # an object store: MLflow's client follows to it
        return RedirectResponse(url, status_code=307)
    try:
        file = resolve(settings.artifacts, row.path)
    except UnsafePath:
        raise m.MlflowError("RESOURCE_DOES_NOT_EXIST", "artifact file unavailable") from None
    if not file.is_file():
        raise m.MlflowError("RESOURCE_DOES_NOT_EXIST", "artifact file is missing on disk")
    return FileResponse(file, media_type=row.media_type, filename=posixpath.basename(name),
                        headers={"Content-Security-Policy": "sandbox"})


# -- everything else ------------------------------------------------------------------------

_ANY = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/{rest:path}", methods=_ANY)
def not_implemented(rest: str, request: Request) -> Any:
    raise m.MlflowError("ENDPOINT_NOT_FOUND", f"neuroreg does not implement MLflow's "
                        f"{request.method} /api/2.0/mlflow/{rest}; it implements experiments, "
                        "runs, params, tags, metrics and artifacts (see docs/mlflow.md)")


@artifacts_router.api_route("/{rest:path}", methods=_ANY)
def artifacts_not_implemented(rest: str, request: Request) -> Any:
    raise m.MlflowError("ENDPOINT_NOT_FOUND", f"neuroreg does not implement MLflow's "
                        f"{request.method} /api/2.0/mlflow-artifacts/{rest}")
