"""MLflow runs as a source of ``neuroreg import mlflow --from URI``: a running MLflow
tracking server (its REST API, ``http(s)://…``) or an ``mlruns/`` folder (MLflow's file
store, ``file:…`` or a path), read without MLflow installed.

Each MLflow run becomes an external run, as if its script had logged into neuroreg's
MLflow endpoint (:mod:`core.mlflow`): params are ``config.params``, ``mlflow.runName``
its name, the other tags ``provenance.mlflow.tags``, the status RUNNING → running,
FINISHED → succeeded, FAILED → failed, KILLED → cancelled, the start and end times its
own, each metric point with its step and timestamp, each artifact with its path. Its
experiment is neuroreg's MLflow experiment of that name (created when missing), whose
tag the run carries; a deleted run (``--deleted``) carries ``mlflow:deleted`` too.
``provenance.mlflow_source`` keeps where it came from (URI, run id, experiment, user).
Its key is ``mlflow-<run id>``: importing the same run again updates it.

What MLflow holds and neuroreg does not keep is said, per run, never dropped silently:
a point that is not finite or has a negative step (skipped), a metric key or artifact
name neuroreg's API does not take (skipped), and several values at one step (neuroreg
keeps one value per step: the latest, or with ``repeated_steps="sequence"`` each point
gets its place in the series as its step).
"""

from __future__ import annotations

import math
import mimetypes
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import yaml

from neuroreg.client import Client
from neuroreg.names import artifact_path_problem
from neuroreg.sync import _sha256
from neuroreg.transfer import Artifact, SourceRun, TransferError

STATUS = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "succeeded",
          "FAILED": "failed", "KILLED": "cancelled"}
_FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_KEY = re.compile(r"[A-Za-z0-9_.:/\-\[\]]{1,128}")
MAX_STEP = 2**31 - 1
HISTORY_PAGE = 25_000  # MLflow's server answers at most 25,000 points a page
DELETED_TAG = "mlflow:deleted"


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


class _Run:
    """An MLflow run as a source reads it, before it becomes a :class:`SourceRun`."""

    def __init__(self, *, run_id: str, experiment_id: str, experiment: str, status: str,
                 start_time: int | None, end_time: int | None, deleted: bool, user: str,
                 run_name: str, params: dict[str, str], tags: dict[str, str],
                 artifact_uri: str) -> None:
        self.run_id, self.experiment_id, self.experiment = run_id, experiment_id, experiment
        self.status, self.start_time, self.end_time = status, start_time, end_time
        self.deleted, self.user, self.run_name = deleted, user, run_name
        self.params, self.tags, self.artifact_uri = params, tags, artifact_uri


