"""Attack soundness: whether the minimal perturbations an evaluation reports measure the
model, or the failure of its attacks (gradient masking: Athalye et al. 2018; the checks
of Carlini et al. 2019, "On evaluating adversarial robustness").

Per norm, on the minimal search's own samples and results:

- **agreement** — each attack family's per-sample minimum over its runs, its median,
  the ratio of that median to the best (the minimum over every run), the share of
  samples where it is within 10 % of the best, and the share of samples it found the
  minimum for. Attacks of one norm that disagree by more than a factor 2 are a warning;
- **decision-based** (L2, L∞) — HopSkipJump (Chen et al. 2020) needs only the model's
  decisions, so a masked gradient cannot mislead it. It starts from the nearest correctly
  classified image of another class on the first ``k`` samples; a sample where it finds
  a perturbation smaller than every gradient attack's by more than 10 % is a sign of
  masking;
- **transfer** (L2, L∞; given a reference model) — the gradient attacks' minimal search
  on the reference, then each perturbation scaled along its own direction (doubling,
  then a bisection on the scale) until it fools the evaluated model. Transferred
  perturbations should be larger than the white-box ones: a smaller transfer median means
  the white-box attacks failed;
- **AutoAttack** (L2, L∞; when that part ran) — the samples it broke below their minimal
  perturbation (0 is sound).

Each norm gets a ``verdict``: ``sound``, or ``suspect`` with its ``warnings``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ml.evaluate.attacks import NORM_LABELS, AttackRun
from ml.evaluate.minimal import (
    MinimalResult,
    distances,
    minimal_perturbations,
    starting_points,
)

MARGIN = 0.1
"""Within 10 %: the agreement share; beyond it, a decision-based or transferred
perturbation counts as smaller than the gradient attacks'."""
DISAGREEMENT = 2.0
"""An attack family whose median is more than twice the best one's is a warning."""
SUSPECT_SHARE = 0.1
"""The share of the decision-based attack's samples that may beat every gradient attack
by more than :data:`MARGIN` before the norm is suspect (a decision-based attack with few
queries still lands below a gradient attack by chance on a sample or two)."""
PROBED_NORMS = ("linf", "l2")
"""The norms HopSkipJump and the transfer attacks measure."""
_GROW = 12  # doublings of a transferred perturbation's scale (×4096) before giving up


def _num(v: float) -> float | None:
    """A JSON number: None for ∞ or NaN."""
    return float(v) if math.isfinite(v) else None


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else math.nan


def family(label: str) -> str:
    """An attack run's family (its class) from its label: ``LinfPGD(...)#0`` → ``LinfPGD``."""
    return label.split("(")[0]


def agreement(res: MinimalResult, norm: str) -> dict[str, Any]:
    """Each attack family of ``norm``'s own per-sample minimum on the attacked samples
    (correctly classified), against the best over every run of the search.

    A fixed-ε attack searches only below the best perturbation found before it (the
    minimal search's design): where it fails there, its own minimum is known only to be
    above that bound. Such a sample is ``censored`` and counts at its bound, so a
    family's ``median`` and ``ratio`` are lower bounds when it has censored samples (and
    a ratio above :data:`DISAGREEMENT` is a disagreement for certain).

    Returns:
        ``samples`` (attacked), ``best_median``, ``families`` (per family: ``median``,
        ``ratio`` to the best median, ``censored``, ``unbroken`` — never broken, not
        censored —, ``within`` — share of samples where it found a perturbation within
        :data:`MARGIN` of the best —, ``found_minimum`` — share of broken samples it is
        credited with; None where undefined), ``found_by_other_norms`` (credited to
        another norm's attacks) and ``disagreement`` (the largest ratio; None when it or
        the best median is ∞).
    """
    from ml.evaluate.attacks import ATTACKS

    attacked = res.clean_correct.astype(bool)
    where = {int(s): i for i, s in enumerate(res.ids)}
    dim = int(np.prod(res.adversarials[norm].shape[1:]))
    upper = math.sqrt(dim) if norm == "l2" else 1.0 if norm == "linf" else float(dim)
    running = np.where(attacked, np.inf, 0.0)  # the search's best so far, replayed
    found: dict[str, np.ndarray] = {}
    bound: dict[str, np.ndarray] = {}
    for r in res.rows:  # in the order they ran: each sample once per run
        i = where[int(r["sample_id"])]
        d = float(r[norm]) if r["success"] and r[norm] is not None else math.inf
        if r["norm"] == norm:
            f = found.setdefault(r["attack"], np.full(len(res.ids), np.inf))
            b = bound.setdefault(r["attack"], np.full(len(res.ids), np.inf))
            f[i] = min(f[i], d)
            if not r["success"] and ATTACKS[r["attack"]].search:
                b[i] = min(b[i], running[i] if math.isfinite(running[i]) else upper)
        running[i] = min(running[i], d)
    best = res.best[norm][attacked]
    best_med = _median(best)
    broken = np.isfinite(best)
    credited = [family(a) for a, ok in zip(
        np.asarray(res.best_attack[norm], dtype=object)[attacked], broken, strict=True) if ok]
    families: dict[str, dict[str, Any]] = {}
    for name, f in found.items():
        own, low = f[attacked], bound[name][attacked]
        censored = np.isinf(own) & np.isfinite(low)
        value = np.where(censored, low, own)
        med = _median(value)
        ratio = med / best_med if math.isfinite(best_med) and best_med > 0 else math.nan
        families[name] = {
            "median": _num(med), "ratio": _num(ratio),
            "censored": int(censored.sum()), "unbroken": int(np.isinf(value).sum()),
            "within": float((own <= best * (1 + MARGIN)).mean()) if len(own) else None,
            "found_minimum": credited.count(name) / len(credited) if credited else None}
    ratios = [math.inf if f["ratio"] is None else f["ratio"] for f in families.values()]
    other = sum(c not in found for c in credited)
    return {"samples": int(attacked.sum()), "best_median": _num(best_med),
            "families": families,
            "found_by_other_norms": other / len(credited) if credited else None,
            "disagreement": _num(max(ratios)) if ratios and math.isfinite(best_med) else None}


