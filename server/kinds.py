"""Run kinds by name: everything the other layers need to know about one — the config it
takes, how its inputs are checked, its task and its queue. The API's create-body union
(:data:`server.schemas.RunCreate`), the submit form (``GET /api/kinds``), the input checks
and the worker all read :data:`KINDS`; a new kind is an entry here (and its task)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ml.evaluate.run import EvaluateConfig
from ml.neural.pipeline import SimilarityConfig
from ml.study import StudyConfig
from ml.train import TrainConfig
from server import inputs


@dataclass(frozen=True)
class JobKind:
    name: str
    config_type: type
    task: str | None  # None: no worker runs it (an external script logs into it)
    queue: str | None
    check: Callable[..., int | None]  # (session, settings, config) → the run it reads
    summary: str = ""
    fans_out: bool = False
    """Its job creates child runs and returns :class:`Waiting`; the run stays running
    (without a heartbeat: no worker holds it) until its last child finishes it. Its
    children are its own: no client may name it as a parent, cancelling it cancels them."""


@dataclass(frozen=True)
class Waiting:
    """What a fanning-out kind's job returns: the child runs to queue, (id, kind) each."""

    children: list[tuple[int, str]]


@dataclass(frozen=True, kw_only=True)
class ExternalConfig:
    """A run that a script outside the service trains and logs into (like an MLflow
    run): its parameters are recorded as given."""

    params: dict[str, Any] = field(default_factory=dict)


KINDS: dict[str, JobKind] = {k.name: k for k in (
    JobKind("train", TrainConfig, "neuroreg.train", "gpu", inputs.check_train,
            "a network trained toward a similarity target (Eq. 7)"),
    JobKind("similarity", SimilarityConfig, "neuroreg.similarity", "gpu",
            inputs.check_similarity, "S_data, S_model and the targets of a recording"),
    JobKind("evaluate", EvaluateConfig, "neuroreg.evaluate", "gpu", inputs.check_evaluate,
            "a trained network under noise and minimal attacks"),
    # a study only fans out its train and evaluate runs: no accelerator needed
    JobKind("study", StudyConfig, "neuroreg.study", "cpu", inputs.check_study,
            "conditions × seeds × α, each trained and evaluated", fans_out=True),
    JobKind("external", ExternalConfig, None, None, inputs.check_nothing,
            "a run a script outside the service logs into"),
)}

HELD = [k.name for k in KINDS.values() if k.task is not None and not k.fans_out]
"""The kinds a worker holds while they run (with a heartbeat the reaper watches)."""

# for query parameters and schemas: an unknown kind is a 422 listing the known ones
KindName = enum.StrEnum("KindName", {k: k for k in KINDS})  # type: ignore[misc]
