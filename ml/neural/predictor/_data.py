"""Per-scan statistics, trial splits and device tensors for fitting the predictor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ml.neural.scan import Scan

_VALIDATION_FRACTION = 0.1  # of train trials, for a scan without a validation tier
_MIN_STD = 1e-6


@dataclass(frozen=True, eq=False)
class ScanStats:
    """Train-tier statistics of one scan, needed again at prediction time.

    Attributes:
        behavior_mean: (4,) mean of each behaviour column over train trials.
        behavior_std: (4,) its standard deviation (floored, so constants stay finite).
        response_scale: (A,) each neuron's train-tier response std; the model predicts
            responses divided by it, and :func:`predict` multiplies it back.
    """

    behavior_mean: np.ndarray
    behavior_std: np.ndarray
    response_scale: np.ndarray

    def standardize(self, behavior: np.ndarray) -> np.ndarray:
        """(T, 4) raw behaviour → (T, 4) float32 z-scores."""
        z = (np.asarray(behavior, dtype=np.float64) - self.behavior_mean) / self.behavior_std
        return z.astype(np.float32)


def scan_stats(scan: Scan) -> ScanStats:
    """Statistics of ``scan``'s train tier."""
    train = scan.tier_mask("train")
    behavior = scan.behavior[train].astype(np.float64)
    responses = scan.responses[train].astype(np.float64)
    scale = responses.std(axis=0)
    # a silent neuron keeps scale 1: dividing by ~0 would blow up its (zero) targets
    scale = np.where(scale > _MIN_STD, scale, 1.0)
    return ScanStats(behavior.mean(axis=0), np.maximum(behavior.std(axis=0), _MIN_STD), scale)


@dataclass(frozen=True, eq=False)
class ScanTensors:
    """One scan on the device, standardized, with its trial splits."""

    images: torch.Tensor  # (N, 1, H, W)
    trial_image: torch.Tensor  # (T,) row of images per trial
    behavior: torch.Tensor  # (T, 4) standardized
    responses: torch.Tensor  # (T, A) divided by response_scale
    train: np.ndarray  # trial indices fitted on
    validation: np.ndarray  # trial indices for early stopping
    heldout: np.ndarray  # trial indices for the per-neuron v


def split_trials(scan: Scan, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, held-out) trial indices.

    Validation is the validation tier, or a seeded 10% of the train tier when the scan
    has none. Held-out (for ``v``) is the test tier — every trial of the oracle repeats —
    when present, else the validation trials.
    """
    train = np.flatnonzero(scan.tier_mask("train"))
    validation = np.flatnonzero(scan.tier_mask("validation"))
    if validation.size == 0:
        rng = np.random.default_rng(seed)
        n_val = max(1, int(round(_VALIDATION_FRACTION * train.size)))
        if train.size - n_val < 1:
            raise ValueError(f"scan {scan.name!r}: too few train trials to hold out validation")
        picked = rng.permutation(train.size)[:n_val]
        validation = np.sort(train[picked])
        train = np.setdiff1d(train, validation)
    test = np.flatnonzero(scan.tier_mask("test"))
    return train, validation, test if test.size else validation


def to_tensors(scan: Scan, stats: ScanStats, seed: int, device: torch.device) -> ScanTensors:
    """Standardize ``scan`` with ``stats`` and move it to ``device``."""
    train, validation, heldout = split_trials(scan, seed)
    responses = scan.responses / stats.response_scale.astype(np.float32)
    return ScanTensors(
        images=torch.from_numpy(scan.images).to(device),
        trial_image=torch.from_numpy(scan.trial_index()).to(device),
        behavior=torch.from_numpy(stats.standardize(scan.behavior)).to(device),
        responses=torch.from_numpy(responses.astype(np.float32)).to(device),
        train=train,
        validation=validation,
        heldout=heldout,
    )


def pearson(pred: np.ndarray, resp: np.ndarray) -> np.ndarray:
    """(A,) correlation per column of two (T, A) arrays; 0 where either is constant."""
    p = pred.astype(np.float64) - pred.mean(axis=0)
    r = resp.astype(np.float64) - resp.mean(axis=0)
    denom = np.sqrt((p * p).sum(axis=0) * (r * r).sum(axis=0))
    num = (p * r).sum(axis=0)
    return np.divide(num, denom, out=np.zeros_like(num), where=denom > 1e-12)
