"""Training with the neural similarity regularizer (paper section 3 and §4.1, Eq. 7–10).

Each step takes a classification batch and, beside it, M stimuli of the target set:
L = L_task + α · L_similarity, with L_similarity (Eq. 8) over the stimulus pairs — all
M(M−1)/2 of them (``pairs="all"``, one forward pass of M images) or M/2 disjoint pairs as
in the paper (``pairs="paper"``). S_CNN mixes the tapped layers by γ (Eq. 9, 10).
``target="none"`` (or α = 0 with no target) is plain cross-entropy training: the
baseline every condition is compared with. ``stimulus_norm`` says how the stimulus pass
uses the BatchNorm statistics (:mod:`ml.train.pathway`); stimuli are drawn by a generator
of their own, so outside ``shared`` a target with α = 0 trains exactly the None model.

Two ways to make the stimulus pathway cheaper, both off by default and both deviations
from the paper (``bench/train_overhead.py`` times them, ``bench/pathway_effects.py``
measures what they change): ``sim_every = k`` runs it on every k-th step only (steps 0,
k, 2k, …), with k·M stimuli and k·α as the weight of L_sim on that step, so the pixels
through the pathway and the regularizer's summed gradient per k steps stay those of M
stimuli at α every step, while all-pairs sees about k times the pairs; ``gamma_prune = τ``
stops the stimulus forward after the deepest tap whose γ is at least τ, S_CNN then mixing
the taps it reached with γ renormalized over them (:meth:`SimilarityHead.mix`).

Checkpoints: ``checkpoint.pt`` (weights, γ head, optimizer, sampler state, config) every
``checkpoint_every`` epochs, and at the step where a recorder stops it to hand the run
back (``stop_resumes``: a worker shutting down at a SLURM job's end or preemption); a
run started again with the same recorder resumes from it — mid-epoch too, drawing that
epoch's batch order again — and re-sends only steps after it, which a recorder keeps
once. ``model.pt`` at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Le, Lt

from ml._validate import validate_config
from ml.artifacts import CHECKPOINT, MODEL
from ml.data import load_dataset
from ml.models import TappedBackbone, build_backbone, resolve_taps
from ml.neural.target import SimilarityTarget
from ml.recorder import Cancelled, Recorder, flush
from ml.regularize import SimilarityHead, all_pairs, kept_taps, paper_pairs, similarity_loss
from ml.regularize.targets import REGISTRY, TargetName, check_target, resolve_target
from ml.runtime import deterministic_mode, environment_info, pick_device
from ml.train.classifier import checkpoint_bytes, evaluate
from ml.train.pathway import StimulusNorm, StimulusPathway

_SYNC_EVERY = 25  # steps whose metrics are fetched from the device in one transfer

log = logging.getLogger(__name__)
"""A line per epoch (loss, accuracies, r, time) and at the start and end: the worker
sends this logger's records to the run's log."""


@dataclass(frozen=True, kw_only=True)
class FeatureSource:
    """Where the ``cnn-features`` target's network comes from (one of the two).

    Attributes:
        weights: a file under the server's models directory: a torchvision VGG19 state
            dict or a neuroreg ``model.pt``.
        run: a neuroreg ``train`` run whose ``model.pt`` to use.
        layer: ``conv3_1`` (the paper's VGG19 layer), any ``conv<b>_<c>``/``relu<b>_<c>``,
            or a tap index such as ``"1"`` for a neuroreg network.
    """

    weights: str | None = None
    run: Annotated[int, Ge(1)] | None = None
    layer: str = "conv3_1"

    def __post_init__(self) -> None:
        validate_config(self)
        if self.weights is not None and self.run is not None:
            raise ValueError("features: give weights or run, not both")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A training run; defaults follow §4.1 where the paper states them.

    SGD momentum 0.9 and weight decay 5e-4 are not stated in the paper; they are the
    usual CIFAR ResNet values (the γ logits are not decayed). ``target_run`` names the
    ``similarity`` run whose target (and stimuli) the service loads; ``features`` says
    which network ``cnn-features`` uses. ``precision`` ``auto`` is bfloat16 autocast on
    CUDA (fp32 on CPU); ``channels_last`` unset means on for CUDA. ``stimuli_per_step``
    unset is the batch size for ``pairs="paper"`` (the paper passes as many images
    through each pathway) and 32 for ``pairs="all"`` (496 pairs; see
    ``bench/train_overhead.py``). ``stimulus_norm`` (``shared``, ``frozen``,
    ``separate``; :mod:`ml.train.pathway`) is how the stimulus pass uses BatchNorm
    statistics; the default is chosen by ``bench/reproduce.py`` (see the README).
    ``sim_every`` and ``gamma_prune`` trade the paper's every-step, every-tap L_sim for a
    cheaper step, deviations whose cost and effect the README measures; their defaults
    (1, unset) are the paper's, and a stored config without them means those.

    Attributes:
        dataset: what it learns: ``digits32`` (offline, small), ``leaves32`` or
            ``photodigits32`` (offline, full-band candidates) or grayscale CIFAR
            (``neuroreg datasets download``).
        backbone: the network; the paper's is ``resnet18``; ``small_cnn`` for quick CPU runs.
        width: channels of the first stage (the paper's ResNet18: 64; 8–16 on a CPU).
        taps: which layers S_CNN mixes (indices into the backbone's taps); empty: every tap.
        target: what S_CNN is pulled toward (Eq. 7): ``none`` is the plain baseline;
            ``neural-model`` the paper's Neural (model).
        target_run: the succeeded similarity run whose target and stimuli it reads.
        features: the network ``cnn-features`` computes its target with.
        alpha: α of Eq. 7, the weight of the similarity loss (the paper's 20).
        pairs: stimulus pairs per step: ``all`` pairs of the drawn stimuli, or ``paper``'s
            disjoint pairs.
        stimuli_per_step: stimuli drawn per step (empty: 32 for ``all``, the batch size for
            ``paper``).
        sim_every: the stimulus pathway runs every this many steps, with this many times
            the stimuli and α (1: every step, as in the paper).
        gamma_prune: stop the stimulus pass after the deepest tap whose γ is at least
            this (empty: every tap, as in the paper).
        centering: how S_CNN centres features: by a ``running`` mean or the ``batch`` mean.
        stimulus_norm: how the stimulus pass uses BatchNorm (``separate`` statistics,
            ``shared`` with the task, or ``frozen``).
        heldout_fraction: share of the stimuli kept out of training, for ``sim_r``.
        epochs: passes over the training set (the paper's 40).
        batch_size: images per step (the paper's 64).
        lr: learning rate at the start and after every reset (the paper's 0.1).
        lr_decay: factor applied every ``decay_every`` epochs (the paper's 0.3).
        decay_every: epochs between decays (the paper's 4).
        reset_every: epochs after which the rate goes back to ``lr`` (the paper's 20).
        momentum: SGD momentum (not stated in the paper; the usual 0.9).
        weight_decay: L2 weight decay (not stated in the paper; the usual 5e-4).
        checkpoint_every: epochs between checkpoints a resumed run starts from.
        seed: initial weights, batch order and stimulus draws.
        deterministic: deterministic kernels (slower on a GPU; same result every time).
        device: ``auto`` takes CUDA when the worker has it.
        precision: ``auto`` is bfloat16 autocast on CUDA, fp32 on a CPU.
        channels_last: memory layout (empty: on for CUDA).
    """

    dataset: Literal["digits32", "leaves32", "photodigits32", "cifar10",
                     "cifar100"] = "digits32"
    backbone: Literal["small_cnn", "resnet18", "resnet34"] = "resnet18"
    width: Annotated[int, Ge(4), Le(512)] = 64
    taps: tuple[int, ...] | None = None  # indices into feature_info; None = every tap
    target: TargetName = "none"
    target_run: Annotated[int, Ge(1)] | None = None
    features: FeatureSource | None = None
    alpha: Annotated[float, Ge(0.0), Le(1e4)] = 20.0
    pairs: Literal["all", "paper"] = "all"
    stimuli_per_step: Annotated[int, Ge(2), Le(4096)] | None = None
    sim_every: Annotated[int, Ge(1), Le(100)] = 1
    gamma_prune: Annotated[float, Gt(0.0), Lt(1.0)] | None = None
    centering: Literal["batch", "running"] = "running"
    stimulus_norm: StimulusNorm = "separate"
    heldout_fraction: Annotated[float, Gt(0.0), Lt(1.0)] = 0.1
    epochs: Annotated[int, Ge(1), Le(1000)] = 40
    batch_size: Annotated[int, Ge(1), Le(4096)] = 64
    lr: Annotated[float, Gt(0), Le(10)] = 0.1
    lr_decay: Annotated[float, Gt(0), Le(1)] = 0.3
    decay_every: Annotated[int, Ge(1)] = 4
    reset_every: Annotated[int, Ge(1)] = 20
    momentum: Annotated[float, Ge(0), Lt(1)] = 0.9
    weight_decay: Annotated[float, Ge(0), Le(1)] = 5e-4
    checkpoint_every: Annotated[int, Ge(1)] = 1
    seed: Annotated[int, Ge(0)] = 0
    deterministic: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.taps, list):  # stored configs come back from JSON as lists
            object.__setattr__(self, "taps", tuple(self.taps))
        if isinstance(self.features, dict):
            object.__setattr__(self, "features", FeatureSource(**self.features))
        validate_config(self)
        check_target(self.target)
        if self.features is not None and not REGISTRY[self.target].needs_network:
            raise ValueError(f"features: only used by target 'cnn-features', not "
                             f"{self.target!r}")

    @property
    def learns_gamma(self) -> bool:
        """Whether the run has layer weights γ (Eq. 10): only a regularized run (a target
        and α > 0) trains them; None's (or α = 0's) would stay uniform and mean nothing."""
        return learns_gamma(self.target, self.alpha)


