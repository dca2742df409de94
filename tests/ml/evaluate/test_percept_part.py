"""The percept evaluate part (issue 38, item 4) on the alignment part's tiny simulated
similarity run and the package's small trained digits model (the alignment tests' own
model, one epoch, predicts one class: the minimal part refuses it), on the CPU: with the
minimal part it records a block with every readout (predicted V1 per scan and their mean,
each tap, the logits) per norm, its headline metrics and ``percept.json``; a config or
inputs without what it reads is refused naming the field."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest

from ml.data import load_dataset
from ml.evaluate.alignment_inputs import AlignmentInputs, load_heldout, load_predictor
from ml.evaluate.run import PARTS, EvaluateConfig, _weights, evaluate_model
from ml.recorder import MemoryRecorder
from ml.train import TrainConfig
from ml.train.classifier import load_model
from tests.ml.evaluate.test_alignment_part import setup  # noqa: F401  (the fixture)
from tests.percept_block import percept_block

QUICK = dict(attacks="quick", norms=("l2",), n_samples=12, batch_size=64,
             alignment_replicates=50, similarity_run=7, device="cpu")


def _inputs(folder, ckpt) -> AlignmentInputs:  # type: ignore[no-untyped-def]
    fit = load_predictor(folder / "predictor.pt")
    held = load_heldout(folder / "config.json", folder / "predictor.pt", fit=fit)
    return AlignmentInputs(ckpt, held, "similarity run 7", fit=fit)


def _checkpoint(model: Any) -> dict[str, Any]:
    """conftest's trained model as its model.pt would hold it (its config, its weights)."""
    config = TrainConfig(backbone="small_cnn", width=16, epochs=8, lr=0.02, lr_decay=1.0,
                         device="cpu")
    return {"config": dataclasses.asdict(config), "state_dict": model.state_dict()}


@pytest.fixture(scope="module")
def evaluated(setup, trained):  # type: ignore[no-untyped-def]  # noqa: F811
    folder = setup[0]
    ckpt = _checkpoint(trained[0])
    inputs = _inputs(folder, ckpt)
    data = load_dataset("digits32", seed=0)
    rec = MemoryRecorder()
    out = evaluate_model(EvaluateConfig(parts=("minimal", "percept"), **QUICK), rec,
                         load_model(ckpt)[0], data.test_images, data.test_labels,
                         num_classes=10, alignment_inputs=inputs)
    return out, rec, inputs


def _finite(v: object) -> bool:
    return isinstance(v, float) and math.isfinite(v)


def test_the_part_records_every_readout_per_norm_and_its_headline(evaluated) -> None:  # type: ignore[no-untyped-def]
    out, rec, inputs = evaluated
    block = out["percept"]
    json.dumps(block)
    assert out["parts"] == ["minimal", "percept"]
    scans = [h.scan for h in inputs.heldout]
    assert block["scans"] == scans and block["source"] == "similarity run 7"
    assert block["layers"] == ["layer1", "layer2", "layer3"]  # small_cnn's taps
    assert "36×64" in block["embedding"] and "36×36" in block["embedding"]
    assert set(block["unit"]) == {*(f"v1/{s}" for s in scans), *block["layers"], "logits"}
    assert all(_finite(s) and s > 0 for s in block["unit"].values())
    assert set(block["norms"]) == {"l2"}
    for norm, row in block["norms"].items():
        assert row["n"] >= 2, (norm, row["n"])
        names = [r["name"] for r in row["readouts"]]
        assert names == ["v1", *(f"v1/{s}" for s in scans), *block["layers"], "logits"]
        for r in row["readouts"]:
            assert r["n"] == row["n"]
            for key in ("adv", "rand", "ratio"):
                s = r[key]
                assert _finite(s["median"]) and s["median"] >= 0, (norm, r["name"], key)
                assert s["ci_low"] <= s["median"] <= s["ci_high"]
        assert row["specificity"]["layer"] == "layer3" and _finite(row["specificity"]["median"])
        assert 0 < row["clip_ratio"] <= 1 + 1e-6
    assert block["headline_norm"] == "l2"
    for name, value in block["headline"].items():
        assert _finite(value), name
        assert rec.series(f"percept/{name}") == [pytest.approx(value)]
    assert block["headline"]["v1_adv_l2"] == block["norms"]["l2"]["readouts"][0]["adv"]["median"]
    assert "per_sample" not in block
    # the pages' tests draw a block of this very shape
    like = percept_block(norms=("l2",))
    assert set(like) == set(block) and set(like["norms"]["l2"]) == set(block["norms"]["l2"])
    assert set(like["norms"]["l2"]["readouts"][0]) == set(block["norms"]["l2"]["readouts"][0])
    saved = json.loads(rec.artifacts["percept.json"][0])
    per = saved["per_sample"]["l2"]
    assert len(per["sample_ids"]) == block["norms"]["l2"]["n"]
    assert len(per["adv"]["layer3"]) == len(per["rand"]["logits"]) == len(per["sample_ids"])


def test_the_samples_are_the_minimal_parts_clean_correct_broken_ones(evaluated) -> None:  # type: ignore[no-untyped-def]
    out, rec, _ = evaluated
    saved = json.loads(rec.artifacts["percept.json"][0])
    rows = {int(r["sample_id"]): r for r in _minimal_rows(rec)}
    for norm in ("l2",):
        want = sorted(i for i, r in rows.items()
                      if r["clean_correct"] == "1" and r[norm] != "inf")
        assert saved["per_sample"][norm]["sample_ids"] == want


def _minimal_rows(rec: MemoryRecorder) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(rec.artifacts["minimal.csv"][0].decode())))


def test_the_config_and_the_inputs_are_refused_naming_the_field(setup, trained) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert "percept" in PARTS
    with pytest.raises(ValueError, match="^parts: percept reads the minimal part"):
        EvaluateConfig(parts=("percept",), similarity_run=1)
    with pytest.raises(ValueError, match="parts: percept .*attacks: none"):
        EvaluateConfig(parts=("minimal", "percept"), attacks="none", similarity_run=1)
    with pytest.raises(ValueError, match="similarity_run: the percept part"):
        EvaluateConfig(parts=("minimal", "percept"))
    cfg = EvaluateConfig(parts=("minimal", "percept"), similarity_run=1, attacks="quick")
    assert cfg.runs == ("minimal", "percept")
    w = _weights(cfg, 1000, 1024, held_out=(50, 50))
    assert w["percept"] > 0 and set(w) == {"minimal", "percept"}
    folder = setup[0]
    ckpt = _checkpoint(trained[0])
    data = load_dataset("digits32", seed=0)
    model = load_model(ckpt)[0]
    held = load_heldout(folder / "config.json", folder / "predictor.pt")
    config = EvaluateConfig(parts=("noise", "minimal", "percept"), **QUICK)
    for inputs in (None, AlignmentInputs(ckpt, held, "no fit")):
        rec = MemoryRecorder()
        with pytest.raises(ValueError, match="^similarity_run: the percept part needs"):
            evaluate_model(config, rec, model, data.test_images, data.test_labels,
                           num_classes=10, alignment_inputs=inputs)
        assert not rec.series("noise_acc")  # refused before any part ran
    rec = MemoryRecorder()
    with pytest.raises(ValueError, match="^parts: .*1 or 3"):
        evaluate_model(config, rec, model, data.test_images.repeat(1, 2, 1, 1),
                       data.test_labels, num_classes=10,
                       alignment_inputs=_inputs(folder, ckpt))
    assert np.isfinite(w["percept"])
