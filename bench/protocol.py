"""A pre-registered comparison: None against Neural (model) and the controls, at the power
the protocol file names, reported whichever way it goes.

The protocol (``bench/protocols/*.toml``) is committed before any of its cells runs and
fixes everything this script does: the task, the stimuli, the network, α, the seeds per
condition, the attacked samples, the primary endpoint, the secondary family and the
correction. This script only reads it. Per cell (a condition and a seed) it trains a
model, then measures its noise curve on the whole test split and its minimal adversarial
perturbations (the service's evaluation) on the protocol's fixed samples, and keeps every
sample's distance, so the analysis can resample seeds *and* samples
(:func:`ml.study.hierarchical_bootstrap`).

    .venv/bin/python bench/protocol.py bench/protocols/fullband-v1.toml \\
        --cache bench/results/fullband-v1.jsonl [--jobs 2] [--device cpu|cuda]
    .venv/bin/python bench/protocol.py bench/protocols/fullband-v1.toml --report \\
        --cache bench/results/fullband-v1.jsonl
    .venv/bin/python bench/protocol.py bench/protocols/fullband-v1.toml --quick

``--cache`` keeps each finished cell as a JSON line and skips it on the next run (a long
run continues where it stopped; the protocol's cells are committed under bench/results).
Cells run in the order that serves the primary endpoint first: None and the primary
condition seed by seed, then the controls seed by seed, so a run cut short still holds
paired cells. ``--quick`` checks the whole path on a CPU in minutes —
few seeds, few epochs, few samples: its numbers are not the protocol's and are printed as
such. Ends with one JSON line.

An *amendment* (``<protocol>-amendment-<k>.toml`` beside the protocol, read with it) adds
conditions registered after the protocol, with their own test family; it cannot change
what the protocol registered (:func:`load_amendment` refuses one that names its task,
training, α, evaluation, conditions, primary or secondary endpoints, or that pins other
bytes of the protocol file). Its cells run after the protocol's, under the protocol's
settings. A condition whose target is another network's similarity (``cnn-features``)
names a *donor* — a condition of the protocol and a seed offset — and its cell of seed s
starts only once the donor's cell of seed s + offset has ended: that cell keeps its
trained ``model.pt`` beside the cache (``<cache>.weights/``), the dependent cell builds
its target from it and records the checkpoint's sha256. ``--report`` prints each
amendment's table and family after the protocol's.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
import time
import tomllib
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.evaluate.measures import CLEAN, read_measures  # noqa: E402
from ml.regularize.targets import FROM_SIMILARITY_RUN, REGISTRY  # noqa: E402
from ml.study import hierarchical_bootstrap, holm, paired_difference  # noqa: E402

QUICK = {"epochs": 3, "n_samples": 40, "seeds": 2, "control_seeds": 1}
"""``--quick``: the path end to end on a CPU; not the protocol's power."""

_TARGETS: dict[str, Any] = {}
_DIGESTS: dict[str, str] = {}  # per target kind, of its stored bytes: which targets a cell saw
_WEIGHTS: list[str] = []  # the folder kept checkpoints go to (a donor's) and come from

REGISTERED = ("train", "similarity", "evaluate", "alpha", "primary", "secondary")
"""What a protocol registers and an amendment may not name."""
WAIT = "wait"
""":func:`ready`: the cell's donor has not ended yet."""


def load_protocol(path: Path) -> dict[str, Any]:
    """The protocol file, checked: every condition a registered target, the primary
    comparison among them, enough seeds for a paired test."""
    p = tomllib.loads(path.read_text())
    if "amends" in p:
        raise ValueError(f"amends: {path.name} is an amendment of {p['amends']!r}; run that "
                         "protocol's file, which reads its amendments")
    conds = p["conditions"]
    for name in conds:
        if name not in REGISTRY:
            raise ValueError(f"conditions.{name}: not a registered target")
    if "none" not in conds:
        raise ValueError("conditions: the protocol compares against none; add it")
    primary = p["primary"]
    if primary["condition"] not in conds:
        raise ValueError(f"primary.condition: {primary['condition']!r} is not a condition")
    for name, c in conds.items():
        if c["seeds"] < 2:
            raise ValueError(f"conditions.{name}.seeds: a paired test needs at least 2")
    return p


