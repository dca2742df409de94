"""Alignment against robustness across a study's models (issue 38, items 2 and 4): each
model's alignment headline score (:data:`ml.evaluate.alignment_inputs.HEADLINES`, the mean
over scans the ``alignment`` part records) and its ``percept`` part's headline numbers
(:data:`PERCEPT_SCORES`: how far its minimal adversarials move the predicted V1 response
and its own deepest tap, and their specificity) against each robustness measure
(:data:`ml.evaluate.measures.ROBUSTNESS`), with the Spearman rank correlation across
models and a bootstrap-over-models CI; and each condition's mean ± SEM of every score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import stats

from ml.evaluate.alignment_inputs import HEADLINES
from ml.evaluate.measures import ROBUSTNESS, read_measures
from ml.evaluate.record import PERCEPT_SCORES, percept_record, real_number
from ml.train.summary import alpha_of, mean_sem

REPLICATES = 2000
"""Bootstrap replicates of the rank correlation's CI (models drawn with replacement)."""
MIN_MODELS = 3


def alignment_scores(result: Mapping[str, Any]) -> dict[str, float] | None:
    """An evaluation's headline alignment means and its percept scores
    (``percept_<name>_<norm>``, :data:`ml.evaluate.record.PERCEPT_SCORES` at the part's
    headline norm, as its record reads them), real finite numbers only — not a bool, a
    string or a container an imported result may hold; None when it ran neither part."""
    block, percept = result.get("alignment"), result.get("percept")
    if not block and not percept:
        return None
    mean = block.get("mean") if isinstance(block, Mapping) else None
    mean = mean if isinstance(mean, Mapping) else {}
    out = {k: v for k in HEADLINES if (v := real_number(mean.get(k))) is not None}
    rec = percept_record(percept)
    if rec is not None:
        norm = rec["headline_norm"]
        out.update({f"percept_{k}_{norm}": v for k in PERCEPT_SCORES
                    if (v := rec["headline"][f"{k}_{norm}"]) is not None})
    return out


def spearman_ci(x: list[float], y: list[float], *, replicates: int = REPLICATES,
                seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Spearman ρ of paired values and its percentile bootstrap CI over the pairs.

    Args:
        x, y: one value per model, same order.
        replicates: resamples of the models (with replacement).
        seed: the resampling's seed (the same data give the same CI).
        level: the CI's coverage.

    Returns:
        ``n``, ``r``, ``ci_low``, ``ci_high``, ``replicates`` (those with a defined ρ: a
        resample whose x or y is constant has none) and ``reason`` (why ``r`` is None:
        fewer than :data:`MIN_MODELS` models, or constant values).
    """
    n = len(x)
    out: dict[str, Any] = {"n": n, "r": None, "ci_low": None, "ci_high": None,
                           "replicates": 0, "reason": None}
    if n < MIN_MODELS:
        out["reason"] = f"{n} model(s) with both values; ρ needs {MIN_MODELS}"
        return out
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.all(a == a[0]) or np.all(b == b[0]):
        out["reason"] = "constant values: no ranking"
        return out
    out["r"] = float(stats.spearmanr(a, b).statistic)
    rng = np.random.default_rng(seed)
    idx = rng.integers(n, size=(replicates, n))  # (R, n)
    # Spearman ρ is Pearson r of the ranks (ties share their mean rank): all resamples at
    # once, as a study page asks for every score × measure pair
    ra = stats.rankdata(a[idx], axis=1)  # (R, n)
    rb = stats.rankdata(b[idx], axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    ok = den > 0  # a resample whose x or y is constant has no ρ
    rs = (ra * rb).sum(axis=1)[ok] / den[ok]
    if len(rs):
        tail = (1.0 - level) / 2.0
        low, high = np.clip(np.quantile(rs, [tail, 1.0 - tail]), -1.0, 1.0)
        out.update(ci_low=float(low), ci_high=float(high), replicates=int(len(rs)))
    return out


def alignment_table(evals: Iterable[Mapping[str, Any]], *, replicates: int = REPLICATES,
                    seed: int = 0) -> dict[str, Any] | None:
    """Alignment against robustness across a study's models.

    Args:
        evals: as :func:`ml.evaluate.summary.robustness_table` takes them (``id``,
            ``target``, ``alpha``, ``seed``, ``result``).
        replicates, seed: :func:`spearman_ci`'s.

    Returns:
        None when no evaluation ran the alignment or the percept part; else ``scores``
        (the alignment headline names, then the percept scores the models have, in
        order), ``measures`` (the robustness measures' names and labels),
        ``replicates``, ``models`` (evaluations with an alignment or a percept block),
        ``pairs`` (one per score × measure: ``points`` — ``run_id``, ``condition``,
        ``alpha``, ``seed``, ``x`` the score, ``y`` the measure — ``skipped``, the models
        missing either value, and :func:`spearman_ci`'s ``n``, ``r``, ``ci_low``,
        ``ci_high``, ``reason``) and ``conditions`` (per target and α: ``n``, ``seeds``,
        ``run_ids``, and per score ``mean``, ``sem``, ``n``).
    """
    rows = []
    for e in evals:
        scores = alignment_scores(e["result"])
        if scores is not None:
            rows.append((e, scores, read_measures(e["result"])))
    if not rows:
        return None
    percept = sorted({k for _, sc, _ in rows for k in sc if k.startswith("percept_")},
                     key=lambda k: (k.rsplit("_", 1)[1] != "l2", k.rsplit("_", 1)[1],
                                    PERCEPT_SCORES.index(k[len("percept_"):].rsplit("_", 1)[0])))
    names = [*HEADLINES, *percept]
    pairs = []
    for score in names:
        for m in ROBUSTNESS:
            points = [{"run_id": e.get("id"), "condition": e["target"], "alpha": alpha_of(e),
                       "seed": e.get("seed"), "x": s[score], "y": r[m.name]}
                      for e, s, r in rows if score in s and m.name in r]
            if not points:
                continue
            ci = spearman_ci([p["x"] for p in points], [p["y"] for p in points],
                             replicates=replicates, seed=seed)
            pairs.append({"score": score, "measure": m.name, "points": points,
                          "skipped": len(rows) - len(points), **ci})
    groups: dict[tuple[str, float], list[tuple[Mapping[str, Any], dict[str, float]]]] = {}
    for e, s, _ in rows:
        groups.setdefault((e["target"], alpha_of(e)), []).append((e, s))
    conditions = []
    # None first, the reference every condition is read against
    for (target, alpha), members in sorted(groups.items(),
                                           key=lambda kv: (kv[0][0] != "none", kv[0])):
        per: dict[str, Any] = {}
        for score in names:
            vals = [s[score] for _, s in members if score in s]
            mean, sem = mean_sem(vals) if vals else (None, None)
            per[score] = {"mean": None if mean is None else float(mean),
                          "sem": None if sem is None else float(sem), "n": len(vals)}
        conditions.append({"target": target, "alpha": alpha, "n": len(members),
                           "seeds": [e.get("seed") for e, _ in members],
                           "run_ids": [e.get("id") for e, _ in members], "scores": per})
    return {"scores": names,
            "measures": [{"name": m.name, "label": m.label} for m in ROBUSTNESS],
            "replicates": replicates, "models": len(rows), "pairs": pairs,
            "conditions": conditions}
