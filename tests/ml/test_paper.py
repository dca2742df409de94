"""The paper's values and its setting beside a study's."""

import dataclasses

from ml.evaluate.run import EvaluateConfig
from ml.paper import SETTING, paper_values, setting_beside
from ml.study import StudyConfig
from ml.train import TrainConfig


def test_a_study_in_the_papers_setting_differs_only_in_what_it_cannot_know() -> None:
    cfg = StudyConfig(conditions=("none", "neural-model"), target_run=7,
                      train=TrainConfig(dataset="cifar10"), evaluate=EvaluateConfig())
    rows = setting_beside(dataclasses.asdict(cfg), {"source": "recording",
                                                     "recording": "mouse-v1.nwb"})
    assert [r["field"] for r in rows] == list(SETTING)
    same = {r["field"]: r["same"] for r in rows}
    assert same == {**dict.fromkeys(SETTING, True), "target": None}
    target = next(r for r in rows if r["field"] == "target")
    assert target["ours"] == "recording mouse-v1.nwb (similarity run #7)"
    assert all(r["source"] and r["paper"] for r in rows)


def test_a_small_study_says_each_difference() -> None:
    cfg = StudyConfig(conditions=("none", "neural-model"), seeds=3, alphas=(2.0,),
                      target_run=7, train=TrainConfig(backbone="small_cnn", width=24,
                                                      epochs=20, lr=0.02),
                      evaluate=EvaluateConfig(attacks="quick", n_samples=50, norms=("l2",)))
    rows = {r["field"]: r for r in setting_beside(dataclasses.asdict(cfg),
                                                  {"source": "simulated"})}
    differ = sorted(k for k, r in rows.items() if r["same"] is False)
    assert differ == ["alphas", "attack_samples", "attacks", "backbone", "dataset", "epochs",
                      "schedule", "seeds", "target", "width"]
    assert rows["schedule"]["ours"].startswith("SGD, lr 0.02")
    assert rows["attacks"]["ours"] == "quick schedule, norms ['l2']"
    # a stored config with fields missing reads them as their defaults; no target run
    bare = {r["field"]: r for r in setting_beside({})}
    assert bare["dataset"]["ours"] == "digits32" and bare["seeds"]["ours"] == "5"
    assert bare["target"] == {**bare["target"], "ours": "no target run", "same": False}


def test_the_papers_values_name_their_source() -> None:
    values = paper_values()
    for key in ("noise_highest", "medians", "gamma"):
        assert values[key]["source"]
    assert values["medians"]["values"]["shuffle"] == {"linf": 0.003, "l2": 0.11}
    assert values["medians"]["values"]["neural-model"] == {"linf": 0.0034, "l2": 0.13}
    assert all(abs(sum(r["gamma"]) - 1) < 1e-9 for r in values["gamma"]["rows"])
