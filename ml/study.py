"""A study: the paper's grid of conditions × seeds × α as one description (Fig. 4–7,
Table 1), and the paired comparison of each condition with ``none`` across seeds.

The grid is pure data: :func:`study_cells` expands it into train configs; whoever runs
them (the service fans them out to workers) evaluates each finished model with the
study's evaluation config, and :func:`paired_tests` compares the results.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge, Le, MaxLen
from scipy import stats  # at import: the first study page would wait ~0.5 s for it

from ml._validate import Problems, validate_config
from ml.evaluate.measures import MEASURES, read_measures
from ml.evaluate.run import EvaluateConfig
from ml.regularize.targets import REGISTRY, TARGETS
from ml.train import FeatureSource, TrainConfig

PAPER_CONDITIONS = ("none", "shuffle", "cnn-features", "neural-data", "neural-model")


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """Conditions × seeds × α, each cell a train run followed by an evaluate run.

    Attributes:
        conditions: train targets (Fig. 4's None, Shuffle, VGG, Neural (data), Neural
            (model) by default); ``none`` is trained once per seed, whatever the α values.
        seeds: how many seeds per cell (0, 1, …), the paper's 5.
        alphas: regularization strengths (Fig. 6 varies them; the paper's default 20).
        target_run: the similarity run the neural conditions read.
        features: the network of ``cnn-features``.
        train: every other train setting (its target, target_run, alpha, seed and
            features are set per cell).
        evaluate: the evaluation of every trained model (its train_run is set per cell;
            with ``soundness`` a regularized cell's reference_run is the None model of
            its seed, :func:`reference_of`).
        note: a short free-text note the study page shows at the top (≤ 2000 characters).
        pack: train up to this many cells that differ only in seed, target and α as one
            pack in one process on one device (:mod:`ml.train.pack`; each stays an
            ordinary run); 1 trains each alone. ``bench/pack.py`` measures what it gains.
    """

    conditions: tuple[str, ...] = PAPER_CONDITIONS
    seeds: Annotated[int, Ge(1), Le(100)] = 5
    alphas: tuple[float, ...] = (20.0,)
    target_run: Annotated[int, Ge(1)] | None = None
    features: FeatureSource | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    note: Annotated[str, MaxLen(2000)] = ""
    pack: Annotated[int, Ge(1), Le(32)] = 1

    def __post_init__(self) -> None:
        for name in ("conditions", "alphas"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for name, cls in (("train", TrainConfig), ("evaluate", EvaluateConfig),
                          ("features", FeatureSource)):
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, cls(**getattr(self, name)))
        validate_config(self)
        problems = Problems()  # every field's problem in one answer
        with problems:
            bad = [c for c in self.conditions if c not in TARGETS]
            if bad or not self.conditions or len(set(self.conditions)) != len(self.conditions):
                raise ValueError(f"conditions: {bad or list(self.conditions)} — give distinct "
                                 f"targets from {list(TARGETS)}")
            if any(REGISTRY[c].needs_network for c in self.conditions) and self.features is None:
                raise ValueError("features: the cnn-features condition needs features "
                                 "(weights or run)")
        with problems:
            if not self.alphas or any(isinstance(a, bool) or not isinstance(a, int | float)
                                      or not math.isfinite(a) or a <= 0 for a in self.alphas):
                raise ValueError(f"alphas: need one or more finite α > 0, got "
                                 f"{list(self.alphas)}")
        problems.raise_any()


@dataclass(frozen=True)
class Cell:
    condition: str
    alpha: float
    seed: int
    train: TrainConfig


def study_cells(config: StudyConfig) -> list[Cell]:
    """The train runs of the grid, ``none`` once per seed with α = 0 in its config (no
    target, no similarity loss to weigh: as every study figure draws it)."""
    cells = []
    for condition in config.conditions:
        alphas = (0.0,) if condition == "none" else config.alphas
        for alpha in alphas:
            for seed in range(config.seeds):
                train = dataclasses.replace(
                    config.train, target=condition, seed=seed,  # type: ignore[arg-type]
                    alpha=alpha,
                    target_run=None if condition == "none" else config.target_run,
                    features=config.features if condition == "cnn-features" else None)
                cells.append(Cell(condition, alpha, seed, train))
    return cells


def reference_of(config: StudyConfig, target: str, seed: int) -> tuple[str, int] | None:
    """The cell, ``(condition, seed)``, whose model a cell's evaluation transfers attacks
    from (its ``reference_run``): when the study's evaluation runs ``soundness`` and names
    no reference of its own, a regularized cell's is the None model of its seed. None for
    a None cell, an evaluation without soundness, or a study without ``none``."""
    ev = config.evaluate
    if "soundness" not in ev.runs or ev.reference_run is not None or target == "none" \
            or "none" not in config.conditions:
        return None
    return ("none", seed)


def packs(cells: Iterable[tuple[int, TrainConfig]], size: int) -> list[list[int]]:
    """Group ``(id, train config)`` cells into packs of at most ``size`` that may train
    together (:func:`ml.train.pack.pack_key`), in their order: the seeds of one condition
    and α go together. A cell that cannot be packed (fp16) is a pack of one."""
    from ml.train.pack import pack_key

    out: list[list[int]] = []
    open_: dict[Any, list[int]] = {}
    for run_id, train in cells:
        key = pack_key(train)
        if size <= 1 or key is None:
            out.append([run_id])
            continue
        group = open_.get(key)
        if group is None or len(group) >= size:
            group = open_[key] = []
            out.append(group)
        group.append(run_id)
    return out


POWER = 0.8
"""The power :func:`paired_difference`'s detectable difference is stated at (two-sided
α = 0.05)."""


def paired_difference(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Per-seed pairs (condition, none): their count, the mean difference condition −
    none with its SEM, a paired t-test p and the Wilcoxon signed-rank p (None with fewer
    than 2 pairs or all differences 0; with n pairs the two-sided Wilcoxon p is at least
    2/2ⁿ — 0.25 for 3 seeds).

    Also what the pairs can and cannot say: ``ci_low``/``ci_high``, the 95 % confidence
    interval of the mean difference (Student's t with n − 1 degrees of freedom);
    ``verdict`` — ``higher`` or ``lower`` (condition against None) when that interval
    excludes 0, else ``unresolved`` (also with fewer than 2 pairs); and ``detectable``,
    the smallest true difference these many pairs would find at :data:`POWER` given the
    differences' own spread, (t₀.₉₇₅ + t_power) · SD / √n."""
    diff = np.array([a - b for a, b in pairs], dtype=np.float64)
    t_p = w_p = None
    if len(pairs) >= 2 and np.any(diff != 0):
        with warnings.catch_warnings():  # near-constant differences: scipy warns
            warnings.simplefilter("ignore", RuntimeWarning)
            t = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue
            w = stats.wilcoxon(diff).pvalue
        t_p = float(t) if np.isfinite(t) else None
        w_p = float(w) if np.isfinite(w) else None
    sem = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else None
    low = high = detectable = None
    verdict = "unresolved"
    if sem is not None:
        df = len(diff) - 1
        half = float(stats.t.ppf(0.975, df)) * sem
        low, high = float(diff.mean()) - half, float(diff.mean()) + half
        detectable = (float(stats.t.ppf(0.975, df)) + float(stats.t.ppf(POWER, df))) * sem
        if low > 0 or high < 0:
            verdict = "higher" if low > 0 else "lower"
    return {"pairs": len(pairs),
            "mean_difference": float(diff.mean()) if len(pairs) else None,
            "sem_difference": sem, "t_test_p": t_p, "wilcoxon_p": w_p,
            "ci_low": low, "ci_high": high, "verdict": verdict, "detectable": detectable}


