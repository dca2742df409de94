"""A query language for runs, compiled to SQL that runs on SQLite and PostgreSQL alike.

    config.alpha >= 8 and metrics.test_acc.last > 0.9 and (tag = "fig4" or tag = "fig6")

- **fields**: ``config.<path>`` (any config field, nested with dots: ``config.train.width``),
  ``metrics.<key>[.last|.min|.max]`` (``.last``, the value at the highest step, when
  none is given), ``tag``, ``owner``, ``project`` (its name), ``kind``, ``status``,
  ``parent`` (the parent run's
  id, ``null`` for none), ``input`` (the id of the run it reads: an evaluation's model, a
  train run's target), ``name``, ``id``, ``created``, ``started``, ``finished``
  (compared with ISO dates or times: ``created >= "2026-11-01"``);
- **comparisons**: ``=`` (or ``==``), ``!=``, ``<``, ``<=``, ``>``, ``>=``, and ``~``
  (contains, case-insensitive, for text);
- **values**: numbers, ``"strings"`` or ``'strings'``, ``true``, ``false``, ``null``;
- ``and``, ``or``, ``not`` and parentheses, ``not`` binding tightest, then ``and``.

A config field compares by the type of the value it is compared with: ``config.alpha >
8`` matches runs whose alpha is a number above 8, never a string; a run without the
field does not match (``!=`` included). Nothing is evaluated in Python over the runs: the
whole query becomes one WHERE clause (and ``sort_key`` one ORDER BY term).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)

from core.store.models import (
    MAX_ID,
    Metric,
    MetricBucket,
    Project,
    Run,
    RunStatus,
    RunTag,
    User,
)

FIELDS_HELP = ("config.<path>, metrics.<key>[.last|.min|.max], tag, owner, project, kind, "
               "status, parent, input, name, id, created, started, finished")
_TEXT = {"name": Run.name, "kind": Run.kind}
_LINKS = {"parent": Run.parent_id, "input": Run.input_run_id}
_DATES = {"created": Run.created_at, "started": Run.started_at, "finished": Run.finished_at}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-/]+)*")
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_OPS = ("==", "!=", "<=", ">=", "=", "<", ">", "~")
MAX_LENGTH = 2000
MAX_DEPTH = 32


class QueryError(ValueError):
    """A query that cannot be run, with the position (0-based) of what is wrong."""

    def __init__(self, message: str, position: int, part: str = "q") -> None:
        super().__init__(f"at {position}: {message}")
        self.message, self.position, self.part = message, position, part

    def of(self, part: str) -> QueryError:
        """The same error, said of the request's ``part`` (``q``, ``sort``, ``by``, …)."""
        return QueryError(self.message, self.position, part)


@dataclass(frozen=True)
class _Tok:
    kind: str   # ident, number, string, op, lparen, rparen, word (and/or/not/true/…)
    text: str
    value: Any
    pos: int


def _tokens(q: str) -> list[_Tok]:
    out, i = [], 0
    while i < len(q):
        c = q[i]
        if c.isspace():
            i += 1
            continue
        if c in "()":
            out.append(_Tok("lparen" if c == "(" else "rparen", c, c, i))
            i += 1
            continue
        if c in "\"'":
            j, buf = i + 1, []
            while j < len(q) and q[j] != c:
                if q[j] == "\\" and j + 1 < len(q):
                    j += 1
                buf.append(q[j])
                j += 1
            if j >= len(q):
                raise QueryError(f"the string opened here has no closing {c}", i)
            out.append(_Tok("string", q[i:j + 1], "".join(buf), i))
            i = j + 1
            continue
        op = next((o for o in _OPS if q.startswith(o, i)), None)
        if op:
            out.append(_Tok("op", op, "=" if op == "==" else op, i))
            i += len(op)
            continue
        m = _NUMBER.match(q, i)
        if m and (c.isdigit() or c in "-."):
            out.append(_Tok("number", m.group(), _number(m.group()), i))
            i = m.end()
            continue
        m = _IDENT.match(q, i)
        if m:
            word = m.group()
            low = word.lower()
            if low in ("and", "or", "not", "true", "false", "null"):
                out.append(_Tok("word", word, low, i))
            else:
                out.append(_Tok("ident", word, word, i))
            i = m.end()
            continue
        raise QueryError(f"unexpected {c!r}", i)
    return out


