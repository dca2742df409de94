"""Packed training: K train runs that share backbone, width, dataset and schedule train in
one process on one device as one batched computation (:class:`~ml.models.packed.
PackedBackbone`), each with its own seed (initial weights, batch order, stimulus draws,
held-out split), target, α, γ head, optimizer state, metrics, checkpoints and ``model.pt``
— each stays an ordinary run, and its checkpoint resumes packed or alone.

A step feeds member k's own classification batch (and its own M stimuli) through the
pack, sums the members' losses L_k = L_task,k + α_k·L_sim,k (Eq. 7) — their parameters
are disjoint, so each gets its own gradient — and takes one SGD step, which is
elementwise and so each member's own step. What differs from K separate runs is only the
order of floating-point sums inside a grouped convolution (``tests/ml/test_pack.py``
compares the weights). Epoch ends (test accuracy, held-out r, checkpoints) run member by
member on its own network, exactly as a separate run's.

A member whose recorder cancels it, or whose loss becomes non-finite, leaves the pack
(its run ends; the others go on); a hand-back (``stop_resumes``: the worker shutting
down) checkpoints every member where it stands.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ml.models.packed import PackedBackbone
from ml.neural.target import SimilarityTarget
from ml.recorder import Cancelled, Recorder
from ml.regularize.targets import resolve_target
from ml.runtime import deterministic_mode, pick_device
from ml.train.joint import (
    TrainConfig,
    TrainResult,
    _build,
    _draw_stimuli,
    _end_epoch,
    _finish,
    _MetricLog,
    _restore,
    _resume,
    _save_checkpoint,
    _sim_loss,
    _Training,
    log_start,
    paper_lr,
)
from ml.train.pathway import StimulusPathway

log = logging.getLogger(__name__)

# what members of one pack may differ in; every other field is the pack's
FREE_FIELDS = ("seed", "target", "target_run", "alpha", "features")


def pack_key(config: TrainConfig) -> tuple[Any, ...] | None:
    """Runs with equal keys can share a pack; None: this run trains alone — fp16 (its
    loss scaler would skip every member's step when one overflows), and the cheaper
    stimulus pathways ``sim_every`` and ``gamma_prune``, which a pack does not run."""
    if config.precision == "fp16" or config.sim_every != 1 or config.gamma_prune is not None:
        return None
    shared = {k: v for k, v in dataclasses.asdict(config).items() if k not in FREE_FIELDS}
    # a member without a target has no stimulus pass; under shared statistics the
    # pack's would change its BatchNorm statistics
    return (tuple(sorted((k, repr(v)) for k, v in shared.items())), config.target != "none")


@dataclasses.dataclass
class _Member:
    t: _Training
    recorder: Recorder
    log: _MetricLog
    outcome: TrainResult | BaseException | None = None
    who: str = ""  # its log lines' prefix: the pack logs to every member's run

    def __post_init__(self) -> None:
        c = self.t.config
        target = c.target if c.target == "none" else f"{c.target} α = {c.alpha:g}"
        self.who = f"[seed {c.seed}, {target}] "

    @property
    def active(self) -> bool:
        return self.outcome is None


def train_pack(configs: Sequence[TrainConfig], recorders: Sequence[Recorder],
               targets: Sequence[SimilarityTarget | None] | None = None, *,
               data_root: str | Path | None = None) -> list[TrainResult | BaseException]:
    """Train ``configs`` as one pack; member k records into ``recorders[k]``.

    Args:
        configs: one per member, with equal :func:`pack_key`.
        recorders: one per member (its run's).
        targets: as :func:`~ml.train.joint.train_model` takes them, one per member.
        data_root: where file-backed datasets live.

    Returns:
        Per member, its :class:`TrainResult`, or the exception that ended it
        (:class:`Cancelled`, ``FloatingPointError``): one member's end is not the others'.

    Raises:
        ValueError: the configs cannot share a pack; their checkpoints stand at different
            steps; a target is missing (as ``train_model``).
    """
    if not configs or len(configs) != len(recorders):
        raise ValueError(f"{len(configs)} configs for {len(recorders)} recorders")
    keys = {pack_key(c) for c in configs}
    if len(keys) != 1 or None in keys:
        raise ValueError("configs: a pack's members differ only in "
                         f"{', '.join(FREE_FIELDS)}, and none is fp16")
    targets = list(targets) if targets is not None else [None] * len(configs)
    start = time.perf_counter()
    first = configs[0]
    device = pick_device(first.device)
    members: list[_Member] = []
    for config, recorder, target in zip(configs, recorders, targets, strict=True):
        target = resolve_target(config.target, target, seed=config.seed)
        with deterministic_mode(config.deterministic, config.seed):  # its initial weights
            t = _build(config, target, device, data_root)
        ckpt = _resume(recorder, config)
        if ckpt is not None:
            _restore(t, ckpt)
        members.append(_Member(t, recorder, _MetricLog(recorder, t.metric_keys)))
    where = {(m.t.step, m.t.first_epoch, m.t.first_batch) for m in members}
    if len(where) != 1:
        raise ValueError(f"the members' checkpoints stand at different steps ({sorted(where)});"
                         " train them apart")
    resumed_from = members[0].t.step
    n_train = len(members[0].t.x_train)
    log.info("training %d runs as one pack on %s", len(members), device)
    for m in members:
        log_start(m.t.config, device, n_train, math.ceil(n_train / first.batch_size),
                  who=m.who)
    if resumed_from:
        log.info("resumed from the members' checkpoints at step %d", resumed_from)
    with deterministic_mode(first.deterministic, first.seed):
        _train(members, device)
    for m in members:
        if m.active:
            m.outcome = _finish(m.t, m.recorder, device, resumed_from,
                                time.perf_counter() - start, who=m.who)
        else:
            log.info("%sleft the pack: %s", m.who, type(m.outcome).__name__)
    return [m.outcome for m in members]  # type: ignore[misc]


class _Pack:
    """The members' networks as one, its optimizer and stimulus pathway; members' own
    networks, optimizers and pathways are brought up to date at every epoch's end."""

    def __init__(self, members: list[_Member], device: torch.device) -> None:
        ts = [m.t for m in members]
        self.ts = ts
        c = ts[0].config
        channels_last = device.type == "cuda" if c.channels_last is None else c.channels_last
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.net = PackedBackbone([t.model for t in ts]).to(
            device, memory_format=self.fmt)  # type: ignore[call-overload]
        groups: list[dict[str, Any]] = [
            {"params": list(self.net.parameters())},
            {"params": [p for t in ts for p in t.head.parameters()], "weight_decay": 0.0}]
        self.opt = torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum,
                                   weight_decay=c.weight_decay)
        self.pathway = StimulusPathway(self.net.net, c.stimulus_norm)
        self._load_members()

    def _member_params(self, t: _Training) -> dict[str, torch.nn.Parameter]:
        return dict(t.model.named_parameters())

    def _load_members(self) -> None:
        """The members' weights, momenta and stimulus statistics into the pack."""
        self.net.load_members([t.model.state_dict() for t in self.ts])
        for name, p in self.net.net.named_parameters():
            bufs = [t.opt.state.get(self._member_params(t)[name], {}).get("momentum_buffer")
                    for t in self.ts]
            if all(b is not None for b in bufs):
                self.opt.state[p] = {"momentum_buffer": self.net.join(name, bufs)}  # type: ignore[arg-type]
        for t in self.ts:
            for p in t.head.parameters():
                if p in t.opt.state:
                    self.opt.state[p] = t.opt.state[p]
        if self.pathway.mode == "separate":
            stats = [t.pathway.state_dict() for t in self.ts]
            self.pathway.load_state_dict({k: self.net.join(k, [s[k] for s in stats])
                                          for k in stats[0]})

    def store_members(self) -> None:
        """The pack's weights, momenta and stimulus statistics into the members' own."""
        pathway = self.pathway.state_dict()
        for k, t in enumerate(self.ts):
            t.model.load_state_dict(self.net.member_state(k))
            own = self._member_params(t)
            for name, p in self.net.net.named_parameters():
                buf = self.opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    t.opt.state[own[name]] = {"momentum_buffer": self.net.part(name, buf, k)}
            for p in t.head.parameters():
                if p in self.opt.state:
                    t.opt.state[p] = self.opt.state[p]
            if pathway:
                t.pathway.load_state_dict({n: self.net.part(n, v, k)
                                           for n, v in pathway.items()})

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr


def _train(members: list[_Member], device: torch.device) -> None:
    pack = _Pack(members, device)
    t0 = members[0].t
    config = t0.config
    n = len(t0.x_train)
    total = math.ceil(n / config.batch_size) * config.epochs
    step = t0.step
    for epoch in range(t0.first_epoch, config.epochs):
        started = time.perf_counter()
        lr = paper_lr(epoch, config)
        pack.set_lr(lr)
        samplers = [m.t.gen.get_state() for m in members]  # a resumed epoch draws it again
        orders = [torch.randperm(n, generator=m.t.gen).to(device) for m in members]
        first, t0.first_batch = t0.first_batch, 0
        for batch, b in enumerate(range(first * config.batch_size, n, config.batch_size),
                                  first):
            if _stops(members, pack, epoch, batch, samplers, step):
                return
            if not any(m.active for m in members):
                return
            rows = _step(members, pack, [o[b:b + config.batch_size] for o in orders], lr)
            for m, row in zip(members, rows, strict=True):
                if m.active:
                    _add(m, step, row)
            step += 1
            for m in members:
                m.t.step = step
                if m.active:
                    m.recorder.progress(step / total, f"epoch {epoch + 1}/{config.epochs}")
        for m in members:
            if m.active:
                _sync(m)
        pack.store_members()
        for m in members:
            if m.active:
                _end_epoch(m.t, epoch, m.recorder, m.log, started, who=m.who)


def _add(m: _Member, step: int, row: torch.Tensor) -> None:
    try:
        m.log.add(step, row)
    except FloatingPointError as exc:
        m.outcome = exc


def _sync(m: _Member) -> None:
    try:
        m.log.sync()
    except FloatingPointError as exc:
        m.outcome = exc


def _stops(members: list[_Member], pack: _Pack, epoch: int, batch: int,
           samplers: list[torch.Tensor], step: int) -> bool:
    """Ask each member's recorder whether to stop: a cancel ends that member; a hand-back
    checkpoints every member where it stands and ends the pack (True)."""
    for m in members:
        if m.active and m.recorder.should_stop():
            if m.recorder.stop_resumes():
                live = [x for x in members if x.active]
                for x in live:
                    _sync(x)
                pack.store_members()
                for x, sampler in zip(members, samplers, strict=True):
                    if x.active:
                        _save_checkpoint(x.t, x.recorder, epoch=epoch, batch=batch,
                                         sampler=sampler)
                        x.outcome = Cancelled(f"stopped at step {step}")
                return True
            _sync(m)
            m.outcome = Cancelled(f"stopped at step {step}")
    return False


def _step(members: list[_Member], pack: _Pack, idxs: list[torch.Tensor], lr: float
          ) -> list[torch.Tensor]:
    """One optimizer step of every member on its own batch (and stimuli): the sum of the
    active members' L_task + α·L_sim (Eq. 7). Returns each member's metrics row."""
    ts = [m.t for m in members]
    t0 = ts[0]
    x = PackedBackbone.inputs([t.x_train[i] for t, i in zip(ts, idxs, strict=True)]
                              ).contiguous(memory_format=pack.fmt)
    with t0.autocast():
        logits = pack.net(x)  # (B, K, classes)
    tasks = [F.cross_entropy(logits[:, k].float(), t.y_train[i])
             for k, (t, i) in enumerate(zip(ts, idxs, strict=True))]
    sims: list[torch.Tensor | None] = [None] * len(ts)
    if t0.stimuli is not None:
        sims = list(_similarity_terms(ts, pack))
    loss = torch.zeros((), device=logits.device)
    losses = []
    for m, task, sim in zip(members, tasks, sims, strict=True):
        own = task if sim is None or m.t.config.alpha == 0 else task + m.t.config.alpha * sim
        losses.append(own)
        if m.active:
            loss = loss + own
    pack.opt.zero_grad(set_to_none=True)
    loss.backward()
    pack.opt.step()
    rows = []
    for k, (t, i) in enumerate(zip(ts, idxs, strict=True)):
        acc = (logits[:, k].argmax(1) == t.y_train[i]).float().mean()
        row = [tasks[k].detach(), losses[k].detach(), acc, torch.tensor(lr, device=acc.device)]
        if sims[k] is not None:
            row.append(sims[k].detach())  # type: ignore[union-attr]
        values = torch.stack(row).float()
        rows.append(torch.cat([values, t.head.gamma.detach()]) if t.config.learns_gamma
                    else values)
    return rows


def _similarity_terms(ts: list[_Training], pack: _Pack) -> list[torch.Tensor]:
    """Eq. 8 for every member over its own fresh draw of M training stimuli, from one
    packed pass (each member's as :func:`ml.train.joint._similarity_term` draws it)."""
    picks = [_draw_stimuli(t) for t in ts]
    grad = any(t.config.alpha > 0 for t in ts)
    images = PackedBackbone.inputs([t.stimuli.images[p.to(t.device)]  # type: ignore[union-attr]
                                    for t, p in zip(ts, picks, strict=True)]
                                   ).contiguous(memory_format=pack.fmt)
    with torch.set_grad_enabled(grad), pack.pathway(), ts[0].autocast():
        maps = pack.net.forward_intermediates(images, ts[0].taps, intermediates_only=True,
                                              stop_early=True)
    per_member = [pack.net.split(m) for m in maps]
    with torch.set_grad_enabled(grad):
        return [_sim_loss(t, t.head([m[k] for m in per_member]), pick)
                for k, (t, pick) in enumerate(zip(ts, picks, strict=True))]