def hierarchical_bootstrap(pairs: list[tuple[np.ndarray, np.ndarray]], *,
                           resamples: int = 2000, seed: int = 0,
                           level: float = 0.95) -> dict[str, Any]:
    """The seed-paired difference of per-model medians, with a CI that holds both
    sources of spread: seeds (which models were trained) and samples (which test images
    were attacked).

    Each pair is one seed: the per-sample values (say minimal L2 distances; ``inf`` where
    a sample was never broken) of the condition's model and of None's, over the same
    samples in the same order. The statistic is the mean over seeds of median(condition)
    − median(None). A resample draws seeds with replacement, then within each drawn seed
    samples with replacement — the same samples for both models of the pair, as they
    were attacked on the same images — and recomputes the statistic (percentile
    interval). The p-value is two-sided: twice the share of resampled statistics on the
    far side of 0 (at least 1 / resamples).

    Returns:
        ``pairs``, ``samples`` (per seed, the smallest count), ``difference`` (the
        statistic on the data), ``ci_low``/``ci_high``, ``p`` and ``verdict`` (``higher``,
        ``lower`` or ``unresolved`` when the interval covers 0, and with fewer than 2
        seeds).
    """
    if not pairs:
        return {"pairs": 0, "samples": 0, "difference": None, "ci_low": None,
                "ci_high": None, "p": None, "verdict": "unresolved"}
    a = [np.asarray(x, dtype=np.float64) for x, _ in pairs]
    b = [np.asarray(y, dtype=np.float64) for _, y in pairs]
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.shape != y.shape or x.ndim != 1 or not len(x):
            raise ValueError(f"pairs[{k}]: the two models' samples differ in shape "
                             f"({x.shape} vs {y.shape}) or are empty")
    point = float(np.mean([np.median(x) - np.median(y) for x, y in zip(a, b, strict=True)]))
    rng = np.random.default_rng(seed)
    n = len(pairs)
    stats_ = np.empty(resamples)
    for r in range(resamples):
        seeds = rng.integers(n, size=n)
        diffs = []
        for k in seeds:
            idx = rng.integers(len(a[k]), size=len(a[k]))
            diffs.append(np.median(a[k][idx]) - np.median(b[k][idx]))
        stats_[r] = np.mean(diffs)
    finite = stats_[np.isfinite(stats_)]
    tail = (1.0 - level) / 2.0
    low, high = (float(v) for v in np.quantile(finite, [tail, 1.0 - tail]))
    p = min(1.0, 2.0 * max(min(float(np.mean(finite <= 0)), float(np.mean(finite >= 0))),
                           1.0 / resamples))
    verdict = "unresolved"
    if n >= 2 and (low > 0 or high < 0):
        verdict = "higher" if low > 0 else "lower"
    return {"pairs": n, "samples": int(min(len(x) for x in a)), "difference": point,
            "ci_low": low, "ci_high": high, "p": float(p), "verdict": verdict}


