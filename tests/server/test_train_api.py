"""Submitting train runs: the target similarity run, cnn-features sources, datasets, and
the γ table across runs."""

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.models import RunStatus, User
from core.store.runs import create_run


def _stored_run(settings: Settings, kind: str, status: RunStatus = RunStatus.succeeded,
                artifacts: tuple[str, ...] = (), result: dict | None = None,
                config: dict | None = None) -> int:
    with session_scope(settings.db_url) as s:
        owner = s.query(User).first()
        run = create_run(s, owner=owner, kind=kind, name="", config=config or {})
        for name in artifacts:
            save_artifact(s, settings.artifacts, run_id=run.id, name=name, data=b"x",
                          media_type="application/octet-stream")
        if status is not RunStatus.queued:
            finish_run(s, run.id, status, result=result)
        return run.id


def _post(client: TestClient, config: dict[str, Any], **body: Any) -> Any:
    return client.post("/api/runs", json={"kind": "train", "config": config, **body})


TARGETS = ("target-neural-model.npz", "target-neural-data.npz", "target-shuffle.npz")


def test_train_run_links_to_its_target_run(client: TestClient, settings: Settings) -> None:
    sim = _stored_run(settings, "similarity", artifacts=TARGETS)
    res = _post(client, {"target": "neural-data", "target_run": sim, "epochs": 1})
    assert res.status_code == 201, res.text
    run = res.json()
    assert run["input_run_id"] == sim and run["config"]["target_run"] == sim
    assert run["config"]["pairs"] == "all" and run["config"]["alpha"] == 20.0


@pytest.mark.parametrize(
    ("config", "field", "msg"),
    [
        ({"target": "brain"}, "target", "cnn-features"),
        ({"alpha": -1}, "alpha", ""),
        ({"taps": "all"}, "taps", ""),
        ({"target": "neural-model"}, "target_run", "needs the id of a succeeded similarity"),
        ({"target": "neural-model", "target_run": 999}, "target_run", "run 999 does not exist"),
        ({"target": "shuffle", "target_run": "TRAIN"}, "target_run", "not a similarity run"),
        ({"target": "shuffle", "target_run": "RUNNING"}, "target_run", "is running"),
        ({"target": "shuffle", "target_run": "EMPTY"}, "target_run", "has no target-shuffle.npz"),
        ({"target": "cnn-features", "target_run": "SIM"}, "features", "needs features.weights"),
        ({"target": "cnn-features", "target_run": "SIM", "features": {"weights": "vgg.pth"}},
         "features.weights", "'vgg.pth' does not exist"),
        ({"target": "cnn-features", "target_run": "SIM", "features": {"weights": "../x.pth"}},
         "features.weights", "must name a path inside"),
        ({"target": "cnn-features", "target_run": "SIM", "features": {"run": "SIM"}},
         "features.run", "not a train run"),
        ({"target": "neural-model", "features": {"run": 1}}, "features", "only used by"),
        ({"dataset": "cifar10"}, "dataset", "put cifar-10-python.tar.gz there"),
        ({"stimulus_norm": "mixed"}, "stimulus_norm", "'shared', 'frozen' or 'separate'"),
    ],
)
def test_bad_train_configs_are_422_naming_the_field(
    client: TestClient, settings: Settings, config: dict, field: str, msg: str
) -> None:
    ids = {"SIM": _stored_run(settings, "similarity", artifacts=TARGETS),
           "TRAIN": _stored_run(settings, "train", artifacts=("model.pt",)),
           "RUNNING": _stored_run(settings, "similarity", RunStatus.queued),
           "EMPTY": _stored_run(settings, "similarity")}
    with session_scope(settings.db_url) as s:
        from core.lifecycle import start_run
        start_run(s, ids["RUNNING"])
    for key in ("target_run",):
        if isinstance(config.get(key), str):
            config = {**config, key: ids[config[key]]}
    if isinstance(config.get("features", {}).get("run"), str):
        config = {**config, "features": {"run": ids[config["features"]["run"]]}}
    before = client.get("/api/runs").json()["total"]
    res = _post(client, config)
    assert res.status_code == 422, res.text
    errors = res.json()["detail"]
    assert any(e["loc"][:3] == ["body", "config", field.split(".")[0]] and msg in e["msg"]
               for e in errors), errors
    assert client.get("/api/runs").json()["total"] == before  # nothing stored


