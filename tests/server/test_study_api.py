"""Submitting studies: the grid's inputs are checked before anything is stored."""

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
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
    ({"conditions": ["none", "neural-true"], "target_run": "RECORDED"}, ["conditions"],
     "has no S_true"),
    ({"conditions": ["none"], "evaluate": {"norms": ["l9"]}}, ["evaluate"], "norms"),
])
def test_bad_studies_are_422_naming_the_field(
    client: TestClient, settings: Settings, config: dict, loc: list, msg: str
) -> None:
    sim = _stored_run(settings, "similarity", artifacts=TARGETS)
    if config.get("target_run") == "SIM":
        config = {**config, "target_run": sim}
    if config.get("target_run") == "RECORDED":
        config = {**config, "target_run": _stored_run(
            settings, "similarity", artifacts=TARGETS,
            config={"source": "recording", "recording": "mouse.nwb"})}
    res = _post(client, config)
    assert res.status_code == 422, res.text
    errors = res.json()["detail"]
    assert any(e["loc"][:2 + len(loc)] == ["body", "config", *loc] and msg in e["msg"]
               for e in errors), errors
    assert client.get("/api/runs", params={"kind": "study"}).json()["total"] == 0


def test_study_training_curves_are_mean_and_sem_over_seeds(
    client: TestClient, settings: Settings
) -> None:
    import numpy as np

    from core.store.db import session_scope
    from core.store.metrics import insert_points
    from core.store.models import User
    from core.store.runs import create_run

    with session_scope(settings.db_url) as s:
        owner = s.query(User).first()
        study = create_run(s, owner=owner, kind="study", name="grid", config={})
        for target, seed, offset in [("none", 0, 0.0), ("none", 1, 0.2),
                                     ("neural-model", 0, 1.0)]:
            run = create_run(s, owner=owner, kind="train", name="", parent_id=study.id,
                             config={"target": target, "alpha": 20.0, "seed": seed})
            insert_points(s, run.id, [("loss", k, offset + k / 1000, None) for k in range(1000)]
                          + [("test_acc", 499, 0.5 + offset, None),
                             ("test_acc", 999, 0.6 + offset, None)])
        sid = study.id
    acc = client.get(f"/api/studies/{sid}/curves").json()  # test_acc by default
    assert acc["bin_steps"] == 1 and acc["keys"] == ["loss", "test_acc"]
    nm, none = acc["rows"]
    assert none["target"] == "none" and none["n"] == 2 and none["steps"] == [499, 999]
    assert np.allclose(none["mean"], [0.6, 0.7]) and np.allclose(none["sem"], [0.1, 0.1])
    assert nm["n"] == 1 and np.allclose(nm["mean"], [1.5, 1.6])
    loss = client.get(f"/api/studies/{sid}/curves",
                      params={"key": "loss", "max_points": 100}).json()
    assert loss["bin_steps"] == 10
    none = loss["rows"][1]
    assert len(none["steps"]) == 100 and none["steps"][:2] == [9, 19]
    # each bin is the mean of its 10 steps, then the mean over the two seeds
    assert np.allclose(none["mean"][0], 0.1 + np.mean(np.arange(10)) / 1000)
    bad = client.get(f"/api/studies/{sid}/curves", params={"key": "nope"})
    assert bad.status_code == 404 and "nope" in bad.json()["detail"]
    assert client.get(f"/api/studies/{none['run_ids'][0]}/curves").status_code == 404
