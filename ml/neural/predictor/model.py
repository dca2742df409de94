"""The denoising predictive model (paper section 2.2): core → readout → shifter → modulator.

One :class:`Core` is shared by every scan; each scan has its own readout and, optionally,
shifter and modulator, kept in ``nn.ModuleDict``s under the scan's position in
``scan_names`` (scan names may contain characters a module key may not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from ml.neural.predictor.core import Core
from ml.neural.predictor.modulator import Modulator
from ml.neural.predictor.readout import FactorizedReadout, GaussianReadout
from ml.neural.predictor.shifter import Shifter
from ml.neural.scan import BEHAVIOR

PUPIL = [BEHAVIOR.index("pupil_x"), BEHAVIOR.index("pupil_y")]  # shifter inputs
STATE = [BEHAVIOR.index("running_speed"), BEHAVIOR.index("pupil_size")]  # modulator inputs


class _Regularized(Protocol):
    def regularizer(self) -> torch.Tensor: ...


class Predictor(nn.Module):
    """Predicts every neuron's response of one scan to a batch of images.

    Args:
        core: the shared feature extractor.
        readouts: one readout per scan name.
        shifters: optional, one shifter per scan name (all scans or none).
        modulators: optional, one modulator per scan name (all scans or none).
        output: ``positive`` (``elu(x) + 1``, for a Poisson loss) or ``linear`` (for
            real-valued responses such as dF/F).
    """

    def __init__(
        self,
        core: Core,
        readouts: Mapping[str, GaussianReadout | FactorizedReadout],
        shifters: Mapping[str, Shifter] | None = None,
        modulators: Mapping[str, Modulator] | None = None,
        *,
        output: str = "positive",
    ) -> None:
        super().__init__()
        if output not in ("positive", "linear"):
            raise ValueError(f"output: {output!r} is not positive or linear")
        self.output = output
        self.scan_names: tuple[str, ...] = tuple(readouts)
        for kind, parts in (("shifters", shifters), ("modulators", modulators)):
            if parts is not None and set(parts) != set(self.scan_names):
                raise ValueError(f"{kind} must cover exactly the scans {list(self.scan_names)}")
        self.core = core
        self.readouts: nn.ModuleDict = nn.ModuleDict(
            {self._key(n): readouts[n] for n in self.scan_names}
        )
        self.shifters: nn.ModuleDict | None = (
            None
            if shifters is None
            else nn.ModuleDict({self._key(n): shifters[n] for n in self.scan_names})
        )
        self.modulators: nn.ModuleDict | None = (
            None
            if modulators is None
            else nn.ModuleDict({self._key(n): modulators[n] for n in self.scan_names})
        )

    def _key(self, scan: str) -> str:
        try:
            return f"scan{self.scan_names.index(scan)}"
        except ValueError:
            raise KeyError(f"unknown scan {scan!r}; known: {list(self.scan_names)}") from None

    def forward(
        self, images: torch.Tensor, scan: str, behavior: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted responses, ``(elu(readout) + 1) · gain`` (``linear``: ``readout · gain``).

        Args:
            images: (B, 1, H, W) in [0, 1].
            scan: which scan's neurons to predict.
            behavior: (B, 4) standardized behaviour (columns ``BEHAVIOR``); needed when
                the model has a shifter or modulator.

        Returns:
            (B, A) predicted responses (positive for the ``positive`` output).
        """
        key = self._key(scan)
        shift = gain = None
        if self.shifters is not None or self.modulators is not None:
            if behavior is None or behavior.shape != (images.shape[0], 4):
                got = None if behavior is None else tuple(behavior.shape)
                raise ValueError(f"behavior must be ({images.shape[0]}, 4) standardized, got {got}")
            if self.shifters is not None:
                shift = self.shifters[key](behavior[:, PUPIL])  # (B, 2)
            if self.modulators is not None:
                gain = self.modulators[key](behavior[:, STATE])  # (B, A)
        features = self.core(images)  # (B, C, H', W'), once for all neurons
        drive = self.readouts[key](features, shift)  # (B, A)
        rate = F.elu(drive) + 1 if self.output == "positive" else drive
        return rate if gain is None else rate * gain

    def regularizer(self, scan: str | None = None) -> torch.Tensor:
        """Sum of the parts' regularizers: the core's plus those of ``scan`` (all if None)."""
        keys = [self._key(scan)] if scan is not None else [self._key(n) for n in self.scan_names]
        parts: list[nn.Module] = []
        for key in keys:
            parts.append(self.readouts[key])
            parts.extend(d[key] for d in (self.shifters, self.modulators) if d is not None)
        total = self.core.regularizer()
        for part in parts:
            total = total + cast(_Regularized, part).regularizer()
        return total
