"""Submitting evaluate runs, and the robustness summary across them."""

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from core.store.models import RunStatus
from tests.server.test_train_api import _stored_run


def _post(client: TestClient, config: dict) -> object:
    return client.post("/api/runs", json={"kind": "evaluate", "config": config})


def test_evaluate_links_to_its_train_run(client: TestClient, settings: Settings) -> None:
    trained = _stored_run(settings, "train", artifacts=("model.pt",),
                          config={"dataset": "digits32"})
    res = _post(client, {"train_run": trained, "attacks": "quick", "norms": ["l2", "linf"]})
    assert res.status_code == 201, res.text
    run = res.json()
    assert run["input_run_id"] == trained and run["kind"] == "evaluate"
    assert run["config"]["n_samples"] == 1000 and run["config"]["norms"] == ["l2", "linf"]
    msg = next((settings.broker_dir / "queue").glob("*.msg")).read_bytes()
    assert b"neuroreg.evaluate" in msg


@pytest.mark.parametrize(("config", "field", "msg"), [
    ({}, "train_run", "needs the id of a succeeded train run"),
    ({"train_run": 999}, "train_run", "run 999 does not exist"),
    ({"train_run": "SIM"}, "train_run", "not a train run"),
    ({"train_run": "QUEUED"}, "train_run", "is queued"),
    ({"train_run": "NOMODEL"}, "train_run", "has no model.pt"),
    ({"train_run": "CIFAR"}, "train_run", "cifar10 is not in"),
    ({"train_run": "OK", "norms": ["l3"]}, "norms", "choose from"),
    ({"train_run": "OK", "noise_sigmas": [-0.1]}, "noise_sigmas", "σ ≥ 0"),
    ({"train_run": "OK", "n_samples": 0}, "n_samples", ""),
    ({"train_run": "OK", "attacks": "all"}, "attacks", ""),
    ({"train_run": "OK", "autoattack_eps": {"linf": [0]}}, "autoattack_eps", "(0, 1]"),
    ({"train_run": "OK", "autoattack_eps": {"l2": [2.0]}}, "autoattack_eps", "(0, 1]"),
    ({"train_run": "OK", "autoattack_eps": {"l7": [0.1]}}, "autoattack_eps",
     "unknown threat model"),
    ({"train_run": "OK", "corruptions": ["rain"]}, "corruptions", "choose from"),
    ({"train_run": "OK", "corruption_severities": [0]}, "corruption_severities", "one of"),
    ({"train_run": "OK", "parts": ["noise", "fgsm"]}, "parts", "choose one or more"),
    ({"train_run": "OK", "parts": ["noise", "soundness"]}, "parts",
     "soundness checks the minimal part"),
    ({"train_run": "OK", "soundness_samples": 0}, "soundness_samples", ""),
    ({"train_run": "OK", "hsja_steps": 0}, "hsja_steps", ""),
    ({"train_run": "OK", "hsja_gradient_evals": "many"}, "hsja_gradient_evals", ""),
    ({"train_run": "OK", "transfer_steps": 100}, "transfer_steps", ""),
    ({"train_run": "OK", "subspace_k": 0}, "subspace_k", ""),
    ({"train_run": "OK", "reference_run": 0}, "reference_run", ""),
    ({"train_run": "OK", "similarity_run": -1}, "similarity_run", ""),
])
def test_bad_evaluate_configs_are_422_naming_the_field(
    client: TestClient, settings: Settings, config: dict, field: str, msg: str
) -> None:
    ids = {"SIM": _stored_run(settings, "similarity"),
           "QUEUED": _stored_run(settings, "train", RunStatus.queued),
           "NOMODEL": _stored_run(settings, "train"),
           "CIFAR": _stored_run(settings, "train", artifacts=("model.pt",),
                                config={"dataset": "cifar10"}),
           "OK": _stored_run(settings, "train", artifacts=("model.pt",))}
    if isinstance(config.get("train_run"), str):
        config = {**config, "train_run": ids[config["train_run"]]}
    before = client.get("/api/runs").json()["total"]
    res = _post(client, config)
    assert res.status_code == 422, res.text
    errors = res.json()["detail"]
    assert any(e["loc"][:3] == ["body", "config", field] and msg in e["msg"]
               for e in errors), errors
    assert client.get("/api/runs").json()["total"] == before


