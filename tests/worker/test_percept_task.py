"""The percept evaluate part through the worker (issue 38, item 4): an evaluate run with the
minimal part reads the similarity run's stored config and predictor — the predictor
loaded once, for the held-out stimuli and the part alike — and stores the percept block,
its headline metrics and ``percept.json``."""

from __future__ import annotations

import json

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.metrics import read_series
from ml.evaluate import EvaluateConfig
from ml.evaluate import alignment_inputs as inputs_module
from ml.neural.pipeline import SimilarityConfig
from ml.train import TrainConfig
from tests.worker.test_alignment_task import FIT, SIM, _submit
from tests.worker.test_train_task import _run, env  # noqa: F401  (fixture)
from worker.tasks import evaluate_job, execute, similarity_job, train_job


def test_an_evaluation_measures_the_percept_with_the_similarity_runs_predictor(
        env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    sim = _submit(env, "similarity", SimilarityConfig(simulation=SIM, predictor=FIT,
                                                      pairs_for_r=2000, bootstrap=0))
    assert execute(sim, similarity_job)["status"] == "succeeded", _run(env, sim)
    # a model the minimal part takes (~40 % accurate; one that predicts one class is not)
    trained = _submit(env, "train", TrainConfig(backbone="small_cnn", width=8, epochs=4,
                                                batch_size=64, lr=0.02, lr_decay=1.0,
                                                device="cpu"))
    assert execute(trained, train_job)["status"] == "succeeded", _run(env, trained)
    loads: list[object] = []
    real = inputs_module.load_predictor

    def counted(path):  # type: ignore[no-untyped-def]
        loads.append(path)
        return real(path)

    monkeypatch.setattr(inputs_module, "load_predictor", counted)
    cfg = EvaluateConfig(train_run=trained, parts=("minimal", "percept"), attacks="quick",
                         norms=("l2",), n_samples=8, batch_size=64, similarity_run=sim,
                         alignment_replicates=20, device="cpu")
    run_id = _submit(env, "evaluate", cfg, trained)
    assert execute(run_id, evaluate_job)["status"] == "succeeded", _run(env, run_id)
    assert len(loads) == 1  # the held-out stimuli and the part share one predictor
    block = _run(env, run_id)[1]["percept"]
    assert block["source"] == f"similarity run {sim}"
    assert block["scans"] == ["sim-scan1", "sim-scan2"]
    row = block["norms"]["l2"]
    assert [r["name"] for r in row["readouts"]][:3] == ["v1", "v1/sim-scan1", "v1/sim-scan2"]
    assert row["readouts"][-1]["name"] == "logits"
    with session_scope(env.db_url) as s:
        for name, value in block["headline"].items():
            assert value is not None, name
            series = read_series(s, run_id, f"percept/{name}", max_points=5)
            assert series.values == [pytest.approx(value)]
    saved = json.loads((env.artifacts / str(run_id) / "percept.json").read_text())
    assert len(saved["per_sample"]["l2"]["sample_ids"]) == row["n"]
