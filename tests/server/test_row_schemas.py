"""The public schemas of the tables the dashboard draws type every field ``ml`` returns:
a row of each table, with every part an evaluation can have, goes through its schema and
comes back unchanged (nothing dropped, nothing the schema does not name)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ml.evaluate.record import model_record
from ml.evaluate.summary import robustness_table
from ml.frontier import frontier
from ml.train.summary import gamma_table
from server.schemas import Frontier, GammaRow, ModelRecord, RobustnessRow

NAMES = ["gaussian_noise", "fog"]


def _result(seed: int, shift: float) -> dict[str, Any]:
    """An evaluation with every part: noise, minimal perturbations (medians, means,
    budget curves), AutoAttack at two ε, corruptions."""
    return {
        "noise": {"sigmas": [0.0, 0.1, 0.2], "accuracy": [0.9 - shift, 0.6, 0.3 + seed / 100],
                  "n": 100},
        "median_l2": 0.5 + shift, "median_linf": 0.02, "mean_l2": 0.6 + seed / 100,
        "curves": {"l2": [[0, None], [10, 1.0 + seed], [20, 0.5 + shift]]},
        "autoattack": {"threat_models": {"linf": [
            {"epsilon": 8 / 255, "robust_accuracy": 0.1 + shift, "version": "custom", "n": 10},
            {"epsilon": 16 / 255, "robust_accuracy": 0.0, "version": "custom", "n": 10}]}},
        "corruptions": {"names": NAMES, "severities": [1, 5],
                        "accuracy": {"gaussian_noise": [0.8 - shift, 0.4 + seed / 50],
                                     "fog": [0.7, 0.3 - shift]},
                        "mean_accuracy": 0.55 - shift},
    }


def _evals() -> list[dict[str, Any]]:
    out = []
    for target, alpha, shift in (("none", 0.0, 0.0), ("neural-model", 8.0, 0.01)):
        for seed in (0, 1, 2):
            out.append({"id": 10 * seed + int(alpha), "target": target, "alpha": alpha,
                        "backbone": "small_cnn", "dataset": "digits32", "seed": seed,
                        "result": _result(seed, shift)})
    return out


def _round_trip(model: type[BaseModel], row: dict[str, Any]) -> None:
    assert model.model_validate(row).model_dump(by_alias=True, exclude_unset=True) == row


def test_a_robustness_row_with_every_part_round_trips() -> None:
    rows = robustness_table(_evals())
    neural = next(r for r in rows if r["target"] == "neural-model")
    # every optional part is there, so the schema is tried on each of them
    assert neural["mce"] and neural["corruptions"] and neural["autoattack"]["linf"]
    assert neural["curves"]["l2"] and neural["noise"] and neural["medians"]["l2"]
    for row in rows:
        _round_trip(RobustnessRow, row)


def test_a_gamma_row_round_trips_with_and_without_tap_similarities() -> None:
    runs = [{"id": s, "target": "neural-model", "alpha": 8.0, "backbone": "small_cnn",
             "seed": s, "gamma": [0.2, 0.8 - s / 10, s / 10], "layers": [1, 5, 9],
             "dataset": "digits32", "width": 16, "study": 3,
             **({"r_taps": [0.1, 0.5, 0.4]} if s else {})} for s in range(3)]
    for row in gamma_table(runs) + gamma_table(runs[:1]):
        _round_trip(GammaRow, row)


def test_the_frontier_round_trips_with_its_matched_tests() -> None:
    result = frontier(_evals(), tolerance=0.05)
    assert result["matched"][0]["matched"] and result["matched"][0]["tests"]
    _round_trip(Frontier, result)


SOUNDNESS = {"samples": 8, "reference_run": 4, "transfer_skipped": None, "norms": {
    "l2": {"agreement": {"samples": 7, "best_median": 0.4, "disagreement": 1.3,
                         "families": {"DDNAttack": {"median": 0.5, "ratio": 1.25}}},
           "decision_based": {"samples": 7, "median": 0.9, "white_box_median": 0.4,
                              "smaller": 0, "unbroken": 0, "smaller_share": 0.0},
           "transfer": {"samples": 6, "median": 1.1, "white_box_median": 0.45, "smaller": 0,
                        "unbroken": 1, "smaller_share": 0.0},
           "autoattack_inconsistent": 0, "verdict": "sound", "warnings": []},
    "l1": {"agreement": {"samples": 7, "best_median": None, "disagreement": None,
                         "families": {}},
           "decision_based": None, "transfer": None, "autoattack_inconsistent": None,
           "verdict": "suspect", "warnings": ["L1: attacks disagree"]}}}
MECHANISM = {"samples": 10, "input_gradient": {"l2": {"n": 10, "median": 2.0, "mean": 2.5},
                                               "l1": {"n": 10, "median": 40.0, "mean": 50.0}},
             "subspace": {"k": 64, "dim": 1024, "skipped": None, "expected_random": 0.0625,
                          "random": {"n": 1000, "median": 0.06, "mean": 0.0625},
                          "norms": {"l2": {"n": 7, "median": 0.3, "mean": 0.35,
                                           "histogram": {"edges": [0, 1], "counts": [7]}}}},
             "layers": {"source": "neural-model of similarity run 2", "stimuli": 20,
                        "taps": [0, 1], "layers": [1, 5], "r": [0.1, 0.4], "r_mix": 0.3},
             "layers_skipped": None}


def test_a_record_with_every_part_round_trips() -> None:
    from tests.percept_block import percept_block

    result = {**_result(0, 0.0), "parts": ["noise", "minimal", "autoattack", "corruptions",
                                           "soundness", "mechanism", "percept"],
              "unbroken_l2": 1, "versions": {"foolbox": "3.3.4", "torch": "2.13.0"},
              "soundness": SOUNDNESS, "mechanism": MECHANISM, "percept": percept_block()}
    result["corruptions"] |= {"n": 100, "seed": 0, "clean_accuracy": 0.9}
    rec = model_record(
        evaluation={"id": 7, "name": "", "owner": "ada", "finished_at": "2026-12-04T10:00:00",
                    "result": result},
        model={"id": 5, "name": "m", "parent_id": 3, "last_metrics": {"test_acc": 0.9},
               "config": {"backbone": "small_cnn", "width": 16, "dataset": "digits32",
                          "target": "neural-model", "alpha": 8.0, "seed": 0,
                          "target_run": 2, "stimulus_norm": "separate"}},
        similarity={"id": 2, "name": "sim", "config": {"source": "simulation"}})
    assert rec["robustbench"] and rec["similarity"] and rec["corruptions"]
    assert rec["soundness"]["norms"]["l2"]["transfer_median"] == 1.1
    assert rec["mechanism"]["tap_r"] == [0.1, 0.4]
    assert rec["percept"]["headline"]["specificity_l2"] is not None
    _round_trip(ModelRecord, rec)
    # its leaderboard row, the percept columns and their counts included
    from ml.evaluate.record import leaderboard_row
    from server.schemas import LeaderboardRow

    row = leaderboard_row(rec)
    assert row["percept_specificity_l2"] is not None and row["percept_specificity_l2_n"]
    assert LeaderboardRow.model_validate(row).model_dump(include=set(row)) == row
    # an evaluation without them: both None, still typed
    bare = model_record(evaluation={"id": 8, "result": _result(0, 0.0)},
                        model={"id": 5, "config": {"backbone": "small_cnn"}})
    assert bare["soundness"] is None and bare["mechanism"] is None and bare["percept"] is None
    _round_trip(ModelRecord, bare)


def test_a_field_the_schema_does_not_name_is_refused_not_dropped() -> None:
    (row, *_) = robustness_table(_evals())
    with pytest.raises(ValidationError, match="new_field"):
        RobustnessRow.model_validate({**row, "new_field": 1})


def _untyped(schema: dict[str, Any]) -> bool:
    """A response schema that says nothing of what comes back: empty, or an object whose
    values may be anything."""
    if not schema:
        return True
    return (schema.get("type") == "object" and "properties" not in schema
            and schema.get("additionalProperties", True) in (True, {}))


def test_every_answer_of_the_api_has_a_schema(client: Any) -> None:
    """Every 2xx answer but a 204 states what it returns in the OpenAPI document: a JSON
    model, or the media type and format of its bytes (CSV, an artifact's download)."""
    untyped, checked = [], 0
    for path, operations in client.app.openapi()["paths"].items():
        if not path.startswith("/api"):
            continue
        for method, op in operations.items():
            for code, answer in op["responses"].items():
                if not code.startswith("2") or code == "204":
                    continue
                content = answer.get("content")
                checked += 1
                if not content or any(_untyped(v.get("schema", {})) for v in content.values()):
                    untyped.append(f"{method.upper()} {path} {code}")
    assert checked >= 50
    assert untyped == []


def test_a_frequency_row_with_every_part_round_trips() -> None:
    from ml.evaluate.summary import frequency_table
    from server.schemas import FrequencyRow
    from tests.frequency_block import frequency_block

    evals = _evals()
    for e in evals:
        shift = 0.1 if e["target"] == "none" else 0.0
        # seed 2 without the minimal part: a spectrum over fewer runs than the block
        e["result"]["frequency"] = frequency_block(e["seed"], shift,
                                                   spectrum=e["seed"] != 2)
    rows = frequency_table(evals)
    assert len(rows) == 2
    grid = rows[0]["frequency"]
    assert grid["fourier_map"] and grid["spectrum"]["l2"] and grid["spectrum"]["clean"]
    assert grid["hybrid"]["other"] and grid["fourier_map"]["radial"]["sem"]
    for row in rows:
        _round_trip(FrequencyRow, row)
    # runs whose maps differ: no mean map, the rest still typed
    evals[0]["result"]["frequency"]["fourier_map"]["eps"] = 2.0
    row = next(r for r in frequency_table(evals) if r["target"] == evals[0]["target"])
    assert row["frequency"]["fourier_map"] is None
    _round_trip(FrequencyRow, row)
    # runs whose spectra have other bands: no spectrum (its fractions lie on no one axis)
    assert grid["spectrum_bands"] == evals[1]["result"]["frequency"]["spectrum"]["bands"]
    spectra = [e["result"]["frequency"]["spectrum"] for e in evals
               if e["target"] == evals[0]["target"] and e["result"]["frequency"]["spectrum"]]
    spectra[0]["bands"] = [b + 0.5 for b in spectra[0]["bands"]]
    row = next(r for r in frequency_table(evals) if r["target"] == evals[0]["target"])
    assert row["frequency"]["spectrum_bands"] is None and row["frequency"]["spectrum"] == {}
    _round_trip(FrequencyRow, row)


def test_the_alignment_table_with_every_part_round_trips() -> None:
    from ml.evaluate.alignment_summary import alignment_table
    from server.schemas import AlignmentTable
    from tests.alignment_block import alignment_block

    evals = _evals()
    for e in evals:
        # seed 2 without repeats: feve_best missing, its pairs skip that model
        e["result"]["alignment"] = alignment_block(0.1 + 0.01 * e["seed"] + e["alpha"] / 100,
                                                   feve=None if e["seed"] == 2 else 0.4)
    table = alignment_table(evals, replicates=50)
    assert table is not None and table["pairs"] and table["conditions"]
    pair = next(p for p in table["pairs"] if p["score"] == "feve_best")
    assert pair["skipped"] == 2 and pair["r"] is None and pair["reason"]
    assert any(p["r"] is not None and p["ci_low"] is not None for p in table["pairs"])
    _round_trip(AlignmentTable, table)


def _keys(value: Any) -> Any:
    """A nested block's shape: its keys all the way down (lists and numbers: their type)."""
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    return type(value).__name__ if not isinstance(value, int | float) else "number"


def test_the_frequency_block_the_tests_store_has_the_parts_shape() -> None:
    """tests/frequency_block.py against the part's own functions on a tiny model, put
    together as ml.evaluate.run._frequency records them; their rows round-trip too."""
    import numpy as np
    import torch

    from ml.evaluate.frequency import (
        filter_accuracy,
        fourier_map,
        hybrid_outcomes,
        perturbation_spectrum,
    )
    from ml.evaluate.summary import frequency_table
    from server.schemas import FrequencyRow
    from tests.frequency_block import frequency_block

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.rand(12, 3, 8, 8)
    y = model(x).argmax(1)  # all correct: hybrids have pairs of every class it says
    y[:2] = (y[:2] + 1) % 4
    cut = [0.0, 2.0, 6.0]
    filters = filter_accuracy(model, x, y, cutoffs=cut)
    fmap = fourier_map(model, x[:4], y[:4], eps=1.0, size=4)
    hyb = hybrid_outcomes(model, x, y, cutoffs=cut, pairs=6)
    hyb.pop("pairs")
    adv = {"l2": (x + 0.01 * torch.randn_like(x)).clamp(0, 1).numpy(), "l1": x.numpy()}
    spec, _ = perturbation_spectrum(x, adv, {"l2": np.full(12, 0.5), "l1": np.zeros(12)})
    real = {"image_size": [8, 8], "n": 12, "seed": 0, "cutoffs": filters["cutoffs"],
            "lowpass": filters["lowpass"], "highpass": filters["highpass"],
            "fourier_map": fmap.summary(), "hybrid": hyb, "spectrum": spec,
            "spectrum_skipped": None, "spectrum_source": "the minimal part of this evaluation"}
    synthetic = frequency_block()
    assert _keys(real) == {**_keys(synthetic), "spectrum": {
        **_keys(synthetic)["spectrum"], "norms": {"l2": _keys(synthetic)["spectrum"]["norms"]["l2"],
                                                   "l1": "NoneType"}}}
    evals = [{"id": s, "target": "none", "alpha": 0.0, "backbone": "linear", "dataset": "x",
              "seed": s, "result": {"frequency": real}} for s in range(2)]
    for row in frequency_table(evals):
        _round_trip(FrequencyRow, row)