def load_amendment(path: Path, p: dict[str, Any], protocol_path: Path) -> dict[str, Any]:
    """An amendment of protocol ``p`` (read from ``protocol_path``), checked: it pins the
    protocol file's bytes, is dated, names none of what the protocol registered, adds
    conditions the protocol does not have (registered targets, ≥ 2 seeds), each
    network-built one with a donor among the protocol's conditions whose seeds s + offset
    exist and are not the condition's own pairs, and a family of the protocol's endpoints."""
    a = tomllib.loads(path.read_text())
    if a.get("amends") != p["name"]:
        raise ValueError(f"amends: {path.name} amends {a.get('amends')!r}, not {p['name']!r}")
    pinned = hashlib.sha256(protocol_path.read_bytes()).hexdigest()
    if a.get("amends_sha256") != pinned:
        raise ValueError(f"amends_sha256: {protocol_path.name} is not the file this amendment "
                         "was registered against (a registered protocol is never edited)")
    if not isinstance(a.get("registered"), datetime.date):
        raise ValueError("registered: the date the amendment was committed, before its cells")
    for field in REGISTERED:
        if field in a:
            raise ValueError(f"{field}: an amendment cannot change what {p['name']} "
                             "registered; its cells take the protocol's")
    if not a.get("conditions"):
        raise ValueError("conditions: an amendment adds at least one condition")
    for name, c in a["conditions"].items():
        where = f"conditions.{name}"
        if name not in REGISTRY or name == "none":
            raise ValueError(f"{where}: not a registered target other than none")
        if name in p["conditions"]:
            raise ValueError(f"{where}: already a condition of {p['name']}; its seeds and "
                             "tests are registered there")
        if c.get("seeds", 0) < 2:
            raise ValueError(f"{where}.seeds: a paired test needs at least 2")
        if not REGISTRY[name].needs_network:
            if {"donor", "donor_seed_offset", "layer"} & c.keys():
                raise ValueError(f"{where}.donor: only a network-built target has a donor")
            continue
        donor, offset = c.get("donor"), c.get("donor_seed_offset")
        if donor not in p["conditions"]:
            raise ValueError(f"{where}.donor: the network comes from one of {p['name']}'s "
                             f"conditions, not {donor!r}")
        if not isinstance(offset, int) or offset < c["seeds"]:
            raise ValueError(f"{where}.donor_seed_offset: at least the seed count, so no "
                             "cell reads the network of the seed it is paired with")
        if c["seeds"] + offset > p["conditions"][donor]["seeds"]:
            raise ValueError(f"{where}.donor_seed_offset: seeds up to "
                             f"{c['seeds'] + offset - 1} of {donor}, which has "
                             f"{p['conditions'][donor]['seeds']}")
        _check_layer(f"{where}.layer", c.get("layer"), p["train"])
    endpoints = a.get("family", {}).get("endpoints")
    known = [p["primary"]["endpoint"], *p["secondary"]["endpoints"]]
    if not endpoints or any(e not in known for e in endpoints):
        raise ValueError(f"family.endpoints: some of {p['name']}'s endpoints {known}")
    for k in ("alpha", "resamples", "bootstrap_seed"):
        if k not in a.get("analysis", {}):
            raise ValueError(f"analysis.{k}: required")
    return a


def _check_layer(where: str, layer: Any, train: dict[str, Any]) -> None:
    from ml.models import build_backbone

    net = build_backbone(train["backbone"], num_classes=10, width=train["width"])
    n = len(net.feature_info)
    if not (isinstance(layer, str) and layer.isdigit() and int(layer) < n):
        raise ValueError(f"{where}: a tap index of the {train['backbone']}, \"0\"..\"{n - 1}\"")


