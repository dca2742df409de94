"""Public request/response schemas. Experiment configs are ml's own dataclasses, so
field names, defaults and bounds have one source of truth."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from ml.evaluate.run import EvaluateConfig
from ml.neural.pipeline import SimilarityConfig
from ml.study import StudyConfig
from ml.train import TrainConfig
from server.kinds import ExternalConfig
from server.store.models import MAX_ID, Role, RunStatus

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class _RunCreate(BaseModel):
    """What every kind's create body has besides its ``kind`` and ``config``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    parent_id: Id | None = None
    input_run_id: Id | None = None


class TrainRunCreate(_RunCreate):
    kind: Literal["train"] = "train"
    config: TrainConfig = Field(default_factory=dict, validate_default=True)


class SimilarityRunCreate(_RunCreate):
    kind: Literal["similarity"]
    config: SimilarityConfig = Field(default_factory=dict, validate_default=True)


class EvaluateRunCreate(_RunCreate):
    kind: Literal["evaluate"]
    config: EvaluateConfig = Field(default_factory=dict, validate_default=True)


class StudyRunCreate(_RunCreate):
    kind: Literal["study"]
    config: StudyConfig = Field(default_factory=dict, validate_default=True)


class ExternalRunCreate(_RunCreate):
    kind: Literal["external"]
    config: ExternalConfig = Field(default_factory=dict, validate_default=True)


class RunFinish(BaseModel):
    """How an external run ended."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "failed"] = "succeeded"
    error: str | None = Field(None, max_length=4000)
    result: dict[str, Any] | None = None


def _kind(body: Any) -> Any:
    # a body without "kind" is a train run, as before there were other kinds
    return body.get("kind", "train") if isinstance(body, dict) else getattr(body, "kind", None)


RunCreate = Annotated[
    Annotated[TrainRunCreate, Tag("train")]
    | Annotated[SimilarityRunCreate, Tag("similarity")]
    | Annotated[EvaluateRunCreate, Tag("evaluate")]
    | Annotated[StudyRunCreate, Tag("study")]
    | Annotated[ExternalRunCreate, Tag("external")],
    Discriminator(_kind),
]


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    owner: str
    kind: str
    config: dict[str, Any]
    status: RunStatus
    progress: float
    message: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    result: dict[str, Any] | None
    parent_id: int | None
    input_run_id: int | None
    tags: list[str] = []
    last_metrics: dict[str, float] = {}


TagName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/+\-]+$")]


class RunUpdate(BaseModel):
    """Rename and/or retag a run (owner or admin)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    tags: list[TagName] | None = Field(None, max_length=50)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


class TokenIssued(TokenPublic):
    token: str  # shown once; only its hash is stored


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    role: Role = Role.member


class UserIssued(UserPublic):
    token: str  # the new user's first token, shown once


class RunPage(BaseModel):
    items: list[RunPublic]
    total: int
    limit: int
    offset: int


class MetricPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/\-\[\]]+$")
    step: int = Field(ge=0, le=2**31 - 1)
    value: float
    wall_time: float | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v


class MetricBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: list[MetricPoint] = Field(min_length=1)


class MetricBatchResult(BaseModel):
    accepted: int


class MetricKey(BaseModel):
    key: str
    count: int
    last_step: int
    last_value: float | None


class SeriesPublic(BaseModel):
    key: str
    total: int
    downsampled: bool
    steps: list[int]
    values: list[float]
    wall_times: list[float] | None


class ArtifactPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    media_type: str
    size_bytes: int
    sha256: str
    created_at: datetime
