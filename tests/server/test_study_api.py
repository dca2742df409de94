"""Submitting studies: the grid's inputs are checked before anything is stored."""

import pytest
from fastapi.testclient import TestClient

from server.settings import Settings
from tests.server.test_train_api import TARGETS, _stored_run


def _post(client: TestClient, config: dict) -> object:
    return client.post("/api/runs", json={"kind": "study", "name": "grid", "config": config})


def test_a_study_is_queued_on_the_cpu_queue_and_links_its_target(
    client: TestClient, settings: Settings
) -> None:
    sim = _stored_run(settings, "similarity", artifacts=TARGETS)
    res = _post(client, {"conditions": ["none", "shuffle", "neural-model"], "seeds": 3,
                         "target_run": sim, "train": {"backbone": "small_cnn", "epochs": 2},
                         "evaluate": {"attacks": "quick", "norms": ["l2"]}})
    assert res.status_code == 201, res.text
    run = res.json()
    assert run["kind"] == "study" and run["input_run_id"] == sim
    assert run["config"]["train"]["backbone"] == "small_cnn"
    assert run["config"]["evaluate"]["norms"] == ["l2"]
    msg = next((settings.broker_dir / "queue").glob("*.msg")).read_text()
    assert "neuroreg.study" in msg and '"routing_key": "cpu"' in msg
    page = client.get(f"/api/studies/{run['id']}").json()
    assert page["runs"] == [] and page["robustness"] == []  # nothing has run yet
    assert client.get("/api/studies/999").status_code == 404


@pytest.mark.parametrize(("config", "loc", "msg"), [
    ({"conditions": ["none", "neural-model"]}, ["target_run"], "needs the id of a succeeded"),
    ({"conditions": ["none", "neural-model"], "target_run": 999}, ["target_run"],
     "does not exist"),
    ({"conditions": ["cnn-features"], "target_run": "SIM"}, ["features"], "needs features"),
    ({"conditions": ["cnn-features"], "target_run": "SIM", "features": {"weights": "v.pth"}},
     ["features", "weights"], "'v.pth' does not exist"),
    ({"conditions": ["none"], "train": {"dataset": "cifar100"}}, ["train", "dataset"],
     "cifar100 is not in"),
    ({"conditions": ["none"], "alphas": [-1]}, ["alphas"], "α > 0"),
    ({"conditions": ["none"], "evaluate": {"norms": ["l9"]}}, ["evaluate"], "norms"),
])
def test_bad_studies_are_422_naming_the_field(
    client: TestClient, settings: Settings, config: dict, loc: list, msg: str
) -> None:
    sim = _stored_run(settings, "similarity", artifacts=TARGETS)
    if config.get("target_run") == "SIM":
        config = {**config, "target_run": sim}
    res = _post(client, config)
    assert res.status_code == 422, res.text
    errors = res.json()["detail"]
    assert any(e["loc"][:2 + len(loc)] == ["body", "config", *loc] and msg in e["msg"]
               for e in errors), errors
    assert client.get("/api/runs", params={"kind": "study"}).json()["total"] == 0
