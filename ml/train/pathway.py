"""How the neural stimuli are normalized on their way through the backbone.

Every training step passes two kinds of images through the same network: a
classification batch (digits or CIFAR, 32×32) and M natural-image stimuli (36×64) for
L_similarity. The network's BatchNorm layers hold running statistics that eval mode —
test accuracy, noise curves, attacks — normalizes with. ``stimulus_norm`` says what the
stimulus pass does with them:

``shared``
    The stimuli pass in train mode like the classification batch: they are normalized
    by their own batch statistics and *update the same running statistics*, so the
    statistics eval mode uses are a mix of both image kinds (the behaviour before this
    field existed). A target with α = 0 is then not the None baseline.
``frozen``
    The stimuli are normalized with the classification pathway's running statistics as
    they stand after the step's classification batch (those eval mode uses), as
    constants: gradients flow through the normalization, nothing updates them.
``separate``
    Auxiliary BatchNorm statistics (as AdvProp's auxiliary BN): the stimulus pass
    normalizes by its batch statistics and updates a running mean and variance of its
    own, started fresh (0 and 1) and stored beside the weights (``stimulus_bn`` in
    ``checkpoint.pt`` and ``model.pt``); eval-mode passes over stimuli (held-out r, the
    dashboard's S_CNN) use them. The affine weights γ/β of each BatchNorm are shared.

In ``frozen`` and ``separate`` the classification pathway's statistics are touched only
by classification batches, so a target with α = 0 trains exactly the None model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, get_args

import torch
from torch import nn

from ml.models.checkpoint import stimulus_stats_updated

StimulusNorm = Literal["shared", "frozen", "separate"]
STIMULUS_NORMS: tuple[str, ...] = get_args(StimulusNorm)
_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _norms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


class StimulusPathway:
    """The stimulus pass's normalization for one model (see the module docstring).

    Use ``with pathway():`` around every pass of stimuli through the model, in train or
    eval mode; outside it the model is the classification pathway, unchanged.
    """

    def __init__(self, model: nn.Module, mode: StimulusNorm) -> None:
        if mode not in STIMULUS_NORMS:
            raise ValueError(f"stimulus_norm: unknown mode {mode!r}; known: "
                             f"{list(STIMULUS_NORMS)}")
        self.mode = mode
        self._norms = _norms(model)
        self._stats: dict[str, torch.Tensor] = {}
        if mode == "separate":
            for name, bn in self._norms:
                fresh = {"running_mean": torch.zeros_like, "running_var": torch.ones_like,
                         "num_batches_tracked": torch.zeros_like}
                for stat, make in fresh.items():
                    self._stats[f"{name}.{stat}"] = make(bn._buffers[stat])  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stimulus pathway's own statistics (empty unless ``separate``), on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self._stats.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self._stats):
            raise ValueError(f"stimulus_bn: {len(state)} statistics for a {self.mode!r} "
                             f"pathway of {len(self._stats)}")
        for k, v in state.items():
            self._stats[k].copy_(v)

    def _swap(self) -> None:
        for name, bn in self._norms:
            for stat in _STATS:
                key = f"{name}.{stat}"
                mine, theirs = self._stats[key], bn._buffers[stat]
                assert theirs is not None  # track_running_stats: every BN here has them
                bn._buffers[stat], self._stats[key] = mine, theirs

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.mode == "shared":
            yield
        elif self.mode == "frozen":
            modes = [bn.training for _, bn in self._norms]
            for _, bn in self._norms:
                bn.eval()
            try:
                yield
            finally:
                for (_, bn), training in zip(self._norms, modes, strict=True):
                    bn.train(training)
        else:
            self._swap()
            try:
                yield
            finally:
                self._swap()


def stimulus_pathway(model: nn.Module, mode: StimulusNorm,
                     state: dict[str, torch.Tensor] | None = None) -> StimulusPathway:
    """A trained model's stimulus pathway from its checkpoint's ``stimulus_bn``; statistics
    training never updated (a None model's: :func:`~ml.models.checkpoint.stimulus_stats_updated`)
    leave the stimuli to the classification pathway's statistics (``frozen``), not to the
    fresh 0 and 1 they started as."""
    if mode == "separate" and state and not stimulus_stats_updated(state):
        return StimulusPathway(model, "frozen")
    pathway = StimulusPathway(model, mode)
    if state:
        pathway.load_state_dict(state)
    return pathway
