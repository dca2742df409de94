"""Public request/response schemas. Experiment configs are ml's own dataclasses, so
field names, defaults and bounds have one source of truth."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    field_validator,
    model_validator,
)

from core.kinds import KINDS, JobKind
from core.store.models import MAX_ID, ProjectRole, Role, RunStatus
from core.store.webhooks import EventName
from ml.evaluate.record import CellKind, Column
from ml.neural.io.options import ImportOptions

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
ClientKey = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
CLOCK_SKEW_S = 300  # how far in the future a client's clock may put a time it sends


def _past(v: datetime | None) -> datetime | None:
    """A time a client measured: naive means UTC; not later than now (give or take
    :data:`CLOCK_SKEW_S`)."""
    if v is None:
        return None
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    if v.year < 2000:
        raise ValueError("before the year 2000")
    try:
        v = v.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-12:00
        raise ValueError("in the future (the client's clock is ahead of the server's?)"
                         ) from None
    if v.timestamp() > time.time() + CLOCK_SKEW_S:
        raise ValueError("in the future (the client's clock is ahead of the server's?)")
    return v


PastTime = Annotated[datetime, AfterValidator(_past)]


ProjectName = Annotated[str, Field(min_length=1, max_length=64,
                                   pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")]
"""A project's name: letters, digits, ``_ . -``, starting with a letter (an all-digit
name would read as an id where a name or an id is taken)."""
ProjectRef = Annotated[str, Field(min_length=1, max_length=64,
                                  pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                                  description="a project's name or id")]


class _RunCreate(BaseModel):
    """What every kind's create body has besides its ``kind`` and ``config``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    parent_id: Id | None = None
    input_run_id: Id | None = None
    # an idempotency key: a create that repeats one of its owner's keys returns that run
    # (200) instead of storing a second (an offline spool's sync, a retried request)
    client_key: ClientKey | None = None
    # the project it goes into (a name or id); none: its parent's, else the default one
    project: ProjectRef | None = None


DEFAULT_KIND = "train"  # a body without "kind" is a train run, as before there were others


def _encodable(v: str) -> str:
    """``v`` if it is UTF-8 text (JSON may carry a lone surrogate, which no database
    stores)."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a lone surrogate (\\ud800-\\udfff) is not text") from None
    return v


MAX_PROVENANCE_BYTES = 256 * 1024
_Short = Annotated[str, Field(max_length=1000)]


class ProvenanceIn(BaseModel):
    """What ran an external run (:func:`neuroreg.provenance.of_script`): the fields
    :data:`neuroreg.provenance.FIELDS` typed, any others kept as sent; at most
    :data:`MAX_PROVENANCE_BYTES` of JSON."""

    model_config = ConfigDict(extra="allow")

    git_commit: str | None = Field(None, max_length=64, pattern=r"^[0-9a-f]{4,64}$")
    git_dirty: bool | None = None
    git_branch: _Short | None = None
    git_root: _Short | None = None
    neuroreg_version: _Short | None = None
    python: _Short | None = None
    host: _Short | None = None
    platform: _Short | None = None
    torch: _Short | None = None
    cuda: _Short | None = None
    gpus: list[_Short] = Field(default_factory=list, max_length=64)
    script: _Short | None = None
    packages: dict[Annotated[str, Field(max_length=200)], Annotated[str, Field(
        max_length=200)]] = Field(default_factory=dict, max_length=10_000)

    @model_validator(mode="after")
    def _bounded(self) -> ProvenanceIn:
        size = len(_encodable(json.dumps(self.model_dump(), ensure_ascii=False)).encode())
        if size > MAX_PROVENANCE_BYTES:
            raise ValueError(f"{size} bytes of JSON; at most {MAX_PROVENANCE_BYTES}")
        return self


def _create_model(kind: JobKind) -> type[_RunCreate]:
    """``<Kind>RunCreate``: the common fields, ``kind`` and the kind's ``config`` (its
    defaults validated too, so an invalid default is a 422 naming the field); a kind no
    worker runs (an external run) takes its script's ``provenance`` too."""
    literal = Literal[kind.name]  # type: ignore[name-defined]
    tag = (literal, kind.name) if kind.name == DEFAULT_KIND else (literal, ...)
    extra: dict[str, Any] = {} if kind.task is not None else {
        "provenance": (ProvenanceIn | None, None),
        # when the script began, if before this request (an offline run synced later)
        "started_at": (PastTime | None, None)}
    return create_model(
        f"{kind.name.capitalize()}RunCreate", __base__=_RunCreate, kind=tag,
        config=(kind.config_type, Field(default_factory=dict, validate_default=True)),
        **extra)


CREATE_MODELS: dict[str, type[_RunCreate]] = {k: _create_model(v) for k, v in KINDS.items()}