def _number(text: str) -> int | float:
    """A number token's value: an integer literal exactly (an id past 2**53 keeps its
    digits), anything else as a float (``1e999`` is ``inf``: refused where compared)."""
    return float(text) if any(c in text for c in ".eE") else int(text)


class _Parser:
    def __init__(self, q: str, dialect: str) -> None:
        self.q, self.toks, self.k, self.dialect = q, _tokens(q), 0, dialect
        self.depth = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.k] if self.k < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError("the query ends too soon", len(self.q))
        self.k += 1
        return tok

    def parse(self) -> ColumnElement[bool]:
        if not self.toks:
            raise QueryError("the query is empty", 0)
        expr = self.or_()
        tok = self.peek()
        if tok is not None:
            raise QueryError(f"expected and, or or the end, got {tok.text!r}", tok.pos)
        return expr

    def or_(self) -> ColumnElement[bool]:
        parts = [self.and_()]
        while (t := self.peek()) is not None and t.kind == "word" and t.value == "or":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else or_(*parts)

    def and_(self) -> ColumnElement[bool]:
        parts = [self.not_()]
        while (t := self.peek()) is not None and t.kind == "word" and t.value == "and":
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else and_(*parts)

    def not_(self) -> ColumnElement[bool]:
        nots = 0
        while (t := self.peek()) is not None and t.kind == "word" and t.value == "not":
            self.take()
            nots += 1
        atom = self.atom()
        return not_(atom) if nots % 2 else atom

    def atom(self) -> ColumnElement[bool]:
        t = self.take()
        if t.kind == "lparen":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QueryError(f"parentheses nest deeper than {MAX_DEPTH}", t.pos)
            inner = self.or_()
            self.depth -= 1
            close = self.peek()
            if close is None or close.kind != "rparen":
                raise QueryError("this parenthesis is never closed", t.pos)
            self.take()
            return inner
        if t.kind != "ident":
            raise QueryError(f"expected a field ({FIELDS_HELP}), got {t.text!r}", t.pos)
        op = self.take()
        if op.kind != "op":
            raise QueryError(f"expected a comparison (=, !=, <, <=, >, >=, ~) after "
                             f"{t.text!r}, got {op.text!r}", op.pos)
        value = self.take()
        if value.kind not in ("number", "string") and not (
                value.kind == "word" and value.value in ("true", "false", "null")):
            raise QueryError(f"expected a value (a number, a \"string\", true, false or "
                             f"null) after {op.text!r}, got {value.text!r}", value.pos)
        return _comparison(t, op, value, self.dialect)


def _value(tok: _Tok) -> Any:
    if tok.kind == "word":
        return {"true": True, "false": False, "null": None}[tok.value]
    return tok.value


def _compare(col: Any, op: str, v: Any) -> ColumnElement[bool]:
    if op == "=":
        return col == v  # type: ignore[no-any-return]
    if op == "!=":
        return col != v  # type: ignore[no-any-return]
    if op == "<":
        return col < v  # type: ignore[no-any-return]
    if op == "<=":
        return col <= v  # type: ignore[no-any-return]
    if op == ">":
        return col > v  # type: ignore[no-any-return]
    if op == ">=":
        return col >= v  # type: ignore[no-any-return]
    # ~ is a substring, never a pattern: % and _ match themselves (LIKE … ESCAPE '/')
    return func.lower(col).contains(str(v).lower(), autoescape=True)


def _json_type(path: list[str], dialect: str) -> Any:
    """The JSON type of the config value at ``path``; NULL when the config has none."""
    if dialect == "postgresql":
        return func.json_typeof(Run.config[tuple(path)])
    return func.json_type(Run.config, "$." + ".".join(f'"{p}"' for p in path))


def config_absent(path: list[str], dialect: str) -> ColumnElement[bool]:
    """Whether a run's config has no field at ``path`` (one holding JSON null has it)."""
    return _json_type(path, dialect).is_(None)  # type: ignore[no-any-return]


def _json(path: list[str], kind: str, dialect: str) -> Any:
    """The config value at ``path`` when it is of JSON ``kind`` (number, string,
    boolean), else NULL: never a cast that fails on another type."""
    typ = _json_type(path, dialect)
    if dialect == "postgresql":
        elem = Run.config[tuple(path)]  # config #> '{a,b}'
        text = elem.as_string()         # config #>> '{a,b}'
        if kind == "number":
            return case((typ == "number", cast(text, Float)), else_=None)
        if kind == "boolean":
            return case((typ == "boolean", text == "true"), else_=None)
        return case((typ == "string", text), else_=None)
    val = func.json_extract(Run.config, "$." + ".".join(f'"{p}"' for p in path))
    if kind == "number":
        return case((typ.in_(("integer", "real")), val), else_=None)
    if kind == "boolean":
        return case((typ == "true", true()), (typ == "false", false()), else_=None)
    return case((typ == "text", val), else_=None)


