"""The alignment evaluate part through the worker: an evaluate run reads the similarity
run's stored config and predictor (and for a recording the recording again, resolved
under the recordings root), and stores the alignment block, its metrics and its file."""

from __future__ import annotations

import dataclasses

from core.settings import Settings
from core.store.db import session_scope
from core.store.metrics import read_series
from core.store.models import User
from core.store.runs import create_run
from ml.evaluate import EvaluateConfig
from ml.neural.io import save_npz
from ml.neural.pipeline import SimilarityConfig
from ml.neural.predictor import PredictorConfig
from ml.neural.simulate import SimulationConfig, simulate
from ml.train import TrainConfig
from tests.worker.test_train_task import _run, env  # noqa: F401  (fixture)
from worker.tasks import evaluate_job, execute, similarity_job, train_job

SIM = SimulationConfig(n_images=80, n_oracle=10, oracle_repeats=4, n_scans=2,
                       neurons_per_scan=12, seed=4)
FIT = PredictorConfig(hidden_channels=4, max_epochs=1, batch_size=32)


def _submit(settings: Settings, kind: str, config: object, input_run: int | None = None) -> int:
    with session_scope(settings.db_url) as s:
        user = s.query(User).first()
        return create_run(s, owner=user, kind=kind, name="",
                          config=dataclasses.asdict(config),  # type: ignore[call-overload]
                          input_run_id=input_run).id


def test_an_evaluation_scores_alignment_on_the_similarity_runs_held_out_stimuli(
        env: Settings) -> None:  # noqa: F811
    sim = _submit(env, "similarity", SimilarityConfig(simulation=SIM, predictor=FIT,
                                                      pairs_for_r=2000, bootstrap=0))
    assert execute(sim, similarity_job)["status"] == "succeeded", _run(env, sim)
    env.recordings.mkdir(parents=True, exist_ok=True)
    save_npz(simulate(SIM).scans, env.recordings / "lab.npz")
    lab = _submit(env, "similarity", SimilarityConfig(source="recording", recording="lab.npz",
                                                      predictor=FIT, pairs_for_r=2000,
                                                      bootstrap=0))
    assert execute(lab, similarity_job)["status"] == "succeeded", _run(env, lab)
    trained = _submit(env, "train", TrainConfig(
        backbone="small_cnn", width=8, epochs=1, batch_size=256, lr=0.05,
        target="neural-model", target_run=sim, alpha=1.0, stimuli_per_step=16, device="cpu"))
    assert execute(trained, train_job)["status"] == "succeeded", _run(env, trained)

    def evaluate(similarity_run: int) -> tuple[int, dict]:
        cfg = EvaluateConfig(train_run=trained, parts=("alignment",),
                             similarity_run=similarity_run, alignment_replicates=10,
                             alignment_folds=3, device="cpu")
        run_id = _submit(env, "evaluate", cfg, trained)
        assert execute(run_id, evaluate_job)["status"] == "succeeded", _run(env, run_id)
        return run_id, _run(env, run_id)[1]

    run_id, result = evaluate(sim)
    block = result["alignment"]
    assert block["source"] == f"similarity run {sim}" and block["n_scans"] == 2
    assert block["n_stimuli"] == {"sim-scan1": 10, "sim-scan2": 10}
    assert block["mean"]["rsa_mix_true"] is not None and block["message"] is None
    with session_scope(env.db_url) as s:
        for name in ("rsa_mix_oracle", "feve_best"):
            series = read_series(s, run_id, f"alignment/{name}", max_points=5)
            assert series.values == [block["mean"][name]]
    assert (env.artifacts / str(run_id) / "alignment.json").stat().st_size > 0
    # a recording: read again from the recordings root; no S_true
    _, result = evaluate(lab)
    assert result["alignment"]["mean"]["rsa_mix_true"] is None
    assert result["alignment"]["mean"]["rsa_mix_oracle"] is not None
