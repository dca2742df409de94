"""One recording session (a *scan*): the stimuli, every trial's response and behaviour.

Shapes follow DESIGN.md: stimuli are (N, 1, 36, 64) float32 in [0, 1]; responses are
(trials, neurons); behaviour is (trials, 4) with the columns in :data:`BEHAVIOR`.
Oracle images are the ones shown repeatedly (the paper: 100 images × 10 repeats); they
estimate the SNR weights (Eq. 1) and S_oracle (Eq. 3) and are never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STIMULUS_SHAPE = (1, 36, 64)  # (C, H, W): the paper's 64×36 downsampled images
BEHAVIOR = ("pupil_x", "pupil_y", "pupil_size", "running_speed")
TIERS = ("train", "validation", "test")


class RecordingError(ValueError):
    """A recording that cannot be used, with a message naming the problem."""


@dataclass(frozen=True, eq=False)
class Scan:
    """Responses of one neuron population to a set of stimuli.

    Attributes:
        name: identifies the scan in metrics and figures (e.g. ``"mouse1-scan2"``).
        images: (N, 1, 36, 64) float32 in [0, 1].
        image_ids: (N,) int64 stimulus ids, unique; the same id in two scans is the
            same picture, which is how scans are averaged (Eq. 4, Eq. 6).
        trial_image_ids: (T,) int64, the stimulus id shown on each trial.
        responses: (T, A) float32, one row per trial.
        behavior: (T, 4) float32, columns :data:`BEHAVIOR`.
        tiers: (T,) str, each one of :data:`TIERS`.
        oracle_ids: stimulus ids of the repeated (oracle) images.
        neurons: per-neuron metadata, each array of length A (``unit_ids`` at least).
    """

    name: str
    images: np.ndarray
    image_ids: np.ndarray
    trial_image_ids: np.ndarray
    responses: np.ndarray
    behavior: np.ndarray
    tiers: np.ndarray
    oracle_ids: np.ndarray
    neurons: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise dtypes once, then validate
        set_(self, "images", np.ascontiguousarray(self.images, dtype=np.float32))
        set_(self, "image_ids", np.asarray(self.image_ids, dtype=np.int64))
        set_(self, "trial_image_ids", np.asarray(self.trial_image_ids, dtype=np.int64))
        set_(self, "responses", np.ascontiguousarray(self.responses, dtype=np.float32))
        set_(self, "behavior", np.ascontiguousarray(self.behavior, dtype=np.float32))
        set_(self, "tiers", np.asarray(self.tiers).astype(str))
        set_(self, "oracle_ids", np.unique(np.asarray(self.oracle_ids, dtype=np.int64)))
        neurons = {k: np.asarray(v) for k, v in self.neurons.items()}
        neurons.setdefault("unit_ids", np.arange(self.responses.shape[-1]))
        set_(self, "neurons", neurons)
        _validate(self)

    @property
    def n_trials(self) -> int:
        return int(self.responses.shape[0])

    @property
    def n_neurons(self) -> int:
        return int(self.responses.shape[1])

    def trial_index(self) -> np.ndarray:
        """(T,) row of ``images`` shown on each trial."""
        order = np.argsort(self.image_ids)
        return order[np.searchsorted(self.image_ids, self.trial_image_ids, sorter=order)]

    def oracle_repeats(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Oracle ids and, per id, the trial indices that showed it."""
        trials = [np.flatnonzero(self.trial_image_ids == i) for i in self.oracle_ids]
        return self.oracle_ids, trials

    def tier_mask(self, tier: str) -> np.ndarray:
        return self.tiers == tier


def _fail(scan: Scan, message: str) -> None:
    raise RecordingError(f"scan {scan.name!r}: {message}")


def _finite(scan: Scan, name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0].tolist()
        _fail(scan, f"{name} has {int(bad.sum())} NaN/inf values (first at index {where})")


def _validate(scan: Scan) -> None:
    if not scan.name:
        raise RecordingError("a scan needs a non-empty name")
    n = scan.images.shape[0]
    if scan.images.ndim != 4 or scan.images.shape[1:] != STIMULUS_SHAPE:
        _fail(scan, f"images must be (N, 1, 36, 64), got {scan.images.shape}")
    if scan.image_ids.shape != (n,):
        _fail(scan, f"image_ids must be ({n},) like images, got {scan.image_ids.shape}")
    if len(np.unique(scan.image_ids)) != n:
        _fail(scan, "image_ids must be unique")
    if scan.responses.ndim != 2 or scan.responses.shape[0] == 0 or scan.responses.shape[1] == 0:
        _fail(scan, f"responses must be (trials, neurons), got {scan.responses.shape}")
    t, a = scan.responses.shape
    for name, arr, shape in (
        ("trial_image_ids", scan.trial_image_ids, (t,)),
        ("behavior", scan.behavior, (t, len(BEHAVIOR))),
        ("tiers", scan.tiers, (t,)),
    ):
        if arr.shape != shape:
            _fail(scan, f"{name} must have shape {shape} for {t} trials, got {arr.shape}")
    for key, arr in scan.neurons.items():
        if arr.shape[:1] != (a,):
            _fail(scan, f"neurons[{key!r}] has {arr.shape[:1]} entries for {a} neurons")
    _finite(scan, "images", scan.images)
    _finite(scan, "responses", scan.responses)
    _finite(scan, "behavior", scan.behavior)
    lo, hi = float(scan.images.min()), float(scan.images.max())
    if lo < 0.0 or hi > 1.0:
        _fail(scan, f"images must lie in [0, 1], found values in [{lo:.3g}, {hi:.3g}]")
    unknown = np.setdiff1d(scan.trial_image_ids, scan.image_ids)
    if unknown.size:
        _fail(scan, f"trials show unknown image ids {unknown[:5].tolist()}")
    bad_tiers = sorted(set(np.unique(scan.tiers).tolist()) - set(TIERS))
    if bad_tiers:
        _fail(scan, f"unknown tiers {bad_tiers}; allowed {list(TIERS)}")
    unknown = np.setdiff1d(scan.oracle_ids, scan.image_ids)
    if unknown.size:
        _fail(scan, f"oracle ids {unknown[:5].tolist()} are not among image_ids")
    if scan.oracle_ids.size < 2:
        _fail(scan, f"needs at least 2 oracle (repeated) images, has {scan.oracle_ids.size}")
    ids, counts = np.unique(scan.trial_image_ids, return_counts=True)
    repeats = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    few = [i for i in scan.oracle_ids.tolist() if repeats.get(i, 0) < 2]
    if few:
        _fail(scan, f"oracle images need at least 2 repeats; ids {few[:5]} have fewer")
    oracle_trials = np.isin(scan.trial_image_ids, scan.oracle_ids)
    if (scan.tiers[oracle_trials] == "train").any():
        _fail(scan, "oracle trials must not be in the train tier")
    if not (scan.tiers == "train").any():
        _fail(scan, "no trials in the train tier")


def default_oracle_ids(trial_image_ids: np.ndarray, tiers: np.ndarray) -> np.ndarray:
    """Images shown more than once in the test tier (the Sensorium convention)."""
    test = np.asarray(trial_image_ids)[np.asarray(tiers).astype(str) == "test"]
    ids, counts = np.unique(test, return_counts=True)
    return ids[counts >= 2]
