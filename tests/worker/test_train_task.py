"""The train task against the store: a target from a similarity run, cnn-features from a
train run, and resuming a crashed run from its stored checkpoint."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from core.lifecycle import finish_run
from core.settings import Settings, get_settings
from core.store.artifacts import save_artifact
from core.store.db import migrate, session_scope
from core.store.logs import read_lines
from core.store.metrics import read_series
from core.store.models import Role, RunStatus, User
from core.store.runs import create_run, get_run
from core.store.users import create_user
from ml.neural.estimators import unit_vectors
from ml.neural.stimuli import natural_patches
from ml.neural.target import SimilarityTarget
from ml.train import TrainConfig
from worker.recorder import SqlRecorder
from worker.tasks import execute, train_job

TINY = dict(backbone="small_cnn", width=8, epochs=2, batch_size=256, lr=0.05,
            heldout_fraction=0.25, alpha=2.0, device="cpu")


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("NEUROREG_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        create_user(s, name="u", role=Role.member)
    yield get_settings()
    get_settings.cache_clear()


def _similarity_run(settings: Settings) -> int:
    images = natural_patches(64, seed=1)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (2, 2))
    f = quad.flatten(1).numpy()
    target = SimilarityTarget("neural-model", unit_vectors((f - f.mean(0)) / f.std(0)),
                              np.arange(64), images)
    with session_scope(settings.db_url) as s:
        user = s.query(User).first()
        run = create_run(s, owner=user, kind="similarity", name="", config={})
        save_artifact(s, settings.artifacts, run_id=run.id, name="target-neural-model.npz",
                      data=target.to_bytes(), media_type="application/x-npz")
        finish_run(s, run.id, RunStatus.succeeded)
        return run.id


def _train_run(settings: Settings, config: TrainConfig) -> int:
    with session_scope(settings.db_url) as s:
        user = s.query(User).first()
        return create_run(s, owner=user, kind="train", name="",
                          config=dataclasses.asdict(config)).id


def _run(settings: Settings, run_id: int):  # type: ignore[no-untyped-def]
    with session_scope(settings.db_url) as s:
        run = get_run(s, run_id)
        return run.status, run.result, run.error


def test_train_reads_its_target_run_and_cnn_features_read_a_trained_network(env: Settings):
    sim = _similarity_run(env)
    first = _train_run(env, TrainConfig(target="neural-model", target_run=sim, **TINY))
    assert execute(first, train_job)["status"] == "succeeded", _run(env, first)
    status, result, _ = _run(env, first)
    assert len(result["gamma"]) == 3 and result["layers"] == [1, 2, 3]
    assert np.isfinite(result["r_similarity"]) and len(result["r_similarity_per_tap"]) == 3
    with session_scope(env.db_url) as s:
        assert read_series(s, first, "sim_r", max_points=10).total == 2
        assert read_series(s, first, "sim_r/2", max_points=10).total == 2
        assert read_series(s, first, "gamma/2", max_points=1000).total == result["steps"]
    assert (env.artifacts / str(first) / "model.pt").exists()
    # the dashboard's S_CNN overview, computed by the worker over the target's stimuli
    from ml.neural.overview import feature_overviews, leading_order
    from ml.regularize.cnn_features import SCnnOverviews, tap_features

    stored = SCnnOverviews.load(env.artifacts / str(first) / "s-cnn-overview.npz")
    taps, n = stored.taps, stored.n
    assert list(stored.sizes) == [64]  # 200 blocks asked, 64 stimuli: exact
    views = [(z, stored.sizes[64][1], m) for z, m in zip(stored.sizes[64][0], stored.means,
                                                          strict=True)]
    stimuli = SimilarityTarget.load(str(env.artifacts / str(sim) / "target-neural-model.npz"))
    direct = feature_overviews(tap_features(str(env.artifacts / str(first) / "model.pt"), taps,
                                            stimuli.images), 64, leading_order(stimuli.factor),
                               200)
    assert taps == [0, 1, 2] and n == 64 and len(views[0][1]) == 65  # 64 stimuli: exact
    # exact on purpose: the worker ran these same functions (cnn_features.overviews) on the
    # same checkpoint and stimuli, in this process, on this machine
    for (z, _, mean), (z2, _, mean2) in zip(views, direct, strict=True):
        np.testing.assert_array_equal(z, z2)
        np.testing.assert_array_equal(mean, mean2)

    # the paper's 'VGG' control with a network the lab trained: tap 1 of run `first`
    cfg = TrainConfig(target="cnn-features", target_run=sim,
                      features={"run": first, "layer": "1"}, **{**TINY, "epochs": 1})
    second = _train_run(env, cfg)
    assert execute(second, train_job)["status"] == "succeeded", _run(env, second)
    assert np.isfinite(_run(env, second)[1]["r_similarity"])


class Killed(Exception):
    pass


class DyingRecorder(SqlRecorder):
    def log_metrics(self, metrics, step):  # type: ignore[no-untyped-def]
        if step >= 8:  # epoch 2 of 3 (6 steps per epoch), after the first checkpoint
            raise Killed
        super().log_metrics(metrics, step)


def test_a_killed_train_task_resumes_from_the_stored_checkpoint(env: Settings):
    sim = _similarity_run(env)
    cfg = TrainConfig(target="neural-model", target_run=sim, **{**TINY, "epochs": 3})
    run_id = _train_run(env, cfg)
    kw = dict(db_url=env.db_url, artifact_root=env.artifacts, run_id=run_id)
    with pytest.raises(Killed):
        train_job(cfg, DyingRecorder(**kw))
    result = train_job(cfg, SqlRecorder(**kw))  # the redelivered task
    rec = SqlRecorder(**kw)
    assert result.resumed_from_step == 6 and result.steps == 18
    with session_scope(env.db_url) as s:
        for key in ("loss", "sim_loss", "gamma/0"):
            assert read_series(s, run_id, key, max_points=100).steps == list(range(18)), key
        assert read_series(s, run_id, "test_acc", max_points=10).steps == [5, 11, 17]
    assert rec.load_artifact("model.pt") is not None


def test_evaluate_reads_the_train_runs_model_and_records_robustness(env: Settings):
    from ml.evaluate import EvaluateConfig
    from worker.tasks import evaluate_job

    cfg = TrainConfig(backbone="small_cnn", width=16, epochs=8, lr=0.02, lr_decay=1.0,
                      device="cpu")
    trained = _train_run(env, cfg)
    assert execute(trained, train_job)["status"] == "succeeded"
    ecfg = EvaluateConfig(train_run=trained, attacks="quick", norms=("l2",), n_samples=24,
                          noise_sigmas=(0.0, 0.1, 0.3), autoattack_eps={"l2": (0.2,)},
                          autoattack_steps=5, autoattack_queries=20,
                          corruptions=("fog",), corruption_severities=(1,),
                          corruption_samples=40, device="cpu")
    with session_scope(env.db_url) as s:
        user = s.query(User).first()
        run_id = create_run(s, owner=user, kind="evaluate", name="",
                            config=dataclasses.asdict(ecfg), input_run_id=trained).id
    assert execute(run_id, evaluate_job)["status"] == "succeeded", _run(env, run_id)
    _, result, _ = _run(env, run_id)
    assert result["noise"]["sigmas"] == [0.0, 0.1, 0.3] and result["n"] == 24
    assert result["median_l2"] > 0 and result["noise"]["accuracy"][0] > 0.5
    with session_scope(env.db_url) as s:
        assert read_series(s, run_id, "noise_acc", max_points=10).steps == [0, 1, 2]
        med = read_series(s, run_id, "median_l2", max_points=10).values
        assert med == [pytest.approx(result["median_l2"])]
        budget = read_series(s, run_id, "budget_median_l2", max_points=100)
        assert budget.values[-1] == pytest.approx(result["median_l2"])
    files = {p.name for p in (env.artifacts / str(run_id)).iterdir()}
    assert {"samples.csv", "minimal.csv", "adversarials.npz", "provenance.json",
            "autoattack.csv", "corruptions.csv"} <= files
    prov = (env.artifacts / str(run_id) / "provenance.json").read_text()
    assert '"foolbox": "3.' in prov and '"L2BrendelBethgeAttack"' in prov
    assert '"torchattacks": "3.5' in prov
    (aa,) = result["autoattack"]["threat_models"]["l2"]
    assert aa["epsilon"] == 0.2 and aa["n"] == 24 and aa["inconsistent"] is not None
    assert set(result["corruptions"]["accuracy"]) == {"fog"}
    with session_scope(env.db_url) as s:  # and a person could follow the attacks
        lines = [ln.line for ln in read_lines(s, run_id, limit=100_000)]
    assert any(re.search(r"ml\.evaluate\.minimal: attack 1/\d+ \S+: batch 1/\d+ \(\d+ "
                         r"samples\), \d+ adversarial$", ln) for ln in lines), lines
    assert any(re.search(r"attack \d+/\d+ \S+ done: median L2 \d", ln) for ln in lines)
    assert any(re.search(r"minimal: done in .*; clean accuracy \d\.\d+; median l2 ", ln)
               for ln in lines)


def test_soundness_and_mechanism_read_the_reference_model_and_the_targets(env: Settings):
    """The worker loads reference_run's model.pt for the transfer attacks; for the layer
    similarity the config's similarity_run, or else the target the model was trained
    toward — its r per tap then the one training reported on the same held-out stimuli."""
    from ml.evaluate import EvaluateConfig
    from worker.tasks import evaluate_job

    sim = _similarity_run(env)
    base = dict(backbone="small_cnn", width=16, epochs=12, lr=0.02, lr_decay=1.0,
                heldout_fraction=0.25, device="cpu")  # 12: at 8, seed 1 stayed near chance
    plain, other = (_train_run(env, TrainConfig(seed=seed, **base)) for seed in (0, 1))
    neural = _train_run(env, TrainConfig(target="neural-model", target_run=sim, alpha=2.0,
                                         **{**base, "epochs": 2}))
    for rid in (plain, other, neural):
        assert execute(rid, train_job)["status"] == "succeeded", _run(env, rid)

    def evaluate(train_run: int, **config: object) -> dict:
        ecfg = EvaluateConfig(train_run=train_run, n_samples=10, subspace_k=16, device="cpu",
                              **config)
        with session_scope(env.db_url) as s:
            user = s.query(User).first()
            run_id = create_run(s, owner=user, kind="evaluate", name="",
                                config=dataclasses.asdict(ecfg), input_run_id=train_run).id
        assert execute(run_id, evaluate_job)["status"] == "succeeded", _run(env, run_id)
        files = {p.name for p in (env.artifacts / str(run_id)).iterdir()}
        assert "mechanism.json" in files
        return _run(env, run_id)[1]

    result = evaluate(plain, reference_run=other, similarity_run=sim,
                      parts=("minimal", "soundness", "mechanism"), attacks="quick",
                      norms=("l2",), soundness_samples=6, hsja_steps=4, hsja_gradient_evals=20)
    sound = result["soundness"]
    assert sound["reference_run"] == other and sound["transfer_skipped"] is None
    assert sound["norms"]["l2"]["transfer"]["samples"] > 0
    layers = result["mechanism"]["layers"]
    assert layers["source"] == f"neural-model of similarity run {sim}"
    assert len(layers["r"]) == 3 and result["mechanism"]["subspace"]["k"] == 16
    # the model's own target: what training reported
    own = evaluate(neural, parts=("mechanism",))["mechanism"]["layers"]
    assert own["source"] == f"neural-model of similarity run {sim} (the model's own)"
    assert own["r"] == pytest.approx(_run(env, neural)[1]["r_similarity_per_tap"], abs=1e-6)


def test_a_study_fans_out_trains_then_evaluates_and_aggregates(env: Settings, monkeypatch):
    """Conditions × seeds → train runs → an evaluate run after each → the study finishes
    with its aggregates. Tasks run in this process; the broker only carries messages."""
    from fastapi.testclient import TestClient

    from core.store.users import ensure_admin, issue_token
    from core.studies import children
    from ml.study import StudyConfig
    from server.app import create_app
    from worker import tasks

    sent: list[tuple[str, int]] = []
    monkeypatch.setattr("core.queue.enqueue",
                        lambda app, *, task, queue, run_id, priority: sent.append((task, run_id)))
    sim = _similarity_run(env)
    cfg = StudyConfig(conditions=("none", "neural-model"), seeds=2, alphas=(2.0,),
                      target_run=sim, train={**TINY, "epochs": 2},
                      evaluate={"parts": ["noise"], "noise_sigmas": [0.0, 0.2, 0.4],
                                "device": "cpu"})
    with session_scope(env.db_url) as s:
        user = s.query(User).first()
        study_id = create_run(s, owner=user, kind="study", name="tiny grid",
                              config=dataclasses.asdict(cfg), input_run_id=sim).id
    assert tasks.study(study_id)["children"] == 4
    assert tasks.study(study_id).get("children", 0) == 0  # redelivered: nothing twice
    trains = [rid for task, rid in sent if task == "neuroreg.train"]
    assert len(trains) == 4
    for rid in trains:
        assert execute(rid, train_job)["status"] == "succeeded", _run(env, rid)
    evals = [rid for task, rid in sent if task == "neuroreg.evaluate"]
    assert len(evals) == 4 and _run(env, study_id)[0] is RunStatus.running
    for rid in evals:
        assert execute(rid, tasks.evaluate_job)["status"] == "succeeded", _run(env, rid)
    status, result, _ = _run(env, study_id)
    assert status is RunStatus.succeeded and result == {"runs": 8, "failed": []}
    with session_scope(env.db_url) as s:
        kids = children(s, get_run(s, study_id))
        assert {k.input_run_id for k in kids if k.kind == "evaluate"} == set(trains)
        token = issue_token(s, user=s.query(User).first(), name="t")
        ensure_admin(s)
    with TestClient(create_app(env)) as client:
        page = client.get(f"/api/studies/{study_id}",
                          headers={"Authorization": f"Bearer {token}"}).json()
    assert len(page["runs"]) == 8 and page["study"]["status"] == "succeeded"
    rows = {r["target"]: r for r in page["robustness"]}
    assert rows["none"]["n"] == 2 and rows["neural-model"]["alpha"] == 2.0
    assert len(rows["neural-model"]["noise"]["mean"]) == 3
    assert {r["target"] for r in page["gamma"]} == {"neural-model"}  # None learns no γ
    (paired,) = [r for r in page["paired_vs_none"] if r["measure"] == "noise_accuracy"]
    assert paired["pairs"] == 2 and paired["condition"] == "neural-model"


def _sent(settings: Settings, task: str) -> list[list]:  # type: ignore[type-arg]
    """The args of every ``task`` message waiting in the embedded broker's gpu queue."""
    import json

    out = []
    for f in sorted((settings.broker_dir / "queue").glob("*.gpu.msg")):
        msg = json.loads(f.read_text())
        if msg["headers"]["task"] == task:
            out.append(json.loads(msg["headers"]["argsrepr"]))
    return out


