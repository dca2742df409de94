"""Minimal adversarial perturbations per sample (§4.2 and the supplement, Fig. 5, Fig. 7).

For every sample the smallest successful perturbation over every attack run of the
schedule, measured in L0, L1, L2 and L∞ from the same adversarials; a sample the model
already misclassifies counts 0, one no attack breaks counts ∞. The robustness score per
norm is the median over the sample set.

Nothing a library returns is taken on trust: every adversarial is clipped to [0, 1], the
model is asked again (its prediction must differ from the label) and the distances are
computed from the clipped image. The best adversarial per sample and norm is kept.
Brendel & Bethge attacks start from the nearest (L2) correctly classified image of another
class.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import torch

from ml.evaluate.attacks import NORM_LABELS, NORMS, AttackRun
from ml.evaluate.checks import MARGIN, check_images, check_model, settle

log = logging.getLogger(__name__)
"""Each attack run's batches and the medians after it: the worker sends this logger's
records to the run's log."""

# the largest possible distance per norm for (C, H, W) images in [0, 1]: the ε an ε-search
# starts from when no attack has found an adversarial yet
_UPPER = {"linf": lambda d: 1.0, "l2": lambda d: math.sqrt(d), "l1": float, "l0": float}


@dataclass
class MinimalResult:
    """Per-sample minima, medians, per-budget curves and the per-attack table."""

    ids: np.ndarray                       # (N,) sample ids (test-set indices)
    labels: np.ndarray                    # (N,)
    clean_correct: np.ndarray             # (N,) bool
    best: dict[str, np.ndarray]           # norm → (N,) minimal distance, inf = never broken
    best_attack: dict[str, list[str]]     # norm → (N,) label of the run that found it
    adversarials: dict[str, np.ndarray]   # norm → (N, C, H, W) the minimal adversarial
    rows: list[dict[str, Any]]            # one per (sample, attack run) attempted
    curves: dict[str, list[tuple[int, float]]]  # norm → (cumulative iterations, median)
    provenance: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def median(self, norm: str) -> float:
        return float(np.median(self.best[norm]))

    def summary(self) -> dict[str, Any]:
        """Per norm the median (the main text's score) and the mean (the supplement's,
        Fig. 7) of the minimal distances; each None when it is infinite (a median when
        more than half the samples were never broken, a mean when any was)."""
        out: dict[str, Any] = {"n": int(len(self.ids)),
                               "clean_accuracy": float(self.clean_correct.mean())}
        for norm, values in self.best.items():
            med, mean = self.median(norm), float(np.mean(values))
            out[f"median_{norm}"] = med if math.isfinite(med) else None
            out[f"mean_{norm}"] = mean if math.isfinite(mean) else None
            out[f"unbroken_{norm}"] = int(np.isinf(values).sum())
        return out

    def table_csv(self) -> str:
        cols = ["sample_id", "label", "attack", "hyperparameters", "repeat", "norm",
                "success", "l0", "l1", "l2", "linf"]
        lines = [",".join(cols)]
        for r in self.rows:
            vals = [r["sample_id"], r["label"], r["attack"],
                    '"' + json.dumps(r["hyperparameters"]).replace('"', '""') + '"',
                    r["repeat"], r["norm"], int(r["success"])]
            vals += ["" if r[n] is None else f"{r[n]:.8g}" for n in ("l0", "l1", "l2", "linf")]
            lines.append(",".join(str(v) for v in vals))
        return "\n".join(lines) + "\n"


def distances(adv: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """L0, L1, L2, L∞ of adv − x per sample (float64)."""
    d = (adv.double() - x.double()).flatten(1)
    return {"l0": (d != 0).sum(1).double(), "l1": d.abs().sum(1), "l2": d.norm(dim=1),
            "linf": d.abs().amax(1)}


@torch.no_grad()
def _predict(model: torch.nn.Module, x: torch.Tensor, batch: int, device: Any) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch].to(device)).argmax(1).cpu()
                      for i in range(0, len(x), batch)])


def starting_points(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor,
                    pool_y: torch.Tensor, pool_pred: torch.Tensor, rank: int = 0
                    ) -> torch.Tensor:
    """Per sample the index into ``pool`` of the ``rank``-th nearest (L2; 0: the
    nearest) image the model classifies correctly and whose class differs from the
    sample's; −1 where there is none."""
    ok = pool_pred == pool_y
    cand = pool[ok].flatten(1).float()
    cand_y, cand_idx = pool_y[ok], torch.nonzero(ok).flatten()
    out = torch.full((len(x),), -1, dtype=torch.long)
    if len(cand) == 0:
        return out
    for i in range(0, len(x), 256):
        d = torch.cdist(x[i:i + 256].flatten(1).float(), cand)  # (b, P)
        d[y[i:i + 256, None] == cand_y[None, :]] = float("inf")
        if rank >= d.shape[1]:
            continue
        val, arg = d.topk(rank + 1, dim=1, largest=False)
        val, arg = val[:, rank], arg[:, rank]
        out[i:i + 256] = torch.where(torch.isfinite(val), cand_idx[arg], -1)
    return out


