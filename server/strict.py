"""What every route's input must be before any route sees it.

One home for the rules no field-by-field schema can state once for all: every number a
client sends is finite (JSON has no NaN; Python's parser takes ``NaN``/``Infinity`` and
``1e999``, SQLite then drops them on NOT NULL columns and PostgreSQL's JSON refuses
them), no string carries a NUL character (PostgreSQL text cannot hold one), bodies nest at
most :data:`MAX_DEPTH` levels, and a field typed as a number takes a number — never
``"1.5"`` or ``true`` (pydantic's strict JSON mode). Violations are 422s naming the field,
in the shape of every other validation error.

Routers get this by being made with :func:`api_router`. A body over
:data:`INLINE_BYTES` is decoded and validated in a worker thread, so the event loop
answers everyone else meanwhile; a route may cap its body (:func:`body_limit`).
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from server.deps import get_access, get_current_user, get_worker_token

MAX_DEPTH = 32
"""The deepest nesting of objects and arrays a body may have (configs nest 3 levels)."""

INLINE_BYTES = 64 * 1024
"""A JSON body up to this size is decoded where it arrives (well under a millisecond); a
larger one in a worker thread."""

_LIMITS: dict[Callable[..., Any], int] = {}


def body_limit(limit: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Caps a route's request body at ``limit`` bytes instead of
    ``NEUROREG_MAX_REQUEST_BYTES`` (a 413 past it, before the body is read): the route's
    own, set under its route decorator."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        _LIMITS[endpoint] = limit
        return endpoint

    return mark


class _NonFinite:
    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


def _problem(value: Any, loc: list[Any], depth: int = 0) -> tuple[list[Any], str, str] | None:
    """The first thing in a parsed body that breaks the rules: (loc, message, type)."""
    if isinstance(value, str):
        if "\x00" in value:
            return loc, "NUL characters are not allowed in strings", "string_nul"
        return None
    if isinstance(value, _NonFinite):
        return loc, f"{value.token} is not a finite number", "finite_number"
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            return loc, f"nested deeper than {MAX_DEPTH} levels", "too_deep"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                return [*loc, key], "NUL characters are not allowed in keys", "string_nul"
            found = _problem(item, [*loc, key], depth + 1)
            if found is not None:
                return found
    return None


def _integral(value: Any) -> Any:
    """``value`` with every float that is a whole number as an int: JSON Schema's integer
    (``2.0`` is one), for the strict check of int fields, which takes only ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def invalid(loc: list[Any], msg: str, type_: str = "invalid") -> RequestValidationError:
    """A 422 in the shape of every validation error (``detail``: a list naming ``loc``)."""
    return RequestValidationError([{"loc": loc, "msg": msg, "type": type_, "input": None}])


def loads(body: bytes) -> tuple[Any, bool]:
    """Parse a JSON body by the rules above: the value, and whether it holds a whole
    number written as a float (``2.0``, ``1e3``); a :class:`RequestValidationError` if it
    breaks a rule (``json.JSONDecodeError`` if it is not JSON at all)."""
    whole = False

    def parse_float(text: str) -> float | _NonFinite:
        nonlocal whole
        value = float(text)
        if not math.isfinite(value):
            return _NonFinite(text)
        whole = whole or value.is_integer()
        return value

    try:
        value = json.loads(body, parse_constant=_NonFinite, parse_float=parse_float)
    except RecursionError:
        raise invalid(["body"], f"nested deeper than {MAX_DEPTH} levels", "too_deep") from None
    except ValueError as exc:  # not JSON, or an integer of more than 4300 digits
        if isinstance(exc, json.JSONDecodeError):
            raise
        raise invalid(["body"], str(exc), "json_invalid") from None
    found = _problem(value, ["body"])
    if found is not None:
        raise invalid(*found)
    return value, whole


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class ErrorDetail(BaseModel):
    """Every error but a 422: what went wrong, in words."""

    detail: str


_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorDetail, "description": "Conflicts with the run's state"}}
"""For a route that can answer 409; every other status is documented by StrictRoute."""