def load_amendments(path: Path, p: dict[str, Any]) -> list[dict[str, Any]]:
    """The amendments beside protocol file ``path`` (``<stem>-amendment-<k>.toml``), in
    the order of k, each checked by :func:`load_amendment`."""
    found = path.parent.glob(f"{path.stem}-amendment-*.toml")
    number = {f: f.stem.rsplit("-", 1)[-1] for f in found}
    for f, k in number.items():
        if not k.isdigit():
            raise ValueError(f"{f.name}: an amendment is named {path.stem}-amendment-<k>.toml")
    return [load_amendment(f, p, path) for f in sorted(number, key=lambda f: int(number[f]))]


def _weights_file(key: dict[str, Any]) -> str:
    return (f"{key['protocol']}-{key['condition']}-seed{key['seed']}"
            f"{'-quick' if key['quick'] else ''}.pt")


def _init(target_dir: str, threads: int, weights_dir: str = "") -> None:
    import torch

    torch.set_num_threads(threads)
    _WEIGHTS[:] = [weights_dir]
    from ml.neural.target import SimilarityTarget

    for kind in FROM_SIMILARITY_RUN:
        f = os.path.join(target_dir, f"{kind}.npz")
        if os.path.exists(f):
            _TARGETS[kind] = SimilarityTarget.load(f)
            _DIGESTS[kind] = hashlib.sha256(Path(f).read_bytes()).hexdigest()[:16]


