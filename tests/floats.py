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


def two_paths(n: int, magnitude, dtype: torch.dtype | np.dtype | type = torch.float32):
    """The most two paths computing a sum of ``n`` roundings whose terms total ``magnitude``
    (Σ|x|: a float or an array, elementwise) in ``dtype`` can disagree by (module docstring)."""
    u = unit_roundoff(dtype)
    worst = n * u / (1 - n * u) if n * u < 1 else math.inf
    likely = math.expm1(LAMBDA * math.sqrt(n) * u + n * u * u / (1 - u))
    return 2 * min(worst, likely) * magnitude