class MlflowSource:
    """What both sources share: turning MLflow's runs into :class:`SourceRun` s."""

    uri: str

    def close(self) -> None:
        """Let go of what the source holds open (a server's connections)."""

    def experiments(self, wanted: list[str]) -> list[tuple[str, str]]:
        raise NotImplementedError

    def runs(self, experiment_id: str, name: str, *, deleted: bool) -> list[_Run]:
        raise NotImplementedError

    def history(self, run: _Run) -> dict[str, list[tuple[int, float, int]]]:
        """Each metric's (timestamp ms, value, step) points, in the order logged."""
        raise NotImplementedError

    def artifact_files(self, run: _Run) -> list[tuple[str, int | None]]:
        """(path, size) of every file under the run's artifact root."""
        raise NotImplementedError

    def fetch_artifact(self, run: _Run, path: str, workdir: Path) -> Path:
        """A local file with the artifact's bytes (a server's streamed into ``workdir``)."""
        raise NotImplementedError

    # --------------------------------------------------------------------------------
    def source_run(self, nr: Client, run: _Run, tags_of: dict[str, str], *,
                   repeated_steps: str = "last", workdir: Path) -> SourceRun:
        """``run`` read whole (its points into memory, its artifacts into ``workdir``),
        so that nothing of it is sent until all of it has been read."""
        notes: list[str] = []
        status = STATUS.get(run.status)
        if status is None:
            raise TransferError(f"{self.uri}: run {run.run_id} has status {run.status!r}, "
                                "which MLflow does not have")
        if run.status == "SCHEDULED":
            notes.append("SCHEDULED in MLflow: imported as running")
        finished = status in ("succeeded", "failed", "cancelled")
        start = run.start_time
        end = run.end_time if finished else None
        if start is None:
            raise TransferError(f"{self.uri}: run {run.run_id} has no start_time")
        if finished and end is None:
            end = start
            notes.append(f"{run.status} without an end time: its end is its start")
        points = self._points(run, repeated_steps, notes)
        files: list[Artifact] = []
        for path, _ in self.artifact_files(run):
            problem = artifact_path_problem(path)
            if problem:
                notes.append(f"artifact {path!r} skipped: {problem}")
                continue
            local = self.fetch_artifact(run, path, workdir)
            files.append(Artifact(name=path, media_type=_media_type(path),
                                  size_bytes=local.stat().st_size, sha256=_sha256(local),
                                  created_at=None,
                                  open=lambda p=local: open(p, "rb")))  # type: ignore[misc]
        tags = [tags_of[run.experiment_id]] + ([DELETED_TAG] if run.deleted else [])
        record = {
            "key": f"mlflow-{run.run_id}", "kind": "external",
            "name": (run.run_name or run.tags.get("mlflow.runName") or
                     f"mlflow-{run.run_id[:8]}")[:200],
            "status": status, "created_at": _iso(start), "started_at": _iso(start),
            "finished_at": _iso(end), "config": {"params": dict(run.params)}, "tags": tags,
            "provenance": {
                "mlflow": {"experiment_id": int(tags_of["id:" + run.experiment_id]),
                           "deleted": run.deleted,
                           "tags": {k: v for k, v in run.tags.items()
                                    if k != "mlflow.runName"}},
                "mlflow_source": {"uri": self.uri, "run_id": run.run_id,
                                  "experiment_id": run.experiment_id,
                                  "experiment": run.experiment, "user": run.user,
                                  "artifact_uri": run.artifact_uri}},
            "result": None, "error": None, "message": "",
            "progress": 1.0 if status == "succeeded" else 0.0,
        }
        return SourceRun(origin=f"mlflow run {run.run_id} ({run.experiment}/{record['name']})",
                         record=record, refs={}, points=lambda: iter(points),
                         lines=lambda: iter(()), artifacts=files, notes=notes)

    def _points(self, run: _Run, repeated_steps: str, notes: list[str]
                ) -> list[tuple[str, int, float, float]]:
        out: list[tuple[str, int, float, float]] = []
        for key, series in sorted(self.history(run).items()):
            if not _KEY.fullmatch(key):
                notes.append(f"metric {key!r} skipped ({_n(len(series), 'point')}): neuroreg's "
                             "metric keys are 1–128 of A-Z a-z 0-9 _ . : / - [ ]")
                continue
            kept = [(t, v, s) for t, v, s in series if math.isfinite(v)]
            if len(kept) < len(series):
                notes.append(f"metric {key!r}: {_n(len(series) - len(kept), 'point')} that "
                             "is not finite skipped" if len(series) - len(kept) == 1 else
                             f"metric {key!r}: {len(series) - len(kept):,} points that are "
                             "not finite skipped")
            steps = [s for _, _, s in kept]
            if len(set(steps)) < len(steps):
                if repeated_steps == "sequence":
                    kept = [(t, v, i) for i, (t, v, _) in enumerate(
                        sorted(kept, key=lambda p: (p[2], p[0])))]
                    notes.append(f"metric {key!r}: several values at one step; each point's "
                                 "place in the series is its step (--repeated-steps "
                                 "sequence)")
                else:
                    latest: dict[int, tuple[int, float, int]] = {}
                    for p in kept:  # in logged order: the last at a step wins
                        if p[2] not in latest or p[0] >= latest[p[2]][0]:
                            latest[p[2]] = p
                    notes.append(f"metric {key!r}: {_n(len(kept) - len(latest), 'value')} at "
                                 "a step that had another left out (neuroreg keeps one value "
                                 "per step, the latest; --repeated-steps sequence keeps all)")
                    kept = sorted(latest.values(), key=lambda p: p[2])
            bad = [p for p in kept if not 0 <= p[2] <= MAX_STEP]
            if bad:
                notes.append(f"metric {key!r}: {_n(len(bad), 'point')} at a step outside "
                             "0…2³¹−1 skipped")
            out += [(key, s, v, t / 1000) for t, v, s in kept if 0 <= s <= MAX_STEP]
        return out


