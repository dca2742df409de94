"""One lifecycle (core/lifecycle.py), driven through every caller on SQLite and PostgreSQL:
each end of a run writes its webhook delivery and advances its parent study in the same
transaction, whoever ends it — the worker and a pack's members, the reaper, the API's
cancel and finish, disabling a user, a submit the broker refuses. Two of these once left a
study ``running`` forever: the reaper giving up on its last child, and the cancel of a
queued child."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.lifecycle import start_run
from core.secretbox import secret_box
from core.settings import Settings, get_settings
from core.store.db import migrate, session_scope
from core.store.models import Role, Run, RunStatus, User, WebhookDelivery, utcnow
from core.store.runs import create_run
from core.store.users import create_user, ensure_admin, issue_token
from core.store.webhooks import create_webhook
from core.submit import EnqueueFailed, submit_run
from ml.recorder import Cancelled
from server.app import create_app

ROOT = Path(__file__).resolve().parents[2]
STUDY = {"conditions": ["none"], "seeds": 1, "train": {"backbone": "small_cnn"},
         "evaluate": {"attacks": "quick", "norms": ["l2"], "parts": ["noise"]}}


@pytest.fixture
def world(make_settings: Callable[..., Settings], db_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A store on ``db_url`` that the worker's code (get_settings) sees too."""
    settings = make_settings(database_url=db_url)
    monkeypatch.setenv("NEUROREG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEUROREG_DATABASE_URL", db_url)
    get_settings.cache_clear()
    migrate(db_url)
    with session_scope(db_url) as s:
        ensure_admin(s)
    yield get_settings()
    get_settings.cache_clear()


@contextlib.contextmanager
def admin_client(settings: Settings) -> Iterator[TestClient]:
    """The API on ``settings``, as its admin."""
    with session_scope(settings.db_url) as s:
        admin = s.execute(select(User).filter_by(name="admin")).scalar_one()
        token = issue_token(s, user=admin, name="test")
    with TestClient(create_app(settings), raise_server_exceptions=False) as api:
        api.headers["Authorization"] = f"Bearer {token}"
        yield api


def _study(settings: Settings, children: int = 1, *, running: tuple[int, ...] = ()
           ) -> tuple[int, list[int]]:
    """ada's running study with its train children (queued, or running for the indices in
    ``running``), and a hook of hers for every event."""
    with session_scope(settings.db_url) as s:
        ada = s.execute(select(User).filter_by(name="ada")).scalar_one_or_none() \
            or create_user(s, name="ada", role=Role.member)
        create_webhook(s, owner=ada, url="https://hooks.example/ada", secret="s" * 20,
                       box=secret_box(settings))
        study = create_run(s, owner=ada, kind="study", name="grid", config=STUDY)
        kids = [create_run(s, owner=ada, kind="train", name=f"grid: none seed {k}",
                           config={"epochs": 1}, parent_id=study.id) for k in range(children)]
        s.flush()
        start_run(s, study.id, worker="host:1")
        for k in running:
            start_run(s, kids[k].id, worker="host:1")
        return study.id, [k.id for k in kids]


def _status(settings: Settings, run_id: int) -> RunStatus:
    with session_scope(settings.db_url) as s:
        return s.get_one(Run, run_id).status


def _events(settings: Settings) -> list[tuple[int, str]]:
    with session_scope(settings.db_url) as s:
        return [(d.run_id, d.event) for d in
                s.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).scalars()]


def _evaluations(settings: Settings, study: int) -> list[Run]:
    with session_scope(settings.db_url) as s:
        found = s.execute(select(Run).where(Run.parent_id == study, Run.kind == "evaluate"))
        runs = list(found.scalars())
        s.expunge_all()
        return runs


# every caller that ends a study's last child, and how that child ends
def _worker_fails(settings: Settings, child: int) -> None:
    from worker.tasks import execute

    def job(config: Any, recorder: Any) -> None:
        raise RuntimeError("diverged")

    assert execute(child, job)["status"] == "failed"


