"""The similarity task's logic, called directly against the store."""

from __future__ import annotations

import dataclasses

from core.settings import Settings
from core.store.db import session_scope
from core.store.metrics import read_series
from core.store.models import Role, RunStatus, User
from core.store.runs import create_run, get_run
from core.store.users import create_user
from ml.neural.io import save_npz
from ml.neural.pipeline import SimilarityConfig
from ml.neural.predictor import PredictorConfig
from ml.neural.simulate import SimulationConfig, simulate
from ml.neural.target import SimilarityTarget
from tests.worker.test_tasks import env_settings  # noqa: F401  (fixture)
from worker.tasks import execute, similarity_job

SIM = SimulationConfig(n_images=80, n_oracle=6, oracle_repeats=3, n_scans=2,
                       neurons_per_scan=12, seed=4)
FIT = PredictorConfig(hidden_channels=4, max_epochs=1, batch_size=32)


def _submit(settings: Settings, config: SimilarityConfig) -> int:
    with session_scope(settings.db_url) as s:
        user = s.query(User).filter_by(name="u").one_or_none() or create_user(
            s, name="u", role=Role.member
        )
        return create_run(s, owner=user, kind="similarity", name="",
                          config=dataclasses.asdict(config)).id


def test_similarity_run_stores_scores_targets_and_figures(env_settings: Settings) -> None:  # noqa: F811
    run_id = _submit(env_settings, SimilarityConfig(simulation=SIM, predictor=FIT,
                                                    pairs_for_r=2000))
    assert execute(run_id, similarity_job)["status"] == "succeeded"
    with session_scope(env_settings.db_url) as s:
        run = get_run(s, run_id)
        assert run.status is RunStatus.succeeded, run.error
        result = run.result
        r = read_series(s, run_id, "r_model_oracle", max_points=10)
        assert r.values == [result["scores"]["r_model_oracle"]]  # exact: stored, not recomputed
    assert result["targets"]["neural-model"] == "target-neural-model.npz"
    folder = env_settings.artifacts / str(run_id)
    target = SimilarityTarget.load(str(folder / "target-neural-model.npz"))
    assert len(target) == 74 == result["target_images"]["neural-model"]
    assert (folder / "figures.json").stat().st_size > 0


def test_recording_paths_resolve_under_the_recordings_root(env_settings: Settings) -> None:  # noqa: F811
    env_settings.recordings.mkdir(parents=True, exist_ok=True)
    save_npz(simulate(SIM).scans, env_settings.recordings / "lab.npz")
    ok = _submit(env_settings, SimilarityConfig(source="recording", recording="lab.npz",
                                                predictor=FIT, pairs_for_r=2000))
    assert execute(ok, similarity_job)["status"] == "succeeded"
    bad = _submit(env_settings, SimilarityConfig(source="recording", recording="../x.npz",
                                                 predictor=FIT))
    assert execute(bad, similarity_job)["status"] == "failed"
    with session_scope(env_settings.db_url) as s:
        run = get_run(s, bad)
        assert run.error is not None and "config.recording" in run.error
        assert not (env_settings.artifacts / str(bad)).exists()
