"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from celery import Celery
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from server.kinds import KINDS
from server.queue import make_celery
from server.reaper import Reaper
from server.routes import (
    artifacts,
    matrices,
    metrics,
    recordings,
    runs,
    studies,
    summaries,
    system,
    team,
    ui,
)
from server.routes.ui import FRONTEND
from server.settings import Settings, get_settings
from server.store.db import migrate

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
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await _too_large(limit)(scope, receive, send)


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"request body exceeds {limit} bytes"},
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
    )


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


def create_app(settings: Settings | None = None, *, celery: Celery | None = None) -> FastAPI:
    """Build the app; migrations are applied here so every start is up to date."""
    settings = settings or get_settings()
    migrate(settings.db_url)
    celery = celery or make_celery(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reaper = Reaper(settings, celery)
        reaper.start()
        try:
            yield
        finally:
            reaper.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="neuroreg",
        summary="Experiment tracking for neural regularization",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.celery = celery

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # like FastAPI's default, minus echoed inputs (a huge batch would come back whole)
        errors = [_public_error(e) for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    for module in (system, team, runs, metrics, artifacts, matrices, recordings, summaries,
                   studies, ui):
        app.include_router(module.router)
    app.include_router(metrics.series_router)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes,
                       upload_limit=settings.max_upload_bytes)
    return app