def _metric(key: str, stat: str) -> Any:
    if stat == "last":
        return (select(Metric.value).where(Metric.run_id == Run.id, Metric.key == key)
                .order_by(Metric.step.desc()).limit(1).scalar_subquery())
    agg = func.min(MetricBucket.min_value) if stat == "min" else func.max(
        MetricBucket.max_value)
    return select(agg).where(MetricBucket.run_id == Run.id,
                             MetricBucket.key == key).scalar_subquery()


def field_column(name: str, pos: int, dialect: str, kind: str = "number") -> Any:
    """The SQL expression of a config or metric field (for sorting and comparing)."""
    if name.startswith("config."):
        path = name.split(".")[1:]
        if not all(path):
            raise QueryError(f"{name!r}: empty part in the config path", pos)
        return _json(path, kind, dialect)
    if name.startswith("metrics."):
        rest = name[len("metrics."):]
        key, _, stat = rest.rpartition(".")
        if stat not in ("last", "min", "max") or not key:  # metrics.max: the metric "max"
            key, stat = rest, "last"
        if not key:
            raise QueryError(f"{name!r}: name the metric (metrics.test_acc.last)", pos)
        return _metric(key, stat)
    raise QueryError(f"unknown field {name!r} (fields: {FIELDS_HELP})", pos)


def _comparison(field: _Tok, op_tok: _Tok, value_tok: _Tok, dialect: str) -> ColumnElement[bool]:
    name, op, v = field.text, op_tok.value, _value(value_tok)
    numeric = isinstance(v, int | float) and not isinstance(v, bool)
    where = value_tok.pos

    def need(kind: str) -> None:
        ok = {"number": numeric, "text": isinstance(v, str)}[kind]
        if not ok:
            got = "null" if v is None else "a number" if numeric else (
                "a boolean" if isinstance(v, bool) else "a string")
            want = "a number" if kind == "number" else "a string"
            raise QueryError(f"{name} compares with {want}, not {got}", where)

    if op == "~" and not isinstance(v, str):
        raise QueryError("~ (contains) compares with a string", where)
    if name == "tag":
        need("text")
        if op not in ("=", "!=", "~"):
            raise QueryError("tag takes =, != or ~", op_tok.pos)
        match = RunTag.tag == v if op != "~" else _compare(RunTag.tag, "~", v)
        has = exists().where(RunTag.run_id == Run.id, match)
        return not_(has) if op == "!=" else has
    if name == "owner":
        need("text")
        return exists().where(User.id == Run.owner_id, _compare(User.name, op, v))
    if name == "project":
        need("text")
        return exists().where(Project.id == Run.project_id, _compare(Project.name, op, v))
    if name == "status":
        need("text")
        known = [s.value for s in RunStatus]
        if op not in ("=", "!="):
            raise QueryError("status takes = or !=", op_tok.pos)
        if v not in known:
            raise QueryError(f"status is one of {known}, not {v!r}", where)
        return _compare(Run.status, op, RunStatus(v))
    if name in _TEXT:
        need("text")
        return _compare(_TEXT[name], op, v)
    if name == "id":
        need("number")
        return _compare(Run.id, op, _whole(name, value_tok))
    if name in _LINKS:
        column = _LINKS[name]
        if v is None:
            if op not in ("=", "!="):
                raise QueryError(f"{name} compares with null by = or !=", op_tok.pos)
            return column.is_(None) if op == "=" else column.is_not(None)
        need("number")
        return _compare(column, op, _whole(name, value_tok))
    if name in _DATES:
        if v is None:
            if op not in ("=", "!="):
                raise QueryError(f"{name} compares with null by = or !=", op_tok.pos)
            return _DATES[name].is_(None) if op == "=" else _DATES[name].is_not(None)
        need("text")
        if op == "~":
            raise QueryError(f"{name} takes =, !=, <, <=, > or >=", op_tok.pos)
        return _compare(_DATES[name], op, _instant(name, value_tok))
    if v is None:
        raise QueryError(f"{name} compares with a number, a string or a boolean, not null",
                         where)
    kind = "boolean" if isinstance(v, bool) else "number" if numeric else "text"
    if name.startswith("metrics.") and kind != "number":
        raise QueryError(f"{name} is a number; it compares with a number, not "
                         f"{'a boolean' if kind == 'boolean' else 'a string'}", where)
    if kind == "boolean" and op not in ("=", "!="):
        raise QueryError("a boolean compares by = or !=", op_tok.pos)
    col = field_column(name, field.pos, dialect, {"text": "string"}.get(kind, kind))
    return _compare(col, op, _finite(name, value_tok) if kind == "number" else v)


