"""Robustness across runs: noise curves and perturbation medians, mean ± SEM over seeds
per condition (Fig. 4's error bars are SEM over 5 seeds)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ml.evaluate.attacks import NORMS
from ml.evaluate.measures import MEASURES, read_measures
from ml.train.summary import alpha_of, mean_sem


def _mean_sem(values: list[float]) -> tuple[float, float]:
    mean, sem = mean_sem(values)
    return float(mean), float(sem)


def robustness_table(evals: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group evaluations by the condition of the model they evaluated.

    Args:
        evals: one mapping per finished evaluation with ``id``, ``target``, ``alpha``,
            ``backbone``, ``dataset``, ``seed`` (the train run's) and ``result`` (the
            evaluation's: ``noise`` with ``sigmas``/``accuracy``, ``median_<norm>``).

    Returns:
        One row per (target, α, backbone, dataset): ``n``, ``seeds``, ``run_ids``;
        ``noise`` with ``sigmas``, ``mean``, ``sem`` (only when every member used the same
        σ grid, else ``None``); ``medians`` per norm with ``mean``, ``sem`` and ``n`` over
        the members that report a finite median. The frequency part's curves are
        :func:`frequency_table`'s.
    """
    rows = []
    for row, members in _conditions(evals):
        row["_results"] = [m["result"] for m in members]
        noises = [m["result"].get("noise") for m in members]  # None: no noise part
        grids = {tuple(n["sigmas"]) for n in noises if n}
        if len(grids) == 1 and all(noises):
            acc = np.array([m["result"]["noise"]["accuracy"] for m in members])  # (runs, σ)
            stats = [_mean_sem(list(acc[:, k])) for k in range(acc.shape[1])]
            row["noise"] = {"sigmas": list(next(iter(grids))),
                            "mean": [s[0] for s in stats], "sem": [s[1] for s in stats]}
        else:
            row["noise"] = None
        row["curves"] = {}  # Fig. 5: median best-so-far vs attack iterations, per norm
        for norm in NORMS:
            got = [m["result"].get("curves", {}).get(norm) for m in members]
            if not all(got):
                continue
            xs = {tuple(p[0] for p in c) for c in got}
            if len(xs) != 1:
                continue  # different schedules: no common x axis
            x = list(next(iter(xs)))
            ys = [[p[1] for p in c] for c in got]
            if any(v is None for y in ys for v in y):
                keep = [k for k in range(len(x)) if all(y[k] is not None for y in ys)]
                x, ys = [x[k] for k in keep], [[y[k] for k in keep] for y in ys]
            stats = [_mean_sem([y[k] for y in ys]) for k in range(len(x))]
            row["curves"][norm] = {"iterations": x, "mean": [s[0] for s in stats],
                                   "sem": [s[1] for s in stats]}
        # every measure (ml/evaluate/measures.py) as mean ± SEM over the members that have
        # it: what a figure draws (Fig. 6's mean noise accuracy over σ > 0), never
        # recomputed by the page
        read = [read_measures(m["result"]) for m in members]
        row["measures"] = {}
        for name in MEASURES:
            vals = [r[name] for r in read if name in r]
            if vals:
                mean, sem = _mean_sem(vals)
                row["measures"][name] = {"mean": mean, "sem": sem, "n": len(vals)}
        row["corruptions"] = _corruption_grid(members)
        row["autoattack"] = _autoattack_grid(members)
        row["medians"] = {}
        for norm in NORMS:
            vals = [m["result"].get(f"median_{norm}") for m in members]
            finite = [v for v in vals if v is not None]
            if finite:
                mean, sem = _mean_sem(finite)
                row["medians"][norm] = {"mean": mean, "sem": sem, "n": len(finite)}
        rows.append(row)
    _corruption_errors(rows)
    for row in rows:
        del row["_results"]
    return rows