def _cell(spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`_measure`, or the cell's error (one broken cell does not end the run)."""
    start = time.perf_counter()
    try:
        return _measure(spec)
    except Exception as exc:  # noqa: BLE001 — reported in the row, and printed
        import traceback

        return {**spec["key"], "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - start}


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one model and evaluate it; its row holds every sample's distance."""
    from ml.data import load_dataset
    from ml.evaluate import EvaluateConfig, evaluate_model
    from ml.recorder import MemoryRecorder
    from ml.runtime import environment_info, pick_device
    from ml.train.classifier import load_model
    from ml.train.joint import TrainConfig, train_model

    start = time.perf_counter()
    cfg = TrainConfig(**spec["train"])
    source = REGISTRY[cfg.target].source
    target = None if source is None else _TARGETS[source]
    row: dict[str, Any] = {**spec["key"], "env": environment_info(pick_device(cfg.device)),
                           "targets": dict(_DIGESTS)}
    if "donor" in spec:  # built here from the donor's kept checkpoint
        target, row["donor"] = donor_target(spec, target, Path(_WEIGHTS[0]))
        row["targets"][cfg.target] = factor_digest(target)
    rec = MemoryRecorder()
    try:
        res = train_model(cfg, rec, target, data_root=spec.get("data_root"))
    except FloatingPointError as exc:
        return {**row, "error": str(exc), "seconds": time.perf_counter() - start}
    trained = time.perf_counter()
    if spec.get("keep"):  # a donor: its network is another cell's target
        row["checkpoint"] = _keep(rec.artifacts["model.pt"][0], Path(_WEIGHTS[0]), spec["keep"])
    model, _ = load_model(io.BytesIO(rec.artifacts["model.pt"][0]))
    data = load_dataset(cfg.dataset, seed=cfg.seed, root=spec.get("data_root"))
    erec = MemoryRecorder()
    ev = evaluate_model(EvaluateConfig(**spec["evaluate"]), erec, model, data.test_images,
                        data.test_labels, num_classes=data.num_classes)
    out: dict[str, Any] = {"sample_ids": [], "distances": {}, "found_by": {}}
    if "adversarials.npz" in erec.artifacts:  # the minimal part ran
        arrays = np.load(io.BytesIO(erec.artifacts["adversarials.npz"][0]))
        norms = spec["evaluate"]["norms"]
        table = list(csv.DictReader(io.StringIO(erec.artifacts["minimal.csv"][0].decode())))
        out = {"sample_ids": arrays["sample_ids"].tolist(),
               "distances": {n: [None if not np.isfinite(d) else float(f"{d:.6g}")
                                 for d in arrays[f"distance_{n}"]] for n in norms},
               "found_by": {n: [line[f"{n}_attack"] for line in table]  # labels hold commas
                            for n in norms}}
    return {**row, "measures": read_measures(ev), "test_acc": res.test_accuracy,
            "r": res.r_similarity, "gamma": res.gamma, **out,
            "train_seconds": trained - start, "seconds": time.perf_counter() - start}


def _keep(blob: bytes, folder: Path, name: str) -> dict[str, str]:
    """A donor cell's ``model.pt`` written whole (a dependent never reads half of it)."""
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{name}.part"
    part.write_bytes(blob)
    os.replace(part, folder / name)
    return {"file": name, "sha256": hashlib.sha256(blob).hexdigest()}


def donor_target(spec: dict[str, Any], stimuli: Any, folder: Path
                 ) -> tuple[Any, dict[str, Any]]:
    """A dependent cell's target: ``spec``'s target kind over ``stimuli`` (the similarity
    run's target) from the donor's checkpoint in ``folder`` at the registered layer, and
    what the row records of the donor (its key, layer and checkpoint sha256)."""
    from ml.regularize.targets import Network, resolve_target
    from ml.runtime import pick_device

    d = spec["donor"]
    blob = (folder / d["file"]).read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    meta = {"donor": f"{d['key']['condition']} seed {d['key']['seed']}", "donor_sha256": sha}
    target = resolve_target(spec["train"]["target"], stimuli, seed=spec["train"]["seed"],
                            network=Network(blob, d["layer"], meta),
                            device=pick_device(spec["train"]["device"]))
    return target, {**d["key"], "layer": d["layer"], "sha256": sha}


def factor_digest(target: Any) -> str:
    """A built target's digest, of its factor's values (its stored bytes hold a time)."""
    return hashlib.sha256(np.ascontiguousarray(target.factor).tobytes()).hexdigest()[:16]


def _key(row: dict[str, Any]) -> str:
    return json.dumps({k: row[k] for k in ("protocol", "condition", "seed", "quick")},
                      sort_keys=True)


def cells(p: dict[str, Any], quick: bool, device: str, data_root: str | None = None,
          amendments: list[dict[str, Any]] | tuple[()] = ()) -> list[dict[str, Any]]:
    """Every (condition, seed) of the protocol: the primary comparison's pairs first, then
    the controls, each part interleaved by seed (a run cut short holds whole pairs); then
    each amendment's cells, seed by seed, a donor-built one naming its donor's cell
    (``donor``), which keeps its checkpoint (``keep``)."""
    train = {**p["train"], "device": device, "deterministic": True}
    evaluate = {**p["evaluate"], "device": device}
    if quick:
        train["epochs"] = QUICK["epochs"]
        evaluate["n_samples"] = QUICK["n_samples"]
    seeds = {c: (min(v["seeds"], QUICK["seeds"] if c in ("none", p["primary"]["condition"])
                     else QUICK["control_seeds"]) if quick else v["seeds"])
             for c, v in p["conditions"].items()}
    primary = ("none", p["primary"]["condition"])
    order = [(seed, cond) for part in (primary, [c for c in p["conditions"] if c not in primary])
             for seed in range(max(seeds.values())) for cond in part if seed < seeds[cond]]
    out: list[dict[str, Any]] = []
    for seed, cond in order:
        t = {**train, "target": cond, "seed": seed,
             "alpha": 0.0 if cond == "none" else p["alpha"]}
        if cond == "none":
            t.pop("stimulus_norm", None)
        out.append({"key": {"protocol": p["name"], "condition": cond, "seed": seed,
                            "quick": quick}, "train": t, "evaluate": evaluate,
                    "data_root": data_root})
    by_key = {_key(s["key"]): s for s in out}
    for a in amendments:
        n = {c: min(v["seeds"], QUICK["control_seeds"]) if quick else v["seeds"]
             for c, v in a["conditions"].items()}
        for seed, cond in [(s, c) for s in range(max(n.values())) for c in n if s < n[c]]:
            c = a["conditions"][cond]
            spec: dict[str, Any] = {
                "key": {"protocol": a["name"], "condition": cond, "seed": seed,
                        "quick": quick},
                "train": {**train, "target": cond, "seed": seed, "alpha": p["alpha"]},
                "evaluate": evaluate, "data_root": data_root}
            if "donor" in c:  # --quick: the offset is the quick seed count
                offset = n[cond] if quick else c["donor_seed_offset"]
                key = {"protocol": p["name"], "condition": c["donor"], "seed": seed + offset,
                       "quick": quick}
                if _key(key) not in by_key:
                    raise ValueError(f"conditions.{cond}: its donor, {c['donor']} seed "
                                     f"{seed + offset}, is not among the cells")
                by_key[_key(key)]["keep"] = _weights_file(key)
                spec["donor"] = {"key": key, "file": _weights_file(key), "layer": c["layer"]}
            out.append(spec)
    return out


def ready(spec: dict[str, Any], done: dict[str, dict[str, Any]], unfinished: set[str],
          weights: Path) -> str | None:
    """Whether a cell can start: None when it can (it has no donor, or its donor's cell
    ended and left its checkpoint), :data:`WAIT` while the donor's cell has not ended,
    else why it cannot run now (the donor failed, is not scheduled, or is cached without
    the checkpoint its row names)."""
    if "donor" not in spec:
        return None
    d = spec["donor"]
    k = _key(d["key"])
    who = f"its donor ({d['key']['condition']} seed {d['key']['seed']})"
    if k in unfinished:
        return WAIT
    if k not in done:
        return f"{who} is neither cached nor in this run"
    row = done[k]
    if "measures" not in row:
        return f"{who} failed: {row.get('error')}"
    f = weights / d["file"]
    if not f.exists():
        return (f"{who} is cached without its checkpoint {f}; remove its row from the cache "
                "to train it again")
    kept = row.get("checkpoint", {}).get("sha256")
    if kept is not None and kept != hashlib.sha256(f.read_bytes()).hexdigest():
        return f"{f} is not the checkpoint {who}'s cell evaluated"
    return None


def _similarity(p: dict[str, Any], device: str, target_dir: str) -> dict[str, Any]:
    from ml.neural.pipeline import SimilarityConfig, run_similarity

    sim = run_similarity(SimilarityConfig(**p["similarity"]), device=device)
    for kind, target in sim.targets.items():
        Path(target_dir, f"{kind}.npz").write_bytes(target.to_bytes())
    return {k: v for k, v in sim.scores.items() if isinstance(v, float)}


def weights_dir(cache: Path) -> Path:
    """Where the cells of ``cache`` keep their donors' checkpoints."""
    return cache.with_name(f"{cache.stem}.weights")


def run(p: dict[str, Any], specs: list[dict[str, Any]], jobs: int, device: str,
        cache: Path | None, done: dict[str, dict[str, Any]],
        weights: Path | None = None) -> None:
    """The cells of ``specs`` not in ``done``, in order, ``jobs`` at a time; a cell with a
    donor is started once its donor's cell has ended (:func:`ready`). Donors' checkpoints
    go to ``weights`` (default: beside the cache; without a cache, a folder kept for the
    run)."""
    todo = [s for s in specs if _key(s["key"]) not in done]
    if not todo:
        return
    print(f"{len(todo)} cells to run ({len(specs) - len(todo)} cached), {jobs} processes "
          f"on {device}", flush=True)
    with tempfile.TemporaryDirectory() as target_dir:
        folder = weights or (weights_dir(cache) if cache is not None
                             else Path(target_dir, "weights"))
        t0 = time.perf_counter()
        scores = _similarity(p, device, target_dir)
        print(f"similarity run ({time.perf_counter() - t0:.0f} s): "
              + ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items())
                          if k.startswith("r_")), flush=True)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot cross a fork
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init,
                                 initargs=(target_dir, threads, str(folder))) as pool:
            waiting = list(todo)  # in protocol order
            running: dict[Future[dict[str, Any]], dict[str, Any]] = {}

            def start_ready() -> None:
                unfinished = {_key(s["key"]) for s in [*waiting, *running.values()]}
                for spec in list(waiting):
                    why = ready(spec, done, unfinished, folder)
                    if why == WAIT:
                        continue
                    waiting.remove(spec)
                    if why is None:
                        running[pool.submit(_cell, spec)] = spec
                    else:  # not run, not cached: a later run tries it again
                        print(f"  {spec['key']['condition']:<15} seed "
                              f"{spec['key']['seed']:<2} not run: {why}", flush=True)

            start_ready()
            while running:
                ended, _ = wait(list(running), return_when=FIRST_COMPLETED)
                rows = []
                for future in ended:  # kept the moment it ends
                    running.pop(future)
                    rows.append(future.result())
                for row in rows:
                    _record(row, done, cache)
                start_ready()


