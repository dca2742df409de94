"""Checks a frozen config dataclass against the constraints in its own annotations.

Configs declare bounds once, as ``Annotated[int, Ge(1)]`` (annotated-types) and
``Literal[...]``; the API's schema (pydantic) reads the same annotations, and this
module enforces them when a config is built directly in a notebook.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

import annotated_types as at


def _check(name: str, value: Any, tp: Any) -> None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # ``X | None``: None, or checked as X
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(rest) < len(typing.get_args(tp)):
            return
        if len(rest) == 1:
            _check(name, value, rest[0])
        return
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        _check(name, value, base)
        for m in meta:
            for bound, ok in (
                ("Ge", lambda v, b: v >= b.ge),
                ("Gt", lambda v, b: v > b.gt),
                ("Le", lambda v, b: v <= b.le),
                ("Lt", lambda v, b: v < b.lt),
            ):
                if isinstance(m, getattr(at, bound)) and not ok(value, m):
                    raise ValueError(f"{name}: {value!r} violates {m!r}")
            if isinstance(m, at.MaxLen) and len(value) > m.max_length:
                raise ValueError(f"{name}: at most {m.max_length} characters or items, "
                                 f"got {len(value)}")
        return
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(f"{name}: {value!r} is not one of {list(allowed)}")
        return
    if tp is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
    elif tp is bool and not isinstance(value, bool):
        raise ValueError(f"{name}: expected true/false, got {value!r}")
    elif tp is str and not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {value!r}")


class ConfigErrors(ValueError):
    """Every problem a config's checks found, each "<field>: <why>" (one per line as a
    string): the API answers each as its own error on its own field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Problems:
    """Runs each of a config's checks and raises what they all found at once, so that a
    form shows every field to change in one answer, not one per submit::

        problems = Problems()
        with problems:
            check_one()       # raises ValueError("field: why")
        with problems:
            check_another()
        problems.raise_any()  # ConfigErrors of both, if both failed
    """

    def __init__(self) -> None:
        self.found: list[str] = []

    def __enter__(self) -> Problems:
        return self

    def __exit__(self, tp: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, ConfigErrors):
            self.found += exc.problems
            return True
        if isinstance(exc, ValueError):
            self.found.append(str(exc))
            return True
        return False

    def raise_any(self) -> None:
        if self.found:
            raise ConfigErrors(self.found)


def validate_config(config: Any) -> None:
    """Raise :class:`ConfigErrors` naming every field that breaks its annotation."""
    hints = typing.get_type_hints(type(config), include_extras=True)
    problems = Problems()
    for f in dataclasses.fields(config):
        with problems:
            _check(f.name, getattr(config, f.name), hints[f.name])
    problems.raise_any()