def _fixed_epsilon(attack: Any, fmodel: Any, x: torch.Tensor, y: torch.Tensor,
                   epsilon: torch.Tensor) -> torch.Tensor:
    import foolbox as fb

    adv: torch.Tensor = attack.run(fmodel, x, fb.criteria.Misclassification(y),
                                   epsilon=epsilon)
    return adv


Verify = Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                  tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]


def _bisect_epsilon(attack: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                    verify: Verify, x: torch.Tensor, y: torch.Tensor, hi: torch.Tensor,
                    norm: str, steps: int, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """A fixed-ε attack's smallest successful ε per sample: a geometric bisection between
    ``hi / 1000`` and ``hi`` (each sample at its own ε), ``steps`` attack runs at most.
    Returns per sample whether any ε succeeded, the closest adversarial found and its
    distances in every norm."""
    n = len(x)
    found = torch.zeros(n, dtype=torch.bool)
    final_adv = x.cpu().clone()
    final_d: dict[str, torch.Tensor] = {
        m: torch.full((n,), float("inf"), dtype=torch.float64) for m in NORMS}
    lo, eps = hi / 1000.0, hi.clone()
    active = torch.ones(n, dtype=torch.bool)
    for step in range(steps):
        a = torch.nonzero(active).flatten()
        if len(a) == 0:
            break
        ad = a.to(device)
        e = eps[a].float().to(device).view(-1, *([1] * (x.ndim - 1)))
        adv, ok, d = verify(attack(x[ad], y[ad], e), x[ad], y[ad])
        better = ok & (d[norm] < final_d[norm][a])
        final_adv[a[better]] = adv[better]
        for m in list(final_d):
            final_d[m][a[better]] = d[m][better]
        found[a] |= ok
        hi[a] = torch.where(ok, eps[a], hi[a])
        lo[a] = torch.where(ok, lo[a], eps[a])
        if step == 0:  # not even at the upper bound: nothing to search below
            active[a[~ok]] = False
        eps = torch.sqrt(lo * hi)  # geometric bisection between fail and success
    return found, final_adv, final_d


def _keep_minima(run: AttackRun, idx: np.ndarray, ids: np.ndarray, labels: torch.Tensor,
                 found: torch.Tensor, final_adv: torch.Tensor,
                 final_d: dict[str, torch.Tensor], norms: Sequence[str],
                 best: dict[str, np.ndarray], best_attack: dict[str, list[str]],
                 adversarials: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Each sample's row for this run; where it beat the best so far in a norm, the new
    minimum, the run that found it and its adversarial (``best…`` updated in place)."""
    rows = []
    for j, i in enumerate(idx):
        success = bool(found[j])
        rows.append({"sample_id": int(ids[i]), "label": int(labels[i]),
                     "attack": run.attack, "hyperparameters": run.params,
                     "repeat": run.repeat, "norm": run.norm, "success": success,
                     **{m: float(final_d[m][j]) if success else None for m in final_d}})
        if not success:
            continue
        for m in norms:
            if final_d[m][j] < best[m][i]:
                best[m][i] = float(final_d[m][j])
                best_attack[m][i] = run.label
                adversarials[m][i] = final_adv[j].numpy()
    return rows


def package_versions() -> dict[str, str]:
    """The versions of the packages an evaluation's numbers depend on."""
    versions = {}
    for pkg in ("foolbox", "torchattacks", "eagerpy", "numba", "torch", "numpy",
                "scikit-image", "opencv-python-headless", "scipy", "pillow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return versions


def provenance(runs: Sequence[AttackRun], seed: int, dim: int) -> dict[str, Any]:
    return {"versions": package_versions(), "seed": seed,
            "attacks": [{"attack": r.attack, "norm": r.norm, "params": r.params,
                         "search": r.search, "repeat": r.repeat, "iterations": r.budget(dim)}
                        for r in runs]}


def minimal_perturbations(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
    runs: Sequence[AttackRun], *, ids: np.ndarray | None = None,
    pool: tuple[torch.Tensor, torch.Tensor] | None = None, num_classes: int | None = None,
    seed: int = 0, batch: int = 250, device: torch.device | str = "cpu",
    norms: Sequence[str] = NORMS, search_steps: int = 10,
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> MinimalResult:
    """Run every attack in ``runs`` on the samples and keep each sample's minima.

    Args:
        model: classifier on (B, C, H, W) images in [0, 1]; put in eval mode here.
        images, labels: the sample set (N ≥ 1).
        runs: the schedule (:func:`ml.evaluate.attacks.schedule`).
        ids: sample ids for the table (default 0..N−1).
        pool: (images, labels) to draw Brendel & Bethge starting points from (default:
            the samples themselves).
        num_classes: for the untrained-model check (default: the label range).
        seed: torch seed; each run is seeded with ``seed`` and its position.
        search_steps: ε bisection steps of the fixed-ε attacks.
        progress, should_stop: called between attack batches.

    Raises:
        ValueError: bad images, an empty sample set, a constant or untrained model.
    """
    import foolbox as fb

    check_images(images, labels)
    start = time.perf_counter()
    model.eval()
    device = torch.device(device)
    n, dim = len(images), int(images[0].numel())
    ids = np.arange(n) if ids is None else np.asarray(ids)
    pred = _predict(model, images, batch, device)
    k = num_classes or int(labels.max()) + 1
    check_model(pred, labels, k)
    correct = (pred == labels).numpy()
    best = {m: np.where(correct, np.inf, 0.0) for m in norms}
    best_attack = {m: ["" if c else "clean" for c in correct] for m in norms}
    adversarials = {m: images.numpy().copy() for m in norms}
    pool_x, pool_y = pool if pool is not None else (images, labels)
    pool_pred = pred if pool is None else _predict(model, pool_x, batch, device)
    starts = {0: starting_points(images, labels, pool_x, pool_y, pool_pred)}
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    rows: list[dict[str, Any]] = []
    spent = 0
    curves: dict[str, list[tuple[int, float]]] = {
        m: [(0, float(np.median(best[m])))] for m in norms}
    todo = np.flatnonzero(correct)
    work = {id(r): r.budget(dim) * len(todo) for r in runs}  # for progress
    total_work, done_work = max(sum(work.values()), 1), 0

    moved = 0  # boundary points settle() moved past the margin

    def verify(adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        nonlocal moved
        adv, ok, m = settle(model, adv, x, y)
        moved += int(m.sum())
        return adv.cpu(), ok.cpu(), distances(adv.cpu(), x.cpu())

    for r_index, run in enumerate(runs):
        torch.manual_seed(seed * 100_003 + r_index)
        attack = run.build()
        bb = run.spec.starting_points
        if bb and run.repeat not in starts:  # repeat r starts from the r-th nearest
            starts[run.repeat] = starting_points(images, labels, pool_x, pool_y, pool_pred,
                                                 rank=run.repeat)
        start_of = starts[run.repeat] if bb else starts[0]
        targets = todo[start_of[todo].numpy() >= 0] if bb else todo
        for b in range(0, len(targets), batch):
            if should_stop is not None and should_stop():
                from ml.recorder import Cancelled

                raise Cancelled(f"stopped during {run.label}")
            idx = targets[b:b + batch]
            x, y = images[idx].to(device), labels[idx].to(device)
            if not run.search:  # a minimizer: its closest adversarial, in one run
                kwargs = {}
                if bb:
                    # B&B asserts that every starting point is adversarial in this batch.
                    # The pool was classified in other batches, and a GPU's kernels can
                    # flip a borderline image between batch compositions (seen on an
                    # H200): ask again in this batch, and leave out what flipped
                    sp = pool_x[start_of[idx]].to(device)
                    with torch.no_grad():
                        keep = (model(sp).argmax(1) != y).cpu().numpy()
                    if not keep.all():
                        idx, x, y, sp = idx[keep], x[keep], y[keep], sp[keep]
                        if not len(idx):
                            continue
                    kwargs = {"starting_points": sp}
                try:
                    raw = attack.run(fmodel, x, fb.criteria.Misclassification(y), **kwargs)
                except AssertionError:  # its own check of the starting points, still
                    raw = x  # nothing found by this run in this batch (verify: not adversarial)
                final_adv, found, final_d = verify(raw, x, y)
            else:
                prev = torch.from_numpy(best[run.norm][idx]) if run.norm in best else None
                hi = torch.full((len(idx),), _UPPER[run.norm](dim), dtype=torch.float64)
                if prev is not None:  # what the minimizers found bounds the search
                    hi = torch.where(torch.isfinite(prev), prev, hi)
                found, final_adv, final_d = _bisect_epsilon(
                    functools.partial(_fixed_epsilon, attack, fmodel),
                    verify, x, y, hi, run.norm, search_steps, device)
            rows += _keep_minima(run, idx, ids, labels, found, final_adv, final_d, norms,
                                 best, best_attack, adversarials)
            log.info("attack %d/%d %s: batch %d/%d (%d samples), %d adversarial", r_index + 1,
                     len(runs), run.label, b // batch + 1, -(-len(targets) // batch),
                     len(idx), int(found.sum()))
            if progress is not None:  # per batch
                done_work += run.budget(dim) * len(idx)
                progress(done_work / total_work,
                         f"attack {r_index + 1}/{len(runs)}: {run.label}, "
                         f"batch {b // batch + 1}/{-(-len(targets) // batch)}")
        done_work = sum(work[id(r)] for r in runs[:r_index + 1])
        spent += run.budget(dim)
        for m in norms:
            curves[m].append((spent, float(np.median(best[m]))))
        log.info("attack %d/%d %s done: median %s; %.0f s so far", r_index + 1, len(runs),
                 run.label, ", ".join(f"{NORM_LABELS[m]} {np.median(best[m]):.4g}"
                                      for m in norms),
                 time.perf_counter() - start)
    log.info("%d boundary adversarials moved past the logit margin %g", moved, MARGIN)
    prov = {**provenance(runs, seed, dim), "margin": MARGIN, "moved_past_margin": moved}
    return MinimalResult(ids, labels.numpy(), correct, best, best_attack, adversarials, rows,
                         curves, prov, time.perf_counter() - start)
