"""bench/protocol.py: the committed protocols load and expand to their pre-registered
cells, bad protocols are refused by field, and the analysis finds a planted effect."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = sorted(f for f in (ROOT / "bench" / "protocols").glob("*.toml")
                   if "-amendment-" not in f.stem)  # amendments are read with theirs


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


# --- amendments: conditions registered after the protocol, with their own family ---

V1 = ROOT / "bench" / "protocols" / "fullband-v1.toml"
AMENDMENT = ROOT / "bench" / "protocols" / "fullband-v1-amendment-1.toml"
V1_SHA256 = "0c4963628db03cc8e202d85a8056f810aee66b228b573dc368e6870ab263e896"  # 900c0c2


def test_v1_is_the_registered_file_and_its_amendment_adds_the_none_network_control(
        protocol) -> None:  # type: ignore[no-untyped-def]
    import datetime
    import hashlib

    assert hashlib.sha256(V1.read_bytes()).hexdigest() == V1_SHA256  # never edited
    p = protocol.load_protocol(V1)
    (a,) = protocol.load_amendments(V1, p)
    assert a["name"] == "fullband-v1-amendment-1" and a["amends"] == "fullband-v1"
    assert a["amends_sha256"] == V1_SHA256 and isinstance(a["registered"], datetime.date)
    c = a["conditions"]["cnn-features"]
    assert list(a["conditions"]) == ["cnn-features"]
    assert c["seeds"] >= 5 and c["donor"] == "none" and c["layer"] == "1"
    # the donors (None seeds s + offset) are registered v1 None cells, none of them a pair
    donors = {s + c["donor_seed_offset"] for s in range(c["seeds"])}
    assert donors <= set(range(p["conditions"]["none"]["seeds"]))
    assert not donors & set(range(c["seeds"]))
    assert a["family"]["endpoints"] == [p["primary"]["endpoint"], *p["secondary"]["endpoints"]]
    with pytest.raises(ValueError, match="amends"):  # not a protocol of its own
        protocol.load_protocol(AMENDMENT)


def test_the_amendment_leaves_v1s_cells_and_order_and_runs_after_its_donors(protocol) -> None:  # type: ignore[no-untyped-def]
    p = protocol.load_protocol(V1)
    amendments = protocol.load_amendments(V1, p)
    alone = protocol.cells(p, False, "cpu")
    both = protocol.cells(p, False, "cpu", None, amendments)
    v1 = both[:len(alone)]
    assert [{k: v for k, v in s.items() if k != "keep"} for s in v1] == alone  # unchanged
    kept = {s["key"]["seed"] for s in v1 if "keep" in s}
    assert kept == {5, 6, 7, 8, 9} and all(s["key"]["condition"] == "none"
                                           for s in v1 if "keep" in s)
    extra = both[len(alone):]  # after every v1 cell, seed by seed
    assert [(s["key"]["protocol"], s["key"]["condition"], s["key"]["seed"]) for s in extra] == [
        ("fullband-v1-amendment-1", "cnn-features", s) for s in range(5)]
    index = {protocol._key(s["key"]): i for i, s in enumerate(both)}
    for i, s in enumerate(extra, start=len(alone)):
        d = s["donor"]
        assert d["key"] == {"protocol": "fullband-v1", "condition": "none",
                            "seed": s["key"]["seed"] + 5, "quick": False}
        assert index[protocol._key(d["key"])] < i and d["layer"] == "1"
        assert both[index[protocol._key(d["key"])]]["keep"] == d["file"]
        assert s["train"]["alpha"] == p["alpha"] and s["train"]["target"] == "cnn-features"
        assert {k: v for k, v in s["train"].items() if k not in ("target", "seed")} == {
            k: v for k, v in alone[1]["train"].items() if k not in ("target", "seed")}
    # --quick: one cell, its donor a quick None cell that is not its pair
    quick = protocol.cells(p, True, "cpu", None, amendments)
    (q,) = [s for s in quick if "donor" in s]
    assert q["key"]["seed"] == 0 and q["donor"]["key"]["seed"] == 1
    assert [s["key"]["seed"] for s in quick if "keep" in s] == [1]


def test_a_cell_waits_for_its_donor_and_is_not_run_without_its_checkpoint(
        protocol, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    p = protocol.load_protocol(V1)
    specs = protocol.cells(p, False, "cpu", None, protocol.load_amendments(V1, p))
    spec = specs[-1]
    donor = protocol._key(spec["donor"]["key"])
    assert protocol.ready(specs[0], {}, {donor}, tmp_path) is None  # no donor: any time
    assert protocol.ready(spec, {}, {donor}, tmp_path) == protocol.WAIT
    assert "neither cached" in protocol.ready(spec, {}, set(), tmp_path)
    failed = {donor: {"error": "loss is nan"}}
    assert "failed: loss is nan" in protocol.ready(spec, failed, set(), tmp_path)
    blob = b"weights"
    row = {"measures": {}, "checkpoint": {"file": spec["donor"]["file"],
                                          "sha256": hashlib.sha256(blob).hexdigest()}}
    assert "without its checkpoint" in protocol.ready(spec, {donor: row}, set(), tmp_path)
    (tmp_path / spec["donor"]["file"]).write_bytes(blob)
    assert protocol.ready(spec, {donor: row}, set(), tmp_path) is None
    (tmp_path / spec["donor"]["file"]).write_bytes(b"other weights")
    assert "not the checkpoint" in protocol.ready(spec, {donor: row}, set(), tmp_path)


def _amendment_text(**edits: str) -> str:
    text = AMENDMENT.read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(("edits", "field"), [
    ({"amends_sha256 = \"0c": "amends_sha256 = \"1c"}, "amends_sha256"),  # v1 edited
    ({"registered = 2026-12-04": "registered = \"soon\""}, "registered"),
    ({"[conditions.cnn-features]": "alpha = 4.0\n[conditions.cnn-features]"}, "alpha"),
    ({"[conditions.cnn-features]": "[secondary]\nendpoints = []\n[conditions.cnn-features]"},
     "secondary"),
    ({"[conditions.cnn-features]": "[conditions.pixel]\nseeds = 5\n[conditions.cnn-features]"},
     "conditions.pixel"),
    ({"seeds = 5": "seeds = 1"}, r"conditions.cnn-features.seeds"),
    ({"donor_seed_offset = 5": "donor_seed_offset = 0"}, "donor_seed_offset"),  # its own pair
    ({"donor_seed_offset = 5": "donor_seed_offset = 6"}, "donor_seed_offset"),  # seed 10
    ({'donor = "none"': 'donor = "vgg"'}, "conditions.cnn-features.donor"),
    ({'layer = "1"': 'layer = "5"'}, "conditions.cnn-features.layer"),
    ({'"median_l2", "median_linf"': '"median_l1", "median_linf"'}, "family.endpoints"),
])
def test_a_bad_amendment_is_refused_by_field(protocol, tmp_path: Path, edits, field) -> None:  # type: ignore[no-untyped-def]
    p = protocol.load_protocol(V1)
    f = tmp_path / "fullband-v1-amendment-1.toml"
    f.write_text(_amendment_text(**edits))
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        protocol.load_amendment(f, p, V1)


def test_the_amendments_family_is_its_own_and_v1s_is_unchanged(protocol, capsys) -> None:  # type: ignore[no-untyped-def]
    p = protocol.load_protocol(V1)
    (a,) = protocol.load_amendments(V1, p)
    p["analysis"]["resamples"] = a["analysis"]["resamples"] = 200  # the test's time
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(10):
        base = rng.exponential(1.0, 500) * rng.uniform(0.9, 1.1)
        rows.append({**_row("none", seed, base, 0.80), "protocol": "fullband-v1"})
        rows.append({**_row("neural-model", seed, base * rng.uniform(0.9, 1.2, 500), 0.80),
                     "protocol": "fullband-v1"})
    v1 = protocol.analyse(p, rows)
    amended = []
    for seed in range(5):  # a planted +30 % on every sample
        none = next(r for r in rows if r["condition"] == "none" and r["seed"] == seed)
        row = _row("cnn-features", seed, 1.3 * np.array(none["distances"]["l2"]), 0.79,
                   targets="a")
        amended.append({**row, "protocol": a["name"],
                        "donor": {"condition": "none", "seed": seed + 5}})
    capsys.readouterr()
    again = protocol.analyse(p, rows + amended)  # v1's analysis ignores the amendment's cells
    assert again["holm"] == v1["holm"] and len(again["holm"]) == 27
    assert "cnn-features" not in again["table"]
    out = protocol.analyse_amendment(p, a, rows + amended)
    assert list(out["holm"]) == [f"cnn-features|{e}" for e in a["family"]["endpoints"]]
    h = out["family"]["cnn-features|median_l2"]
    assert h["seeds"] == [0, 1, 2, 3, 4] and h["hierarchical"]["verdict"] == "higher"
    ps = {k: v["p"] for k, v in out["family"].items()}
    assert out["holm"] == protocol.holm(ps)  # corrected over its 4 tests alone
    assert out["table"]["none"]["n"] == 10 and out["table"]["cnn-features"]["n"] == 5
    text = capsys.readouterr().out
    assert "amendment family (4 tests" in text and "donors run: [5, 6, 7, 8, 9]" in text
    assert "WARNING" not in text


TINY = '''name = "tiny"
alpha = 1.0
[train]
dataset = "digits32"
backbone = "small_cnn"
width = 4
epochs = 1
[similarity]
source = "simulated"
predictor = { hidden_channels = 4, max_epochs = 2, batch_size = 32 }
pairs_for_r = 5000
bootstrap = 0
ceiling_splits = 0
[similarity.simulation]
n_images = 120
n_oracle = 8
oracle_repeats = 4
n_scans = 2
neurons_per_scan = 24
seed = 2
[evaluate]
parts = ["noise"]
attacks = "none"
norms = ["l2"]
n_samples = 4
[conditions]
none = { seeds = 4 }
neural-model = { seeds = 2 }
[primary]
condition = "neural-model"
endpoint = "median_l2"
[secondary]
endpoints = ["noise_accuracy"]
[analysis]
alpha = 0.05
resamples = 100
bootstrap_seed = 0
'''


def test_a_none_cell_keeps_its_network_and_the_dependent_cell_trains_toward_its_layer(
        tmp_path: Path) -> None:
    """End to end on a tiny protocol: None seed 2 is trained and keeps its model.pt; the
    cnn-features cell of seed 0 (donor offset 2) waits for it though a second process is
    free, builds S from tap 1 of that network over the similarity run's stimuli, trains
    toward it and records the checkpoint's digest."""
    import hashlib
    import json

    import torch

    from ml.models.checkpoint import load_network
    from ml.neural.target import SimilarityTarget

    v1 = tmp_path / "tiny.toml"
    v1.write_text(TINY)
    amend = (f'name = "tiny-amendment-1"\namends = "tiny"\n'
             f'amends_sha256 = "{hashlib.sha256(v1.read_bytes()).hexdigest()}"\n'
             'registered = 2026-12-04\n[conditions.cnn-features]\nseeds = 2\n'
             'donor = "none"\ndonor_seed_offset = 2\nlayer = "1"\n'
             '[family]\nendpoints = ["noise_accuracy"]\n'
             '[analysis]\nalpha = 0.05\nresamples = 100\nbootstrap_seed = 0\n')
    (tmp_path / "tiny-amendment-1.toml").write_text(amend)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    protocol = importlib.import_module("bench.protocol")  # by name: the processes import it
    p = protocol.load_protocol(v1)
    amendments = protocol.load_amendments(v1, p)
    specs = protocol.cells(p, False, "cpu", None, amendments)
    by = {(s["key"]["condition"], s["key"]["seed"]): s for s in specs}
    dependent, donor = by[("cnn-features", 0)], by[("none", 2)]
    cache = tmp_path / "tiny.jsonl"
    done: dict = {}
    protocol.run(p, [dependent, donor], 2, "cpu", cache, done)  # the dependent listed first

    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [(r["condition"], r["seed"]) for r in lines] == [("none", 2), ("cnn-features", 0)]
    none, cnn = lines
    assert "error" not in none and "error" not in cnn
    kept = protocol.weights_dir(cache) / "tiny-none-seed2.pt"
    blob = kept.read_bytes()
    assert none["checkpoint"] == {"file": kept.name,
                                  "sha256": hashlib.sha256(blob).hexdigest()}
    assert cnn["donor"] == {"protocol": "tiny", "condition": "none", "seed": 2, "quick": False,
                            "layer": "1", "sha256": none["checkpoint"]["sha256"]}
    assert cnn["r"] is not None and none["r"] is None  # trained toward a target, None not
    assert set(cnn["targets"]) == set(none["targets"]) | {"cnn-features"}
    assert {k: v for k, v in cnn["targets"].items() if k != "cnn-features"} == none["targets"]

    # the target again, by hand: the kept network's tap 1 over the similarity run's
    # stimuli, centred and unit length; S = F Fᵀ must be its Gram matrix
    target_dir = tmp_path / "targets"
    target_dir.mkdir()
    protocol._similarity(p, "cpu", str(target_dir))
    stimuli = SimilarityTarget.load(str(target_dir / "neural-model.npz"))
    assert hashlib.sha256((target_dir / "neural-model.npz").read_bytes()).hexdigest()[:16] == \
        none["targets"]["neural-model"]  # the same stimuli the cells saw
    target, _ = protocol.donor_target(dependent, stimuli, protocol.weights_dir(cache))
    assert protocol.factor_digest(target) == cnn["targets"]["cnn-features"]
    net, cfg = load_network(blob)  # the trained None network itself
    assert cfg["target"] == "none" and cfg["seed"] == 2
    with torch.no_grad():
        (f,) = net.forward_intermediates(torch.from_numpy(stimuli.images), [1],
                                         intermediates_only=True)
    f = f.flatten(1).double().numpy()
    f -= f.mean(axis=0)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    s = target.factor.astype(np.float64) @ target.factor.T.astype(np.float64)
    np.testing.assert_allclose(s, f @ f.T, atol=2e-4)
    assert np.abs(s - stimuli.factor @ stimuli.factor.T).max() > 0.1  # not S_model

    out = protocol.analyse_amendment(p, amendments[0], lines)
    assert out["table"]["cnn-features"]["n"] == 1 and out["table"]["none"]["n"] == 1
