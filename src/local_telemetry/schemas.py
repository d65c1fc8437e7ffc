"""Request and response shapes, and every field rule, in one place.

Rules (the v3 guide's, tightened where it let bad data through):
- timestamps are ISO 8601 strings *with* a timezone, stored as UTC (``timestamps.py``);
- ``status`` is one of the canonical values; aliases (``failed``, ``completed``,
  ``succeeded``) are accepted on create and in the query filter, never on PATCH;
- counters and ``duration_ms`` are integers in 0..2^63-1 (no floats, strings or bools);
- strings hold no NUL character and no lone UTF-16 surrogate (PostgreSQL can store
  neither); identifiers (``event_id``, ``run_id``, ``agent_name``, ``job_type``) are
  1..256 characters (at most 1 KiB of UTF-8); other names and ids (``parent_run_id``,
  ``insight_id``, ``host``, ``git_branch``...) at most ``MAX_NAME_BYTES``;
  ``error_summary`` at most ``MAX_ERROR_SUMMARY_BYTES``, ``error_details`` at most
  ``MAX_ERROR_DETAILS_BYTES``, any other text at most ``MAX_TEXT_BYTES`` (UTF-8);
- ``git_commit_hash``/``commit_hash`` are 7-40 hex digits, ``git_commit_source`` is
  ``manual``, ``llm`` or ``ci``;
- ``metrics_json``/``context_json`` (and event ``data``, agent-run ``metadata``) are JSON
  objects nested at most ``MAX_JSON_DEPTH`` levels (the object itself is level 1), at
  most ``MAX_JSON_FIELD_BYTES`` serialized; their keys and strings follow the string
  rule, their integers fit in signed 64 bits and their numbers are finite (the body
  parser in ``api/http.py`` also refuses NaN, Infinity and out-of-range integers
  everywhere in a body);
- agent outcome fields (agent-metrics runbook), all optional and nullable: ``resolution``
  is ``resolved``, ``escalated`` or ``failed``; ``self_corrected`` a JSON boolean;
  ``tokens_input``/``tokens_output`` integers 0..2^63-1; ``cost_usd`` a finite number
  >= 0 (integers accepted, stored as floating point); ``sla_target_seconds`` an integer
  1..2^63-1; ``input_kind`` at most 256 characters;
- agent runs (``POST /api/agent-runs``): ``run_id`` a UUID in its 8-4-4-4-12 hex form
  (stored as sent), ``ended_at`` not before ``started_at`` and only with a
  ``resolution``; ``metadata`` a JSON object (stored as ``context_json``);
- QC reviews: ``score`` a JSON integer 1..5 (no floats, strings or bools), ``notes`` and
  ``reviewer`` optional text;
- run events: ``message`` at most 64 KiB of UTF-8, ``level`` one of ``EVENT_LEVELS``
  (any case, stored lower-case), ``timestamp`` with timezone (default: server time),
  ``data`` a JSON object; at most ``MAX_EVENTS_PER_REQUEST`` events per request.

Unknown fields are ignored on create (old clients send extra fields such as
``api_posted``) and listed, sorted, in the answer's ``ignored_fields`` member (absent when
there are none); they are rejected on PATCH, where a silently ignored field would look
updated. Duplicate JSON keys: the last one wins.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

from local_telemetry import kpis
from local_telemetry.timestamps import TimestampError, normalize, now_stored, parse_instant

CANONICAL_STATUSES: tuple[str, ...] = (
    "running",
    "success",
    "failure",
    "partial",
    "timeout",
    "cancelled",
)
STATUS_ALIASES: dict[str, str] = {
    "failed": "failure",
    "completed": "success",
    "succeeded": "success",
}
COMMIT_SOURCES: tuple[str, ...] = ("manual", "llm", "ci")
Resolution = Literal["resolved", "escalated", "failed"]
RESOLUTIONS: tuple[str, ...] = get_args(Resolution)
RESOLUTION_STATUS: dict[str, str] = {
    "resolved": "success",
    "escalated": "partial",
    "failed": "failure",
}
"""The status an agent run gets when it ends with this resolution."""
AGENT_RUN_JOB_TYPE = "agent_run"
MAX_QC_PER_REQUEST = 100
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
EventLevelName = Literal["debug", "info", "warning", "error", "critical"]
EVENT_LEVELS: tuple[str, ...] = get_args(EventLevelName)
MAX_EVENT_MESSAGE_BYTES = 64 * 1024
MAX_EVENTS_PER_REQUEST = 1000
MAX_EVENTS_PAGE = 10_000
MAX_INT64 = 2**63 - 1
MIN_INT64 = -(2**63)
MAX_JSON_DEPTH = 32
"""Deepest nesting of ``metrics_json``/``context_json``/``data``/``metadata``."""
MAX_JSON_FIELD_BYTES = 256 * 1024
"""Largest serialized JSON field (``metrics_json``, ``context_json``, ``data``, ``metadata``)."""
MAX_NAME_BYTES = 1024
"""Largest name or id other than the four identifiers (``parent_run_id``, ``host``...)."""
MAX_ERROR_SUMMARY_BYTES = 4 * 1024
MAX_ERROR_DETAILS_BYTES = 256 * 1024
MAX_TEXT_BYTES = 64 * 1024
"""Largest other free text (``input_summary``, QC ``notes``, ``git_repo``...)."""


def clean_string(value: str) -> str | None:
    """Why ``value`` cannot be stored (NUL or lone surrogate), or ``None`` when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain lone UTF-16 surrogates"
    return None


