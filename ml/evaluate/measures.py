"""The numbers an evaluation is compared by: one registry, read by the paired tests, the
accuracy–robustness frontier, the benchmark and the study page.

Each measure reads an evaluate run's result (its noise curve, the medians and means of
its minimal perturbations, its AutoAttack robust accuracy and its corruption accuracy)
and says which direction is better. A new robustness score is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.evaluate.attacks import NORM_LABELS, NORMS

Result = Mapping[str, Any]


@dataclass(frozen=True)
class Measure:
    name: str
    label: str  # for axes and tables
    higher_is_better: bool
    read: Callable[[Result], float | None]


def _noise(result: Result) -> list[tuple[float, float]]:
    noise = result.get("noise") or {}
    return [(float(s), float(a)) for s, a in zip(noise.get("sigmas", []),
                                                 noise.get("accuracy", []), strict=False)]


def _clean(result: Result) -> float | None:
    return next((a for s, a in _noise(result) if s == 0), None)


def _noise_mean(result: Result) -> float | None:
    acc = [a for s, a in _noise(result) if s > 0]
    return float(np.mean(acc)) if acc else None


def _noise_highest(result: Result) -> float | None:
    curve = [(s, a) for s, a in _noise(result) if s > 0]
    return max(curve)[1] if curve else None


def _field(key: str) -> Callable[[Result], float | None]:
    def read(result: Result) -> float | None:
        v = result.get(key)
        return None if v is None else float(v)
    return read


def autoattack_rows(result: Result, norm: str) -> list[Mapping[str, Any]]:
    """The AutoAttack results of one threat model, one per ε, in the config's order."""
    rows: list[Mapping[str, Any]] = (result.get("autoattack") or {}).get(
        "threat_models", {}).get(norm, [])
    return rows


def _autoattack(norm: str) -> Callable[[Result], float | None]:
    def read(result: Result) -> float | None:  # at the first ε the config names
        rows = autoattack_rows(result, norm)
        return float(rows[0]["robust_accuracy"]) if rows else None
    return read


def _corruption(result: Result) -> float | None:
    cor = result.get("corruptions")
    return None if not cor else float(cor["mean_accuracy"])


CLEAN = Measure("clean_accuracy", "clean accuracy (σ = 0)", True, _clean)
MEASURES: dict[str, Measure] = {m.name: m for m in [
    CLEAN,
    Measure("noise_accuracy", "mean accuracy over σ > 0", True, _noise_mean),
    Measure("noise_accuracy_highest", "accuracy at the highest σ", True, _noise_highest),
    *[Measure(f"median_{n}", f"median minimal {NORM_LABELS[n]} perturbation", True,
              _field(f"median_{n}")) for n in NORMS],
    *[Measure(f"mean_{n}", f"mean minimal {NORM_LABELS[n]} perturbation", True,
              _field(f"mean_{n}")) for n in NORMS],
    *[Measure(f"autoattack_{n}", f"AutoAttack robust accuracy ({NORM_LABELS[n]}, first ε)",
              True, _autoattack(n)) for n in ("linf", "l2")],
    Measure("corruption_accuracy", "mean accuracy under common corruptions", True,
            _corruption),
]}
ROBUSTNESS = tuple(m for m in MEASURES.values() if m is not CLEAN)


def read_measures(result: Result) -> dict[str, float]:
    """Every measure the result has (a missing curve or an unbroken median is left out)."""
    out = {}
    for m in MEASURES.values():
        v = m.read(result)
        if v is not None and np.isfinite(v):
            out[m.name] = v
    return out