def _documented(path: str, methods: set[str], endpoint: Callable[..., Any]) -> dict[int, Any]:
    """The statuses a route answers besides its success and FastAPI's 422, from what it
    is: authenticated (401), a write (403, 413 with a body, 507), addressing something
    by path (404); 503 for any (the database unreachable)."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    deps = {getattr(m, "dependency", None) for h in hints.values()
            for m in getattr(h, "__metadata__", ())}
    authenticated = bool(deps & {get_current_user, get_access, get_worker_token})
    out: dict[int, Any] = {}

    def add(code: int, description: str) -> None:
        out[code] = {"model": ErrorDetail, "description": description}

    if authenticated:
        add(401, "Missing or invalid bearer token")
    if get_worker_token in deps:
        add(403, "Not a worker token, or a run this worker token did not claim (or whose "
                 "run does not read what is asked)")
    elif authenticated and methods & _WRITES:
        add(403, "Not yours to write (its owner while an editor of its project, the "
                 "project's owners and admins may; a viewer writes nothing)")
    if "{" in path:
        add(404, "No such run, artifact, metric or token")
    if methods & {"POST", "PUT", "PATCH"}:
        limit = _LIMITS.get(endpoint)
        add(413, f"Request body over {limit} bytes" if limit else
            "Request body over the limit (NEUROREG_MAX_REQUEST_BYTES)")
    add(503, "The database or artifact store is unreachable or read-only")
    if methods & _WRITES:
        add(507, "The database's or artifact store's disk is full; nothing was stored")
    return out


def _needs_token(dependant: Any) -> bool:
    """Whether a route's dependencies, at any depth, include :func:`get_current_user`
    (or :func:`get_worker_token`)."""
    return any(d.call in (get_current_user, get_worker_token) or _needs_token(d)
               for d in dependant.dependencies)


def _decode(adapter: TypeAdapter[Any], body: bytes) -> Any:
    """``body`` parsed by the module's rules and validated: the route's body parameter
    itself (FastAPI takes a model as it is), so nothing of it is decoded again."""
    try:
        parsed, whole = loads(body)
    except json.JSONDecodeError as exc:
        raise invalid(["body", exc.pos], "JSON decode error", "json_invalid") from None
    try:  # numbers are numbers: "1.5" and true are not, 2.0 is an integer
        value = adapter.validate_json(  # re-encoded only when a 2.0 needs it
            json.dumps(_integral(parsed)) if whole else body, strict=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    # with a 2.0 in it, the value as sent (a config's 2.0 stays a float)
    return adapter.validate_python(parsed) if whole else value


class StrictRoute(APIRoute):
    """An APIRoute that checks path, query and JSON body by the module's rules first, and
    documents every status it can answer (:func:`_documented`) in the OpenAPI schema.

    ``authenticated``: whether it needs a bearer token; ``max_body``: its own body cap
    (:func:`body_limit`), or None — what ``server.app.BodyGate`` checks before the body
    is read."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ("GET",)}
        kwargs["responses"] = {**_documented(path, methods, endpoint),
                               **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)
        self._declared_query = {f.alias for f in get_flat_params(self.dependant)
                                if isinstance(f.field_info, params.Query)}
        self.authenticated = _needs_token(self.dependant)
        self.max_body = _LIMITS.get(endpoint)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        annotation = self.body_field.field_info.rebuild_annotation() if self.body_field else None
        strict = TypeAdapter(annotation) if annotation is not None else None

        async def checked(request: Request) -> Response:
            for where, given in (("path", request.path_params),
                                  ("query", request.query_params)):
                for name, value in given.items():
                    declared = where == "path" or name in self._declared_query
                    if declared and isinstance(value, str) and "\x00" in value:
                        raise invalid([where, name], "NUL characters are not allowed",
                                     "string_nul")
            if strict is not None and _is_json(request):
                body = await request.body()
                if len(body) > INLINE_BYTES:
                    request._json = await run_in_threadpool(_decode, strict, body)
                elif body:
                    request._json = _decode(strict, body)  # what Request.json() returns
            return await handler(request)

        return checked


def api_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes are :class:`StrictRoute`s."""
    return APIRouter(route_class=StrictRoute, **kwargs)
