"""Step time of regularized vs plain training at the same classification batch, and the
distinct stimulus pairs each step sees, measured side by side in one run.

The paper's neural pathway passes as many images as the classification batch, as
disjoint pairs (64 images → 32 pairs), and roughly doubles the step cost. All-pairs mode
takes M stimuli and scores all M(M−1)/2 pairs from the same single forward pass. The
cheaper pathways (:mod:`ml.train.joint`, deviations from the paper; their effect on
r(S_CNN, S_target) and accuracy: ``bench/pathway_effects.py``):

- ``sim_every = k``: the pathway every k-th step with k·M stimuli (and k·α): a step costs
  on average (pathway step + (k − 1) plain steps) / k, and sees kM(kM − 1)/2 / k pairs.
- ``gamma_prune = τ``: the stimulus forward stops after the deepest tap whose γ ≥ τ. Its
  rows start γ collapsed (logits 6 on one tap, 0 elsewhere: γ 0.99 there) on layer 5,
  where the paper's γ went (its Tab. 1), or on layer 9 or 13 (where ours goes); in a run
  from uniform γ it saves only once γ has collapsed, and nothing while the deepest tap's
  γ stays above τ.

Each row is a training built as ``train_model`` builds it (``_build``), stepped by its
``_train_step``; the rows take turns, ``--repeats`` rounds. In a round a row runs one
cycle (k steps from a pathway step with ``sim_every = k``, else 2 steps) and the plain
training the same number of steps right after it, so each ratio compares steps taken
under the same load; the table holds the medians over rounds of s/step and of the ratio.
The goal of issue 22: a regularized step ≤ 1.5× a plain one while seeing ≥ 4× the
paper's pairs per step. ``--profile`` times the pieces of one step instead (forward and
backward of each pathway, the γ head with the pairs and Eq. 8). Ends with one JSON
line.

    .venv/bin/python bench/train_overhead.py [--width 16] [--repeats 10] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ml.regularize.similarity as similarity  # noqa: E402
import ml.train.joint as joint  # noqa: E402
from ml.neural.estimators import unit_vectors  # noqa: E402
from ml.neural.stimuli import natural_patches  # noqa: E402
from ml.neural.target import SimilarityTarget  # noqa: E402
from ml.runtime import pick_device  # noqa: E402
from ml.train.joint import (  # noqa: E402
    TrainConfig,
    _build,
    _train_step,
    _Training,
    stimuli_drawn,
)

GOAL_RATIO, GOAL_PAIRS = 1.5, 4.0
SKIP = 3  # the first steps warm up allocators and caches


def rows_first(features: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Eq. 9 as computed before the Gram form (rows normalized, then E Eᵀ): the exact
    change's "before"."""
    e = features - mean
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return e @ e.T


@contextlib.contextmanager
def _patched(logits: list[float] | None, before: bool) -> Iterator[None]:
    """γ heads that start at ``logits`` (a collapsed γ), and/or the head's old Eq. 9."""
    init, cosine = similarity.SimilarityHead.__init__, similarity.centred_cosine

    def start_collapsed(self: similarity.SimilarityHead, n_taps: int, **kw: Any) -> None:
        init(self, n_taps, **kw)
        with torch.no_grad():
            self.logits.copy_(torch.tensor(logits))

    if logits is not None:
        similarity.SimilarityHead.__init__ = start_collapsed  # type: ignore[method-assign]
    if before:
        similarity.centred_cosine = rows_first
    try:
        yield
    finally:
        similarity.SimilarityHead.__init__ = init  # type: ignore[method-assign]
        similarity.centred_cosine = cosine


def _trainings(rows: list[Row], args: argparse.Namespace, target: SimilarityTarget
               ) -> dict[str, _Training]:
    """One training per row, built as train_model builds it, γ started where the row says
    (the dataset loaded once for all)."""
    out = {}
    load = functools.cache(joint.load_dataset)
    joint.load_dataset = load  # type: ignore[assignment]
    for name, _, fields, logits, _ in rows:
        fields = {"target": "neural-model", "pairs": "all", **fields}
        cfg = TrainConfig(backbone=args.backbone, width=args.width, batch_size=args.batch,
                          device=args.device, deterministic=False, **fields)
        t = _build(cfg, target if cfg.target != "none" else None, pick_device(args.device),
                   None)
        if logits is not None:
            with torch.no_grad():
                t.head.logits.copy_(torch.tensor(logits))
        out[name] = t
    joint.load_dataset = load.__wrapped__  # type: ignore[attr-defined]
    return out