def _no_nul(value: str) -> str:
    problem = clean_string(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _at_most(limit: int) -> AfterValidator:
    """A validator refusing strings longer than ``limit`` bytes of UTF-8."""

    def check(value: str) -> str:
        # A character is at most 4 bytes: short strings need no encoding to be sure.
        if len(value) > limit // 4 and len(value.encode("utf-8", "surrogatepass")) > limit:
            raise ValueError(f"must be at most {limit} bytes of UTF-8")
        return value

    return AfterValidator(check)


def _addressable(value: str) -> str:
    # A "/" would make the run unreachable at /api/v1/runs/{event_id}: the route cannot
    # match across it (and %2F is decoded before routing).
    if "/" in value:
        raise ValueError("must not contain '/'")
    return value


def _timestamp(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string with timezone")
    try:
        return normalize(value)
    except TimestampError as exc:
        raise ValueError(str(exc)) from None


def status_message() -> str:
    """The text of every status validation error (the v3 guide quotes its start)."""
    return "Status must be one of: " + ", ".join(CANONICAL_STATUSES)


def canonical_status(value: Any, *, allow_aliases: bool) -> str:
    """Return the canonical status for ``value``; raise ``ValueError`` when unknown."""
    if isinstance(value, str):
        if value in CANONICAL_STATUSES:
            return value
        if allow_aliases and value in STATUS_ALIASES:
            return STATUS_ALIASES[value]
    suffix = " (aliases failed/completed/succeeded are accepted on create only)"
    raise ValueError(status_message() + ("" if allow_aliases else suffix))


def _create_status(value: Any) -> str:
    return canonical_status(value, allow_aliases=True)


def _update_status(value: Any) -> str:
    return canonical_status(value, allow_aliases=False)


def _json_problem(value: Any) -> str | None:
    """Why a JSON value cannot be stored, or ``None``; iterative, so never recursing."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            problem = clean_string(node)
            if problem is not None:
                return f"strings {problem}"
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if not MIN_INT64 <= node <= MAX_INT64:
                return "integers must fit in signed 64 bits"
        elif isinstance(node, float):
            if not math.isfinite(node):
                return "numbers must be finite"
        elif isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"must not be nested more than {MAX_JSON_DEPTH} levels deep"
            if isinstance(node, dict):
                for key, child in node.items():
                    if not isinstance(key, str):
                        return "keys must be strings"
                    problem = clean_string(key)
                    if problem is not None:
                        return f"keys {problem}"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in node)
        else:
            return f"cannot hold a {type(node).__name__}"
    return None


def _shallow_json(value: dict[str, Any]) -> dict[str, Any]:
    problem = _json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    if len(orjson.dumps(value)) > MAX_JSON_FIELD_BYTES:
        raise ValueError(f"must be at most {MAX_JSON_FIELD_BYTES} bytes serialized")
    return value


def _finite_non_negative(value: float) -> float:
    # Strict float accepts JSON integers (as floats); the parser refuses NaN/Infinity and
    # allow_inf_nan=False refuses them from any other caller. -0.0 is stored as 0.0.
    return value + 0.0


def _uuid(value: str) -> str:
    # The runbook's z.string().uuid(): hyphenated hex only (no braces, urn: or bare hex).
    if not _UUID.fullmatch(value):
        raise ValueError("must be a UUID (8-4-4-4-12 hexadecimal digits)")
    return value


def _event_level(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _message_size(value: str) -> str:
    if len(value) > MAX_EVENT_MESSAGE_BYTES // 4 and (
        len(value.encode("utf-8", "surrogatepass")) > MAX_EVENT_MESSAGE_BYTES
    ):
        raise ValueError(f"must be at most {MAX_EVENT_MESSAGE_BYTES} bytes of UTF-8")
    return value


def _commit_hash(value: str) -> str:
    if not all(c in "0123456789abcdefABCDEF" for c in value):
        raise ValueError("must be 7-40 hexadecimal characters")
    return value.lower()


Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(_no_nul)
]
Text = Annotated[str, AfterValidator(_no_nul), _at_most(MAX_TEXT_BYTES)]
Name = Annotated[str, AfterValidator(_no_nul), _at_most(MAX_NAME_BYTES)]
ErrorSummary = Annotated[str, AfterValidator(_no_nul), _at_most(MAX_ERROR_SUMMARY_BYTES)]
ErrorDetails = Annotated[str, AfterValidator(_no_nul), _at_most(MAX_ERROR_DETAILS_BYTES)]
Timestamp = Annotated[str, BeforeValidator(_timestamp)]
Counter = Annotated[int, Strict(), Field(ge=0, le=MAX_INT64)]
CommitHash = Annotated[
    str, StringConstraints(min_length=7, max_length=40), AfterValidator(_commit_hash)
]
CommitSource = Literal["manual", "llm", "ci"]
JsonObject = Annotated[dict[str, Any], AfterValidator(_shallow_json)]
CostUsd = Annotated[
    float, Strict(), Field(ge=0, allow_inf_nan=False), AfterValidator(_finite_non_negative)
]
Seconds = Annotated[int, Strict(), Field(gt=0, le=MAX_INT64)]
ShortText = Annotated[str, StringConstraints(max_length=256), AfterValidator(_no_nul)]
EventLevel = Annotated[EventLevelName, BeforeValidator(_event_level)]


class _RunFields(BaseModel):
    """Optional fields shared by create and update."""

    end_time: Timestamp | None = None
    product: Name | None = None
    product_family: Name | None = None
    platform: Name | None = None
    subdomain: Name | None = None
    website: Text | None = None
    website_section: Name | None = None
    item_name: Text | None = None
    agent_owner: Name | None = None
    items_discovered: Counter | None = None
    items_succeeded: Counter | None = None
    items_failed: Counter | None = None
    items_skipped: Counter | None = None
    duration_ms: Counter | None = None
    input_summary: Text | None = None
    output_summary: Text | None = None
    source_ref: Text | None = None
    target_ref: Text | None = None
    error_summary: ErrorSummary | None = None
    error_details: ErrorDetails | None = None
    git_repo: Text | None = None
    git_branch: Name | None = None
    git_commit_hash: CommitHash | None = None
    git_run_tag: Name | None = None
    git_commit_source: CommitSource | None = None
    git_commit_author: Name | None = None
    git_commit_timestamp: Timestamp | None = None
    host: Name | None = None
    environment: Name | None = None
    trigger_type: Name | None = None
    metrics_json: JsonObject | None = None
    context_json: JsonObject | None = None
    insight_id: Name | None = None
    parent_run_id: Name | None = None
    api_posted: Annotated[bool, Strict()] | None = None
    api_posted_at: Timestamp | None = None
    api_retry_count: Counter | None = None
    resolution: Resolution | None = Field(None, description="resolved, escalated or failed.")
    input_kind: ShortText | None = None
    self_corrected: Annotated[bool, Strict()] | None = None
    tokens_input: Counter | None = None
    tokens_output: Counter | None = None
    cost_usd: CostUsd | None = Field(None, description="Finite, >= 0; stored as a float.")
    sla_target_seconds: Seconds | None = None


class RunCreate(_RunFields):
    """Body of ``POST /api/v1/runs`` and one item of ``POST /api/v1/runs/batch``."""

    model_config = ConfigDict(extra="ignore")

    event_id: Annotated[Identifier, AfterValidator(_addressable)] = Field(
        description="Idempotency key; UUID recommended. No '/'."
    )
    run_id: Identifier = Field(description="Application-level run identifier.")
    agent_name: Identifier
    job_type: Identifier
    start_time: Timestamp = Field(description="ISO 8601 with timezone.")
    status: Annotated[str, BeforeValidator(_create_status)] = Field(
        "running", description="Canonical status or alias failed/completed/succeeded."
    )
    created_at: Timestamp | None = Field(
        None, description="Defaults to the time the server received the run."
    )

    def to_row(self) -> dict[str, Any]:
        """The columns to insert: fields the client sent (None left to column defaults)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class RunUpdate(_RunFields):
    """Body of ``PATCH /api/v1/runs/{event_id}``: only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    status: Annotated[str, BeforeValidator(_update_status)] | None = None

    def changes(self) -> dict[str, Any]:
        """Fields the client sent, in the order it sent them; explicit nulls clear a field."""
        return self.model_dump(exclude_unset=True)


# Fields whose null would break the row's meaning: PATCH may not clear them.
NOT_NULLABLE_ON_UPDATE: frozenset[str] = frozenset(
    {
        "status",
        "items_discovered",
        "items_succeeded",
        "items_failed",
        "items_skipped",
        "duration_ms",
        "api_posted",
        "api_retry_count",
    }
)


MAX_IMPORT_ROWS = 1000
"""Most runs of one ``POST /api/v1/import/runs`` request."""


def _server_computed_duration(
    duration_ms: int | None, start_time: str, end_time: str | None
) -> bool:
    """Whether ``duration_ms`` is what the server stores when the client sends none: the
    default 0, or end minus start (an agent run's end). Exports do not carry
    ``duration_ms_supplied``; an import infers it from this."""
    if duration_ms is None or duration_ms == 0:
        return True
    if end_time is None:
        return False
    try:
        delta = parse_instant(end_time) - parse_instant(start_time)
    except TimestampError:
        return False
    return duration_ms == delta // timedelta(milliseconds=1)


class RunImport(_RunFields):
    """One item of ``POST /api/v1/import/runs``: a run as exported (``RunPublic``, the
    JSON Lines export's shape), with the create endpoint's field rules.

    ``created_at`` is required and, like ``updated_at``, stored as given; derived fields
    (``commit_url``, ``repo_url``) and unknown fields are ignored.
    """

    model_config = ConfigDict(extra="ignore")

    event_id: Annotated[Identifier, AfterValidator(_addressable)]
    run_id: Identifier
    agent_name: Identifier
    job_type: Identifier
    start_time: Timestamp
    status: Annotated[str, BeforeValidator(_create_status)] = "running"
    created_at: Timestamp = Field(description="ISO 8601 with timezone; stored as given.")
    updated_at: Timestamp | None = Field(None, description="Stored as given (null: never).")

    def to_row(self) -> dict[str, Any]:
        """The columns to insert (``InsertRuns(..., keep_times=True)``).

        ``duration_ms_supplied`` (stored, not exported) is inferred: a duration equal to
        what the server would have stored itself counts as not supplied. KPI durations
        come out the same either way except for a client that explicitly sent 0.
        """
        row = {k: v for k, v in self.model_dump().items() if v is not None}
        row["duration_ms_supplied"] = not _server_computed_duration(
            self.duration_ms, self.start_time, self.end_time
        )
        return row


class CommitAssociation(BaseModel):
    """Body of ``POST /api/v1/runs/{event_id}/associate-commit``."""

    model_config = ConfigDict(extra="ignore")

    commit_hash: CommitHash
    commit_source: CommitSource
    commit_author: Name | None = None
    commit_timestamp: Timestamp | None = None

    def changes(self) -> dict[str, Any]:
        """The run columns this association sets."""
        fields: dict[str, Any] = {
            "git_commit_hash": self.commit_hash,
            "git_commit_source": self.commit_source,
        }
        if self.commit_author is not None:
            fields["git_commit_author"] = self.commit_author
        if self.commit_timestamp is not None:
            fields["git_commit_timestamp"] = self.commit_timestamp
        return fields


class RunEventCreate(BaseModel):
    """One event of ``POST /api/v1/runs/{event_id}/events`` (the body is one or an array)."""

    model_config = ConfigDict(extra="ignore")

    message: Annotated[Text, AfterValidator(_message_size)] = Field(
        description="At most 64 KiB of UTF-8."
    )
    level: EventLevel = Field("info", description="Any case; stored lower-case.")
    timestamp: Timestamp = Field(
        default_factory=now_stored,
        description="ISO 8601 with timezone; defaults to the time the server received it.",
    )
    data: JsonObject | None = None

    def to_row(self) -> dict[str, Any]:
        """The event as the store's ``AppendEvents`` takes it."""
        return self.model_dump()


class QcCreate(BaseModel):
    """Body of ``POST /api/v1/runs/{event_id}/qc`` and one item of an agent run's ``qc``."""

    model_config = ConfigDict(extra="ignore")

    score: Annotated[int, Strict(), Field(ge=1, le=5)] = Field(
        description="Integer 1 (poor) to 5 (excellent)."
    )
    notes: Text | None = None
    reviewer: ShortText | None = None

    def to_row(self) -> dict[str, Any]:
        """The review as the store's ``AddQc``/``UpsertAgentRun`` take it."""
        return self.model_dump()


class QcPublic(BaseModel):
    """A stored QC review as the API returns it."""

    id: int
    event_id: str
    score: int
    notes: str | None
    reviewer: str | None
    created_at: str
    ignored_fields: list[str] | None = Field(
        None, description="Unknown fields sent and ignored, sorted (absent when none)."
    )


class AgentRunPost(BaseModel):
    """Body of ``POST /api/agent-runs`` (the agent-metrics runbook's ``agent_run``).

    A start record (no ``ended_at``) and an end record (``ended_at`` with ``resolution``)
    may arrive as two posts of the same ``run_id``; fields left out are not changed.
    """

    model_config = ConfigDict(extra="ignore")

    run_id: Annotated[str, AfterValidator(_uuid)] = Field(
        description="UUID; the run's event_id and run_id (idempotency key)."
    )
    agent_name: Identifier
    job_type: Identifier | None = Field(None, description="Default agent_run (on create).")
    input_kind: ShortText | None = None
    started_at: Timestamp | None = Field(
        None, description="ISO 8601 with timezone; default: when the server received the run."
    )
    ended_at: Timestamp | None = Field(
        None, description="ISO 8601 with timezone; requires resolution."
    )
    resolution: Resolution | None = Field(None, description="resolved, escalated or failed.")
    self_corrected: Annotated[bool, Strict()] | None = None
    tokens_input: Counter | None = None
    tokens_output: Counter | None = None
    cost_usd: CostUsd | None = Field(None, description="Finite, >= 0; stored as a float.")
    sla_target_seconds: Seconds | None = None
    metadata: JsonObject | None = Field(None, description="Stored as the run's context_json.")
    qc: Annotated[list[QcCreate], Field(max_length=MAX_QC_PER_REQUEST)] | None = Field(
        None, description="QC reviews stored with the run (a resent review is not repeated)."
    )

    @model_validator(mode="after")
    def _ended_run_rules(self) -> AgentRunPost:
        if self.ended_at is not None and self.resolution is None:
            raise ValueError("resolution is required when ended_at is given")
        if (
            self.ended_at is not None
            and self.started_at is not None
            and self.ended_at < self.started_at  # stored form: text order is time order
        ):
            raise ValueError("ended_at must not be before started_at")
        return self

    def to_fields(self) -> dict[str, Any]:
        """The run columns this post sets (``UpsertAgentRun.fields``); omitted ones absent.

        ``status`` is present only when the post ends the run.
        """
        fields: dict[str, Any] = {
            "agent_name": self.agent_name,
            "job_type": self.job_type,
            "start_time": self.started_at,
            "end_time": self.ended_at,
            "resolution": self.resolution,
            "input_kind": self.input_kind,
            "self_corrected": self.self_corrected,
            "tokens_input": self.tokens_input,
            "tokens_output": self.tokens_output,
            "cost_usd": self.cost_usd,
            "sla_target_seconds": self.sla_target_seconds,
            "context_json": self.metadata,
        }
        if self.ended_at is not None and self.resolution is not None:
            fields["status"] = RESOLUTION_STATUS[self.resolution]
        return {k: v for k, v in fields.items() if v is not None}


class RunEventQuery(BaseModel):
    """Paging of ``GET /api/v1/runs/{event_id}/events``."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(1000, ge=1, le=MAX_EVENTS_PAGE)
    after_id: int = Field(0, ge=0, le=MAX_INT64, description="Only events with a larger id.")


class RunQuery(BaseModel):
    """Filters of ``GET /api/v1/runs`` (validated from the query string)."""

    model_config = ConfigDict(extra="ignore")

    agent_name: Text | None = None
    job_type: Text | None = None
    run_id: Text | None = None
    parent_run_id: Name | None = None
    status: Annotated[str, BeforeValidator(_create_status)] | None = None
    created_before: Timestamp | None = None
    created_after: Timestamp | None = None
    start_time_from: Timestamp | None = None
    start_time_to: Timestamp | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_INT64)


class AlertQuery(BaseModel):
    """Filters of ``GET /api/v1/alerts`` (validated from the query string)."""

    model_config = ConfigDict(extra="ignore")

    state: Literal["firing", "resolved"] | None = None
    rule_name: Text | None = None
    agent_name: Text | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_INT64)


class AlertPublic(BaseModel):
    """One alert: a firing episode of a rule for an agent (``resolved_at`` null while
    it fires). ``value`` is the measure at the last evaluation (at resolution, once
    resolved); ``baseline`` the compared baseline of baseline kinds."""

    id: int
    rule_name: str
    kind: str
    agent_name: str
    state: Literal["firing", "resolved"]
    value: float | None
    baseline: float | None
    threshold: float
    sample_runs: int
    message: str
    fired_at: str
    resolved_at: str | None
    updated_at: str


KpiGroupBy = Literal["agent_name", "job_type", "day", "week"]


def _time_zone(value: str) -> str:
    kpis.zone(value)  # ValueError: "unknown time zone: ..."
    return value


class KpiQuery(BaseModel):
    """Parameters of ``GET /api/v1/kpis`` (``group_by`` may be repeated)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    agent_name: Text | None = None
    job_type: Text | None = None
    from_: Timestamp | None = Field(
        None, alias="from", description="ISO 8601 with timezone; start_time >= from."
    )
    to: Timestamp | None = Field(None, description="ISO 8601 with timezone; start_time < to.")
    group_by: list[KpiGroupBy] = Field(
        default_factory=list,
        description="agent_name, job_type, day or week; repeat for several (none: one group).",
    )
    tz: Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)] = Field(
        "UTC", description="IANA time zone of day and week boundaries."
    )

    @model_validator(mode="after")
    def _range(self) -> KpiQuery:
        if self.from_ is not None and self.to is not None and self.from_ >= self.to:
            raise ValueError("'from' must be before 'to'")
        self.group_by = list(dict.fromkeys(self.group_by))
        return self


# ----- responses (documented in OpenAPI; handlers build the dicts directly) -----


class KpiGroup(BaseModel):
    """One group of ``GET /api/v1/kpis``: its key fields (those of ``group_by``), then
    the KPIs. Rates are in [0, 1], null when their denominator is 0."""

    model_config = ConfigDict(extra="allow")

    total_runs: int
    completed_runs: int
    status_counts: dict[str, int]
    resolution_rate: float | None
    escalation_rate: float | None
    failure_rate: float | None
    self_correction_rate: float | None
    sla_hit_rate: float | None
    avg_duration_ms: float | None
    p50_duration_ms: int | None
    p95_duration_ms: int | None
    tokens_input: int
    tokens_output: int
    cost_usd: float
    cost_per_resolved_run: float | None
    avg_qc_score: float | None
    qc_count: int


class KpiResult(BaseModel):
    """Answer to ``GET /api/v1/kpis``."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(alias="from")
    to: str | None
    group_by: list[str]
    groups: list[KpiGroup]


class CreateResult(BaseModel):
    """Answer to ``POST /api/v1/runs`` (HTTP 201 for a new and a repeated event_id)."""

    status: Literal["created", "duplicate"]
    event_id: str
    run_id: str | None = None
    message: str | None = None
    ignored_fields: list[str] | None = Field(
        None, description="Unknown fields sent and ignored, sorted (absent when none)."
    )


class AgentRunResult(BaseModel):
    """Answer to ``POST /api/agent-runs`` (HTTP 200)."""

    status: Literal["created", "updated", "duplicate"]
    run_id: str
    ignored_fields: list[str] | None = Field(
        None, description="Unknown fields sent and ignored, sorted (absent when none)."
    )


class UpdateResult(BaseModel):
    """Answer to ``PATCH /api/v1/runs/{event_id}``."""

    event_id: str
    updated: bool
    fields_updated: list[str]


class CommitResult(BaseModel):
    """Answer to ``POST /api/v1/runs/{event_id}/associate-commit``."""

    status: Literal["success"]
    event_id: str
    run_id: str
    commit_hash: str
    ignored_fields: list[str] | None = Field(
        None, description="Unknown fields sent and ignored, sorted (absent when none)."
    )


class BatchError(BaseModel):
    """Why one batch item was not stored."""

    index: int
    event_id: str | None
    detail: str


class BatchResult(BaseModel):
    """Answer to ``POST /api/v1/runs/batch``."""

    inserted: int
    duplicates: int
    errors: list[BatchError]
    total: int
    ignored_fields: list[str] | None = Field(
        None, description="Unknown fields sent and ignored, sorted (absent when none)."
    )


class EventsResult(BaseModel):
    """Answer to ``POST /api/v1/runs/{event_id}/events`` (HTTP 201)."""

    event_id: str
    inserted: int
    ignored_fields: list[str] | None = Field(
        None, description="Unknown fields sent and ignored, sorted (absent when none)."
    )


class RunEventPublic(BaseModel):
    """A stored run event as the API returns it."""

    id: int
    event_id: str
    timestamp: str
    level: str
    message: str
    data: dict[str, Any] | None


class RunPublic(_RunFields):
    """A stored run as the API returns it."""

    event_id: str
    run_id: str
    agent_name: str
    job_type: str
    status: str
    start_time: str
    created_at: str
    updated_at: str | None
    commit_url: str | None
    repo_url: str | None


class CommitUrl(BaseModel):
    """Answer to ``GET /api/v1/runs/{event_id}/commit-url``."""

    commit_url: str | None


class RepoUrl(BaseModel):
    """Answer to ``GET /api/v1/runs/{event_id}/repo-url``."""

    repo_url: str | None
