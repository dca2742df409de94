"""Code execution through stored bytes (MLflow's pickled-model CVEs, and this service's own
finding): no byte a member can write is unpickled by a worker or the API, and names that
workers read back are written only by the worker that runs the run."""

from __future__ import annotations

import ast
import dataclasses
import io
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from core.kinds import KINDS
from core.settings import Settings, get_settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.models import User
from core.store.runs import create_run, get_run
from ml import artifacts
from ml.train import TrainConfig
from worker.tasks import execute, train_job

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(backbone="small_cnn", width=8, epochs=1, batch_size=256, lr=0.05, device="cpu")


class _Payload:
    """Pickles to a call of ``os.mkdir(marker)``: unpickling it creates the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _malicious_checkpoint(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"config": {}, "state_dict": {}, "step": _Payload(marker)}, buf)
    return buf.getvalue()


def test_the_payload_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The control: the payload below is live, so the tests that refuse it mean something."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


WORKER_OWNED = [artifacts.CHECKPOINT, artifacts.MODEL, artifacts.target("neural-model"),
                artifacts.S_CNN_OVERVIEW, artifacts.PREDICTOR, artifacts.LOGS, "notes.txt"]


@pytest.mark.parametrize("kind", sorted(k for k, v in KINDS.items() if v.task is not None))
def test_a_member_cannot_upload_into_a_run_a_worker_runs(
        api: TestClient, member: Callable[[str], TestClient], backend: Settings,
        kind: str, tmp_path: Path) -> None:
    """The finding: PUT checkpoint.pt into one's own queued train run, which the worker
    unpickled when it started. Runs a worker runs take no uploads at all."""
    eve = member("eve")
    with session_scope(backend.db_url) as s:  # a queued run of hers of every worker kind
        owner = s.query(User).filter_by(name="eve").one()
        rid = create_run(s, owner=owner, kind=kind, name="", config={}).id
    payload = _malicious_checkpoint(tmp_path / "ran")
    for name in WORKER_OWNED:
        res = eve.put(f"/api/runs/{rid}/artifacts/{name}", content=payload)
        assert res.status_code == 409, (name, res.text)
        assert "written by the worker" in res.json()["detail"]
        assert api.put(f"/api/runs/{rid}/artifacts/{name}", content=b"x").status_code == 409
    assert eve.get(f"/api/runs/{rid}/artifacts").json() == []
    assert not (backend.artifacts / str(rid)).exists() or not any(
        (backend.artifacts / str(rid)).iterdir())


def test_an_external_run_still_takes_its_scripts_files(
        member: Callable[[str], TestClient]) -> None:
    eve = member("eve")
    rid = eve.post("/api/runs", json={"kind": "external", "config": {"params": {}}}).json()["id"]
    assert eve.put(f"/api/runs/{rid}/artifacts/model.pt", content=b"weights").status_code == 201
    assert eve.get(f"/api/runs/{rid}/artifacts/model.pt").content == b"weights"


@pytest.fixture
def worker_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    from core.store.db import migrate
    from core.store.models import Role
    from core.store.users import create_user

    monkeypatch.setenv("NEUROREG_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        create_user(s, name="eve", role=Role.member)
    yield get_settings()
    get_settings.cache_clear()


def test_a_worker_resuming_never_unpickles_its_checkpoint(
        worker_env: Settings, tmp_path: Path) -> None:
    """Defence in depth: a checkpoint.pt that reached the store anyway (a file planted on
    the volume, a store restored from elsewhere) is refused, not run, when the worker
    resumes from it."""
    marker = tmp_path / "ran"
    config = TrainConfig(target="none", **TINY)  # type: ignore[arg-type]
    with session_scope(worker_env.db_url) as s:
        owner = s.query(User).filter_by(name="eve").one()
        rid = create_run(s, owner=owner, kind="train", name="",
                         config=dataclasses.asdict(config)).id
        save_artifact(s, worker_env.artifacts, run_id=rid, name=artifacts.CHECKPOINT,
                      data=_malicious_checkpoint(marker), media_type="application/octet-stream")
    assert execute(rid, train_job)["status"] == "failed"
    assert not marker.exists()
    with session_scope(worker_env.db_url) as s:
        assert "weights_only" in (get_run(s, rid).error or "")


# what deserializes code, and the one use each allowed use is
_CALLS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.loads", "dill.load",
          "dill.loads", "joblib.load", "cloudpickle.load", "cloudpickle.loads",
          "yaml.load", "yaml.unsafe_load", "yaml.full_load", "shelve.open"}
_ALLOWED = {("ml/data/cifar.py", "pickle.Unpickler"),  # an allow-list unpickler (admin's files)
            ("tests/ml/test_cifar.py", "pickle.loads"),  # reads back the fixture it wrote
            ("tests/security/test_code_exec.py", "pickle.loads")}  # the payload's control


def _problems(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = ast.unparse(base)
                if name in _CALLS and (str(path.relative_to(ROOT)), name) not in _ALLOWED:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} subclasses {name}")
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if name in _CALLS and (str(path.relative_to(ROOT)), name) not in _ALLOWED:
            found.append(f"{where} calls {name}")
        if name == "torch.load" and kw.get("weights_only") != "True":
            found.append(f"{where} torch.load without weights_only=True")
        if name.endswith("np.load") and kw.get("allow_pickle", "False") != "False":
            found.append(f"{where} np.load with allow_pickle={kw['allow_pickle']}")
    return found


def test_no_code_path_deserializes_code() -> None:
    """Every torch.load is weights_only=True, no np.load allows pickles, and nothing calls
    pickle, marshal, dill, joblib or an unsafe YAML loader — in the service, the science,
    the client, the examples and the benches (tests included: they load our artifacts the
    way a user's notebook would)."""
    files = [p for d in ("ml", "server", "worker", "neuroreg", "examples", "bench", "tests")
             for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 100
    assert [p for f in files for p in _problems(f)] == []