class RunFinish(BaseModel):
    """How an external run ended."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "failed"] = "succeeded"
    error: str | None = Field(None, max_length=4000)
    result: dict[str, Any] | None = None
    # when the script ended, if before this request (an offline run synced later)
    finished_at: PastTime | None = None


def _kind(body: Any) -> Any:
    return (body.get("kind", DEFAULT_KIND) if isinstance(body, dict)
            else getattr(body, "kind", None))


if TYPE_CHECKING:  # what every member has, for the type checker
    class RunCreate(_RunCreate):
        kind: str
        config: Any
else:
    RunCreate = Annotated[
        Union[tuple(Annotated[m, Tag(k)] for k, m in CREATE_MODELS.items())],  # noqa: UP007
        Discriminator(_kind),
    ]
    """A create body: one member per registered kind (:data:`core.kinds.KINDS`),
    picked by its ``kind``."""


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    disabled_at: datetime | None = None  # set: every token of theirs is refused


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    owner: str
    project: str = "default"
    project_id: int = 1
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
    client_key: str | None = None
    tags: list[str] = []
    last_metrics: dict[str, float] = {}

    @field_validator("progress", mode="after")
    @classmethod
    def _rounded(cls, value: float) -> float:
        """0.45, not the 0.45000000000000007 a sum of steps leaves."""
        return round(value, 6)


TagName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/+\-]+$")]


class RunUpdate(BaseModel):
    """Rename, retag, or move a run into another project (with everything it made)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    tags: list[TagName] | None = Field(None, max_length=50)
    project: ProjectRef | None = None


MAX_IMPORT_BYTES = 8 * 1024**2
"""A run record's body cap (``POST /api/import/runs``): its config, result and provenance."""


class RunImport(BaseModel):
    """A run as another tracker holds it (:mod:`core.transfer`): stored as it was, under
    the caller, keyed by ``key`` (importing it again updates that run)."""

    model_config = ConfigDict(extra="forbid")

    key: ClientKey
    # the project it goes into (its parent's if it has one); none: the caller's default
    project: ProjectRef | None = None
    kind: str = Field(min_length=1, max_length=32)
    name: str = Field("", max_length=200)
    status: RunStatus
    created_at: PastTime
    started_at: PastTime | None = None
    finished_at: PastTime | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    tags: list[TagName] = Field(default_factory=list, max_length=50)
    provenance: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = Field(None, max_length=65_536)
    message: str = Field("", max_length=200)
    progress: float = Field(0.0, ge=0.0, le=1.0)
    parent_id: Id | None = None
    input_run_id: Id | None = None

    @field_validator("provenance")
    @classmethod
    def _provenance(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        """Checked as an external run's (typed fields, bounded), kept as sent."""
        if v is not None:
            ProvenanceIn.model_validate(v)
        return v

    @field_validator("name", "error", "message")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        return None if v is None else _encodable(v)


class PointsPage(BaseModel):
    """Raw points of one series after step ``after`` (``GET /api/export/...``);
    ``next_after``: the step to ask after for the next page, None at the end."""

    key: str
    steps: list[int]
    values: list[float]
    wall_times: list[float]
    next_after: int | None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    # "worker": for /api/worker only (admins issue these to workers that reach the service
    # over its API); "member": everything else
    scope: Literal["member", "worker"] = "member"


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    scope: str
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


class UserUpdate(BaseModel):
    """What an admin changes about a user; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    disabled: bool | None = None  # true: every token of theirs is refused from now on
    role: Role | None = None


class AuditEventPublic(BaseModel):
    """One entry of the audit trail: who (``actor_name``; "" is the service itself) did
    ``action`` to which ``target_kind`` ``target_id``, with a few names and ids in
    ``detail``."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: int | None
    actor_name: str
    action: str
    target_kind: str
    target_id: int | None
    project_id: int | None = None  # the project the change was in
    detail: dict[str, Any]


class ProjectMemberPublic(BaseModel):
    user_id: int
    user: str
    role: ProjectRole


class ProjectPublic(BaseModel):
    """A project, the caller's role in it (``owner`` for an admin everywhere) and, for
    one project, its members."""

    id: int
    name: str
    description: str
    created_at: datetime
    role: ProjectRole
    runs: int
    members: list[ProjectMemberPublic] = []


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ProjectName
    description: str = Field("", max_length=500)
    # users (by name) who own it from the start; none: the admin making it
    owners: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100)


class MemberSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: ProjectRole


class RunPage(BaseModel):
    items: list[RunPublic]
    total: int
    limit: int
    offset: int
    # per run id, the value of each asked-for column (config and metric fields)
    values: dict[str, dict[str, float | str | bool | None]] = {}


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


MAX_BATCH_POINTS = 10_000
"""The most points one request may log (the client sends 5,000 at a time)."""


class MetricBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: list[MetricPoint] = Field(min_length=1, max_length=MAX_BATCH_POINTS)


class MetricBatchResult(BaseModel):
    accepted: int


LogStream = Literal["stdout", "stderr", "log", "client"]


