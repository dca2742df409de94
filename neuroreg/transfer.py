"""``neuroreg export`` and ``neuroreg import``: runs leave a server in an open layout and
come back whole — into the same server, another one, or from MLflow
(:mod:`neuroreg.transfer_mlflow`). docs/transfer.md describes the layout.

An export is a folder::

    neuroreg-export.json        the manifest: format, version, what was asked, the runs
    runs/<id>/run.json          the run: key, kind, name, owner, status, times, config,
                                tags, provenance, result, error, and "refs": the key of
                                every run it names (parent, input, config fields)
    runs/<id>/metrics.csv       key,step,value,wall_time — every point, floats written
                                so that they read back to the same bits
    runs/<id>/logs.jsonl        one line of its log per line: seq, stream, time, line
    runs/<id>/artifacts.json    name, media_type, size_bytes, sha256, created_at each
    runs/<id>/artifacts/<name>  the artifact's bytes (a name may hold folders)

A run's ``key`` names it across servers: its ``client_key`` when it has one (an imported
run keeps the key it was imported by), else ``nr-<id>-<hash of id and creation time>``.
Importing a run sends its key; the server answers with the importing member's run of
that key when there is one and updates it, so importing twice stores each run, point,
line and artifact once. An export holds the runs it was asked for and every run they
name (a study's runs, a model's target, an evaluation's model), so it imports alone.

An import checks the whole source before it writes anything: a damaged file (a metrics
line that is not four fields, a run.json that is not JSON, an artifact whose bytes do not
match its sha256) names the file and line, and nothing is stored. While a run is written
it carries the tag ``import:partial``; the last write of its record takes it off, so a
run cut short by a lost connection is found with ``tag = "import:partial"`` and the next
import completes it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from neuroreg.client import Client, _raise_for
from neuroreg.sync import _sha256

FORMAT = "neuroreg-export"
VERSION = 1
MANIFEST = "neuroreg-export.json"
PARTIAL_TAG = "import:partial"
POINTS_PAGE = 50_000  # points an export reads per request
POINTS_BATCH = 5_000  # points an import sends per request (the client's batch)
LINES_PAGE = 5_000  # log lines per request, both ways
MAX_LINES_BYTES = 8 << 20  # log text an import sends per request (the server takes 16 MiB)
RECORD_FIELDS = ("key", "kind", "name", "status", "created_at", "started_at", "finished_at",
                 "config", "tags", "provenance", "result", "error", "message", "progress")
METRICS_HEADER = ["key", "step", "value", "wall_time"]


class TransferError(RuntimeError):
    """What about a source or a destination stops an import or export: one line, naming
    the file (and line) or the URL."""


@dataclass
class Artifact:
    name: str
    media_type: str
    size_bytes: int
    sha256: str
    created_at: str | None
    open: Callable[[], io.BufferedIOBase]  # its bytes, read once per call


@dataclass
class SourceRun:
    """One run as a source holds it: its record (``run.json``'s fields, ids the source's
    own), its references by key, and readers of its points, log lines and artifacts."""

    origin: str  # how the source names it: an id, an MLflow run id
    record: dict[str, Any]
    refs: dict[str, str]  # "parent_id" / "input_run_id" / "config.<field>" → the run's key
    points: Callable[[], Iterator[tuple[str, int, float, float]]]
    lines: Callable[[], Iterator[dict[str, Any]]]
    artifacts: list[Artifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the source had that is not kept


@dataclass
class RunImported:
    """What one run's import did."""

    origin: str
    key: str
    run_id: int | None = None
    created: bool = False
    points: int = 0
    lines: int = 0
    artifacts: int = 0
    artifacts_unchanged: int = 0
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = "created" if self.created else "updated"
        parts = [_n(self.points, "point"), _n(self.lines, "log line"),
                 _n(self.artifacts, "artifact") + " sent"]
        if self.artifacts_unchanged:
            parts.append(f"{self.artifacts_unchanged} unchanged")
        return f"{self.origin} → run {self.run_id} ({what}): " + ", ".join(parts)


