"""MLflow's tracking API on neuroreg's store: what ``server.routes.mlflow`` answers, so that
an unchanged MLflow client (``MLFLOW_TRACKING_URI=http://host:port``, a neuroreg token in
``MLFLOW_TRACKING_TOKEN``) logs into neuroreg.

How MLflow's entities map onto neuroreg's:

- **An MLflow run is an external run** (kind ``external``) owned by the token's member:
  its params are the run's ``config.params`` (text, as MLflow keeps them; set once each),
  its metrics the run's series (MLflow's timestamp, in ms, is the point's wall time), its
  status the run's (RUNNING ↔ running, FINISHED ↔ succeeded, FAILED ↔ failed, KILLED ↔
  cancelled, SCHEDULED ↔ queued), ``mlflow.runName`` its name, its artifacts the run's
  (``mlflow-artifacts``, paths with folders). Its other key/value tags are kept in the
  run's provenance under ``mlflow`` (shown on the run page).
- **An MLflow experiment is a neuroreg tag** on each of its runs — ``exp:<name>``, or
  ``exp:<id>`` when the name is not a tag's characters — because a tag is what neuroreg
  groups runs by in every page, query (``tag = "exp:…"``), group and compare; a row of
  ``mlflow_experiments`` keeps what a tag cannot (the id clients address, the name as
  written, deletion, its own tags). A deleted run or experiment keeps its runs and gets
  the tag ``mlflow:deleted`` (MLflow deletes softly; ``restore`` takes it back).
- neuroreg keeps **one value per (metric, step)**: a second, different value at a step
  is refused (MLflow's client logs at step 0 unless given ``step=``; Lightning and
  Hugging Face pass steps). Re-sending the same point is a no-op, as everywhere here.

Every refusal is an :class:`MlflowError` with MLflow's ``error_code``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from core.access import Access
from core.lifecycle import finish_run
from core.store.models import (
    Metric,
    MetricBucket,
    MlflowExperiment,
    Role,
    Run,
    RunStatus,
    RunTag,
    User,
    utcnow,
)
from core.store.runs import lock_run, set_tags, tags_of

DEFAULT_EXPERIMENT = 0
DELETED_TAG = "mlflow:deleted"
NEUROREG_TAG = "neuroreg.tag"
"""An experiment's tag (read-only): the neuroreg tag its runs carry."""
MAX_RESULTS = 50_000  # MLflow's own bound on search_runs' max_results
PAGE = 1000
"""The most runs one search answer holds, whatever ``max_results`` asks (MLflow's server
may answer fewer with a ``next_page_token``; its clients follow it): each answer's runs,
metrics and tags are read with one IN list of their ids, which SQLite bounds."""
STATUS_OUT = {RunStatus.queued: "SCHEDULED", RunStatus.running: "RUNNING",
              RunStatus.succeeded: "FINISHED", RunStatus.failed: "FAILED",
              RunStatus.cancelled: "KILLED"}
STATUS_IN = {v: k for k, v in STATUS_OUT.items()}
_TAG_OK = re.compile(r"^[A-Za-z0-9_.:/+\-]+$")
_METRIC_KEY = re.compile(r"^[A-Za-z0-9_.:/\-\[\]]+$")
_MAX_STEP = 2**31 - 1