def _record(row: dict[str, Any], done: dict[str, dict[str, Any]], cache: Path | None) -> None:
    """A cell's row, printed and kept (in ``done`` and appended to the cache)."""
    done[_key(row)] = row
    tag = row.get("error") or (
        f"clean {row['measures'].get(CLEAN.name, float('nan')):.3f}  median L2 "
        f"{row['measures'].get('median_l2', float('nan')):.4f}")
    print(f"  {row['condition']:<15} seed {row['seed']:<2} {tag}  "
          f"({row['seconds']:.0f} s, train {row.get('train_seconds', 0):.0f} s)", flush=True)
    if cache is not None:
        with cache.open("a") as f:
            f.write(json.dumps(row) + "\n")


def _dist(row: dict[str, Any], norm: str) -> np.ndarray:
    return np.array([np.inf if d is None else d for d in row["distances"][norm]])


def _by_condition(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["condition"], {})[r["seed"]] = r
    return by


def _table(conditions: list[str], by: dict[str, dict[int, dict[str, Any]]],
           shown: list[str]) -> dict[str, Any]:
    """Per condition, each measure's mean ± SD over seeds [min, max], printed."""
    print(f"{'condition':<15} {'n':>2}  " + "  ".join(f"{e:>24}" for e in shown))
    table: dict[str, Any] = {}
    for cond in conditions:
        seeds = by.get(cond, {})
        cols: list[str] = []
        entry: dict[str, Any] = {"n": len(seeds)}
        for e in shown:
            v = np.array([s["measures"][e] for s in seeds.values()
                          if s["measures"].get(e) is not None], dtype=float)
            if not len(v):
                cols.append(f"{'—':>24}")
                continue
            sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            cols.append(f"{v.mean():.4f}±{sd:.4f} [{v.min():.3f},{v.max():.3f}]".rjust(24))
            entry[e] = {"mean": float(v.mean()), "sd": sd, "min": float(v.min()),
                        "max": float(v.max())}
        table[cond] = entry
        print(f"{cond:<15} {len(seeds):>2}  " + "  ".join(cols))
    return table


