"""Recorded tier labels → the Scan's train / validation / test."""

from __future__ import annotations

import numpy as np

from ml.neural.scan import TIERS

# Sensorium's competition scans hold out a second repeated test set as "final_test"
# (some of its docs call it "live_test"); both are repeated test images to us.
ALIASES = {"final_test": "test", "live_test": "test"}


def map_tiers(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map recorded tier labels onto :data:`~ml.neural.scan.TIERS`.

    Args:
        raw: (T,) tier labels as recorded (str or bytes).

    Returns:
        (tiers, keep): (T,) mapped labels and a (T,) mask of trials whose label is one of
        TIERS after mapping; the rest (e.g. Sensorium's ``"none"``) are to be dropped.
    """
    labels = np.asarray(raw).astype(str)
    tiers = np.array([ALIASES.get(t, t) for t in labels.tolist()], dtype=str)
    return tiers, np.isin(tiers, TIERS)