class MlflowError(Exception):
    """A refusal in MLflow's shape: ``error_code`` (MLflow's name for it), ``message``,
    and the HTTP status MLflow's server answers it with."""

    STATUS = {"INVALID_PARAMETER_VALUE": 400, "RESOURCE_ALREADY_EXISTS": 400,
              "INVALID_STATE": 400, "BAD_REQUEST": 400, "RESOURCE_DOES_NOT_EXIST": 404,
              "ENDPOINT_NOT_FOUND": 404, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
              "REQUEST_LIMIT_EXCEEDED": 413, "TEMPORARILY_UNAVAILABLE": 503,
              "INTERNAL_ERROR": 500}

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = self.STATUS.get(code, 400)


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def millis(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def from_millis(ms: int) -> datetime:
    """A time in milliseconds since 1970; one no calendar holds is refused, not a 500."""
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise invalid(f"Invalid time {ms}: milliseconds since 1970 (years 1970 to 9999)"
                      ) from None


# -- values from a request ----------------------------------------------------------------

def text(body: dict[str, Any], name: str, *, required: bool = True,
         default: str | None = None, limit: int = 8000) -> str | None:
    """Field ``name`` as text (MLflow's proto strings)."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing value for required parameter '{name}'. See the API docs "
                          f"for more information about request parameters.")
        return default
    if not isinstance(value, str):
        raise invalid(f"Invalid value {value!r} for parameter '{name}' supplied: expected a "
                      "string")
    if len(value) > limit:
        raise invalid(f"'{name}' exceeds the maximum length of {limit} characters")
    return value


def required(body: dict[str, Any], name: str, *, limit: int = 8000) -> str:
    """Field ``name`` as text that must be there."""
    value = text(body, name, limit=limit)
    assert value is not None  # text() raises for a missing required field
    return value


def key_value(body: dict[str, Any]) -> tuple[str, str]:
    """A ``{key, value}`` (a param or a tag): a key of at most 250 characters (MLflow's
    bound), a value of at most 8,000, empty when left out."""
    value = text(body, "value", required=False, default="", limit=8000)
    assert value is not None
    return required(body, "key", limit=250), value


def integer(body: dict[str, Any], name: str, *, default: int | None = None) -> int | None:
    """Field ``name`` as an int64: a number, or digits as text (proto3's JSON for int64)."""
    value = body.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise invalid(f"Invalid value {value!r} for parameter '{name}' supplied: expected an "
                  "integer")


def number(body: dict[str, Any], name: str) -> float:
    value = body.get(name)
    if isinstance(value, str):  # proto3 JSON writes NaN and infinities as text
        try:
            value = float(value)
        except ValueError:
            raise invalid(f"Invalid value {value!r} for parameter '{name}' supplied: "
                          "expected a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"Missing value for required parameter '{name}'" if value is None else
                      f"Invalid value {value!r} for parameter '{name}' supplied: expected a "
                      "number")
    if not math.isfinite(value):
        raise invalid(f"Invalid value {value!r} for parameter '{name}' supplied: neuroreg "
                      "stores finite metric values only")
    return float(value)


def strings(body: dict[str, Any], name: str, limit: int = 100) -> list[str]:
    """Field ``name`` as a list of strings (one string is a list of one; ids may be
    numbers)."""
    value = body.get(name)
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str | int) and not isinstance(value, bool) else value
    if not isinstance(items, list) or len(items) > limit or not all(
            isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
            for v in items):
        raise invalid(f"Invalid value for parameter '{name}' supplied: expected a list of at "
                      f"most {limit} strings")
    return [str(v) for v in items]


def key_values(body: dict[str, Any], name: str, limit: int) -> list[tuple[str, str]]:
    """A list of ``{key, value}`` (params, tags)."""
    items = body.get(name) or []
    if not isinstance(items, list):
        raise invalid(f"Invalid value for parameter '{name}' supplied: expected a list")
    if len(items) > limit:
        raise invalid(f"A batch logging request can contain at most {limit} {name}. Got "
                      f"{len(items)} {name}.")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise invalid(f"Invalid value for parameter '{name}' supplied: expected objects")
        out.append(key_value(item))
    return out


# -- experiments ----------------------------------------------------------------------------

def experiment_json(e: MlflowExperiment) -> dict[str, Any]:
    return {"experiment_id": str(e.id), "name": e.name,
            "artifact_location": f"mlflow-artifacts:/{e.id}",
            "lifecycle_stage": "deleted" if e.deleted else "active",
            "creation_time": millis(e.created_at), "last_update_time": millis(e.updated_at),
            "tags": [{"key": k, "value": v} for k, v in sorted(
                {**e.tags, NEUROREG_TAG: e.tag}.items())]}


def experiment_id(body: dict[str, Any], name: str = "experiment_id") -> int:
    raw = body.get(name)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw:
        raise invalid(f"Missing value for required parameter '{name}'. See the API docs "
                      "for more information about request parameters.")
    if not re.fullmatch(r"\d{1,9}", raw):
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No Experiment with id={raw} exists")
    return int(raw)


def get_experiment(session: Session, exp_id: int) -> MlflowExperiment:
    e = session.get(MlflowExperiment, exp_id)
    if e is None and exp_id == DEFAULT_EXPERIMENT:  # made by migration 0012; again if gone
        e = MlflowExperiment(id=DEFAULT_EXPERIMENT, name="Default", tag="exp:Default",
                             deleted=False, tags={})
        session.add(e)
        session.flush()
    if e is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No Experiment with id={exp_id} exists")
    return e


def experiment_by_name(session: Session, name: str) -> MlflowExperiment:
    e = session.execute(select(MlflowExperiment).where(MlflowExperiment.name == name)
                        ).scalar_one_or_none()
    if e is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST",
                          f"Could not find experiment with name '{name}'")
    return e


def _tag_for(name: str, exp_id: int) -> str:
    tag = f"exp:{name}"
    return tag if len(tag) <= 64 and _TAG_OK.fullmatch(tag) else f"exp:{exp_id}"


