"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from celery import Celery
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.kinds import KINDS
from core.mlflow import MlflowError
from core.queue import make_celery
from core.settings import Settings, get_settings
from core.store import objects
from core.store.db import migrate
from core.store.objects import StoreUnavailable
from ml._validate import ConfigErrors
from server.deps import CHALLENGE, NO_TOKEN, NOT_A_WORKER, WORKER_ONLY, token_scope
from server.headers import SecurityHeaders
from server.reaper import Reaper, Retention
from server.routes import (
    apidocs,
    artifacts,
    logs,
    matrices,
    metrics,
    mlflow,
    projects,
    provenance,
    recordings,
    records,
    retention,
    runs,
    studies,
    summaries,
    system,
    system_metrics,
    team,
    transfer,
    ui,
    webhooks,
    worker,
)
from server.routes.ui import FRONTEND
from server.strict import StrictRoute
from server.webhooks import Dispatcher

log = logging.getLogger("neuroreg.api")


class BodyGate:
    """What a request with a body must pass before anything reads it: a bearer token
    that :func:`server.deps.get_current_user` would take, where its route needs one (a
    401), and its route's cap (a 413 naming it). An artifact upload streams to disk up to
    ``NEUROREG_MAX_UPLOAD_BYTES``; a route with its own cap (:func:`server.strict.body_limit`)
    has it; every other body ``NEUROREG_MAX_REQUEST_BYTES``. A request without a body
    passes untouched (its route checks the token as ever)."""

    def __init__(self, app: ASGIApp, routes: Sequence[Any], settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.routes = [r for r in routes if isinstance(r, StrictRoute)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or not _has_body(headers):
            await self.app(scope, receive, send)
            return
        route = self._route(scope)
        held = None if route is None or not route.authenticated else await run_in_threadpool(
            token_scope, self.settings.db_url, headers.get("authorization"))
        if route is not None and route.authenticated and held is None:
            answer = mlflow.as_mlflow(401, NO_TOKEN) if mlflow.is_mlflow(scope["path"]) \
                else JSONResponse({"detail": NO_TOKEN}, status_code=401)
            answer.headers.update(CHALLENGE)
            await answer(scope, receive, send)
            return
        wanted = "worker" if scope["path"].startswith("/api/worker") else "member"
        if held is not None and held != wanted:  # the wrong kind of token: before the body
            detail = NOT_A_WORKER if wanted == "worker" else WORKER_ONLY
            await (mlflow.as_mlflow(403, detail) if mlflow.is_mlflow(scope["path"])
                   else JSONResponse({"detail": detail}, status_code=403))(
                scope, receive, send)
            return
        limit = self._limit(route)
        what = f"{scope['method']} {route.path}" if route is not None else scope["path"]
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await (mlflow.as_mlflow(413, _too_large_text(limit, what))
                   if mlflow.is_mlflow(scope["path"]) else _too_large(limit, what))(
                scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            # a body without a length (chunked) is counted as it arrives; the exception
            # is an HTTPException so that FastAPI's body reader passes it on as a 413
            # (anything else it reports as a 400 "error parsing the body")
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                    _too_large_text(limit, what))
            return message

        await self.app(scope, counting_receive, send)

    def _route(self, scope: Scope) -> StrictRoute | None:
        """The route the router will pick for this request, if any."""
        return next((r for r in self.routes if r.matches(scope)[0] is Match.FULL), None)

    def _limit(self, route: StrictRoute | None) -> int:
        if route is not None and route.endpoint in (artifacts.upload, mlflow.upload_artifact,
                                                    transfer.import_artifact):
            return self.settings.max_upload_bytes
        if route is not None and route.max_body is not None:
            return route.max_body
        return self.settings.max_request_bytes


def _has_body(headers: Headers) -> bool:
    """Whether a request sends a body (HTTP/1.1: a length other than 0, or chunks)."""
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _too_large_text(limit: int, what: str) -> str:
    return f"request body exceeds {limit} bytes, the limit of {what}"


def _too_large(limit: int, what: str) -> JSONResponse:
    return JSONResponse({"detail": _too_large_text(limit, what)},
                        status_code=status.HTTP_413_CONTENT_TOO_LARGE)


class Refusals:
    """Answers what a route raised and no handler took: 507 or 503 when the store could
    not take the write (:func:`storage_refused`), else a 500, logged. A middleware, not an
    ``Exception`` handler: Starlette re-raises after such a handler answers, and uvicorn
    then closes the connection under the client's next request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # half an answer: only closing the connection tells the client
                raise
            await _refusal(scope, exc)(scope, receive, send)


def _refusal(scope: Scope, exc: Exception) -> JSONResponse:
    refused = storage_refused(exc)
    if refused is not None:  # the request was fine; the store could not take it
        log.error("%s %s: %s", scope["method"], scope["path"], refused[1])
        return JSONResponse({"detail": refused[1]}, status_code=refused[0],
                            headers={"Retry-After": "5"} if refused[0] == 503 else None)
    log.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def _public_loc(loc: Sequence[Any]) -> list[Any]:
    """The field's path as the client wrote it: without the run kind pydantic inserts
    when it picks a member of the ``kind``-tagged union (``body.similarity.config``)."""
    out = list(loc)
    if len(out) > 1 and out[0] == "body" and out[1] in KINDS:
        del out[1]
    return out


def _public_errors(e: Any) -> list[dict[str, Any]]:
    """One error as the client sees it; a config's checks that found several problems
    (:class:`ml._validate.ConfigErrors`) are several, each on its own field."""
    cause = (e.get("ctx") or {}).get("error")
    if e.get("type") == "value_error" and isinstance(cause, ConfigErrors):
        return [_public_error({**e, "msg": problem, "ctx": {}}) for problem in cause.problems]
    return [_public_error(e)]


def _public_error(e: Any) -> dict[str, Any]:
    loc, msg, type_ = _public_loc(e.get("loc", ())), e.get("msg", ""), e.get("type", "")
    if type_ == "union_tag_invalid":  # the run-kind union: say which kinds exist
        loc.append("kind")
        msg = f"unknown kind {e.get('ctx', {}).get('tag')!r}; known kinds: {sorted(KINDS)}"
    if type_ == "value_error":  # a config's own check: "Value error, <field>: <why>"
        msg = msg.removeprefix("Value error, ")
        field, sep, why = msg.partition(": ")
        if sep and field.isidentifier():
            loc.append(field)
    return {"loc": loc, "msg": msg, "type": type_}


_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def storage_refused(exc: BaseException) -> tuple[int, str] | None:
    """(status, message) when ``exc`` says the database or the artifact store cannot
    take a write — 507 when it is full, 503 when it is read-only or unreachable — else
    None. The request's transaction is rolled back and an upload's partial file removed
    before this answers, so nothing partial is kept."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:  # the exception, its cause, the driver's
        seen.append(exc)
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__  # type: ignore[assignment]
    for e in seen:
        text, state = str(e).lower(), getattr(e, "sqlstate", None)
        if isinstance(e, OSError) and e.errno in _FULL:
            return 507, f"the artifact store is full ({e.strerror}); nothing was stored"
        if isinstance(e, OSError) and e.errno in _UNWRITABLE:
            return 503, f"the artifact store is not writable ({e.strerror}); nothing was stored"
        if "database or disk is full" in text or state == "53100":
            return 507, "the database's disk is full; nothing was stored"
        if "readonly database" in text or state == "25006":
            return 503, "the database is read-only; nothing was stored"
        if state is not None and state.startswith("08"):
            return 503, "the database is unreachable; try again"
        if isinstance(e, StoreUnavailable):
            return 503, "the object store is unavailable; nothing was stored, try again"
        if isinstance(e, PoolTimeout) or "database is locked" in text:
            return 503, ("the server is busy: no database connection came free in time; "
                         "nothing was stored, try again")
    return None


def _allowed_methods(routes: Sequence[Any], scope: Scope) -> list[str]:
    """The methods some route in ``routes`` takes at this scope's path."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.matches(
                {**scope, "method": next(iter(route.methods))})[0] is Match.FULL:
            methods |= route.methods
    return sorted(methods)


def _describe_config_fields(app: FastAPI) -> None:
    """Each config field in ``/openapi.json`` carries its description from the config's
    docstring (:func:`ml._docs.field_docs`): the submit form's help and ``/docs`` alike."""
    from core.kinds import KINDS
    from ml._docs import config_classes, field_docs

    classes = config_classes(*(k.config_type for k in KINDS.values()))
    default = app.openapi

    def openapi() -> dict[str, Any]:
        schema = default()
        if not schema.get("x-field-docs"):
            for name, component in schema.get("components", {}).get("schemas", {}).items():
                cls = classes.get(name.removesuffix("-Input").removesuffix("-Output"))
                for field, text in (field_docs(cls) if cls else {}).items():
                    prop = component.get("properties", {}).get(field)
                    if prop is not None:
                        prop.setdefault("description", text)
            schema["x-field-docs"] = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, *, celery: Celery | None = None) -> FastAPI:
    """Build the app; migrations are applied here so every start is up to date."""
    settings = settings or get_settings()
    settings.make_dirs()
    migrate(settings.db_url)
    celery = celery or make_celery(settings)
    store = objects.for_root(settings.artifacts)
    if store is not None:  # a new MinIO's bucket made; one that cannot be is a warning
        try:
            store.ensure_bucket()
        except Exception as exc:  # noqa: BLE001 — uploads will say why, each a 503
            log.warning("object store: %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reaper, dispatcher = Reaper(settings, celery), Dispatcher(settings)
        retain = Retention(settings)
        reaper.start()
        dispatcher.start()
        retain.start()
        try:
            yield
        finally:
            reaper.stop()
            dispatcher.stop()
            retain.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="neuroreg",
        summary="Experiment tracking for neural regularization",
        version="0.1.0",
        docs_url=None,   # server/routes/apidocs.py: Swagger UI from our own origin
        redoc_url=None,  # ReDoc's workers come from blob: URLs, which the CSP refuses
    )
    app.state.settings = settings
    app.state.celery = celery
    _describe_config_fields(app)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # like FastAPI's default, minus echoed inputs (a huge batch would come back whole)
        errors = [p for e in exc.errors() for p in _public_errors(e)]
        if mlflow.is_mlflow(request.url.path):  # MLflow's shape: one message
            return mlflow.as_mlflow(422, "; ".join(
                f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors))
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(MlflowError)
    async def _mlflow(_: Request, exc: MlflowError) -> JSONResponse:
        return mlflow.error(exc.code, exc.message, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if mlflow.is_mlflow(request.url.path):
            return mlflow.as_mlflow(exc.status_code, str(exc.detail))
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:  # Allow: every route's
            allowed = _allowed_methods(routes, request.scope)     # methods, not the first's
            return JSONResponse({"detail": f"{request.method} is not allowed here; use "
                                           f"{', '.join(allowed)}"},
                                status_code=405, headers={"Allow": ", ".join(allowed)})
        return await http_exception_handler(request, exc)

    routers = [m.router for m in (system, team, projects, runs, metrics, artifacts, matrices,
                                  recordings, records, summaries, studies, webhooks, retention,
                                  ui)] + [
        metrics.series_router, runs.dry_run_router, logs.router, provenance.router,
        system_metrics.router, apidocs.router, mlflow.router, mlflow.artifacts_router,
        transfer.router, transfer.export_router, retention.lineage_router, worker.router,
        worker.hello_router]
    for router in routers:
        app.include_router(router)
    routes = [r for router in routers for r in router.routes] + list(app.routes)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
    app.add_middleware(Refusals)
    app.add_middleware(BodyGate, routes=routes, settings=settings)
    app.add_middleware(SecurityHeaders)
    return app