def _fooled(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
            device: torch.device) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([(model(x[i:i + batch].to(device)).argmax(1)
                           != y[i:i + batch].to(device)).cpu()
                          for i in range(0, len(x), batch)]) if len(x) else \
            torch.zeros(0, dtype=torch.bool)


def decision_based(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   starts: torch.Tensor, norm: str, *, steps: int, gradient_evals: int,
                   seed: int, batch: int, device: torch.device,
                   should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """HopSkipJump's (Foolbox 3) closest adversarial per sample in ``norm`` (``l2`` or
    ``linf``), from ``starts`` (adversarial images, one per sample); ``inf`` where none
    was given or its result does not re-verify. ``steps`` iterations, each estimating
    the boundary's normal from ``gradient_evals`` · √(iteration) model decisions."""
    import foolbox as fb

    if norm not in PROBED_NORMS:
        raise ValueError(f"norm: HopSkipJump measures {list(PROBED_NORMS)}, not {norm!r}")
    model.eval()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    attack = fb.attacks.HopSkipJumpAttack(steps=steps, initial_gradient_eval_steps=gradient_evals,
                                          max_gradient_eval_steps=gradient_evals * 10,
                                          constraint=norm)  # type: ignore[arg-type]
    out = np.full(len(images), np.inf)
    todo = np.flatnonzero(torch.isfinite(starts.flatten(1).sum(1)).numpy())
    torch.manual_seed(seed)
    for b in range(0, len(todo), batch):
        if should_stop is not None and should_stop():
            from ml.recorder import Cancelled

            raise Cancelled(f"stopped during HopSkipJump ({norm})")
        idx = todo[b:b + batch]
        x, y = images[idx].to(device), labels[idx].to(device)
        adv = attack.run(fmodel, x, fb.criteria.Misclassification(y),
                         starting_points=starts[idx].to(device)).clamp(0.0, 1.0)
        ok = _fooled(model, adv, y, batch, device)
        d = distances(adv.cpu(), x.cpu())[norm].numpy()
        out[idx[ok.numpy()]] = d[ok.numpy()]
    return out


def scale_to_fool(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  delta: torch.Tensor, norm: str, *, steps: int, batch: int,
                  device: torch.device) -> np.ndarray:
    """Per sample the ``norm`` distance of clip(x + s·δ) at the smallest scale s > 0
    (to a bisection's precision) that fools the model: from s = 1 the scale doubles until
    it fools (at most ×4096), then ``steps`` bisections between the last scale that did
    not and the first that did. ``inf`` where no scale fooled it, or δ is 0."""
    n = len(images)
    lo = torch.zeros(n, dtype=torch.float64)
    hi = torch.ones(n, dtype=torch.float64)
    shape = (-1, *([1] * (images.ndim - 1)))

    def at(s: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return (images[i] + s[i].float().view(shape) * delta[i]).clamp(0.0, 1.0)

    every = torch.arange(n)
    nonzero = delta.flatten(1).abs().amax(1) > 0
    fooled = _fooled(model, at(hi, every), labels, batch, device) & nonzero
    for _ in range(_GROW):
        grow = torch.nonzero(~fooled & nonzero).flatten()
        if len(grow) == 0:
            break
        lo[grow], hi[grow] = hi[grow], hi[grow] * 2
        fooled[grow] = _fooled(model, at(hi, grow), labels[grow], batch, device)
    found = torch.nonzero(fooled).flatten()
    for _ in range(steps):
        if len(found) == 0:
            break
        mid = (lo + hi) / 2
        ok = _fooled(model, at(mid, found), labels[found], batch, device)
        hi[found] = torch.where(ok, mid[found], hi[found])
        lo[found] = torch.where(ok, lo[found], mid[found])
    out = np.full(n, np.inf)
    if len(found):
        d = distances(at(hi, found), images[found])[norm].numpy()
        out[found.numpy()] = d
    return out


def _compare(probe: np.ndarray, white: np.ndarray, attacked: np.ndarray) -> dict[str, Any]:
    """A probe's distances (HopSkipJump's or the transferred) against the white-box
    minimum on the samples the probe measured (finite or not: ``inf`` where it failed)."""
    measured = attacked & ~np.isnan(probe)
    p, w = probe[measured], white[measured]
    smaller = p < w / (1 + MARGIN)
    return {"samples": int(measured.sum()), "median": _num(_median(p)),
            "white_box_median": _num(_median(w)), "unbroken": int(np.isinf(p).sum()),
            "smaller": int(smaller.sum()),
            "smaller_share": float(smaller.mean()) if len(p) else None}


def _reference_search(reference: torch.nn.Module, images: torch.Tensor,
                      labels: torch.Tensor, runs: Sequence[AttackRun], norms: Sequence[str],
                      *, pool: tuple[torch.Tensor, torch.Tensor], num_classes: int,
                      seed: int, batch: int, device: torch.device, search_steps: int,
                      should_stop: Callable[[], bool] | None) -> MinimalResult:
    return minimal_perturbations(
        reference.to(device).eval(), images, labels, runs, pool=pool,
        num_classes=num_classes, seed=seed, batch=batch, device=device, norms=norms,
        search_steps=search_steps, should_stop=should_stop)


def soundness(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
              res: MinimalResult, *, norms: Sequence[str], runs: Sequence[AttackRun],
              pool: tuple[torch.Tensor, torch.Tensor], num_classes: int,
              reference: torch.nn.Module | None = None, samples: int = 50,
              hsja_steps: int = 16, hsja_gradient_evals: int = 50, transfer_steps: int = 10,
              search_steps: int = 6, autoattack: Mapping[str, Any] | None = None,
              seed: int = 0, batch: int = 250, device: torch.device | str = "cpu",
              progress: Callable[[float, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Every check of the module, per norm.

    Args:
        model: the evaluated classifier (eval mode, on ``device``).
        images, labels: the minimal search's samples, in its order (``res.ids``).
        res: the minimal search on them.
        norms: the norms it measured.
        runs: its attack schedule: the transfer search runs the L2 and L∞ ones on the
            reference.
        pool: the test split, for HopSkipJump's starting points.
        reference: another model of the same task (tensor in, logits out), or None.
        samples: how many of the samples (the first) HopSkipJump and the transfer
            attacks measure.
        autoattack: the autoattack part's result (``threat_models``), when it ran.

    Returns:
        A JSON-able dict: ``samples``, ``sample_ids`` (the probed first ones), and per
        norm ``agreement``, ``decision_based``, ``transfer``, ``autoattack_inconsistent``,
        ``verdict`` and ``warnings``; ``per_sample`` (per norm the white-box, HopSkipJump
        and transferred distances of the probed samples) and ``transfer_skipped`` (why
        there is no transfer, or None).
    """
    device = torch.device(device)
    k = min(samples, len(images))
    x, y = images[:k], labels[:k]
    attacked = res.clean_correct[:k].astype(bool)
    probed = [n for n in PROBED_NORMS if n in norms]
    report = progress or (lambda f, m: None)
    out: dict[str, Any] = {"samples": k, "sample_ids": res.ids[:k].tolist(),
                           "margin": MARGIN, "disagreement_limit": DISAGREEMENT,
                           "suspect_share": SUSPECT_SHARE, "norms": {}, "per_sample": {},
                           "transfer_skipped": None,
                           "hsja": {"steps": hsja_steps, "gradient_evals": hsja_gradient_evals}}
    hsja: dict[str, np.ndarray] = {}
    if probed:
        pool_x, pool_y = pool
        with torch.no_grad():
            pool_pred = torch.cat([model(pool_x[i:i + batch].to(device)).argmax(1).cpu()
                                   for i in range(0, len(pool_x), batch)])
        start_of = starting_points(x, y, pool_x, pool_y, pool_pred)
        starts = torch.full_like(x, float("nan"))
        has = start_of >= 0
        starts[has] = pool_x[start_of[has]]
        starts[~torch.from_numpy(attacked)] = float("nan")  # a wrong sample is not attacked
        for j, norm in enumerate(probed):
            report(j / (2 * len(probed)), f"soundness: HopSkipJump {NORM_LABELS[norm]}")
            d = decision_based(model, x, y, starts, norm, steps=hsja_steps,
                               gradient_evals=hsja_gradient_evals, seed=seed, batch=batch,
                               device=device, should_stop=should_stop)
            d[~attacked | ~has.numpy()] = np.nan  # not measured
            hsja[norm] = d
    transferred: dict[str, np.ndarray] = {}
    if reference is None:
        out["transfer_skipped"] = "no reference model (reference_run)"
    elif not probed:
        out["transfer_skipped"] = "transfer attacks measure L2 and L∞; neither was asked"
    else:
        report(0.5, "soundness: the gradient attacks on the reference model")
        ref_runs = [r for r in runs if r.norm in probed]
        try:
            ref = _reference_search(reference, x, y, ref_runs, probed, pool=pool,
                                    num_classes=num_classes, seed=seed, batch=batch,
                                    device=device, search_steps=search_steps,
                                    should_stop=should_stop)
        except ValueError as exc:  # a reference no better than chance on these samples
            out["transfer_skipped"] = f"reference model: {exc}"
        else:
            for norm in probed:
                report(0.9, f"soundness: transferring {NORM_LABELS[norm]} perturbations")
                delta = torch.from_numpy(ref.adversarials[norm]) - x
                have = ref.clean_correct & np.isfinite(ref.best[norm]) & (ref.best[norm] > 0)
                d = np.full(k, np.nan)
                idx = np.flatnonzero(have & attacked)
                d[idx] = scale_to_fool(model, x[idx], y[idx], delta[idx], norm,
                                       steps=transfer_steps, batch=batch, device=device)
                transferred[norm] = d
    threat = (autoattack or {}).get("threat_models", {})
    for norm in norms:
        white = res.best[norm][:k]
        row: dict[str, Any] = {"agreement": agreement(res, norm), "decision_based": None,
                               "transfer": None, "autoattack_inconsistent": None}
        warnings: list[str] = []
        label = NORM_LABELS[norm]
        if norm in hsja:
            row["decision_based"] = db = _compare(hsja[norm], white, attacked)
            if db["smaller_share"] is not None and db["smaller_share"] > SUSPECT_SHARE:
                warnings.append(
                    f"{label}: the decision-based attack (HopSkipJump) finds a perturbation "
                    f"more than {MARGIN:.0%} smaller than every gradient attack's on "
                    f"{db['smaller']} of {db['samples']} samples")
        if norm in transferred:
            row["transfer"] = tr = _compare(transferred[norm], white, attacked)
            if tr["samples"] and _below(tr["median"], tr["white_box_median"]):
                warnings.append(
                    f"{label}: perturbations transferred from the reference model are "
                    f"smaller (median {_fmt(tr['median'])}) than the white-box ones "
                    f"({_fmt(tr['white_box_median'])}): the white-box attacks failed")
        ag = row["agreement"]
        for name, f in ag["families"].items():
            if ag["best_median"] is not None and (f["ratio"] is None or f["ratio"] > DISAGREEMENT):
                warnings.append(
                    f"{label}: attacks disagree by more than a factor {DISAGREEMENT:g}: "
                    f"{name}'s median is {_fmt(f['median'])} against the best "
                    f"{_fmt(ag['best_median'])}")
        rows = threat.get(norm) or []
        counts = [r.get("inconsistent") for r in rows if r.get("inconsistent") is not None]
        if counts:
            row["autoattack_inconsistent"] = int(sum(counts))
            if sum(counts):
                warnings.append(f"{label}: AutoAttack breaks {int(sum(counts))} sample(s) "
                                "below their minimal perturbation")
        row["verdict"] = "suspect" if warnings else "sound"
        row["warnings"] = warnings
        out["norms"][norm] = row
        if norm in hsja or norm in transferred:
            out["per_sample"][norm] = {
                "white_box": _list(white),
                "decision_based": _list(hsja.get(norm)),
                "transfer": _list(transferred.get(norm))}
    report(1.0, "soundness")
    return out


def _below(a: float | None, b: float | None) -> bool:
    """a < b with None as ∞."""
    a_ = math.inf if a is None else a
    b_ = math.inf if b is None else b
    return a_ < b_


def _fmt(v: float | None) -> str:
    return "∞" if v is None else f"{v:.4g}"


def _list(values: np.ndarray | None) -> list[float | str | None] | None:
    """Per-sample distances: a number, ``"inf"`` (not broken) or None (not measured)."""
    if values is None:
        return None
    return [None if math.isnan(v) else "inf" if math.isinf(v) else float(v) for v in values]
