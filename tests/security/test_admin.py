"""An admin cuts someone off, and nobody else can: disabling a user refuses every token of
theirs at once, an admin lists and revokes anyone's tokens, a member cannot make
themselves an admin or reach an admin route, the last admin cannot be disabled or demoted
(not even by two admins at once), and every change is in the audit trail."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.lifecycle import finish_run, start_run
from core.settings import Settings
from core.store.db import migrate, session_scope
from core.store.models import AuditEvent, Role, RunStatus, User
from core.store.users import LastAdmin, create_user, ensure_admin, set_disabled, set_role
from tests.concurrently import at_once
from tests.security.conftest import as_token


def _id(client: TestClient) -> int:
    return int(client.get("/api/me").json()["id"])


def _audit_count(settings: Settings) -> int:
    with session_scope(settings.db_url) as s:
        return s.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def test_a_disabled_users_every_token_is_refused_at_once(
        api: TestClient, member: Callable[[str], TestClient]) -> None:
    eve = member("eve")
    eve_id = _id(eve)
    laptop = as_token(api, eve.post("/api/tokens", json={"name": "laptop"}).json()["token"])
    assert laptop.get("/api/me").status_code == 200
    res = api.patch(f"/api/users/{eve_id}", json={"disabled": True})
    assert res.status_code == 200 and res.json()["disabled_at"] is not None
    for client in (eve, laptop):
        assert client.get("/api/me").status_code == 401
        assert client.post("/api/runs", json={"kind": "external",
                                              "config": {"params": {}}}).status_code == 401
        assert client.post("/api/tokens", json={"name": "another"}).status_code == 401
    assert api.patch(f"/api/users/{eve_id}", json={"disabled": False}).status_code == 200
    assert eve.get("/api/me").status_code == 200 and laptop.get("/api/me").status_code == 200


def test_disabling_cancels_queued_runs_and_running_ones_keep_their_results(
        api: TestClient, member: Callable[[str], TestClient], backend: Settings) -> None:
    eve = member("eve")
    queued, running = (eve.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}})
                       .json()["id"] for _ in range(2))
    with session_scope(backend.db_url) as s:
        assert start_run(s, running, worker="gpu-1:1")
    assert api.patch(f"/api/users/{_id(eve)}", json={"disabled": True}).status_code == 200
    assert api.get(f"/api/runs/{queued}").json()["status"] == "cancelled"
    assert api.get(f"/api/runs/{running}").json()["status"] == "running"
    with session_scope(backend.db_url) as s:  # its worker finishes it as usual
        finish_run(s, running, RunStatus.succeeded, result={"test_acc": 0.5})
    finished = api.get(f"/api/runs/{running}").json()
    assert finished["status"] == "succeeded" and finished["result"] == {"test_acc": 0.5}


def test_an_admin_lists_and_revokes_anyones_tokens_a_member_only_her_own(
        api: TestClient, member: Callable[[str], TestClient]) -> None:
    eve, bob = member("eve"), member("bob")
    made = eve.post("/api/tokens", json={"name": "laptop"}).json()
    listed = api.get(f"/api/users/{_id(eve)}/tokens")
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()] == ["first", "laptop"]
    assert all(set(t) == {"id", "user_id", "name", "scope", "created_at", "revoked_at"}
               for t in listed.json())  # never the secret, nor its hash
    assert bob.get(f"/api/users/{_id(eve)}/tokens").status_code == 403
    assert bob.delete(f"/api/tokens/{made['id']}").status_code == 404
    assert eve.get(f"/api/users/{_id(eve)}/tokens").status_code == 200  # her own
    assert api.delete(f"/api/tokens/{made['id']}").status_code == 204
    assert as_token(api, made["token"]).get("/api/me").status_code == 401
    assert eve.get("/api/me").status_code == 200  # her other token still works


def test_a_member_cannot_make_herself_an_admin(
        api: TestClient, member: Callable[[str], TestClient]) -> None:
    eve = member("eve")
    me = _id(eve)
    attempts = [
        eve.patch(f"/api/users/{me}", json={"role": "admin"}),
        eve.patch(f"/api/users/{me}", json={"disabled": False}),
        eve.post("/api/users", json={"name": "eve2", "role": "admin"}),
        eve.patch("/api/me", json={"role": "admin"}),
        eve.put(f"/api/users/{me}", json={"role": "admin"}),
    ]
    assert [r.status_code for r in attempts] == [403, 403, 403, 405, 405]
    assert eve.get("/api/me").json()["role"] == "member"
    assert [u["name"] for u in api.get("/api/users").json() if u["role"] == "admin"] == ["admin"]


def test_admin_routes_are_403_for_members_and_401_without_a_token(
        api: TestClient, anon: TestClient, member: Callable[[str], TestClient]) -> None:
    eve = member("eve")
    admin_id = _id(api)
    calls = [("PATCH", f"/api/users/{admin_id}", {"disabled": True}),
             ("GET", f"/api/users/{admin_id}/tokens", None),
             ("GET", "/api/audit", None),
             ("POST", "/api/users", {"name": "mallory"})]
    for method, path, body in calls:
        assert eve.request(method, path, json=body).status_code == 403, path
        assert anon.request(method, path, json=body).status_code == 401, path
    assert api.get("/api/me").json()["disabled_at"] is None  # nothing happened


def test_the_last_enabled_admin_cannot_be_disabled_or_demoted(
        api: TestClient, member: Callable[[str], TestClient], backend: Settings) -> None:
    me = _id(api)
    before = _audit_count(backend)
    for body in ({"disabled": True}, {"role": "member"}):
        res = api.patch(f"/api/users/{me}", json=body)
        assert res.status_code == 409 and "no enabled admin" in res.json()["detail"]
    assert _audit_count(backend) == before  # a refused change records nothing
    ada = api.post("/api/users", json={"name": "ada", "role": "admin"}).json()
    assert api.patch(f"/api/users/{ada['id']}", json={"disabled": True}).status_code == 200
    assert api.patch(f"/api/users/{me}", json={"role": "member"}).status_code == 409
    assert api.get("/api/me").json()["role"] == "admin"


def test_two_admins_disabling_each_other_at_once_leave_one(
        api: TestClient, backend: Settings) -> None:
    ada_res = api.post("/api/users", json={"name": "ada", "role": "admin"}).json()
    ada = as_token(api, ada_res["token"])
    me = _id(api)
    results = at_once([
        lambda: api.patch(f"/api/users/{ada_res['id']}", json={"disabled": True}).status_code,
        lambda: ada.patch(f"/api/users/{me}", json={"disabled": True}).status_code,
    ])
    # the loser is refused: 409, or 401 when the winner had disabled it before it got in
    assert sorted(results) in ([200, 401], [200, 409])
    still = api if results[0] == 200 else ada  # the one not disabled
    admins = [u for u in still.get("/api/users").json() if u["role"] == "admin"]
    assert sum(u["disabled_at"] is None for u in admins) == 1


def test_two_admins_changes_at_once_in_the_store_leave_one(backend: Settings) -> None:
    """The same race past authentication, in the store: each disables or demotes the
    other in its own transaction, released together."""
    migrate(backend.db_url)
    with session_scope(backend.db_url) as s:
        ensure_admin(s)
        ada = create_user(s, name="ada", role=Role.admin)
        ids = [s.execute(select(User.id).where(User.name == "admin")).scalar_one(), ada.id]

    def change(actor_id: int, target_id: int, demote: bool) -> str:
        try:
            with session_scope(backend.db_url) as s:
                actor, target = s.get(User, actor_id), s.get(User, target_id)
                assert actor is not None and target is not None
                if demote:
                    set_role(s, target, Role.member, actor=actor)
                else:
                    set_disabled(s, target, True, actor=actor)
            return "done"
        except LastAdmin:
            return "refused"

    for demote in (False, True):
        results = at_once([lambda d=demote: change(ids[0], ids[1], d),  # type: ignore[misc]
                           lambda d=demote: change(ids[1], ids[0], d)])  # type: ignore[misc]
        assert sorted(results) == ["done", "refused"]
        with session_scope(backend.db_url) as s:
            left = s.execute(select(func.count()).select_from(User).where(
                User.role == Role.admin, User.disabled_at.is_(None))).scalar_one()
            assert left == 1
            for user in s.execute(select(User)).scalars():  # again, from two admins
                user.role, user.disabled_at = Role.admin, None


def test_the_audit_trail_says_who_did_what_to_whom(
        api: TestClient, member: Callable[[str], TestClient], anon: TestClient) -> None:
    eve = member("eve")
    eve_id = _id(eve)
    laptop = eve.post("/api/tokens", json={"name": "laptop"}).json()
    api.delete(f"/api/tokens/{laptop['id']}")
    api.patch(f"/api/users/{eve_id}", json={"disabled": True})
    api.patch(f"/api/users/{eve_id}", json={"disabled": False, "role": "admin"})
    events = api.get("/api/audit").json()
    seen = [(e["actor_name"], e["action"], e["target_kind"], e["target_id"])
            for e in reversed(events)]
    first_tokens = [t["id"] for t in api.get("/api/tokens").json()] + \
        [t["id"] for t in eve.get("/api/tokens").json()][:1]
    assert seen == [
        ("", "user.created", "user", _id(api)),  # the first admin, made by the service
        ("", "token.issued", "token", first_tokens[0]),
        ("admin", "user.created", "user", eve_id),
        ("admin", "token.issued", "token", first_tokens[1]),
        ("eve", "token.issued", "token", laptop["id"]),
        ("admin", "token.revoked", "token", laptop["id"]),
        ("admin", "user.disabled", "user", eve_id),
        ("admin", "user.role_changed", "user", eve_id),
        ("admin", "user.enabled", "user", eve_id),
    ]
    revoked = events[3]
    assert revoked["detail"] == {"user_id": eve_id, "user": "eve", "name": "laptop"}
    assert laptop["token"] not in str(events)  # no secret in the trail
    assert events[1]["detail"] == {"name": "eve", "before": "member", "after": "admin"}


def test_an_admins_cancel_and_delete_of_someone_elses_run_are_audited(
        api: TestClient, member: Callable[[str], TestClient], backend: Settings) -> None:
    """Every change to a run is in the trail (its own owner's too: projects have owners
    who read who did what in them), the owner named in each."""
    eve = member("eve")
    mine = eve.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}}).json()["id"]
    theirs = eve.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}}).json()["id"]
    assert eve.post(f"/api/runs/{mine}/cancel").status_code == 200
    assert api.post(f"/api/runs/{theirs}/cancel").status_code == 200
    assert api.delete(f"/api/runs/{theirs}").status_code == 204
    events = [(e["actor_name"], e["action"], e["target_id"], e["detail"].get("owner"))
              for e in api.get("/api/audit").json() if e["target_kind"] == "run"]
    assert events == [("admin", "run.deleted", theirs, "eve"),
                      ("admin", "run.cancelled", theirs, "eve"),
                      ("eve", "run.cancelled", mine, "eve"),
                      ("eve", "run.created", theirs, None),
                      ("eve", "run.created", mine, None)]
