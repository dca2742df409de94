"""Run kinds by name: everything the other layers need to know about one — the config it
takes, how its inputs are checked, its task and its queue. The API's create-body union
(:data:`server.schemas.RunCreate`), the submit form (``GET /api/kinds``), the input checks
and the worker all read :data:`KINDS`; a new kind is an entry here (and its task)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import inputs
from ml import presets
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
    check: Callable[..., int | None]  # (session, settings, config) → the run it reads
    summary: str = ""
    reads: dict[str, str] = field(default_factory=dict)
    """The config fields that name another run (``features.run`` a nested one), and the
    kind of run each takes: the submit form's pickers, the CLI's ``latest``."""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Named starting points for the submit form: ``cpu`` (minutes on a CPU) and ``paper``
    (the paper's setting, hours on a GPU); the config's defaults fill the rest."""
    priority: int = 6
    """Its place in the queue, 0 (first) to 9, as Celery numbers priorities on Redis (the
    embedded broker the same): a run waits behind every queued run of a smaller number.
    Trains and similarity runs are 6; an evaluation 3, so a finished model is evaluated
    before the next model trains — a study shows its first paired rows early instead of
    after every train; a study's own job (it only queues its children) 0."""
    fans_out: bool = False
    """Its job creates child runs and returns :class:`Waiting`; the run stays running
    (without a heartbeat: no worker holds it) until its last child finishes it. Its
    children are its own: no client may name it as a parent, cancelling it cancels them."""


@dataclass(frozen=True)
class Waiting:
    """What a fanning-out kind's job returns: the child runs to queue, (id, kind) each,
    and the groups of them to queue as one pack each (:mod:`ml.train.pack`)."""

    children: list[tuple[int, str]]
    packs: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ExternalConfig:
    """A run that a script outside the service trains and logs into (like an MLflow
    run): its parameters are recorded as given."""

    params: dict[str, Any] = field(default_factory=dict)


_TRAIN_READS = {"target_run": "similarity", "features.run": "train"}
_PAPER_TRAIN = {"dataset": "cifar10", "backbone": "resnet18", "width": 64, "epochs": 40}

KINDS: dict[str, JobKind] = {k.name: k for k in (
    JobKind("train", TrainConfig, "neuroreg.train", "gpu", inputs.check_train,
            "a network trained toward a similarity target (Eq. 7)", reads=_TRAIN_READS,
            presets={"cpu": dict(presets.TRAIN), "paper": _PAPER_TRAIN}),
    JobKind("similarity", SimilarityConfig, "neuroreg.similarity", "gpu",
            inputs.check_similarity, "S_data, S_model and the targets of a recording",
            presets={"cpu": dict(presets.SIMILARITY), "paper": {"source": "simulated"}}),
    JobKind("evaluate", EvaluateConfig, "neuroreg.evaluate", "gpu", inputs.check_evaluate,
            "a trained network under noise and minimal attacks", priority=3,
            reads={"train_run": "train", "reference_run": "train",
                   "similarity_run": "similarity"},
            presets={"cpu": dict(presets.EVALUATE),
                     "paper": {"attacks": "paper", "norms": ["linf", "l2", "l1", "l0"],
                               "n_samples": 1000, "repeats": 5}}),
    # a study only fans out its train and evaluate runs: no accelerator needed
    JobKind("study", StudyConfig, "neuroreg.study", "cpu", inputs.check_study,
            "conditions × seeds × α, each trained and evaluated", fans_out=True, priority=0,
            reads=_TRAIN_READS,
            presets={"cpu": {"conditions": ["none", "neural-model"], "seeds": presets.SEEDS,
                             "alphas": list(presets.ALPHAS), "train": dict(presets.TRAIN),
                             "evaluate": dict(presets.EVALUATE)},
                     "paper": {"train": _PAPER_TRAIN, "features": {
                         "weights": "vgg19-dcbb9e9d.pth", "layer": "conv3_1"}}}),
    JobKind("external", ExternalConfig, None, None, inputs.check_nothing,
            "a run a script outside the service logs into"),
)}

def stored_config(kind: str, config: Any) -> dict[str, Any]:
    """A validated config as the store keeps it: its fields; a ``train`` run without a
    target keeps α = 0, the α it never uses (no target, no similarity loss), so pages that
    place runs by α (Compare, run groups) put a None run at 0, not at the default 20."""
    import dataclasses

    stored = dataclasses.asdict(config)
    if kind == "train" and stored.get("target") == "none":
        stored["alpha"] = 0.0
    return stored


HELD = [k.name for k in KINDS.values() if k.task is not None and not k.fans_out]
"""The kinds a worker holds while they run (with a heartbeat the reaper watches)."""

# for query parameters and schemas: an unknown kind is a 422 listing the known ones
KindName = enum.StrEnum("KindName", {k: k for k in KINDS})  # type: ignore[misc]
