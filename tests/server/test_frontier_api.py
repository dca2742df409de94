"""The accuracy–robustness frontier over HTTP (a study's, and of picked evaluate runs),
what a study without what it needs answers, bad tolerances, and the paper's values."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import User
from core.store.runs import create_run

SIGMAS = [0.0, 0.1, 0.2, 0.4]
# (target, α) → clean accuracy, noise gain over None, median L2; seeds add small offsets
GRID = {("none", 0.0): (0.90, 0.0, 0.10), ("neural-model", 2.0): (0.895, 0.1, 0.12),
        ("neural-model", 16.0): (0.85, 0.2, 0.14), ("shuffle", 16.0): (0.80, 0.05, 0.11)}


def stored_study(settings: Settings, *, grid: dict | None = None, seeds: int = 3,
                 evaluated: bool = True, note: str = "") -> dict:
    """A finished study stored as workers leave it (no training): a simulated similarity
    target, a train run per (condition, α, seed) and, if ``evaluated``, its evaluation.
    Returns the ids: ``study``, ``target``, ``evals`` by (target, α, seed), ``trains``."""
    from core.store.models import RunStatus
    from ml.study import StudyConfig
    from ml.train import TrainConfig

    grid = GRID if grid is None else grid
    ids: dict = {"evals": {}, "trains": []}
    with session_scope(settings.db_url) as s:
        owner = s.query(User).first()
        sim = create_run(s, owner=owner, kind="similarity", name="sim",
                         config={"source": "simulated"})
        finish_run(s, sim.id, RunStatus.succeeded, result={})
        train_cfg = TrainConfig(backbone="small_cnn", width=24, dataset="digits32", epochs=20)
        cfg = StudyConfig(conditions=tuple(dict.fromkeys(t for t, _ in grid)), seeds=seeds,
                          alphas=tuple(sorted({a for t, a in grid if t != "none"})) or (2.0,),
                          target_run=sim.id, train=train_cfg, note=note)
        study = create_run(s, owner=owner, kind="study", name="grid",
                           config=dataclasses.asdict(cfg), input_run_id=sim.id)
        for (target, alpha), (clean, gain, l2) in grid.items():
            for seed in range(seeds):
                train = create_run(s, owner=owner, kind="train", name="t", parent_id=study.id,
                                   config=dataclasses.asdict(dataclasses.replace(
                                       train_cfg, target=target, seed=seed,
                                       alpha=alpha or 20.0,
                                       target_run=None if target == "none" else sim.id)))
                finish_run(s, train.id, RunStatus.succeeded,
                           result={"gamma": [0.5, 0.5], "layers": [1, 2]})
                ids["trains"].append(train.id)
                if not evaluated:
                    continue
                ev = create_run(s, owner=owner, kind="evaluate", name="e", parent_id=study.id,
                                input_run_id=train.id, config={})
                finish_run(s, ev.id, RunStatus.succeeded, result={
                    "noise": {"sigmas": SIGMAS, "accuracy": [
                        clean + 0.001 * seed, 0.6 + gain + 0.01 * seed * (1 + gain),
                        0.3 + gain, 0.1 + gain + 0.002 * seed]},
                    "median_l2": l2 + 0.003 * seed * (1 + gain), "median_linf": 0.003})
                ids["evals"][(target, alpha, seed)] = ev.id
        ids["study"], ids["target"] = study.id, sim.id
    return ids


def test_a_studys_frontier_has_its_points_and_matches_against_none(
    client: TestClient, settings: Settings
) -> None:
    ids = stored_study(settings)
    res = client.get(f"/api/studies/{ids['study']}/frontier")
    assert res.status_code == 200, res.text
    data = res.json()
    assert [(p["condition"], p["alpha"], p["n"]) for p in data["points"]] == [
        ("neural-model", 2.0, 3), ("neural-model", 16.0, 3), ("none", 0.0, 3),
        ("shuffle", 16.0, 3)]
    none = next(p for p in data["points"] if p["condition"] == "none")
    assert math.isclose(none["measures"]["clean_accuracy"]["mean"], 0.901)
    assert math.isclose(data["none_clean_accuracy"], 0.901) and data["tolerance"] == 0.02
    assert data["curves"] == {"neural-model": [2.0, 16.0], "none": [0.0], "shuffle": [16.0]}
    neural, shuffle = data["matched"]
    # α = 2 is 0.005 below None's clean accuracy; α = 16 is 0.05 below
    assert neural["condition"] == "neural-model" and neural["alpha"] == 2.0 and neural["matched"]
    assert math.isclose(neural["clean_gap"], -0.005)
    highest = neural["tests"]["noise_accuracy_highest"]
    assert highest["pairs"] == 3 and highest["higher_is_better"]
    # per seed: (0.2 + 0.002 s) − (0.1 + 0.002 s) = 0.1 exactly
    assert math.isclose(highest["mean_difference"], 0.1) and highest["sem_difference"] < 1e-9
    l2 = neural["tests"]["median_l2"]
    assert math.isclose(l2["mean_difference"], 0.02 + 0.0003, rel_tol=1e-6)
    assert l2["sem_difference"] > 0 and l2["t_test_p"] < 0.01 and l2["wilcoxon_p"] == 0.25
    assert shuffle["condition"] == "shuffle" and not shuffle["matched"] and shuffle["tests"] == {}
    assert math.isclose(shuffle["clean_gap"], -0.1)
    assert data["measures"]["median_linf"]["higher_is_better"] is True
    # a wider tolerance matches Shuffle too; None's α is never a "condition" row
    wide = client.get(f"/api/studies/{ids['study']}/frontier", params={"tolerance": 0.2}).json()
    assert [(m["condition"], m["matched"]) for m in wide["matched"]] == [
        ("neural-model", True), ("shuffle", True)]
    assert wide["tolerance"] == 0.2


def test_a_study_without_what_the_frontier_needs_is_409_saying_what(
    client: TestClient, settings: Settings
) -> None:
    unevaluated = stored_study(settings, evaluated=False)
    res = client.get(f"/api/studies/{unevaluated['study']}/frontier")
    assert res.status_code == 409
    assert "no finished evaluations yet" in res.json()["detail"]
    no_none = stored_study(settings, grid={("neural-model", 2.0): (0.9, 0.1, 0.12)})
    res = client.get(f"/api/studies/{no_none['study']}/frontier")
    assert res.status_code == 409 and "no evaluated None run" in res.json()["detail"]
    # the study page itself still answers: the frontier is a section of it, not its gate
    assert client.get(f"/api/studies/{unevaluated['study']}").status_code == 200
    assert client.get("/api/studies/9999/frontier").status_code == 404
    assert client.get(f"/api/studies/{unevaluated['trains'][0]}/frontier").status_code == 404


@pytest.mark.parametrize("tolerance", ["0", "-1", "nan", "inf", "-inf", "abc"])
@pytest.mark.parametrize("path", ["/api/studies/{study}/frontier", "/api/summaries/frontier"])
def test_a_tolerance_that_is_not_finite_and_positive_is_422_naming_it(
    client: TestClient, settings: Settings, tolerance: str, path: str
) -> None:
    ids = stored_study(settings, grid={("none", 0.0): GRID[("none", 0.0)]}, seeds=1)
    res = client.get(path.format(study=ids["study"]), params={"tolerance": tolerance})
    assert res.status_code == 422, res.text
    assert [e["loc"] for e in res.json()["detail"]] == [["query", "tolerance"]]


def test_the_frontier_of_picked_evaluate_runs(client: TestClient, settings: Settings) -> None:
    ids = stored_study(settings)
    ev = ids["evals"]
    picked = [ev[("none", 0.0, s)] for s in range(3)] + [ev[("neural-model", 16.0, s)]
                                                         for s in range(2)]
    res = client.get("/api/summaries/frontier",
                     params={"run_id": [*picked, ids["trains"][0]], "tolerance": 0.1})
    assert res.status_code == 200, res.text
    data = res.json()
    assert [(p["condition"], p["alpha"], p["n"]) for p in data["points"]] == [
        ("neural-model", 16.0, 2), ("none", 0.0, 3)]
    (row,) = data["matched"]
    assert row["alpha"] == 16.0 and row["matched"]  # gap −0.05 is within 0.1
    assert row["tests"]["noise_accuracy"]["pairs"] == 2
    assert data["skipped"] == [ids["trains"][0]]  # a train run is not an evaluation
    only_neural = [ev[("neural-model", 2.0, s)] for s in range(3)]
    res = client.get("/api/summaries/frontier", params={"run_id": only_neural})
    assert res.status_code == 409 and "None" in res.json()["detail"]
    res = client.get("/api/summaries/frontier", params={"run_id": [ids["trains"][0]]})
    assert res.status_code == 409 and "no finished evaluations" in res.json()["detail"]


def test_the_study_serves_the_papers_values_and_its_setting_beside_ours(
    client: TestClient, settings: Settings
) -> None:
    ids = stored_study(settings, note="A first look: digits, not CIFAR.")
    data = client.get(f"/api/studies/{ids['study']}").json()
    paper = data["paper"]
    assert paper["noise_highest"]["values"] == {"none": 0.2, "neural-model": 0.5}
    assert "Fig. 4" in paper["noise_highest"]["source"]
    assert paper["medians"]["values"]["none"] == {"linf": 0.0025, "l2": 0.09}
    assert paper["medians"]["values"]["cnn-features"] == {"linf": 0.0028, "l2": 0.11}
    assert paper["gamma"]["layers"] == [1, 5, 9, 13, 17]
    assert paper["gamma"]["rows"][3] == {"alpha": 8.0, "gamma": [0.0, 0.33, 0.67, 0.0, 0.0]}
    beside = {r["field"]: r for r in paper["beside"]}
    assert beside["dataset"]["ours"] == "digits32" and beside["dataset"]["same"] is False
    assert beside["backbone"]["ours"] == "small_cnn" and beside["width"]["ours"] == "24"
    assert beside["epochs"]["ours"] == "20" and beside["epochs"]["same"] is False
    assert beside["batch_size"]["same"] is True and beside["seeds"]["ours"] == "3"
    assert beside["target"]["ours"] == f"simulated responses (similarity run #{ids['target']})"
    assert data["study"]["config"]["note"] == "A first look: digits, not CIFAR."


def test_a_study_note_is_kept_and_a_long_one_is_422(client: TestClient) -> None:
    body = {"kind": "study", "name": "n", "config": {"conditions": ["none"], "note": "x" * 2001}}
    res = client.post("/api/runs", json=body)
    assert res.status_code == 422
    assert any(e["loc"][:3] == ["body", "config", "note"] for e in res.json()["detail"])
    body["config"]["note"] = "why this study: the BatchNorm question"
    res = client.post("/api/runs", json=body)
    assert res.status_code == 201, res.text
    assert res.json()["config"]["note"] == "why this study: the BatchNorm question"


def test_the_study_sends_what_its_figures_draw(client: TestClient, settings: Settings) -> None:
    """Fig. 6's mean noise accuracy over σ > 0 with its SEM over seeds and the norms the
    evaluations measured come from the server (ml's measures), not from the page."""
    ids = stored_study(settings)
    data = client.get(f"/api/studies/{ids['study']}").json()
    assert data["norms"] == [{"name": "linf", "label": "L∞"}, {"name": "l2", "label": "L2"}]
    row = next(r for r in data["robustness"]
               if r["target"] == "neural-model" and r["alpha"] == 16.0)
    # the stored noise curves: σ = 0.1, 0.2, 0.4 at 0.6 + g + 0.01·s(1 + g), 0.3 + g,
    # 0.1 + g + 0.002·s with g = 0.2 and seeds s = 0, 1, 2
    per_seed = [((0.8 + 0.012 * s) + 0.5 + (0.3 + 0.002 * s)) / 3 for s in range(3)]
    got = row["measures"]["noise_accuracy"]
    assert got["n"] == 3 and got["mean"] == pytest.approx(sum(per_seed) / 3)
    assert got["sem"] == pytest.approx(
        float(np.std(per_seed, ddof=1)) / 3**0.5)