def test_cnn_features_from_a_models_dir_file_or_a_train_run(
    client: TestClient, settings: Settings
) -> None:
    sim = _stored_run(settings, "similarity", artifacts=TARGETS)
    settings.models.mkdir(parents=True)
    (settings.models / "vgg19.pth").write_bytes(b"x")
    res = _post(client, {"target": "cnn-features", "target_run": sim,
                         "features": {"weights": "vgg19.pth"}})
    assert res.status_code == 201, res.text
    assert res.json()["config"]["features"] == {"weights": "vgg19.pth", "run": None,
                                                "layer": "conv3_1"}
    trained = _stored_run(settings, "train", artifacts=("model.pt",))
    res = _post(client, {"target": "cnn-features", "target_run": sim,
                         "features": {"run": trained, "layer": "1"}})
    assert res.status_code == 201, res.text


def test_input_run_id_must_agree_with_the_target_run(
    client: TestClient, settings: Settings
) -> None:
    sim = _stored_run(settings, "similarity", artifacts=TARGETS)
    other = _stored_run(settings, "similarity", artifacts=TARGETS)
    res = _post(client, {"target": "neural-model", "target_run": sim}, input_run_id=other)
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "input_run_id"]


def test_cifar_is_accepted_once_its_archive_is_in_the_datasets_dir(
    client: TestClient, settings: Settings
) -> None:
    settings.datasets.mkdir(parents=True)
    (settings.datasets / "cifar-100-python.tar.gz").write_bytes(b"x")
    assert _post(client, {"dataset": "cifar100", "backbone": "resnet34"}).status_code == 201


def test_gamma_table_averages_final_gamma_over_seeds(
    client: TestClient, settings: Settings
) -> None:
    layers = [1, 5, 9, 13, 17]

    def train(target: str, alpha: float, seed: int, gamma: list[float],
              status: RunStatus = RunStatus.succeeded) -> int:
        cfg = {"target": target, "alpha": alpha, "seed": seed, "backbone": "resnet18"}
        r_taps = {"r_similarity_per_tap": [0.1 * seed, 0.5, 0.4, 0.3, 0.2]} if seed < 2 else {}
        return _stored_run(settings, "train", status, config=cfg,
                           result={"gamma": gamma, "layers": layers,
                                   **(r_taps if target != "none" else {})})

    one_hot = lambda k: [float(i == k) for i in range(5)]  # noqa: E731
    ids = [train("neural-model", 16, s, one_hot(k)) for s, k in ((0, 1), (1, 1), (2, 2))]
    ids += [train("none", 0, 0, [0.2] * 5), train("none", 0, 1, [0.2] * 5)]
    failed = train("neural-model", 16, 3, one_hot(0), RunStatus.failed)
    alpha0 = train("neural-model", 0, 0, [0.2] * 5)  # α = 0: no γ is learned
    table = client.get("/api/summaries/gamma",
                       params={"run_id": [*ids, alpha0, failed, 999]}).json()
    assert table["skipped"] == [failed, 999]
    # γ only where it exists: None runs and α = 0 carry a uniform γ they never learned
    assert table["no_gamma"] == [ids[3], ids[4], alpha0]
    assert [r["target"] for r in table["rows"]] == ["neural-model"]
    (neural,) = table["rows"]
    # the paper's example: γ5 = 0.67 when 2 of 3 seeds end with γ5 = 1
    assert neural["gamma_mean"] == pytest.approx([0, 2 / 3, 1 / 3, 0, 0])
    assert neural["gamma_sem"][1] == pytest.approx(np.std([1, 1, 0], ddof=1) / np.sqrt(3))
    assert neural["dominant"] == {"1": 0, "5": 2, "9": 1, "13": 0, "17": 0}
    assert neural["n"] == 3 and neural["seeds"] == [0, 1, 2] and neural["layers"] == layers
    # r(S_k, S_target) per tap over the seeds that recorded it (seed 2 did not)
    assert neural["r_taps_n"] == 2 and neural["r_taps_mean"] == pytest.approx(
        [0.05, 0.5, 0.4, 0.3, 0.2])
    assert neural["r_taps_sem"][0] == pytest.approx(0.05)
    everything = client.get("/api/summaries/gamma").json()  # default: all succeeded
    assert sum(r["n"] for r in everything["rows"]) == 3 and len(everything["no_gamma"]) == 3


