"""Job kinds by name: the experiment config each takes, its task and its queue."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ml.evaluate.run import EvaluateConfig
from ml.neural.pipeline import SimilarityConfig
from ml.study import StudyConfig
from ml.train import TrainConfig


@dataclass(frozen=True)
class JobKind:
    name: str
    config_type: type
    task: str | None  # None: no worker runs it (an external script logs into it)
    queue: str | None


@dataclass(frozen=True, kw_only=True)
class ExternalConfig:
    """A run that a script outside the service trains and logs into (like an MLflow
    run): its parameters are recorded as given."""

    params: dict[str, Any] = field(default_factory=dict)


KINDS: dict[str, JobKind] = {
    "similarity": JobKind("similarity", SimilarityConfig, "neuroreg.similarity", "gpu"),
    "train": JobKind("train", TrainConfig, "neuroreg.train", "gpu"),
    "evaluate": JobKind("evaluate", EvaluateConfig, "neuroreg.evaluate", "gpu"),
    # a study only fans out its train and evaluate runs: no accelerator needed
    "study": JobKind("study", StudyConfig, "neuroreg.study", "cpu"),
    "external": JobKind("external", ExternalConfig, None, None),
}

# for query parameters and schemas: an unknown kind is a 422 listing the known ones
KindName = enum.StrEnum("KindName", {k: k for k in KINDS})  # type: ignore[misc]
