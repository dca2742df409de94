"""The names of the artifacts runs store: one home that ml, the worker and the server
import (and the API sends to the page, which never spells them).

Each name is what a :class:`~ml.recorder.Recorder` saves under and what
``/api/runs/{id}/artifacts/{name}`` serves.
"""

from __future__ import annotations

# a train run
MODEL = "model.pt"
"""The trained network: weights, config, tapped layers, γ and stimulus BatchNorm."""
CHECKPOINT = "checkpoint.pt"
"""Where a train run resumes from (weights, optimizer, generator states, step)."""
S_CNN_OVERVIEW = "s-cnn-overview.npz"
"""S_CNN per tap over its target's stimuli, block means for the dashboard."""

# an evaluate run
ADVERSARIALS = "adversarials.npz"
"""Some clean images, their minimal adversarials and their labels."""

# a similarity run
FIGURES = "figures.json"
"""Fig. 1's panels (S_oracle and S_model in one order, the reliability figures)."""
PREDICTOR = "predictor.pt"
"""The fitted predictive model of the recorded neurons (its weights and config)."""
CONFIG = "config.json"
"""The run's config, as it ran."""

# every run a worker ran (and an external run, when it finishes)
LOGS = "logs.txt"
"""Its captured stdout, stderr and logging lines, one per line: UTC time, stream, text."""

_TARGET_PREFIX, _TARGET_SUFFIX = "target-", ".npz"


def target(kind: str) -> str:
    """The artifact a similarity run stores its ``kind`` target under
    (``target-neural-model.npz``)."""
    return f"{_TARGET_PREFIX}{kind}{_TARGET_SUFFIX}"


def target_kind(name: str) -> str | None:
    """The target kind an artifact name holds (``neural-model``), or None if it holds
    none."""
    if name.startswith(_TARGET_PREFIX) and name.endswith(_TARGET_SUFFIX):
        return name[len(_TARGET_PREFIX):-len(_TARGET_SUFFIX)] or None
    return None


def public() -> dict[str, str]:
    """The names a page needs, by role (``GET /api/artifact-names``)."""
    return {"model": MODEL, "checkpoint": CHECKPOINT, "s_cnn_overview": S_CNN_OVERVIEW,
            "adversarials": ADVERSARIALS, "figures": FIGURES,
            "target_neural_model": target("neural-model"), "logs": LOGS}
