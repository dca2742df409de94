"""An evaluation's ``alignment`` block as the alignment part leaves it (only what the study
page and the leaderboard read: the headline means over scans), shared by the server and
browser tests."""

from __future__ import annotations

from typing import Any

from ml.evaluate.alignment_inputs import HEADLINES


def alignment_block(rsa: float, *, similarity_run: int | None = None,
                    feve: float | None = 0.4) -> dict[str, Any]:
    """Headline means with ``rsa_mix_oracle`` = ``rsa`` and the others offset from it
    (``feve_best`` = ``feve``; None: no repeats)."""
    mean: dict[str, float | None] = {k: round(rsa * (1 + 0.1 * i), 6)
                                     for i, k in enumerate(HEADLINES)}
    mean["feve_best"] = feve
    return {"source": {"similarity_run": similarity_run}, "n_scans": 2, "scans": {},
            "mean": mean, "message": None}