def create_experiment(session: Session, user: User, name: str,
                      tags: Sequence[tuple[str, str]]) -> MlflowExperiment:
    if session.execute(select(MlflowExperiment.id).where(MlflowExperiment.name == name)
                       ).first() is not None:
        raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
    e = MlflowExperiment(name=name, tag=f"exp:new:{utcnow().timestamp()}", owner_id=user.id,
                         deleted=False, tags=dict(tags))
    session.add(e)
    session.flush()
    e.tag = _tag_for(name, e.id)
    if session.execute(select(MlflowExperiment.id).where(
            MlflowExperiment.tag == e.tag, MlflowExperiment.id != e.id)).first() is not None:
        e.tag = f"exp:{e.id}"
    session.flush()
    return e


def _may_change(user: User, e: MlflowExperiment) -> None:
    if e.id == DEFAULT_EXPERIMENT:
        raise invalid("Cannot delete or rename the default experiment '0'. This is an "
                      "internally reserved experiment.")
    if e.owner_id != user.id and user.role is not Role.admin:
        raise MlflowError("PERMISSION_DENIED", f"experiment {e.id} is another member's; "
                          "only its creator or an admin may change it")


def set_experiment_deleted(session: Session, access: Access, e: MlflowExperiment,
                           deleted: bool) -> None:
    """MLflow's delete (soft) and restore: the experiment and those of its runs the caller
    may write (:mod:`core.access`)."""
    _may_change(access.user, e)
    if e.deleted == deleted:
        raise MlflowError("INVALID_STATE", f"Cannot {'delete' if deleted else 'restore'} "
                          f"experiment {e.id}: it is already "
                          f"{'deleted' if deleted else 'active'}")
    e.deleted, e.updated_at = deleted, utcnow()
    for run in _experiment_runs(session, e):
        if access.can_write(run):
            _set_run_deleted(session, run, deleted)
    session.flush()


def rename_experiment(session: Session, user: User, e: MlflowExperiment, name: str) -> None:
    _may_change(user, e)
    if session.execute(select(MlflowExperiment.id).where(
            MlflowExperiment.name == name, MlflowExperiment.id != e.id)).first() is not None:
        raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
    old, new = e.tag, _tag_for(name, e.id)
    if session.execute(select(MlflowExperiment.id).where(
            MlflowExperiment.tag == new, MlflowExperiment.id != e.id)).first() is not None:
        new = f"exp:{e.id}"
    for run in _experiment_runs(session, e):  # the runs carry the experiment's tag
        current = tags_of(session, [run.id])[run.id]
        set_tags(session, run, [new if t == old else t for t in current])
    e.name, e.tag, e.updated_at = name, new, utcnow()
    session.flush()


def set_experiment_tag(session: Session, user: User, e: MlflowExperiment, key: str,
                       value: str | None) -> None:
    """Set (``value``) or delete (None) one of the experiment's own tags."""
    if e.owner_id is not None and e.owner_id != user.id and user.role is not Role.admin:
        raise MlflowError("PERMISSION_DENIED", f"experiment {e.id} is another member's")
    if key == NEUROREG_TAG:
        raise invalid(f"'{NEUROREG_TAG}' is the neuroreg tag of the experiment's runs; it "
                      "changes with the experiment's name (rename the experiment)")
    tags = dict(e.tags)
    if value is None:
        if key not in tags:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST",
                              f"No tag with name: {key} in experiment {e.id}")
        del tags[key]
    else:
        tags[key] = value
    e.tags, e.updated_at = tags, utcnow()
    session.flush()


def search_experiments(session: Session, *, view_type: str, max_results: int,
                       filter_string: str | None, order_by: Sequence[str],
                       page_token: str | None) -> tuple[list[MlflowExperiment], str | None]:
    """Experiments by view (ACTIVE_ONLY, DELETED_ONLY, ALL), a filter on the name
    (``name = 'x'``, ``name LIKE 'x%'``/``ILIKE``, joined by AND), ordered by
    ``name``, ``experiment_id``, ``creation_time`` or ``last_update_time``."""
    query = select(MlflowExperiment)
    if view_type in ("", "ACTIVE_ONLY", "1"):
        query = query.where(MlflowExperiment.deleted.is_(False))
    elif view_type in ("DELETED_ONLY", "2"):
        query = query.where(MlflowExperiment.deleted.is_(True))
    elif view_type not in ("ALL", "3"):
        raise invalid(f"Invalid value {view_type!r} for parameter 'view_type'")
    for clause in _clauses(filter_string):
        m = re.fullmatch(r"(?:attributes\.)?(name)\s*(=|!=|LIKE|ILIKE)\s*(['\"])(.*)\3",
                         clause, re.IGNORECASE | re.DOTALL)
        if m is None:
            raise invalid(f"neuroreg filters experiments by name only (name = 'x', name "
                          f"LIKE 'x%', name ILIKE '%x%'), not {clause!r}")
        op, value = m.group(2).upper(), m.group(4)
        col = MlflowExperiment.name
        query = query.where({"=": col == value, "!=": col != value, "LIKE": col.like(value),
                             "ILIKE": func.lower(col).like(value.lower())}[op])
    columns: dict[str, Any] = {"name": MlflowExperiment.name, "experiment_id": MlflowExperiment.id,
               "creation_time": MlflowExperiment.created_at,
               "last_update_time": MlflowExperiment.updated_at}
    ordering: list[Any] = []
    for item in order_by:
        m = re.fullmatch(r"(?:attributes\.)?(\w+)(?:\s+(ASC|DESC))?", item.strip(),
                         re.IGNORECASE)
        if m is None or m.group(1) not in columns:
            raise invalid(f"Invalid order_by clause {item!r}: order experiments by one of "
                          f"{list(columns)}, ASC or DESC")
        by = columns[m.group(1)]
        ordering.append(by.desc() if (m.group(2) or "").upper() == "DESC" else by.asc())
    ordering = ordering or [MlflowExperiment.created_at.desc()]
    offset = _offset(page_token)
    rows = list(session.execute(query.order_by(*ordering, MlflowExperiment.id.asc())
                                .limit(max_results + 1).offset(offset)).scalars())
    more = len(rows) > max_results
    return rows[:max_results], _token(offset + max_results) if more else None


