"""The alignment evaluate part (issue 38, item 1) on a tiny simulated similarity run and a
tiny model regularized toward it, on the CPU: the held-out stimuli and S_target rebuilt
from the run's stored files as the similarity pipeline computed them, the model's taps
and γ, the result block, the headline metrics, and the refusals."""

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.data import load_dataset
from ml.evaluate.alignment import NO_REPEATS, AlignmentConfig, Responses, alignment
from ml.evaluate.alignment_inputs import (
    HEADLINES,
    AlignmentInputs,
    HeldOut,
    align_scans,
    load_heldout,
    model_features,
)
from ml.evaluate.run import DEFAULT_PARTS, PARTS, EvaluateConfig, _weights, evaluate_model
from ml.neural.pipeline import SimilarityConfig, run_similarity
from ml.neural.predictor import PredictorConfig
from ml.neural.simulate import SimulationConfig, simulate
from ml.recorder import MemoryRecorder
from ml.regularize import SimilarityHead
from ml.train import TrainConfig, train_model
from ml.train.classifier import load_model

SIM = SimulationConfig(n_images=80, n_oracle=12, oracle_repeats=4, n_scans=2,
                       neurons_per_scan=12, seed=4)
FIT = PredictorConfig(hidden_channels=4, max_epochs=1, batch_size=32)
QUICK = dict(alignment_replicates=20, alignment_folds=3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    """A simulated similarity run's stored files, its result, and a model trained toward
    its neural-model target."""
    folder = tmp_path_factory.mktemp("similarity")
    rec = MemoryRecorder()
    res = run_similarity(SimilarityConfig(simulation=SIM, predictor=FIT, pairs_for_r=2000,
                                          bootstrap=0), rec)
    for name in ("config.json", "predictor.pt"):
        (folder / name).write_bytes(rec.artifacts[name][0])
    trec = MemoryRecorder()
    train_model(TrainConfig(backbone="small_cnn", width=8, epochs=1, batch_size=256, lr=0.05,
                            target="neural-model", alpha=1.0, stimuli_per_step=16,
                            device="cpu"), trec, res.targets["neural-model"])
    ckpt = torch.load(io.BytesIO(trec.artifacts["model.pt"][0]), weights_only=True)
    return folder, res, ckpt


def _held(folder: Path) -> list[HeldOut]:
    return load_heldout(folder / "config.json", folder / "predictor.pt")


def test_the_held_out_stimuli_are_each_scans_oracle_images_with_the_runs_s_model(setup):
    folder, res, _ = setup
    held = _held(folder)
    sim = simulate(SIM)
    assert [h.scan for h in held] == [s.name for s in sim.scans]
    for h, scan, analysis in zip(held, sim.scans, res.scans, strict=True):
        np.testing.assert_array_equal(h.ids, scan.oracle_ids)
        assert h.images.shape == (12, 1, 36, 64)
        # S_target: the predictor reloaded from predictor.pt gives the pipeline's S_model
        np.testing.assert_allclose(h.s_target, analysis.s_model, atol=1e-5)
        np.testing.assert_allclose(h.s_true, sim.s_true(h.ids), atol=1e-6)
        assert len(h.responses.trials) == 12 * 4
        assert set(h.responses.trial_ids.tolist()) == set(h.ids.tolist())
        # none of them is in the target the model trained toward
        assert not np.isin(h.ids, res.targets["neural-model"].image_ids).any()


def test_the_features_are_the_taps_flattened_and_gamma_the_heads_softmax(setup):
    folder, _, ckpt = setup
    images = _held(folder)[0].images
    feats, gamma, info = model_features(ckpt, images, batch=5)  # batches: the same rows
    assert list(feats) == [f"layer{k}" for k in info["layers"]] and len(feats) == 3
    assert all(f.shape[0] == 12 and f.ndim == 2 for f in feats.values())
    head = SimilarityHead(3)
    head.load_state_dict(ckpt["head"])
    np.testing.assert_allclose(gamma, head.gamma.detach().double().numpy(), atol=1e-7)
    whole, _, _ = model_features(ckpt, images)
    for k in feats:
        np.testing.assert_allclose(feats[k], whole[k], rtol=1e-5, atol=1e-6)


def test_the_part_records_its_block_metrics_and_artifact(setup):
    folder, _, ckpt = setup
    held = _held(folder)
    inputs = AlignmentInputs(ckpt, held, "similarity run 7")
    data = load_dataset("digits32", seed=0)
    model = load_model(ckpt)[0]
    rec = MemoryRecorder()
    cfg = EvaluateConfig(parts=("alignment",), similarity_run=7, device="cpu", **QUICK)
    out = evaluate_model(cfg, rec, model, data.test_images, data.test_labels, num_classes=10,
                         alignment_inputs=inputs)
    block = out["alignment"]
    json.dumps(block)  # JSON-able as it is
    assert out["parts"] == ["alignment"] and block["source"] == "similarity run 7"
    assert set(block["scans"]) == {h.scan for h in held} and block["n_scans"] == 2
    assert block["gamma_source"].startswith("learned")
    # each scan's numbers are the module's on that scan's arrays
    feats, gamma, _ = model_features(ckpt, held[0].images)
    direct = alignment(feats, held[0].ids, gamma=gamma, s_target=held[0].s_target,
                       s_true=held[0].s_true, responses=held[0].responses,
                       config=AlignmentConfig(replicates=20, folds=3))
    scan = block["scans"][held[0].scan]
    assert scan["rsa"]["mix"]["s_oracle"]["pearson"]["r"] == pytest.approx(
        direct["rsa"]["mix"]["s_oracle"]["pearson"]["r"])
    assert scan["headline"]["rsa_mix_oracle"] == pytest.approx(
        direct["rsa"]["mix"]["s_oracle"]["pearson"]["r"])
    assert scan["ceilings"]["s_oracle"]["ceiling"] is not None  # 4 repeats: split halves
    assert scan["headline"]["feve_best"] == pytest.approx(max(
        p["feve"] for p in direct["predictivity"].values() if p["feve"] is not None))
    # the headline metrics: the mean over scans, step 0
    for name in HEADLINES:
        values = [s["headline"][name] for s in block["scans"].values()
                  if s["headline"][name] is not None]
        if values:
            assert block["mean"][name] == pytest.approx(np.mean(values))
            assert rec.series(f"alignment/{name}") == [pytest.approx(np.mean(values))]
    assert rec.series("alignment/rsa_mix_oracle") and rec.series("alignment/feve_best")
    saved = json.loads(rec.artifacts["alignment.json"][0])
    assert saved["scans"][held[0].scan]["stimulus_ids"] == held[0].ids.tolist()
    assert "stimulus_ids" not in scan


def test_without_repeats_the_scores_are_unnormalized_with_the_modules_message(setup):
    folder, _, ckpt = setup
    h = _held(folder)[0]
    first = np.unique(h.responses.trial_ids, return_index=True)[1]  # one trial per image
    once = dataclasses.replace(h, responses=Responses(h.responses.trials[first],
                                                      h.responses.trial_ids[first]))
    out = align_scans(AlignmentInputs(ckpt, [once], "one trial each"),
                      AlignmentConfig(replicates=0, folds=3))
    scan = out["scans"][h.scan]
    assert scan["ceiling"] is None and scan["message"] == NO_REPEATS == out["message"]
    assert out["mean"]["feve_best"] is None and out["mean"]["r2_best"] is not None
    assert out["mean"]["rsa_mix_oracle_normalized"] is None
    assert all(p["ceiling"] is None for p in scan["predictivity"].values())


def test_a_model_without_gamma_gets_the_uniform_mix(setup):
    folder, _, ckpt = setup
    plain = {k: v for k, v in ckpt.items() if k != "head"}
    out = align_scans(AlignmentInputs(plain, _held(folder)[:1], "s"),
                      AlignmentConfig(replicates=0, folds=3))
    assert out["gamma"] == [pytest.approx(1 / 3)] * 3
    assert out["gamma_source"].startswith("uniform")
    assert out["mean"]["rsa_mix_oracle"] is not None


def test_stimuli_the_taps_cannot_take_are_refused_before_any_part_runs(setup):
    folder, _, ckpt = setup
    h = _held(folder)[0]
    with pytest.raises(ValueError, match="^similarity_run: its stimuli"):
        model_features(ckpt, np.repeat(h.images, 3, axis=1))
    bad = dataclasses.replace(h, images=np.zeros((12, 1, 2, 2), np.float32))
    data = load_dataset("digits32", seed=0)
    model = load_model(ckpt)[0]
    rec = MemoryRecorder()
    with pytest.raises(ValueError, match="^similarity_run: "):
        evaluate_model(EvaluateConfig(parts=("noise", "alignment"), similarity_run=1,
                                      device="cpu"), rec, model, data.test_images,
                       data.test_labels, num_classes=10,
                       alignment_inputs=AlignmentInputs(ckpt, [bad], "bad"))
    assert not rec.series("noise_acc")  # refused before the noise part
    with pytest.raises(ValueError, match="^similarity_run: "):  # the worker gave nothing
        evaluate_model(EvaluateConfig(parts=("alignment",), similarity_run=1, device="cpu"),
                       rec, model, data.test_images, data.test_labels, num_classes=10)


def test_the_config_asks_for_a_similarity_run_and_names_bad_fields():
    assert "alignment" in PARTS and "alignment" not in DEFAULT_PARTS
    with pytest.raises(ValueError, match="similarity_run: the alignment part"):
        EvaluateConfig(parts=("alignment",))
    for field, value in (("alignment_folds", 1), ("alignment_replicates", -1),
                         ("alignment_seed", -2)):
        with pytest.raises(ValueError, match=field):
            EvaluateConfig(parts=("alignment",), similarity_run=1, **{field: value})
    cfg = EvaluateConfig(parts=("noise", "alignment"), similarity_run=1)
    assert cfg.runs == ("noise", "alignment")
    w = _weights(cfg, 1000, 1024, held_out=(50, 50))
    assert w["alignment"] > 0 and set(w) == {"noise", "alignment"}


def test_a_config_json_that_no_longer_reads_is_refused_naming_similarity_run(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"source": "simulated", "gone": 1}))
    with pytest.raises(ValueError, match="^similarity_run: its config.json no longer reads"):
        load_heldout(tmp_path / "config.json", tmp_path / "predictor.pt")
