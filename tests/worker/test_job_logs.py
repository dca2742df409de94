"""The built-in jobs write what a person wants to follow into their run's log, through
the worker's one lifecycle (ml logs with ``logging``; the worker's capture sends the job's
records to the run's log): a train run each epoch, a similarity run each stage, an
evaluation each part and attack, a study its runs as they are submitted and end."""

from __future__ import annotations

import dataclasses
import re

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.logs import read_lines
from core.store.models import Role, Run, RunStatus, User
from core.store.runs import create_run
from core.store.users import create_user
from ml.neural.pipeline import SimilarityConfig
from ml.train import TrainConfig
from tests.worker.test_similarity_task import FIT, SIM
from tests.worker.test_train_task import _similarity_run
from worker.tasks import evaluate_job, execute, similarity_job, study_job, train_job

pytestmark = pytest.mark.no_numerics

NUM = r"\d+\.\d+"


@pytest.fixture
def env(worker_settings: Settings) -> Settings:
    with session_scope(worker_settings.db_url) as s:
        create_user(s, name="u", role=Role.member)
    return worker_settings


def _create(settings: Settings, kind: str, config: object, **kw: object) -> int:
    with session_scope(settings.db_url) as s:
        user = s.query(User).first()
        return create_run(s, owner=user, kind=kind, name="", config=dataclasses.asdict(
            config) if dataclasses.is_dataclass(config) else config, **kw).id  # type: ignore[arg-type]


def _lines(settings: Settings, run_id: int) -> list[str]:
    with session_scope(settings.db_url) as s:
        return [ln.line for ln in read_lines(s, run_id, limit=100_000)]


def _error(settings: Settings, run_id: int) -> str | None:
    with session_scope(settings.db_url) as s:
        return s.get(Run, run_id).error


def _matching(lines: list[str], pattern: str) -> list[str]:
    return [ln for ln in lines if re.search(pattern, ln)]


def _logs_txt(settings: Settings, run_id: int) -> str:
    return (settings.artifacts / str(run_id) / "logs.txt").read_text()


def _train(env: Settings, **over: object) -> int:
    cfg = TrainConfig(**{**dict(backbone="small_cnn", width=8, epochs=2, batch_size=256,
                                lr=0.05, heldout_fraction=0.25, device="cpu"), **over})
    run_id = _create(env, "train", cfg)
    assert execute(run_id, train_job)["status"] == "succeeded"
    return run_id


def test_a_train_run_logs_each_epoch_with_loss_accuracy_r_and_time(env: Settings) -> None:
    target = _similarity_run(env)
    run_id = _train(env, target="neural-model", target_run=target, alpha=2.0)
    lines = _lines(env, run_id)
    assert _matching(lines, rf"^INFO ml\.train\.joint: training small_cnn \(width 8\) on "
                            rf"digits32: \d+ images, 2 epochs × \d+ steps of 256, target "
                            rf"neural-model of similarity run {target}, α = 2, seed 0, on cpu$")
    epochs = _matching(lines, r"ml\.train\.joint: epoch \d/2: ")
    assert len(epochs) == 2, lines
    for n, line in enumerate(epochs, 1):
        assert re.search(rf"epoch {n}/2: loss {NUM}, train acc {NUM}, test acc {NUM} "
                         rf"\(test loss {NUM}\), sim r -?{NUM}, γ( {NUM})+, {NUM} s "
                         rf"\(step \d+\)$", line), line
    assert _matching(lines, rf"ml\.train\.joint: done: test acc {NUM} after \d+ steps")
    assert all(line in _logs_txt(env, run_id) for line in epochs)  # kept as logs.txt too


def test_a_plain_train_run_logs_its_epochs_without_a_target(env: Settings) -> None:
    lines = _lines(env, _train(env, epochs=1))
    assert _matching(lines, r"no target \(plain cross-entropy\)")
    (epoch,) = _matching(lines, r"epoch 1/1: ")
    assert "sim r" not in epoch and "γ" not in epoch and re.search(rf"test acc {NUM}", epoch)