def _clauses(filter_string: str | None) -> list[str]:
    """A filter's clauses, split on AND outside quotes."""
    if not filter_string or not filter_string.strip():
        return []
    parts, current, quote = [], "", None
    tokens = re.split(r"(\s+AND\s+|['\"`])", filter_string, flags=re.IGNORECASE)
    for tok in tokens:
        if quote is None and tok in ("'", '"', "`"):
            quote = tok
        elif quote is not None and tok == quote:
            quote = None
        if quote is None and re.fullmatch(r"\s+AND\s+", tok, re.IGNORECASE):
            parts.append(current.strip())
            current = ""
        else:
            current += tok
    if quote is not None:
        raise invalid(f"Invalid filter {filter_string!r}: an unclosed quote")
    parts.append(current.strip())
    if any(not p for p in parts):
        raise invalid(f"Invalid filter {filter_string!r}")
    return parts


def _offset(page_token: str | None) -> int:
    if not page_token:
        return 0
    try:
        offset = json.loads(base64.b64decode(page_token, validate=True))["offset"]
        if isinstance(offset, int) and 0 <= offset <= 10**9:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise invalid(f"Invalid page token {page_token!r}: not one this server handed out")


def _token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


# -- runs -----------------------------------------------------------------------------------

def _state(run: Run) -> dict[str, Any]:
    """The run's MLflow-only state, kept in its provenance: experiment, deletion, tags."""
    prov = run.provenance or {}
    state = prov.get("mlflow")
    if run.kind != "external" or not isinstance(state, dict):
        return {"experiment_id": None, "deleted": False, "tags": {}}
    return state


def _set_state(run: Run, **changes: Any) -> None:
    prov = dict(run.provenance or {})
    prov["mlflow"] = {**_state(run), **changes}
    run.provenance = prov


