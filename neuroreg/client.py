"""A Python client for scripts and notebooks.

    from neuroreg.client import Client
    nr = Client()                                  # NEUROREG_API_URL / NEUROREG_TOKEN
    run = nr.submit("train", {"epochs": 5}, name="quick")
    nr.wait(run["id"])                             # a progress bar on stderr
    steps, values = nr.series(run["id"], "loss")   # numpy arrays
    df = nr.metrics_frame(run["id"])               # pandas: one column per key
    nr.download(run["id"], "model.pt", "model.pt")

Logging from your own training script (like ``mlflow.log_batch``):

    run = nr.create_external("my sweep", params={"lr": 0.1})
    nr.log_batch(run["id"], {"loss": 0.7, "acc": 0.5}, step=0)
    nr.log_batch(run["id"], [("loss", 1, 0.6), ("acc", 1, 0.55)])
    nr.log(run["id"], "epoch 1 done")               # lines in the run's log
    with nr.start_system_metrics(run["id"]):        # system/* series while it trains
        ...
    nr.finish(run["id"])

On a compute node without network, ``Client(offline=True)`` writes those calls to a local
spool (:mod:`neuroreg.spool`) and ``neuroreg sync`` uploads it later; ``offline="auto"``
logs online and falls back to the spool for a run whose server stops answering.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx

from neuroreg import spool as _spool
from neuroreg.names import check_artifact_name

if TYPE_CHECKING:
    import numpy as np

    from neuroreg.sync import RunSync

FINISHED = ("succeeded", "failed", "cancelled")
_BATCH = 5000  # points per request


class NeuroregError(RuntimeError):
    """The server refused a request; ``status`` and ``detail`` say why."""

    def __init__(self, status: int, detail: Any) -> None:
        if isinstance(detail, list):  # validation errors: one line per field
            detail = "; ".join(".".join(str(p) for p in e["loc"][1:]) + f": {e['msg']}"
                               for e in detail)
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


def _raise_for(res: httpx.Response) -> None:
    """A :class:`NeuroregError` with the server's reason, unless ``res`` succeeded."""
    if not res.is_success:
        try:
            detail = res.json().get("detail")
        except ValueError:
            detail = res.text
        raise NeuroregError(res.status_code, detail)


def _part(ref: str | int) -> str:
    """A name or id as one segment of a URL path (a ``/`` in it stays in the segment)."""
    return quote(str(ref), safe="")