def test_a_pack_task_trains_its_runs_as_ordinary_runs(env: Settings):
    from core.lifecycle import cancel_run
    from core.store.logs import read_lines
    from worker.tasks import execute_pack

    sim = _similarity_run(env)
    cfgs = [TrainConfig(target="neural-model", target_run=sim, seed=s, **TINY)
            for s in range(3)]
    ids = [_train_run(env, c) for c in cfgs]
    with session_scope(env.db_url) as s:
        cancel_run(s, get_run(s, ids[2]))  # cancelled while queued: left out of the pack
    out = execute_pack(ids)
    assert out["status"] == {ids[0]: "succeeded", ids[1]: "succeeded"}
    apart = _train_run(env, cfgs[1])
    assert execute(apart, train_job)["status"] == "succeeded"
    rec = SqlRecorder(db_url=env.db_url, artifact_root=env.artifacts, run_id=ids[1])
    alone = SqlRecorder(db_url=env.db_url, artifact_root=env.artifacts, run_id=apart)
    with session_scope(env.db_url) as s:
        for run_id in ids[:2]:
            run = get_run(s, run_id)
            assert run.status is RunStatus.succeeded and run.result["steps"] == 12
            assert run.worker and run.provenance
            assert read_series(s, run_id, "loss", max_points=100).steps == list(range(12))
            lines = [ln.line for ln in read_lines(s, run_id, after=-1, limit=10_000)]
            assert any(f"runs {ids[0]}, {ids[1]} as one pack" in ln for ln in lines), lines
        assert get_run(s, ids[2]).status is RunStatus.cancelled
        a = read_series(s, ids[1], "sim_loss", max_points=100).values
        b = read_series(s, apart, "sim_loss", max_points=100).values
        assert np.allclose(a, b, atol=1e-3)  # the run trained apart
    for name in ("model.pt", "s-cnn-overview.npz", "logs.txt"):
        assert rec.load_artifact(name) is not None, name
    wa = torch.load(io.BytesIO(rec.load_artifact("model.pt")), weights_only=True)
    wb = torch.load(io.BytesIO(alone.load_artifact("model.pt")), weights_only=True)
    for k, v in wa["state_dict"].items():
        assert torch.allclose(v.float(), wb["state_dict"][k].float(), atol=1e-3), k


