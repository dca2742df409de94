"""Joint training with the neural similarity regularizer (paper section 3, Eq. 7).

Each step takes a classification batch and, beside it, M stimuli of the target set:
L = L_task + α · L_similarity, with L_similarity (Eq. 8) over the stimulus pairs — all
M(M−1)/2 of them (``pairs="all"``, one forward pass of M images) or M/2 disjoint pairs as
in the paper (``pairs="paper"``). S_CNN mixes the tapped layers by γ (Eq. 9, 10).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Le, Lt

from ml._validate import validate_config
from ml.data import load_dataset
from ml.models import build_backbone, resolve_taps
from ml.neural.target import SimilarityTarget
from ml.recorder import Cancelled, Recorder
from ml.regularize import SimilarityHead, all_pairs, paper_pairs, similarity_loss
from ml.regularize.targets import check_target, random_target
from ml.runtime import deterministic_mode, environment_info, pick_device
from ml.train.classifier import checkpoint_bytes, evaluate


@dataclass(frozen=True, kw_only=True)
class RegularizedConfig:
    """A regularized run; defaults follow §4.1 where the paper states them.

    SGD momentum 0.9 and weight decay 5e-4 are not stated in the paper; they are the
    usual CIFAR ResNet values.
    """

    dataset: Literal["digits32"] = "digits32"
    backbone: Literal["small_cnn", "resnet18", "resnet34"] = "resnet18"
    width: Annotated[int, Ge(4), Le(512)] = 64
    taps: tuple[int, ...] | None = None  # indices into feature_info; None = every tap
    target: Literal["none", "neural-model", "neural-data", "shuffle", "random"] = "none"
    alpha: Annotated[float, Ge(0.0), Le(1e4)] = 20.0
    pairs: Literal["all", "paper"] = "all"
    stimuli_per_step: Annotated[int, Ge(2), Le(4096)] = 64
    centering: Literal["batch", "running"] = "running"
    heldout_fraction: Annotated[float, Gt(0.0), Lt(1.0)] = 0.1
    epochs: Annotated[int, Ge(1), Le(1000)] = 40
    batch_size: Annotated[int, Ge(1), Le(4096)] = 64
    lr: Annotated[float, Gt(0), Le(10)] = 0.1
    lr_decay: Annotated[float, Gt(0), Le(1)] = 0.3
    decay_every: Annotated[int, Ge(1)] = 4
    reset_every: Annotated[int, Ge(1)] = 20
    momentum: Annotated[float, Ge(0), Lt(1)] = 0.9
    weight_decay: Annotated[float, Ge(0), Le(1)] = 5e-4
    seed: Annotated[int, Ge(0)] = 0
    deterministic: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.taps, list):  # stored configs come back from JSON as lists
            object.__setattr__(self, "taps", tuple(self.taps))
        validate_config(self)
        check_target(self.target)


def paper_lr(epoch: int, config: RegularizedConfig) -> float:
    """lr × decay^(k) with k = (epoch mod reset_every) // decay_every: ×0.3 every 4
    epochs, back to the start after epoch 20 (§4.1)."""
    return config.lr * config.lr_decay ** ((epoch % config.reset_every) // config.decay_every)


@dataclass(frozen=True)
class JointResult:
    steps: int
    test_accuracy: float
    r_similarity: float
    gamma: list[float]
    seconds: float


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    k = max(2, int(round(n * fraction)))
    return np.sort(order[k:]), np.sort(order[:k])


@torch.no_grad()
def _heldout_r(model: torch.nn.Module, head: SimilarityHead, taps: list[int] | None,
               stimuli: torch.Tensor, target: np.ndarray) -> float:
    """r(S_CNN, S_target) over every pair of the held-out stimuli."""
    was = model.training
    model.eval()
    head.eval()
    s = head(model.forward_intermediates(stimuli, taps, intermediates_only=True))
    model.train(was)
    head.train(was)
    i, j = np.triu_indices(len(target), 1)
    a, b = s.cpu().numpy()[i, j], target[i, j]
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def train_regularized(config: RegularizedConfig, recorder: Recorder,
                      target: SimilarityTarget | None = None) -> JointResult:
    """Train ``config.backbone`` on ``config.dataset`` with L = L_task + α·L_sim (Eq. 7).

    Args:
        config: the run.
        recorder: per step ``task_loss``, ``sim_loss``, ``loss``, ``acc``, ``lr`` and
            ``gamma/<k>``; per epoch ``test_acc`` and ``sim_r`` (r(S_CNN, S_target) on
            held-out stimuli).
        target: the similarity run's target (its stimuli and S); required unless
            ``config.target == "none"``; ``random`` builds its matrix over these stimuli.

    Raises:
        ValueError: a target is named but none was given.
        Cancelled, FloatingPointError: as for plain training.
    """
    if config.target != "none" and target is None:
        raise ValueError(f"target: {config.target!r} needs the target of a similarity run")
    if config.target == "random" and target is not None:
        target = random_target(target, seed=config.seed)
    start = time.perf_counter()
    device = pick_device(config.device)
    with deterministic_mode(config.deterministic, config.seed):
        data = load_dataset(config.dataset, seed=config.seed)
        model = build_backbone(config.backbone, num_classes=data.num_classes,
                               width=config.width).to(device)
        n_taps = len(model.feature_info)
        taps = None if config.taps is None else resolve_taps(config.taps, n_taps)
        head = SimilarityHead(len(taps) if taps else n_taps,
                              centering=config.centering).to(device)
        opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=config.lr,
                              momentum=config.momentum, weight_decay=config.weight_decay)
        x_train, y_train = data.train_images.to(device), data.train_labels.to(device)
        x_test, y_test = data.test_images.to(device), data.test_labels.to(device)
        use_sim = target is not None and config.alpha > 0
        if target is not None:
            train_idx, held_idx = _split(len(target), config.heldout_fraction, config.seed)
            stimuli = torch.from_numpy(np.asarray(target.images, np.float32)).to(device)
            held_s = target.block(held_idx)
        gen = torch.Generator().manual_seed(config.seed)
        n, step = len(x_train), 0
        total = math.ceil(n / config.batch_size) * config.epochs
        test_acc = sim_r = float("nan")
        pair_fn = all_pairs if config.pairs == "all" else paper_pairs
        for epoch in range(config.epochs):
            for group in opt.param_groups:
                group["lr"] = paper_lr(epoch, config)
            order = torch.randperm(n, generator=gen).to(device)
            for b in range(0, n, config.batch_size):
                if recorder.should_stop():
                    raise Cancelled(f"stopped at step {step}")
                idx = order[b:b + config.batch_size]
                logits = model(x_train[idx])  # (B, classes)
                task = F.cross_entropy(logits, y_train[idx])
                metrics = {"task_loss": task.item()}
                loss = task
                if target is not None:
                    pick = np.sort(train_idx[torch.randperm(
                        len(train_idx), generator=gen)[:config.stimuli_per_step].numpy()])
                    maps = model.forward_intermediates(stimuli[pick], taps,
                                                       intermediates_only=True)
                    s_cnn = head(maps)  # (M, M) Eq. 10
                    i, j = pair_fn(len(pick), device=device)
                    s_tgt = torch.from_numpy(target.block(pick)).to(device)
                    sim = similarity_loss(s_cnn[i, j], s_tgt[i, j])  # Eq. 8
                    metrics["sim_loss"] = sim.item()
                    if use_sim:
                        loss = task + config.alpha * sim  # Eq. 7
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                metrics.update(loss=loss.item(), lr=opt.param_groups[0]["lr"],
                               acc=(logits.argmax(1) == y_train[idx]).float().mean().item())
                metrics.update({f"gamma/{k}": g for k, g in enumerate(head.gamma.tolist())})
                recorder.log_metrics(metrics, step)
                step += 1
                recorder.progress(step / total, f"epoch {epoch + 1}/{config.epochs}")
            test_acc, test_loss = evaluate(model, x_test, y_test, 512)
            epoch_metrics = {"test_acc": test_acc, "test_loss": test_loss}
            if target is not None:
                sim_r = _heldout_r(model, head, taps, stimuli[held_idx], held_s)
                epoch_metrics["sim_r"] = sim_r
            recorder.log_metrics(epoch_metrics, step - 1)
        recorder.save_artifact("model.pt", checkpoint_bytes(
            model, config, step=step, head=head.state_dict(),
            environment=environment_info(device)), "application/octet-stream")
    return JointResult(step, test_acc, sim_r, head.gamma.tolist(), time.perf_counter() - start)
