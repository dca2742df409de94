"""The attack schedule: attacks × hyperparameters × repeats, per norm (§4.2, supplement).

Two kinds of attack, both from Foolbox 3:

- **minimization** attacks return, per sample, the closest adversarial they find
  (Brendel & Bethge L0/L1/L2/L∞, Carlini-Wagner, DDN, EAD);
- **fixed-ε** attacks (PGD, Adam-PGD, sparse L1 descent) succeed or not within a budget ε;
  for them a per-sample geometric bisection over ε finds the smallest successful ε
  (``search_steps`` attack runs, each with every sample's own ε).

``paper`` is the supplement's grid (Schott et al. / Brendel et al. style: a range of
every attack's hyperparameters, five runs of each setting with a random element);
``quick`` is a small grid for CPUs, tests and demos. JSMA and SparseFool are not in
Foolbox 3; they are written in :mod:`ml.evaluate.sparse` on a base class with Foolbox's
interface.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Norm = Literal["l0", "l1", "l2", "linf"]
NORMS: tuple[Norm, ...] = ("linf", "l2", "l1", "l0")
NORM_LABELS: dict[str, str] = {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0"}
"""How a norm is written on figures and tables."""

BB_STEP_SIZES = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
PGD_STEP_SIZES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
PGD_ITERATIONS = (10, 30, 50, 100, 200)


@dataclass(frozen=True)
class AttackRun:
    """One attack with one setting of its hyperparameters (and one repeat).

    Attributes:
        attack: Foolbox class name, e.g. ``L2BrendelBethgeAttack``.
        norm: the norm the attack minimizes or bounds.
        params: constructor keyword arguments.
        search: fixed-ε attack, run inside a per-sample ε bisection.
        repeat: repeat index (attacks with random starts are repeated with new seeds).
        iterations: model gradient evaluations per sample it may spend (the x axis of
            the per-budget curves), where that does not depend on the input's size (see
            :meth:`budget`).
    """

    attack: str
    norm: Norm
    params: dict[str, Any] = field(default_factory=dict)
    search: bool = False
    repeat: int = 0
    iterations: int = 0

    @property
    def label(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.attack}({args})#{self.repeat}"

    def __post_init__(self) -> None:
        spec = ATTACKS.get(self.attack)
        if spec is None:
            raise ValueError(f"attack: unknown attack {self.attack!r}; known: {list(ATTACKS)}")
        if (self.norm, self.search) != (spec.norm, spec.search):
            raise ValueError(f"attack: {self.attack} is a{' fixed-ε' if spec.search else ''} "
                             f"{spec.norm} attack, not {self.norm} (search={self.search})")

    @property
    def spec(self) -> AttackSpec:
        return ATTACKS[self.attack]

    def build(self) -> Any:
        """The attack object, with this run's settings."""
        return self.spec.cls()(**self.params)

    def budget(self, dim: int) -> int:
        """Gradient evaluations per sample it may spend on inputs of ``dim`` values."""
        return self.spec.budget(self.params, dim) if self.spec.budget else self.iterations


@dataclass(frozen=True)
class AttackSpec:
    """An attack by name: everything the harness needs to know about it.

    Attributes:
        name: the schedule's name for it (Foolbox's class name where it is Foolbox's).
        norm: the norm it minimizes or bounds.
        cls: () → its class (imported when first built: Foolbox is slow to import).
        search: a fixed-ε attack, run inside the per-sample ε bisection; else it
            minimizes and returns its closest adversarial.
        starting_points: it starts from an adversarial of each sample (Brendel & Bethge).
        budget: (params, input size) → its gradient evaluations per sample, for an attack
            whose budget grows with the input (JSMA's pixel share); else the schedule's
            ``iterations``.
    """

    name: str
    norm: Norm
    cls: Callable[[], type]
    search: bool = False
    starting_points: bool = False
    budget: Callable[[dict[str, Any], int], int] | None = None


def _foolbox(name: str) -> Callable[[], type]:
    def cls() -> type:
        import foolbox as fb

        found: type = getattr(fb.attacks, name)  # a registered name, never a user's
        return found
    return cls


def _ours(name: str) -> Callable[[], type]:
    def cls() -> type:
        from ml.evaluate import sparse

        found: type = getattr(sparse, name)
        return found
    return cls


