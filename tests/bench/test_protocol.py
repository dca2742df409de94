"""bench/protocol.py: the committed protocols load and expand to their pre-registered
cells, bad protocols are refused by field, and the analysis finds a planted effect."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = sorted((ROOT / "bench" / "protocols").glob("*.toml"))


@pytest.fixture(scope="module")
def protocol():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_protocol", ROOT / "bench" / "protocol.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_protocol"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_a_committed_protocol_expands_to_its_cells(protocol, path: Path) -> None:  # type: ignore[no-untyped-def]
    from ml.neural.pipeline import SimilarityConfig
    from ml.train.joint import TrainConfig

    p = protocol.load_protocol(path)
    specs = protocol.cells(p, False, "cpu")
    want = {c: v["seeds"] for c, v in p["conditions"].items()}
    got: dict[str, list[int]] = {}
    for s in specs:
        got.setdefault(s["key"]["condition"], []).append(s["key"]["seed"])
        TrainConfig(**s["train"])  # every cell is a valid training config
    assert {c: sorted(v) for c, v in got.items()} == {c: list(range(n)) for c, n in want.items()}
    primary = {"none", p["primary"]["condition"]}
    n_primary = sum(want[c] for c in primary)
    assert {s["key"]["condition"] for s in specs[:n_primary]} == primary  # the pairs first
    assert [s["key"]["seed"] for s in specs[:4]] == [0, 0, 1, 1]  # seed by seed
    for s in specs:
        if s["key"]["condition"] == "none":
            assert s["train"]["alpha"] == 0.0 and "stimulus_norm" not in s["train"]
        else:
            assert s["train"]["alpha"] == p["alpha"]
    SimilarityConfig(**p["similarity"])
    quick = protocol.cells(p, True, "cpu")
    assert len(quick) < len(specs) and all(q["train"]["epochs"] == protocol.QUICK["epochs"]
                                           for q in quick)


@pytest.mark.parametrize(("edit", "field"), [
    (("conditions", "bogus", {"seeds": 3}), "conditions.bogus"),
    (("conditions", "pixel", {"seeds": 1}), "conditions.pixel.seeds"),
    (("primary", "condition", "shuffle"), "primary.condition"),
])
def test_a_bad_protocol_is_refused_by_field(protocol, tmp_path: Path, edit, field) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "bench" / "protocols" / "fullband-v1.toml").read_text()
    section, key, value = edit
    if section == "conditions":
        line = f'{key} = {{ seeds = {value["seeds"]} }}'
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(f"{key} ="))
        text = text.replace("[conditions]\n", f"[conditions]\n{line}\n")
    else:
        text = text.replace('condition = "neural-model"', f'condition = "{value}"')
        text = text.replace("shuffle = { seeds = 5 }", "")
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        protocol.load_protocol(f)


def _row(condition: str, seed: int, l2: np.ndarray, clean: float, targets: str = "a") -> dict:
    return {"condition": condition, "seed": seed, "targets": {"neural-model": targets},
            "measures": {"clean_accuracy": clean, "median_l2": float(np.median(l2)),
                         "median_linf": float(np.median(l2)) / 20,
                         "noise_accuracy": clean - 0.1, "noise_accuracy_highest": clean - 0.4},
            "distances": {"l2": l2.tolist(), "linf": (l2 / 20).tolist()}}


def test_the_analysis_finds_a_planted_effect_and_corrects_the_family(protocol, capsys) -> None:  # type: ignore[no-untyped-def]
    p = protocol.load_protocol(ROOT / "bench" / "protocols" / "fullband-v1.toml")
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(10):
        base = rng.exponential(1.0, 500) * rng.uniform(0.9, 1.1)  # a seed's own level
        rows.append(_row("none", seed, base, 0.80 + rng.normal(0, 0.01)))
        rows.append(_row("neural-model", seed, 1.25 * base, 0.80 + rng.normal(0, 0.01)))
        if seed < 5:
            rows.append(_row("pixel", seed, base * rng.uniform(0.95, 1.05, 500),
                             0.80 + rng.normal(0, 0.01)))
    out = protocol.analyse(p, rows)
    h = out["primary"]["hierarchical"]
    assert h["verdict"] == "higher" and h["pairs"] == 10 and h["samples"] == 500
    assert h["difference"] == pytest.approx(
        np.mean([0.25 * r["measures"]["median_l2"] for r in rows if r["condition"] == "none"]),
        rel=1e-6)
    none = out["table"]["none"]["median_l2"]
    assert none["sd"] > 0 and none["min"] <= none["mean"] <= none["max"]  # None's own spread
    family = [k for k in out["holm"]]
    assert len(family) == 7 * 4 - 1  # every control × endpoint, less the primary test
    pixel = out["holm"]["pixel|median_l2"]
    assert pixel is not None and pixel >= out["secondary"]["pixel|median_l2"]["p"]
    assert out["holm"]["shuffle|median_l2"] is None  # no cells: not counted
    assert "WARNING" not in capsys.readouterr().out
    rows[0] = _row("none", 0, np.ones(500), 0.8, targets="b")
    protocol.analyse(p, rows)
    assert "different sets of targets" in capsys.readouterr().out