def test_a_similarity_run_logs_each_stage_with_counts(env: Settings) -> None:
    run_id = _create(env, "similarity", SimilarityConfig(simulation=SIM, predictor=FIT,
                                                         pairs_for_r=2000))
    assert execute(run_id, similarity_job)["status"] == "succeeded"
    text = "\n".join(_lines(env, run_id))
    stages = [
        r"simulating mouse V1 \(photographs\): 80 images \(6 oracle × 3 repeats\), 2 scans × "
        r"12 neurons, seed 4",
        r"2 scans: 24 neurons, \d+ trials, 6 oracle images; \d+\.\d s",
        r"predictive model: 2 scans, 24 neurons, up to 1 epochs",
        rf"predictor epoch 1/1: train loss -?{NUM}, val corr -?{NUM}",
        r"predictive model fitted: val corr",
        r"scan \S+: SNR weights \(Eq\. 1\) median .* over 12 neurons; S_oracle \(Eq\. 3\) "
        r"and S_model \(Eq\. 6\) over 6 oracle images: r\(S_data, S_oracle\) = ",
        r"targets built \(S_model averaged over 2 scans, Eq\. 6\): neural-model over 74 "
        r"images",
        r"scores: r_model_oracle ",
        r"saved \d+ targets, the figures and the predictive model; done in",
    ]
    at = -1
    for stage in stages:  # each there, in this order
        m = re.search(stage, text[at + 1:])
        assert m is not None, (stage, text)
        at += 1 + m.start()
    assert len(re.findall(r"ml\.neural\.pipeline: scan \S+: SNR", text)) == 2


def test_an_evaluation_logs_each_part_the_noise_sigmas_and_autoattack(env: Settings) -> None:
    from ml.evaluate import EvaluateConfig

    trained = _train(env, width=16, epochs=4, batch_size=64, lr=0.02, lr_decay=1.0)
    ecfg = EvaluateConfig(train_run=trained, parts=("noise", "autoattack", "corruptions"),
                          n_samples=8, noise_sigmas=(0.0, 0.1), autoattack_eps={"l2": (0.2,)},
                          autoattack_steps=2, autoattack_queries=5, corruptions=("fog",),
                          corruption_severities=(1, 2), corruption_samples=20, device="cpu")
    run_id = _create(env, "evaluate", ecfg, input_run_id=trained)
    assert execute(run_id, evaluate_job)["status"] == "succeeded", _error(env, run_id)
    lines = _lines(env, run_id)
    for pattern in (
            r"evaluating on cpu: parts noise, autoattack, corruptions; \d+ test images, 8 "
            r"attack samples",
            r"noise: started \(2 σ over \d+ test images\)",
            rf"noise σ = 0: accuracy {NUM}", rf"noise σ = 0\.1: accuracy {NUM}",
            r"noise: done in \d+ s",
            r"autoattack: started \(l2 ε 0\.2 on 8 samples\)",
            r"AutoAttack L2 ε = 0\.2: after \S+ \(\d+ samples attacked\) robust accuracy",
            rf"AutoAttack l2 ε = 0\.2 \(1/1\): robust accuracy {NUM} over 8 samples",
            r"autoattack: done in",
            r"corruptions: started \(1 corruptions × 2 severities on 20 images \(generated\)\)",
            rf"corruption \S+: accuracy {NUM} {NUM} at severities 1 2 \(20 images\)",
            rf"corruptions: done in \d+ s; mean accuracy {NUM}",
            r"evaluation done in"):
        assert _matching(lines, pattern), (pattern, lines)
    components = _matching(lines, r"AutoAttack L2 ε = 0\.2: after")
    assert len(components) >= 1


def test_a_study_logs_its_runs_as_they_are_submitted_and_end(env: Settings) -> None:
    study = _create(env, "study", {
        "conditions": ["none"], "seeds": 2, "train": {"backbone": "small_cnn"},
        "evaluate": {"attacks": "quick", "norms": ["l2"], "parts": ["noise"]}})
    assert execute(study, study_job)["status"] == "running"
    with session_scope(env.db_url) as s:
        kids = sorted(r.id for r in s.query(Run).filter(Run.parent_id == study))
    assert _matching(_lines(env, study), rf"study: 2 runs submitted \(train {kids[0]}, "
                                         rf"{kids[1]}\)")
    assert execute(kids[0], lambda config, rec: {})["status"] == "succeeded"
    with session_scope(env.db_url) as s:
        (evaluation,) = [r.id for r in s.query(Run).filter(Run.parent_id == study,
                                                            Run.kind == "evaluate")]
    assert _matching(_lines(env, study), rf"^run {kids[0]} \(train .*seed 0\) succeeded; "
                                         rf"queued evaluate run {evaluation}; 1/3 of the "
                                         "study's runs finished$")
    with session_scope(env.db_url) as s:
        assert s.get(Run, study).status is RunStatus.running
