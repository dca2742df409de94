"""``neuroreg export`` / ``neuroreg import``: a lossless round trip between two servers,
idempotence, the rules of ``POST /api/import/runs``, and damaged exports."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli import main
from core.kinds import stored_config
from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import migrate, session_scope
from core.store.logs import Line, append_lines
from core.store.metrics import insert_points
from core.store.models import Role, Run, RunStatus, User
from core.store.runs import create_run, set_tags
from core.store.users import create_user, issue_token
from neuroreg.client import Client, NeuroregError
from neuroreg.transfer import MANIFEST, TransferError, read_export
from server.schemas import CREATE_MODELS
from tests.livesrv import live_server

pytestmark = pytest.mark.no_numerics

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _config(kind: str, **values: Any) -> dict[str, Any]:
    made = CREATE_MODELS[kind].model_validate({"kind": kind, "config": values})
    return json.loads(json.dumps(stored_config(kind, made.config)))


def _server(stack: ExitStack, make_settings: Callable[..., Settings], tmp: Path, name: str
            ) -> tuple[Settings, str, str, str]:
    """A live server on its own data dir: (settings, URL, an admin's token, a member's)."""
    settings = make_settings(data_dir=tmp / name)
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        admin = issue_token(s, user=create_user(s, name="root", role=Role.admin), name="t")
        member = issue_token(s, user=create_user(s, name="ada", role=Role.member), name="t")
    return settings, stack.enter_context(live_server(settings)), admin, member


@pytest.fixture
def two(make_settings: Callable[..., Settings], tmp_path: Path
        ) -> Iterator[tuple[tuple[Settings, str, str, str], tuple[Settings, str, str, str]]]:
    with ExitStack() as stack:
        yield (_server(stack, make_settings, tmp_path, "a"),
               _server(stack, make_settings, tmp_path, "b"))


def _populate(settings: Settings) -> dict[str, int]:
    """On server A: a finished study (similarity → two trains → an evaluation), and an
    external run with params, tags, provenance, points, log lines and artifacts — every
    field a run has, written as the worker and a script write them."""
    with session_scope(settings.db_url) as s:
        admin = s.query(User).filter_by(name="root").one()
        ada = s.query(User).filter_by(name="ada").one()

        def finish(run: Run, status: RunStatus, minutes: int, result: Any = None,
                   error: str | None = None) -> None:
            run.status, run.created_at = status, T0 + timedelta(minutes=minutes)
            run.started_at = T0 + timedelta(minutes=minutes, seconds=1.5)
            run.finished_at = T0 + timedelta(minutes=minutes + 3, microseconds=7)
            run.result, run.error, run.progress = result, error, 1.0
            run.message = "done"
            run.provenance = {"git_commit": "abc123", "host": "gpu-7",
                              "packages": {"torch": "2.13.0"}, "worker": "gpu-7:4242"}

        sim = create_run(s, owner=admin, kind="similarity", name="sim",
                         config=_config("similarity"))
        finish(sim, RunStatus.succeeded, 0, {"n_stimuli": 200, "r_heldout": 0.731})
        study = create_run(s, owner=admin, kind="study", name="grid",
                           config=_config("study", conditions=["none", "neural-model"],
                                          target_run=sim.id))
        trains = []
        for i, target in enumerate(("none", "neural-model")):
            tr = create_run(s, owner=admin, kind="train", name=f"train-{target}",
                            parent_id=study.id, input_run_id=sim.id,
                            config=_config("train", target=target, target_run=sim.id,
                                           alpha=4.0 * i))
            finish(tr, RunStatus.succeeded, 5 + i, {"gamma": [0.25, 0.75], "test_acc": 0.9})
            insert_points(s, tr.id, [("loss", k, 1 / (k + 1), 1.7e9 + k * 0.1)
                                     for k in range(120_001)] +
                          [("test_acc", 3, 0.1 + 0.2 / 3, 1.7e9)])
            # one past the 1 MiB a request body may have: an artifact streams
            save_artifact(s, settings.artifacts, run_id=tr.id, name="model.pt",
                          data=bytes(range(256)) * (12_000 if i else 40) + bytes([i]),
                          media_type="application/x")
            append_lines(s, tr.id, [Line(k, "stdout", 1.7e9 + k, f"epoch {k} ✓")
                                    for k in range(7)], max_bytes=1 << 20)
            trains.append(tr)
        ev = create_run(s, owner=admin, kind="evaluate", name="eval", parent_id=study.id,
                        input_run_id=trains[1].id,
                        config=_config("evaluate", train_run=trains[1].id,
                                       reference_run=trains[0].id, similarity_run=sim.id))
        finish(ev, RunStatus.failed, 20, None, "Traceback …\nRuntimeError: out of memory")
        finish(study, RunStatus.failed, 0, {"runs": 3, "failed": [ev.id]})
        set_tags(s, study, ["fig4", "paper/v2"])
        ext = create_run(s, owner=ada, kind="external", name="script",
                         config={"params": {"lr": "0.1", "layers": [1, 2], "nested": {"a": None}}})
        finish(ext, RunStatus.succeeded, 30, {"best": 0.5, "curve": [1, 2.5]})
        ext.provenance = {"mlflow": {"experiment_id": 0, "deleted": False,
                                     "tags": {"mlflow.user": "ada"}}, "script": "train.py"}
        ext.client_key = "0123456789abcdef0123456789abcdef"
        set_tags(s, ext, ["exp:Default", "sweep-3"])
        insert_points(s, ext.id, [("acc/top-1", 0, 0.1, 1.7e9), ("acc/top-1", 2**31 - 1,
                                                                  5e-324, 1.7e9 + 0.25)])
        append_lines(s, ext.id, [Line(0, "client", 1.7e9, ""), Line(3, "stderr", 1.7e9 + 1,
                                                                     "warn: x" * 100)],
                     max_bytes=1 << 20)
        for name, data in (("plots/loss.svg", b"<svg/>"), ("empty.bin", b""),
                           ("model/MLmodel", b"flavors: {}\n")):
            save_artifact(s, settings.artifacts, run_id=ext.id, name=name, data=data,
                          media_type="image/svg+xml" if name.endswith("svg") else "text/plain")
        return {"study": study.id, "external": ext.id, "evaluate": ev.id}


def _export(url: str, token: str, out: Path, *args: str, monkeypatch: pytest.MonkeyPatch
            ) -> None:
    monkeypatch.setenv("NEUROREG_API_URL", url)
    monkeypatch.setenv("NEUROREG_TOKEN", token)
    assert main(["export", *args, "-o", str(out)]) == 0


def _import(url: str, token: str, src: Path, monkeypatch: pytest.MonkeyPatch,
            *args: str) -> int:
    monkeypatch.setenv("NEUROREG_API_URL", url)
    monkeypatch.setenv("NEUROREG_TOKEN", token)
    return main(["import", "--from", str(src), *args])


def _comparable(root: Path) -> dict[str, Any]:
    """Every file of an export with what names a server (ids, owner, export time) taken
    out: runs by key, references by key, bytes by sha256."""
    manifest = json.loads((root / MANIFEST).read_text())
    out: dict[str, Any] = {}
    for entry in manifest["runs"]:
        folder = root / entry["folder"]
        rec = json.loads((folder / "run.json").read_text())
        for f in ("id", "owner", "parent_id", "input_run_id"):
            rec.pop(f)
        for ref in rec["refs"]:
            if ref.startswith("config."):
                rec["config"][ref[7:]] = None
        files = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "run.json"}
        out[rec["key"]] = {"run": rec, "files": files, "kind": entry["kind"],
                           "counts": (entry["points"], entry["lines"], entry["artifacts"])}
    return out


def test_an_export_imports_into_another_server_and_exports_again_byte_for_byte(
        two: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (sa, url_a, admin_a, _), (sb, url_b, admin_b, member_b) = two
    ids = _populate(sa)
    first, second, third = tmp_path / "e1", tmp_path / "e2", tmp_path / "e3"
    _export(url_a, admin_a, first, str(ids["external"]), "--study", str(ids["study"]),
            monkeypatch=monkeypatch)
    manifest = json.loads((first / MANIFEST).read_text())
    kinds = [r["kind"] for r in manifest["runs"]]
    assert sorted(kinds) == ["evaluate", "external", "similarity", "study", "train", "train"]
    assert kinds.index("similarity") < kinds.index("study") < kinds.index("train")  # inputs first
    # a member may import the external run but not a study's runs: workers read those back
    assert _import(url_b, member_b, first, monkeypatch) == 1
    with session_scope(sb.db_url) as s:
        assert s.query(Run).count() == 0  # the whole export is read first; nothing stored
    assert _import(url_b, admin_b, first, monkeypatch) == 0
    _export(url_b, admin_b, second, "-q", "id > 0", monkeypatch=monkeypatch)
    a, b = _comparable(first), _comparable(second)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    train = next(v for v in b.values() if v["run"]["name"] == "train-none")
    assert train["counts"] == (120_002, 7, 1)  # past one page of points
    # every reference points at the new server's run of the same key
    with session_scope(sb.db_url) as s:
        by_key = {r.client_key: r for r in s.query(Run)}
        for key, v in a.items():
            run = by_key[key]
            for ref, target in v["run"]["refs"].items():
                got = (getattr(run, ref) if not ref.startswith("config.")
                       else run.config[ref[7:]])
                assert got == by_key[target].id, (key, ref)
        n_runs = s.query(Run).count()
    # importing again stores nothing twice and changes nothing
    assert _import(url_b, admin_b, first, monkeypatch) == 0
    _export(url_b, admin_b, third, "-q", "id > 0", monkeypatch=monkeypatch)
    assert _comparable(third) == b
    with session_scope(sb.db_url) as s:
        assert s.query(Run).count() == n_runs


def test_import_refuses_what_it_cannot_store_naming_the_field(two: Any) -> None:
    (_, url, admin, member), _ = two
    good = {"key": "k-12345678", "kind": "external", "name": "x", "status": "succeeded",
            "created_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T01:00:00Z",
            "config": {"params": {}}}
    with Client(url, member) as nr:
        cases = [
            ({"kind": "nope"}, 422, "kind"),
            ({"kind": "train", "config": {}}, 403, "needs an admin"),
            ({"status": "queued", "finished_at": None}, 422, "status"),
            ({"finished_at": None}, 422, "finished_at"),
            ({"finished_at": "2025-12-31T00:00:00Z"}, 422, "finished_at"),
            ({"created_at": "2999-01-01T00:00:00Z"}, 422, "created_at"),
            ({"parent_id": 999}, 422, "parent_id"),
            ({"tags": ["no spaces"]}, 422, "tags"),
            ({"provenance": {"git_commit": "not hex"}}, 422, "provenance"),
            ({"config": {"params": {}, "extra": 1}}, 422, "config"),
            ({"key": "short"}, 422, "key"),
        ]
        for change, code, field in cases:
            with pytest.raises(NeuroregError) as err:
                nr._call("POST", "/api/import/runs", json={**good, **change})
            assert err.value.status == code and field in str(err.value), (change, err.value)
        run = nr._call("POST", "/api/import/runs", json=good)
        assert run["status"] == "succeeded" and run["finished_at"].startswith("2026-01-01T01")
        # a second import of the key updates the run; a train run cannot take its key
        again = nr._call("POST", "/api/import/runs", json={**good, "name": "renamed"})
        assert again["id"] == run["id"] and again["name"] == "renamed"
        with pytest.raises(NeuroregError) as err:
            nr._call("PUT", f"/api/import/runs/{run['id']}/artifacts/../x", content=b"1")
        assert err.value.status in (404, 422)
    with Client(url, admin) as nr:
        for change, field in (({"kind": "train", "status": "running", "finished_at": None,
                                "config": {}}, "status"),
                              ({"kind": "train", "config": {"target_run": 12345}},
                               "config.target_run"),
                              ({"kind": "evaluate", "config": {"train_run": run["id"]}},
                               "config.train_run"),
                              ):
            with pytest.raises(NeuroregError) as err:
                nr._call("POST", "/api/import/runs", json={**good, "key": "k-admin-1", **change})
            assert err.value.status == 422 and field in str(err.value), (change, err.value)


GARBAGE = [{"gamma": "x", "layers": 5, "noise": 3, "minimal": 3, "autoattack": [],
            "corruptions": "c", "runs": "n", "failed": 7, "test_acc": "high", "clean_acc": None,
            "medians": {"l2": "a"}, "accuracy": {"0.1": None}},
           {"noise": {"sigmas": "a", "accuracy": [None]}, "minimal": {"l2": {"median": "x"}},
            "gamma": [[1]], "layers": [{"name": 3}], "failed": ["x"]},
           {}]


@pytest.mark.parametrize("result", GARBAGE)
def test_no_page_answers_500_for_an_imported_run_whatever_its_result(
        two: Any, result: dict[str, Any]) -> None:
    """An admin imports a study whose every run has a result of the wrong shape: each
    import is refused with a 422, or every read of those runs answers below 500."""
    (_, url, admin, _), _ = two
    base = {"name": "x", "status": "succeeded", "created_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T01:00:00Z", "result": result}
    ids: dict[str, int] = {}
    with Client(url, admin) as nr:
        def put(name: str, kind: str, config: dict[str, Any], **more: Any) -> None:
            res = nr._http.post("/api/import/runs", json={
                **base, "key": f"garbage-{name}", "kind": kind, "config": config, **more})
            assert res.status_code in (201, 422), res.text
            if res.status_code == 201:
                ids[name] = res.json()["id"]

        put("sim", "similarity", {})
        put("study", "study", {"conditions": ["none", "neural-model"],
                               "target_run": ids.get("sim")})
        put("train", "train", {"target": "neural-model", "target_run": ids.get("sim")},
            parent_id=ids.get("study"), input_run_id=ids.get("sim"))
        put("eval", "evaluate", {"train_run": ids.get("train"),
                                 "similarity_run": ids.get("sim")},
            parent_id=ids.get("study"), input_run_id=ids.get("train"))
        for name, files in (("sim", ["target-neural-model.npz", "figures.json",
                                     "predictor.pt"]),
                            ("train", ["model.pt", "s-cnn-overview.npz"]),
                            ("eval", ["adversarials.npz"])):
            for f in files if name in ids else ():
                res = nr._http.put(f"/api/import/runs/{ids[name]}/artifacts/{f}",
                                   content=b"PK\x03\x04 not what it claims" * 10)
                assert res.status_code == 201, res.text
        paths = ["/api/leaderboard", "/api/summaries/gamma", "/api/summaries/robustness",
                 "/api/summaries/frontier", "/api/runs.csv?columns=config.alpha",
                 "/api/run-groups?by=config.target&metric=metrics.loss.last"]
        for run_id in ids.values():
            paths += [f"/api/runs/{run_id}", f"/api/runs/{run_id}/matrices",
                      f"/api/runs/{run_id}/matrices/target", f"/api/runs/{run_id}/matrices/cnn",
                      f"/api/runs/{run_id}/matrices/neural-model",
                      f"/api/runs/{run_id}/matrices/neural-model/pairs",
                      f"/api/runs/{run_id}/matrices/neural-model/spectrum",
                      f"/api/runs/{run_id}/matrices/cnn-0",
                      f"/api/runs/{run_id}/record", f"/api/studies/{run_id}",
                      f"/api/studies/{run_id}/frontier", f"/api/studies/{run_id}/curves",
                      f"/api/runs/{run_id}/provenance", f"/api/runs/{run_id}/system",
                      f"/api/summaries/gamma?run_id={run_id}",
                      f"/api/summaries/robustness?run_id={run_id}",
                      f"/api/summaries/frontier?run_id={run_id}"]
        # stored (so the reads below read them) unless a page could not read the result
        assert {"sim", "study", "eval"} <= set(ids) and ("train" in ids) == (result == {})
        failed = [(path, res.status_code) for path in paths
                  if (res := nr._http.get(path)).status_code >= 500]
        assert not failed, (sorted(ids), failed)


def test_a_damaged_export_names_the_file_and_stores_nothing(
        two: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (sa, url_a, admin_a, _), (sb, url_b, admin_b, _) = two
    ids = _populate(sa)
    good = tmp_path / "good"
    _export(url_a, admin_a, good, str(ids["external"]), monkeypatch=monkeypatch)
    folder = good / "runs" / str(ids["external"])

    def damaged(name: str, change: Callable[[Path], None]) -> Path:
        copy = tmp_path / f"bad-{name}"
        shutil.copytree(good, copy)
        change(copy / "runs" / str(ids["external"]))
        return copy

    cases = {
        "metrics.csv:2": damaged("m", lambda f: (f / "metrics.csv").write_text(
            (folder / "metrics.csv").read_text().replace("0.1,", "zero,", 1))),
        "loss.svg": damaged("a", lambda f: (f / "artifacts/plots/loss.svg").write_bytes(b"x")),
        "run.json": damaged("r", lambda f: (f / "run.json").write_text("{")),
        "logs.jsonl:1": damaged("l", lambda f: (f / "logs.jsonl").write_text("[]\n")),
    }
    for where, copy in cases.items():
        with pytest.raises(TransferError, match=where.replace(".", r"\.")):
            read_export(copy)
        assert _import(url_b, admin_b, copy, monkeypatch) == 1
    with session_scope(sb.db_url) as s:
        assert s.query(Run).count() == 0