def learns_gamma(target: str, alpha: float) -> bool:
    """:attr:`TrainConfig.learns_gamma` for a stored config's target and α."""
    return target != "none" and alpha > 0


def stimuli_per_step(config: TrainConfig) -> int:
    """M, the stimuli in each step's neural pathway (see :class:`TrainConfig`); with
    ``sim_every = k``, per step on average (a pathway step draws k·M)."""
    if config.stimuli_per_step is not None:
        return config.stimuli_per_step
    return config.batch_size if config.pairs == "paper" else 32


def pathway_step(config: TrainConfig, step: int) -> bool:
    """Whether step ``step`` (0-based) runs the stimulus pathway: every ``sim_every``-th
    step, from the first."""
    return step % config.sim_every == 0


def stimuli_drawn(config: TrainConfig) -> int:
    """The stimuli a pathway step draws: ``sim_every`` × M (all the training stimuli
    when there are fewer)."""
    return config.sim_every * stimuli_per_step(config)


def paper_lr(epoch: int, config: TrainConfig) -> float:
    """lr × decay^(k) with k = (epoch mod reset_every) // decay_every: ×0.3 every 4
    epochs, back to the start after epoch 20 (§4.1)."""
    return config.lr * config.lr_decay ** ((epoch % config.reset_every) // config.decay_every)


@dataclass(frozen=True)
class TrainResult:
    steps: int
    test_accuracy: float
    test_loss: float
    r_similarity: float | None  # None without a target
    r_similarity_per_tap: list[float]  # r(S_k, S_target) per tap, held out; [] without
    gamma: list[float]  # final γ per tap; [] for a run that learns none (learns_gamma)
    layers: list[int]  # the tapped layers' numbers (1, 5, 9, 13, 17 for ResNet18)
    resumed_from_step: int
    seconds: float


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    k = max(2, int(round(n * fraction)))
    return np.sort(order[k:]), np.sort(order[:k])


def _autocast(device: torch.device, precision: str) -> tuple[Any, torch.amp.GradScaler | None]:
    """The autocast context for the forward passes, and a scaler for fp16."""
    if precision == "auto":
        if device.type != "cuda":
            return contextlib.nullcontext, None
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


@torch.no_grad()
def _heldout_r(model: TappedBackbone, head: SimilarityHead, pathway: StimulusPathway,
               taps: list[int], stimuli: torch.Tensor, target: np.ndarray,
               keep: list[int] | None = None) -> tuple[float, list[float]]:
    """r(S_CNN, S_target) over every pair of the held-out stimuli, for Eq. 10's γ-mix and
    for each tap's S_k alone (which layers look like the target), in eval mode through
    the stimulus pathway. ``keep`` (``gamma_prune``): the mix is that of these taps, as
    a training step would form it now (:meth:`SimilarityHead.mix`); every tap's r is
    still computed."""
    model.eval()
    head.eval()
    with pathway():
        per_tap = head.per_tap(model.forward_intermediates(
            stimuli, taps, intermediates_only=True, stop_early=True))
    s = head.mix(per_tap) if keep is None else head.mix([per_tap[k] for k in keep], keep)
    model.train()
    head.train()
    i, j = np.triu_indices(len(target), 1)
    b = target[i, j]

    def r(m: torch.Tensor) -> float:
        a = m.float().cpu().numpy()[i, j]
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0

    return r(s), [r(m) for m in per_tap]


# fields added after checkpoints were first written, with the value their absence means
_LATER_FIELDS: dict[str, Any] = {"sim_every": 1, "gamma_prune": None}


def _resume(recorder: Recorder, config: TrainConfig) -> dict[str, Any] | None:
    raw = recorder.load_artifact(CHECKPOINT)
    if raw is None:
        return None
    # tensors, numbers, strings and containers only: a checkpoint is data, never code
    ckpt = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    stored = ckpt.get("config")
    if isinstance(stored, dict):
        stored = {**_LATER_FIELDS, **stored}
    if stored != dataclasses.asdict(config):
        raise ValueError(f"{CHECKPOINT} of this run was written with a different config; "
                         "start a new run instead")
    return ckpt


@dataclass
class _Stimuli:
    """The target's side of a training: its images and factor on the device, the split of
    its stimuli into those drawn for L_sim and those held out for ``sim_r``."""

    images: torch.Tensor
    factor: torch.Tensor
    train_idx: np.ndarray
    held_idx: np.ndarray
    held_s: np.ndarray

    @classmethod
    def of(cls, target: SimilarityTarget, config: TrainConfig, device: torch.device,
           fmt: torch.memory_format) -> _Stimuli:
        train_idx, held_idx = _split(len(target), config.heldout_fraction, config.seed)
        return cls(torch.from_numpy(np.asarray(target.images, np.float32)).to(
                       device, memory_format=fmt),
                   torch.from_numpy(np.asarray(target.factor, np.float32)).to(device),
                   train_idx, held_idx, target.block(held_idx))


@dataclass
class _Training:
    """Everything one training holds, from :func:`_build` to the end: the network, γ head,
    optimizer and samplers, the data on the device, and where it stands."""

    config: TrainConfig
    device: torch.device
    autocast: Any
    scaler: torch.amp.GradScaler | None
    model: TappedBackbone
    taps: list[int]
    layers: list[int]
    head: SimilarityHead
    opt: torch.optim.SGD
    pathway: StimulusPathway
    gen: torch.Generator  # classification batch order
    stim_gen: torch.Generator  # stimulus draws: a stream of their own
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    stimuli: _Stimuli | None
    step: int = 0
    first_epoch: int = 0
    first_batch: int = 0  # where in first_epoch to start (a checkpoint taken mid-epoch)
    test_acc: float = float("nan")
    test_loss: float = float("nan")
    sim_r: float = float("nan")
    sim_r_taps: list[float] = dataclasses.field(default_factory=list)
    sim_taps: int = 0  # the taps the last pathway step computed (gamma_prune)

    @property
    def metric_keys(self) -> list[str]:
        keys = ["task_loss", "loss", "acc", "lr"] + (["sim_loss"] if self.stimuli else [])
        if self.stimuli and self.config.gamma_prune is not None:
            keys.append("sim_taps")
        return keys + ([f"gamma/{k}" for k in range(len(self.taps))]
                       if self.config.learns_gamma else [])

    def taps_kept(self) -> list[int] | None:
        """The taps (positions into :attr:`taps`) a pathway step computes now, by γ
        (``gamma_prune``); None: every tap."""
        if self.config.gamma_prune is None:
            return None
        keep = kept_taps(self.head.gamma.detach().cpu().tolist(), self.taps,
                         self.config.gamma_prune)
        return None if len(keep) == len(self.taps) else keep


def _build(config: TrainConfig, target: SimilarityTarget | None, device: torch.device,
           data_root: str | Path | None) -> _Training:
    """The dataset, network, γ head and optimizer of a fresh training (in this order: the
    initial weights come from the seeded global generator)."""
    autocast, scaler = _autocast(device, config.precision)
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    data = load_dataset(config.dataset, seed=config.seed, root=data_root)
    model = build_backbone(config.backbone, num_classes=data.num_classes, width=config.width)
    model = model.to(device, memory_format=fmt)  # type: ignore[call-overload]
    taps = resolve_taps(config.taps, len(model.feature_info))
    head = SimilarityHead(len(taps), centering=config.centering).to(device)
    # no weight decay on the γ logits: it would pull γ back toward uniform
    groups: list[dict[str, Any]] = [
        {"params": list(model.parameters())},
        {"params": list(head.parameters()), "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    return _Training(
        config, device, autocast, scaler, model, taps,
        [int(model.feature_info[t].get("layer", t)) for t in taps], head, opt,
        StimulusPathway(model, config.stimulus_norm),
        torch.Generator().manual_seed(config.seed),
        torch.Generator().manual_seed(
            int(np.random.SeedSequence([config.seed, 1]).generate_state(1)[0])),
        data.train_images.to(device, memory_format=fmt), data.train_labels.to(device),
        data.test_images.to(device, memory_format=fmt), data.test_labels.to(device),
        _Stimuli.of(target, config, device, fmt) if target is not None else None)


def _restore(t: _Training, ckpt: dict[str, Any]) -> None:
    """Where a checkpoint left the training: weights, γ, optimizer, samplers, metrics."""
    t.model.load_state_dict(ckpt["state_dict"])
    t.head.load_state_dict(ckpt["head"])
    t.opt.load_state_dict(ckpt["optimizer"])
    t.gen.set_state(ckpt["sampler"])
    t.stim_gen.set_state(ckpt["stimulus_sampler"])
    t.pathway.load_state_dict(ckpt["stimulus_bn"])
    if t.scaler is not None and ckpt.get("scaler"):
        t.scaler.load_state_dict(ckpt["scaler"])
    t.first_epoch, t.step = ckpt["epoch"], ckpt["step"]
    t.first_batch = ckpt.get("batch", 0)
    t.test_acc, t.test_loss, t.sim_r = ckpt["test_acc"], ckpt["test_loss"], ckpt["sim_r"]
    t.sim_r_taps = ckpt.get("sim_r_taps", [])


class _MetricLog:
    """Per-step metrics kept on the device and sent to the recorder in one transfer every
    :data:`_SYNC_EVERY` steps (a sync per step stalls a GPU)."""

    def __init__(self, recorder: Recorder, keys: list[str]) -> None:
        self.recorder, self.keys = recorder, keys
        self.pending: list[tuple[int, torch.Tensor, tuple[str, ...]]] = []
        self._sums = [0.0, 0.0, 0]  # the epoch's loss and train accuracy, and its steps

    def add(self, step: int, row: torch.Tensor, omit: tuple[str, ...] = ()) -> None:
        """``omit``: keys this step has no value for (L_sim on a step without the
        stimulus pathway), left out of what is logged."""
        self.pending.append((step, row, omit))
        if len(self.pending) >= _SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        if not self.pending:
            return
        values = torch.stack([v for _, v, _ in self.pending]).tolist()
        for (s, _, omit), row in zip(self.pending, values, strict=True):
            if not math.isfinite(row[1]):
                raise FloatingPointError(f"loss became {row[1]} at step {s}")
            self._sums[0] += row[1]
            self._sums[1] += row[2]
            self._sums[2] += 1
            self.recorder.log_metrics({k: v for k, v in zip(self.keys, row, strict=True)
                                       if k not in omit}, s)
        self.pending.clear()

    def epoch_means(self) -> tuple[float, float] | None:
        """The mean loss and train accuracy over the steps synced since the last call
        (None: none)."""
        loss, acc, n = self._sums
        self._sums = [0.0, 0.0, 0]
        return (loss / n, acc / n) if n else None


def _similarity_term(t: _Training) -> tuple[torch.Tensor, bool]:
    """Eq. 8 over a fresh draw of training stimuli (:func:`stimuli_drawn`: M, or k·M with
    ``sim_every = k``; Eq. 9–10 for S_CNN), and whether it takes part in the loss (α > 0;
    α = 0 logs L_sim without a graph, the pathway still runs). The caller decides which
    steps run it (:func:`pathway_step`) and weighs it (:func:`sim_weight`). With
    ``gamma_prune`` the forward stops after the deepest tap γ keeps
    (:meth:`_Training.taps_kept`)."""
    assert t.stimuli is not None
    use_sim = t.config.alpha > 0
    pick = _draw_stimuli(t)
    keep = t.taps_kept()
    taps = t.taps if keep is None else [t.taps[k] for k in keep]
    t.sim_taps = len(taps)
    with torch.set_grad_enabled(use_sim), t.pathway(), t.autocast():
        maps = t.model.forward_intermediates(
            t.stimuli.images[pick.to(t.device)], taps, intermediates_only=True,
            stop_early=True)
    with torch.set_grad_enabled(use_sim):
        return _sim_loss(t, t.head(maps, keep), pick), use_sim


def _draw_stimuli(t: _Training) -> torch.Tensor:
    """A fresh draw of :func:`stimuli_drawn` training stimuli (sorted ids), from the run's
    own stimulus generator."""
    assert t.stimuli is not None
    train_idx = t.stimuli.train_idx
    return torch.from_numpy(np.sort(train_idx[torch.randperm(
        len(train_idx), generator=t.stim_gen)[:stimuli_drawn(t.config)].numpy()]))


def _sim_loss(t: _Training, s_cnn: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    """Eq. 8 between S_CNN (M, M; Eq. 10, in float32) and the target over ``pick``'s
    pairs (all of them, or the paper's disjoint ones)."""
    assert t.stimuli is not None
    f = t.stimuli.factor[pick.to(t.device)]
    s_tgt = (f @ f.T).clamp(-1, 1)
    pair_fn = all_pairs if t.config.pairs == "all" else paper_pairs
    i, j = pair_fn(len(pick), device=t.device)
    return similarity_loss(s_cnn[i, j], s_tgt[i, j])


def sim_weight(config: TrainConfig) -> float:
    """The weight of L_sim on a pathway step: α (Eq. 7), times ``sim_every`` (k steps'
    worth of the regularizer in one)."""
    return config.alpha * config.sim_every


def _train_step(t: _Training, idx: torch.Tensor, lr: float) -> torch.Tensor:
    """One optimizer step on classification batch ``idx`` (and, with a target, on a
    pathway step, a stimulus batch): L = L_task + α·L_sim (Eq. 7; k·α with ``sim_every
    = k``). Returns the step's metrics row, on the device (NaN for L_sim on a step
    without the pathway)."""
    with t.autocast():
        logits = t.model(t.x_train[idx])  # (B, classes)
    task = F.cross_entropy(logits.float(), t.y_train[idx])
    loss, row = task, [task.detach()]
    sim = None
    if t.stimuli is not None and pathway_step(t.config, t.step):
        sim, use_sim = _similarity_term(t)
        if use_sim:
            loss = task + sim_weight(t.config) * sim  # Eq. 7
    t.opt.zero_grad(set_to_none=True)
    if t.scaler is not None:
        t.scaler.scale(loss).backward()
        t.scaler.step(t.opt)
        t.scaler.update()
    else:
        loss.backward()
        t.opt.step()
    acc = (logits.argmax(1) == t.y_train[idx]).float().mean()
    row += [loss.detach(), acc, torch.tensor(lr, device=t.device)]
    if t.stimuli is not None:
        row.append(sim.detach() if sim is not None
                   else torch.tensor(float("nan"), device=t.device))
        if t.config.gamma_prune is not None:
            taps = float(t.sim_taps) if sim is not None else float("nan")
            row.append(torch.tensor(taps, device=t.device))
    values = torch.stack(row).float()
    return torch.cat([values, t.head.gamma.detach()]) if t.config.learns_gamma else values


def _train_epoch(t: _Training, epoch: int, recorder: Recorder, log: _MetricLog,
                 total: int) -> None:
    """One pass over the training set in a fresh batch order, at the epoch's lr."""
    config, n = t.config, len(t.x_train)
    lr = paper_lr(epoch, config)
    for group in t.opt.param_groups:
        group["lr"] = lr
    sampler = t.gen.get_state()  # before the epoch's order: a resumed epoch draws it again
    order = torch.randperm(n, generator=t.gen).to(t.device)
    first, t.first_batch = t.first_batch, 0
    for batch, b in enumerate(range(first * config.batch_size, n, config.batch_size), first):
        if recorder.should_stop():
            if recorder.stop_resumes():  # handed back (a SLURM job's end): resume here
                log.sync()
                _save_checkpoint(t, recorder, epoch=epoch, batch=batch, sampler=sampler)
            raise Cancelled(f"stopped at step {t.step}")
        omit = () if pathway_step(config, t.step) else ("sim_loss", "sim_taps")
        log.add(t.step, _train_step(t, order[b:b + config.batch_size], lr), omit)
        t.step += 1
        recorder.progress(t.step / total, f"epoch {epoch + 1}/{config.epochs}")
    log.sync()


def _end_epoch(t: _Training, epoch: int, recorder: Recorder,
               metric_log: _MetricLog | None = None, started: float | None = None,
               who: str = "") -> None:
    """Test accuracy and loss, held-out r(S_CNN, S_target) overall and per tap, the
    epoch's log line (``who``: a pack member's name) and the checkpoint when one is
    due; what it recorded is flushed."""
    config = t.config
    t.test_acc, t.test_loss = evaluate(t.model, t.x_test, t.y_test, 512, t.autocast)
    metrics = {"test_acc": t.test_acc, "test_loss": t.test_loss}
    if t.stimuli is not None:
        with t.autocast():
            t.sim_r, t.sim_r_taps = _heldout_r(t.model, t.head, t.pathway, t.taps,
                                               t.stimuli.images[t.stimuli.held_idx],
                                               t.stimuli.held_s, t.taps_kept())
        metrics["sim_r"] = t.sim_r
        metrics.update({f"sim_r/{k}": v for k, v in enumerate(t.sim_r_taps)})
    recorder.log_metrics(metrics, t.step - 1)
    means = metric_log.epoch_means() if metric_log is not None else None
    line = f"{who}epoch {epoch + 1}/{config.epochs}: "
    if means is not None:
        line += f"loss {means[0]:.4f}, train acc {means[1]:.3f}, "
    line += f"test acc {t.test_acc:.3f} (test loss {t.test_loss:.4f})"
    if t.stimuli is not None:
        line += f", sim r {t.sim_r:.3f}"
    if config.learns_gamma:
        line += ", γ " + " ".join(f"{g:.2f}" for g in t.head.gamma.tolist())
    if started is not None:
        line += f", {time.perf_counter() - started:.1f} s"
    log.info("%s (step %d)", line, t.step)
    if (epoch + 1) % config.checkpoint_every == 0 and epoch + 1 < config.epochs:
        _save_checkpoint(t, recorder, epoch=epoch + 1, batch=0, sampler=t.gen.get_state())
    flush(recorder)  # the epoch's points in the store now, whatever comes next


def _save_checkpoint(t: _Training, recorder: Recorder, *, epoch: int, batch: int,
                     sampler: torch.Tensor) -> None:
    """``checkpoint.pt``: training resumes at batch ``batch`` of epoch ``epoch``, whose
    order ``sampler`` (the batch-order generator's state before it) draws again."""
    recorder.save_artifact(CHECKPOINT, checkpoint_bytes(
        t.model, t.config, step=t.step, epoch=epoch, batch=batch, head=t.head.state_dict(),
        optimizer=t.opt.state_dict(), sampler=sampler,
        stimulus_sampler=t.stim_gen.get_state(), stimulus_bn=t.pathway.state_dict(),
        scaler=t.scaler.state_dict() if t.scaler is not None else None,
        test_acc=t.test_acc, test_loss=t.test_loss, sim_r=t.sim_r,
        sim_r_taps=t.sim_r_taps), "application/octet-stream")


def train_model(config: TrainConfig, recorder: Recorder,
                target: SimilarityTarget | None = None, *,
                data_root: str | Path | None = None) -> TrainResult:
    """Train ``config.backbone`` on ``config.dataset`` with L = L_task + α·L_sim (Eq. 7).

    Args:
        config: the run.
        recorder: per step ``task_loss``, ``sim_loss``, ``loss``, ``acc``, ``lr`` and
            ``gamma/<k>`` (a run that learns γ); per epoch ``test_acc``, ``test_loss``,
            ``sim_r`` (r(S_CNN, S_target) on held-out stimuli) and ``sim_r/<k>`` (the same
            for tap k's S_k alone); checkpoints and ``model.pt``.
        target: the target over the neural stimuli, or the similarity run's target it is
            built from (:func:`ml.regularize.targets.resolve_target`: ``random`` builds
            its matrix over these stimuli); required unless ``config.target`` is
            ``none``; ``cnn-features`` must come resolved (it needs its network).
        data_root: where file-backed datasets (CIFAR) live.

    Raises:
        ValueError: a target is named but none was given; a checkpoint from another config.
        Cancelled: when ``recorder.should_stop()`` turns true.
        FloatingPointError: when the loss becomes non-finite.
    """
    target = resolve_target(config.target, target, seed=config.seed)
    start = time.perf_counter()
    device = pick_device(config.device)
    with deterministic_mode(config.deterministic, config.seed):
        t = _build(config, target, device, data_root)
        ckpt = _resume(recorder, config)
        if ckpt is not None:
            _restore(t, ckpt)
        resumed_from = t.step
        per_epoch = math.ceil(len(t.x_train) / config.batch_size)
        total = per_epoch * config.epochs
        log_start(config, device, len(t.x_train), per_epoch)
        if ckpt is not None:
            log.info("resumed from checkpoint.pt at step %d (epoch %d, batch %d)", t.step,
                     t.first_epoch + 1, t.first_batch)
        metric_log = _MetricLog(recorder, t.metric_keys)
        for epoch in range(t.first_epoch, config.epochs):
            started = time.perf_counter()
            _train_epoch(t, epoch, recorder, metric_log, total)
            _end_epoch(t, epoch, recorder, metric_log, started)
        return _finish(t, recorder, device, resumed_from, time.perf_counter() - start)


def log_start(config: TrainConfig, device: torch.device, n_train: int, per_epoch: int,
              who: str = "") -> None:
    """The training's first log line: what trains on what, toward which target."""
    target = "no target (plain cross-entropy)" if config.target == "none" else (
        f"target {config.target}" + (f" of similarity run {config.target_run}"
                                     if config.target_run is not None else "")
        + f", α = {config.alpha:g}")
    log.info("%straining %s (width %d) on %s: %d images, %d epochs × %d steps of %d, %s, "
             "seed %d, on %s", who, config.backbone, config.width, config.dataset, n_train,
             config.epochs, per_epoch, config.batch_size, target, config.seed, device)


def _finish(t: _Training, recorder: Recorder, device: torch.device, resumed_from: int,
            seconds: float, who: str = "") -> TrainResult:
    """``model.pt`` of a finished training, and its result."""
    log.info("%sdone: test acc %.3f after %d steps in %.1f s; model.pt saved", who,
             t.test_acc, t.step, seconds)
    recorder.save_artifact(MODEL, checkpoint_bytes(
        t.model, t.config, step=t.step, head=t.head.state_dict(), layers=t.layers,
        stimulus_bn=t.pathway.state_dict(),
        environment=environment_info(device)), "application/octet-stream")
    return TrainResult(t.step, t.test_acc, t.test_loss,
                       None if math.isnan(t.sim_r) else t.sim_r, t.sim_r_taps,
                       t.head.gamma.tolist() if t.config.learns_gamma else [], t.layers,
                       resumed_from, seconds)