def test_every_field_a_configs_own_checks_refuse_is_said_in_one_answer(
    client: TestClient, settings: Settings
) -> None:
    ok = _stored_run(settings, "train", artifacts=("model.pt",))
    res = _post(client, {"train_run": ok, "parts": ["noise", "fgsm"], "noise_sigmas": [-1],
                         "norms": ["l3"], "corruptions": ["rain"]})
    assert res.status_code == 422, res.text
    fields = [e["loc"][2] for e in res.json()["detail"]]
    assert fields == ["parts", "noise_sigmas", "norms", "corruptions"]
    # a study: its conditions and its α at once
    res = client.post("/api/runs", json={"kind": "study", "config": {
        "conditions": ["none", "brain"], "alphas": [0]}})
    assert res.status_code == 422, res.text
    assert [e["loc"][2] for e in res.json()["detail"]] == ["conditions", "alphas"]


def test_the_runs_an_evaluation_reads_beside_its_model_are_checked_by_field(
    client: TestClient, settings: Settings
) -> None:
    """reference_run: another succeeded train run with a model of the same dataset;
    similarity_run: a succeeded similarity run with a neural-model target."""
    ok = _stored_run(settings, "train", artifacts=("model.pt",))
    other = _stored_run(settings, "train", artifacts=("model.pt",))
    sim = _stored_run(settings, "similarity", artifacts=("target-neural-model.npz",))
    bare = _stored_run(settings, "similarity")
    cifar = _stored_run(settings, "train", artifacts=("model.pt",),
                        config={"dataset": "cifar10"})
    parts = {"parts": ["minimal", "soundness", "mechanism"]}
    for extra, field, msg in (
            ({"reference_run": 999}, "reference_run", "run 999 does not exist"),
            ({"reference_run": sim}, "reference_run", "not a train run"),
            ({"reference_run": ok}, "reference_run", "another train run"),
            ({"reference_run": cifar}, "reference_run", "learnt cifar10"),
            ({"similarity_run": other}, "similarity_run", "not a similarity run"),
            ({"similarity_run": bare}, "similarity_run", "has no target-neural-model.npz")):
        res = _post(client, {"train_run": ok, **parts, **extra})
        assert res.status_code == 422, res.text
        errors = res.json()["detail"]
        assert any(e["loc"][:3] == ["body", "config", field] and msg in e["msg"]
                   for e in errors), errors
    res = _post(client, {"train_run": ok, **parts, "reference_run": other,
                         "similarity_run": sim, "soundness_samples": 20, "subspace_k": 32})
    assert res.status_code == 201, res.text
    assert res.json()["config"]["reference_run"] == other
    # a study's evaluation names the study's field
    res = client.post("/api/runs", json={"kind": "study", "config": {
        "conditions": ["none"], "train": {"dataset": "digits32"},
        "evaluate": {**parts, "similarity_run": other}}})
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["loc"] == ["body", "config", "evaluate", "similarity_run"]


def test_published_corruptions_need_a_cifar_model_and_the_folder_with_every_file(
    client: TestClient, settings: Settings
) -> None:
    import numpy as np

    def post(train_run: int, **extra: object) -> tuple[int, str]:
        res = _post(client, {"train_run": train_run, "corruption_source": "published",
                             "corruptions": ["fog", "snow"], **extra})
        if res.status_code != 422:
            return res.status_code, ""
        (err,) = res.json()["detail"]
        assert err["loc"] == ["body", "config", "corruption_source"], err
        return 422, err["msg"]

    digits = _stored_run(settings, "train", artifacts=("model.pt",))
    assert post(digits)[1].startswith("published corruptions exist for ['cifar10', "
                                      "'cifar100'], not digits32")
    settings.datasets.mkdir(parents=True)
    (settings.datasets / "cifar-10-python.tar.gz").write_bytes(b"archive")
    cifar = _stored_run(settings, "train", artifacts=("model.pt",),
                        config={"dataset": "cifar10"})
    assert "no CIFAR-10-C folder in" in post(cifar)[1]
    folder = settings.datasets / "CIFAR-10-C"
    folder.mkdir()
    np.save(folder / "fog.npy", np.zeros((5, 32, 32, 3), np.uint8))
    assert post(cifar)[1].endswith("lacks snow.npy, labels.npy")
    assert post(cifar, parts=["noise"])[0] == 201  # no corruptions part: nothing to read
    for name in ("snow", "labels"):
        np.save(folder / f"{name}.npy", np.zeros(5, np.uint8))
    assert post(cifar)[0] == 201
    # a study's evaluation is checked the same way, naming the study's field
    res = client.post("/api/runs", json={"kind": "study", "config": {
        "conditions": ["none"], "train": {"dataset": "digits32"},
        "evaluate": {"corruption_source": "published"}}})
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["loc"] == ["body", "config", "evaluate",
                                              "corruption_source"]