def _compare(by: dict[str, dict[int, dict[str, Any]]], cond: str, endpoint: str,
             analysis: dict[str, Any]) -> dict[str, Any] | None:
    """``cond`` − none on ``endpoint``, paired by seed: the paired t-test, and for a
    median endpoint the hierarchical bootstrap (whose p is then the test's)."""
    base, mine = by.get("none", {}), by.get(cond, {})
    seeds = sorted(set(base) & set(mine))
    if not seeds:
        return None
    t = paired_difference([(mine[s]["measures"][endpoint], base[s]["measures"][endpoint])
                           for s in seeds
                           if mine[s]["measures"].get(endpoint) is not None
                           and base[s]["measures"].get(endpoint) is not None])
    out: dict[str, Any] = {"condition": cond, "endpoint": endpoint, "seeds": seeds,
                           "paired_t": t, "p": t["t_test_p"]}
    norm = endpoint.removeprefix("median_")
    if endpoint.startswith("median_") and norm in mine[seeds[0]]["distances"]:
        h = hierarchical_bootstrap([(_dist(mine[s], norm), _dist(base[s], norm))
                                    for s in seeds], resamples=analysis["resamples"],
                                   seed=analysis["bootstrap_seed"])
        out["hierarchical"] = h
        out["p"] = h["p"]
    return out