def _worker_is_cancelled(settings: Settings, child: int) -> None:
    from worker.tasks import execute

    def job(config: Any, recorder: Any) -> None:
        raise Cancelled("stopped at step 3")

    assert execute(child, job)["status"] == "cancelled"


def _pack_member_fails(settings: Settings, child: int) -> None:
    from worker.backend import Direct
    from worker.tasks import _end_member

    with session_scope(settings.db_url) as s:
        start_run(s, child, worker="host:1")
    assert _end_member(Direct(settings), child, RuntimeError("out of memory")) == "failed"


def _reaper_gives_up(settings: Settings, child: int) -> None:
    from server.reaper import reap_once
    from worker.app import celery_app

    with session_scope(settings.db_url) as s:
        start_run(s, child, worker="host:1")
    with session_scope(settings.db_url) as s:
        run = s.get_one(Run, child)
        run.attempts, run.heartbeat_at = settings.max_attempts, utcnow() - timedelta(hours=1)
    assert reap_once(settings, celery_app) == []


def _api_cancels_it(settings: Settings, child: int) -> None:
    with admin_client(settings) as api:
        assert api.post(f"/api/runs/{child}/cancel").json()["status"] == "cancelled"


def _admin_disables_its_owner(settings: Settings, child: int) -> None:
    with admin_client(settings) as api, session_scope(settings.db_url) as s:
        ada = s.execute(select(User).filter_by(name="ada")).scalar_one()
        assert api.patch(f"/api/users/{ada.id}", json={"disabled": True}).status_code == 200


ENDS = {  # caller: (how it ends the child, the child's status, whether it was running)
    "worker: the job fails": (_worker_fails, RunStatus.failed, False),
    "worker: the job is cancelled": (_worker_is_cancelled, RunStatus.cancelled, False),
    "pack: a member fails": (_pack_member_fails, RunStatus.failed, False),
    "reaper: out of starts": (_reaper_gives_up, RunStatus.failed, False),
    "API: cancel of a queued child": (_api_cancels_it, RunStatus.cancelled, False),
    "API: cancel of a running child": (_api_cancels_it, RunStatus.cancelled, True),
    "API: its owner disabled": (_admin_disables_its_owner, RunStatus.cancelled, False),
}


@pytest.mark.parametrize("caller", ENDS)
def test_every_caller_that_ends_a_studys_last_child_ends_the_study(
        world: Settings, caller: str) -> None:
    end, status, running = ENDS[caller]
    study, (child,) = _study(world, running=(0,) if running else ())
    end(world, child)
    assert _status(world, child) is status
    assert _status(world, study) is RunStatus.failed  # its one run did not succeed
    assert _events(world) == [(child, f"run.{status.value}"), (study, "study.failed")]
    with session_scope(world.db_url) as s:
        done = s.get_one(Run, study)
        assert done.result == {"runs": 1, "failed": [child]}
        assert done.message == "1/2 runs finished"


def test_a_child_that_is_not_the_last_moves_the_study_on_and_leaves_it_running(
        world: Settings) -> None:
    study, (first, second) = _study(world, children=2)
    _reaper_gives_up(world, first)
    assert _status(world, study) is RunStatus.running
    assert _events(world) == [(first, "run.failed")]
    with session_scope(world.db_url) as s:
        assert s.get_one(Run, study).message == "1/4 runs finished"
    _api_cancels_it(world, second)
    assert _status(world, study) is RunStatus.failed
    assert _events(world)[-1] == (study, "study.failed")


def test_a_succeeded_child_queues_its_evaluation_and_the_study_ends_with_it(
        world: Settings) -> None:
    from worker.tasks import execute

    study, (child,) = _study(world)
    assert execute(child, lambda config, recorder: {"test_acc": 0.5})["status"] == "succeeded"
    (evaluation,) = _evaluations(world, study)
    assert evaluation.status is RunStatus.queued and evaluation.task_id  # sent to its queue
    assert _status(world, study) is RunStatus.running
    assert execute(evaluation.id, lambda config, recorder: {})["status"] == "succeeded"
    assert _status(world, study) is RunStatus.succeeded
    assert _events(world) == [(child, "run.succeeded"), (evaluation.id, "run.succeeded"),
                              (study, "study.succeeded")]