def _cycle(t: _Training, steps: int, before: bool) -> float:
    """Seconds for ``steps`` training steps of ``t`` (from a pathway step on)."""
    n = len(t.x_train)
    idx = [torch.randint(n, (t.config.batch_size,), generator=t.gen).to(t.device)
           for _ in range(steps)]
    while t.step % t.config.sim_every:  # start the cycle at a pathway step
        t.step += 1
    _sync()
    start = time.perf_counter()
    with _patched(None, before):
        for i in idx:
            _train_step(t, i, 0.01)
            t.step += 1
    _sync()
    return time.perf_counter() - start


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _pairs(cfg: TrainConfig) -> float:
    """Distinct stimulus pairs per step, on average."""
    if cfg.target == "none":
        return 0.0
    n = stimuli_drawn(cfg)
    per_pathway_step = n // 2 if cfg.pairs == "paper" else n * (n - 1) // 2
    return per_pathway_step / cfg.sim_every


def _target(n: int) -> SimilarityTarget:
    images = natural_patches(n, seed=0)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (3, 4))
    f = quad.flatten(1).numpy()
    return SimilarityTarget("neural-model", unit_vectors(f - f.mean(0)), np.arange(n), images)


def _collapsed(on_tap: int, n_taps: int = 5) -> list[float]:
    return [6.0 if k == on_tap else 0.0 for k in range(n_taps)]


