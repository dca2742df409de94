"""The REST API through FastAPI's TestClient on the embedded default.

Runs are really enqueued: the filesystem broker writes a message file that a worker
would pick up (the worker itself is exercised in tests/integration)."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope


def _create(client: TestClient, **body: object) -> dict:
    res = client.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}, **body})
    assert res.status_code == 201, res.text
    return res.json()


def test_health_is_open_everything_else_needs_a_token(client: TestClient) -> None:
    anon = TestClient(client.app)
    assert anon.get("/api/health").json() == {"status": "ok"}
    for method, path in [
        ("GET", "/api/runs"),
        ("POST", "/api/runs"),
        ("GET", "/api/runs/1"),
        ("POST", "/api/runs/1/cancel"),
        ("POST", "/api/runs/1/metrics"),
        ("GET", "/api/runs/1/metrics/loss"),
        ("GET", "/api/runs/1/artifacts"),
        ("GET", "/api/me"),
    ]:
        assert anon.request(method, path).status_code == 401, path
        bad = anon.request(method, path, headers={"Authorization": "Bearer nr_wrong"})
        assert bad.status_code == 401, path


def test_create_enqueues_and_reads_back(client: TestClient, settings: Settings) -> None:
    run = _create(client, name="first")
    assert run["status"] == "queued" and run["owner"] == "admin"
    assert run["config"]["epochs"] == 1 and run["config"]["width"] == 64  # defaults filled
    assert client.get(f"/api/runs/{run['id']}").json()["name"] == "first"
    queued = list((settings.broker_dir / "queue").glob("*.msg"))
    assert len(queued) == 1 and f"[{run['id']}]".encode() in queued[0].read_bytes()


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"epochs": 0}, ["body", "config", "epochs"]),
        ({"lr": "fast"}, ["body", "config", "lr"]),
        ({"dataset": "imagenet"}, ["body", "config", "dataset"]),
        ({"bogus": 1}, ["body", "config", "bogus"]),
    ],
)
def test_invalid_config_is_422_naming_the_field(
    client: TestClient, config: dict, loc: list
) -> None:
    res = client.post("/api/runs", json={"kind": "train", "config": config})
    assert res.status_code == 422
    assert loc in [e["loc"] for e in res.json()["detail"]]
    assert client.get("/api/runs").json()["total"] == 0


def test_unknown_kind_and_missing_parent(client: TestClient) -> None:
    res = client.post("/api/runs", json={"kind": "sculpt"})
    assert res.status_code == 422 and res.json()["detail"][0]["loc"][:2] == ["body", "kind"]
    res = client.post("/api/runs", json={"kind": "train", "input_run_id": 42})
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["body", "input_run_id"]


def test_unknown_run_is_404(client: TestClient) -> None:
    for path in ["/api/runs/999", "/api/runs/999/metrics", "/api/runs/999/artifacts"]:
        assert client.get(path).status_code == 404
    assert client.post("/api/runs/999/cancel").status_code == 404


def test_list_filters_and_paginates(client: TestClient) -> None:
    ids = [_create(client, name=f"r{i}")["id"] for i in range(5)]
    client.post(f"/api/runs/{ids[0]}/cancel")
    page = client.get("/api/runs", params={"limit": 2}).json()
    assert page["total"] == 5 and [r["id"] for r in page["items"]] == ids[::-1][:2]
    page = client.get("/api/runs", params={"limit": 2, "offset": 4}).json()
    assert [r["id"] for r in page["items"]] == [ids[0]]
    assert client.get("/api/runs", params={"status": "cancelled"}).json()["total"] == 1
    assert client.get("/api/runs", params={"owner": "nobody"}).json()["total"] == 0
    assert client.get("/api/runs", params={"kind": "train"}).json()["total"] == 5
    assert client.get("/api/runs", params={"kind": "nope"}).status_code == 422
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422


def test_cancel(client: TestClient) -> None:
    run = _create(client)
    res = client.post(f"/api/runs/{run['id']}/cancel")
    assert res.json()["status"] == "cancelled" and res.json()["finished_at"]


def test_metric_batch_roundtrip_and_last_metrics(client: TestClient) -> None:
    run = _create(client)
    points = [{"key": "loss", "step": i, "value": 1.0 / (i + 1)} for i in range(100)]
    res = client.post(f"/api/runs/{run['id']}/metrics", json={"points": points})
    assert res.status_code == 200 and res.json() == {"accepted": 100}
    res = client.post(f"/api/runs/{run['id']}/metrics", json={"points": points[:10]})  # resent
    s = client.get(f"/api/runs/{run['id']}/metrics/loss").json()
    assert s["total"] == 100 and not s["downsampled"] and s["values"][3] == 0.25
    s = client.get(f"/api/runs/{run['id']}/metrics/loss", params={"max_points": 10}).json()
    assert s["downsampled"] and len(s["steps"]) <= 10 and s["wall_times"] is None
    listed = client.get("/api/runs").json()["items"][0]
    assert listed["last_metrics"] == {"loss": 0.01}
    keys = client.get(f"/api/runs/{run['id']}/metrics").json()
    assert keys == [{"key": "loss", "count": 100, "last_step": 99, "last_value": 0.01}]
    assert client.get(f"/api/runs/{run['id']}/metrics/nothing").json()["total"] == 0


def test_malformed_batch_is_rejected_whole_with_its_index(client: TestClient) -> None:
    run = _create(client)
    points = [{"key": "loss", "step": i, "value": 0.5} for i in range(10)]
    for bad, field in [
        ({"step": -1}, "step"),
        ({"value": "x"}, "value"),
        ({"key": "has space"}, "key"),
        ({"extra": 1}, "extra"),
    ]:
        batch = [dict(p) for p in points]
        batch[7].update(bad)
        res = client.post(f"/api/runs/{run['id']}/metrics", json={"points": batch})
        assert res.status_code == 422
        assert res.json()["detail"][0]["loc"] == ["body", "points", 7, field]
    # non-finite numbers (Python's json emits NaN/Infinity) are refused too
    res = client.post(
        f"/api/runs/{run['id']}/metrics",
        content=b'{"points": [{"key": "a", "step": 0, "value": 1}, '
        b'{"key": "a", "step": 1, "value": NaN}]}',
        headers={"Content-Type": "application/json"},
    )
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == [
        "body",
        "points",
        1,
        "value",
    ]
    assert client.post(f"/api/runs/{run['id']}/metrics", json={"points": []}).status_code == 422
    assert client.get(f"/api/runs/{run['id']}/metrics").json() == []


def test_errors_carry_no_traceback_or_sql(client: TestClient) -> None:
    res = client.post(
        "/api/runs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert res.status_code == 422
    for text in (res.text, client.get("/api/runs/abc").text):
        assert "Traceback" not in text and "SELECT" not in text


def test_body_limit(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.store.users import ensure_admin
    from server.app import create_app

    settings = make_settings(max_request_bytes=2048)
    app = create_app(settings)
    with session_scope(settings.db_url) as s:
        token = ensure_admin(s)
    c = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    res = c.post("/api/runs", json={"kind": "train", "name": "x" * 5000})
    assert res.status_code == 413


def test_artifacts_list_download_and_safety(client: TestClient, settings: Settings) -> None:
    run = _create(client)
    with session_scope(settings.db_url) as s:
        save_artifact(
            s,
            settings.artifacts,
            run_id=run["id"],
            name="table.csv",
            data=b"a,b\n1,2\n",
            media_type="text/csv",
        )
    items = client.get(f"/api/runs/{run['id']}/artifacts").json()
    assert [(a["name"], a["size_bytes"]) for a in items] == [("table.csv", 8)]
    res = client.get(f"/api/runs/{run['id']}/artifacts/table.csv")
    assert res.status_code == 200 and res.content == b"a,b\n1,2\n"
    assert res.headers["content-type"].startswith("text/csv")
    assert client.get(f"/api/runs/{run['id']}/artifacts/missing.bin").status_code == 404
    # a path that climbs out: refused by the name's pattern (a 422 naming it), never read
    res = client.get(f"/api/runs/{run['id']}/artifacts/..%2F..%2Fetc%2Fpasswd")
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["path", "name"]
    from core.store.artifacts import UnsafePath

    with session_scope(settings.db_url) as s, pytest.raises(UnsafePath):
        save_artifact(
            s, settings.artifacts, run_id=run["id"], name="../x", data=b"", media_type="text/plain"
        )


def test_docs_dashboard_and_local_plotly(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "/api/runs" in client.get("/openapi.json").json()["paths"]
    assert "runs.js" in client.get("/").text and "run.js" in client.get("/runs/1").text
    js = client.get("/static/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert "cdn" not in client.get("/runs/1").text.lower()


def test_each_page_preloads_every_module_its_script_imports(client: TestClient) -> None:
    """The study page's figure modules (static/study/), the palette and the rest are fetched
    at once, found by following the imports; each preload is a file the server serves."""
    import re

    from server.routes.ui import FRONTEND

    study = client.get("/studies/1").text
    preloaded = re.findall(r'rel="modulepreload" href="/static/([^"]+)"', study)
    figures = {f"study/{p.name}" for p in (FRONTEND / "static" / "study").glob("*.js")}
    assert figures and figures | {"api.js", "figures.js", "palette.js"} <= set(preloaded)
    assert "plotly.min.js" in study
    run_page = client.get("/runs/1").text
    assert "/static/lineage.js" in re.findall(r'rel="modulepreload" href="([^"]+)"', run_page)
    for page in ("/", "/runs/1", "/compare", "/studies/1", "/leaderboard", "/tokens",
                 "/storage"):
        for path in re.findall(r'rel="modulepreload" href="(/static/[^"]+)"',
                               client.get(page).text):
            res = client.get(path)
            assert res.status_code == 200 and "javascript" in res.headers["content-type"]
    for page in ("/tokens", "/storage"):  # no figure there
        assert "plotly.min.js" not in client.get(page).text


def test_all_series_in_one_request_reduced_like_one(client: TestClient) -> None:
    run = client.post("/api/runs", json={"kind": "external", "name": "many"}).json()
    points = [{"key": "loss", "step": k, "value": float(k % 7)} for k in range(500)]
    points += [{"key": "acc", "step": k, "value": 0.5} for k in range(3)]
    assert client.post(f"/api/runs/{run['id']}/metrics", json={"points": points}).status_code == 200
    every = client.get(f"/api/runs/{run['id']}/series", params={"max_points": 50}).json()
    assert [s["key"] for s in every] == ["acc", "loss"]
    one = client.get(f"/api/runs/{run['id']}/metrics/loss", params={"max_points": 50}).json()
    assert every[1] == one and one["downsampled"] and one["total"] == 500
    assert every[0]["steps"] == [0, 1, 2] and not every[0]["downsampled"]
    picked = client.get(f"/api/runs/{run['id']}/series", params={"key": "acc"}).json()
    assert [s["key"] for s in picked] == ["acc"]
    res = client.get(f"/api/runs/{run['id']}/series", params={"key": ["acc", "nope"]})
    assert res.status_code == 404 and "'nope'" in res.json()["detail"]
    assert client.get("/api/runs/9999/series").status_code == 404


def test_pages_get_artifact_names_from_the_api(client: TestClient) -> None:
    from ml import artifacts

    names = client.get("/api/artifact-names").json()
    assert names == artifacts.public() and names["model"] == artifacts.MODEL
    assert artifacts.target_kind(artifacts.target("neural-data")) == "neural-data"
    assert artifacts.target_kind(names["model"]) is None
    assert artifacts.target_kind("target-.npz") is None


def test_the_kinds_the_api_takes_come_from_one_registry(client: TestClient) -> None:
    from core.kinds import KINDS

    listed = client.get("/api/kinds").json()
    assert [k["name"] for k in listed] == list(KINDS)
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for k in listed:  # the form finds each kind's config schema, and its create body
        assert k["config_schema"] in schemas
        assert f"{k['name'].capitalize()}RunCreate" in schemas
    assert client.post("/api/runs", json={"kind": "nope"}).json()["detail"][0]["msg"] == (
        f"unknown kind 'nope'; known kinds: {sorted(KINDS)}")


def test_every_preset_is_a_valid_config_and_every_field_has_help(client: TestClient) -> None:
    import dataclasses

    from core.kinds import KINDS

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for k in client.get("/api/kinds").json():
        config = KINDS[k["name"]].config_type
        for preset in k["presets"].values():
            config(**preset)  # raises when a preset drifts from its config
        for path, kind in k["reads"].items():  # a field that names a run of a known kind
            assert kind in KINDS and path.split(".")[0] in {f.name for f in dataclasses.fields(
                config)}
        props = schemas[k["config_schema"]]["properties"]
        undocumented = [f for f, p in props.items() if not p.get("description")]
        assert undocumented == [] or k["name"] == "external", (k["name"], undocumented)
    assert set(KINDS["train"].presets) == {"cpu", "paper"}


def test_check_validates_a_run_and_stores_nothing(client: TestClient) -> None:
    ok = client.post("/api/dry-run", json={"kind": "train", "config": {"epochs": 2}})
    assert ok.status_code == 200 and ok.json()["config"]["epochs"] == 2
    config = ok.json()["config"]
    assert "lr" in config and config["alpha"] == 0.0  # defaults filled in; no target: α 0
    bad = client.post("/api/dry-run", json={"kind": "evaluate", "config": {"train_run": 99}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == [
        "body", "config", "train_run"]
    assert client.get("/api/runs").json()["total"] == 0


def test_progress_reads_as_written_not_as_float_residue(client: TestClient,
                                                        settings: Settings) -> None:
    from core.store.db import session_scope
    from core.store.runs import set_progress

    rid = client.post("/api/runs", json={"kind": "train", "config": {"epochs": 1}}).json()["id"]
    with session_scope(settings.db_url) as s:
        set_progress(s, rid, 0.15 + 0.15 + 0.15, "epoch 1/1")  # 0.45000000000000007
    assert client.get(f"/api/runs/{rid}").json()["progress"] == 0.45
