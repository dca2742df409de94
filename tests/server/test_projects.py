"""Projects and roles: what each role does, the audit trail of it, the migration of a
store from before projects, and the webhooks of runs their owner may no longer read."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from core.store.db import engine_for, migrate, session_scope
from core.store.models import Project, ProjectMember, ProjectRole, Role, Run, User

pytestmark = pytest.mark.no_numerics  # access rules over HTTP and SQL: no float a kernel computes


def _as(client: TestClient, token: str) -> TestClient:
    other = TestClient(client.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


def _member(client: TestClient, name: str) -> TestClient:
    res = client.post("/api/users", json={"name": name})
    assert res.status_code == 201, res.text
    return _as(client, res.json()["token"])


def _external(c: TestClient, **body: Any) -> dict[str, Any]:
    res = c.post("/api/runs", json={"kind": "external", "config": {"params": {}}, **body})
    assert res.status_code == 201, res.text
    return dict(res.json())


def test_a_new_member_works_in_the_default_project_as_before_projects(
        client: TestClient) -> None:
    ada, bob = _member(client, "ada"), _member(client, "bob")
    run = _external(ada, name="mine")
    assert (run["project"], run["project_id"]) == ("default", 1)
    assert [r["id"] for r in bob.get("/api/runs").json()["items"]] == [run["id"]]
    assert bob.post(f"/api/runs/{run['id']}/cancel").status_code == 403  # not bob's
    assert ada.get("/api/projects").json()[0] | {"created_at": None} == {
        "id": 1, "name": "default", "description": "", "created_at": None,
        "role": "editor", "runs": 1, "members": []}


def test_roles_in_a_project_and_what_each_may_do(client: TestClient) -> None:
    own, ed, view, out = (_member(client, n) for n in ("own", "ed", "view", "out"))
    for name in ("own", "ed", "view", "out"):
        client.delete(f"/api/projects/default/members/{name}")
    assert own.post("/api/projects", json={"name": "v1"}).status_code == 403  # admins make
    made = client.post("/api/projects", json={"name": "v1", "description": "V1 recordings",
                                              "owners": ["own"]})
    assert made.status_code == 201, made.text
    assert [m["user"] for m in made.json()["members"]] == ["own"]
    assert ed.put("/api/projects/v1/members/ed", json={"role": "owner"}).status_code == 404
    for user, role in (("ed", "editor"), ("view", "viewer")):
        assert own.put(f"/api/projects/v1/members/{user}", json={"role": role}
                       ).status_code == 200
    assert ed.put("/api/projects/v1/members/view", json={"role": "owner"}).status_code == 403

    # an outsider, and a member of no project, create nothing and see nothing
    res = out.post("/api/runs", json={"kind": "external", "project": "v1"})
    assert res.status_code == 422 and "project 'v1' does not exist" in res.text
    assert out.post("/api/runs", json={"kind": "external"}).status_code == 403
    # a viewer reads, and writes nothing
    res = view.post("/api/runs", json={"kind": "external", "project": "v1"})
    assert res.status_code == 403 and "viewer" in res.json()["detail"]
    run = _external(ed, project="v1", name="ed's")
    assert view.get(f"/api/runs/{run['id']}").json()["project"] == "v1"
    refused = view.post(f"/api/runs/{run['id']}/cancel")
    assert refused.status_code == 403, refused.text
    assert "viewer of its project" in refused.json()["detail"]
    assert out.get(f"/api/runs/{run['id']}").status_code == 404
    assert out.get("/api/runs").json()["total"] == 0
    # the project's owner changes anyone's run in it; a run goes where its parent is
    assert own.patch(f"/api/runs/{run['id']}", json={"name": "renamed"}).status_code == 200
    child = _external(ed, parent_id=run["id"])
    assert child["project"] == "v1"
    assert ed.get("/api/runs", params={"q": 'project = "v1"'}).json()["total"] == 2
    # an import follows the same rule: into its parent's project, and no other
    record = {"kind": "external", "name": "imported", "status": "succeeded",
              "created_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T01:00:00Z",
              "parent_id": run["id"]}
    imported = ed.post("/api/import/runs", json={**record, "key": "k-parented"})
    assert imported.status_code == 201 and imported.json()["project"] == "v1", imported.text
    elsewhere = client.post("/api/import/runs", json={**record, "key": "k-elsewhere",
                                                      "project": "default"})  # an admin's
    assert elsewhere.status_code == 422, elsewhere.text
    assert elsewhere.json()["detail"][0]["loc"] == ["body", "project"]
    assert "its parent, is in another project" in elsewhere.text
    assert ed.delete(f"/api/runs/{imported.json()['id']}").status_code == 204
    groups = own.get("/api/run-groups", params={"by": "project"}).json()["groups"]
    assert groups == [{"group": {"project": "v1"}, "count": 2, "metrics": {}}]
    # the last owner stays
    res = own.delete("/api/projects/v1/members/own")
    assert res.status_code == 409 and "without an owner" in res.json()["detail"]
    # a project with runs is not deleted
    assert client.delete("/api/projects/v1").status_code == 409


def test_moving_a_run_moves_what_it_made_and_who_reads_it(client: TestClient) -> None:
    ada, bob = _member(client, "ada"), _member(client, "bob")
    assert client.post("/api/projects", json={"name": "private", "owners": ["ada"]}
                       ).status_code == 201
    parent = _external(ada, name="parent")
    child = _external(ada, parent_id=parent["id"])
    assert bob.get(f"/api/runs/{child['id']}").status_code == 200
    res = ada.patch(f"/api/runs/{child['id']}", json={"project": "private"})
    assert res.status_code == 422 and "move that run" in res.text  # a part moves with its whole
    assert bob.patch(f"/api/runs/{parent['id']}", json={"project": "private"}
                     ).status_code == 403
    moved = ada.patch(f"/api/runs/{parent['id']}", json={"project": "private"})
    assert moved.status_code == 200 and moved.json()["project"] == "private"
    assert bob.get(f"/api/runs/{child['id']}").status_code == 404
    assert ada.get(f"/api/runs/{child['id']}").json()["project"] == "private"


def test_the_audit_trail_says_who_did_what_and_owners_read_their_projects(
        client: TestClient) -> None:
    own, ed, other = _member(client, "own"), _member(client, "ed"), _member(client, "other")
    assert ed.get("/api/audit").status_code == 403  # owns no project
    for name, owner in (("v1", "own"), ("v2", "other")):
        assert client.post("/api/projects", json={"name": name, "owners": [owner]}
                           ).status_code == 201
    assert own.put("/api/projects/v1/members/ed", json={"role": "editor"}).status_code == 200
    run = _external(ed, project="v1", name="trial")
    assert ed.patch(f"/api/runs/{run['id']}", json={"tags": ["fig4"]}).status_code == 200
    assert own.post(f"/api/runs/{run['id']}/cancel").status_code == 200
    assert own.delete(f"/api/runs/{run['id']}").status_code == 204
    _external(other, project="v2", name="elsewhere")

    seen = own.get("/api/audit").json()
    v1 = 2  # ids: default is 1
    assert own.get("/api/audit", params={"project": v1}).json() == seen
    # another's project, one they only belong to, and one that does not exist: one answer
    assert other.put("/api/projects/v2/members/own", json={"role": "editor"}
                     ).status_code == 200
    for project in (3, 1, 999):
        refused = own.get("/api/audit", params={"project": project})
        assert refused.status_code == 403 and f"no project {project}" in refused.json()["detail"]
    assert {e["project_id"] for e in seen} == {v1}
    assert [(e["actor_name"], e["action"]) for e in reversed(seen)] == [
        ("admin", "project.created"), ("admin", "project.member_set"),
        ("own", "project.member_set"), ("ed", "run.created"), ("ed", "run.changed"),
        ("own", "run.cancelled"), ("own", "run.deleted")]
    assert seen[0]["detail"]["owner"] == "ed" and seen[0]["target_id"] == run["id"]
    everything = client.get("/api/audit", params={"limit": 500}).json()
    assert {"v2"} <= {e["detail"].get("name") for e in everything}  # an admin's: all
    assert [e["action"] for e in client.get("/api/audit", params={"project": 3}).json()
            ][-1] == "project.created"


def test_a_store_from_before_projects_migrates_into_the_default_project(db_url: str) -> None:
    """Every user becomes an editor of ``default`` (admins its owners) and every run goes
    into it, keeping its metrics, tags and artifacts on SQLite too (the table copy that
    adds the column must not cascade deletes)."""
    url = db_url
    migrate(url, "0016")
    with engine_for(url).begin() as conn:
        for i, (name, role) in enumerate((("boss", "admin"), ("ada", "member")), start=1):
            conn.execute(text("INSERT INTO users (id, name, role, created_at) VALUES "
                              "(:i, :n, :r, CURRENT_TIMESTAMP)"), {"i": i, "n": name, "r": role})
        conn.execute(text("INSERT INTO runs (id, name, owner_id, kind, config, status, "
                          "progress, message, created_at, attempts, log_bytes) VALUES (7, "
                          "'old', 2, 'external', '{}', 'succeeded', 1, '', "
                          "CURRENT_TIMESTAMP, 0, 0)"))
        conn.execute(text("INSERT INTO metrics (run_id, key, step, value, wall_time) "
                          "VALUES (7, 'loss', 0, 1.5, 0)"))
        conn.execute(text("INSERT INTO run_tags (run_id, tag) VALUES (7, 'fig4')"))
    migrate(url)
    with session_scope(url) as s:
        assert s.execute(select(Project.id, Project.name)).all() == [(1, "default")]
        roles = {s.get_one(User, m.user_id).name: m.role
                 for m in s.execute(select(ProjectMember)).scalars()}
        assert roles == {"boss": ProjectRole.owner, "ada": ProjectRole.editor}
        assert s.get_one(Run, 7).project_id == 1
        assert s.execute(text("SELECT value FROM metrics WHERE run_id = 7")).scalar() == 1.5
        assert s.execute(text("SELECT tag FROM run_tags WHERE run_id = 7")).scalar() == "fig4"
    migrate(url, "0016")  # and down again, keeping the rows
    migrate(url)
    with session_scope(url) as s:
        assert s.execute(text("SELECT count(*) FROM metrics")).scalar() == 1


@pytest.mark.parametrize("taken_out", [True, False])
def test_a_webhook_hears_only_of_runs_its_owner_may_read(client: TestClient,
                                                          taken_out: bool) -> None:
    from core.store.models import WebhookDelivery

    ada = _member(client, "ada")
    assert ada.post("/api/webhooks", json={"url": "https://example.org/hook"}
                    ).status_code == 201
    run = _external(ada)
    if taken_out:  # an admin takes ada out of the project her run is in
        assert client.delete("/api/projects/default/members/ada").status_code == 204
    assert client.post(f"/api/runs/{run['id']}/finish", json={"status": "succeeded"}
                       ).status_code == 200
    settings = client.app.state.settings
    with session_scope(settings.db_url) as s:
        events = s.execute(select(WebhookDelivery.event).where(
            WebhookDelivery.run_id == run["id"])).scalars().all()
    assert events == ([] if taken_out else ["run.succeeded"])


def test_an_evaluation_of_a_model_moved_out_of_reach_shows_no_model(
        client: TestClient) -> None:
    """The summaries, the record and the leaderboard of an evaluation read its model: once
    the model moves to a project a member does not belong to, they show the evaluation as
    skipped, never the model's config."""
    from core.store.users import create_user
    from tests.core.test_scores import _evaluation, _model
    from tests.server.test_records_api import _result

    ada = _member(client, "ada")
    assert client.post("/api/projects", json={"name": "private"}).status_code == 201
    settings = client.app.state.settings
    with session_scope(settings.db_url) as s:
        owner = create_user(s, name="modeller", role=Role.member)
        model = _model(s, owner, target="none", alpha=0.0)
        ev = _evaluation(s, owner, model, _result(0.9, 0.1, 0.3, 0.7))
        model_id = model.id
    robust = ada.get("/api/summaries/robustness", params={"run_id": [ev]}).json()
    assert robust["skipped"] == [] and robust["rows"]
    assert ada.get(f"/api/runs/{ev}/record").status_code == 200
    assert ada.get("/api/leaderboard").json()["total"] == 1
    assert client.patch(f"/api/runs/{model_id}", json={"project": "private"}
                        ).status_code == 200
    robust = ada.get("/api/summaries/robustness", params={"run_id": [ev]}).json()
    assert robust == {"rows": [], "skipped": [ev], "frequency": robust["frequency"]}
    res = ada.get(f"/api/runs/{ev}/record")
    assert res.status_code == 409 and "where you may not read it" in res.json()["detail"]
    assert ada.get("/api/leaderboard").json()["total"] == 0
    assert client.get("/api/leaderboard").json()["total"] == 1  # an admin reads both