def run_of(session: Session, raw: Any, access: Access) -> Run:
    """The run a request's ``run_id`` (or ``run_uuid``) names, if the caller may read it
    (one they may not is "not found", as one that does not exist)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw:
        raise invalid("Missing value for required parameter 'run_id'. See the API docs for "
                      "more information about request parameters.")
    run = session.get(Run, int(raw)) if re.fullmatch(r"\d{1,9}", raw) else None
    if run is None or not access.can_read(run):
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run with id={raw} not found")
    return run


def writable(access: Access, run: Run) -> None:
    """Only who may write the run (:meth:`core.access.Access.can_write`) writes into it;
    only into an external one that is not deleted (MLflow: "must be in the 'active'
    state")."""
    if not access.can_write(run):
        raise MlflowError("PERMISSION_DENIED", f"run {run.id} is {run.owner.name}'s; only "
                          "its owner (an editor of its project), the project's owners or "
                          "an admin may write into it")
    if run.kind != "external":
        raise MlflowError("INVALID_STATE", f"run {run.id} is a neuroreg {run.kind} run: its "
                          "worker writes into it, not a client")
    if _state(run)["deleted"]:
        raise MlflowError("INVALID_STATE", f"The run {run.id} must be in the 'active' state. "
                          "Current state is deleted.")


def create_run(session: Session, submit: Any, user: User, e: MlflowExperiment, *,
               run_name: str | None, start_time: int | None,
               tags: Sequence[tuple[str, str]]) -> Run:
    """An external run in experiment ``e``: ``submit`` is :func:`core.submit.submit_run`
    with its queue bound (an external run is not queued)."""
    if e.deleted:
        raise MlflowError("INVALID_STATE", f"The experiment {e.id} must be in the 'active' "
                          "state. Current state is deleted.")
    tag_map = dict(tags)
    name = run_name or tag_map.get("mlflow.runName") or ""
    run: Run = submit(owner=user, kind="external", name=name[:200], config={"params": {}},
                 provenance={"mlflow": {"experiment_id": e.id, "deleted": False,
                                        "tags": {k: v for k, v in tag_map.items()
                                                 if k != "mlflow.runName"}}},
                 started_at=None if start_time is None else from_millis(start_time))
    if not run.name:
        run.name = f"mlflow-run-{run.id}"
    set_tags(session, run, [e.tag])
    session.commit()
    return run


def _experiment_runs(session: Session, e: MlflowExperiment) -> list[Run]:
    return list(session.execute(select(Run).join(RunTag, RunTag.run_id == Run.id).where(
        RunTag.tag == e.tag, Run.kind == "external")).scalars().unique())


def _set_run_deleted(session: Session, run: Run, deleted: bool) -> None:
    _set_state(run, deleted=deleted)
    current = [t for t in tags_of(session, [run.id])[run.id] if t != DELETED_TAG]
    set_tags(session, run, current + ([DELETED_TAG] if deleted else []))


def set_run_deleted(session: Session, access: Access, run: Run, deleted: bool) -> None:
    if not access.can_write(run):
        raise MlflowError("PERMISSION_DENIED", f"run {run.id} is {run.owner.name}'s")
    if run.kind != "external":
        raise MlflowError("INVALID_STATE", f"run {run.id} is a neuroreg {run.kind} run; "
                          "delete it in neuroreg")
    lock_run(session, run.id)
    _set_run_deleted(session, run, deleted)
    session.flush()


def update_run(session: Session, access: Access, run: Run, *, status: str | None,
               end_time: int | None, run_name: str | None) -> None:
    writable(access, run)
    if run_name:
        run.name = run_name[:200]
    if status:
        if status not in STATUS_IN:
            raise invalid(f"Invalid value {status!r} for parameter 'status': one of "
                          f"{list(STATUS_IN)}")
        target = STATUS_IN[status]
        if target.finished and not run.status.finished:
            ended = None if end_time is None else from_millis(end_time)
            if ended is not None and run.started_at is not None and ended < run.started_at:
                raise invalid(f"end_time {end_time} is before the run started")
            finish_run(session, run.id, target, finished_at=ended)
        elif target.finished and run.status is not target:
            raise MlflowError("INVALID_STATE", f"run {run.id} already ended as "
                              f"{STATUS_OUT[run.status]}")
        elif not target.finished and run.status.finished:
            raise MlflowError("INVALID_STATE", f"run {run.id} has ended "
                              f"({STATUS_OUT[run.status]}); neuroreg does not reopen runs")
    session.flush()


def log_params(session: Session, run: Run, params: Sequence[tuple[str, str]]) -> None:
    """Set params, once each: the same value again is a no-op, another is refused."""
    lock_run(session, run.id)
    session.refresh(run)
    config = dict(run.config or {})
    stored = dict(config.get("params") or {})
    for key, value in params:
        if key in stored and str(stored[key]) != value:
            raise invalid(f"Changing param values is not allowed. Param with key='{key}' was "
                          f"already logged with value='{stored[key]}' for run ID='{run.id}'. "
                          f"Attempted logging new value '{value}'.")
        stored[key] = value
    config["params"] = stored
    run.config = config
    session.flush()


def set_run_tags(session: Session, run: Run, tags: Sequence[tuple[str, str]],
                 delete: Sequence[str] = ()) -> None:
    lock_run(session, run.id)
    session.refresh(run)
    state = _state(run)
    stored = dict(state["tags"])
    for key, value in tags:
        if key == "mlflow.runName":
            run.name = value[:200]
        else:
            stored[key] = value
    for key in delete:
        if key not in stored:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST",
                              f"No tag with name: {key} in run with id {run.id}")
        del stored[key]
    _set_state(run, tags=stored)
    session.flush()


def metric_points(items: Sequence[dict[str, Any]]) -> list[tuple[str, int, float, float]]:
    """MLflow metrics ``{key, value, timestamp, step}`` as points (key, step, value, wall
    time in seconds)."""
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise invalid("Invalid value for parameter 'metrics' supplied: expected objects")
        key = required(item, "key", limit=128)
        if not _METRIC_KEY.fullmatch(key):
            raise invalid(f"Invalid metric name: '{key}'. neuroreg metric names are letters, "
                          "digits and _ . : / - [ ] (no spaces)")
        value = number(item, "value")
        step = integer(item, "step", default=0)
        timestamp = integer(item, "timestamp")
        if timestamp is None:
            raise invalid("Missing value for required parameter 'timestamp'")
        assert step is not None
        if not 0 <= step <= _MAX_STEP:
            raise invalid(f"Invalid value {step} for parameter 'step': neuroreg keeps steps "
                          f"0 to {_MAX_STEP}")
        out.append((key, step, value, timestamp / 1000))
    return out