def _n(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _media_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


# ---------------------------------------------------------------------------- server
class MlflowServer(MlflowSource):
    """A running MLflow tracking server, through its REST API (2.0, which MLflow 2 and 3
    serve). ``MLFLOW_TRACKING_TOKEN``, or ``MLFLOW_TRACKING_USERNAME`` and ``_PASSWORD``,
    authenticate as MLflow's client does."""

    def __init__(self, uri: str, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.uri = uri.rstrip("/")
        auth: Any = None
        headers = {}
        if os.environ.get("MLFLOW_TRACKING_TOKEN"):
            headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
        elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
            auth = (os.environ["MLFLOW_TRACKING_USERNAME"],
                    os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        self._http = httpx.Client(base_url=self.uri, timeout=timeout, headers=headers,
                                  auth=auth, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        return self._json("GET", path, params=params)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json("POST", path, json=body)

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        """The server's JSON answer; anything else (unreachable, an error, not JSON) is a
        :class:`TransferError` naming the URL and MLflow's reason."""
        try:
            res = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise TransferError(f"cannot reach the MLflow server at {self.uri} "
                                f"({type(exc).__name__}: {exc})") from None
        if not res.is_success:
            try:
                body = res.json()
                reason = f"{body.get('error_code')}: {body.get('message')}"
            except ValueError:
                reason = res.text[:200]
            raise TransferError(f"{self.uri}{path}: {res.status_code} {reason}")
        try:
            return res.json()
        except ValueError:
            raise TransferError(f"{self.uri}{path}: the answer is not JSON; is this an "
                                "MLflow tracking server?") from None

    def experiments(self, wanted: list[str]) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        token = None
        while True:
            body: dict[str, Any] = {"max_results": 1000, "view_type": "ALL"}
            if token:
                body["page_token"] = token
            page = self._post("/api/2.0/mlflow/experiments/search", body)
            found += [(e["experiment_id"], e["name"]) for e in page.get("experiments", [])
                      if e.get("lifecycle_stage") != "deleted" or wanted]
            token = page.get("next_page_token")
            if not token:
                break
        return _pick(found, wanted, self.uri)

    def runs(self, experiment_id: str, name: str, *, deleted: bool) -> list[_Run]:
        out: list[_Run] = []
        token = None
        while True:
            body: dict[str, Any] = {"experiment_ids": [experiment_id], "max_results": 1000,
                                    "run_view_type": "ALL" if deleted else "ACTIVE_ONLY"}
            if token:
                body["page_token"] = token
            page = self._post("/api/2.0/mlflow/runs/search", body)
            for r in page.get("runs", []):
                info, data = r["info"], r.get("data", {})
                tags = {t["key"]: t.get("value", "") for t in data.get("tags", [])}
                out.append(_Run(
                    run_id=info["run_id"], experiment_id=experiment_id, experiment=name,
                    status=info.get("status", "RUNNING"),
                    start_time=_int(info.get("start_time")),
                    end_time=_int(info.get("end_time")),
                    deleted=info.get("lifecycle_stage") == "deleted",
                    user=info.get("user_id", ""), run_name=info.get("run_name", ""),
                    params={p["key"]: p.get("value", "") for p in data.get("params", [])},
                    tags=tags, artifact_uri=info.get("artifact_uri", "")))
            token = page.get("next_page_token")
            if not token:
                return out

    def history(self, run: _Run) -> dict[str, list[tuple[int, float, int]]]:
        keys = self._metric_keys(run)
        out: dict[str, list[tuple[int, float, int]]] = {}
        for key in keys:
            series: list[tuple[int, float, int]] = []
            token = None
            while True:
                params: dict[str, Any] = {"run_id": run.run_id, "metric_key": key,
                                          "max_results": HISTORY_PAGE}
                if token:
                    params["page_token"] = token
                page = self._get("/api/2.0/mlflow/metrics/get-history", params)
                series += [(int(m.get("timestamp", 0)), _value(m.get("value")),
                            int(m.get("step", 0))) for m in page.get("metrics", [])]
                token = page.get("next_page_token")
                if not token:
                    break
            out[key] = series
        return out

    def _metric_keys(self, run: _Run) -> list[str]:
        got = self._get("/api/2.0/mlflow/runs/get", {"run_id": run.run_id})
        return sorted({m["key"] for m in got["run"].get("data", {}).get("metrics", [])})

    def artifact_files(self, run: _Run) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []
        todo = [""]
        while todo:
            path = todo.pop()
            params: dict[str, Any] = {"run_id": run.run_id}
            if path:
                params["path"] = path
            listed = self._get("/api/2.0/mlflow/artifacts/list", params)
            for f in listed.get("files", []):
                if f.get("is_dir"):
                    todo.append(f["path"])
                else:
                    out.append((f["path"], _int(f.get("file_size"))))
        return sorted(out)

    def fetch_artifact(self, run: _Run, path: str, workdir: Path) -> Path:
        local = workdir / run.run_id / path
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._http.stream("GET", "/get-artifact", params={
                    "path": path, "run_uuid": run.run_id}) as res:
                if not res.is_success:
                    res.read()
                    raise TransferError(f"{self.uri}: run {run.run_id}'s artifact {path!r}: "
                                        f"{res.status_code} {res.text[:200]}")
                with open(local, "wb") as fh:
                    for block in res.iter_bytes(1 << 20):
                        fh.write(block)
        except httpx.TransportError as exc:
            raise TransferError(f"cannot reach the MLflow server at {self.uri} "
                                f"({type(exc).__name__}: {exc})") from None
        return local


def _int(v: Any) -> int | None:
    return None if v is None or v == "" else int(v)


def _value(v: Any) -> float:
    """A metric value as MLflow's JSON writes it (NaN and ±Infinity as strings or bare)."""
    if isinstance(v, str):
        return float(v.replace("Infinity", "inf"))
    return float(v)


def _pick(found: list[tuple[str, str]], wanted: list[str], where: str
          ) -> list[tuple[str, str]]:
    if not wanted:
        return found
    out = []
    for w in wanted:
        match = [e for e in found if w in e]
        if not match:
            names = ", ".join(f"{n} ({i})" for i, n in found[:20]) or "none"
            raise TransferError(f"--experiment: {where} has no experiment {w!r} (it has: "
                                f"{names})")
        out += [m for m in match if m not in out]
    return out


# ---------------------------------------------------------------------------- folder
class MlrunsFolder(MlflowSource):
    """An ``mlruns/`` folder: MLflow's file store (``<experiment>/meta.yaml``,
    ``<experiment>/<run>/{meta.yaml,params,tags,metrics,artifacts}``; deleted experiments
    under ``.trash``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.resolve().as_uri()
        if not root.is_dir():
            raise TransferError(f"{root}: no such folder (an mlruns/ folder, or an MLflow "
                                "server's http(s):// URL)")

    def _yaml(self, path: Path) -> dict[str, Any]:
        try:
            got = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TransferError(f"{path}: missing") from None
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise TransferError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(got, dict):
            raise TransferError(f"{path}: not a YAML mapping")
        return got

    def _experiment_dirs(self) -> list[Path]:
        dirs = [p for p in self.root.iterdir() if p.is_dir() and p.name.isdigit()]
        trash = self.root / ".trash"
        if trash.is_dir():
            dirs += [p for p in trash.iterdir() if p.is_dir() and p.name.isdigit()]
        return sorted(dirs, key=lambda p: int(p.name))

    def experiments(self, wanted: list[str]) -> list[tuple[str, str]]:
        found = []
        for d in self._experiment_dirs():
            meta = self._yaml(d / "meta.yaml")
            if meta.get("lifecycle_stage") == "deleted" and not wanted:
                continue
            found.append((str(meta.get("experiment_id", d.name)), str(meta.get("name", ""))))
        if not found and not wanted:
            raise TransferError(f"{self.root}: no experiments (is it an mlruns/ folder?)")
        return _pick(found, wanted, str(self.root))

    def _experiment_dir(self, experiment_id: str) -> Path:
        for d in self._experiment_dirs():
            if d.name == experiment_id:
                return d
        raise TransferError(f"{self.root}: no folder for experiment {experiment_id}")

    def runs(self, experiment_id: str, name: str, *, deleted: bool) -> list[_Run]:
        out = []
        exp = self._experiment_dir(experiment_id)
        for d in sorted(exp.iterdir()):
            if not d.is_dir() or d.name in ("models", "traces", "datasets") or \
                    d.name.startswith("."):
                continue
            meta = self._yaml(d / "meta.yaml")
            run_id = str(meta.get("run_id") or meta.get("run_uuid") or "")
            if run_id != d.name:
                raise TransferError(f"{d / 'meta.yaml'}: run_id {run_id!r} is not its "
                                    f"folder's name {d.name!r}")
            is_deleted = meta.get("lifecycle_stage") == "deleted"
            if is_deleted and not deleted:
                continue
            status = meta.get("status", 1)
            out.append(_Run(
                run_id=run_id, experiment_id=experiment_id, experiment=name,
                status=_FILE_STATUS.get(status, str(status)) if isinstance(status, int)
                else str(status),
                start_time=_int(meta.get("start_time")), end_time=_int(meta.get("end_time")),
                deleted=is_deleted, user=str(meta.get("user_id") or ""),
                run_name=str(meta.get("run_name") or ""),
                params=self._values(d / "params"), tags=self._values(d / "tags"),
                artifact_uri=str(meta.get("artifact_uri") or "")))
        return out

    def _values(self, folder: Path) -> dict[str, str]:
        """A params/ or tags/ folder: one file per key (a key with '/' in folders)."""
        if not folder.is_dir():
            return {}
        out = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            try:
                out[path.relative_to(folder).as_posix()] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise TransferError(f"{path}: not UTF-8 text") from None
        return out

    def _run_dir(self, run: _Run) -> Path:
        return self._experiment_dir(run.experiment_id) / run.run_id

    def history(self, run: _Run) -> dict[str, list[tuple[int, float, int]]]:
        folder = self._run_dir(run) / "metrics"
        out: dict[str, list[tuple[int, float, int]]] = {}
        if not folder.is_dir():
            return out
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            series = []
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, start=1):
                    parts = line.split()
                    if not parts:
                        continue
                    try:
                        t, v = int(parts[0]), float(parts[1])
                        s = int(parts[2]) if len(parts) > 2 else 0
                        if len(parts) > 3:
                            raise ValueError
                    except (ValueError, IndexError):
                        raise TransferError(f"{path}:{n}: not 'timestamp value step' "
                                            f"({line.strip()[:80]!r})") from None
                    series.append((t, v, s))
            out[path.relative_to(folder).as_posix()] = series
        return out

    def _artifact_root(self, run: _Run) -> Path:
        uri = run.artifact_uri
        if uri.startswith("file:"):
            root = Path(unquote(urlparse(uri).path))
            if root.is_dir():
                return root
        return self._run_dir(run) / "artifacts"  # a copied mlruns/: beside its meta.yaml

    def artifact_files(self, run: _Run) -> list[tuple[str, int | None]]:
        root = self._artifact_root(run)
        if not root.is_dir():
            return []
        return sorted((p.relative_to(root).as_posix(), p.stat().st_size)
                      for p in root.rglob("*") if p.is_file())

    def fetch_artifact(self, run: _Run, path: str, workdir: Path) -> Path:
        return self._artifact_root(run) / path  # read in place


def open_source(uri: str) -> MlflowSource:
    """The source ``--from`` names: an http(s) URL (a tracking server), else a folder
    (``file:`` URI or path)."""
    if uri.startswith(("http://", "https://")):
        return MlflowServer(uri)
    if uri.startswith("file:"):
        return MlrunsFolder(Path(unquote(urlparse(uri).path)))
    if "://" in uri:
        raise TransferError(f"--from: {uri!r}: an MLflow server's http(s):// URL or an "
                            "mlruns/ folder (a path or file: URI)")
    return MlrunsFolder(Path(uri))


def experiment_tags(nr: Client, names: list[tuple[str, str]]) -> dict[str, str]:
    """For each source experiment (id, name): the neuroreg tag of neuroreg's MLflow
    experiment of that name (created when missing), as ``tags[id]``, and its id as
    ``tags["id:" + id]``."""
    out: dict[str, str] = {}
    for exp_id, name in names:
        res = nr._http.get("/api/2.0/mlflow/experiments/get-by-name",
                           params={"experiment_name": name})
        if res.status_code == 404:
            made = nr._http.post("/api/2.0/mlflow/experiments/create", json={"name": name})
            if not made.is_success:
                raise TransferError(f"experiment {name!r}: neuroreg refused to create it "
                                    f"({made.status_code} {made.text[:200]})")
            res = nr._http.get("/api/2.0/mlflow/experiments/get-by-name",
                               params={"experiment_name": name})
        if not res.is_success:
            raise TransferError(f"experiment {name!r}: {res.status_code} {res.text[:200]}")
        exp = res.json()["experiment"]
        tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
        out[exp_id] = tags["neuroreg.tag"]
        out["id:" + exp_id] = exp["experiment_id"]
    return out


def read_all(source: MlflowSource, nr: Client, experiments: list[str], *, deleted: bool,
             repeated_steps: str, workdir: Path) -> Iterator[SourceRun]:
    """Each selected run, read whole before it is yielded. A folder is read whole first
    (every run), so that a damaged file stops the import before anything is stored."""
    exps = source.experiments(experiments)
    runs = [r for e, n in exps for r in source.runs(e, n, deleted=deleted)]
    if isinstance(source, MlrunsFolder):
        for run in runs:  # parse every file now: nothing is stored from a damaged folder
            source.history(run)
            source.artifact_files(run)
    tags = experiment_tags(nr, exps)
    for run in runs:
        yield source.source_run(nr, run, tags, repeated_steps=repeated_steps, workdir=workdir)


__all__ = ["MlflowServer", "MlrunsFolder", "open_source", "read_all"]