def _whole(name: str, tok: _Tok) -> int:
    """An id's value: a whole number an id column can hold (``MAX_ID``), so the database
    never sees one that overflows its type."""
    v = tok.value
    if isinstance(v, float) and v.is_integer() and abs(v) <= MAX_ID:
        v = int(v)
    if not isinstance(v, int) or abs(v) > MAX_ID:
        raise QueryError(f"{name} compares with a whole number from -{MAX_ID} to {MAX_ID}, "
                         f"not {tok.text}", tok.pos)
    return v


def _finite(name: str, tok: _Tok) -> float:
    """A config or metric comparison's number as a finite float (a value column is a
    double): ``1e999`` or an integer past ±1.8e308 names itself instead of reaching SQL."""
    try:
        v = float(tok.value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v):
        raise QueryError(f"{name}: {tok.text} is out of range (numbers are finite, within "
                         f"±{sys.float_info.max:.4g})", tok.pos)
    return v


def _instant(name: str, tok: _Tok) -> datetime:
    """A date field's ISO date or time as an aware UTC datetime (no offset: UTC), within
    years 1–9999 once in UTC (``0001-01-01T00:00+05:00`` is before year 1)."""
    try:
        when = datetime.fromisoformat(tok.value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name} compares with an ISO date or time (\"2026-11-01\", "
                         f"\"2026-11-01T12:00\") of years 1 to 9999, not {tok.value!r}",
                         tok.pos) from None
    try:
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except OverflowError:
        raise QueryError(f"{name}: {tok.value!r} is out of range (years 1 to 9999 in UTC)",
                         tok.pos) from None