def log_metrics(session: Session, run: Run, points: Sequence[tuple[str, int, float, float]]
                ) -> None:
    """Store points; a (key, step) already holding another value is refused (nothing of
    the batch is stored), the same value again is a no-op."""
    from core.store.metrics import insert_points

    if not points:
        return
    lock_run(session, run.id)
    seen: dict[tuple[str, int], float] = {}
    for key, step, value, _ in points:
        if seen.setdefault((key, step), value) != value:
            raise _twice(run, key, step, seen[(key, step)], value)
    # what is stored already in each key's span of steps: a range scan of the primary key
    # (a (key, step) IN list of 1,000 pairs made PostgreSQL scan the run's whole series per
    # batch: 3,600 points/s against 32,000 through neuroreg's own API)
    spans: dict[str, tuple[int, int]] = {}
    for key, step in seen:
        lo, hi = spans.get(key, (step, step))
        spans[key] = (min(lo, step), max(hi, step))
    existing = session.execute(select(Metric.key, Metric.step, Metric.value).where(
        Metric.run_id == run.id,
        or_(*(and_(Metric.key == k, Metric.step.between(lo, hi))
              for k, (lo, hi) in spans.items())))).all()
    for key, step, value in existing:
        if (key, step) in seen and seen[(key, step)] != value:
            raise _twice(run, key, step, value, seen[(key, step)])
    insert_points(session, run.id, [(k, s, v, t) for k, s, v, t in points])


def _twice(run: Run, key: str, step: int, old: float, new: float) -> MlflowError:
    return invalid(f"Metric '{key}' of run {run.id} already has the value {old!r} at step "
                   f"{step}; neuroreg keeps one value per step (not {new!r} too): log with "
                   "step=")


def latest_metrics(session: Session, run_ids: Sequence[int]
                   ) -> dict[int, list[dict[str, Any]]]:
    """Each run's metrics as MLflow shows them on a run: the value at the highest step."""
    out: dict[int, list[dict[str, Any]]] = {r: [] for r in run_ids}
    if not run_ids:
        return out
    last = (select(MetricBucket.run_id, MetricBucket.key,
                   func.max(MetricBucket.last_step).label("step"))
            .where(MetricBucket.run_id.in_(run_ids))
            .group_by(MetricBucket.run_id, MetricBucket.key).subquery())
    rows = session.execute(select(Metric.run_id, Metric.key, Metric.step, Metric.value,
                                  Metric.wall_time).join(last, and_(
                                      Metric.run_id == last.c.run_id,
                                      Metric.key == last.c.key,
                                      Metric.step == last.c.step))).all()
    for run_id, key, step, value, wall in sorted(rows):
        out[run_id].append({"key": key, "value": value, "timestamp": int(wall * 1000),
                            "step": step})
    return out


def metric_history(session: Session, run: Run, key: str, *, max_results: int,
                   page_token: str | None) -> tuple[list[dict[str, Any]], str | None]:
    offset = _offset(page_token)
    rows = session.execute(select(Metric.step, Metric.value, Metric.wall_time).where(
        Metric.run_id == run.id, Metric.key == key).order_by(Metric.step)
        .limit(max_results + 1).offset(offset)).all()
    more = len(rows) > max_results
    points = [{"key": key, "value": v, "timestamp": int(w * 1000), "step": s}
              for s, v, w in rows[:max_results]]
    return points, _token(offset + max_results) if more else None


def experiment_of(session: Session, run: Run) -> int:
    """The experiment a run is in: an MLflow run's own; a neuroreg run's, the one whose
    tag it carries, else Default."""
    own = _state(run)["experiment_id"]
    if own is not None:
        return int(own)
    tags = tags_of(session, [run.id])[run.id]
    found = session.execute(select(MlflowExperiment.id).where(
        MlflowExperiment.tag.in_(tags)).order_by(MlflowExperiment.id)).scalars().first()
    return DEFAULT_EXPERIMENT if found is None else int(found)