def test_a_study_with_pack_queues_its_compatible_cells_as_packs(
        env: Settings, monkeypatch: pytest.MonkeyPatch):
    from core.queue import make_celery
    from core.store.models import Run
    from worker.tasks import study_job

    # the worker's app was made with the settings of its import; this test's broker
    monkeypatch.setattr("worker.app.celery_app", make_celery(env))

    sim = _similarity_run(env)
    with session_scope(env.db_url) as s:
        user = s.query(User).first()
        study = create_run(s, owner=user, kind="study", name="grid", config={
            "conditions": ["none", "neural-model"], "seeds": 3, "alphas": [1.0, 2.0],
            "target_run": sim, "pack": 2, "train": {"backbone": "small_cnn"}}).id
    assert execute(study, study_job)["children"] == 9
    with session_scope(env.db_url) as s:
        kids = {k.id: k for k in s.query(Run).filter(Run.parent_id == study)}
        packs = _sent(env, "neuroreg.train_pack")
        alone = [a[0] for a in _sent(env, "neuroreg.train")]
        # two by two, in grid order: None's 3 seeds (one left alone), then the 6 neural
        # cells, α being one of the fields pack members may differ in
        targets = [[kids[i].config["target"] for i in p[0]] for p in packs]
        assert targets == [["none"] * 2] + [["neural-model"] * 2] * 3
        assert {kids[i].config["alpha"] for i in packs[2][0]} == {1.0, 2.0}
        assert len(alone) == 1 and kids[alone[0]].config["target"] == "none"
        assert {i for p in packs for i in p[0]} | set(alone) == set(kids)
        assert all(kids[i].task_id is None for p in packs for i in p[0])  # not revoked
        assert all(kids[i].task_id for i in alone)