ATTACKS: dict[str, AttackSpec] = {a.name: a for a in (
    AttackSpec("L0BrendelBethgeAttack", "l0", _foolbox("L0BrendelBethgeAttack"),
               starting_points=True),
    AttackSpec("L1BrendelBethgeAttack", "l1", _foolbox("L1BrendelBethgeAttack"),
               starting_points=True),
    AttackSpec("L2BrendelBethgeAttack", "l2", _foolbox("L2BrendelBethgeAttack"),
               starting_points=True),
    AttackSpec("LinfinityBrendelBethgeAttack", "linf",
               _foolbox("LinfinityBrendelBethgeAttack"), starting_points=True),
    AttackSpec("L2CarliniWagnerAttack", "l2", _foolbox("L2CarliniWagnerAttack")),
    AttackSpec("DDNAttack", "l2", _foolbox("DDNAttack")),
    AttackSpec("EADAttack", "l1", _foolbox("EADAttack")),
    AttackSpec("LinfPGD", "linf", _foolbox("LinfPGD"), search=True),
    AttackSpec("LinfAdamPGD", "linf", _foolbox("LinfAdamPGD"), search=True),
    AttackSpec("SparseL1DescentAttack", "l1", lambda: _sparse_l1_per_sample(), search=True),
    AttackSpec("SparseFool", "l1", _ours("SparseFool")),
    AttackSpec("JSMA", "l0", _ours("JSMA"), budget=lambda p, dim: 2 * _jsma_steps(p, dim)),
)}
"""Every attack a schedule may name; a new attack is an entry here (and its class)."""


def _jsma_steps(params: dict[str, Any], dim: int) -> int:
    from ml.evaluate.sparse import jsma_steps

    return jsma_steps(params.get("max_fraction", 0.1), dim)  # two gradients per step


def _sparse_l1_per_sample() -> type:
    """Foolbox's SparseL1DescentAttack with an exact L1-ball projection (Duchi et al.
    2008) and one ε per sample, so the ε search can run every sample at its own budget.

    Foolbox 3.3.4's own projection takes a scalar ε only and indexes one element past
    the threshold, so its projections overshoot ε by a few percent; here a sample
    already inside its ball is left as it is and the others land on its surface.
    """
    import eagerpy as ep
    import foolbox as fb
    from foolbox.devutils import flatten

    class SparseL1PerSample(fb.attacks.SparseL1DescentAttack):  # type: ignore[misc]
        def project(self, x: Any, x0: Any, epsilon: Any) -> Any:
            delta = flatten(x - x0)
            n, d = delta.shape
            eps = ep.astensor(epsilon).reshape((-1,)) if not isinstance(
                epsilon, float | int) else ep.full(delta, (n,), float(epsilon))
            abs_delta = abs(delta)
            mu = -ep.sort(-abs_delta, axis=-1)  # sorted descending
            cumsums = mu.cumsum(axis=-1)
            js = ep.arange(x, 1, d + 1).astype(x.dtype)
            positive = (mu - (cumsums - eps[:, ep.newaxis]) / js) > 0  # a prefix per row
            rho = ep.maximum(positive.astype(x.dtype).sum(axis=-1), 1.0)  # how many
            at = (rho - 1).astype(ep.astensor(ep.arange(x, 0, 1)).dtype)
            theta = (cumsums[range(n), at] - eps) / rho
            theta = ep.where(abs_delta.sum(axis=-1) <= eps, 0.0, ep.maximum(theta, 0.0))
            delta = delta.sign() * ep.maximum(abs_delta - theta[:, ep.newaxis], 0)
            return x0 + delta.reshape(x.shape)

    return SparseL1PerSample


def _bb(norm: Norm, lrs: Sequence[float], steps: int, repeats: int) -> list[AttackRun]:
    name = {"l0": "L0BrendelBethgeAttack", "l1": "L1BrendelBethgeAttack",
            "l2": "L2BrendelBethgeAttack", "linf": "LinfinityBrendelBethgeAttack"}[norm]
    return [AttackRun(name, norm, {"lr": lr, "steps": steps}, repeat=r, iterations=steps)
            for r, lr in itertools.product(range(repeats), lrs)]


def _grid(attack: str, norm: Norm, grid: dict[str, Sequence[Any]], *, repeats: int = 1,
          search: bool = False, iterations: Callable[[dict[str, Any]], int] = lambda p: 0
          ) -> list[AttackRun]:
    """Every combination of ``grid``'s values, each ``repeats`` times."""
    keys = list(grid)
    return [AttackRun(attack, norm, dict(zip(keys, values, strict=True)), search=search,
                      repeat=r, iterations=iterations(dict(zip(keys, values, strict=True))))
            for r in range(repeats) for values in itertools.product(*grid.values())]


