"""MLflow's own client, unchanged and in its own environment (tests/mlflowenv.py), logging
into neuroreg through ``MLFLOW_TRACKING_URI`` and ``MLFLOW_TRACKING_TOKEN``: experiments,
runs, params, tags, metrics, artifacts with folders, search, and MLflow's own error codes
for what neuroreg refuses or lacks — never a 500."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Role
from core.store.users import create_user, issue_token
from tests.mlflowenv import api_get as _api
from tests.mlflowenv import run_script

pytestmark = pytest.mark.no_numerics


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    """On SQLite and on PostgreSQL."""
    return make_settings(database_url=db_url)


FLUENT = """
import json, pathlib, tempfile
import mlflow
from mlflow.tracking import MlflowClient

mlflow.set_experiment("digits-sweep")
with mlflow.start_run(run_name="lr 0.1") as active:
    mlflow.log_param("lr", 0.1)
    mlflow.log_params({"epochs": 3, "optimizer": "sgd"})
    mlflow.set_tag("figure", "fig4")
    for step, loss in enumerate([0.9, 0.5, 0.3]):
        mlflow.log_metric("train/loss", loss, step=step)
    mlflow.log_metrics({"test_acc": 0.91}, step=2)
    pathlib.Path("notes.txt").write_text("three epochs\\n")
    mlflow.log_artifact("notes.txt")
    mlflow.log_dict({"a": 1}, "model/config.json")
run_id = active.info.run_id

client = MlflowClient()
got = client.get_run(run_id)
exp = client.get_experiment_by_name("digits-sweep")
local = client.download_artifacts(run_id, "model/config.json", tempfile.mkdtemp())
print(json.dumps({
    "version": mlflow.__version__, "run_id": run_id, "status": got.info.status,
    "name": got.info.run_name, "params": got.data.params, "metrics": got.data.metrics,
    "tags": got.data.tags, "lifecycle": exp.lifecycle_stage,
    "history": [[p.step, p.value] for p in client.get_metric_history(run_id, "train/loss")],
    "root": sorted(f.path for f in client.list_artifacts(run_id)),
    "folder": [f.path for f in client.list_artifacts(run_id, "model")],
    "downloaded": json.loads(pathlib.Path(local).read_text()),
    "found": [r.info.run_id for r in client.search_runs(
        [exp.experiment_id], "metrics.test_acc > 0.9 and params.lr = '0.1'")],
    "none": len(client.search_runs([exp.experiment_id], "metrics.test_acc > 0.95")),
}))
"""


def test_a_script_with_the_fluent_api_logs_a_run_neuroreg_shows(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    url, token = served
    seen = run_script(FLUENT, url, token, tmp_path)
    run_id = seen["run_id"]
    # back through MLflow's client, as MLflow's own server would answer
    assert seen["version"].startswith("3.")
    assert seen["status"] == "FINISHED" and seen["name"] == "lr 0.1"
    assert seen["params"] == {"lr": "0.1", "epochs": "3", "optimizer": "sgd"}
    assert seen["metrics"] == {"train/loss": 0.3, "test_acc": 0.91}
    assert seen["tags"]["figure"] == "fig4" and seen["tags"]["mlflow.user"] == "ada"
    assert seen["history"] == [[0, 0.9], [1, 0.5], [2, 0.3]]
    assert seen["root"] == ["model", "notes.txt"] and seen["folder"] == ["model/config.json"]
    assert seen["downloaded"] == {"a": 1} and seen["lifecycle"] == "active"
    assert seen["found"] == [run_id] and seen["none"] == 0

    # in neuroreg: an external run of the token's member, in every page and query
    run = _api(url, token, f"/api/runs/{run_id}")
    assert run["kind"] == "external" and run["owner"] == "ada" and run["name"] == "lr 0.1"
    assert run["status"] == "succeeded" and run["finished_at"]
    assert run["config"]["params"] == {"lr": "0.1", "epochs": "3", "optimizer": "sgd"}
    assert "exp:digits-sweep" in run["tags"]
    loss = _api(url, token, f"/api/runs/{run_id}/metrics/train/loss")
    assert loss["steps"] == [0, 1, 2] and loss["values"] == [0.9, 0.5, 0.3]
    names = {a["name"]: a["size_bytes"] for a in _api(url, token,
                                                        f"/api/runs/{run_id}/artifacts")}
    assert names["notes.txt"] == len("three epochs\n") and "model/config.json" in names
    res = httpx.get(f"{url}/api/runs/{run_id}/artifacts/model/config.json",
                    headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200 and res.json() == {"a": 1}
    found = _api(url, token, "/api/runs",
                 q='tag = "exp:digits-sweep" and config.params.lr = "0.1"')
    assert [r["id"] for r in found["items"]] == [int(run_id)]


BATCH = """
import json
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking import MlflowClient

