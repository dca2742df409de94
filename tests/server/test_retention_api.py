"""The retention and lineage API: admins make, delete and apply policies, members read
them and their dry run; refusals name the field (422) or the run that reads what a
policy would delete (409); applying deletes what the dry run listed, files included, and
audits it; each run's lineage graph; deleting a run another reads is a 409."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.models import Role, RunStatus
from core.store.runs import create_run
from core.store.users import create_user

pytestmark = pytest.mark.no_numerics  # storage and HTTP: no float a kernel computes


def _member(client: TestClient, name: str) -> TestClient:
    token = client.post("/api/users", json={"name": name}).json()["token"]
    other = TestClient(client.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


def _chain(settings: Settings) -> dict[str, int]:
    """A similarity run, a train run reading its target (with a checkpoint and a model),
    and an evaluation reading the model."""
    with session_scope(settings.db_url) as s:
        owner = create_user(s, name="chain-owner", role=Role.member)
        sim = create_run(s, owner=owner, kind="similarity", name="sim", config={})
        save_artifact(s, settings.artifacts, run_id=sim.id, name="target-neural-model.npz",
                      data=b"target", media_type="application/octet-stream")
        finish_run(s, sim.id, RunStatus.succeeded, result={})
        train = create_run(s, owner=owner, kind="train", name="train", input_run_id=sim.id,
                           config={"target": "neural-model", "target_run": sim.id})
        for name in ("checkpoint.pt", "model.pt"):
            save_artifact(s, settings.artifacts, run_id=train.id, name=name,
                          data=name.encode() * 10, media_type="application/octet-stream")
        finish_run(s, train.id, RunStatus.succeeded, result={})
        ev = create_run(s, owner=owner, kind="evaluate", name="ev", input_run_id=train.id,
                        config={"train_run": train.id, "runs": []})
        finish_run(s, ev.id, RunStatus.succeeded, result={})
        return {"sim": sim.id, "train": train.id, "ev": ev.id}


def test_admins_make_and_apply_policies_members_read_them(
        client: TestClient, settings: Settings) -> None:
    ids = _chain(settings)
    member = _member(client, "viewer-of-storage")
    body = {"name": "checkpoints", "rule": "drop-finished", "pattern": "checkpoint.pt"}

    refused = member.post("/api/retention/policies", json=body)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert member.post("/api/retention/apply").status_code == 403

    preview = member.post("/api/retention/preview", json=body).json()
    assert [(i["run_id"], i["name"]) for i in preview["delete"]] == [
        (ids["train"], "checkpoint.pt")]
    assert preview["bytes_freed"] == len(b"checkpoint.pt" * 10) and not preview["applied"]

    made = client.post("/api/retention/policies", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["rule"] == "drop-finished" and made.json()["query"] == ""
    again = client.post("/api/retention/policies", json=body)
    assert again.status_code == 409 and "exists" in again.json()["detail"]
    assert [p["name"] for p in member.get("/api/retention/policies").json()] == ["checkpoints"]

    plan = member.get("/api/retention/plan").json()
    assert plan["delete_count"] == 1 and plan["kept_count"] == 0 and not plan["applied"]
    path = settings.artifacts / str(ids["train"]) / "checkpoint.pt"
    assert path.exists()

    done = client.post("/api/retention/apply").json()
    assert done["applied"] and done["delete_count"] == 1
    assert not path.exists()
    assert client.get(f"/api/runs/{ids['train']}/artifacts/checkpoint.pt").status_code == 404
    assert client.get(f"/api/runs/{ids['train']}/artifacts/model.pt").status_code == 200
    assert client.get("/api/retention/plan").json()["delete_count"] == 0
    audit = client.get("/api/audit").json()
    actions = [e["action"] for e in audit]
    assert "policy.created" in actions and "artifacts.expired" in actions

    policy_id = made.json()["id"]
    assert member.delete(f"/api/retention/policies/{policy_id}").status_code == 403
    assert client.delete(f"/api/retention/policies/{policy_id}").status_code == 204
    assert client.delete(f"/api/retention/policies/{policy_id}").status_code == 404
    assert client.get("/api/retention/policies").json() == []


def test_a_policy_deleting_what_a_run_reads_is_refused_naming_the_run(
        client: TestClient, settings: Settings) -> None:
    ids = _chain(settings)
    body = {"name": "every model", "rule": "drop-finished", "pattern": "*.pt"}
    preview = client.post("/api/retention/preview", json=body).json()
    assert [(i["name"], [d["run_id"] for d in i["dependants"]]) for i in preview["kept"]] == [
        ("model.pt", [ids["ev"]])]
    refused = client.post("/api/retention/policies", json=body)
    assert refused.status_code == 409
    assert f"run {ids['train']}'s model.pt, which evaluate run {ids['ev']} reads" in \
        refused.json()["detail"]
    assert client.get("/api/retention/policies").json() == []


def test_refusals_name_the_field(client: TestClient, settings: Settings) -> None:
    base = {"name": "p", "rule": "keep-last", "pattern": "*", "keep": 2}
    for change, field in [({"keep": None}, "keep"), ({"keep": 0}, "keep"),
                          ({"rule": "sometimes"}, "rule"), ({"pattern": ""}, "pattern"),
                          ({"query": "config.alpha >>> 1"}, "query"),
                          ({"days": 3}, "days"), ({"name": " x"}, "name"),
                          ({"surprise": 1}, "surprise")]:
        answer = client.post("/api/retention/policies", json={**base, **change})
        assert answer.status_code == 422, (change, answer.text)
        assert [e["loc"][-1] for e in answer.json()["detail"]] == [field], answer.text
        preview = client.post("/api/retention/preview", json={**base, **change})
        assert preview.status_code == 422
    expire = {"name": "f", "rule": "expire-failed", "pattern": "*"}
    answer = client.post("/api/retention/policies", json=expire)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == "days"


def test_the_lineage_graph_and_a_delete_that_would_orphan_a_reader(
        client: TestClient, settings: Settings) -> None:
    ids = _chain(settings)
    g = client.get(f"/api/runs/{ids['train']}/lineage").json()
    assert g["run_id"] == ids["train"] and not g["truncated"]
    assert {r["id"]: r["depth"] for r in g["runs"]} == {ids["sim"]: -1, ids["train"]: 0,
                                                        ids["ev"]: 1}
    assert {(e["source"], e["target"], e["relation"], tuple(e["artifacts"]))
            for e in g["edges"]} == {
        (ids["sim"], ids["train"], "reads", ("target-neural-model.npz",)),
        (ids["train"], ids["ev"], "reads", ("model.pt",))}
    small = client.get(f"/api/runs/{ids['train']}/lineage", params={"limit": 2}).json()
    assert small["truncated"] and len(small["runs"]) == 2
    assert client.get("/api/runs/999999/lineage").status_code == 404
    assert client.get(f"/api/runs/{ids['train']}/lineage",
                      params={"limit": 1}).status_code == 422

    refused = client.delete(f"/api/runs/{ids['train']}")
    assert refused.status_code == 409
    assert f"evaluate run {ids['ev']} reads run {ids['train']}'s model.pt" in \
        refused.json()["detail"]
    assert client.delete(f"/api/runs/{ids['ev']}").status_code == 204
    assert client.delete(f"/api/runs/{ids['train']}").status_code == 204
    assert not (Path(settings.artifacts) / str(ids["train"]) / "model.pt").exists()


def test_the_api_applies_the_policies_on_its_own_unless_told_not_to(
        client: TestClient, settings: Settings) -> None:
    from server.reaper import Retention, retain_once

    ids = _chain(settings)
    assert client.post("/api/retention/policies", json={
        "name": "ckpt", "rule": "drop-finished", "pattern": "checkpoint.pt"}).status_code == 201
    assert retain_once(settings) == 1  # the pass the API's loop makes
    assert not (settings.artifacts / str(ids["train"]) / "checkpoint.pt").exists()
    assert retain_once(settings) == 0
    events = [e for e in client.get("/api/audit").json() if e["action"] == "artifacts.expired"]
    assert [(e["actor_name"], e["target_id"]) for e in events] == [("", ids["train"])]

    off = Retention(settings.model_copy(update={"retention_interval_s": 0.0}))
    off.start()  # 0: the loop never starts; an admin applies them
    assert not off._thread.is_alive()
    off.stop()
    on = Retention(settings)
    on.start()
    assert on._thread.is_alive()
    on.stop()
    assert not on._thread.is_alive()
