"""Job kinds by name: the experiment config each takes, its task and its queue."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ml.evaluate.run import EvaluateConfig
from ml.neural.pipeline import SimilarityConfig
from ml.study import StudyConfig
from ml.train import TrainConfig


@dataclass(frozen=True)
class JobKind:
    name: str
    config_type: type
    task: str
    queue: str


KINDS: dict[str, JobKind] = {
    "similarity": JobKind("similarity", SimilarityConfig, "neuroreg.similarity", "gpu"),
    "train": JobKind("train", TrainConfig, "neuroreg.train", "gpu"),
    "evaluate": JobKind("evaluate", EvaluateConfig, "neuroreg.evaluate", "gpu"),
    # a study only fans out its train and evaluate runs: no accelerator needed
    "study": JobKind("study", StudyConfig, "neuroreg.study", "cpu"),
}

# for query parameters and schemas: an unknown kind is a 422 listing the known ones
KindName = enum.StrEnum("KindName", {k: k for k in KINDS})  # type: ignore[misc]
