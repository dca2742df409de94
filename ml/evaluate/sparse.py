"""JSMA and SparseFool, the supplement's two sparse attacks that Foolbox 3 dropped.

Written here against the papers (no maintained PyPI implementation fits: ART's JSMA is
targeted-only with its own model wrapper, and nothing maintained ships SparseFool), in
batched PyTorch, on :class:`MinimizationAttack` — Foolbox 3's interface in small: the
final public ``run(fmodel, inputs, criterion)`` checks its inputs and returns one
candidate adversarial per sample within the model's bounds (the harness re-verifies every
one, so a failed sample simply comes back unchanged); a subclass implements ``_attack``.
The model is called through Foolbox's own public call (``fmodel(x)``, which applies its
preprocessing), never through its private module.

- :class:`JSMA` — Papernot et al. 2016, the Jacobian-based saliency map attack: each
  iteration changes the pixel pair whose saliency most raises the target class (the
  runner-up class at the start) and lowers the others, in either direction (θ = ±1), for
  at most ``max_fraction`` of the pixels.
- :class:`SparseFool` — Modas et al. 2019: DeepFool (Foolbox's L2DeepFoolAttack) finds a
  boundary point, which λ pushes past the boundary as its authors do (x_B = x₀ + λ(x_DF −
  x₀)); the boundary's normal w at x_B drives a box-constrained linear solver that
  changes as few coordinates as possible to reach the hyperplane through x_B; the result
  overshoots by 2 % (x ← x₀ + 1.02(x − x₀)) and the loop repeats from it until the label
  flips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, final

import torch

Model = Callable[[torch.Tensor], torch.Tensor]


class MinimizationAttack:
    """An attack that returns, per sample, the closest adversarial it finds.

    Settings are the keyword arguments of ``__init__`` (kept as attributes, shown by
    ``repr``); a subclass implements :meth:`_attack`.
    """

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()))
        return f"{type(self).__name__}({args})"

    @final
    def run(self, fmodel: Any, inputs: torch.Tensor, criterion: Any, **unused: Any
            ) -> torch.Tensor:
        """Candidate adversarials of ``inputs`` (N, …) for ``criterion``'s labels (a
        ``foolbox.criteria.Misclassification``), within ``fmodel.bounds``."""
        labels = getattr(getattr(criterion, "labels", None), "raw", None)
        if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
            raise TypeError(f"{type(self).__name__}: inputs must be a float tensor")
        if not isinstance(labels, torch.Tensor) or labels.shape != inputs.shape[:1]:
            raise ValueError(f"{type(self).__name__}: the criterion needs one label per input "
                             f"({len(inputs)})")
        lo, hi = fmodel.bounds
        if len(inputs) and (inputs.min() < lo or inputs.max() > hi):
            raise ValueError(f"{type(self).__name__}: inputs outside the model's bounds "
                             f"[{lo}, {hi}]")
        if not len(inputs):
            return inputs.clone()
        return self._attack(fmodel, inputs, labels).clamp(lo, hi).view_as(inputs)

    def _attack(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def jsma_steps(max_fraction: float, dim: int) -> int:
    """JSMA's iterations on inputs of ``dim`` values: each changes two pixels, at most
    ``max_fraction`` of them in all."""
    return max(1, int(max_fraction * dim / 2))


class JSMA(MinimizationAttack):
    """Untargeted JSMA toward each sample's runner-up class.

    Args:
        max_fraction: the largest share of pixels it may change (Papernot's γ).
        theta: how far a chosen pixel moves (1 = to the bound).
    """

    def __init__(self, *, max_fraction: float = 0.1, theta: float = 1.0,
                 chunk: int = 8) -> None:
        self.max_fraction, self.theta, self.chunk = max_fraction, theta, chunk

    def _attack(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._chunk(model, x[i:i + self.chunk], y[i:i + self.chunk])
                          for i in range(0, len(x), self.chunk)])

    def _chunk(self, model: Model, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, d = len(x0), x0[0].numel()
        with torch.no_grad():
            logits = model(x0)
            target = logits.scatter(1, y[:, None], float("-inf")).argmax(1)  # runner-up
        x = x0.clone().flatten(1)
        used = torch.zeros(b, d, dtype=torch.bool, device=x.device)
        active = torch.ones(b, dtype=torch.bool, device=x.device)
        eye = torch.eye(d, dtype=torch.bool, device=x.device)
        for _ in range(jsma_steps(self.max_fraction, d)):
            xi = x.detach().requires_grad_(True)
            z = model(xi.view_as(x0))
            pred = z.argmax(1)
            active &= pred == y
            if not active.any():
                break
            zt = z.gather(1, target[:, None]).sum()
            (a,) = torch.autograd.grad(zt, xi, retain_graph=True)  # ∂Z_t/∂x
            (s,) = torch.autograd.grad(z.sum(), xi)
            bo = s - a  # ∂Σ_{j≠t} Z_j/∂x
            best_score = torch.full((b,), float("-inf"), device=x.device)
            best = torch.zeros(b, 2, dtype=torch.long, device=x.device)
            best_dir = torch.ones(b, device=x.device)
            for sign in (1.0, -1.0):  # θ > 0 raises pixels, θ < 0 lowers them
                room = (x < 1) if sign > 0 else (x > 0)
                ok = room & ~used  # (b, d)
                alpha = (sign * a)[:, :, None] + (sign * a)[:, None, :]  # (b, d, d)
                beta = (sign * bo)[:, :, None] + (sign * bo)[:, None, :]
                score = -alpha * beta
                valid = (alpha > 0) & (beta < 0) & ok[:, :, None] & ok[:, None, :] & ~eye
                score = torch.where(valid, score, torch.tensor(float("-inf"), device=x.device))
                val, flat = score.flatten(1).max(1)
                better = val > best_score
                best_score = torch.where(better, val, best_score)
                pair = torch.stack([flat // d, flat % d], 1)
                best = torch.where(better[:, None], pair, best)
                best_dir = torch.where(better, torch.tensor(sign, device=x.device), best_dir)
            move = active & torch.isfinite(best_score)
            if not move.any():
                break
            rows = torch.nonzero(move).flatten()
            for col in (0, 1):
                p = best[rows, col]
                x[rows, p] = (x[rows, p] + best_dir[rows] * self.theta).clamp(0, 1)
                used[rows, p] = True
        return x.detach().view_as(x0)


class SparseFool(MinimizationAttack):
    """SparseFool with DeepFool boundary points and the box-constrained linear solver.

    Args:
        steps: outer iterations (DeepFool + linear solver) per sample.
        lambda_: where the boundary is linearised: x_B = x₀ + λ(x_DF − x₀), λ ≥ 1 (the
            authors': 1 to 3; larger is faster and less sparse).
        deepfool_steps: iterations of each DeepFool call.
        overshoot: how far past the hyperplane each linear solve is pushed.
    """

    def __init__(self, *, steps: int = 20, lambda_: float = 3.0, deepfool_steps: int = 50,
                 overshoot: float = 0.02) -> None:
        self.steps, self.lambda_, self.deepfool_steps = steps, lambda_, deepfool_steps
        self.overshoot = overshoot

    def _attack(self, fmodel: Any, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import foolbox as fb

        model: Model = fmodel
        deepfool = fb.attacks.L2DeepFoolAttack(steps=self.deepfool_steps, overshoot=0.02)
        x = x0.clone()
        for _ in range(self.steps):
            with torch.no_grad():
                active = model(x).argmax(1) == y
            if not active.any():
                break
            idx = torch.nonzero(active).flatten()
            xa, ya = x[idx], y[idx]
            x_df = deepfool.run(fmodel, xa, fb.criteria.Misclassification(ya))
            boundary = (x0[idx] + self.lambda_ * (x_df - x0[idx])).clamp(0, 1)
            w = self._normal(model, boundary, ya)
            new = self._linear_solver(xa, w, boundary)
            x[idx] = (x0[idx] + (1 + self.overshoot) * (new - x0[idx])).clamp(0, 1)
        return x

    @staticmethod
    def _normal(model: Model, xb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇(Z_k − Z_y) at the boundary point, k the class it crossed into."""
        xb = xb.detach().requires_grad_(True)
        z = model(xb)
        k = z.scatter(1, y[:, None], float("-inf")).argmax(1)
        diff = z.gather(1, k[:, None]) - z.gather(1, y[:, None])
        (g,) = torch.autograd.grad(diff.sum(), xb)
        return g

    @staticmethod
    def _linear_solver(x: torch.Tensor, w: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        """Move the fewest coordinates of x (largest |w| first, each as far as its box
        allows) until x reaches the hyperplane w·(x − x_B) = 0."""
        b = len(x)
        xf, wf = x.flatten(1).clone(), w.flatten(1)
        gap = ((xf - xb.flatten(1)) * wf).sum(1)  # > 0 on the original side… sign varies
        order = wf.abs().argsort(dim=1, descending=True)
        for col in range(xf.shape[1]):
            todo = gap.abs() > 1e-12
            if not todo.any():
                break
            j = order[:, col]
            wj = wf[torch.arange(b), j]
            xj = xf[torch.arange(b), j]
            step = torch.where(wj != 0, -gap / torch.where(wj != 0, wj, torch.ones_like(wj)),
                               torch.zeros_like(wj))
            target = (xj + step).clamp(0, 1)
            moved = torch.where(todo, target, xj)
            gap = gap + (moved - xj) * wj
            xf[torch.arange(b), j] = moved
        return xf.view_as(x)