client = MlflowClient()
exp = client.create_experiment("sweep", tags={"paper": "li2019"})
ids = []
for lr in (0.3, 0.1, 0.2):
    run = client.create_run(exp, run_name=f"lr {lr}")
    client.log_batch(run.info.run_id, metrics=[Metric("acc", lr * 2, 1000, 0)],
                     params=[Param("lr", str(lr))], tags=[RunTag("kind", "probe")])
    client.set_terminated(run.info.run_id)
    ids.append(run.info.run_id)
out = {"ids": ids}
by_acc = client.search_runs([exp], order_by=["metrics.acc DESC"])
out["by_acc"] = [r.data.params["lr"] for r in by_acc]
page = client.search_runs([exp], max_results=2, order_by=["params.lr ASC"])
rest = client.search_runs([exp], max_results=2, order_by=["params.lr ASC"],
                          page_token=page.token)
out["paged"] = [r.data.params["lr"] for r in [*page, *rest]]
out["first_page"] = len(page)
client.delete_run(ids[0])
out["active_after_delete"] = len(client.search_runs([exp]))
deleted = client.search_runs([exp], run_view_type=ViewType.DELETED_ONLY)
out["deleted"] = [r.info.run_id for r in deleted]
print(json.dumps(out))
"""

AFTER = """
import json, sys
from mlflow.tracking import MlflowClient

client = MlflowClient()
ids = sys.argv[1:] or json.load(open("ids.json"))
exp = client.get_experiment_by_name("sweep").experiment_id
client.restore_run(ids[0])
out = {"active_after_restore": len(client.search_runs([exp])),
       "restored_stage": client.get_run(ids[0]).info.lifecycle_stage}
client.delete_tag(ids[1], "kind")
out["tags_after_delete"] = sorted(client.get_run(ids[1]).data.tags)
client.rename_experiment(exp, "sweep-2")
out["exp_tags"] = client.get_experiment(exp).tags
client.delete_experiment(exp)
out["lifecycle"] = client.get_experiment(exp).lifecycle_stage
out["after_exp_delete"] = len(client.search_runs([exp]))
print(json.dumps(out))
"""


def test_batch_tags_delete_restore_and_search_order(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    url, token = served
    seen = run_script(BATCH, url, token, tmp_path)
    ids = seen["ids"]
    assert seen["by_acc"] == ["0.3", "0.2", "0.1"]
    assert seen["first_page"] == 2 and seen["paged"] == ["0.1", "0.2", "0.3"]
    assert seen["active_after_delete"] == 2 and seen["deleted"] == [ids[0]]
    assert "mlflow:deleted" in _api(url, token, f"/api/runs/{ids[0]}")["tags"]
    (tmp_path / "ids.json").write_text(__import__("json").dumps(ids))
    seen = run_script(AFTER, url, token, tmp_path)
    assert seen["active_after_restore"] == 3 and seen["restored_stage"] == "active"
    assert "kind" not in seen["tags_after_delete"]
    assert "exp:sweep-2" in _api(url, token, f"/api/runs/{ids[1]}")["tags"]
    assert seen["exp_tags"] == {"paper": "li2019", "neuroreg.tag": "exp:sweep-2"}
    assert seen["lifecycle"] == "deleted" and seen["after_exp_delete"] == 0
    # the experiment's runs went with it, softly: in neuroreg still, tagged
    assert "mlflow:deleted" in _api(url, token, f"/api/runs/{ids[2]}")["tags"]


ERRORS = """
import json
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

client = MlflowClient()
rid = client.create_run("0").info.run_id
client.log_param(rid, "lr", "0.1")
out = {}

def code(name, fn):
    try:
        fn()
        out[name] = "accepted"
    except MlflowException as exc:
        out[name] = [str(exc.error_code), exc.message]

