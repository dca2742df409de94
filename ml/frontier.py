"""The accuracy–robustness frontier, and each condition against None at matched clean
accuracy — the comparison the paper's claim is about ("more robust, with only a small
sacrifice on clean image performance").

Regularizing harder (larger α) usually costs clean accuracy, and a less accurate model
is not comparable to a more accurate one: a network that got worse at the task also has
smaller perturbations and less to lose under noise. So each condition is a curve through
its α values in the plane (clean accuracy, robustness), mean ± SEM over seeds, and the
comparison with None is made at the α whose clean accuracy is closest to None's.

**Matching, chosen and why.** For each condition, the matched α is the one whose mean
clean accuracy over seeds is closest to None's mean; it is *matched* when that gap is
within ``tolerance`` (the user's; default 0.02 = 2 points). The comparison then pairs that
α's runs with None's by seed, on real trained models. Interpolating along the curve was
considered and not taken: it would compare None with a model nobody trained, assume
robustness is linear in clean accuracy between two α values, and hide how far apart the
two α values are. Unmatched conditions are reported with their gap, never tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ml.evaluate.measures import CLEAN, MEASURES, read_measures
from ml.study import paired_difference
from ml.train.summary import alpha_of, mean_sem

DEFAULT_TOLERANCE = 0.02


class FrontierError(ValueError):
    """What a frontier needs and the runs lack (no evaluations, no None, mixed setups)."""


def frontier(evals: Iterable[Mapping[str, Any]], *,
             tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Points per (condition, α) and each condition vs None at matched clean accuracy.

    Args:
        evals: finished evaluations with ``target``, ``alpha``, ``seed``, ``backbone``,
            ``dataset``, optionally ``stimulus_norm`` (the train run's) and ``result``
            (the evaluation's). When the regularized runs mix ``stimulus_norm`` modes,
            each mode is a condition of its own, named ``"<target> (<mode>)"``.
        tolerance: the largest |clean accuracy − None's| (as a fraction) that counts as
            matched; > 0.

    Returns:
        ``points``: per (condition, α), sorted by condition then α: ``n``, ``seeds``,
        ``run_ids`` and per measure ``mean``/``sem``/``n``. ``curves``: per condition its
        points' α values in order. ``matched``: per condition other than None, the
        ``alpha`` chosen, its ``clean_gap`` (condition − None, mean over seeds),
        ``matched`` (gap within tolerance) and, when matched, per robustness measure the
        seed-paired ``pairs``, ``mean_difference``, ``sem_difference``, ``t_test_p``,
        ``wilcoxon_p`` and ``higher_is_better``. ``measures``: name → label and
        direction. ``tolerance`` as used.

    Raises:
        FrontierError: no evaluations, no None baseline among them, or evaluations of
            models trained on different datasets or backbones.
        ValueError: ``tolerance`` ≤ 0 or not finite.
    """
    if not (isinstance(tolerance, int | float) and np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance: must be a finite number > 0, got {tolerance!r}")
    evals = list(evals)
    if not evals:
        raise FrontierError("no finished evaluations yet: the frontier needs evaluated "
                            "train runs (clean accuracy and robustness of each model)")
    setups = sorted({(str(e.get("dataset")), str(e.get("backbone"))) for e in evals})
    if len(setups) > 1:
        raise FrontierError("the evaluations mix datasets/backbones "
                            f"{[f'{d}/{b}' for d, b in setups]}; pick runs of one setup")
    # runs regularized with different stimulus_norm modes are different conditions
    modes = {e.get("stimulus_norm") for e in evals if e["target"] != "none"}

    def condition_of(e: Mapping[str, Any]) -> str:
        if e["target"] == "none" or len(modes) <= 1:
            return str(e["target"])
        return f"{e['target']} ({e.get('stimulus_norm')})"

    groups: dict[tuple[str, float], dict[int, tuple[Any, dict[str, float]]]] = {}
    for e in evals:
        key = (condition_of(e), alpha_of(e))
        groups.setdefault(key, {})[int(e["seed"])] = (e.get("id"), read_measures(e["result"]))
    points = []
    for (target, alpha), by_seed in sorted(groups.items()):
        seeds = sorted(by_seed)
        row: dict[str, Any] = {"condition": target, "alpha": alpha, "n": len(seeds),
                               "seeds": seeds, "run_ids": [by_seed[s][0] for s in seeds],
                               "measures": {}}
        for name in MEASURES:
            vals = [by_seed[s][1][name] for s in seeds if name in by_seed[s][1]]
            if vals:
                mean, sem = mean_sem(vals)
                row["measures"][name] = {"mean": float(mean), "sem": float(sem),
                                         "n": len(vals)}
        points.append(row)
    curves: dict[str, list[float]] = {}
    for p in points:
        curves.setdefault(p["condition"], []).append(p["alpha"])
    none = [p for p in points if p["condition"] == "none"]
    if not none or CLEAN.name not in none[0]["measures"]:
        raise FrontierError("no evaluated None run (target: none) with a clean accuracy "
                            "(σ = 0 in its noise curve): the matched comparison needs one")
    base_clean = none[0]["measures"][CLEAN.name]["mean"]
    base = groups[("none", 0.0)]
    matched = []
    for condition in [c for c in curves if c != "none"]:
        options = [p for p in points if p["condition"] == condition
                   and CLEAN.name in p["measures"]]
        if not options:
            continue
        best = min(options, key=lambda p: (abs(p["measures"][CLEAN.name]["mean"] - base_clean),
                                           p["alpha"]))
        gap = best["measures"][CLEAN.name]["mean"] - base_clean
        row = {"condition": condition, "alpha": best["alpha"], "clean_gap": gap,
               "matched": bool(abs(gap) <= tolerance), "alphas_tried": curves[condition],
               "tests": {}}
        if row["matched"]:
            by_seed = groups[(condition, best["alpha"])]
            for name, measure in MEASURES.items():
                pairs = [(by_seed[s][1][name], base[s][1][name]) for s in sorted(by_seed)
                         if s in base and name in by_seed[s][1] and name in base[s][1]]
                if pairs:
                    row["tests"][name] = {"higher_is_better": measure.higher_is_better,
                                          **paired_difference(pairs)}
        matched.append(row)
    return {"tolerance": float(tolerance), "none_clean_accuracy": base_clean,
            "points": points, "curves": curves, "matched": matched,
            "measures": {m.name: {"label": m.label, "higher_is_better": m.higher_is_better}
                         for m in MEASURES.values()}}
