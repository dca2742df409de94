"""Team accounts: users, per-user tokens, and who may change which run."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import engine_for, migrate, session_scope
from core.store.metrics import insert_points
from core.store.models import Role, RunStatus, User

pytestmark = pytest.mark.no_numerics


def _as(client: TestClient, token: str) -> TestClient:
    other = TestClient(client.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


def _member(client: TestClient, name: str = "ada") -> TestClient:
    res = client.post("/api/users", json={"name": name})
    assert res.status_code == 201, res.text
    assert res.json()["role"] == "member"
    return _as(client, res.json()["token"])


def test_admin_adds_members_and_members_cannot(client: TestClient) -> None:
    ada = _member(client)
    assert ada.get("/api/me").json()["name"] == "ada"
    assert client.post("/api/users", json={"name": "ada"}).status_code == 409
    assert ada.post("/api/users", json={"name": "eve"}).status_code == 403
    assert client.post("/api/users", json={"name": "bad name!"}).status_code == 422
    names = [u["name"] for u in ada.get("/api/users").json()]
    assert names == ["admin", "ada"]


def test_tokens_are_created_listed_and_revoked_by_their_user(client: TestClient) -> None:
    ada = _member(client)
    made = ada.post("/api/tokens", json={"name": "laptop"}).json()
    assert made["token"].startswith("nr_") and made["name"] == "laptop"
    laptop = _as(client, made["token"])
    assert laptop.get("/api/me").json()["name"] == "ada"
    listed = ada.get("/api/tokens").json()
    assert [t["name"] for t in listed] == ["first", "laptop"]
    assert all("token" not in t for t in listed)  # never shown again
    admin_token = client.get("/api/tokens").json()[0]["id"]
    assert ada.delete(f"/api/tokens/{admin_token}").status_code == 404  # not hers
    assert ada.delete(f"/api/tokens/{made['id']}").status_code == 204
    assert laptop.get("/api/me").status_code == 401
    assert ada.get("/api/tokens").json()[1]["revoked_at"] is not None


def test_only_the_owner_or_an_admin_may_change_a_run(
    client: TestClient, settings: Settings
) -> None:
    ada, bob = _member(client, "ada"), _member(client, "bob")
    run = ada.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}}).json()
    rid = run["id"]
    assert bob.get(f"/api/runs/{rid}").status_code == 200  # everyone browses
    for method, path, body in (("PATCH", f"/api/runs/{rid}", {"name": "x"}),
                               ("POST", f"/api/runs/{rid}/cancel", None),
                               ("DELETE", f"/api/runs/{rid}", None)):
        res = bob.request(method, path, json=body)
        assert res.status_code == 403, (method, res.text)
    assert ada.get(f"/api/runs/{rid}").json()["name"] == ""  # nothing changed
    res = ada.patch(f"/api/runs/{rid}", json={"name": "mine", "tags": ["fig4", "cpu"]})
    assert res.status_code == 200 and res.json()["tags"] == ["cpu", "fig4"]
    assert client.patch(f"/api/runs/{rid}", json={"tags": ["fig5"]}).json()["tags"] == ["fig5"]
    assert ada.patch(f"/api/runs/{rid}", json={"tags": ["no spaces"]}).status_code == 422
    listed = bob.get("/api/runs", params={"tag": "fig5"}).json()
    assert [r["id"] for r in listed["items"]] == [rid] and listed["items"][0]["name"] == "mine"
    assert bob.get("/api/runs", params={"tag": "fig4"}).json()["total"] == 0
    # a queued run is not deleted; once finished, its metrics and files go with it
    assert ada.delete(f"/api/runs/{rid}").status_code == 409
    with session_scope(settings.db_url) as s:
        finish_run(s, rid, RunStatus.succeeded)
        insert_points(s, rid, [("loss", 0, 1.0, 0.0)])
        save_artifact(s, settings.artifacts, run_id=rid, name="model.pt", data=b"w",
                      media_type="application/octet-stream")
    path = settings.artifacts / str(rid) / "model.pt"
    assert path.exists()
    assert ada.delete(f"/api/runs/{rid}").status_code == 204
    assert ada.get(f"/api/runs/{rid}").status_code == 404 and not path.exists()
    assert ada.get(f"/api/runs/{rid}/metrics").status_code == 404


def test_every_api_route_but_health_needs_a_token(client: TestClient) -> None:
    anon = TestClient(client.app, raise_server_exceptions=False)
    checked = 0
    for route, methods in client.app.openapi()["paths"].items():
        if not route.startswith("/api"):
            continue
        path = route
        for name in ("run_id", "token_id", "user_id", "name", "key"):
            path = path.replace("{" + name + "}", "1")
        for method in methods:
            res = anon.request(method.upper(), path)
            expected = 200 if route == "/api/health" else 401
            assert res.status_code == expected, (method, route, res.status_code)
            checked += 1
    assert checked >= 20


def test_writes_into_a_run_are_the_owners_or_an_admins(client: TestClient) -> None:
    ada, bob = _member(client, "ada"), _member(client, "bob")
    run = ada.post("/api/runs", json={"kind": "external", "config": {"params": {}}}).json()
    rid = run["id"]
    points = {"points": [{"key": "loss", "step": 0, "value": 1.0}]}
    forbidden = [
        bob.post(f"/api/runs/{rid}/metrics", json=points),
        bob.put(f"/api/runs/{rid}/artifacts/notes.txt", content=b"x"),
        bob.post(f"/api/runs/{rid}/finish", json={"status": "succeeded"}),
    ]
    assert [r.status_code for r in forbidden] == [403, 403, 403]
    assert ada.get(f"/api/runs/{rid}/metrics").json() == []  # nothing got in
    assert ada.get(f"/api/runs/{rid}/artifacts").json() == []
    assert ada.post(f"/api/runs/{rid}/metrics", json=points).status_code == 200
    assert client.put(f"/api/runs/{rid}/artifacts/notes.txt", content=b"x").status_code == 201
    assert ada.post(f"/api/runs/{rid}/finish", json={"status": "failed",
                                                     "error": "diverged"}).status_code == 200
    assert ada.get(f"/api/runs/{rid}").json()["error"] == "diverged"


def test_an_admin_changes_roles_and_the_page_of_users_says_who_is_disabled(
        client: TestClient) -> None:
    ada = _member(client)
    ada_id = ada.get("/api/me").json()["id"]
    res = client.patch(f"/api/users/{ada_id}", json={"role": "admin"})
    assert res.status_code == 200 and res.json()["role"] == "admin"
    assert ada.get("/api/audit").status_code == 200  # an admin now
    assert ada.patch(f"/api/users/{ada_id}", json={"role": "member"}).status_code == 200
    assert ada.get("/api/audit").status_code == 403
    assert client.patch(f"/api/users/{ada_id}", json={}).json()["role"] == "member"  # no-op
    client.patch(f"/api/users/{ada_id}", json={"disabled": True})
    listed = {u["name"]: u["disabled_at"] for u in client.get("/api/users").json()}
    assert listed["admin"] is None and listed["ada"] is not None


@pytest.mark.parametrize(("body", "field"), [({"disabled": "yes"}, "disabled"),
                                             ({"role": "root"}, "role"),
                                             ({"name": "x"}, "name")])
def test_a_bad_user_change_is_a_422_naming_the_field(client: TestClient, body: dict[str, str],
                                                     field: str) -> None:
    res = client.patch("/api/users/1", json=body)
    assert res.status_code == 422 and res.json()["detail"][0]["loc"][-1] == field


def test_unknown_users_are_404s(client: TestClient) -> None:
    for method, path in (("PATCH", "/api/users/999"), ("GET", "/api/users/999/tokens")):
        res = client.request(method, path, json={"disabled": True})
        assert res.status_code == 404 and "no user 999" in res.json()["detail"]


def test_the_audit_trail_pages_newest_first(client: TestClient) -> None:
    for name in ("a", "b", "c"):
        client.post("/api/tokens", json={"name": name})
    first = client.get("/api/audit", params={"limit": 2}).json()
    assert [e["detail"]["name"] for e in first] == ["c", "b"]
    rest = client.get("/api/audit", params={"limit": 2, "before": first[-1]["id"]}).json()
    assert [e["detail"]["name"] for e in rest] == ["a", "first-start"]
    assert client.get("/api/audit", params={"limit": 501}).status_code == 422


def test_migration_0008_goes_down_and_up_keeping_users(db_url: str) -> None:
    from core.store.users import create_user

    migrate(db_url)
    with session_scope(db_url) as s:
        create_user(s, name="ada", role=Role.member)
    migrate(db_url, "0007")
    schema = inspect(engine_for(db_url))
    assert "audit_events" not in schema.get_table_names()
    assert "disabled_at" not in {c["name"] for c in schema.get_columns("users")}
    migrate(db_url)
    with session_scope(db_url) as s:
        ada = s.query(User).one()
        assert ada.name == "ada" and ada.disabled_at is None


def test_the_cli_disables_lists_revokes_and_reads_the_audit_trail(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import build_parser
    from core.store.users import ensure_admin
    from tests.livesrv import live_server

    def cli(*argv: str) -> str:
        args = build_parser().parse_args(list(argv))
        assert args.func(args, settings.model_copy(update={"api_url": url, "token": token})) == 0
        return capsys.readouterr().out

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        assert cli("users", "add", "eve").startswith("user 2: eve (member)\n")
        assert "disabled eve: their tokens are refused" in cli("users", "disable", "eve")
        listed = cli("users").splitlines()
        assert listed[0].split() == ["1", "admin", "admin", "enabled"]
        assert listed[1].split()[:4] == ["2", "eve", "member", "disabled"]
        (first,) = cli("tokens", "list", "--user", "eve").splitlines()
        assert first.split()[1] == "first" and first.endswith("active")
        assert cli("tokens", "revoke", first.split()[0]).startswith("revoked token")
        assert cli("users", "role", "eve", "admin") == "eve is now an admin\n"
        events = cli("audit", "--limit", "3").splitlines()
        assert [e.split()[3] for e in events[:3]] == [
            "user.role_changed", "token.revoked", "user.disabled"]
        assert "token 2 (first of eve)" in events[1]
        assert events[-1] == f"(older: neuroreg audit --before {events[2].split()[0]})"