def run_json(session: Session, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """MLflow's Run (info and data) of each run."""
    metrics = latest_metrics(session, [r.id for r in runs])
    tags = tags_of(session, [r.id for r in runs])
    # a neuroreg run's experiment: the one whose tag it carries (an MLflow run keeps its own)
    carried = {t for r in runs if _state(r)["experiment_id"] is None for t in tags[r.id]}
    tag_exp = dict(session.execute(select(MlflowExperiment.tag, MlflowExperiment.id).where(
        MlflowExperiment.tag.in_(carried))).all()) if carried else {}
    out = []
    for run in runs:
        state = _state(run)
        exp = state["experiment_id"]
        if exp is None:  # a neuroreg run: in the experiment of a tag it has, else Default
            exp = next((tag_exp[t] for t in tags[run.id] if t in tag_exp), DEFAULT_EXPERIMENT)
        params = (run.config or {}).get("params") if run.kind == "external" else run.config
        run_tags = {**{k: str(v) for k, v in state["tags"].items()},
                    "mlflow.runName": run.name, "mlflow.user": run.owner.name}
        out.append({
            "info": {"run_id": str(run.id), "run_uuid": str(run.id), "run_name": run.name,
                     "experiment_id": str(exp), "user_id": run.owner.name,
                     "status": STATUS_OUT[run.status],
                     "start_time": millis(run.started_at or run.created_at),
                     "end_time": millis(run.finished_at),
                     "artifact_uri": f"mlflow-artifacts:/{exp}/{run.id}/artifacts",
                     "lifecycle_stage": "deleted" if state["deleted"] else "active"},
            "data": {"metrics": metrics[run.id],
                     "params": [{"key": k, "value": v if isinstance(v, str) else json.dumps(v)}
                                for k, v in sorted((params or {}).items())],
                     "tags": [{"key": k, "value": v} for k, v in sorted(run_tags.items())]},
            "inputs": {}, "outputs": {}})
    return out


# -- search ---------------------------------------------------------------------------------

_ATTRIBUTES = {"status": "status", "run_name": "name", "start_time": "started",
               "end_time": "finished", "run_id": "id", "user_id": "owner",
               "created": "created"}
_CLAUSE = re.compile(
    r"(?P<entity>metrics?|params?|parameters?|tags?|attributes?|attr|run)\."
    r"(?P<key>`[^`]+`|\"[^\"]+\"|[\w./\-\[\]:]+)\s*"
    r"(?P<op>=|==|!=|<=|>=|<|>|NOT\s+IN|IN|ILIKE|LIKE)\s*(?P<value>.+)",
    re.IGNORECASE | re.DOTALL)


def _literal(raw: str) -> Any:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", raw):
        return _not_literal(raw)
    value = float(raw)
    return value if math.isfinite(value) else _not_literal(raw)


def _not_literal(raw: str) -> Any:
    raise invalid(f"Invalid filter value {raw!r}: a number or a quoted string")


def _q(value: Any) -> str:
    """A value written in neuroreg's query language."""
    if isinstance(value, bool):
        return json.dumps(str(value))
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def translate_filter(filter_string: str | None) -> str:
    """MLflow's search filter as a neuroreg query (:mod:`core.store.query`): metrics,
    params, ``tags.mlflow.runName`` and the attributes status, run_name, start_time,
    end_time, run_id (IN) and user_id; anything else is refused, naming it."""
    parts = []
    for clause in _clauses(filter_string):
        m = _CLAUSE.fullmatch(clause.strip())
        if m is None:
            raise invalid(f"Invalid clause {clause!r}: expected <metrics|params|tags|"
                          "attributes>.<key> <comparator> <value>")
        entity = m.group("entity").lower().rstrip("s")
        key = m.group("key").strip("`\"")
        op = re.sub(r"\s+", " ", m.group("op").upper())
        raw = m.group("value").strip()
        if op in ("IN", "NOT IN"):
            inner = re.fullmatch(r"\((.*)\)", raw, re.DOTALL)
            if inner is None or entity not in ("attribute", "attr", "run") or key != "run_id":
                raise invalid(f"Invalid clause {clause!r}: IN takes a list, of "
                              "attributes.run_id only")
            ids = [_literal(v) for v in inner.group(1).split(",") if v.strip()]
            if not ids or not all(isinstance(i, str) and i.isdigit() for i in ids):
                raise invalid(f"Invalid clause {clause!r}: run ids are quoted digits")
            any_of = " or ".join(f"id = {int(i)}" for i in ids)
            parts.append(f"({any_of})" if op == "IN" else f"not ({any_of})")
            continue
        value = _literal(raw)
        if op in ("LIKE", "ILIKE"):
            inner_text = value[1:-1] if isinstance(value, str) and len(value) >= 2 else None
            if op == "LIKE" or inner_text is None or not (value.startswith("%")
                                                          and value.endswith("%")) \
                    or "%" in inner_text or "_" in inner_text:
                raise invalid(f"Invalid clause {clause!r}: neuroreg matches text by "
                              "ILIKE '%part%' (contains, any case) only")
            op, value = "~", inner_text
        op = "=" if op == "==" else op
        if entity == "metric":
            if not isinstance(value, float) or op == "~":
                raise invalid(f"Invalid clause {clause!r}: a metric compares with a number")
            parts.append(f"metrics.{key} {op} {_q(value)}")
        elif entity in ("param", "parameter"):
            if op not in ("=", "!=", "~"):
                raise invalid(f"Invalid clause {clause!r}: params are text: =, != or ILIKE")
            shown = value if isinstance(value, str) else _num_text(value)
            parts.append(f"config.params.{key} {op} {_q(shown)}")
        elif entity == "tag":
            if key != "mlflow.runName":
                raise invalid(f"Invalid clause {clause!r}: neuroreg searches run tags by "
                              "tags.mlflow.runName only; an experiment is a neuroreg tag "
                              "(experiment_ids)")
            parts.append(f"name {op} {_q(value)}")
        else:
            if key not in _ATTRIBUTES:
                raise invalid(f"Invalid attribute key {key!r}: one of {list(_ATTRIBUTES)}")
            field = _ATTRIBUTES[key]
            if field == "status":
                if value not in STATUS_IN or op not in ("=", "!="):
                    raise invalid(f"Invalid clause {clause!r}: status = one of "
                                  f"{list(STATUS_IN)}")
                value = STATUS_IN[value].value
            elif field in ("started", "finished", "created"):
                if not isinstance(value, float):
                    raise invalid(f"Invalid clause {clause!r}: a time in milliseconds")
                value = from_millis(int(value)).isoformat()
            elif field == "id":
                if not (isinstance(value, str) and value.isdigit()):
                    raise invalid(f"Invalid clause {clause!r}: a run id is quoted digits")
                value = int(value)
            parts.append(f"{field} {op} {_q(value)}")
    return " and ".join(parts)


def _num_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def order_by_sort(order_by: Sequence[str]) -> tuple[str | None, bool]:
    """MLflow's order_by (one clause) as neuroreg's sort field and direction."""
    if not order_by:
        return None, True
    if len(order_by) > 1:
        raise invalid("neuroreg orders a search by one field; got "
                      f"{len(order_by)}: {list(order_by)}")
    m = re.fullmatch(r"(metrics?|params?|attributes?|attr|run)\.(`[^`]+`|[\w./\-\[\]:]+)"
                     r"(?:\s+(ASC|DESC))?", order_by[0].strip(), re.IGNORECASE)
    if m is None:
        raise invalid(f"Invalid order_by clause {order_by[0]!r}")
    entity, key = m.group(1).lower().rstrip("s"), m.group(2).strip("`")
    descending = (m.group(3) or "ASC").upper() == "DESC"
    if entity == "metric":
        return f"metrics.{key}.last", descending
    if entity == "param":
        return f"config.params.{key}", descending
    if key in _ATTRIBUTES and _ATTRIBUTES[key] != "owner":
        return _ATTRIBUTES[key], descending
    raise invalid(f"Invalid order_by clause {order_by[0]!r}")


def search_runs(session: Session, *, experiment_ids: Sequence[Any], filter_string: str | None,
                view_type: str, max_results: int, order_by: Sequence[str],
                page_token: str | None, where: Any = None) -> tuple[list[Run], str | None]:
    """Runs of the experiments (their tags), by MLflow's filter translated into one neuroreg
    query, so the search runs in SQL like any other."""
    from core.store.query import QueryError
    from core.store.runs import list_runs

    if not isinstance(experiment_ids, list) or not experiment_ids:
        raise invalid("Missing value for required parameter 'experiment_ids'")
    if not 1 <= max_results <= MAX_RESULTS:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied. It "
                      f"must be at most {MAX_RESULTS}")
    exps = [get_experiment(session, experiment_id({"id": e}, "id")) for e in experiment_ids]
    clauses = ["(" + " or ".join(f"tag = {_q(e.tag)}" for e in exps) + ")"]
    if view_type in ("", "ACTIVE_ONLY", "1"):
        clauses.append(f"not tag = {_q(DELETED_TAG)}")
    elif view_type in ("DELETED_ONLY", "2"):
        clauses.append(f"tag = {_q(DELETED_TAG)}")
    elif view_type not in ("ALL", "3"):
        raise invalid(f"Invalid value {view_type!r} for parameter 'run_view_type'")
    extra = translate_filter(filter_string)
    if extra:
        clauses.append(f"({extra})")
    sort, descending = order_by_sort(order_by)
    offset = _offset(page_token)
    page = min(max_results, PAGE)  # more comes by the token, as from MLflow's server
    try:
        runs, total = list_runs(session, q=" and ".join(clauses), sort=sort,
                                descending=descending, limit=page, offset=offset,
                                where=where)
    except QueryError as exc:
        raise invalid(f"Invalid filter {filter_string!r}: {exc.message}") from None
    more = offset + len(runs) < total
    return list(runs), _token(offset + page) if more else None