def _unpack_report(data: bytes, out: Path) -> None:
    """A report's zip (one folder, ``study-<id>-report/``) unpacked into ``out`` without
    that folder; a name that would land outside ``out`` is refused."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = [i for i in z.infolist() if not i.is_dir()]
        for info in names:
            parts = Path(info.filename).parts[1:]
            if not parts or ".." in parts or Path(info.filename).is_absolute():
                raise NeuroregError(502, f"the report holds an unexpected name {info.filename!r}")
        out.mkdir(parents=True, exist_ok=True)
        for info in names:
            path = out.joinpath(*Path(info.filename).parts[1:])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(z.read(info))


class OfflineError(NeuroregError):
    """An offline client was asked for something only the server has."""

    def __init__(self, what: str) -> None:
        super().__init__(503, f"{what} needs the server; this client is offline (it spools "
                              "external runs' logging for `neuroreg sync`)")


RunRef = int | str  # a server run id, or an offline run's "offline:<key>"
_UNAVAILABLE = (502, 503, 504)  # a proxy or server that is up but cannot serve: unreachable


class Client:
    """Talks to a neuroreg server over its REST API.

    Args:
        url: the server (default ``NEUROREG_API_URL`` or ``http://127.0.0.1:8000``).
        token: an API token (default ``NEUROREG_TOKEN``, else this machine's admin token
            file when the server runs here).
        transport: an httpx transport (tests pass the app's).
        offline: ``True``: talk to no server; :meth:`create_external`, :meth:`log_batch`,
            :meth:`log`, :meth:`upload`, :meth:`update`, :meth:`finish` and
            :meth:`start_system_metrics` write to the spool, and their run ids are
            ``"offline:<key>"``; everything else raises :class:`OfflineError`.
            ``"auto"``: online, but a run whose server cannot be reached (no connection, a
            timeout, a 502/503/504) goes on in the spool from that call on, with a warning
            on stderr. Default ``NEUROREG_OFFLINE`` (``false``, ``true`` or ``auto``).
            ``neuroreg sync`` (or :meth:`sync`) uploads the spool.
        spool_dir: where (default ``NEUROREG_SPOOL_DIR``, else ``<data_dir>/spool``).
    """

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None,
                 offline: bool | Literal["auto"] | None = None,
                 spool_dir: str | os.PathLike[str] | None = None) -> None:
        if url is None or token is None or offline is None or spool_dir is None:
            from neuroreg.settings import ClientSettings

            settings = ClientSettings.from_env()
            url = url or settings.url
            if token is None:
                token = settings.api_token()
            offline = settings.offline if offline is None else offline
            spool_dir = spool_dir or settings.spool
        if offline not in (True, False, "auto"):
            raise ValueError(f"offline: {offline!r} is not True, False or 'auto'")
        self.offline: bool | Literal["auto"] = offline
        self.spool = _spool.Spool(spool_dir)
        if not token and offline is not True:
            raise NeuroregError(401, f"no token for {url}: pass token= or set NEUROREG_TOKEN, "
                                     "or NEUROREG_DATA_DIR to its data directory (its "
                                     "admin-token), or run `neuroreg up` on this machine")
        self._http = httpx.Client(base_url=url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"})
        self._log_seq: dict[int, int] = {}  # per run, the seq of the next line to send
        self._keys: dict[int, str] = {}  # client keys of the runs this client created
        self._lost: dict[int, _spool.SpoolRun] = {}  # online runs now going to the spool
        self.last_logs: dict[str, Any] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        if self.offline is True:
            raise OfflineError(f"{method} {path}")
        res = self._http.request(method, path, **kw)
        _raise_for(res)
        return None if res.status_code == 204 else res.json()

    # runs ---------------------------------------------------------------------------
    def submit(self, kind: str, config: Mapping[str, Any] | None = None, *, name: str = "",
               tags: Sequence[str] = (), project: str | int | None = None) -> dict[str, Any]:
        """Create and queue a run; returns it (``id``, ``status``, the full ``config``).
        ``project`` (a name or id): the project it goes into, else your default one."""
        body: dict[str, Any] = {"kind": kind, "name": name, "config": dict(config or {})}
        if project is not None:
            body["project"] = str(project)
        run = self._call("POST", "/api/runs", json=body)
        if tags:
            run = self.update(run["id"], tags=tags)
        return run

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create and queue a run as a run file describes it (``kind``, ``name``,
        ``config``, ``parent_id``, ``input_run_id``, ``project``)."""
        return self._call("POST", "/api/runs", json=dict(body))

    def kinds(self) -> list[dict[str, Any]]:
        """The run kinds the server takes: each one's config schema, the fields that name
        another run (``reads``) and its presets."""
        return self._call("GET", "/api/kinds")

    def check(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Check a run as :meth:`create` would, storing nothing: the config with its
        defaults, or the server's 422 (naming the field) as a :class:`NeuroregError`."""
        return self._call("POST", "/api/dry-run", json=dict(body))

    def run(self, run_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/runs/{run_id}")

    def runs_page(self, *, limit: int = 50, offset: int = 0, **filters: Any) -> dict[str, Any]:
        """One page of runs, newest first: ``items``, ``total``, ``limit``, ``offset``."""
        return self._call("GET", "/api/runs",
                          params={**filters, "limit": limit, "offset": offset})

    def runs(self, q: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Runs matching the query ``q`` (``'config.alpha >= 8 and metrics.test_acc.last
        > 0.9 and (tag = "fig4" or tag = "fig6")'``; see the README) and ``owner``,
        ``kind``, ``status``, ``tag``, ``parent_id`` or ``top_level=True`` (no study's
        children), all pages; ``sort="config.alpha"`` (``desc=True``) orders them.

        Raises:
            NeuroregError: 422 naming the position of what in ``q`` could not be read.
        """
        if q is not None:
            filters["q"] = q
        out: list[dict[str, Any]] = []
        while True:
            page = self.runs_page(limit=500, offset=len(out), **filters)
            out += page["items"]
            if len(out) >= page["total"] or not page["items"]:
                return out

    def runs_frame(self, q: str | None = None, columns: Sequence[str] = (), *,
                   sort: str | None = None, desc: bool = False) -> Any:
        """Every run matching ``q`` as a pandas DataFrame, one call: id, name, owner,
        kind, status, parent_id, created_at, finished_at and each of ``columns``
        (``config.alpha``, ``metrics.test_acc.max``), from ``GET /api/runs.csv``."""
        import io

        import pandas as pd

        params: dict[str, Any] = {"columns": ",".join(columns), "desc": desc}
        for k, v in (("q", q), ("sort", sort)):
            if v:
                params[k] = v
        res = self._http.get("/api/runs.csv", params=params)
        if not res.is_success:
            raise NeuroregError(res.status_code, res.json().get("detail"))
        frame = pd.read_csv(io.StringIO(res.text))
        for col in frame.select_dtypes(include=["object", "string"]):  # text as stored: the
            # quote the server adds before a formula (server/csv_cells.py) taken off
            frame[col] = frame[col].str.replace(r"^'(?='*[=+\-@\t\r])", "", regex=True)
        return frame

    def groups(self, by: Sequence[str], metrics: Sequence[str] = (), *,
               q: str | None = None) -> list[dict[str, Any]]:
        """Runs matching ``q`` grouped by ``by`` (``config.<path>``, ``tag``, ``owner``,
        ``kind``, ``status``): per group its ``group`` values, ``count`` and, per metric
        (``metrics.test_acc.last``), ``mean``, ``sem`` and ``n``."""
        params: dict[str, Any] = {"by": list(by), "metric": list(metrics)}
        if q:
            params["q"] = q
        return list(self._call("GET", "/api/run-groups", params=params)["groups"])

    def group_curves(self, by: Sequence[str], key: str, *, q: str | None = None,
                     max_points: int = 500) -> list[dict[str, Any]]:
        """Each group's curve of metric ``key`` as mean ± SEM over its runs: per group its
        ``group`` values, ``run_ids``, ``steps``, ``mean``, ``sem`` and ``n_at`` (runs
        that reached each step)."""
        params: dict[str, Any] = {"by": list(by), "key": key, "max_points": max_points}
        if q:
            params["q"] = q
        return list(self._call("GET", "/api/run-groups/curves", params=params)["groups"])

    def update(self, run_id: RunRef, *, name: str | None = None,
               tags: Sequence[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = list(tags)
        sp = self._spooled(run_id)
        if sp is None:
            try:
                return self._call("PATCH", f"/api/runs/{run_id}", json=body)
            except Exception as exc:
                sp = self._fallback(run_id, exc)
        sp.append({"op": "update", **body})
        return {"id": run_id, **body, "offline": True}

    def cancel(self, run_id: int) -> dict[str, Any]:
        return self._call("POST", f"/api/runs/{run_id}/cancel")

    def delete(self, run_id: int) -> None:
        self._call("DELETE", f"/api/runs/{run_id}")

    def move_run(self, run_id: int, project: str | int) -> dict[str, Any]:
        """Move a run, with everything it made (a study's runs, their evaluations), into
        ``project`` (a name or id); returns the run. Its owner while an editor of its
        project, the project's owners and admins may, into a project they may create
        runs in; a study's run moves with its study, never alone (a 422)."""
        return self._call("PATCH", f"/api/runs/{run_id}", json={"project": str(project)})

    def wait(self, run_id: int, *, progress: bool = True, poll: float = 2.0,
             timeout: float | None = None) -> dict[str, Any]:
        """Block until the run finishes; draws a progress bar on stderr.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        start, last = time.monotonic(), ""
        tty = sys.stderr.isatty()
        while True:
            run = self.run(run_id)
            if progress:  # redrawn in place on a terminal; a line per change in a log
                done = int(round(run["progress"] * 30))
                line = (f"run {run_id} [{'#' * done}{'.' * (30 - done)}] "
                        f"{run['progress']:4.0%} {run['status']:<9} {run['message'][:60]}")
                if tty:
                    sys.stderr.write("\r" + line.ljust(len(last)))
                elif line != last:
                    sys.stderr.write(line + "\n")
                sys.stderr.flush()
                last = line
            if run["status"] in FINISHED:
                if progress and tty:
                    sys.stderr.write("\n")
                return run
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout} s")
            time.sleep(poll)

    # metrics ------------------------------------------------------------------------
    def metric_keys(self, run_id: int) -> list[str]:
        return [k["key"] for k in self.metric_summaries(run_id)]

    def metric_summaries(self, run_id: int) -> list[dict[str, Any]]:
        """Each of the run's series: ``key``, ``count`` (points), ``last_step`` and
        ``last_value`` (the value at that step)."""
        return self._call("GET", f"/api/runs/{run_id}/metrics")

    def series(self, run_id: int, key: str, *, max_points: int = 100_000
               ) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one series as numpy arrays (downsampled above max_points)."""
        import numpy as np  # here: a script that never asks for arrays starts without it

        s = self._call("GET", f"/api/runs/{run_id}/metrics/{key}",
                       params={"max_points": max_points})
        return np.asarray(s["steps"], dtype=np.int64), np.asarray(s["values"], dtype=float)

    def metrics_frame(self, run_id: int, keys: Iterable[str] | None = None,
                      *, max_points: int = 100_000) -> Any:
        """A pandas DataFrame indexed by step, one column per metric."""
        import pandas as pd

        params: dict[str, Any] = {"max_points": max_points}
        if keys is not None:
            params["key"] = list(keys)
        every = self._call("GET", f"/api/runs/{run_id}/series", params=params)  # one request
        frame = pd.DataFrame({s["key"]: pd.Series(s["values"], index=s["steps"])
                              for s in every})
        frame.index.name = "step"
        return frame

    # studies ------------------------------------------------------------------------
    def study(self, study_id: int) -> dict[str, Any]:
        """A study's runs and aggregates: ``robustness`` (Fig. 4–7), ``gamma`` (Table 1),
        ``paired_vs_none``, ``frequency`` (the frequency part's curves per condition),
        and ``paper`` (the paper's values and setting beside it)."""
        return self._call("GET", f"/api/studies/{study_id}")

    def frontier(self, study_id: int | None = None, *, run_ids: Sequence[int] | None = None,
                 tolerance: float | None = None) -> dict[str, Any]:
        """The accuracy–robustness frontier of a study, or of evaluate runs ``run_ids``
        (give one of the two).

        Returns the server's dict (:func:`ml.frontier.frontier`): ``points`` per
        (condition, α) with each measure's ``mean``/``sem``/``n`` over seeds, ``curves``,
        ``matched`` (each condition vs None at the α of closest clean accuracy within
        ``tolerance`` — the server's default when None —, with seed-paired tests per
        measure), ``measures``, ``tolerance``
        and ``none_clean_accuracy``; for ``run_ids`` also ``skipped``.

        Raises:
            ValueError: both or neither of ``study_id`` and (non-empty) ``run_ids``.
            NeuroregError: 409 when the runs have no finished evaluation or no None yet,
                422 for a tolerance that is not a finite number > 0.
        """
        if (study_id is None) == (not run_ids):
            raise ValueError("frontier: give study_id or run_ids (one or more), not both")
        given = {} if tolerance is None else {"tolerance": tolerance}
        if study_id is not None:
            return self._call("GET", f"/api/studies/{study_id}/frontier", params=given)
        return self._call("GET", "/api/summaries/frontier",
                          params={"run_id": list(run_ids or ()), **given})

    # summaries ----------------------------------------------------------------------
    def recordings(self) -> dict[str, Any]:
        """The recordings a similarity run can name: ``root`` and ``items``."""
        return self._call("GET", "/api/recordings")

    def inspect_recording(self, recording: str, **importer: Any) -> dict[str, Any]:
        """What a similarity run would import from ``recording`` (a name under the
        server's recordings root) with the NWB ``importer`` options
        (:class:`ml.neural.io.options.ImportOptions`): ``files``, one report each.

        Raises:
            NeuroregError: 422 with the importer's message when it would refuse the file.
        """
        return self._call("POST", "/api/recordings/inspect",
                          json={"recording": recording, "importer": importer})

    def gamma(self, run_ids: Sequence[int] = ()) -> dict[str, Any]:
        """Table 1: final γ per tap, mean ± SEM per (target, α) over ``run_ids`` (train
        runs; none: every finished one)."""
        return self._call("GET", "/api/summaries/gamma", params={"run_id": list(run_ids)})

    def robustness(self, run_ids: Sequence[int] = ()) -> dict[str, Any]:
        """Noise accuracy and perturbation medians per condition over ``run_ids``
        (evaluate runs; none: every finished one); ``frequency``: the frequency part's
        curves per condition."""
        return self._call("GET", "/api/summaries/robustness",
                          params={"run_id": list(run_ids)})

    # records ------------------------------------------------------------------------
    def record(self, evaluate_run: int, *, dest: str | os.PathLike[str] | None = None
               ) -> Any:
        """The RobustBench-style record of a succeeded evaluate run
        (:func:`ml.evaluate.record.model_record`): clean accuracy, AutoAttack accuracy
        per threat model and ε, corruption accuracy, the medians per norm, the condition,
        ``robustbench`` (RobustBench's ``model_info`` entries). With ``dest`` (a file, or a
        folder for ``neuroreg-record-<id>.json``) it is saved there and the path returned.

        Raises:
            NeuroregError: 409 for a run that is no succeeded evaluation (a train run's
                message names its evaluations).
        """
        rec = self._call("GET", f"/api/runs/{evaluate_run}/record")
        if dest is None:
            return rec
        path = Path(dest)
        if path.is_dir():
            path = path / f"neuroreg-record-{evaluate_run}.json"
        path.write_text(json.dumps(rec, indent=1))
        return path

    def leaderboard_page(self, **params: Any) -> dict[str, Any]:
        """One page of ``GET /api/leaderboard``: ``items``, ``total``, ``sort``, ``order``,
        ``eps`` (the ε each AutoAttack column ranks), ``limit``, ``offset``."""
        return self._call("GET", "/api/leaderboard", params=params)

    def leaderboard(self, *, sort: str = "autoattack_linf", order: str = "desc",
                    eps_linf: float | None = None, eps_l2: float | None = None,
                    limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Every succeeded evaluation, one row each (:func:`ml.evaluate.record.leaderboard_row`),
        sorted by ``sort`` (rows without it last); AutoAttack columns at ``eps_linf`` /
        ``eps_l2`` (the server's default: 8/255 and 0.5). ``filters``: ``dataset``,
        ``target``, ``owner``, ``study``. All rows, page by page, or the first ``limit``."""
        params = {"sort": sort, "order": order, **filters,
                  **{k: v for k, v in (("eps_linf", eps_linf), ("eps_l2", eps_l2))
                     if v is not None}}
        rows: list[dict[str, Any]] = []
        while limit is None or len(rows) < limit:
            size = 1000 if limit is None else min(1000, limit - len(rows))
            page = self.leaderboard_page(**params, limit=size, offset=len(rows))
            rows += page["items"]
            if not page["items"] or len(rows) >= page["total"]:
                break
        return rows

    def study_curves(self, study_id: int, key: str = "test_acc", *, max_points: int = 500
                     ) -> Any:
        """A training curve of a study as a pandas DataFrame: one row per (condition, α,
        step) with the mean and SEM over the seeds that reached the step and their count."""
        import pandas as pd

        data = self._call("GET", f"/api/studies/{study_id}/curves",
                          params={"key": key, "max_points": max_points})
        return pd.DataFrame([
            {"target": r["target"], "alpha": r["alpha"], "step": step, "mean": m, "sem": e,
             "n": n}
            for r in data["rows"]
            for step, m, e, n in zip(r["steps"], r["mean"], r["sem"], r["n_at"], strict=True)])

    def study_report(self, study_id: int, dest: str | os.PathLike[str], *,
                     force: bool = False, timeout: float = 600.0) -> Path:
        """The study as a folder that opens offline (docs/report.md), written to ``dest``:
        ``index.html`` with every figure of the study page, each figure as SVG, PDF and
        CSV, the tables, configs, provenance and the commands that reproduce it. The
        server draws it (``GET /api/studies/{id}/report``, the zip the study page's button
        downloads): a few seconds, ``timeout`` at most. ``dest`` must be empty or new
        unless ``force``, which writes into it, replacing files of the same names.
        Returns ``dest/index.html``."""
        out = Path(dest)
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
            raise FileExistsError(f"{out}: exists and is not an empty folder")
        res = self._http.get(f"/api/studies/{study_id}/report", timeout=timeout)
        _raise_for(res)
        _unpack_report(res.content, out)
        return out / "index.html"

    # artifacts ----------------------------------------------------------------------
    def artifacts(self, run_id: int) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/runs/{run_id}/artifacts")

    def download(self, run_id: int, name: str, dest: str | os.PathLike[str]) -> Path:
        """Stream an artifact to ``dest`` (a file, or a folder to put it in)."""
        path = Path(dest)
        if path.is_dir():
            path = path / name
        with self._http.stream("GET", f"/api/runs/{run_id}/artifacts/{name}") as res:
            if not res.is_success:
                res.read()
                raise NeuroregError(res.status_code, res.json().get("detail"))
            tmp = path.with_name(path.name + ".part")
            with open(tmp, "wb") as fh:
                for chunk in res.iter_bytes():
                    fh.write(chunk)
            tmp.replace(path)
        return path

    # logging from a script -------------------------------------------------------
    def create_external(self, name: str = "", *, params: Mapping[str, Any] | None = None,
                        tags: Sequence[str] = (), provenance: bool = True,
                        project: str | int | None = None) -> dict[str, Any]:
        """A run your own script trains: it is ``running`` until :meth:`finish`. With
        ``provenance`` (default) it records what runs it (:func:`neuroreg.provenance.
        of_script`): the git commit and dirty flag of the script's checkout, the installed
        packages, Python, host and GPUs. ``project`` (a name or id): the project it goes
        into, else your default one. Offline (or ``offline="auto"`` with the server
        unreachable) it is spooled, and its ``id`` is ``"offline:<key>"``."""
        key = _spool.new_key()  # the run's idempotency key, online and in the spool alike
        body: dict[str, Any] = {"kind": "external", "name": name, "client_key": key,
                                "config": {"params": dict(params or {})}}
        if project is not None:
            body["project"] = str(project)
        if provenance:
            from neuroreg.provenance import of_script

            body["provenance"] = of_script()
        if self.offline is not True:
            try:
                run = self._call("POST", "/api/runs", json=body)
                self._keys[int(run["id"])] = key
                if tags:
                    run = self.update(run["id"], tags=tags)
                return run
            except Exception as exc:
                if not self._unreachable(exc):
                    raise
                self._warn(exc, "a new run")
        sp = self.spool.create(key=key, name=name, params=body["config"]["params"],
                               tags=list(tags), provenance=body.get("provenance"),
                               project=body.get("project"))
        return {"id": sp.id, "name": name, "kind": "external", "status": "running",
                "config": body["config"], "tags": list(tags), "offline": True,
                "spool": str(sp.folder), "client_key": key,
                "created_at": _spool.iso(sp.created)}

    def _unreachable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the server cannot be reached (and ``auto`` may spool)."""
        if self.offline != "auto":
            return False
        if isinstance(exc, httpx.TransportError):
            return True
        return isinstance(exc, NeuroregError) and exc.status in _UNAVAILABLE

    def _warn(self, exc: BaseException, what: str) -> None:
        print(f"neuroreg: {self._http.base_url} is unreachable ({type(exc).__name__}: "
              f"{exc}); {what} goes on in the spool {self.spool.root} — upload it with "
              "`neuroreg sync`", file=sys.stderr)

    def _spooled(self, run_id: RunRef) -> _spool.SpoolRun | None:
        """Where a run's logging goes if not to the server: an offline run's folder, or
        the folder of an online run whose server went away."""
        if isinstance(run_id, str):
            if not run_id.startswith(_spool.OFFLINE_PREFIX):
                raise ValueError(f"run_id: {run_id!r} is neither a run id nor an offline "
                                 "run's 'offline:<key>'")
            return self.spool.get(run_id)
        return self._lost.get(run_id)

    def _fallback(self, run_id: RunRef, exc: BaseException) -> _spool.SpoolRun:
        """After a failed call for online run ``run_id``: its spool folder from now on
        (``auto``, server unreachable), else ``exc`` again."""
        if not self._unreachable(exc):
            raise exc
        assert isinstance(run_id, int)
        self._warn(exc, f"run {run_id}")
        sp = self._lost[run_id] = self.spool.attach(
            run_id, client_key=self._keys.get(run_id), log_base=self._log_seq.get(run_id))
        return sp

    def provenance(self, run_id: int) -> dict[str, Any] | None:
        """What ran the run (its code's git commit and dirty flag, packages, host, GPUs),
        or None when nothing was recorded."""
        out: dict[str, Any] | None = self._call("GET", f"/api/runs/{run_id}/provenance")[
            "provenance"]
        return out

    def provenance_diff(self, run_ids: Sequence[int]) -> dict[str, Any]:
        """The provenance fields and package versions that differ between ``run_ids``:
        ``fields`` ([{field, values}]), ``packages`` ([{name, versions}]), ``same``,
        ``missing`` (runs without provenance)."""
        return self._call("GET", "/api/provenance-diff", params={"run_id": list(run_ids)})

    def log(self, run_id: RunRef, lines: str | Iterable[str], *, stream: str = "client"
            ) -> int:
        """Append ``lines`` (a string is split at newlines) to an external run's log (its
        owner's). They are numbered after the run's last line (asked once per run), so a
        call that failed can be made again: lines that arrived are not stored twice.
        Returns how many were stored (past the run's bound they are dropped, and
        counted); an offline run's are spooled, and counted."""
        items = lines.splitlines() if isinstance(lines, str) else [str(x) for x in lines]
        if not items:
            return 0
        sp = self._spooled(run_id)
        if sp is not None:
            return sp.log(items, stream)
        assert isinstance(run_id, int)
        stored = sent = 0
        try:
            seq = self._log_seq.get(run_id)
            if seq is None:
                seq = int(self._call("GET", f"/api/runs/{run_id}/logs",
                                     params={"after": -1, "limit": 1})["next_seq"])
            now = time.time()
            body = [{"seq": seq + i, "line": text, "stream": stream, "time": now}
                    for i, text in enumerate(items)]
            for i in range(0, len(body), _BATCH):
                stored += self._call("POST", f"/api/runs/{run_id}/logs",
                                     json={"lines": body[i:i + _BATCH]})["stored"]
                sent = min(i + _BATCH, len(body))
                self._log_seq[run_id] = seq + sent
        except Exception as exc:
            return stored + self._fallback(run_id, exc).log(items[sent:], stream)
        return stored

    def logs(self, run_id: int, *, after: int = -1, limit: int = 1000) -> dict[str, Any]:
        """One page of the run's log: ``lines`` ([{seq, stream, time, line}]) after seq
        ``after``, ``next_after`` (ask again with it), ``running``, ``status``, and
        ``dropped`` (past the run's bound: how many lines and bytes, and the marker)."""
        return self._call("GET", f"/api/runs/{run_id}/logs",
                          params={"after": after, "limit": limit})

    def follow_logs(self, run_id: int, *, after: int = -1, poll: float = 2.0
                    ) -> Iterator[dict[str, Any]]:
        """Every line of the run's log, as it comes, until the run has finished and its
        last line is read; the last page (with ``dropped``) is :attr:`last_logs`."""
        while True:
            page = self.logs(run_id, after=after, limit=5000)
            yield from page["lines"]
            after = page["next_after"]
            self.last_logs = page
            if len(page["lines"]) < 5000:
                if not page["running"]:
                    return
                time.sleep(poll)

    def start_system_metrics(self, run_id: RunRef, *, interval: float = 5.0) -> Any:
        """Sample this process's (and its children's) CPU, memory and GPUs every
        ``interval`` s into the run's ``system/*`` series (:mod:`neuroreg.system`), from a
        thread, until ``.stop()`` or the end of a ``with`` block."""
        from datetime import datetime

        from neuroreg.system import SystemMetrics

        sp = self._spooled(run_id)
        t0 = sp.created if sp is not None and isinstance(run_id, str) else \
            datetime.fromisoformat(self.run(run_id)["created_at"]).timestamp()  # type: ignore[arg-type]

        def send(points: list[tuple[str, int, float, float]]) -> None:
            self._points(run_id, points)

        return SystemMetrics(send, t0=t0, interval=interval)

    def log_batch(self, run_id: RunRef,
                  metrics: Mapping[str, float] | Iterable[tuple[str, int, float]],
                  *, step: int | None = None) -> int:
        """Log ``{key: value}`` at ``step``, or ``(key, step, value)`` triples; sent in
        batches of 5,000 points (an offline run's: spooled). Re-sent (key, step) pairs
        are ignored server-side."""
        now = time.time()
        if isinstance(metrics, Mapping):
            if step is None:
                raise ValueError("step: needed when metrics is a {key: value} mapping")
            points = [(k, int(step), float(v), now) for k, v in metrics.items()]
        else:
            points = [(k, int(s), float(v), now) for k, s, v in metrics]
        for k, s, v, _ in points:
            _spool.check_point(k, s, v)
        return self._points(run_id, points)

    def _points(self, run_id: RunRef, points: Sequence[tuple[str, int, float, float]]) -> int:
        """Send (key, step, value, wall time) points, or spool them."""
        sp = self._spooled(run_id)
        if sp is not None:
            return sp.metrics(points)
        sent = 0
        try:
            for i in range(0, len(points), _BATCH):
                sent += self._call("POST", f"/api/runs/{run_id}/metrics", json={"points": [
                    {"key": k, "step": s, "value": v, "wall_time": w}
                    for k, s, v, w in points[i:i + _BATCH]]})["accepted"]
        except Exception as exc:
            return sent + self._fallback(run_id, exc).metrics(points[sent:])
        return sent

    def upload(self, run_id: RunRef, path: str | os.PathLike[str], name: str | None = None,
               *, media_type: str = "application/octet-stream") -> dict[str, Any]:
        """Stream a file into the run as an artifact (like ``mlflow.log_artifact``); an
        offline run's is copied into the spool now. ``name`` (default the file's) must be
        one the API takes (:mod:`neuroreg.names`), else ValueError: it goes in the URL."""
        path = Path(path)
        name = check_artifact_name(name or path.name)

        def chunks() -> Iterable[bytes]:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    yield block

        sp = self._spooled(run_id)
        if sp is None:
            try:
                out: dict[str, Any] = self._call(
                    "PUT", f"/api/runs/{run_id}/artifacts/{name}",
                    content=chunks(), headers={"content-type": media_type})
                return out
            except Exception as exc:
                sp = self._fallback(run_id, exc)
        return sp.add_file(path, name, media_type)

    def finish(self, run_id: RunRef, *, status: str = "succeeded", error: str | None = None,
               result: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if error is not None:
            body["error"] = error
        if result is not None:
            body["result"] = dict(result)
        sp = self._spooled(run_id)
        if sp is None:
            try:
                out: dict[str, Any] = self._call("POST", f"/api/runs/{run_id}/finish",
                                                 json=body)
                return out
            except Exception as exc:
                sp = self._fallback(run_id, exc)
        if status not in ("succeeded", "failed"):
            raise ValueError(f"status: {status!r} is not succeeded or failed")
        sp.append({"op": "finish", "time": time.time(), "error": None, "result": None,
                   **body})
        return {"id": run_id, "status": status, "offline": True, "spool": str(sp.folder)}

    def sync(self, spool_dir: str | os.PathLike[str] | None = None) -> list[RunSync]:
        """Upload the spool (default this client's) to the server: every run not synced
        yet, each point once however often it is called; only what the server took is
        marked done, the rest is sent again next time (:mod:`neuroreg.sync`)."""
        from neuroreg.sync import sync

        if self.offline is True:
            raise OfflineError("sync")
        return sync(self, spool_dir or self.spool.root)

    # webhooks -----------------------------------------------------------------------
    def lineage(self, run_id: int, *, limit: int = 200) -> dict[str, Any]:
        """What the run was built from and what was built from it: ``runs`` (each with its
        ``depth``: negative upstream, positive downstream) and ``edges`` (``reads`` with the
        artifacts read, or ``part of`` a study)."""
        return self._call("GET", f"/api/runs/{run_id}/lineage", params={"limit": limit})

    def retention_policies(self) -> list[dict[str, Any]]:
        """The lab's artifact retention policies."""
        return self._call("GET", "/api/retention/policies")

    def add_retention_policy(self, name: str, rule: str, pattern: str, *, query: str = "",
                             keep: int | None = None, days: float | None = None,
                             preview: bool = False) -> dict[str, Any]:
        """Add a policy (admins): ``rule`` keep-last (with ``keep``), drop-finished
        (``days`` optional) or expire-failed (with ``days``), over the artifacts whose
        name matches the glob ``pattern`` of the runs ``query`` matches. ``preview``:
        store nothing, return the dry run of this policy alone."""
        body: dict[str, Any] = {"name": name, "rule": rule, "pattern": pattern,
                                "query": query}
        if keep is not None:
            body["keep"] = keep
        if days is not None:
            body["days"] = days
        path = "/api/retention/preview" if preview else "/api/retention/policies"
        return self._call("POST", path, json=body)

    def delete_retention_policy(self, policy_id: int) -> None:
        self._call("DELETE", f"/api/retention/policies/{policy_id}")

    def retention_plan(self) -> dict[str, Any]:
        """The dry run of every policy: what would go (``delete``, ``bytes_freed``) and
        what is kept because another run reads it (``kept``, with its ``dependants``)."""
        return self._call("GET", "/api/retention/plan")

    def apply_retention(self) -> dict[str, Any]:
        """Apply every policy now (admins); returns what went and what was kept."""
        return self._call("POST", "/api/retention/apply")

    def add_webhook(self, url: str, events: Sequence[str] | None = None, *,
                    secret: str | None = None) -> dict[str, Any]:
        """Have ``url`` POSTed a signed JSON event when your runs or studies finish
        (``events``: default all of run.succeeded, run.failed, run.cancelled,
        study.succeeded, study.failed, study.cancelled). The answer's ``secret`` (yours,
        or a new one) is shown this once: the receiver checks X-Neuroreg-Signature with it."""
        body: dict[str, Any] = {"url": url}
        if events is not None:
            body["events"] = list(events)
        if secret is not None:
            body["secret"] = secret
        return self._call("POST", "/api/webhooks", json=body)

    def webhooks(self) -> list[dict[str, Any]]:
        """Your webhooks (without their secrets)."""
        return self._call("GET", "/api/webhooks")

    def delete_webhook(self, webhook_id: int) -> None:
        self._call("DELETE", f"/api/webhooks/{webhook_id}")

    def test_webhook(self, webhook_id: int) -> dict[str, Any]:
        """Queue a ``ping`` to the hook; returns that delivery (watch it in
        :meth:`webhook_deliveries`)."""
        return self._call("POST", f"/api/webhooks/{webhook_id}/test")

    def webhook_deliveries(self, webhook_id: int, *, limit: int = 20) -> list[dict[str, Any]]:
        """The hook's latest deliveries, newest first: event, status (pending, delivered,
        failed), attempts, the last status code or error."""
        return self._call(
            "GET", f"/api/webhooks/{webhook_id}/deliveries", params={"limit": limit})

    # the team -----------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """The user this client's token belongs to: id, name, role."""
        return self._call("GET", "/api/me")

    def users(self) -> list[dict[str, Any]]:
        """Every user: id, name, role and ``disabled_at`` (None while enabled)."""
        return self._call("GET", "/api/users")

    def add_user(self, name: str, *, role: str = "member") -> dict[str, Any]:
        """Create a user (admins only); the answer's ``token`` is shown this once."""
        return self._call("POST", "/api/users", json={"name": name, "role": role})

    def update_user(self, user_id: int, *, disabled: bool | None = None,
                    role: str | None = None) -> dict[str, Any]:
        """Disable or re-enable a user, or change their role (admins only). A disabled
        user's every token is refused and their queued runs are cancelled."""
        body = {k: v for k, v in (("disabled", disabled), ("role", role)) if v is not None}
        return self._call("PATCH", f"/api/users/{user_id}", json=body)

    def tokens(self, user_id: int | None = None) -> list[dict[str, Any]]:
        """Your tokens, or ``user_id``'s (an admin's view), never their secrets."""
        return self._call("GET", "/api/tokens" if user_id is None
                          else f"/api/users/{user_id}/tokens")

    def create_token(self, name: str, scope: str = "member") -> dict[str, Any]:
        """A new token of yours; the answer's ``token`` is shown this once. ``scope``
        ``"member"`` acts as you everywhere; ``"worker"`` (admins only) acts only on
        ``/api/worker``, for a worker that reaches the service over its API."""
        return self._call("POST", "/api/tokens", json={"name": name, "scope": scope})

    def revoke_token(self, token_id: int) -> None:
        """Revoke one of your tokens (an admin: anyone's)."""
        self._call("DELETE", f"/api/tokens/{token_id}")

    def audit(self, *, limit: int = 50, before: int | None = None,
              project: int | None = None) -> list[dict[str, Any]]:
        """The audit trail, newest first: every event for an admin, a project owner's the
        events of the projects they own; ``before``: older than that event; ``project``:
        only that project's (its id)."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        if project is not None:
            params["project"] = project
        return self._call("GET", "/api/audit", params=params)

    # projects -----------------------------------------------------------------------
    def projects(self) -> list[dict[str, Any]]:
        """The projects you belong to (every one for an admin): id, name, description,
        created_at, ``role`` (yours: viewer, editor or owner) and ``runs`` (how many it
        holds)."""
        return self._call("GET", "/api/projects")

    def create_project(self, name: str, *, description: str = "",
                       owners: Sequence[str] = ()) -> dict[str, Any]:
        """Make a project (admins only); ``owners`` (user names) own it, else you. Nobody
        else reads it until an owner makes them a member (:meth:`set_member`)."""
        return self._call("POST", "/api/projects", json={
            "name": name, "description": description, "owners": list(owners)})

    def project(self, project: str | int) -> dict[str, Any]:
        """A project you belong to, by name or id, with its ``members`` (``user_id``,
        ``user``, ``role``)."""
        return self._call("GET", f"/api/projects/{_part(project)}")

    def set_member(self, project: str | int, user: str, role: str) -> dict[str, Any]:
        """Give ``user`` (a name) the ``role`` ``viewer``, ``editor`` or ``owner`` in
        ``project`` (its owners and admins); returns the project with its members."""
        return self._call("PUT", f"/api/projects/{_part(project)}/members/{_part(user)}",
                          json={"role": role})

    def remove_member(self, project: str | int, user: str) -> None:
        """Take ``user`` out of ``project`` (its owners and admins); their runs in it stay."""
        self._call("DELETE", f"/api/projects/{_part(project)}/members/{_part(user)}")

    def delete_project(self, project: str | int) -> None:
        """Delete an empty project (admins only; never the default one)."""
        self._call("DELETE", f"/api/projects/{_part(project)}")