Row = tuple[str, str, dict[str, Any], list[float] | None, bool]
ROWS: list[Row] = [
    # name, what it is, TrainConfig fields, γ logits to start from, the old Eq. 9
    ("plain", "plain (target: none)", {"target": "none"}, None, False),
    ("paper_pairs", "pairs: paper, 64 stimuli", {"pairs": "paper", "stimuli_per_step": 64},
     None, False),
    ("all_m64", "all pairs, M = 64", {"stimuli_per_step": 64}, None, False),
    ("all_m32", "all pairs, M = 32 (default)", {"stimuli_per_step": 32}, None, False),
    ("all_m32_before", "M = 32, Eq. 9 rows first (before)", {"stimuli_per_step": 32},
     None, True),
    ("all_m16", "all pairs, M = 16", {"stimuli_per_step": 16}, None, False),
    ("every4_m8", "sim_every 4, 32 stimuli", {"sim_every": 4, "stimuli_per_step": 8},
     None, False),
    ("every4_m9", "sim_every 4, 36 stimuli", {"sim_every": 4, "stimuli_per_step": 9},
     None, False),
    ("every8_m8", "sim_every 8, 64 stimuli", {"sim_every": 8, "stimuli_per_step": 8},
     None, False),
    ("every16_m8", "sim_every 16, 128 stimuli", {"sim_every": 16, "stimuli_per_step": 8},
     None, False),
    ("prune_l5_m32", "gamma_prune .05, γ on layer 5, M = 32",
     {"gamma_prune": 0.05, "stimuli_per_step": 32}, _collapsed(1), False),
    ("prune_l5_m24", "gamma_prune .05, γ on layer 5, M = 24",
     {"gamma_prune": 0.05, "stimuli_per_step": 24}, _collapsed(1), False),
    ("prune_l9_m32", "gamma_prune .05, γ on layer 9, M = 32",
     {"gamma_prune": 0.05, "stimuli_per_step": 32}, _collapsed(2), False),
    ("prune_l13_m32", "gamma_prune .05, γ on layer 13, M = 32",
     {"gamma_prune": 0.05, "stimuli_per_step": 32}, _collapsed(3), False),
    ("every4_m8_prune_l5", "sim_every 4 (32) + prune, layer 5",
     {"sim_every": 4, "stimuli_per_step": 8, "gamma_prune": 0.05}, _collapsed(1), False),
]


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """The pieces of one step, each timed in turn, ``--repeats`` rounds, medians."""
    import torch.nn.functional as F

    from ml.models import build_backbone
    from ml.regularize import SimilarityHead, all_pairs, similarity_loss
    from ml.train.pathway import StimulusPathway

    torch.manual_seed(0)
    model = build_backbone(args.backbone, num_classes=10, width=args.width)
    head = SimilarityHead(len(model.feature_info))
    pathway = StimulusPathway(model, "separate")
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=1e-3, momentum=0.9)
    x, y = torch.randn(args.batch, 1, 32, 32), torch.randint(0, 10, (args.batch,))
    ms = [int(v) for v in args.all_pairs_m.split(",") if v]
    stimuli = torch.rand(max(ms), 1, 36, 64)
    factor = torch.nn.functional.normalize(torch.randn(max(ms), 12), dim=1)

    def plain() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def stimulus_maps(m: int, taps: list[int] | None = None) -> list[torch.Tensor]:
        with pathway():
            return model.forward_intermediates(stimuli[:m], taps, intermediates_only=True,
                                               stop_early=True)

    def regularized(m: int) -> None:
        loss = F.cross_entropy(model(x), y)
        s = head(stimulus_maps(m))
        f = factor[:m]
        t = (f @ f.T).clamp(-1, 1)
        i, j = all_pairs(m)
        loss = loss + 20 * similarity_loss(s[i, j], t[i, j])
        opt.zero_grad()
        loss.backward()
        opt.step()

    def pathway_alone(m: int, taps: list[int] | None = None) -> None:  # no head
        sum(mp.mean() for mp in stimulus_maps(m, taps)).backward()  # type: ignore[union-attr]

    cached: dict[int, list[torch.Tensor]] = {}

    def head_alone(m: int, before: bool) -> None:  # forward + backward of Eq. 9–10 and 8
        if m not in cached:
            with torch.no_grad():
                cached[m] = [mp.detach().requires_grad_() for mp in stimulus_maps(m)]
        with _patched(None, before):
            s = head(cached[m])
        i, j = all_pairs(m)
        similarity_loss(s[i, j], torch.zeros_like(s[i, j])).backward()

    pieces: dict[str, Callable[[], Any]] = {"plain step": plain}
    for m in ms:
        pieces[f"M={m} regularized step"] = lambda m=m: regularized(m)
        pieces[f"M={m} stimulus fwd+bwd"] = lambda m=m: pathway_alone(m)
        pieces[f"M={m} head fwd+bwd"] = lambda m=m: head_alone(m, False)
        pieces[f"M={m} head fwd+bwd, rows first"] = lambda m=m: head_alone(m, True)
        for deepest, layer in ((1, 5), (2, 9)):  # what gamma_prune runs of the pathway
            pieces[f"M={m} stimulus fwd+bwd to layer {layer}"] = (
                lambda m=m, d=deepest: pathway_alone(m, list(range(d + 1))))
    times: dict[str, list[float]] = {k: [] for k in pieces}
    for _ in range(args.repeats):
        for name, fn in pieces.items():
            times[name].append(_median_time(fn, 3))
    base = statistics.median(times["plain step"])
    out: dict[str, Any] = {"bench": "train_overhead_profile", "backbone": args.backbone,
                           "width": args.width, "batch": args.batch}
    print(f"{'piece':<34} {'ms':>8} {'vs plain step':>14}")
    for name, v in times.items():
        t = statistics.median(v)
        print(f"{name:<34} {t * 1e3:>8.1f} {t / base:>13.2f}x")
        out[name.replace(" ", "_").replace(",", "").replace("=", "")] = round(t, 5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--stimuli", type=int, default=1000)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=10, help="rounds over every row")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    ap.add_argument("--rows", default="", help="comma-separated row names (default all)")
    ap.add_argument("--profile", action="store_true", help="time the pieces of a step")
    ap.add_argument("--all-pairs-m", default="64,32,16",
                    help="stimuli per step for the profile")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        print(json.dumps(profile(args)))
        return

    target = _target(args.stimuli)
    b = args.batch
    picked = set(args.rows.split(",")) if args.rows else None
    rows = [r for r in ROWS if picked is None or r[0] in picked or r[0] == "plain"]
    runs = _trainings(rows, args, target)
    plain = runs["plain"]
    for name, _, _, _, before in rows:  # warm-up: allocators, caches, the first γ
        _cycle(runs[name], max(SKIP, runs[name].config.sim_every), before)
    times: dict[str, list[float]] = {r[0]: [] for r in rows}
    ratios: dict[str, list[float]] = {r[0]: [] for r in rows}
    taps: dict[str, float | None] = {}
    for _ in range(args.repeats):
        for name, _, _, _, before in rows:
            t = runs[name]
            steps = t.config.sim_every if t.config.sim_every > 1 else 2
            row = _cycle(t, steps, before) / steps
            base = _cycle(plain, steps, False) / steps  # the plain step right beside it
            times[name].append(row)
            ratios[name].append(row / base)
            taps[name] = float(t.sim_taps) if t.config.gamma_prune is not None else None

    paper = b // 2
    out: dict[str, Any] = {"bench": "train_overhead", "backbone": args.backbone,
                           "width": args.width, "batch": b, "repeats": args.repeats,
                           "threads": torch.get_num_threads(), "device": str(args.device)}
    met = []
    print(f"{'row':<20} {'what':<38} {'s/step':>7} {'vs plain':>9} {'pairs/step':>10} "
          f"{'× paper':>8} {'taps':>5}")
    for name, what, _, _, _ in rows:
        t, ratio = statistics.median(times[name]), statistics.median(ratios[name])
        pairs = _pairs(runs[name].config)
        vs_paper = pairs / paper
        tap = taps[name]
        print(f"{name:<20} {what:<38} {t:>7.4f} {ratio:>8.2f}x {pairs:>10.1f} "
              f"{vs_paper:>7.1f}x {'' if tap is None else f'{tap:.1f}':>5}")
        out.update({f"{name}_s": round(t, 5), f"{name}_ratio": round(ratio, 3),
                    f"{name}_ratios": [round(r, 3) for r in ratios[name]],
                    f"{name}_pairs": pairs})
        if name != "plain" and ratio <= GOAL_RATIO and vs_paper >= GOAL_PAIRS:
            met.append(name)
    print(f"goal (≤ {GOAL_RATIO}× plain at ≥ {GOAL_PAIRS:g}× the paper's pairs): "
          + (f"met by {', '.join(met)}" if met else "not met"))
    out.update({"goal_met": bool(met), "goal_rows": met})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
