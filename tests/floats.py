"""How far apart two computation paths may leave a float: tolerances derived from the computation.

Two ways of computing the same quantity (a Gram form and a normalize-first form, a packed and a
separate network, a processor's AVX-512 kernels and another's AVX2 ones) round differently; how
much is bounded by the unit roundoff u = eps/2 of the dtype, the number n of roundings along
the computation (the terms summed, plus the operations each went through) and the magnitude
Σ|x| of what was summed, not by the size of the result, which cancellation can make as small as
it likes (issue 32: a gradient entry of 1.2e-4 summed from terms of about 3, and compared at
atol 1e-8, failed by 8.9e-8 on an AMD processor's MKL kernels).

Each path errs by at most γ_n·Σ|x|, γ_n = n·u/(1 − n·u), in any order of summation, any blocking
and any vector width (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1,
Lemma 3.1); for long sums the worst case is far from what rounding does, and with independent
roundings the error stays within γ̃_n(λ)·Σ|x|, γ̃_n(λ) = exp(λ·√n·u + n·u²/(1 − u)) − 1 ≈ λ·√n·u,
except with probability at most 2n·exp(−λ²(1 − u)²/2) (Higham & Mary, SIAM J. Sci. Comput.
41(5), 2019, Thm 2.4 and §3): λ = 10 makes that below 2n·e⁻⁴⁹·⁹⁹, under 1e-15 for a million
terms. Two paths may err in opposite directions: twice the smaller of the two bounds.
"""
from __future__ import annotations

import math

import numpy as np
import torch

LAMBDA = 10.0


def unit_roundoff(dtype: torch.dtype | np.dtype | type = torch.float32) -> float:
    """u = eps / 2 of a torch or numpy floating dtype."""
    eps = torch.finfo(dtype).eps if isinstance(dtype, torch.dtype) else np.finfo(dtype).eps
    return float(eps) / 2


def one_path(n: int, magnitude, dtype: torch.dtype | np.dtype | type = torch.float32):
    """The most a path computing a sum of ``n`` roundings whose terms total ``magnitude`` (Σ|x|:
    a float or an array, elementwise) in ``dtype`` can be from the exact value."""
    u = unit_roundoff(dtype)
    worst = n * u / (1 - n * u) if n * u < 1 else math.inf
    likely = math.expm1(LAMBDA * math.sqrt(n) * u + n * u * u / (1 - u))
    return min(worst, likely) * np.asarray(magnitude, dtype=np.float64)


def two_paths(n: int, magnitude, dtype: torch.dtype | np.dtype | type = torch.float32):
    """The most two such paths can disagree by: each errs by ``one_path``, perhaps oppositely."""
    return 2 * one_path(n, magnitude, dtype)


def _float64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_within(actual, expected, bound, what: str = "") -> None:
    """|actual − expected| ≤ bound elementwise (NaN where both are NaN counts as equal), naming
    the worst element and how far past its bound it is."""
    a, e = np.broadcast_arrays(_float64(actual), _float64(expected))
    b = np.broadcast_to(_float64(bound), a.shape)
    gap = np.abs(a - e)
    bad = ~((gap <= b) | (np.isnan(a) & np.isnan(e)))
    if bad.any():
        ratio = np.where(bad, np.divide(gap, b, out=np.full(a.shape, np.inf), where=b > 0), 0)
        i = np.unravel_index(int(np.nanargmax(ratio)), a.shape)
        raise AssertionError(
            f"{what + ': ' if what else ''}{int(bad.sum())} of {a.size} beyond the rounding "
            f"bound; worst at {tuple(int(k) for k in i)}: |{float(a[i])!r} − {float(e[i])!r}|"
            f" = {gap[i]:.3g} > {b[i]:.3g} ({ratio[i]:.3g}×)")


def assert_mean(actual, samples, axis, what: str = "",
                dtype: torch.dtype | np.dtype | type = np.float32) -> None:
    """``actual``, a mean over ``axis`` of ``samples`` that some path (a loader's window or block
    mean) ends in ``dtype``, is the exact mean of the samples (taken in float64) within k − 1
    additions, a scaling of each sample, the division and the final rounding, k the samples per
    mean, of magnitudes their mean |x|."""
    x = _float64(samples)
    k = int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    assert_within(actual, x.mean(axis), one_path(k + 2, np.abs(x).mean(axis), dtype), what)
