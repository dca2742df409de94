"""What every route's input must be before any route sees it.

One home for the rules no field-by-field schema can state once for all: every number a
client sends is finite (JSON has no NaN; Python's parser takes ``NaN``/``Infinity`` and
``1e999``, SQLite then drops them on NOT NULL columns and PostgreSQL's JSON refuses
them), no string carries a NUL character (PostgreSQL text cannot hold one), bodies nest at
most :data:`MAX_DEPTH` levels, and a field typed as a number takes a number — never
``"1.5"`` or ``true`` (pydantic's strict JSON mode). Violations are 422s naming the field,
in the shape of every other validation error.

Routers get this by being made with :func:`api_router`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

MAX_DEPTH = 32
"""The deepest nesting of objects and arrays a body may have (configs nest 3 levels)."""


class _NonFinite:
    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


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


def invalid(loc: list[Any], msg: str, type_: str = "invalid") -> RequestValidationError:
    """A 422 in the shape of every validation error (``detail``: a list naming ``loc``)."""
    return RequestValidationError([{"loc": loc, "msg": msg, "type": type_, "input": None}])


def loads(body: bytes) -> Any:
    """Parse a JSON body by the rules above; a :class:`RequestValidationError` if it
    breaks one (``json.JSONDecodeError`` if it is not JSON at all)."""
    try:
        value = json.loads(body, parse_constant=_NonFinite, parse_float=_parse_float)
    except RecursionError:
        raise invalid(["body"], f"nested deeper than {MAX_DEPTH} levels", "too_deep") from None
    except ValueError as exc:  # not JSON, or an integer of more than 4300 digits
        if isinstance(exc, json.JSONDecodeError):
            raise
        raise invalid(["body"], str(exc), "json_invalid") from None
    found = _problem(value, ["body"])
    if found is not None:
        raise invalid(*found)
    return value


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class StrictRoute(APIRoute):
    """An APIRoute that checks path, query and JSON body by the module's rules first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        annotation = self.body_field.field_info.rebuild_annotation() if self.body_field else None
        strict = TypeAdapter(annotation) if annotation is not None else None

        async def checked(request: Request) -> Response:
            for where, params in (("path", request.path_params),
                                  ("query", request.query_params)):
                for name, value in params.items():
                    if isinstance(value, str) and "\x00" in value:
                        raise invalid([where, name], "NUL characters are not allowed",
                                     "string_nul")
            if strict is not None and _is_json(request):
                body = await request.body()
                if body:
                    try:
                        parsed = loads(body)
                    except json.JSONDecodeError:
                        return await handler(request)  # FastAPI's own 422 says where
                    try:
                        strict.validate_json(body, strict=True)
                    except ValidationError as exc:
                        raise RequestValidationError(
                            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                        ) from None
                    request._json = parsed  # what Request.json() returns: parsed once
            return await handler(request)

        return checked


def api_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes are :class:`StrictRoute`s."""
    return APIRouter(route_class=StrictRoute, **kwargs)