code("param_changed", lambda: client.log_param(rid, "lr", "0.2"))
code("param_same", lambda: client.log_param(rid, "lr", "0.1"))
code("no_run", lambda: client.get_run("999999"))
code("no_experiment", lambda: client.get_experiment("424242"))
code("nan", lambda: client.log_metric(rid, "loss", float("nan"), step=0))
code("first_value", lambda: client.log_metric(rid, "loss", 1.0, step=0))
code("second_value", lambda: client.log_metric(rid, "loss", 2.0, step=0))
code("space_in_key", lambda: client.log_metric(rid, "train loss", 1.0, step=0))
code("default_again", lambda: client.create_experiment("Default"))
code("registry", lambda: client.create_registered_model("resnet"))
code("tag_filter", lambda: client.search_runs(["0"], "tags.figure = 'fig4'"))
code("like", lambda: client.search_runs(["0"], "params.lr LIKE '0.%'"))
out["rid"] = rid
print(json.dumps(out))
"""


def test_what_neuroreg_refuses_or_lacks_is_mlflows_error_never_a_500(  # type: ignore[no-untyped-def]
        served, tmp_path: Path, settings: Settings) -> None:
    url, token = served
    seen = run_script(ERRORS, url, token, tmp_path)
    assert seen["param_changed"][0] == "INVALID_PARAMETER_VALUE"
    assert "lr" in seen["param_changed"][1]
    assert seen["param_same"] == "accepted" and seen["first_value"] == "accepted"
    assert seen["no_run"][0] == seen["no_experiment"][0] == "RESOURCE_DOES_NOT_EXIST"
    for name in ("nan", "space_in_key", "tag_filter", "like"):
        assert seen[name][0] == "INVALID_PARAMETER_VALUE", (name, seen[name])
    assert "step" in seen["second_value"][1]
    assert seen["default_again"][0] == "RESOURCE_ALREADY_EXISTS"
    assert seen["registry"][0] == "ENDPOINT_NOT_FOUND"
    loss = _api(url, token, f"/api/runs/{seen['rid']}/metrics/loss")
    assert loss["values"] == [1.0]  # what was refused left nothing

    # raw requests: malformed bodies, no token, a wrong method, another member
    auth = {"Authorization": f"Bearer {token}"}
    with session_scope(settings.db_url) as s:
        other = {"Authorization": "Bearer " + issue_token(
            s, user=create_user(s, name="bo", role=Role.member), name="t")}
    cases = [("POST", "runs/log-parameter", b"{not json", auth, 400, "MALFORMED_REQUEST"),
             ("POST", "runs/log-parameter", b"[1, 2]", auth, 400, "MALFORMED_REQUEST"),
             ("POST", "runs/log-parameter", b'{"run_id": "1", "key": "a"}', {}, 401,
              "UNAUTHENTICATED"),
             ("POST", "runs/log-metric", b'{"run_id": "%s", "key": "x", "value": NaN, '
              b'"timestamp": 1, "step": 0}' % seen["rid"].encode(), auth, 400,
              "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/log-parameter", b'{"run_id": "%s", "key": "b", "value": "c"}'
              % seen["rid"].encode(), other, 403, "PERMISSION_DENIED"),
             ("GET", "runs/create", b"", auth, 404, "ENDPOINT_NOT_FOUND"),
             ("POST", "model-versions/create", b"{}", auth, 404, "ENDPOINT_NOT_FOUND"),
             ("GET", "runs/get", b"", auth, 400, "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/create", b'{"experiment_id": "0", "start_time": '
              b'"9999999999999999999"}', auth, 400, "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/search", b'{"experiment_ids": ["0"], "filter": '
              b'"attributes.start_time > 1e30"}', auth, 400, "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/search", b'{"experiment_ids": ["0"], "filter": '
              b'"attributes.end_time < 1e999"}', auth, 400, "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/search", b'{"experiment_ids": ["0"], "filter": '
              b'"metrics.loss > 1e999"}', auth, 400, "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/search", b'{"experiment_ids": ["0"], "order_by": [7]}', auth,
              400, "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/search", b'{"experiment_ids": {"a": 1}}', auth, 400,
              "INVALID_PARAMETER_VALUE"),
             ("POST", "experiments/search", b'{"order_by": 3.5}', auth, 400,
              "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/log-batch", b'{"run_id": "%s", "metrics": [{"key": "k", '
              b'"value": 1, "timestamp": 1, "step": -1}]}' % seen["rid"].encode(), auth, 400,
              "INVALID_PARAMETER_VALUE"),
             ("POST", "runs/log-batch", b'{"run_id": "%s", "params": "lr"}'
              % seen["rid"].encode(), auth, 400, "INVALID_PARAMETER_VALUE")]
    for method, path, body, headers, status, code in cases:
        res = httpx.request(method, f"{url}/api/2.0/mlflow/{path}", content=body or None,
                            headers={**headers, "Content-Type": "application/json"})
        assert res.status_code == status, (path, res.status_code, res.text)
        assert res.json()["error_code"] == code and res.json()["message"], (path, res.text)
    for path in ("/api/3.0/mlflow/traces/search", "/api/3.0/mlflow/server-info",
                 "/ajax-api/2.0/mlflow/runs/get"):  # MLflow 3's client calls these too
        res = httpx.post(f"{url}{path}", content=b"{}", headers=auth)
        assert res.status_code == 404, (path, res.text)
        assert res.json()["error_code"] == "ENDPOINT_NOT_FOUND", (path, res.text)
    res = httpx.get(f"{url}/api/2.0/mlflow/runs/get", params={"run_id": seen["rid"]},
                    headers=other)
    assert res.status_code == 200  # a lab's runs are everyone's to read


def test_the_docs_mlflow_block_runs_as_written(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    url, token = served
    text = (Path(__file__).parents[2] / "docs" / "mlflow.md").read_text()
    start = text.index("### MLflow client")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert block is not None
    printed = run_script(block.group(1), url, token, tmp_path, raw=True).splitlines()
    runs = _api(url, token, "/api/runs", tag="exp:digits-sweep")["items"]
    (run,) = runs
    # the block's own line: the run's page in neuroreg (MLflow's "View run" lines, into
    # its UI's routes, are followed by the runs page: tests/browser/test_mlflow_page.py)
    assert printed[-1] == f"{url}/runs/{run['id']}"
    assert run["config"]["params"] == {"lr": "0.1", "epochs": "3"}
    assert httpx.get(printed[-1]).status_code == 200


POSTS = ["experiments/create", "experiments/delete", "experiments/restore",
         "experiments/update", "experiments/set-experiment-tag",
         "experiments/delete-experiment-tag", "experiments/search", "runs/create",
         "runs/update", "runs/delete", "runs/restore", "runs/log-metric", "runs/log-parameter",
         "runs/set-tag", "runs/delete-tag", "runs/log-batch", "runs/search",
         "logged-models/search"]
GETS = ["experiments/get", "experiments/get-by-name", "runs/get", "metrics/get-history",
        "artifacts/list"]
HOSTILE: list[dict[str, Any]] = [
    {}, {"run_id": [1]}, {"run_id": {"a": 1}}, {"run_id": "1", "experiment_id": 1.5},
    {"experiment_id": True}, {"key": 5, "value": [1]}, {"metrics": "x"}, {"metrics": [1]},
    {"metrics": [{"key": "a", "value": "x", "timestamp": "y"}]},
    {"tags": [{"key": 1}]}, {"params": [{"key": "a" * 10_000, "value": "b"}]},
    {"name": ["a"]}, {"name": "x" * 600}, {"max_results": "abc"}, {"max_results": -1},
    {"filter": 5}, {"filter": "metrics.a > 'b'"}, {"filter": "params.`x` = 1 AND"},
    {"filter": "attributes.run_id IN ('1', 2)"}, {"page_token": "!!"},
    {"page_token": "eyJvZmZzZXQiOiAtMX0="}, {"status": 5}, {"end_time": "x"},
    {"new_name": ""}, {"experiment_ids": ["99999999999"]}, {"view_type": "NONE"},
    {"run_view_type": 7}, {"order_by": ["metrics.`a b` DESC"]},
]


def test_hostile_fields_on_every_mlflow_endpoint_are_4xx_in_mlflows_shape(  # type: ignore[no-untyped-def]
        served) -> None:
    url, token = served
    auth = {"Authorization": f"Bearer {token}"}
    rid = httpx.post(f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"},
                     headers=auth).json()["run"]["info"]["run_id"]
    with httpx.Client(base_url=f"{url}/api/2.0/mlflow", headers=auth) as http:
        for body in HOSTILE:
            body = {**body, "run_id": rid} if body.get("run_id") == "1" else body
            for path in POSTS:
                res = http.post(f"/{path}", json=body)
                assert res.status_code < 500, (path, body, res.text)
                if res.status_code >= 400:
                    assert set(res.json()) == {"error_code", "message"}, (path, res.text)
            for path in GETS:
                params = {k: v for k, v in body.items() if isinstance(v, str | int)}
                res = http.get(f"/{path}", params=params)
                assert res.status_code < 500, (path, body, res.text)