DEFAULT_REPEATS = {"paper": 5, "quick": 1}
"""Runs of each setting of an attack with a random element (the supplement's five)."""


def schedule(grid: Literal["paper", "quick"], norms: Sequence[str], *,
             repeats: int | None = None, search_steps: int | None = None) -> list[AttackRun]:
    """The attack runs for ``norms`` in the order they run (minimization attacks first:
    their results bound the ε searches).

    ``paper`` is the supplement's scheme: a range of every attack's hyperparameters and
    ``repeats`` (default 5) runs of each setting of every attack with a random element —
    the fixed-ε attacks' random starts, and Brendel & Bethge's starting point (repeat r
    starts from the r-th nearest correctly classified image of another class). C&W,
    DDN, EAD, JSMA and SparseFool are deterministic in their input: five runs would
    return the same adversarial five times, so each setting runs once.
    """
    unknown = sorted(set(norms) - set(NORMS))
    if unknown or not norms:
        raise ValueError(f"norms: {unknown or 'none'} given; choose from {list(NORMS)}")
    if grid not in ("paper", "quick"):
        raise ValueError(f"attacks: unknown grid {grid!r}; known: ['paper', 'quick']")
    paper = grid == "paper"
    reps = repeats or DEFAULT_REPEATS[grid]
    search = search_steps or (10 if paper else 6)
    steps = 1000 if paper else 100
    lrs = BB_STEP_SIZES if paper else (0.001, 0.01)
    bs = 9 if paper else 5  # C&W's and EAD's binary search over their constant
    runs: list[AttackRun] = []
    if "l2" in norms:
        runs += _bb("l2", lrs, steps, reps)
        runs += _grid("L2CarliniWagnerAttack", "l2", {
            "steps": [steps], "binary_search_steps": [bs],
            "stepsize": [1e-3, 1e-2, 1e-1] if paper else [1e-2],
            "initial_const": [1e-3, 1e-2] if paper else [1e-3]},
            iterations=lambda p: p["steps"] * p["binary_search_steps"])
        runs += _grid("DDNAttack", "l2", {
            "steps": [100, steps] if paper else [steps],
            "init_epsilon": [0.1, 1.0] if paper else [1.0]},
            iterations=lambda p: p["steps"])
    if "linf" in norms:
        runs += _bb("linf", lrs, steps, reps)
        runs += _grid("LinfPGD", "linf", {
            "abs_stepsize": PGD_STEP_SIZES if paper else [1e-3, 1e-2],
            "steps": PGD_ITERATIONS if paper else [10, 50]},
            repeats=reps, search=True, iterations=lambda p: p["steps"] * search)
        runs += _grid("LinfAdamPGD", "linf", {
            "abs_stepsize": [1e-4, 1e-3, 1e-2, 1e-1] if paper else [1e-2],
            "steps": [50, 200] if paper else [50]},
            repeats=reps, search=True, iterations=lambda p: p["steps"] * search)
    if "l1" in norms:
        runs += _bb("l1", lrs, steps, reps)
        runs += _grid("EADAttack", "l1", {
            "steps": [steps], "binary_search_steps": [bs],
            "initial_stepsize": [1e-3, 1e-2] if paper else [1e-2],
            "regularization": [1e-3, 1e-2] if paper else [1e-2]},
            iterations=lambda p: p["steps"] * p["binary_search_steps"])
        runs += _grid("SparseFool", "l1", {
            "steps": [20] if paper else [5], "lambda_": [1.0, 2.0, 3.0] if paper else [3.0]},
            iterations=lambda p: p["steps"] * 50)
        runs += _grid("SparseL1DescentAttack", "l1", {
            "steps": [10, 50] if paper else [10],
            "quantile": [0.95, 0.99] if paper else [0.99]},
            repeats=reps, search=True, iterations=lambda p: p["steps"] * search)
    if "l0" in norms:
        runs += _bb("l0", lrs, steps, reps)
        runs += _grid("JSMA", "l0", {  # budget from the input's size: AttackRun.budget
            "max_fraction": [0.05, 0.1, 0.2] if paper else [0.05],
            "theta": [0.5, 1.0] if paper else [1.0]})
    order = {False: 0, True: 1}
    return sorted(runs, key=lambda r: order[r.search])  # stable: grid order within each
