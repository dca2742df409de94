"""Error bars on the similarity scores (Fig. 1D): bootstrap confidence intervals over
stimuli and over neurons for r(S_model, S_oracle) and r(S_data, S_oracle), and the noise
ceiling of S_oracle from split halves of the repeats.

What an RSA reader expects beside a correlation between similarity matrices (rsatoolbox
bootstraps stimuli and reports noise ceilings; Brain-Score reports a split-half ceiling
with every score):

- **over stimuli**: the oracle images are drawn with replacement; each replicate's r is
  over the pairs of distinct drawn images (a pair drawn twice counts twice), the
  matrices themselves computed once from every trial.
- **over neurons**: a grouped jackknife. The neurons are split at random into 20
  groups; each replicate leaves one group out and recomputes S_oracle, S_model and the
  single-trial S_data from the rest (unit vectors renormalised); the interval is
  r ± z · SE_jackknife. Not a bootstrap: drawing neurons with replacement counts a
  neuron drawn twice (and its trial noise) twice, which made the single-trial S_data
  noisier and put the percentile interval of r(S_data, S_oracle) wholly below its
  estimate (measured on the quick protocol of ``bench/df_over_f.py``: [0.480, 0.517]
  around 0.537).
- **noise ceiling**: each oracle image's repeats are split at random into two halves;
  ``split_half_r`` is r between the two halves' S_oracle (mean over splits), its
  Spearman–Brown correction ``2r / (1 + r)`` the reliability of S_oracle from all
  repeats, and ``ceiling`` = √reliability the highest r(S, S_oracle) a noise-free model
  can expect.

Stimulus intervals are percentile intervals (2.5–97.5 % for ``level`` 0.95). With several
scans the score is the mean over scans; each replicate resamples every scan and averages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml.neural.estimators import pearson

_EPS = 1e-12


@dataclass(frozen=True)
class ScanData:
    """What one scan's scores are computed from.

    Attributes:
        trials: (T, A) oracle-trial responses already multiplied by the SNR weights w_a
            (r_ait = w_a ρ_ait), not yet centred.
        trial_ids: (T,) oracle image of each trial.
        oracle_ids: (n,) the oracle images, in the order of the matrices.
        model: (n, A) model responses on the oracle images, multiplied by w_a v_a.
    """

    trials: np.ndarray
    trial_ids: np.ndarray
    oracle_ids: np.ndarray
    model: np.ndarray


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Pearson r with a weight per pair (a stimulus drawn k times weighs k); unweighted,
    :func:`ml.neural.estimators.pearson`."""
    sw = w.sum()
    if sw <= 0:
        return 0.0
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    dx, dy = x - mx, y - my
    den = np.sqrt((w * dx * dx).sum() * (w * dy * dy).sum())
    return float((w * dx * dy).sum() / den) if den > 0 else 0.0