def test_cancelling_a_study_cancels_its_children_each_with_its_event(world: Settings) -> None:
    study, (queued, running) = _study(world, children=2, running=(1,))
    _api_cancels_it(world, study)
    assert [_status(world, r) for r in (study, queued, running)] == [RunStatus.cancelled] * 3
    assert _events(world) == [(study, "study.cancelled"), (queued, "run.cancelled"),
                              (running, "run.cancelled")]


def test_a_run_handed_back_goes_back_to_the_queue_without_an_end(world: Settings) -> None:
    from core.lifecycle import release_run

    study, (child,) = _study(world, running=(0,))
    with session_scope(world.db_url) as s:
        assert release_run(s, child, worker="host:1", message="SLURM job ends")
        assert not release_run(s, child, worker="host:1", message="twice")
    assert _status(world, child) is RunStatus.queued
    assert _status(world, study) is RunStatus.running and _events(world) == []


def test_an_external_run_finished_through_the_api_queues_its_event(world: Settings) -> None:
    _study(world, children=0)  # ada and her hook
    with admin_client(world) as api:
        run = api.post("/api/runs", json={"kind": "external", "config": {}}).json()
        with session_scope(world.db_url) as s:  # the hook is ada's: make the run hers
            ada = s.execute(select(User).filter_by(name="ada")).scalar_one()
            s.get_one(Run, run["id"]).owner_id = ada.id
        res = api.post(f"/api/runs/{run['id']}/finish", json={"status": "failed"})
    assert res.json()["status"] == "failed"
    assert _events(world) == [(run["id"], "run.failed")]


def test_a_submit_the_broker_refuses_fails_the_run_with_its_event(world: Settings) -> None:
    class Refusing:
        def send_task(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("broker down")

    _study(world, children=0)
    with session_scope(world.db_url) as s:
        ada = s.execute(select(User).filter_by(name="ada")).scalar_one()
        with pytest.raises(EnqueueFailed):
            submit_run(s, Refusing(), owner=ada, kind="train", name="",  # type: ignore[arg-type]
                       config={"epochs": 1})
    (run_id, event), = _events(world)
    assert event == "run.failed" and _status(world, run_id) is RunStatus.failed


def _status_writes(path: Path) -> list[str]:
    """Where ``path`` writes a run's status: ``x.status = …`` or ``.values(status=…)`` with a
    RunStatus (a webhook delivery's status is another column)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign):
            values = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "values":
            values = [(k, k.value) for k in node.keywords if k.arg == "status"]
        else:
            continue
        for target, value in values:
            names_status = isinstance(target, ast.keyword) or (
                isinstance(target, ast.Attribute) and target.attr == "status")
            if names_status and "RunStatus" in ast.unparse(value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_lifecycle_writes_a_runs_status() -> None:
    writers = [w for package in ("core", "server", "worker", "neuroreg")
               for path in sorted((ROOT / package).rglob("*.py")) for w in _status_writes(path)]
    assert writers and all(w.startswith("core/lifecycle.py:") for w in writers), writers


def test_a_study_whose_config_no_longer_validates_fails_and_its_childs_end_stands(
        world: Settings) -> None:
    from worker.tasks import execute

    study, (child,) = _study(world)
    with session_scope(world.db_url) as s:  # stored by an older version
        s.get_one(Run, study).config = {**STUDY, "seeds": 0}
    assert execute(child, lambda config, recorder: {"test_acc": 0.5})["status"] == "succeeded"
    assert _status(world, child) is RunStatus.succeeded and not _evaluations(world, study)
    with session_scope(world.db_url) as s:
        done = s.get_one(Run, study)
        assert done.status is RunStatus.failed
        assert done.error.startswith("its stored config no longer validates: ")