def test_gamma_groups_one_study_and_one_setting_together(
    client: TestClient, settings: Settings
) -> None:
    """A demo run of the same target beside a study's runs is a group of its own, and so
    are runs of another width or dataset."""
    from core.store.db import session_scope
    from core.store.models import Run

    def train(seed: int, width: int = 8, study: int | None = None) -> int:
        rid = _stored_run(settings, "train", config={
            "target": "neural-model", "alpha": 8, "seed": seed, "backbone": "resnet18",
            "width": width, "dataset": "digits32"}, result={"gamma": [0.5, 0.5],
                                                             "layers": [1, 5]})
        with session_scope(settings.db_url) as s:
            s.get(Run, rid).parent_id = study
        return rid

    study = _stored_run(settings, "study")
    grid = [train(s, study=study) for s in range(3)]
    alone, wider = train(0), train(0, width=16, study=study)
    rows = client.get("/api/summaries/gamma").json()["rows"]
    groups = sorted((sorted(r["run_ids"]), r["study"], r["width"]) for r in rows)
    assert groups == sorted([(grid, study, 8), ([alone], None, 8), ([wider], study, 16)])


def test_neural_true_needs_a_simulated_similarity_run(
    client: TestClient, settings: Settings
) -> None:
    """A recording's similarity run has no S_true: asking it for neural-true is a 422 on
    ``target`` saying why; a simulated one that stored it is accepted."""
    recorded = _stored_run(settings, "similarity", artifacts=TARGETS,
                           config={"source": "recording", "recording": "mouse.nwb"})
    res = _post(client, {"target": "neural-true", "target_run": recorded})
    assert res.status_code == 422, res.text
    (error,) = res.json()["detail"]
    assert error["loc"] == ["body", "config", "target"]
    assert "has no S_true" in error["msg"] and "not a simulation" in error["msg"]
    # the same run serves every other target
    assert _post(client, {"target": "pixel", "target_run": recorded}).status_code == 201
    simulated = _stored_run(settings, "similarity", config={"source": "simulated"},
                            artifacts=(*TARGETS, "target-neural-true.npz"))
    res = _post(client, {"target": "neural-true", "target_run": simulated})
    assert res.status_code == 201, res.text
    older = _stored_run(settings, "similarity", config={"source": "simulated"},
                        artifacts=TARGETS)  # simulated before neural-true was stored
    res = _post(client, {"target": "neural-true", "target_run": older})
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "config", "target_run"]
    assert "has no target-neural-true.npz" in res.json()["detail"][0]["msg"]


def test_a_none_train_run_is_stored_with_the_alpha_it_never_uses(client: Any) -> None:
    """α means nothing without a target: a None run keeps 0 (not the default 20), so the
    pages that place runs by α put it at 0; a regularized run keeps its own."""
    none = client.post("/api/dry-run", json={"kind": "train", "config": {"target": "none"}})
    assert none.status_code == 200 and none.json()["config"]["alpha"] == 0.0
    made = client.post("/api/runs", json={"kind": "train", "config": {"target": "none"}})
    assert made.status_code == 201 and made.json()["config"]["alpha"] == 0.0
