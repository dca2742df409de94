"""How brain-like a trained CNN is on stimuli it never trained on (issue 38, item 1).

Three families of score, each beside its ceiling, from plain arrays: the model's features
per tapped layer on N held-out stimuli, the run's γ (Eq. 10) when it has one, and the
similarity run's side: S_target, S_oracle (Eq. 3), a simulation's S_true, and the recorded
(or simulated) trials with their repeats.

**RSA.** Each layer's S_k is Eq. 9 with f̄ the mean over the N held-out stimuli (the
repo's :func:`ml.neural.estimators.similarity`), the mix Eq. 10's Σ_k γ_k S_k. A model S
and a reference S are compared on their off-diagonal upper triangle (i < j), as RDM
comparisons do: Pearson r (rsatoolbox's ``compare(method='corr')``; RDM = 1 − S changes
neither r) and Spearman ρ = Pearson r of tie-averaged ranks (rsatoolbox's
``method='spearman'``; its ``rho-a`` is the same number when no value is tied). Intervals
are percentile intervals of a bootstrap over stimuli: N stimuli drawn with replacement,
the matrices computed once, each replicate's r over the pairs of distinct drawn stimuli
(a pair drawn twice counts twice; a stimulus paired with its own copy is left out, as
rsatoolbox's bootstrap leaves it out) — the convention of :mod:`ml.neural.uncertainty`.
Spearman's replicate ranks the resampled multiset exactly (weighted mid-ranks), without
materialising it.

**Ceilings.** Against S_oracle: the split-half reliability of S_oracle from each image's
repeats with Spearman–Brown, √(2r/(1 + r)) — Pearson's from the repo's
:func:`ml.neural.uncertainty.noise_ceiling`, Spearman's from the same splits ranked (the
Spearman–Brown step is then an approximation). Against S_true: 1 (noise-free by
construction). Against S_target: none (a predictive model's fixed S_model, Eq. 6; nothing
estimates its noise). ``normalized`` = score / ceiling.

**CKA.** Linear CKA (Kornblith et al. 2019, ICML, Eq. 5 / HSIC with centred Gram
matrices): CKA(K, L) = ⟨HKH, HLH⟩ / (‖HKH‖ ‖HLH‖). A layer's K is its features' Gram
matrix (linear CKA of the features), the mix's K is S_mix itself; the references are the
trial-averaged responses (linear) and each S. Its ceiling is 1 (none is estimated).

**Linear predictivity.** A ridge readout from each layer to the trial-averaged responses,
k-fold over stimuli (seeded): on each training fold the features and responses are centred
by that fold's means and each neuron's penalty is picked from a grid (relative to the mean
eigenvalue of the fold's centred Gram matrix) by exact leave-one-out error within the
training fold; the test fold is predicted once. The out-of-fold predictions are scored per
neuron as Sensorium does (neuralpredictors ``measures.np_functions.fev``, called by
sinzlab/sensorium ``utility/scores.py:get_FEV``) on the repeated stimuli's trials:

    Var   = variance of all their trials (ddof = 1)
    σ²    = mean over stimuli of the variance over repeats (ddof = 1)   # noise
    FEV   = (Var − σ²) / Var                                            # explainable
    MSE   = mean over trials of (response − prediction)²
    FEVE  = 1 − (MSE − σ²) / (Var − σ²)

averaged over neurons with FEV above ``fev_threshold`` (Sensorium's
``min_fraction_explainable_variance``; 0.15 after Cadena et al. 2019). FEVE's ceiling is 1
by construction; beside it stand FEV itself and the unnormalised R² = 1 − MSE / Var, whose
ceiling is FEV. Without repeats there is no σ²: R² alone, ``ceiling: None`` and a message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge, Gt, Le, Lt

from ml._validate import validate_config
from ml.neural import estimators as est
from ml.neural.scan import Scan
from ml.neural.uncertainty import ScanData, noise_ceiling

NO_REPEATS = ("no repeats: no stimulus was shown twice, so there is no noise ceiling; "
              "scores are reported unnormalized")
REFERENCES = ("s_target", "s_oracle", "s_true")


@dataclass(frozen=True, kw_only=True)
class AlignmentConfig:
    """Settings of an alignment evaluation (all seeded)."""

    replicates: Annotated[int, Ge(0)] = 200  # bootstrap over stimuli; 0: no intervals
    level: Annotated[float, Gt(0.0), Lt(1.0)] = 0.95
    folds: Annotated[int, Ge(2)] = 5  # k-fold over stimuli for the ridge readout
    # ridge penalties, in units of the training fold's mean Gram eigenvalue
    alpha_min_log10: float = -4.0
    alpha_max_log10: float = 4.0
    alphas: Annotated[int, Ge(1), Le(64)] = 17
    fev_threshold: Annotated[float, Ge(0.0), Lt(1.0)] = 0.15
    ceiling_splits: Annotated[int, Ge(0)] = 50  # split halves for S_oracle's ceiling
    seed: int = 0

    def __post_init__(self) -> None:
        validate_config(self)
        if self.alpha_max_log10 < self.alpha_min_log10:
            raise ValueError("alpha_max_log10: must not be below alpha_min_log10")

    def alpha_grid(self) -> np.ndarray:
        return np.logspace(self.alpha_min_log10, self.alpha_max_log10, self.alphas)


@dataclass(frozen=True, eq=False)
class Responses:
    """Trials of the held-out stimuli (a scan's oracle trials, or any (trials, neurons)).

    Attributes:
        trials: (T, A) responses, one row per trial.
        trial_ids: (T,) stimulus id of each trial.
    """

    trials: np.ndarray
    trial_ids: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.trials)
        if t.ndim != 2 or np.asarray(self.trial_ids).shape != (t.shape[0],):
            raise ValueError(f"responses: trials {t.shape} must be (T, A) with one id per "
                             f"trial, got {np.asarray(self.trial_ids).shape} ids")
        if not np.isfinite(t).all():
            raise ValueError("responses: trials hold NaN or inf")

    @classmethod
    def from_scan(cls, scan: Scan, ids: np.ndarray | None = None) -> Responses:
        """The trials of ``ids`` (default: the scan's oracle images, which no target
        covers and no train run saw)."""
        ids = scan.oracle_ids if ids is None else np.asarray(ids)
        keep = np.isin(scan.trial_image_ids, ids)
        return cls(scan.responses[keep], scan.trial_image_ids[keep])


# --- RSA: correlations between upper triangles, with a bootstrap over stimuli ---------

def _midranks(values: np.ndarray, order: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Ranks (ties averaged) of the multiset holding values[p] w[p] times, per p: what
    ``scipy.stats.rankdata`` gives each copy once the multiset is written out."""
    v, ws = values[order], w[order]
    start = np.r_[True, v[1:] != v[:-1]]  # first of each run of equal values
    first = np.flatnonzero(start)
    group_w = np.add.reduceat(ws, first)
    before = np.cumsum(group_w) - group_w
    rank_sorted = np.repeat(before + (group_w + 1) / 2, np.diff(np.r_[first, v.size]))
    out = np.empty_like(rank_sorted)
    out[order] = rank_sorted
    return out


def _weighted_corr(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(V, V) Pearson r between the rows of x (V, P), pair p weighing w[p]."""
    sw = w.sum()
    d = x - (x @ w / sw)[:, None]
    cov = (d * w) @ d.T
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.outer(sd, sd)
    return np.where(np.outer(sd, sd) > 0, r, 0.0)


def rdm_correlations(matrices: Mapping[str, np.ndarray], *, replicates: int = 0,
                     level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Pearson and Spearman r between every two (N, N) similarity matrices' upper
    triangles, with percentile intervals of a bootstrap over stimuli.

    Args:
        matrices: name → (N, N) matrix over the same N stimuli in the same order.
        replicates: bootstrap replicates (0: point estimates only).
        level: interval coverage.
        seed: the bootstrap's seed.

    Returns:
        ``names``; ``pearson`` and ``spearman`` (V, V) point estimates; with replicates,
        ``pearson_ci`` and ``spearman_ci`` (V, V, 2).
    """
    names = list(matrices)
    n = next(iter(matrices.values())).shape[0]
    for k, m in matrices.items():
        if m.shape != (n, n):
            raise ValueError(f"{k}: expected ({n}, {n}) like the others, got {m.shape}")
    if n < 3:
        raise ValueError(f"RSA needs at least 3 stimuli, got {n}")
    iu = np.triu_indices(n, k=1)
    x = np.stack([np.asarray(matrices[k], dtype=np.float64)[iu] for k in names])  # (V, P)
    orders = [np.argsort(row, kind="stable") for row in x]

    def both(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ranks = np.stack([_midranks(row, o, w) for row, o in zip(x, orders, strict=True)])
        return _weighted_corr(x, w), _weighted_corr(ranks, w)

    pearson, spearman = both(np.ones(x.shape[1]))
    out: dict[str, Any] = {"names": names, "pearson": pearson, "spearman": spearman}
    if replicates:
        rng = np.random.default_rng(seed)
        reps = []
        for _ in range(replicates):
            mult = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
            reps.append(both(np.outer(mult, mult)[iu]))  # distinct originals (i < j)
        lo = 100 * (1 - level) / 2
        for i, method in enumerate(("pearson", "spearman")):
            stack = np.stack([rep[i] for rep in reps])
            out[f"{method}_ci"] = np.stack(np.percentile(stack, [lo, 100 - lo], axis=0), -1)
    return out


# --- CKA ---------------------------------------------------------------------------

def _centre_gram(k: np.ndarray) -> np.ndarray:
    """H K H with H = I − 11ᵀ/N."""
    k = np.asarray(k, dtype=np.float64)
    return k - k.mean(0) - k.mean(1)[:, None] + k.mean()


def kernel_cka(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (the paper's L)
    """CKA(K, L) = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F) of two (N, N) kernels (0 if either
    is constant)."""
    kc, lc = _centre_gram(k), _centre_gram(l)
    den = np.sqrt(np.sum(kc * kc) * np.sum(lc * lc))
    return float(np.sum(kc * lc) / den) if den > 0 else 0.0


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of (N, D1) and (N, D2) features: ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F) on
    column-centred X, Y (Kornblith et al. 2019, Eq. 5)."""
    x = np.asarray(x, np.float64) - np.mean(x, axis=0)
    y = np.asarray(y, np.float64) - np.mean(y, axis=0)
    return kernel_cka(x @ x.T, y @ y.T)


# --- ridge readout and FEVE --------------------------------------------------------

def ridge_cv_predictions(gram: np.ndarray, targets: np.ndarray, *, folds: int,
                         alphas: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold ridge predictions from a linear kernel (dual form, any feature width).

    Args:
        gram: (N, N) X Xᵀ of the features (any centring: each fold re-centres).
        targets: (N, A) what to predict, one row per stimulus.
        folds: k of the k-fold split over stimuli (shuffled with ``seed``).
        alphas: penalties relative to the training fold's mean eigenvalue; each neuron's
            is picked by exact leave-one-out error inside the training fold.

    Returns:
        (N, A) predictions, each made by a readout fitted without that stimulus, and
        (folds, A) the relative penalty each neuron got on each fold.
    """
    n = gram.shape[0]
    if folds > n:
        raise ValueError(f"folds: {folds} is more than the {n} stimuli")
    y = np.asarray(targets, np.float64)
    perm = np.random.default_rng(seed).permutation(n)
    pred = np.empty_like(y)
    chosen = np.empty((folds, y.shape[1]))
    for f, test in enumerate(np.array_split(perm, folds)):
        train = np.setdiff1d(perm, test)
        k_tr = gram[np.ix_(train, train)]
        col_mean, all_mean = k_tr.mean(0), k_tr.mean()
        kc = k_tr - col_mean - k_tr.mean(1)[:, None] + all_mean  # train-fold centring
        k_te = gram[np.ix_(test, train)]
        k_te = k_te - k_te.mean(1)[:, None] - col_mean + all_mean
        mean_y = y[train].mean(0)
        lam, u = np.linalg.eigh(kc)
        lam = np.maximum(lam, 0.0)
        uty = u.T @ (y[train] - mean_y)  # (n_tr, A)
        scale = lam.mean()
        if scale <= 0:  # constant features: the best a readout does is the mean
            pred[test], chosen[f] = mean_y, np.nan
            continue
        best_err = np.full(y.shape[1], np.inf)
        coef = np.zeros_like(uty)
        for a in alphas:
            shrink = a * scale / (lam + a * scale)  # residual = U diag(shrink) Uᵀ y
            resid = u @ (shrink[:, None] * uty)
            # h_ii of the unpenalised intercept plus the centred ridge:
            # 1/n + Σ_j U_ij² λ_j/(λ_j + α) (H = 11ᵀ/n + K_c (K_c + α)⁻¹, as 1 ⟂ K_c)
            hat = (u * u) @ (1.0 - shrink) + 1.0 / len(train)
            err = np.mean((resid / np.maximum(1.0 - hat, 1e-12)[:, None]) ** 2, axis=0)
            better = err < best_err
            best_err[better] = err[better]
            chosen[f, better] = a
            coef[:, better] = uty[:, better] / (lam + a * scale)[:, None]
        pred[test] = k_te @ (u @ coef) + mean_y
    return pred, chosen


def _by_stimulus(responses: Responses, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,) row of ``ids`` of each trial (trials of other stimuli dropped) and the
    (N,) trial count per stimulus."""
    order = np.argsort(ids)
    pos = np.searchsorted(ids, responses.trial_ids, sorter=order)
    pos = np.minimum(pos, len(ids) - 1)
    row = order[pos]
    known = ids[row] == responses.trial_ids
    row = np.where(known, row, -1)
    return row, np.bincount(row[known], minlength=len(ids))


def feve(trials: np.ndarray, rows: np.ndarray, predictions: np.ndarray
         ) -> dict[str, np.ndarray]:
    """Per-neuron FEV and FEVE (Sensorium's definition, see the module docstring).

    Args:
        trials: (T, A) responses of repeated stimuli only (each at least twice).
        rows: (T,) the stimulus (row of ``predictions``) of each trial.
        predictions: (N, A) one prediction per stimulus, broadcast to its trials.

    Returns:
        ``fev``, ``feve``, ``r2`` (1 − MSE/Var), ``total_var``, ``noise_var``: (A,) each;
        NaN where a neuron's variance (or explainable variance) is zero. A neuron whose
        noise exceeds its variance (FEV < 0) gets the formula's value, as in
        neuralpredictors; the threshold on FEV keeps it out of the means.
    """
    r = np.asarray(trials, np.float64)
    n = predictions.shape[0]
    counts = np.bincount(rows, minlength=n).astype(np.float64)
    seen = counts > 0
    if (counts[seen] < 2).any():
        raise ValueError("feve: every stimulus needs at least 2 trials")
    total = r.var(axis=0, ddof=1)
    sums = np.zeros((n, r.shape[1]))
    np.add.at(sums, rows, r)
    within = np.zeros((n, r.shape[1]))
    np.add.at(within, rows, (r - (sums / np.maximum(counts, 1)[:, None])[rows]) ** 2)
    noise = np.mean(within[seen] / (counts[seen, None] - 1), axis=0)  # σ² per neuron
    mse = np.mean((r - predictions[rows]) ** 2, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fev = np.where(total > 0, (total - noise) / total, np.nan)
        explainable = total - noise
        fe = np.where(explainable != 0, 1 - (mse - noise) / explainable, np.nan)
        r2 = np.where(total > 0, 1 - mse / total, np.nan)
    return {"fev": fev, "feve": fe, "r2": r2, "total_var": total, "noise_var": noise}


def _predictivity(gram: np.ndarray, responses: Responses, ids: np.ndarray,
                  cfg: AlignmentConfig) -> dict[str, Any]:
    rows, counts = _by_stimulus(responses, ids)
    keep = rows >= 0
    r, rows = np.asarray(responses.trials, np.float64)[keep], rows[keep]
    if (counts == 0).any():
        raise ValueError(f"responses: {int((counts == 0).sum())} held-out stimuli have no "
                         "trial")
    means = np.zeros((len(ids), r.shape[1]))
    np.add.at(means, rows, r)
    means /= counts[:, None]
    pred, chosen = ridge_cv_predictions(gram, means, folds=cfg.folds,
                                        alphas=cfg.alpha_grid(), seed=cfg.seed)
    out: dict[str, Any] = {"alpha_median": _finite_median(chosen)}
    repeated = counts[rows] >= 2
    if repeated.sum() < 4 or (counts >= 2).sum() < 2:
        mse = np.mean((r - pred[rows]) ** 2, axis=0)
        total = r.var(axis=0, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = np.where(total > 0, 1 - mse / total, np.nan)
        return {**out, "r2": _nanmean(r2), "feve": None, "fev": None, "ceiling": None,
                "message": NO_REPEATS, "neurons": int(r.shape[1])}
    scores = feve(r[repeated], rows[repeated], pred)
    good = scores["fev"] > cfg.fev_threshold
    return {
        **out,
        "feve": _nanmean(scores["feve"][good]), "feve_median": _nanmedian(scores["feve"][good]),
        "ceiling": 1.0,
        "r2": _nanmean(scores["r2"][good]), "fev": _nanmean(scores["fev"][good]),
        "fev_all": _nanmean(scores["fev"]),
        "neurons": int(good.sum()), "neurons_total": int(r.shape[1]),
        "stimuli_with_repeats": int((counts >= 2).sum()),
        **({} if good.any() else {"message": f"no neuron has FEV > {cfg.fev_threshold}"}),
    }


def _nanmean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def _nanmedian(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else None


def _finite_median(x: np.ndarray) -> float | None:
    return _nanmedian(np.asarray(x, np.float64).ravel())


# --- ceilings ----------------------------------------------------------------------

def oracle_reference(responses: Responses, ids: np.ndarray) -> tuple[np.ndarray, ScanData]:
    """S_oracle (Eq. 3) over ``ids`` as the similarity pipeline computes it (SNR weights
    of Eq. 1, unit vectors of the weighted trials), and the :class:`ScanData` its noise
    ceiling is computed from. ``ids`` sorted, each shown at least twice."""
    t, tid = np.asarray(responses.trials), np.asarray(responses.trial_ids)
    on = np.isin(tid, ids)
    t, tid = t[on], tid[on]
    w = est.snr_weights(t, tid, ids)  # Eq. 1
    unit = est.unit_vectors(t, weights=w)
    s_oracle = est.oracle_similarity(unit, tid, ids)  # Eq. 3
    rows, _ = _by_stimulus(Responses(t, tid), ids)
    means = np.zeros((len(ids), t.shape[1]))
    np.add.at(means, rows, t)
    means /= np.bincount(rows, minlength=len(ids))[:, None]
    return s_oracle, ScanData(t * w, tid, ids, means * w)


def split_half_spearman(data: ScanData, *, splits: int, seed: int) -> dict[str, float]:
    """Spearman ρ between the two halves' S_oracle over the random splits that
    :func:`ml.neural.uncertainty.noise_ceiling` draws with the same seed (same order of
    draws), its Spearman–Brown reliability and √ of it; also Pearson r of the same
    halves (equal to ``noise_ceiling``'s ``split_half_r``)."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    ids = np.asarray(data.trial_ids)
    iu = np.triu_indices(len(data.oracle_ids), k=1)
    rho, r = [], []
    for _ in range(splits):
        half = np.zeros(len(ids), bool)
        for image in data.oracle_ids:
            rows = np.flatnonzero(ids == image)
            half[rng.permutation(rows)[: len(rows) // 2]] = True
        a, b = (est.oracle_similarity(est.unit_vectors(data.trials[h]), ids[h],
                                      data.oracle_ids)[iu] for h in (half, ~half))
        rho.append(float(spearmanr(a, b).statistic))
        r.append(est.pearson(a, b))
    out = {"split_half_r": float(np.mean(r)), "split_half_rho": float(np.mean(rho))}
    rel = 2 * out["split_half_rho"] / (1 + out["split_half_rho"])
    return {**out, "reliability": rel, "ceiling": float(np.sqrt(max(rel, 0.0)))}


# --- the evaluation ----------------------------------------------------------------

def alignment(features: Mapping[str, np.ndarray], stimulus_ids: np.ndarray, *,
              gamma: Sequence[float] | None = None, s_target: np.ndarray | None = None,
              s_oracle: np.ndarray | None = None, s_true: np.ndarray | None = None,
              responses: Responses | None = None,
              config: AlignmentConfig | None = None) -> dict[str, Any]:
    """RSA, CKA and ridge predictivity of every tapped layer (and Eq. 10's mix), each
    beside its ceiling.

    Args:
        features: tap name → (N, D_k) features (flattened maps) on the held-out stimuli.
        stimulus_ids: (N,) ids of those stimuli, the rows of every array here.
        gamma: Eq. 10's γ_k, one per tap in ``features``' order (≥ 0, summing to 1);
            none: no mix.
        s_target: (N, N) the similarity run's target on these stimuli (S_model, Eq. 6).
        s_oracle: (N, N) S_oracle (Eq. 3); none: computed from ``responses`` when every
            stimulus has repeats.
        s_true: (N, N) a simulation's noise-free S_true.
        responses: the trials of these stimuli; none: no predictivity, no ceilings.
        config: bootstrap, folds, penalties, FEV threshold, seed.

    Returns:
        JSON-able dict: ``rsa`` (model → reference → pearson/spearman with ``r``,
        ``ci``, ``ceiling``, ``normalized``), ``ceilings``, ``cka`` (model → reference),
        ``predictivity`` (layer → FEVE, FEV, R², ceiling), ``ceiling`` and ``message``
        when there are no repeats, ``config``.
    """
    cfg = config or AlignmentConfig()
    ids = np.asarray(stimulus_ids)
    n = ids.shape[0]
    if ids.ndim != 1 or len(np.unique(ids)) != n:
        raise ValueError(f"stimulus_ids: expected N unique ids, got shape {ids.shape}")
    if not features:
        raise ValueError("features: no tapped layer")
    feats = {}
    for name, f in features.items():
        f = np.asarray(f)
        if f.ndim != 2 or f.shape[0] != n:
            raise ValueError(f"features[{name!r}]: expected ({n}, D), got {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"features[{name!r}]: NaN or inf")
        feats[name] = f
    refs: dict[str, np.ndarray] = {}
    for name, given in (("s_target", s_target), ("s_oracle", s_oracle), ("s_true", s_true)):
        if given is not None:
            if np.shape(given) != (n, n):
                raise ValueError(f"{name}: expected ({n}, {n}), got {np.shape(given)}")
            refs[name] = np.asarray(given, np.float64)

    counts = None
    ceilings: dict[str, Any] = {}
    result: dict[str, Any] = {"n_stimuli": n, "layers": list(feats)}
    if responses is not None:
        counts = _by_stimulus(responses, ids)[1]
    repeats = counts is not None and bool((counts >= 2).all())
    if counts is not None and not (counts >= 2).any():
        result.update(ceiling=None, message=NO_REPEATS)
    if repeats and responses is not None and counts is not None:
        order = np.argsort(ids)
        s_o, data = oracle_reference(responses, ids[order])
        back = np.argsort(order)
        if "s_oracle" not in refs:
            refs["s_oracle"] = s_o[np.ix_(back, back)]
        ceilings["s_oracle"] = _oracle_ceiling(data, counts, cfg)
    elif "s_oracle" in refs:
        ceilings["s_oracle"] = {"ceiling": None, "message": NO_REPEATS if counts is not None
                                else "no responses given: no split halves to estimate it"}
    if "s_true" in refs:
        ceilings["s_true"] = {"ceiling": 1.0, "ceiling_spearman": 1.0,
                              "message": "noise-free by construction"}
    if "s_target" in refs:
        ceilings["s_target"] = {"ceiling": None, "message": "S_target is a predictive "
                                "model's fixed S_model (Eq. 6): nothing estimates its noise"}

    sims = {name: est.similarity(f) for name, f in feats.items()}  # Eq. 9 per tap
    if gamma is not None:
        g = np.asarray(gamma, np.float64)
        if g.shape != (len(feats),) or (g < 0).any() or abs(g.sum() - 1) > 1e-6:
            raise ValueError(f"gamma: expected {len(feats)} weights ≥ 0 summing to 1, "
                             f"got {g.tolist()}")
        sims["mix"] = np.einsum("k,kij->ij", g, np.stack(list(sims.values())))  # Eq. 10
        result["gamma"] = g.tolist()
    models = list(sims)
    if refs:
        corr = rdm_correlations({**sims, **refs}, replicates=cfg.replicates,
                                level=cfg.level, seed=cfg.seed)
        rows = {m: k for k, m in enumerate(corr["names"])}
        rsa: dict[str, Any] = {}
        pairs = [(m, r) for m in models for r in refs]
        pairs += [("s_target", r) for r in refs if r != "s_target" and "s_target" in refs]
        for m, ref in pairs:
            entry = rsa.setdefault(m, {})[ref] = {}
            for method in ("pearson", "spearman"):
                value = float(corr[method][rows[m], rows[ref]])
                c = ceilings.get(ref, {})
                ceil = c.get("ceiling" if method == "pearson" else "ceiling_spearman")
                entry[method] = {
                    "r": value,
                    "ci": (corr[f"{method}_ci"][rows[m], rows[ref]].tolist()
                           if cfg.replicates else None),
                    "ceiling": ceil,
                    "normalized": value / ceil if ceil else None,
                }
        result["rsa"] = rsa
    result["ceilings"] = ceilings

    grams = {}
    for name, f in feats.items():
        x = np.asarray(f, np.float64)
        x = x - x.mean(0)
        grams[name] = x @ x.T  # (N, N) linear kernel of the layer
    kernels: dict[str, np.ndarray] = dict(refs)
    if responses is not None:
        rows_t, cnt = _by_stimulus(responses, ids)
        if (cnt == 0).any():
            raise ValueError(f"responses: {int((cnt == 0).sum())} held-out stimuli have no "
                             "trial")
        keep = rows_t >= 0
        means = np.zeros((n, responses.trials.shape[1]))
        np.add.at(means, rows_t[keep], np.asarray(responses.trials, np.float64)[keep])
        means = means / cnt[:, None] - means.sum(0) / cnt.sum()
        kernels = {"responses": means @ means.T, **kernels}
    model_kernels = {**grams, **({"mix": sims["mix"]} if "mix" in sims else {})}
    result["cka"] = {m: {ref: kernel_cka(k, other) for ref, other in kernels.items()}
                     for m, k in model_kernels.items()}
    if responses is not None:
        result["predictivity"] = {name: _predictivity(k, responses, ids, cfg)
                                  for name, k in grams.items()}
    result["config"] = dataclasses.asdict(cfg)
    return result


def _oracle_ceiling(data: ScanData, counts: np.ndarray, cfg: AlignmentConfig
                    ) -> dict[str, Any]:
    if cfg.ceiling_splits == 0:
        return {"ceiling": None, "message": "ceiling_splits = 0: not estimated"}
    if counts.min() < 4:
        return {"ceiling": None, "message": f"a stimulus has {int(counts.min())} repeats; "
                "the split-half ceiling needs 4 to split into halves of two"}
    pearson = noise_ceiling([data], splits=cfg.ceiling_splits, seed=cfg.seed)
    spearman = split_half_spearman(data, splits=cfg.ceiling_splits, seed=cfg.seed)
    return {
        "ceiling": pearson["ceiling"], "split_half_r": pearson["split_half_r"],
        "reliability": pearson["reliability"],
        "ceiling_spearman": spearman["ceiling"], "split_half_rho": spearman["split_half_rho"],
        "splits": cfg.ceiling_splits,
    }