class LogLineIn(BaseModel):
    """A line an external run's script sends; ``seq`` orders it and makes a re-send a
    no-op (:meth:`neuroreg.client.Client.log` numbers them)."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0, lt=MAX_ID)
    line: str = Field(max_length=16_384)
    stream: LogStream = "client"
    time: float | None = Field(None, ge=0, le=1e11)

    @field_validator("line")
    @classmethod
    def _utf8(cls, v: str) -> str:
        return _encodable(v)


class LogBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[LogLineIn] = Field(min_length=1, max_length=5000)


class LogBatchResult(BaseModel):
    stored: int
    skipped: int  # sent before (or known to the bound's marker)
    dropped: int  # past the run's bound


class LogLinePublic(BaseModel):
    seq: int
    stream: str
    time: float
    line: str


class LogDropped(BaseModel):
    lines: int
    bytes: int
    line: str  # the marker line, as logs.txt ends with it


class LogPage(BaseModel):
    """Lines after ``after``, in order; ask again with ``after=next_after`` (while
    ``running``, new lines keep coming)."""

    lines: list[LogLinePublic]
    next_after: int
    next_seq: int  # where a new sender starts numbering
    running: bool
    status: RunStatus
    bytes: int
    max_bytes: int
    dropped: LogDropped | None


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


# an http(s) URL to a named host (ASCII; an IDN host in its xn-- form), its port 0..65535
_PORT = r"6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}"
WEBHOOK_URL_PATTERN = (r"^https?://([A-Za-z0-9._~!$&'()*+,;=:\-]+@)?"
                       r"[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?"
                       rf"(:({_PORT}))?([/?#][!-~]*)?$")


class WebhookCreate(BaseModel):
    """A URL POSTed a signed JSON event when one of your runs or studies finishes."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, pattern=WEBHOOK_URL_PATTERN,
                     description="an http:// or https:// URL; redirects are not followed")
    events: list[EventName] | None = Field(
        None, min_length=1, max_length=20,
        description="what to send (default: all): run.succeeded, run.failed, run.cancelled "
        "for runs, study.succeeded, study.failed, study.cancelled for studies")
    secret: str | None = Field(
        None, min_length=16, max_length=256, pattern=r"^[!-~]+$",
        description="the HMAC-SHA256 key of X-Neuroreg-Signature (printable ASCII); "
        "default: a new random one, returned once")

    @field_validator("url", mode="before")
    @classmethod
    def _http_only(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.startswith(("http://", "https://")):
            scheme = v.partition(":")[0] if ":" in v else ""
            raise ValueError("must be an http:// or https:// URL"
                             + (f", not {scheme[:20]}:" if scheme else ""))
        return v


class WebhookPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class WebhookIssued(WebhookPublic):
    secret: str  # shown once (a receiver keeps it to check signatures)


class DeliveryPublic(BaseModel):
    """One event sent (or being sent) to a hook; ``id`` is its X-Neuroreg-Delivery."""

    id: str
    event: str
    run_id: int | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None  # when pending: the next try
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


class KindPublic(BaseModel):
    """One run kind as ``GET /api/kinds`` lists it (:data:`core.kinds.KINDS`)."""

    name: str
    config_schema: str  # the name of its config's schema in /openapi.json
    summary: str
    queue: str | None  # None: a script outside the service logs into it
    reads: dict[str, str]  # config field → the kind of the run it names
    presets: dict[str, dict[str, Any]]  # preset name → config fields (open: per kind)


class Labels(BaseModel):
    """How pages write the field's names (``GET /api/labels``)."""

    norms: dict[str, str]  # linf → L∞
    corruptions: dict[str, str]  # gaussian_noise → Gaussian noise


class LeaderboardRow(BaseModel):
    """One evaluation's scalar columns (:func:`ml.evaluate.record.leaderboard_row`);
    accuracies in [0, 1], None where the evaluation did not measure it."""

    evaluation_run: int
    model_run: int | None
    name: str
    owner: str | None
    study: int | None
    similarity_run: int | None
    dataset: str | None
    architecture: str | None
    target: str | None
    alpha: float | None
    seed: int | None
    clean_acc: float | None
    clean_acc_n: int | None
    corruptions_acc: float | None
    noise_acc: float | None
    finished_at: str | None  # ISO 8601, as stored
    autoattack_linf: float | None
    autoattack_linf_version: str | None
    autoattack_linf_n: int | None
    autoattack_l2: float | None
    autoattack_l2_version: str | None
    autoattack_l2_n: int | None
    corruptions_source: str | None
    corruptions_n: int | None  # the test images the corruptions were measured on
    median_linf: float | None
    median_l2: float | None
    median_l1: float | None
    median_l0: float | None
    mean_linf: float | None
    mean_l2: float | None
    mean_l1: float | None
    mean_l0: float | None
    minimal_n: int | None  # the samples the medians and means are over
    soundness: Literal["sound", "suspect"] | None  # None: the part did not run
    soundness_suspect: list[str]  # the norms whose verdict is suspect, as written (L∞)
    soundness_warnings: list[str]  # every norm's warning signs
    soundness_n: int | None  # the first samples HopSkipJump and the transfer attacks probe
    grad_l2_median: float | None  # ‖∇ₓ CE‖₂ at the clean images (mechanism)
    grad_l1_median: float | None
    grad_n: int | None
    subspace_share_linf: float | None  # median ‖P_k δ‖² / ‖δ‖² of the minimal perturbations
    subspace_share_l2: float | None
    subspace_share_l1: float | None
    subspace_share_l0: float | None
    subspace_share_linf_n: int | None  # the broken, correctly classified samples
    subspace_share_l2_n: int | None
    subspace_share_l1_n: int | None
    subspace_share_l0_n: int | None
    subspace_share_random: float | None  # the same share of random directions
    rsa_mix_oracle: float | None  # alignment: the γ-mix's RSA with the oracle, mean over scans
    rsa_mix_oracle_normalized: float | None  # the same over the oracle's noise ceiling
    feve_best: float | None  # the best tap's ridge FEVE
    cka_mix_oracle: float | None  # the γ-mix's linear CKA with the oracle responses
    # percept at L2 (None without the part or at another headline norm): median D of the
    # minimal adversarials in units of the median clean–clean distance
    percept_v1_adv_l2: float | None  # of the predicted V1 response (mean over scans)
    percept_model_adv_l2: float | None  # of the model's deepest tap
    percept_specificity_l2: float | None  # (model adv/control) ÷ (predicted V1 adv/control)
    percept_v1_adv_l2_n: int | None  # the samples each is a median over
    percept_model_adv_l2_n: int | None
    percept_specificity_l2_n: int | None


class ColumnSpec(BaseModel):
    """A column the leaderboard shows (:data:`ml.evaluate.record.LEADERBOARD`), its header
    with the ε it ranks filled in: the page and the CLI draw their heads from these."""

    key: str  # the field of a row it shows, and sorts by when sortable
    header: str  # AA L∞ 8/255
    title: str  # what the header means, in a sentence
    kind: CellKind  # how a cell shows the value
    sortable: bool
    threat_model: str | None  # an AutoAttack column's
    digits: int | None  # a number column's decimals
    page: bool  # shown on the page
    cli: bool  # shown in the terminal
    count: str | None  # the row's field holding the samples the value is over


class LeaderboardPage(BaseModel):
    """One page of ``GET /api/leaderboard``."""

    items: list[LeaderboardRow]
    total: int
    limit: int
    offset: int
    sort: Column
    order: Literal["desc", "asc"]
    columns: list[Column]  # the columns it can sort by (:data:`ml.evaluate.record.COLUMNS`)
    eps: dict[str, float]  # threat model → the ε its AutoAttack columns rank
    eps_labels: dict[str, str]  # the same ε as the figures write it (8/255)
    layout: list[ColumnSpec]  # the columns to show, in order


class NormLabel(BaseModel):
    name: str  # linf
    label: str  # L∞, as the figures write it


Verdict = Literal["higher", "lower", "unresolved"]
"""A condition against None on a measure: ``unresolved`` when the 95 % confidence
interval of the paired difference covers 0 (or there are fewer than 2 pairs)."""


class PairedTest(BaseModel):
    """A condition against ``none`` on one measure, paired by seed
    (:func:`ml.study.paired_tests`); the differences are condition − none."""

    condition: str
    alpha: float
    measure: str  # a key of ml.evaluate.measures.MEASURES
    higher_is_better: bool
    pairs: int
    mean_difference: float | None
    sem_difference: float | None
    t_test_p: float | None  # None with fewer than 2 pairs
    wilcoxon_p: float | None
    ci_low: float | None  # the mean difference's 95 % confidence interval
    ci_high: float | None
    verdict: Verdict
    detectable: float | None  # the smallest difference these pairs find at 80 % power


class Row(BaseModel):
    """A row a table of ``ml`` returns, typed whole: a field ``ml`` adds without a type
    here fails the route's tests instead of being dropped from the answer."""

    model_config = ConfigDict(extra="forbid")


class MeanSem(Row):
    mean: float | None
    sem: float | None  # 0 for one run
    n: int


class SeriesStats(Row):
    """Mean ± SEM per point of a series over a condition's runs."""

    mean: list[float | None]
    sem: list[float | None]


class NoiseStats(SeriesStats):
    sigmas: list[float]


class CurveStats(SeriesStats):
    iterations: list[float]  # attack iterations (Fig. 5's x axis)


class CorruptionGrid(Row):
    """Accuracy per corruption (rows) × severity (columns), mean ± SEM over the runs."""

    names: list[str]
    severities: list[int]
    mean: list[list[float | None]]
    sem: list[list[float | None]]
    n: int
    seeds: list[int | None]


class AutoAttackGrid(Row):
    eps: list[float]
    eps_labels: list[str]  # 8/255
    mean: list[float | None]
    sem: list[float | None]
    n: int
    versions: list[str]  # standard, custom


class CorruptionError(Row):
    mean: float | None
    sem: float | None


class MeanCorruptionError(CorruptionError):
    """mCE against the None of the same backbone and dataset, paired by seed."""

    n: int
    seeds: list[int]
    ce: dict[str, CorruptionError]  # per corruption


class ConditionHead(Row):
    """What every per-condition row of :mod:`ml.evaluate.summary` starts with: the
    condition and the evaluations of it."""

    target: str
    alpha: float
    backbone: str | None
    dataset: str | None
    n: int
    seeds: list[int | None]
    run_ids: list[int | None]


class RobustnessRow(ConditionHead):
    """One condition of :func:`ml.evaluate.summary.robustness_table` (Fig. 4–6 across seeds)."""

    noise: NoiseStats | None  # None: the runs' σ grids differ, or one has no noise part
    curves: dict[str, CurveStats]  # norm → median best-so-far vs iterations (Fig. 5)
    measures: dict[str, MeanSem]  # every measure of ml.evaluate.measures.MEASURES it has
    corruptions: CorruptionGrid | None
    autoattack: dict[str, AutoAttackGrid]  # threat model → robust accuracy per ε
    medians: dict[str, MeanSem]  # norm → the minimal perturbations' median
    mce: MeanCorruptionError | None


class ScalarStats(Row):
    """A scalar, mean ± SEM over a condition's runs (the count is the block's ``n``)."""

    mean: float | None
    sem: float | None


class HybridStats(Row):
    """Hybrid outcomes per cut-off: the low-frequency image's class, the high's, another."""

    low: SeriesStats
    high: SeriesStats
    other: SeriesStats


class RadialStats(SeriesStats):
    bands: list[float]  # radial band (cycles/image)


class FourierMapStats(Row):
    """The Fourier map's error per (f_y, f_x) averaged over the runs, and per radial band."""

    fy: list[int]
    fx: list[int]
    eps: float  # the basis perturbation's L2 norm
    mean: list[list[float | None]]  # rows f_y, columns f_x
    mean_error: ScalarStats
    radial: RadialStats


class SpectrumStats(Row):
    n: int  # runs with this norm's spectrum
    median: SeriesStats  # median energy fraction per band
    centroid: ScalarStats


class FrequencyGrid(Row):
    cutoffs: list[float]  # cycles/image
    n: int  # runs that ran the part
    lowpass: SeriesStats
    highpass: SeriesStats
    hybrid: HybridStats
    fourier_map: FourierMapStats | None  # None: the runs measured different maps
    spectrum: dict[str, SpectrumStats]  # norm or "clean" → band fractions
    spectrum_bands: list[float] | None  # the bands (cycles/image); None: none or unequal


class FrequencyRow(ConditionHead):
    """One condition of :func:`ml.evaluate.summary.frequency_table` (issue 38's frequency
    part across seeds)."""

    frequency: FrequencyGrid


class GammaRow(Row):
    """One condition of :func:`ml.train.summary.gamma_table`: final γ per tapped layer."""

    target: str
    alpha: float
    backbone: str | None
    layers: list[int]
    width: int | None
    dataset: str | None
    study: int | None
    n: int
    seeds: list[int | None]
    run_ids: list[int | None]
    gamma_mean: list[float]
    gamma_sem: list[float]
    dominant: dict[str, int]  # layer → runs whose largest γ it holds
    r_taps_mean: list[float | None] | None  # r(S_k, S_target) per tap, held out
    r_taps_sem: list[float | None] | None
    r_taps_n: int


class FrontierPoint(Row):
    """One (condition, α) of the frontier: every measure, mean ± SEM over its seeds."""

    condition: str
    alpha: float
    n: int
    seeds: list[int]
    run_ids: list[int | None]
    measures: dict[str, MeanSem]


class MatchedTest(Row):
    """A measure of a condition at matched clean accuracy against None, paired by seed
    (:func:`ml.study.paired_difference`; differences condition − none)."""

    higher_is_better: bool
    pairs: int
    mean_difference: float | None
    sem_difference: float | None
    t_test_p: float | None
    wilcoxon_p: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: Verdict
    detectable: float | None


class MatchedCondition(Row):
    """A condition's α whose clean accuracy is closest to None's, and its paired tests
    when the gap is within the tolerance."""

    condition: str
    alpha: float
    clean_gap: float
    matched: bool
    alphas_tried: list[float]
    tests: dict[str, MatchedTest]  # measure → paired test (empty unless matched)


class RecordSimilarity(Row):
    run: int | None
    source: str | None  # simulation, recording
    recording: str | None
    name: str | None


class RecordAutoAttack(Row):
    """AutoAttack at one ε of one threat model."""

    eps: float
    eps_label: str  # 8/255
    robust_acc: float
    after: dict[str, float | None]  # component → robust accuracy after it
    n: int | None
    clean_acc: float | None
    version: str | None  # standard, custom
    inconsistent: int | None  # samples AutoAttack broke below the minimal search's distance
    over_budget: int | None


class RecordCorruptions(Row):
    names: list[str] | None
    severities: list[int] | None
    accuracy: dict[str, list[float]] | None  # corruption → accuracy per severity
    n: int | None
    seed: int | None
    clean_accuracy: float | None
    source: str  # generated, published


class RecordMinimal(Row):
    median: dict[str, float | None]  # norm → the minimal perturbations' median
    mean: dict[str, float | None]
    unbroken: dict[str, int]  # norm → samples no attack broke
    n: int | None  # the samples the medians and means are over


class RecordSoundnessNorm(Row):
    """One norm's soundness (:func:`ml.evaluate.record.soundness_record`)."""

    verdict: str | None  # sound, suspect
    warnings: list[str]  # the warning signs, empty when sound
    best_median: float | None  # the minimal search's median on the attacked samples
    disagreement: float | None  # the largest attack family's median / the best median
    autoattack_inconsistent: int | None  # samples AutoAttack broke below their minimum
    hsja_median: float | None  # HopSkipJump's (decision-based) median
    hsja_white_box_median: float | None  # the gradient attacks' on the same samples
    hsja_smaller: int | None  # samples where it beat every gradient attack by > 10 %
    hsja_samples: int | None
    transfer_median: float | None  # perturbations transferred from the reference model
    transfer_white_box_median: float | None
    transfer_smaller: int | None
    transfer_samples: int | None


class RecordSoundness(Row):
    samples: int | None  # the first samples HopSkipJump and the transfer attacks measure
    reference_run: int | None  # the train run the transfer attacks came from
    transfer_skipped: str | None  # why there is no transfer, if there is none
    norms: dict[str, RecordSoundnessNorm]


class RecordMechanism(Row):
    """The mechanism measures (:func:`ml.evaluate.record.mechanism_record`)."""

    samples: int | None
    grad_l2_median: float | None  # ‖∇ₓ CE‖₂ at the clean images
    grad_l2_mean: float | None
    grad_l1_median: float | None
    grad_l1_mean: float | None
    grad_n: int | None  # the samples the gradient norms are over
    subspace_k: int | None  # principal components of the training images
    subspace_dim: int | None  # the image size D
    subspace_share: dict[str, float | None]  # norm → median ‖P_k δ‖² / ‖δ‖²
    subspace_share_n: dict[str, int | None]  # norm → the samples it is over
    subspace_share_random: float | None  # the same for random Gaussian directions
    subspace_expected_random: float | None  # k / D
    subspace_skipped: str | None
    tap_layers: list[int] | None
    tap_r: list[float] | None  # r(S_k, S_target) per tap on the held-out stimuli
    tap_r_mix: float | None  # of Eq. 10's γ-mix
    tap_source: str | None  # which target
    tap_skipped: str | None  # why there is no layer similarity, if there is none


class RecordNoise(Row):
    sigmas: list[float]
    accuracy: list[float]
    n: int | None = None
    seed: int | None = None


class RobustBenchEntry(Row):
    """A ``model_info`` entry in RobustBench's own fields (percent strings)."""

    name: str
    dataset: str | None
    architecture: str
    additional_data: bool
    number_forward_passes: int
    clean_acc: str | None
    threat_model: str  # Linf, L2, corruptions
    eps: str | None = None
    autoattack_acc: str | None = None
    n_examples: int | None
    unreliable: bool | None = None  # a reduced (custom) AutoAttack
    corruptions_acc: str | None = None
    corruptions_source: str | None = None


class RecordAlignment(Row):
    """The alignment part's headline numbers (:func:`ml.evaluate.record.alignment_record`)."""

    similarity_run: int | None  # whose held-out stimuli the model was compared on
    n_scans: int | None
    mean: dict[str, float | None]  # headline → mean over scans (None: no scan had it)


class RecordPercept(Row):
    """The percept part's headline (:func:`ml.evaluate.record.percept_record`)."""

    headline_norm: str  # l2 unless the part ran without it
    headline: dict[str, float | None]  # <name>_<norm> → median (None: not measured)
    samples: int | None  # the samples measured at the headline norm
    layer: str | None  # the deepest tap the model's numbers are of
    n: dict[str, int | None]  # v1_adv, model_adv, specificity → the samples it is over


class ModelRecord(Row):
    """``GET /api/runs/{id}/record``: the RobustBench-style record of an evaluation
    (:func:`ml.evaluate.record.model_record`)."""

    schema_: str = Field(alias="schema")  # neuroreg.record/1
    name: str
    evaluation_run: int | None
    model_run: int | None
    model_name: str | None
    study: int | None
    similarity_run: int | None
    owner: str | None
    finished_at: str | None  # ISO 8601
    dataset: str | None
    architecture: str
    backbone: str | None
    width: int | None
    target: str
    alpha: float
    seed: int | None
    stimulus_norm: str | None
    test_acc: float | None  # the model's last test accuracy while training
    clean_acc: float | None
    clean_acc_n: int | None
    parts: list[str]
    similarity: RecordSimilarity | None = None
    autoattack: dict[str, list[RecordAutoAttack]]  # threat model → per ε
    corruptions_acc: float | None
    corruptions: RecordCorruptions | None
    minimal: RecordMinimal
    noise: RecordNoise | None
    noise_acc: float | None
    soundness: RecordSoundness | None  # None: the part did not run
    mechanism: RecordMechanism | None
    alignment: RecordAlignment | None  # None: the part did not run
    percept: RecordPercept | None  # None: the part did not run
    versions: dict[str, str | None] | None  # library → version
    robustbench: list[RobustBenchEntry]


class AlignmentPoint(Row):
    """One model in an alignment–robustness scatter."""

    run_id: int | None  # the evaluation's
    condition: str
    alpha: float
    seed: int | None
    x: float  # the alignment score
    y: float  # the robustness measure


class AlignmentPair(Row):
    """One alignment score against one robustness measure across the study's models
    (:func:`ml.evaluate.alignment_summary.alignment_table`)."""

    score: str
    measure: str
    points: list[AlignmentPoint]
    skipped: int  # models with a block but without this score or measure
    n: int
    r: float | None  # Spearman ρ across models; None: see ``reason``
    ci_low: float | None  # bootstrap over models, percentile 95 %
    ci_high: float | None
    replicates: int  # resamples with a defined ρ
    reason: str | None


class AlignmentCondition(Row):
    target: str
    alpha: float
    n: int
    seeds: list[int | None]
    run_ids: list[int | None]
    scores: dict[str, MeanSem]  # headline name → mean ± SEM over the runs


class AlignmentTable(Row):
    """``alignment`` of :class:`StudyDetail`: alignment against robustness (issue 38)."""

    scores: list[str]  # the alignment headline names, then the percept scores, in order
    measures: list[NormLabel]  # the robustness measures' names and labels
    replicates: int  # bootstrap resamples asked for
    models: int  # evaluations that ran the alignment or the percept part
    pairs: list[AlignmentPair]
    conditions: list[AlignmentCondition]


class StudyDetail(BaseModel):
    """``GET /api/studies/{id}``: the study, its runs and its tables across seeds. The
    tables' rows are :func:`ml.evaluate.summary.robustness_table`'s and :func:`ml.train.
    summary.gamma_table`'s; ``paper`` is :func:`ml.paper.paper_values`'s (open: the
    paper's figures, per measure and norm)."""

    study: RunPublic
    runs: list[RunPublic]
    robustness: list[RobustnessRow]
    norms: list[NormLabel]  # the norms the evaluations measured, in the figures' order
    gamma: list[GammaRow]
    paired_vs_none: list[PairedTest]
    alignment: AlignmentTable | None  # None: no evaluation ran the alignment part
    paper: dict[str, Any]  # the paper's values, and ``beside``: its setting and the study's
    frequency: list[FrequencyRow]  # :func:`ml.evaluate.summary.frequency_table`'s rows


class CurveRow(BaseModel):
    """One condition's training curve, mean ± SEM over seeds (:func:`ml.study.mean_curves`)."""

    target: str
    alpha: float
    n: int
    seeds: list[int | None]
    run_ids: list[int | None]
    steps: list[int]
    mean: list[float]
    sem: list[float]
    n_at: list[int]  # how many runs reached each step


class StudyCurves(BaseModel):
    key: str
    keys: list[str]  # every key the study's train runs log
    bin_steps: int  # steps per point (1: unbinned)
    rows: list[CurveRow]


class GammaSummary(BaseModel):
    """``GET /api/summaries/gamma``: :func:`ml.train.summary.gamma_table`'s rows."""

    rows: list[GammaRow]
    skipped: list[int]  # picked runs that are not succeeded train runs
    no_gamma: list[int]  # runs that learn no γ (target none, or α = 0)


class RobustnessSummary(BaseModel):
    """``GET /api/summaries/robustness``: :func:`ml.evaluate.summary.robustness_table`'s
    rows."""

    rows: list[RobustnessRow]
    skipped: list[int]
    frequency: list[FrequencyRow]  # :func:`ml.evaluate.summary.frequency_table`'s rows


class MeasureInfo(BaseModel):
    label: str
    higher_is_better: bool


class Frontier(BaseModel):
    """The accuracy–robustness frontier (:func:`ml.frontier.frontier`): each (condition,
    α)'s measures, and each condition against None at matched clean accuracy."""

    tolerance: float
    none_clean_accuracy: float
    points: list[FrontierPoint]
    curves: dict[str, list[float]]  # condition → its points' α in order
    matched: list[MatchedCondition]
    measures: dict[str, MeasureInfo]  # name → label and direction


class FrontierOfRuns(Frontier):
    skipped: list[int]  # picked runs that are not succeeded evaluations


class MetricStat(BaseModel):
    n: int  # runs of the group that have the metric
    mean: float | None
    sem: float | None


class RunGroup(BaseModel):
    group: dict[str, Any]  # field → value (a config value keeps its JSON type)
    count: int
    metrics: dict[str, MetricStat]


class RunGroups(BaseModel):
    """``GET /api/run-groups``."""

    by: list[str]
    metrics: list[str]
    groups: list[RunGroup]


class GroupCurve(BaseModel):
    """A group's curve, mean ± SEM over its runs (:func:`ml.study.mean_curve`)."""

    group: dict[str, Any]
    n: int
    run_ids: list[int]
    steps: list[int]
    mean: list[float]
    sem: list[float]
    n_at: list[int]


class GroupCurves(BaseModel):
    """``GET /api/run-groups/curves``."""

    by: list[str]
    key: str
    bin_steps: int
    truncated: bool  # more runs matched than max_runs
    groups: list[GroupCurve]


class SimilarPair(BaseModel):
    i: int
    j: int
    s: float  # S_ij
    image_ids: list[int]
    images: list[list[list[int]]]  # the two stimuli, grey levels 0–255


class SimilarPairs(BaseModel):
    """The most (``high``) and least (``low``) similar pairs of a target (Fig. 2)."""

    n: int  # stimuli
    high: list[SimilarPair]
    low: list[SimilarPair]


class TargetSpectrum(BaseModel):
    """A target's eigenspectrum (:func:`ml.neural.target.spectrum`): how many independent
    directions S asks for. ``fractions`` is capped; the summaries use every eigenvalue."""

    n: int  # stimuli
    rank: int  # eigenvalues above rounding
    participation_ratio: float  # (Σλ)²/Σλ²
    components_50: int  # the fewest leading eigenvalues holding 50 % of the variance
    components_90: int
    components_99: int
    fractions: list[float]  # λ/Σλ, largest first, at most max_components


class RunProvenance(BaseModel):
    """``GET /api/runs/{id}/provenance``: the run's stored provenance, open (the fields of
    :data:`neuroreg.provenance.FIELDS` and any others a client sent); None when it has
    none."""

    run_id: int
    provenance: dict[str, Any] | None


class FieldDiff(BaseModel):
    field: str
    values: list[Any]  # a value per run (None: the run lacks it)


class PackageDiff(BaseModel):
    name: str
    versions: list[str | None]  # a version per run (None: not installed there)


class SameCounts(BaseModel):
    fields: int
    packages: int


class ProvenanceDiff(BaseModel):
    """``GET /api/provenance-diff`` (:func:`neuroreg.provenance.diff`)."""

    runs: list[int]
    missing: list[int]  # runs without provenance
    fields: list[FieldDiff]
    packages: list[PackageDiff]
    same: SameCounts


class RecordingEntry(BaseModel):
    name: str
    kind: Literal["file", "folder"]
    bytes: int  # a folder: its files' total


class Recordings(BaseModel):
    """``GET /api/recordings``: the recordings a similarity run can name, under ``root``."""

    root: str
    items: list[RecordingEntry]


class RecordingRepeats(Row):
    oracle_images: int  # images shown more than once
    min: int  # the fewest and most presentations of such an image
    max: int


class _RecordingFile(Row):
    path: str  # under the recordings root
    neurons: int
    trials: int
    images: int
    tiers: dict[str, int]
    repeats: RecordingRepeats
    negative_responses: bool


class ScanReport(_RecordingFile):
    """A scan of a Sensorium tree or an ``.npz`` file."""

    format: Literal["sensorium", "npz"]
    scan: str


class NwbReport(_RecordingFile):
    """An NWB file: the series, table and columns the importer picked, and what it dropped
    and why (:class:`ml.neural.io.nwb.ImportReport`)."""

    format: Literal["nwb"]
    responses: str  # the series' full path
    response_kind: str  # DfOverF or Fluorescence
    responses_found: list[str]
    presentations: str  # the table or IndexSeries, with its image column
    presentations_total: int
    blank_dropped: int  # frame < 0 (Allen's blank sweeps)
    tier_dropped: int  # tiers outside train/validation/test
    gap_dropped: int  # a behaviour series had no sample (behavior_gaps=drop)
    gap_filled: int  # … and was interpolated (behavior_gaps=fill)
    template: str
    behavior: dict[str, str | None]  # quantity → series, None: missing (zeros)


class RecordingInspection(BaseModel):
    """``POST /api/recordings/inspect``: what a similarity run would import from
    ``recording`` with ``importer``, file by file."""

    recording: str
    importer: ImportOptions  # as the request gave them, defaults filled in
    files: list[Annotated[NwbReport | ScanReport, Field(discriminator="format")]]


class SystemTrace(Row):
    key: str  # system/<measure> or system/gpu<i>_<measure>
    name: str  # "worker + children" or "GPU <i>"
    x: list[str]  # UTC ISO times
    y: list[float]


class SystemPanel(Row):
    measure: str
    title: str
    y_title: str
    traces: list[SystemTrace]


class SystemFigure(Row):
    """``GET /api/runs/{id}/system``: the run's ``system/*`` series as the System figure's
    panels over wall-clock time, only those with data (:mod:`server.system_figure`)."""

    title: str
    panels: list[SystemPanel]


RetentionRule = Literal["keep-last", "drop-finished", "expire-failed"]


class RetentionPolicyCreate(BaseModel):
    """A rule for deleting artifacts (``core.retention``): of the runs ``query`` matches
    (every run when empty), the artifacts whose name matches ``pattern``, under ``rule``.
    An artifact another run reads is never deleted."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
    rule: RetentionRule = Field(description="keep-last: all but the newest `keep` per run; "
                                "drop-finished: of succeeded runs, `days` (default 0) after "
                                "they finished; expire-failed: of failed or cancelled runs, "
                                "`days` after they ended")
    pattern: str = Field(min_length=1, max_length=255, description="a glob over artifact "
                         "names (`*` crosses folders): checkpoint.pt, checkpoints/*.ckpt, *")
    query: str = Field("", max_length=2000, description="the runs it covers, in the run "
                       "query language (GET /api/runs?q=); empty: every run")
    keep: int | None = Field(None, ge=1, le=100_000, description="keep-last: how many")
    days: float | None = Field(None, ge=0, le=36_500, allow_inf_nan=False,
                               description="drop-finished, expire-failed: the age in days")


class RetentionPolicyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    rule: RetentionRule
    pattern: str
    query: str
    keep: int | None
    days: float | None
    created_at: datetime


class RetentionReader(BaseModel):
    """A run that reads the artifact, so it stays."""

    run_id: int
    kind: str
    name: str
    status: RunStatus


class RetentionItem(BaseModel):
    run_id: int
    run_name: str
    name: str = Field(description="the artifact's name")
    size_bytes: int
    policy: str = Field(description="the policy that covers it")
    dependants: list[RetentionReader] = Field(
        description="the runs that read it (then it is kept): empty for one that goes")


class RetentionPlan(BaseModel):
    """What the policies delete (``delete``, ``bytes_freed``) and keep because another
    run reads it (``kept``): a dry run, or what an apply did."""

    applied: bool
    delete: list[RetentionItem]
    kept: list[RetentionItem]
    bytes_freed: int
    truncated: bool = Field(description="more items than the lists show (the totals count "
                            "them all)")
    delete_count: int
    kept_count: int


class LineageRun(BaseModel):
    id: int
    name: str
    kind: str
    status: RunStatus
    owner: str
    depth: int = Field(description="its place: negative upstream (what the run was built "
                       "from), positive downstream (what was built from it), 0 the run")


class LineageEdge(BaseModel):
    source: int
    target: int
    relation: Literal["reads", "part of"] = Field(
        description="reads: target reads source's artifacts; part of: target is one of the "
        "runs source made (a study's)")
    artifacts: list[str]


class LineageGraph(BaseModel):
    run_id: int
    runs: list[LineageRun]
    edges: list[LineageEdge]
    truncated: bool = Field(description="more runs are connected than shown")