def compile_query(q: str, dialect: str) -> ColumnElement[bool]:
    """The WHERE clause of query ``q`` for ``dialect`` (``sqlite`` or ``postgresql``).

    Raises:
        QueryError: naming the position of what could not be parsed or compared.
    """
    if len(q) > MAX_LENGTH:
        raise QueryError(f"the query is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    return _Parser(q, dialect).parse()


SORT_FIELDS = ("id", "name", "kind", "status", "owner", "project", "parent", "created",
               "started", "finished")  # besides config.<path> and metrics.<key>[.last|.min|.max]


def sort_key(name: str, dialect: str) -> Any:
    """The ORDER BY expression of a run field (:data:`SORT_FIELDS`: ``owner`` by name,
    ``parent`` by id, the dates in time), or of a config or metric field (numbers; a config
    field that holds text sorts by its text)."""
    plain = {"id": Run.id, "name": Run.name, "kind": Run.kind, "status": Run.status,
             "parent": Run.parent_id, **_DATES}
    if name in plain:
        return (plain[name],)
    if name == "owner":
        return (select(User.name).where(User.id == Run.owner_id).scalar_subquery(),)
    if name == "project":
        return (select(Project.name).where(Project.id == Run.project_id).scalar_subquery(),)
    try:
        if name.startswith("config."):
            return (field_column(name, 0, dialect, "number"),
                    field_column(name, 0, dialect, "string"))
        return (field_column(name, 0, dialect),)
    except QueryError as exc:
        raise exc.of("sort") from None


def group_column(name: str, dialect: str) -> Any:
    """A group-by key: a config field as JSON text (typed again in Python), or a run
    column."""
    if name.startswith("config."):
        path = name.split(".")[1:]
        if not all(path):
            raise QueryError(f"{name!r}: empty part in the config path", 0)
        if dialect == "postgresql":
            return cast(Run.config[tuple(path)], Text)
        return func.json_extract(Run.config, "$." + ".".join(f'"{p}"' for p in path))
    if name == "owner":
        return select(User.name).where(User.id == Run.owner_id).scalar_subquery()
    if name == "project":
        return select(Project.name).where(Project.id == Run.project_id).scalar_subquery()
    if name in ("kind", "status", "name"):
        return getattr(Run, name)
    if name == "tag":
        return RunTag.tag
    raise QueryError(f"cannot group by {name!r} (config.<path>, tag, owner, project, kind, "
                     "status)", 0)


def group_runs(session: Any, *, by: list[str], metrics: list[str], q: str | None = None,
               where: Any = None) -> list[dict[str, Any]]:
    """Runs matching ``q`` grouped by the fields ``by``: per group its ``count`` and, per
    metric (``metrics.<key>[.last|.min|.max]``), ``mean``, ``sem`` and ``n`` over the runs
    that have it. All in SQL (one statement); a run with several tags is in each of their
    groups when grouping by ``tag``.

    Raises:
        QueryError: for a query, group field or metric that cannot be compiled, its
            ``part`` naming which (``q``, ``by``, ``metric``).
    """
    import math

    dialect = session.get_bind().dialect.name
    try:
        keys = [group_column(b, dialect).label(f"g{i}") for i, b in enumerate(by)]
    except QueryError as exc:
        raise exc.of("by") from None
    try:
        vals = [field_column(m, 0, dialect).label(f"m{i}") for i, m in enumerate(metrics)]
    except QueryError as exc:
        raise exc.of("metric") from None
    inner = select(Run.id, *keys, *vals)
    if "tag" in by:
        inner = inner.join(RunTag, RunTag.run_id == Run.id)
    if q:
        inner = inner.where(compile_query(q, dialect))
    if where is not None:
        inner = inner.where(where)
    sub = inner.subquery()
    cols = [sub.c[f"g{i}"] for i in range(len(by))]
    aggs = []
    for i in range(len(metrics)):
        m = sub.c[f"m{i}"]
        aggs += [func.count(m), func.sum(m), func.sum(m * m)]
    rows = session.execute(select(*cols, func.count(func.distinct(sub.c.id)), *aggs)
                           .group_by(*cols).order_by(*cols)).all()
    out = []
    for row in rows:
        group = _group_of(by, row[:len(by)], dialect)
        stats: dict[str, dict[str, Any]] = {}
        rest = row[len(by) + 1:]
        for i, metric in enumerate(metrics):
            n, total, squares = rest[3 * i:3 * i + 3]
            if not n:
                stats[metric] = {"n": 0, "mean": None, "sem": None}
                continue
            mean = total / n
            var = max(squares / n - mean * mean, 0.0) * n / (n - 1) if n > 1 else 0.0
            stats[metric] = {"n": int(n), "mean": mean, "sem": math.sqrt(var / n)}
        out.append({"group": group, "count": int(row[len(by)]), "metrics": stats})
    return out


def _group_of(by: list[str], values: Any, dialect: str) -> dict[str, Any]:
    """A group's key as ``{field: value}``, config values typed again (PostgreSQL hands
    the JSON text back)."""
    import json

    group = {}
    for b, v in zip(by, values, strict=True):
        if b.startswith("config.") and isinstance(v, str) and dialect == "postgresql":
            v = json.loads(v)
        elif isinstance(v, RunStatus):
            v = v.value
        group[b] = v
    return group


def group_members(session: Any, *, by: list[str], q: str | None = None, limit: int = 500,
                  where: Any = None) -> tuple[list[dict[str, Any]], bool]:
    """The runs matching ``q`` in the groups :func:`group_runs` makes of them: per group
    its key and ``run_ids`` (oldest first), over at most ``limit`` (run, group) pairs in
    group order. Returns the groups and whether ``limit`` cut any off.

    Raises:
        QueryError: as :func:`group_runs`.
    """
    dialect = session.get_bind().dialect.name
    try:
        keys = [group_column(b, dialect).label(f"g{i}") for i, b in enumerate(by)]
    except QueryError as exc:
        raise exc.of("by") from None
    stmt = select(Run.id, *keys)
    if "tag" in by:
        stmt = stmt.join(RunTag, RunTag.run_id == Run.id)
    if q:
        stmt = stmt.where(compile_query(q, dialect))
    if where is not None:
        stmt = stmt.where(where)
    order = [k for k in keys] + [Run.id]
    rows = session.execute(stmt.order_by(*order).limit(limit + 1)).all()
    groups: dict[str, dict[str, Any]] = {}
    for row in rows[:limit]:
        group = _group_of(by, row[1:], dialect)
        ident = repr(sorted(group.items(), key=lambda kv: kv[0]))
        groups.setdefault(ident, {"group": group, "run_ids": []})["run_ids"].append(row[0])
    return list(groups.values()), len(rows) > limit