def test_robustness_summary_is_mean_and_sem_over_seeds(
    client: TestClient, settings: Settings
) -> None:
    def evaluation(target: str, seed: int, acc: list[float], l2: float | None) -> int:
        trained = _stored_run(settings, "train", config={
            "target": target, "alpha": 20.0, "seed": seed, "backbone": "resnet18",
            "dataset": "digits32"})
        result = {"noise": {"sigmas": [0.0, 0.1], "accuracy": acc}, "median_l2": l2,
                  "median_linf": 0.003,
                  "curves": {"l2": [[0, None], [100, 0.5 * seed + 0.2], [300, 0.1]]}}
        from core.store.db import session_scope
        from core.store.models import Run

        e = _stored_run(settings, "evaluate", result=result)
        with session_scope(settings.db_url) as s:
            s.get(Run, e).input_run_id = trained
        return e

    ids = [evaluation("none", 0, [0.9, 0.5], 0.10), evaluation("none", 1, [0.8, 0.3], 0.12),
           evaluation("neural-model", 0, [0.9, 0.7], 0.13),
           evaluation("neural-model", 1, [0.9, 0.6], None)]
    table = client.get("/api/summaries/robustness", params={"run_id": ids}).json()
    assert table["skipped"] == []
    none, neural = (next(r for r in table["rows"] if r["target"] == t)
                    for t in ("none", "neural-model"))
    assert none["alpha"] == 0.0  # the unused α of a 'none' run is not a condition
    assert none["noise"]["mean"] == pytest.approx([0.85, 0.4])
    assert none["noise"]["sem"] == pytest.approx([0.05, 0.1])
    assert none["medians"]["l2"] == pytest.approx({"mean": 0.11, "sem": 0.01, "n": 2})
    assert neural["medians"]["l2"] == {"mean": 0.13, "sem": 0.0, "n": 1}  # one unbroken
    assert neural["medians"]["linf"]["n"] == 2 and neural["seeds"] == [0, 1]
    curve = none["curves"]["l2"]  # the inf start (None) is dropped; mean ± SEM per budget
    assert curve["iterations"] == [100, 300] and curve["mean"] == pytest.approx([0.45, 0.1])
    assert curve["sem"] == pytest.approx([0.25, 0.0])


def test_the_alignment_part_needs_a_similarity_run_with_its_predictor_and_config(
    client: TestClient, settings: Settings
) -> None:
    """The alignment part rebuilds the similarity run's held-out stimuli from its
    predictor.pt and config.json: a run without them, or none named, is a 422 naming
    similarity_run, at the evaluation's field and at a study's."""
    ok = _stored_run(settings, "train", artifacts=("model.pt",))
    target = "target-neural-model.npz"
    full = _stored_run(settings, "similarity",
                       artifacts=(target, "predictor.pt", "config.json"))
    no_predictor = _stored_run(settings, "similarity", artifacts=(target, "config.json"))
    no_config = _stored_run(settings, "similarity", artifacts=(target, "predictor.pt"))
    failed = _stored_run(settings, "similarity", RunStatus.failed,
                         artifacts=(target, "predictor.pt", "config.json"))
    for extra, msg in (({}, "the alignment part compares the model"),
                       ({"similarity_run": no_predictor}, "has no predictor.pt"),
                       ({"similarity_run": no_config}, "has no config.json"),
                       ({"similarity_run": failed}, "it must have succeeded"),
                       ({"similarity_run": ok}, "not a similarity run"),
                       ({"similarity_run": full, "alignment_folds": 1}, "")):
        res = _post(client, {"train_run": ok, "parts": ["alignment"], **extra})
        assert res.status_code == 422, res.text
        errors = res.json()["detail"]
        field = "alignment_folds" if "alignment_folds" in extra else "similarity_run"
        assert any(e["loc"][:3] == ["body", "config", field] and msg in e["msg"]
                   for e in errors), errors
    res = _post(client, {"train_run": ok, "parts": ["noise", "alignment"],
                         "similarity_run": full, "alignment_replicates": 50})
    assert res.status_code == 201, res.text
    assert res.json()["config"]["parts"] == ["noise", "alignment"]
    # a study's evaluation names the study's field
    for evaluate in ({"parts": ["alignment"]},
                     {"parts": ["alignment"], "similarity_run": no_predictor}):
        res = client.post("/api/runs", json={"kind": "study", "config": {
            "conditions": ["none"], "train": {"dataset": "digits32"}, "evaluate": evaluate}})
        assert res.status_code == 422, res.text
        assert res.json()["detail"][0]["loc"] == ["body", "config", "evaluate",
                                                  "similarity_run"], res.json()
