"""Table 1 of the paper's supplement: final γ per tapped layer, averaged over seeds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def alpha_of(run: Mapping[str, Any]) -> float:
    """α as a condition: 0 for ``target: none`` whatever its (unused) α field says."""
    return 0.0 if run["target"] == "none" else float(run["alpha"])


def mean_sem(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the first axis (one entry per run); SEM is 0 for a
    single run. The error bars of every figure and table here (Fig. 4: SEM over seeds)."""
    a = np.asarray(values, dtype=np.float64)
    sem = a.std(axis=0, ddof=1) / np.sqrt(len(a)) if len(a) > 1 else np.zeros(a.shape[1:])
    return a.mean(axis=0), sem


def gamma_table(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group runs by condition and average their final γ.

    Args:
        runs: one mapping per finished train run that learned γ, with ``id``,
            ``target``, ``alpha``, ``backbone``, ``seed``, ``gamma`` (final γ_k) and
            ``layers`` (the tapped layers' numbers, e.g. 1, 5, 9, 13, 17); optionally
            ``dataset``, ``width`` and ``study`` (the study that made it), and
            ``r_taps``, r(S_k, S_target) per tap on held-out stimuli.

    Returns:
        One row per (target, α, backbone, width, dataset, layers, study): the runs that
        belong together (one study's seeds, not a demo run of the same target beside
        them): ``n`` runs, their ``seeds`` and
        ``run_ids``, ``gamma_mean`` and ``gamma_sem`` (0 for a single run), and
        ``dominant`` — how many runs ended with each layer holding the largest γ (the
        paper: "γ5 = 0.67 for α = 16 corresponds to 2 out of 3 seeds with γ5 = 1");
        ``r_taps_mean`` / ``r_taps_sem`` over the ``r_taps_n`` runs that have them (None
        when none has). Sorted by target, then α.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in runs:
        key = (r["target"], alpha_of(r), r["backbone"], tuple(r["layers"]), r.get("width"),
               r.get("dataset"), r.get("study"))
        if len(r["gamma"]) != len(r["layers"]):
            raise ValueError(f"run {r.get('id')}: {len(r['gamma'])} γ for "
                             f"{len(r['layers'])} layers")
        groups.setdefault(key, []).append(r)
    rows = []
    for (target, alpha, backbone, layers, width, dataset, study), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][6] or 0, str(kv[0][4:6]))):
        g = np.array([m["gamma"] for m in members], dtype=np.float64)  # (runs, K)
        mean, sem = mean_sem(g)
        winners = np.bincount(g.argmax(axis=1), minlength=g.shape[1])
        rows.append({
            "target": target, "alpha": alpha, "backbone": backbone, "layers": list(layers),
            "width": width, "dataset": dataset, "study": study,
            "n": len(members), "seeds": [m["seed"] for m in members],
            "run_ids": [m.get("id") for m in members],
            "gamma_mean": mean.tolist(), "gamma_sem": sem.tolist(),
            "dominant": {str(layer): int(c) for layer, c in zip(layers, winners, strict=True)},
            **_tap_r(members, len(layers)),
        })
    return rows


def _tap_r(members: list[Mapping[str, Any]], n_taps: int) -> dict[str, Any]:
    """Mean ± SEM of r(S_k, S_target) per tap over the runs that recorded it (none for
    ``target: none`` or runs from before it was recorded)."""
    r = [m["r_taps"] for m in members if len(m.get("r_taps") or []) == n_taps]
    if not r:
        return {"r_taps_mean": None, "r_taps_sem": None, "r_taps_n": 0}
    mean, sem = mean_sem(r)
    return {"r_taps_mean": mean.tolist(), "r_taps_sem": sem.tolist(), "r_taps_n": len(r)}