def _show(c: dict[str, Any], table: dict[str, Any], alpha: float,
          adjusted: float | None = None) -> str:
    t = c["paired_t"]
    h = c.get("hierarchical")
    ci = (f"[{h['ci_low']:+.4f}, {h['ci_high']:+.4f}] (seeds×samples)" if h else
          "—" if t["ci_low"] is None else f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] (t)")
    diff = h["difference"] if h else t["mean_difference"]
    base = table["none"].get(c["endpoint"], {}).get("mean")
    rel = f" ({diff / base:+.1%} of None)" if base else ""
    p_txt = "—" if c["p"] is None else f"{c['p']:.4f}"
    adj = "" if adjusted is None else f", Holm p {adjusted:.4f}"
    verdict = h["verdict"] if h else t["verdict"]
    if adjusted is not None and adjusted >= alpha:
        verdict = "unresolved"
    return (f"{c['condition']:<15} {c['endpoint']:<24} n={len(c['seeds']):<2} "
            f"{diff:+.4f}{rel} {ci}  p {p_txt}{adj}  → {verdict}")


def _warn_targets(rows: list[dict[str, Any]], own: tuple[str, ...] = ()) -> None:
    """Warn when the cells saw different similarity-run targets (``own``: kinds each cell
    builds for itself, left out)."""
    seen = {json.dumps({k: v for k, v in (r.get("targets") or {}).items() if k not in own},
                       sort_keys=True) for r in rows}
    if len(seen) > 1:  # the simulation's predictor differs across devices and builds
        print(f"WARNING: the cells were trained toward {len(seen)} different sets of targets "
              "(another device or build made the similarity run); compare like with like")