def _autoattack_grid(members: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Per threat model, robust accuracy at each ε (and after each component) as mean ±
    SEM over the members, when every member measured the same ε list."""
    from ml.evaluate.autoattack import THREAT_MODELS
    from ml.evaluate.measures import autoattack_rows

    out: dict[str, Any] = {}
    for norm in THREAT_MODELS:
        got = [autoattack_rows(m["result"], norm) for m in members]
        if not all(got) or len({tuple(r["epsilon"] for r in g) for g in got}) != 1:
            continue
        acc = np.array([[r["robust_accuracy"] for r in g] for g in got])  # (runs, ε)
        mean, sem = mean_sem(acc)
        from ml.evaluate.record import eps_label

        out[norm] = {"eps": [r["epsilon"] for r in got[0]],
                     "eps_labels": [eps_label(r["epsilon"]) for r in got[0]],
                     "mean": mean.tolist(),
                     "sem": sem.tolist(), "n": len(got),
                     "versions": sorted({r.get("version") for g in got for r in g} - {None})}
    return out


def _conditions(evals: Iterable[Mapping[str, Any]]
                ) -> list[tuple[dict[str, Any], list[Mapping[str, Any]]]]:
    """The evaluations grouped by (target, α, backbone, dataset), in target and α order:
    each group's row head (the condition, ``n``, ``seeds``, ``run_ids``) and members."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for e in evals:
        key = (e["target"], alpha_of(e), e["backbone"], e["dataset"])
        groups.setdefault(key, []).append(e)
    return [({"target": target, "alpha": alpha, "backbone": backbone, "dataset": dataset,
              "n": len(members), "seeds": [m["seed"] for m in members],
              "run_ids": [m.get("id") for m in members]}, members)
            for (target, alpha, backbone, dataset), members in sorted(
                groups.items(), key=lambda kv: kv[0][:2])]


def frequency_table(evals: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The frequency part's curves per condition, mean ± SEM over seeds.

    Args:
        evals: as :func:`robustness_table` takes them.

    Returns:
        One row per (target, α, backbone, dataset) whose members ran the frequency part
        with the same cut-offs, its head as :func:`robustness_table`'s (``n``, ``seeds``,
        ``run_ids``: every member) with ``frequency`` (:func:`_frequency_grid`).
    """
    rows = []
    for row, members in _conditions(evals):
        grid = _frequency_grid(members)
        if grid is not None:
            rows.append({**row, "frequency": grid})
    return rows


def _stats(values: list[list[float]]) -> dict[str, Any]:
    """Mean ± SEM per position over the members' equal-length lists."""
    mean, sem = mean_sem(np.array(values, dtype=float))  # (runs, k)
    return {"mean": np.atleast_1d(mean).tolist(), "sem": np.atleast_1d(sem).tolist()}


def _scalar(values: list[float]) -> dict[str, float]:
    mean, sem = _mean_sem(values)
    return {"mean": mean, "sem": sem}


def _frequency_grid(members: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The frequency part's curves, mean ± SEM over the members that ran it with the same
    cut-offs: low- and high-pass accuracy and the hybrid outcomes per cut-off; the Fourier
    map's error per radial band and its mean map (when every one measured the same grid
    at the same ε); per norm the minimal perturbations' median energy fraction per band
    (over the members that have that norm's spectrum) and the clean images' contrast, at
    ``spectrum_bands`` (cycles per image), when every member's spectrum has the same
    bands."""
    got = [f for m in members if (f := m["result"].get("frequency"))]
    if not got or len({tuple(f["cutoffs"]) for f in got}) != 1:
        return None
    out: dict[str, Any] = {
        "cutoffs": got[0]["cutoffs"], "n": len(got),
        "lowpass": _stats([f["lowpass"] for f in got]),
        "highpass": _stats([f["highpass"] for f in got]),
        "hybrid": {k: _stats([f["hybrid"][k] for f in got]) for k in ("low", "high", "other")},
        "fourier_map": None, "spectrum": {}, "spectrum_bands": None}
    maps = [f["fourier_map"] for f in got]
    if len({(tuple(m["fy"]), tuple(m["fx"]), m["eps"]) for m in maps}) == 1:
        out["fourier_map"] = {
            "fy": maps[0]["fy"], "fx": maps[0]["fx"], "eps": maps[0]["eps"],
            "mean": np.mean([m["error"] for m in maps], 0).tolist(),
            "mean_error": _scalar([m["mean_error"] for m in maps]),
            "radial": {"bands": maps[0]["radial"]["bands"],
                       **_stats([m["radial"]["error"] for m in maps])}}
    bands = {tuple(f["spectrum"]["bands"]) for f in got if f.get("spectrum")}
    if len(bands) == 1:
        out["spectrum_bands"] = list(next(iter(bands)))
    for norm in NORMS:
        rows = [(f.get("spectrum") or {}).get("norms", {}).get(norm) for f in got]
        rows = [r for r in rows if r]
        if len(bands) == 1 and rows and len({len(r["median"]) for r in rows}) == 1:
            out["spectrum"][norm] = {"n": len(rows), "median": _stats([r["median"] for r in rows]),
                                     "centroid": _scalar([r["centroid"] for r in rows])}
    clean = [f["spectrum"]["clean"] for f in got if f.get("spectrum")]
    if len(bands) == 1 and clean and len({len(c["median"]) for c in clean}) == 1:
        out["spectrum"]["clean"] = {"n": len(clean),
                                    "median": _stats([c["median"] for c in clean]),
                                    "centroid": _scalar([c["centroid"] for c in clean])}
    return out


def _corruption_grid(members: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Accuracy per corruption × severity, mean ± SEM over the members (a heatmap per
    condition), when every member measured the same corruptions and severities."""
    got = [m["result"].get("corruptions") for m in members]
    if not got or not all(got):
        return None
    if len({(tuple(c["names"]), tuple(c["severities"])) for c in got}) != 1:
        return None
    names, sev = got[0]["names"], got[0]["severities"]
    acc = np.array([[c["accuracy"][n] for n in names] for c in got])  # (runs, C, S)
    mean, sem = mean_sem(acc)
    return {"names": names, "severities": sev, "mean": mean.tolist(), "sem": sem.tolist(),
            "n": len(got), "seeds": [m["seed"] for m in members]}


def _corruption_errors(rows: list[dict[str, Any]]) -> None:
    """CE and mCE of every condition relative to the None of its backbone and dataset
    (Hendrycks & Dietterich 2019, with None as the baseline instead of AlexNet): per seed,
    CE_c = Σ_s E(c, s) / Σ_s E_None(c, s) against the None model of the same seed, mCE the
    mean over the benchmark corruptions measured; then mean ± SEM over the paired seeds."""
    from ml.evaluate.corruptions import BENCHMARK

    base = {(r["backbone"], r["dataset"]): r for r in rows if r["target"] == "none"}
    for row in rows:
        row["mce"] = None
        ref = base.get((row["backbone"], row["dataset"]))
        grid = row.get("corruptions")
        if ref is None or grid is None or ref.get("corruptions") is None:
            continue
        rg = ref["corruptions"]
        if (rg["names"], rg["severities"]) != (grid["names"], grid["severities"]):
            continue
        per_seed = _per_seed_errors(row), _per_seed_errors(ref)
        seeds = sorted(set(per_seed[0]) & set(per_seed[1]))
        if not seeds:
            continue
        names = grid["names"]
        bench = [i for i, n in enumerate(names) if n in BENCHMARK] or list(range(len(names)))
        ce = np.array([[per_seed[0][s][i] / per_seed[1][s][i]
                        if per_seed[1][s][i] > 0 else np.nan for i in range(len(names))]
                       for s in seeds])  # (seeds, C)
        mce = np.nanmean(ce[:, bench], axis=1)
        mean, sem = mean_sem(mce)
        ce_mean, ce_sem = mean_sem(ce)
        row["mce"] = {"mean": float(mean), "sem": float(sem), "n": len(seeds), "seeds": seeds,
                      "ce": {n: {"mean": float(ce_mean[i]), "sem": float(ce_sem[i])}
                             for i, n in enumerate(names)}}


def _per_seed_errors(row: Mapping[str, Any]) -> dict[int, list[float]]:
    """Seed → Σ over severities of the error per corruption, from the row's members."""
    out = {}
    for seed, result in zip(row["seeds"], row.get("_results", []), strict=False):
        cor = result.get("corruptions")
        if cor:
            out[int(seed)] = [float(sum(1 - a for a in cor["accuracy"][n])) for n in cor["names"]]
    return out