def _n(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------- export
def run_key(run: dict[str, Any]) -> str:
    """The key a run is exported (and imported) by: see the module's docstring."""
    if run.get("client_key"):
        return str(run["client_key"])
    digest = hashlib.sha256(f"{run['id']}|{run['created_at']}".encode()).hexdigest()[:16]
    return f"nr-{run['id']}-{digest}"


def _dotted(config: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(config, dict):
            return None
        config = config.get(part)
    return config


def _names(run: dict[str, Any], reads: dict[str, dict[str, str]]) -> dict[str, int]:
    """Every run ``run`` names: "parent_id", "input_run_id", "config.<field>" → its id."""
    out = {f: run[f] for f in ("parent_id", "input_run_id") if run.get(f) is not None}
    for path in reads.get(run["kind"], {}):
        ref = _dotted(run.get("config"), path)
        if isinstance(ref, int) and not isinstance(ref, bool):
            out[f"config.{path}"] = ref
    return out


def select_runs(nr: Client, ids: Iterable[int] = (), *, query: str | None = None,
                study: int | None = None) -> list[dict[str, Any]]:
    """The runs asked for (ids, a query's matches, a study with its runs) and every run
    they name, in an order where each run comes after the runs it names."""
    reads = {k["name"]: k.get("reads", {}) for k in nr.kinds()}
    wanted: dict[int, dict[str, Any]] = {}
    todo: list[int] = list(ids)
    if query is not None:
        todo += [r["id"] for r in nr.runs(query)]
    if study is not None:
        run = nr.run(study)
        if run["kind"] != "study":
            raise TransferError(f"--study: run {study} is a {run['kind']} run, not a study")
        todo += [study] + [r["id"] for r in nr.runs(parent_id=study)]
    while todo:
        run_id = todo.pop()
        if run_id in wanted:
            continue
        run = nr.run(run_id)
        wanted[run_id] = run
        todo += [i for i in _names(run, reads).values() if i not in wanted]
        if run["kind"] == "study":
            todo += [r["id"] for r in nr.runs(parent_id=run_id) if r["id"] not in wanted]
    order: list[dict[str, Any]] = []
    placed: set[int] = set()

    def place(run: dict[str, Any], path: tuple[int, ...] = ()) -> None:
        if run["id"] in placed or run["id"] in path:
            return
        for ref in _names(run, reads).values():
            if ref in wanted:
                place(wanted[ref], (*path, run["id"]))
        placed.add(run["id"])
        order.append(run)

    for run in sorted(wanted.values(), key=lambda r: r["id"]):
        place(run)
    for run in order:
        run["_refs"] = {f: i for f, i in _names(run, reads).items()}
    return order


def _float(v: float) -> str:
    return repr(float(v))


def export(nr: Client, runs: list[dict[str, Any]], dest: Path, *, artifacts: bool = True,
           selection: dict[str, Any] | None = None,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write ``runs`` (from :func:`select_runs`) into the empty or new folder ``dest``;
    returns the manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise TransferError(f"{dest}: not empty; export into a new or empty folder")
    keys = {r["id"]: run_key(r) for r in runs}
    listed: list[dict[str, Any]] = []
    for run in runs:
        folder = dest / "runs" / str(run["id"])
        folder.mkdir(parents=True)
        counts = _export_run(nr, run, folder, keys, artifacts=artifacts)
        listed.append({"id": run["id"], "key": keys[run["id"]], "kind": run["kind"],
                       "name": run["name"], "folder": f"runs/{run['id']}", **counts})
        if progress:
            progress(f"run {run['id']} ({run['kind']}): {counts['points']:,} points, "
                     f"{counts['lines']:,} log lines, {counts['artifacts']} artifacts")
    server = str(nr._http.base_url).rstrip("/")
    manifest = {"format": FORMAT, "version": VERSION,
                "exported_at": datetime.now(UTC).isoformat(), "server": server,
                "selection": selection or {}, "artifacts": artifacts, "runs": listed}
    _write_json(dest / MANIFEST, manifest)
    return manifest


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                    encoding="utf-8")


def _export_run(nr: Client, run: dict[str, Any], folder: Path, keys: dict[int, str], *,
                artifacts: bool) -> dict[str, int]:
    prov = nr.provenance(run["id"])
    record = {f: run.get(f) for f in RECORD_FIELDS if f not in ("key", "provenance")}
    record.update(key=keys[run["id"]], id=run["id"], owner=run["owner"], provenance=prov,
                  parent_id=run.get("parent_id"), input_run_id=run.get("input_run_id"),
                  refs={f: keys[i] for f, i in run["_refs"].items() if i in keys})
    _write_json(folder / "run.json", record)
    n_points = 0
    with open(folder / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(METRICS_HEADER)
        for key in sorted(k["key"] for k in nr._call("GET", f"/api/runs/{run['id']}/metrics")):
            after = -1
            while True:
                page = nr._call("GET", f"/api/export/runs/{run['id']}/points/{quote(key)}",
                                params={"after": after, "limit": POINTS_PAGE})
                for s, v, w in zip(page["steps"], page["values"], page["wall_times"],
                                   strict=True):
                    out.writerow([key, s, _float(v), _float(w)])
                n_points += len(page["steps"])
                if page["next_after"] is None:
                    break
                after = page["next_after"]
    n_lines = 0
    with open(folder / "logs.jsonl", "w", encoding="utf-8") as fh:
        after = -1
        while True:
            page = nr._call("GET", f"/api/runs/{run['id']}/logs",
                            params={"after": after, "limit": LINES_PAGE})
            for ln in page["lines"]:
                fh.write(json.dumps({k: ln[k] for k in ("seq", "stream", "time", "line")},
                                    ensure_ascii=False) + "\n")
            n_lines += len(page["lines"])
            if not page["lines"] or page["next_after"] == after:
                break
            after = page["next_after"]
    rows = nr.artifacts(run["id"]) if artifacts else []
    _write_json(folder / "artifacts.json", [
        {k: a[k] for k in ("name", "media_type", "size_bytes", "sha256", "created_at")}
        for a in rows])
    for a in rows:
        target = folder / "artifacts" / a["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        nr.download(run["id"], a["name"], target)
        if _sha256(target) != a["sha256"]:
            raise TransferError(f"run {run['id']}: artifact {a['name']!r} arrived with other "
                                "bytes than the server's sha256; export again")
    return {"points": n_points, "lines": n_lines, "artifacts": len(rows)}


# ---------------------------------------------------------------------------- read
def read_export(root: Path) -> list[SourceRun]:
    """Every run of the export at ``root``, checked whole first: a damaged manifest,
    run.json, metrics line, log line or artifact raises a :class:`TransferError` naming
    the file and line, before anything is sent."""
    manifest = _load_json(root / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TransferError(f"{root / MANIFEST}: not a neuroreg export (format is not "
                            f"{FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise TransferError(f"{root / MANIFEST}: version {manifest.get('version')!r}; this "
                            f"neuroreg reads version {VERSION}")
    out: list[SourceRun] = []
    for i, entry in enumerate(manifest.get("runs") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("folder"), str):
            raise TransferError(f"{root / MANIFEST}: runs[{i}] has no folder")
        folder = (root / entry["folder"]).resolve()
        if not folder.is_relative_to(root.resolve()):
            raise TransferError(f"{root / MANIFEST}: runs[{i}].folder leaves the export")
        out.append(_read_run(folder))
    return out


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TransferError(f"{path}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TransferError(f"{path}: not JSON ({exc})") from None


def _read_run(folder: Path) -> SourceRun:
    record = _load_json(folder / "run.json")
    if not isinstance(record, dict):
        raise TransferError(f"{folder / 'run.json'}: not a JSON object")
    missing = [f for f in ("key", "kind", "status", "created_at") if not record.get(f)]
    if missing:
        raise TransferError(f"{folder / 'run.json'}: no {missing[0]}")
    metrics = folder / "metrics.csv"
    logs = folder / "logs.jsonl"
    for _ in _points(metrics):  # every line read now: a damaged one raises before a write
        pass
    for _ in _lines(logs):
        pass
    listed = _load_json(folder / "artifacts.json")
    if not isinstance(listed, list):
        raise TransferError(f"{folder / 'artifacts.json'}: not a JSON list")
    files: list[Artifact] = []
    for i, a in enumerate(listed):
        where = f"{folder / 'artifacts.json'}: [{i}]"
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise TransferError(f"{where} has no name")
        path = (folder / "artifacts" / a["name"]).resolve()
        if not path.is_relative_to((folder / "artifacts").resolve()):
            raise TransferError(f"{where}: {a['name']!r} leaves the run's folder")
        if not path.is_file():
            raise TransferError(f"{path}: missing (listed in artifacts.json)")
        if _sha256(path) != a.get("sha256"):
            raise TransferError(f"{path}: its bytes do not match the sha256 in "
                                "artifacts.json (damaged or changed)")
        files.append(Artifact(name=a["name"], media_type=str(a.get("media_type") or
                                                              "application/octet-stream"),
                              size_bytes=path.stat().st_size, sha256=a["sha256"],
                              created_at=a.get("created_at"),
                              open=lambda p=path: open(p, "rb")))  # type: ignore[misc]
    return SourceRun(origin=f"run {record.get('id', folder.name)}", record=record,
                     refs=dict(record.get("refs") or {}),
                     points=lambda: _points(metrics), lines=lambda: _lines(logs),
                     artifacts=files)


def _points(path: Path) -> Iterator[tuple[str, int, float, float]]:
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise TransferError(f"{path}: missing") from None
    with fh:
        rows = csv.reader(fh)
        if next(rows, None) != METRICS_HEADER:
            raise TransferError(f"{path}:1: the header is not {','.join(METRICS_HEADER)}")
        for n, row in enumerate(rows, start=2):
            try:
                key, step, value, wall = row
                yield key, int(step), float(value), float(wall)
            except ValueError:
                raise TransferError(f"{path}:{n}: not key,step,value,wall_time "
                                    f"({','.join(row)[:80]!r})") from None


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise TransferError(f"{path}: missing") from None
    with fh:
        for n, text in enumerate(fh, start=1):
            try:
                ln = json.loads(text)
                yield {"seq": int(ln["seq"]), "stream": str(ln["stream"]),
                       "time": float(ln["time"]), "line": str(ln["line"])}
            except (ValueError, KeyError, TypeError):
                raise TransferError(f"{path}:{n}: not a log line (seq, stream, time, "
                                    "line)") from None


# ---------------------------------------------------------------------------- import
def import_runs(nr: Client, runs: Iterable[SourceRun], *,
                progress: Callable[[RunImported], None] | None = None) -> list[RunImported]:
    """Send ``runs`` (each after the runs it names) to the server as the client's user;
    a run's references are rewritten to the ids its keys have there."""
    ids: dict[str, int] = {}
    done: list[RunImported] = []
    for src in runs:
        report = _import_one(nr, src, ids)
        done.append(report)
        if progress:
            progress(report)
    return done


def _record_body(src: SourceRun, ids: dict[str, int], *, partial: bool) -> dict[str, Any]:
    rec = src.record
    body = {f: rec.get(f) for f in RECORD_FIELDS}
    config: dict[str, Any] = json.loads(json.dumps(rec.get("config") or {}))
    body["config"] = config
    body["tags"] = list(rec.get("tags") or []) + ([PARTIAL_TAG] if partial else [])
    body["message"] = rec.get("message") or ""
    body["progress"] = rec.get("progress") or 0.0
    for ref, key in src.refs.items():
        if key not in ids:
            raise TransferError(f"{src.origin}: {ref} names run {key!r}, which is not in this "
                                "import (export it with the runs it names)")
        if ref in ("parent_id", "input_run_id"):
            body[ref] = ids[key]
        else:
            _set_dotted(config, ref[len("config."):], ids[key])
    return body


def _set_dotted(config: dict[str, Any], path: str, value: Any) -> None:
    *above, last = path.split(".")
    for part in above:
        config = config[part]
    config[last] = value


def _import_one(nr: Client, src: SourceRun, ids: dict[str, int]) -> RunImported:
    key = str(src.record["key"])
    report = RunImported(origin=src.origin, key=key, notes=list(src.notes))
    res = nr._http.post("/api/import/runs", json=_record_body(src, ids, partial=True))
    _raise_for(res)
    run, report.created = res.json(), res.status_code == 201
    report.run_id = run_id = int(run["id"])
    ids[key] = run_id
    batch: list[dict[str, Any]] = []
    for k, s, v, w in src.points():
        batch.append({"key": k, "step": s, "value": v, "wall_time": w})
        if len(batch) == POINTS_BATCH:
            report.points += nr._call("POST", f"/api/runs/{run_id}/metrics",
                                      json={"points": batch})["accepted"]
            batch = []
    if batch:
        report.points += nr._call("POST", f"/api/runs/{run_id}/metrics",
                                  json={"points": batch})["accepted"]
    lines: list[dict[str, Any]] = []
    size = 0
    for ln in src.lines():
        lines.append(ln)
        size += len(ln["line"]) * 2 + 100
        if len(lines) == LINES_PAGE or size > MAX_LINES_BYTES:
            report.lines += _send_lines(nr, run_id, lines)
            lines, size = [], 0
    if lines:
        report.lines += _send_lines(nr, run_id, lines)
    have = {a["name"]: a for a in nr.artifacts(run_id)}
    for a in src.artifacts:
        old = have.get(a.name)
        if old is not None and old["sha256"] == a.sha256 and old["media_type"] == a.media_type:
            report.artifacts_unchanged += 1
            continue
        params = {"created_at": a.created_at} if a.created_at else {}
        with a.open() as fh:
            nr._call("PUT", f"/api/import/runs/{run_id}/artifacts/{quote(a.name)}",
                     content=_chunks(fh), params=params,
                     headers={"content-type": a.media_type})
        report.artifacts += 1
    nr._call("POST", "/api/import/runs", json=_record_body(src, ids, partial=False))
    return report


def _send_lines(nr: Client, run_id: int, lines: list[dict[str, Any]]) -> int:
    out = nr._call("POST", f"/api/import/runs/{run_id}/logs", json={"lines": lines})
    return int(out["stored"]) + int(out["skipped"])


def _chunks(fh: io.BufferedIOBase) -> Iterator[bytes]:
    while block := fh.read(1 << 20):
        yield block


__all__ = ["FORMAT", "MANIFEST", "PARTIAL_TAG", "VERSION", "Artifact", "RunImported",
           "SourceRun", "TransferError", "export", "import_runs", "read_export", "run_key",
           "select_runs"]