def analyse(p: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The protocol's tables: per condition the measures with None's own spread; the
    primary test; the secondary family, Holm-corrected. ``rows`` of its amendments'
    cells are left out (:func:`analyse_amendment` reads them)."""
    ok = [r for r in rows if "measures" in r and r.get("protocol", p["name"]) == p["name"]]
    _warn_targets(ok)
    by = _by_condition(ok)
    endpoints = [p["primary"]["endpoint"], *p["secondary"]["endpoints"]]
    print(f"\nprotocol {p['name']}: {p['train']['dataset']}, "
          f"{p['train']['backbone']} width {p['train']['width']}, {p['train']['epochs']} "
          f"epochs, α = {p['alpha']:g}; per condition mean ± SD over seeds [min, max]")
    table = _table(list(p["conditions"]), by, [CLEAN.name, *endpoints])
    alpha = p["analysis"]["alpha"]

    print(f"\nprimary (pre-registered; α = {alpha}): "
          f"{p['primary']['condition']} − none on {p['primary']['endpoint']}, paired by seed")
    prim = _compare(by, p["primary"]["condition"], p["primary"]["endpoint"], p["analysis"])
    if prim:
        print("  " + _show(prim, table, alpha))
        clean = _compare(by, p["primary"]["condition"], CLEAN.name, p["analysis"])
        if clean:
            print("  matched accuracy check: " + _show(clean, table, alpha))
    family = [(c, e) for c in p["conditions"] if c != "none" for e in endpoints
              if (c, e) != (p["primary"]["condition"], p["primary"]["endpoint"])]
    tests = {f"{c}|{e}": _compare(by, c, e, p["analysis"]) for c, e in family}
    adjusted = holm({k: (v or {}).get("p") for k, v in tests.items()})
    print(f"\nsecondary family ({len(family)} tests, Holm-corrected); each condition − none")
    for k, test in tests.items():
        if test is not None:
            print("  " + _show(test, table, alpha, adjusted[k]))
    return {"table": table, "primary": prim, "secondary": tests, "holm": adjusted}


def analyse_amendment(p: dict[str, Any], a: dict[str, Any],
                      rows: list[dict[str, Any]]) -> dict[str, Any]:
    """An amendment's tables: its conditions beside the protocol's None (its spread over
    all of None's seeds), each pair's clean-accuracy gap, and its own family — every
    condition − none on its endpoints, paired by seed, Holm-corrected on its own."""
    mine = [r for r in rows if "measures" in r and r.get("protocol") == a["name"]]
    none = [r for r in rows if "measures" in r and r.get("protocol") == p["name"]
            and r["condition"] == "none"]
    _warn_targets([*none, *mine], own=tuple(a["conditions"]))
    by = _by_condition([*none, *mine])
    endpoints = a["family"]["endpoints"]
    alpha = a["analysis"]["alpha"]
    print(f"\namendment {a['name']} of {p['name']} (registered {a['registered']}): its own "
          "family, apart from the protocol's; per condition mean ± SD over seeds [min, max]")
    table = _table(["none", *a["conditions"]], by, [CLEAN.name, *endpoints])
    for cond, c in a["conditions"].items():
        if "donor" in c:
            donors = sorted(r["donor"]["seed"] for r in mine if r["condition"] == cond)
            print(f"  {cond}: target from {c['donor']}'s tap {c['layer']}, seed s + "
                  f"{c['donor_seed_offset']} (donors run: {donors})")
        clean = _compare(by, cond, CLEAN.name, a["analysis"])
        if clean:
            print("  matched accuracy check: " + _show(clean, table, alpha))
    family = [(c, e) for c in a["conditions"] for e in endpoints]
    tests = {f"{c}|{e}": _compare(by, c, e, a["analysis"]) for c, e in family}
    adjusted = holm({k: (v or {}).get("p") for k, v in tests.items()})
    print(f"amendment family ({len(family)} tests, Holm-corrected on their own); "
          "each condition − none")
    for k, test in tests.items():
        if test is not None:
            print("  " + _show(test, table, alpha, adjusted[k]))
    return {"table": table, "family": tests, "holm": adjusted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("protocol", type=Path)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="the whole path in minutes; "
                    "not the protocol's power")
    ap.add_argument("--report", action="store_true", help="analyse the cache, run nothing")
    ap.add_argument("--data-root", default=None,
                    help="the folder holding a file-backed dataset's archive (CIFAR)")
    args = ap.parse_args()
    start = time.perf_counter()
    p = load_protocol(args.protocol)
    amendments = load_amendments(args.protocol, p)
    specs = cells(p, args.quick, args.device, args.data_root, amendments)
    done: dict[str, dict[str, Any]] = {}
    if args.cache is not None and args.cache.exists():
        for line in args.cache.read_text().splitlines():
            row = json.loads(line)
            if "traceback" not in row:  # a crashed cell runs again; a diverged one stays
                done[_key(row)] = row
    if not args.report:
        run(p, specs, args.jobs, args.device, args.cache, done)
    rows = [done[_key(s["key"])] for s in specs if _key(s["key"]) in done]
    if args.quick:
        print("\n--quick: a check of the path, NOT the protocol's power or result")
    out = analyse(p, rows)
    slim = {"table": out["table"],
            "primary": None if out["primary"] is None else {
                k: out["primary"][k] for k in ("condition", "endpoint", "p")}
            | {"test": out["primary"].get("hierarchical") or out["primary"]["paired_t"]},
            "holm": out["holm"]}
    slim["amendments"] = {a["name"]: {k: v for k, v in analyse_amendment(p, a, rows).items()
                                      if k != "family"} for a in amendments}
    print(json.dumps({"bench": "protocol", "protocol": p["name"], "quick": args.quick,
                      "cells": len(rows), "of": len(specs), **slim,
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