class _Scan:
    """Precomputed per-scan quantities for fast replicates."""

    def __init__(self, d: ScanData) -> None:
        ids = np.asarray(d.trial_ids)
        self.index = np.searchsorted(np.asarray(d.oracle_ids), ids)  # (T,) image row
        self.n = len(d.oracle_ids)
        self.counts = np.bincount(self.index, minlength=self.n).astype(np.float64)
        self.centred = (d.trials - d.trials.mean(axis=0)).astype(np.float32)  # (T, A)
        self.model_c = (d.model - d.model.mean(axis=0)).astype(np.float32)    # (n, A)
        self.onehot = np.zeros((len(ids), self.n))
        self.onehot[np.arange(len(ids)), self.index] = 1.0
        self.iu = np.triu_indices(self.n, k=1)
        t1, t2 = np.triu_indices(len(ids), k=1)
        cross = self.index[t1] != self.index[t2]
        self.t1, self.t2 = t1[cross], t2[cross]

    def matrices(self, m: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(S_oracle, S_model, trial gram) with neuron multiplicities ``m`` (None: 1)."""
        c, p = self.centred, self.model_c
        if m is not None:
            # resampled neurons keep their own centring (a per-neuron mean)
            cm, pm = c * m.astype(np.float32), p * m.astype(np.float32)
        else:
            cm, pm = c, p
        gram = (cm @ c.T).astype(np.float64)  # (T, T) Σ_a m_a c_ta c_sa
        norm = np.sqrt(np.maximum(np.diag(gram), _EPS))
        gram /= np.outer(norm, norm)
        sums = self.onehot.T @ gram @ self.onehot  # (n, n) Σ over trial pairs
        s_oracle = sums / np.outer(self.counts, self.counts)
        self_pairs = self.onehot.T @ np.diag(gram)  # Σ_t S_tt per image (= T_i)
        diag = (np.diag(sums) - self_pairs) / (self.counts * (self.counts - 1))
        s_oracle[np.diag_indices(self.n)] = diag
        model_gram = (pm @ p.T).astype(np.float64)
        mnorm = np.sqrt(np.maximum(np.diag(model_gram), _EPS))
        s_model = model_gram / np.outer(mnorm, mnorm)
        return s_oracle, s_model, gram

    def r_pair(self, m: np.ndarray | None = None) -> tuple[float, float]:
        """(r(S_model, S_oracle), r(S_data, S_oracle)) with neuron multiplicities m."""
        s_oracle, s_model, gram = self.matrices(m)
        r_model = pearson(s_model[self.iu], s_oracle[self.iu])
        x = gram[self.t1, self.t2]
        y = s_oracle[self.index[self.t1], self.index[self.t2]]
        return r_model, pearson(x, y)


class _StimulusStats:
    """Per image pair, the sums r(S_data, S_oracle) over trial pairs needs, so a
    replicate over stimuli is a weighted sum."""

    def __init__(self, s: _Scan) -> None:
        s_oracle, s_model, gram = s.matrices()
        self.s_oracle, self.s_model = s_oracle, s_model
        a, b = s.index[s.t1], s.index[s.t2]
        x = gram[s.t1, s.t2]
        n = s.n
        self.count = np.zeros((n, n))
        self.sx = np.zeros((n, n))
        self.sxx = np.zeros((n, n))
        np.add.at(self.count, (a, b), 1.0)
        np.add.at(self.sx, (a, b), x)
        np.add.at(self.sxx, (a, b), x * x)
        # symmetric: a trial pair (t1 < t2) of images (i, j) is also one of (j, i)
        self.count, self.sx, self.sxx = (v + v.T for v in (self.count, self.sx, self.sxx))
        self.iu = s.iu

    def r_pair(self, mult: np.ndarray) -> tuple[float, float]:
        """r's over stimuli drawn ``mult[i]`` times each."""
        pair_w = np.outer(mult, mult)[self.iu]  # distinct originals only (i < j)
        i, j = self.iu
        r_model = _weighted_pearson(self.s_model[i, j], self.s_oracle[i, j], pair_w)
        w = pair_w * self.count[i, j]
        sw = w.sum()
        if sw <= 0:
            return r_model, 0.0
        y = self.s_oracle[i, j]
        pw = pair_w
        sx, sxx = (pw * self.sx[i, j]).sum(), (pw * self.sxx[i, j]).sum()
        sy, syy = (w * y).sum(), (w * y * y).sum()
        sxy = (pw * self.sx[i, j] * y).sum()
        cov = sxy - sx * sy / sw
        var_x, var_y = sxx - sx * sx / sw, syy - sy * sy / sw
        den = np.sqrt(max(var_x, 0.0) * max(var_y, 0.0))
        return r_model, float(cov / den) if den > 0 else 0.0


def _interval(values: Sequence[float], level: float) -> list[float]:
    lo = 100 * (1 - level) / 2
    return [float(np.percentile(values, lo)), float(np.percentile(values, 100 - lo))]


def bootstrap_scores(scans: Sequence[ScanData], *, replicates: int = 100, level: float = 0.95,
                     neuron_groups: int = 20, seed: int = 0) -> dict[str, object]:
    """Intervals of r(S_model, S_oracle) and r(S_data, S_oracle), the mean over scans:
    a percentile bootstrap over stimuli and a grouped jackknife over neurons.

    Returns:
        ``r_model_oracle`` and ``r_data_oracle`` (the point estimates), each with
        ``…_ci_stimuli`` and ``…_ci_neurons`` ([lo, hi]) and ``…_se_neurons``;
        ``replicates``, ``neuron_groups``, ``level``.
    """
    from statistics import NormalDist

    rng = np.random.default_rng(seed)
    prepared = [_Scan(d) for d in scans]
    stim = [_StimulusStats(p) for p in prepared]
    point = np.mean([p.r_pair() for p in prepared], axis=0)
    by_stimuli = [np.mean([
        s.r_pair(np.bincount(rng.integers(0, p.n, p.n), minlength=p.n).astype(np.float64))
        for p, s in zip(prepared, stim, strict=True)], axis=0) for _ in range(replicates)]
    # the grouped jackknife: replicate k leaves group k of every scan's neurons out
    groups = [rng.permutation(p.centred.shape[1]) % min(neuron_groups, p.centred.shape[1])
              for p in prepared]
    g = min(min(neuron_groups, p.centred.shape[1]) for p in prepared)
    leave_out = np.array([np.mean([p.r_pair((grp != k).astype(np.float64))
                                   for p, grp in zip(prepared, groups, strict=True)], axis=0)
                          for k in range(g)])  # (g, 2)
    se = np.sqrt((g - 1) / g * ((leave_out - leave_out.mean(axis=0)) ** 2).sum(axis=0))
    z = NormalDist().inv_cdf(0.5 + level / 2)
    out: dict[str, object] = {"replicates": replicates, "neuron_groups": g, "level": level}
    for k, name in enumerate(("r_model_oracle", "r_data_oracle")):
        out[name] = float(point[k])
        out[f"{name}_ci_stimuli"] = _interval([r[k] for r in by_stimuli], level)
        out[f"{name}_ci_neurons"] = [float(point[k] - z * se[k]), float(point[k] + z * se[k])]
        out[f"{name}_se_neurons"] = float(se[k])
    return out


def noise_ceiling(scans: Sequence[ScanData], *, splits: int = 50, level: float = 0.95,
                  seed: int = 0) -> dict[str, object]:
    """The reliability of S_oracle from split halves of each image's repeats, and the
    ceiling it puts on r(S, S_oracle); the mean over scans.

    Returns:
        ``split_half_r`` (mean over splits) and its interval over splits,
        ``reliability`` (Spearman–Brown: 2r / (1 + r)) and ``ceiling`` (√reliability).
    """
    rng = np.random.default_rng(seed)
    per_split = []
    for _ in range(splits):
        rs = []
        for d in scans:
            ids = np.asarray(d.trial_ids)
            half = np.zeros(len(ids), bool)
            for image in d.oracle_ids:
                rows = np.flatnonzero(ids == image)
                half[rng.permutation(rows)[: len(rows) // 2]] = True
            if min(np.bincount(np.searchsorted(d.oracle_ids, ids[half]))) < 2 or min(
                    np.bincount(np.searchsorted(d.oracle_ids, ids[~half]))) < 2:
                raise ValueError("noise ceiling: every oracle image needs at least 4 "
                                 "repeats to split into halves of two")
            a = _Scan(ScanData(d.trials[half], ids[half], d.oracle_ids, d.model)).matrices()[0]
            b = _Scan(ScanData(d.trials[~half], ids[~half], d.oracle_ids, d.model)).matrices()[0]
            iu = np.triu_indices(len(d.oracle_ids), k=1)
            rs.append(pearson(a[iu], b[iu]))
        per_split.append(float(np.mean(rs)))
    r = float(np.mean(per_split))
    reliability = 2 * r / (1 + r) if r > -1 else 0.0
    return {"split_half_r": r, "split_half_r_interval": _interval(per_split, level),
            "reliability": reliability, "ceiling": float(np.sqrt(max(reliability, 0.0))),
            "splits": splits}
