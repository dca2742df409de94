"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import errno
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from celery import Celery
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server.headers import SecurityHeaders
from server.kinds import KINDS
from server.queue import make_celery
from server.reaper import Reaper
from server.routes import (
    artifacts,
    logs,
    matrices,
    metrics,
    provenance,
    recordings,
    records,
    runs,
    studies,
    summaries,
    system,
    system_metrics,
    team,
    ui,
    webhooks,
)
from server.routes.ui import FRONTEND
from server.settings import Settings, get_settings
from server.store.db import migrate
from server.webhooks import Dispatcher

log = logging.getLogger("neuroreg.api")


_UPLOAD = re.compile(r"^/api/runs/\d+/artifacts/[^/]+$")


class BodyLimit:
    """Rejects request bodies over ``limit`` bytes with 413, before they are read whole;
    artifact uploads (PUT) get ``upload_limit`` instead."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int | None = None) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit or limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        if scope.get("method") == "PUT" and _UPLOAD.match(scope.get("path", "")):
            limit = self.upload_limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def counting_receive():  # type: ignore[no-untyped-def]
            # a body without a length (chunked) is counted as it arrives; the exception
            # is an HTTPException so that FastAPI's body reader passes it on as a 413
            # (anything else it reports as a 400 "error parsing the body")
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _too_large_text(limit))
            return message

        await self.app(scope, counting_receive, send)


def _too_large_text(limit: int) -> str:
    return f"request body exceeds {limit} bytes"


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": _too_large_text(limit)},
                        status_code=status.HTTP_413_CONTENT_TOO_LARGE)


def _public_loc(loc: Sequence[Any]) -> list[Any]:
    """The field's path as the client wrote it: without the run kind pydantic inserts
    when it picks a member of the ``kind``-tagged union (``body.similarity.config``)."""
    out = list(loc)
    if len(out) > 1 and out[0] == "body" and out[1] in KINDS:
        del out[1]
    return out


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
    from ml._docs import config_classes, field_docs
    from server.kinds import KINDS

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
    migrate(settings.db_url)
    celery = celery or make_celery(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reaper, dispatcher = Reaper(settings, celery), Dispatcher(settings)
        reaper.start()
        dispatcher.start()
        try:
            yield
        finally:
            reaper.stop()
            dispatcher.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="neuroreg",
        summary="Experiment tracking for neural regularization",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.celery = celery
    _describe_config_fields(app)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # like FastAPI's default, minus echoed inputs (a huge batch would come back whole)
        errors = [_public_error(e) for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:  # Allow: every route's
            allowed = _allowed_methods(routes, request.scope)     # methods, not the first's
            return JSONResponse({"detail": f"{request.method} is not allowed here; use "
                                           f"{', '.join(allowed)}"},
                                status_code=405, headers={"Allow": ", ".join(allowed)})
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        refused = storage_refused(exc)
        if refused is not None:  # the request was fine; the store could not take it
            log.error("%s %s: %s", request.method, request.url.path, refused[1])
            return JSONResponse({"detail": refused[1]}, status_code=refused[0])
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    routers = [m.router for m in (system, team, runs, metrics, artifacts, matrices,
                                  recordings, records, summaries, studies, webhooks, ui)] + [
        metrics.series_router, runs.dry_run_router, logs.router, provenance.router,
        system_metrics.router]
    for router in routers:
        app.include_router(router)
    routes = [r for router in routers for r in router.routes] + list(app.routes)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes,
                       upload_limit=settings.max_upload_bytes)
    return app
