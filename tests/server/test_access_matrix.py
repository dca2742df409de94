"""Every route, driven as each role across two projects: 0 reads or writes outside the
caller's rights (:mod:`core.access`).

Two projects, ``alpha`` and ``beta``, each with a run whose every field (name, tag,
config, metric key, log line, artifact) carries its project's marker. The callers:
alpha's owner, alpha's editor who made alpha's run, another alpha editor, alpha's viewer,
and beta's editor (an outsider to alpha, owner of beta's run). Each route of the API
(every path of ``/openapi.json`` and every MLflow route) is called by each caller
against each project's run, and

- no answer carries the marker of a project the caller does not belong to;
- a run they may not read is "not found" (404) — never 403, which would say it exists;
- a write they may not make is refused (403/404) and changes nothing stored;
- a read they may make is not refused, nor a write they may make (it is made on a run
  of its own, so that the next caller finds the store as it was).

A route without a declared policy below fails the test: a new route must say what it
needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from core.settings import Settings
from core.store.db import session_scope

pytestmark = pytest.mark.no_numerics  # access rules over HTTP and SQL: no float a kernel computes

MARK = {"alpha": "zqalphamark", "beta": "zqbetamark"}

# -- the policy of every route ------------------------------------------------------------
# "read": a GET of one run's data (needs read); "write": a change to one run (needs write);
# "list": a GET over many runs (shows only readable ones); "create": makes a run whose
# project, parent or input is the target; "team": users, tokens, webhooks, retention
# policies, the caller's own things or an admin's; "static": no run data at all;
# "worker": a worker token's (a member's token: 403); "project": the project routes.
POLICY: dict[tuple[str, str], str] = {
    ("GET", "/api/health"): "static",
    ("GET", "/api/me"): "static",
    ("GET", "/api/artifact-names"): "static",
    ("GET", "/api/labels"): "static",
    ("GET", "/api/kinds"): "static",
    ("GET", "/api/recordings"): "static",
    ("POST", "/api/recordings/inspect"): "static",
    ("GET", "/api/tokens"): "team",
    ("POST", "/api/tokens"): "team",
    ("DELETE", "/api/tokens/{token_id}"): "team",
    ("GET", "/api/users"): "team",
    ("POST", "/api/users"): "team",
    ("PATCH", "/api/users/{user_id}"): "team",
    ("GET", "/api/users/{user_id}/tokens"): "team",
    ("GET", "/api/audit"): "list",
    ("GET", "/api/webhooks"): "team",
    ("POST", "/api/webhooks"): "team",
    ("DELETE", "/api/webhooks/{hook_id}"): "team",
    ("POST", "/api/webhooks/{hook_id}/test"): "team",
    ("GET", "/api/webhooks/{hook_id}/deliveries"): "team",
    ("GET", "/api/retention/policies"): "team",
    ("POST", "/api/retention/policies"): "team",
    ("DELETE", "/api/retention/policies/{policy_id}"): "team",
    ("GET", "/api/retention/plan"): "list",
    ("POST", "/api/retention/preview"): "list",
    ("POST", "/api/retention/apply"): "team",
    ("GET", "/api/projects"): "project",
    ("POST", "/api/projects"): "project",
    ("GET", "/api/projects/{project}"): "project",
    ("DELETE", "/api/projects/{project}"): "project",
    ("PUT", "/api/projects/{project}/members/{user}"): "project",
    ("DELETE", "/api/projects/{project}/members/{user}"): "project",
    ("POST", "/api/runs"): "create",
    ("POST", "/api/dry-run"): "create",
    ("POST", "/api/import/runs"): "create",
    ("GET", "/api/runs"): "list",
    ("GET", "/api/runs.csv"): "list",
    ("GET", "/api/run-groups"): "list",
    ("GET", "/api/run-groups/curves"): "list",
    ("GET", "/api/leaderboard"): "list",
    ("GET", "/api/summaries/gamma"): "list",
    ("GET", "/api/summaries/robustness"): "list",
    ("GET", "/api/summaries/frontier"): "list",
    ("GET", "/api/provenance-diff"): "list",
    ("GET", "/api/runs/{run_id}"): "read",
    ("GET", "/api/runs/{run_id}/metrics"): "read",
    ("GET", "/api/runs/{run_id}/metrics/{key}"): "read",
    ("GET", "/api/runs/{run_id}/series"): "read",
    ("GET", "/api/runs/{run_id}/artifacts"): "read",
    ("GET", "/api/runs/{run_id}/artifacts/{name}"): "read",
    ("GET", "/api/runs/{run_id}/matrices"): "read",
    ("GET", "/api/runs/{run_id}/matrices/{name}"): "read",
    ("GET", "/api/runs/{run_id}/matrices/{name}/pairs"): "read",
    ("GET", "/api/runs/{run_id}/matrices/{name}/spectrum"): "read",
    ("GET", "/api/runs/{run_id}/record"): "read",
    ("GET", "/api/runs/{run_id}/logs"): "read",
    ("GET", "/api/runs/{run_id}/provenance"): "read",
    ("GET", "/api/runs/{run_id}/system"): "read",
    ("GET", "/api/runs/{run_id}/lineage"): "read",
    ("GET", "/api/studies/{run_id}"): "read",
    ("GET", "/api/studies/{run_id}/frontier"): "read",
    ("GET", "/api/studies/{run_id}/curves"): "read",
    ("GET", "/api/studies/{run_id}/report"): "read",
    ("GET", "/api/export/runs/{run_id}/points/{key}"): "read",
    ("PATCH", "/api/runs/{run_id}"): "write",
    ("DELETE", "/api/runs/{run_id}"): "write",
    ("POST", "/api/runs/{run_id}/finish"): "write",
    ("POST", "/api/runs/{run_id}/cancel"): "write",
    ("POST", "/api/runs/{run_id}/metrics"): "write",
    ("PUT", "/api/runs/{run_id}/artifacts/{name}"): "write",
    ("POST", "/api/runs/{run_id}/logs"): "write",
    ("POST", "/api/import/runs/{run_id}/logs"): "write",
    ("PUT", "/api/import/runs/{run_id}/artifacts/{name}"): "write",
    # MLflow's API (not in /openapi.json): run ids in the body or the path
    ("GET", "/api/2.0/mlflow/runs/get"): "read",
    ("GET", "/api/2.0/mlflow/metrics/get-history"): "read",
    ("GET", "/api/2.0/mlflow/artifacts/list"): "read",
    ("GET", "/api/2.0/mlflow-artifacts/artifacts"): "read",
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/{path}"): "read",
    ("POST", "/api/2.0/mlflow/runs/update"): "write",
    ("POST", "/api/2.0/mlflow/runs/delete"): "write",
    ("POST", "/api/2.0/mlflow/runs/restore"): "write",
    ("POST", "/api/2.0/mlflow/runs/log-metric"): "write",
    ("POST", "/api/2.0/mlflow/runs/log-parameter"): "write",
    ("POST", "/api/2.0/mlflow/runs/set-tag"): "write",
    ("POST", "/api/2.0/mlflow/runs/delete-tag"): "write",
    ("POST", "/api/2.0/mlflow/runs/log-batch"): "write",
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/{path}"): "write",
    ("GET", "/api/2.0/mlflow/runs/search"): "list",
    ("POST", "/api/2.0/mlflow/runs/search"): "list",
    ("POST", "/api/2.0/mlflow/runs/create"): "static",  # into the caller's own project
    ("POST", "/api/2.0/mlflow/logged-models/search"): "static",
    # experiments are names shared by the lab (as tags are); their runs are scoped
    ("POST", "/api/2.0/mlflow/experiments/create"): "static",
    ("GET", "/api/2.0/mlflow/experiments/get"): "static",
    ("GET", "/api/2.0/mlflow/experiments/get-by-name"): "static",
    ("POST", "/api/2.0/mlflow/experiments/delete"): "static",
    ("POST", "/api/2.0/mlflow/experiments/restore"): "static",
    ("POST", "/api/2.0/mlflow/experiments/update"): "static",
    ("POST", "/api/2.0/mlflow/experiments/set-experiment-tag"): "static",
    ("POST", "/api/2.0/mlflow/experiments/delete-experiment-tag"): "static",
    ("GET", "/api/2.0/mlflow/experiments/search"): "static",
    ("POST", "/api/2.0/mlflow/experiments/search"): "static",
}
WORKER_PREFIX = "/api/worker"
MLFLOW_CATCH_ALL = ("/api/2.0/mlflow/{rest}", "/api/2.0/mlflow-artifacts/{rest}")


def _routes(client: TestClient) -> list[tuple[str, str]]:
    from server.routes import mlflow

    found = [(m.upper(), p) for p, ops in client.app.openapi()["paths"].items() for m in ops]
    for router in (mlflow.router, mlflow.artifacts_router):
        for route in router.routes:
            path = route.path.replace("{path:path}", "{path}").replace("{rest:path}", "{rest}")
            if path in MLFLOW_CATCH_ALL:
                continue
            found += [(m, path) for m in sorted(route.methods) if m != "HEAD"]
    return sorted(set(found))


# -- the two projects and the callers ------------------------------------------------------

@dataclass
class Caller:
    name: str
    client: TestClient
    roles: dict[str, str]  # project -> viewer/editor/owner

    def may_read(self, project: str) -> bool:
        return project in self.roles

    def may_write(self, project: str, run_owner: str) -> bool:
        role = self.roles.get(project)
        return role == "owner" or (role == "editor" and run_owner == self.name)


def _as(client: TestClient, token: str) -> TestClient:
    other = TestClient(client.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


def _external(c: TestClient, project: str, name: str, *, finished: bool = False) -> int:
    mark = MARK[project]
    res = c.post("/api/runs", json={"kind": "external", "name": name, "project": project,
                                    "config": {"params": {"note": mark}}})
    assert res.status_code == 201, res.text
    rid = int(res.json()["id"])
    assert c.patch(f"/api/runs/{rid}", json={"tags": [mark]}).status_code == 200
    assert c.post(f"/api/runs/{rid}/metrics", json={"points": [
        {"key": f"{mark}_loss", "step": 0, "value": 1.0}]}).status_code == 200
    assert c.post(f"/api/runs/{rid}/logs", json={"lines": [
        {"seq": 0, "line": f"a line of {mark}"}]}).status_code == 200
    assert c.put(f"/api/runs/{rid}/artifacts/{mark}.txt", content=mark.encode()
                 ).status_code == 201
    if finished:
        assert c.post(f"/api/runs/{rid}/finish", json={"status": "succeeded"}
                      ).status_code == 200
    return rid


@pytest.fixture
def lab(client: TestClient) -> dict[str, Any]:
    tokens = {}
    for name in ("own", "edit", "edit2", "view", "bob", "spare"):
        res = client.post("/api/users", json={"name": name})
        assert res.status_code == 201, res.text
        tokens[name] = res.json()["token"]
        # out of the default project: only alpha and beta hold what they may read
        assert client.delete(f"/api/projects/default/members/{name}").status_code == 204
    res = client.post("/api/projects", json={"name": "alpha", "owners": ["own"]})
    assert res.status_code == 201, res.text
    assert client.post("/api/projects", json={"name": "beta", "owners": ["bob"]}
                       ).status_code == 201
    own = _as(client, tokens["own"])
    for user, role in (("edit", "editor"), ("edit2", "editor"), ("view", "viewer")):
        assert own.put(f"/api/projects/alpha/members/{user}", json={"role": role}
                       ).status_code == 200
    callers = [Caller("own", own, {"alpha": "owner"}),
               Caller("edit", _as(client, tokens["edit"]), {"alpha": "editor"}),
               Caller("edit2", _as(client, tokens["edit2"]), {"alpha": "editor"}),
               Caller("view", _as(client, tokens["view"]), {"alpha": "viewer"}),
               Caller("bob", _as(client, tokens["bob"]), {"beta": "editor"})]
    by = {c.name: c for c in callers}
    runs = {"alpha": _external(by["edit"].client, "alpha", f"{MARK['alpha']} run"),
            "beta": _external(by["bob"].client, "beta", f"{MARK['beta']} run")}
    return {"callers": callers, "by": by, "runs": runs,
            "owners": {"alpha": "edit", "beta": "bob"}}


def _snapshot(settings: Settings) -> str:
    """Everything a write could change, as one hash."""
    with session_scope(settings.db_url) as s:
        rows = []
        for table, order in (("runs", "id"), ("run_tags", "run_id, tag"),
                             ("metrics", "run_id, key, step"), ("run_logs", "run_id, seq"),
                             ("artifacts", "id"), ("project_members", "project_id, user_id"),
                             ("projects", "id")):
            rows.append([tuple(map(str, r)) for r in s.execute(
                text(f"SELECT * FROM {table} ORDER BY {order}"))])  # noqa: S608 (fixed names)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _call(c: TestClient, method: str, path: str, run_id: int, project: str,
          other: int) -> Any:
    """One request of the route ``(method, path)`` against run ``run_id`` (in
    ``project``), with a body and parameters the route takes."""
    mark = MARK[project]
    url = (path.replace("{run_id}", str(run_id)).replace("{key}", f"{mark}_loss")
           .replace("{name}", f"{mark}.txt").replace("{project}", project)
           .replace("{user}", "spare").replace("{path}", f"0/{run_id}/artifacts/{mark}.txt"))
    for name in ("token_id", "user_id", "hook_id", "policy_id"):
        url = url.replace("{" + name + "}", "1")
    params: dict[str, Any] = {}
    body: Any = None
    content: bytes | None = None
    if url.startswith("/api/2.0/mlflow"):
        fields = {"run_id": str(run_id), "metric_key": f"{mark}_loss", "key": "k",
                  "value": "v", "timestamp": 0, "step": 1, "experiment_ids": ["0"],
                  "status": "FINISHED", "metrics": [{"key": "m", "value": 1.0,
                                                     "timestamp": 0, "step": 2}]}
        if method == "GET":
            params = {k: v for k, v in fields.items() if not isinstance(v, list)}
            params |= {"experiment_ids": "0", "path": f"0/{run_id}/artifacts"}
        elif method == "PUT":
            content = b"x"
        else:
            body = {**fields, "value": 2.0} if path.endswith("log-metric") else fields
    elif method in ("PUT",):
        content = b"written"
    elif path == "/api/runs" or path == "/api/dry-run":
        body = {"kind": "external", "name": "new", "project": project}
    elif path == "/api/import/runs":
        body = {"key": f"import-key-{run_id}", "kind": "external", "status": "running",
                "created_at": "2026-01-01T00:00:00Z", "project": project,
                "config": {"params": {}}}
    elif path.endswith("/metrics") and method == "POST":
        body = {"points": [{"key": "loss", "step": 7, "value": 2.0}]}
    elif path.endswith("/logs") and method == "POST":
        body = {"lines": [{"seq": 9, "line": "written"}]}
    elif path.endswith("/finish"):
        body = {"status": "failed", "error": "written"}
    elif method == "PATCH" and "{run_id}" in path:
        body = {"name": "renamed", "tags": ["written"]}
    elif path == "/api/run-groups":
        params = {"by": "tag", "metric": "metrics.loss"}  # a foreign run's tag would show
    elif path == "/api/run-groups/curves":
        params = {"by": "tag", "key": "loss"}
    elif path in ("/api/provenance-diff",) or path.startswith("/api/summaries"):
        params = {"run_id": [run_id, other]}
    elif path == "/api/retention/preview":
        body = {"name": "p", "rule": "expire", "pattern": "*", "days": 0}
    elif path == "/api/runs":
        params = {"limit": 500}
    return c.request(method, url, params=params, json=body, content=content)


def _foreign_marks(caller: Caller) -> list[str]:
    return [MARK[p] for p in MARK if not caller.may_read(p)]


def test_every_route_as_every_role_across_two_projects(
        client: TestClient, settings: Settings, lab: dict[str, Any]) -> None:
    routes = _routes(client)
    undeclared = [r for r in routes if r not in POLICY and not r[1].startswith(WORKER_PREFIX)]
    assert undeclared == [], f"routes without an access policy in this test: {undeclared}"
    assert len(routes) >= 100
    leaks, wrong, checked = [], [], 0
    tally = {"refused (not theirs to read)": 0, "refused (read only)": 0, "allowed": 0,
             "no run data": 0}
    runs, owners = lab["runs"], lab["owners"]
    for method, path in routes:
        policy = "worker" if path.startswith(WORKER_PREFIX) else POLICY[(method, path)]
        for caller in lab["callers"]:
            for project, run_id in runs.items():
                other = runs["beta" if project == "alpha" else "alpha"]
                writes = method != "GET" and policy in ("write", "create")
                allowed = (caller.may_write(project, owners[project]) if policy == "write"
                           else caller.roles.get(project) in ("editor", "owner")
                           if policy == "create" else caller.may_read(project))
                target = run_id
                if writes and allowed and policy == "write":  # on a run of its own
                    maker = lab["by"][owners[project]].client
                    target = _external(maker, project, f"{MARK[project]} spare",
                                       finished=method == "DELETE"
                                       or path.endswith("/import/runs/{run_id}/logs")
                                       or "import" in path)
                before = _snapshot(settings) if writes and not allowed else None
                res = _call(caller.client, method, path, target, project, other)
                checked += 1
                where = (caller.name, method, path, project, res.status_code)
                body = res.text if res.headers.get("content-type", "").startswith(
                    ("application/json", "text/")) else ""
                if any(m in body for m in _foreign_marks(caller)):
                    leaks.append(where)
                if res.status_code >= 500:
                    wrong.append((*where, "5xx", body[:200]))
                if policy == "worker":
                    tally["worker route: 403"] = tally.get("worker route: 403", 0) + 1
                    if res.status_code != 403:
                        wrong.append((*where, "a member's token at a worker route"))
                    continue
                if before is not None and _snapshot(settings) != before:
                    wrong.append((*where, "a refused write changed the store"))
                denied = res.status_code in (403, 404) or (
                    res.status_code in (400, 422) and (
                        "does not exist" in body or "not found" in body.lower()))
                tally["no run data" if policy not in ("read", "write", "create", "list")
                      else "allowed" if allowed else "refused (read only)"
                      if caller.may_read(project) else "refused (not theirs to read)"] += 1
                if policy in ("read", "write") and not caller.may_read(project):
                    if res.status_code not in (404, 400) and not (
                            path.startswith("/api/2.0") and res.status_code == 404):
                        wrong.append((*where, "not 404 for a run they may not read"))
                elif policy in ("write", "create") and not allowed:
                    if not denied:
                        wrong.append((*where, "a write they may not make was not refused"))
                elif policy in ("read", "write", "create") and allowed:
                    if "does not exist" in body or "not found" in body.lower() or (
                            res.status_code == 403):
                        wrong.append((*where, "refused what they may do", body[:200]))
    assert leaks == [], f"{len(leaks)} answers carried a project the caller may not read: {leaks}"
    assert wrong == [], "\n".join(map(str, wrong))
    # at least each route once per caller per project
    assert checked == len(routes) * len(lab["callers"]) * 2
    print(f"\nrole x route matrix: {len(routes)} routes x {len(lab['callers'])} callers x "
          f"2 projects = {checked} requests; 0 leaks, 0 wrong answers; {tally}")