def holm(pvalues: Mapping[str, float | None]) -> dict[str, float | None]:
    """Holm–Bonferroni adjusted p-values of one family of tests (None stays None and is
    not counted): the k-th smallest of m is multiplied by m − k + 1, made monotone and
    capped at 1; an adjusted p below α rejects at family-wise error α."""
    named = sorted(((p, k) for k, p in pvalues.items() if p is not None))
    m = len(named)
    out: dict[str, float | None] = {k: None for k in pvalues}
    running = 0.0
    for i, (p, k) in enumerate(named):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def paired_tests(evals: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each condition vs ``none``, paired by seed: a paired t-test and the Wilcoxon
    signed-rank test on per-seed differences.

    Args:
        evals: per finished evaluation ``target``, ``alpha``, ``seed`` and ``result``
            (its noise curve and medians).

    Returns:
        Rows (condition, α, measure, n pairs, mean difference condition − none and its
        SEM, t-test p, Wilcoxon p) for every measure of :mod:`ml.evaluate.measures`
        (clean accuracy, noise accuracy, each norm's median perturbation); p is None
        with fewer than 2 pairs.
    """
    base: dict[int, dict[str, float]] = {}
    groups: dict[tuple[str, float], dict[int, dict[str, float]]] = {}
    for e in evals:
        m = read_measures(e["result"])
        if e["target"] == "none":
            base[int(e["seed"])] = m
        else:
            groups.setdefault((e["target"], float(e["alpha"])), {})[int(e["seed"])] = m
    rows = []
    for (target, alpha), by_seed in sorted(groups.items()):
        for measure in [k for k in MEASURES if any(k in m for m in by_seed.values())]:
            pairs = [(by_seed[s][measure], base[s][measure]) for s in sorted(by_seed)
                     if s in base and measure in by_seed[s] and measure in base[s]]
            rows.append({"condition": target, "alpha": alpha, "measure": measure,
                         "higher_is_better": MEASURES[measure].higher_is_better,
                         **paired_difference(pairs)})
    return rows


def mean_curves(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Training curves per condition as mean ± SEM over seeds (the study page's curves).

    Args:
        runs: per train run ``id``, ``target``, ``alpha``, ``seed`` and its curve as
            ``steps`` and ``values`` (one value per step, or per bin of steps when every
            run of a condition was binned the same way).

    Returns:
        One row per (target, α) sorted like :func:`gamma_table`'s: every ``steps`` any
        run of the condition reached, with ``mean`` and ``sem`` over the runs that reached
        it and their count ``n_at`` (a live study's seeds run ahead of each other; SEM is
        0 where one run has the step), ``n`` runs, their ``seeds`` and ``run_ids``.
    """
    from ml.train.summary import alpha_of

    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for r in runs:
        if len(r["steps"]) or len(r["values"]):  # mean_curve checks they match
            groups.setdefault((r["target"], alpha_of(r)), []).append(r)
    return [{"target": target, "alpha": alpha, "n": len(members),
             "seeds": [m["seed"] for m in members], **mean_curve(members)}
            for (target, alpha), members in sorted(groups.items())]


def mean_curve(runs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several runs' curves as one: every ``steps`` any run reached, with ``mean`` and
    ``sem`` over the runs that reached it and their count ``n_at`` (SEM is 0 where one
    run has the step), and the runs' ``run_ids``. The curves of a study's condition and
    of a group of runs in Compare.

    Args:
        runs: per run its ``id`` and its curve as ``steps`` and ``values`` (one value
            per step, or per bin of steps when every run was binned the same way).
    """
    from ml.train.summary import mean_sem

    members = list(runs)
    by_step: dict[int, list[float]] = {}
    for m in members:
        if len(m["steps"]) != len(m["values"]):
            raise ValueError(f"run {m.get('id')}: {len(m['steps'])} steps for "
                             f"{len(m['values'])} values")
        for step, value in zip(m["steps"], m["values"], strict=True):
            by_step.setdefault(int(step), []).append(float(value))
    steps = sorted(by_step)
    stats = [mean_sem(by_step[step]) for step in steps]
    return {"run_ids": [m.get("id") for m in members], "steps": steps,
            "mean": [float(m) for m, _ in stats], "sem": [float(e) for _, e in stats],
            "n_at": [len(by_step[step]) for step in steps]}
