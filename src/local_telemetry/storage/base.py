"""The storage contract every backend implements.

Writes are expressed as small operation objects and applied in groups by
:meth:`Store.apply`: one transaction for the whole group, each operation isolated so
that one failing operation does not undo the others. The ingest writer
(``ingest.py``) owns the call to ``apply``; readers call the query methods from a
thread pool. Every backend must pass ``tests/storage/test_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# Columns of a run, in the order the API returns them (plus commit_url/repo_url).
RUN_COLUMNS: tuple[str, ...] = (
    "event_id",
    "run_id",
    "created_at",
    "updated_at",
    "start_time",
    "end_time",
    "agent_name",
    "agent_owner",
    "job_type",
    "status",
    "product",
    "product_family",
    "platform",
    "subdomain",
    "website",
    "website_section",
    "item_name",
    "items_discovered",
    "items_succeeded",
    "items_failed",
    "items_skipped",
    "duration_ms",
    "input_summary",
    "output_summary",
    "source_ref",
    "target_ref",
    "error_summary",
    "error_details",
    "git_repo",
    "git_branch",
    "git_commit_hash",
    "git_run_tag",
    "git_commit_source",
    "git_commit_author",
    "git_commit_timestamp",
    "host",
    "environment",
    "trigger_type",
    "metrics_json",
    "context_json",
    "api_posted",
    "api_posted_at",
    "api_retry_count",
    "insight_id",
    "parent_run_id",
    # agent outcome fields (migration 2)
    "resolution",
    "input_kind",
    "self_corrected",
    "tokens_input",
    "tokens_output",
    "cost_usd",
    "sla_target_seconds",
)
JSON_COLUMNS: frozenset[str] = frozenset({"metrics_json", "context_json"})
BOOL_COLUMNS: frozenset[str] = frozenset({"api_posted", "self_corrected"})
# Booleans whose NULL means "not reported" and is returned as null; the others (NOT NULL
# columns with a default) read NULL as false.
NULLABLE_BOOL_COLUMNS: frozenset[str] = frozenset({"self_corrected"})
# Stored as floating point (REAL); returned as JSON numbers with a fraction or exponent.
REAL_COLUMNS: frozenset[str] = frozenset({"cost_usd"})
EVENT_COLUMNS: tuple[str, ...] = ("id", "event_id", "timestamp", "level", "message", "data")
"""Fields of a run event, in the order the API returns them."""
QC_COLUMNS: tuple[str, ...] = ("id", "event_id", "score", "notes", "reviewer", "created_at")
"""Fields of a QC review, in the order the API returns them."""
# Outcome columns an agent run reports. Once a run has ended (end_time set), a stored
# non-null value of these (or of end_time) cannot be changed by another post.
AGENT_OUTCOME_COLUMNS: tuple[str, ...] = (
    "resolution",
    "input_kind",
    "self_corrected",
    "tokens_input",
    "tokens_output",
    "cost_usd",
    "sla_target_seconds",
)


class RunConflict(ValueError):
    """A write contradicts what the stored run already says (answered 409)."""


class EndsBeforeStart(ValueError):
    """A run's end time would lie before its start time (answered 422)."""


@dataclass(frozen=True)
class InsertRuns:
    """Insert runs; an existing ``event_id`` is left untouched and reported as duplicate.

    Result: how many rows were created (the others were duplicates, of stored runs or of
    earlier rows of the same operation: the first occurrence wins).

    ``keep_times``: the rows carry ``created_at`` and ``updated_at`` to store as given
    (``POST /api/v1/import/runs`` restoring an export). Otherwise ``updated_at`` of a row
    is ignored (a new run has none) and a missing ``created_at`` is the insert time.
    """

    rows: Sequence[dict[str, Any]]
    keep_times: bool = False


@dataclass(frozen=True)
class UpdateRun:
    """Set ``fields`` on the run ``event_id`` and stamp ``updated_at``.

    Result: the run's ``run_id``, or ``None`` when no such run exists.
    """

    event_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class AppendEvents:
    """Append events (log lines) to the run ``event_id``, all of them or none.

    Each event is a dict with ``timestamp`` (stored UTC form), ``level``, ``message`` and
    ``data`` (a JSON object or ``None``). Result: how many were inserted, or ``None``
    when no such run exists (then nothing is stored).
    """

    event_id: str
    events: Sequence[dict[str, Any]]


@dataclass(frozen=True)
class UpsertAgentRun:
    """Create or complete the agent run ``event_id`` (also its ``run_id``), with QC reviews.

    ``fields`` are the columns the client sent (absent: not sent): ``agent_name``,
    ``job_type``, ``start_time``, ``end_time``, ``status`` (only with ``end_time``),
    ``context_json`` and any of ``AGENT_OUTCOME_COLUMNS``. ``on_create`` holds values used
    only when the run is new (``job_type``, ``start_time`` defaults). ``qc`` are reviews
    (``score``, ``notes``, ``reviewer``); one equal to a stored review of the run is not
    stored again, so a resent post changes nothing.

    Rules, for an existing run: ``agent_name``, ``job_type`` and ``start_time`` must equal
    the stored ones; while the run has not ended, sent outcome fields overwrite; once it
    has ended, a sent ``end_time``, outcome field or ``context_json`` key that differs from
    a stored non-null value is a :class:`RunConflict` (nulls may be filled in). An
    ``end_time`` before the start is :class:`EndsBeforeStart`. When ``end_time`` is set,
    ``status`` is set with it and ``duration_ms`` becomes end minus start.

    Result: ``"created"``, ``"updated"`` or ``"duplicate"`` (nothing changed); on an
    exception nothing of the operation is stored.
    """

    event_id: str
    fields: dict[str, Any]
    on_create: dict[str, Any] = field(default_factory=dict)
    qc: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True)
class AddQc:
    """Store one QC review (``score``, ``notes``, ``reviewer``) of the run ``event_id``.

    Result: the stored review as a dict of ``QC_COLUMNS``, or ``None`` when no such run
    exists (then nothing is stored).
    """

    event_id: str
    review: dict[str, Any]


@dataclass(frozen=True)
class RetentionCounts:
    """What one retention write changed: runs, events and QC reviews (or notes)."""

    runs: int = 0
    events: int = 0
    qc: int = 0


@dataclass(frozen=True)
class BlankPayloads:
    """Blank the raw payloads of the runs of ``event_ids`` that started before
    ``started_before`` (stored UTC form; checked again inside the transaction).

    Sets ``error_details``, ``metrics_json`` and ``context_json`` to NULL, deletes the
    runs' events and sets the ``notes`` of their QC reviews to NULL. Every KPI input
    (status, times, ``duration_ms``, outcome fields, QC scores), ``error_summary`` and
    ``updated_at`` stay. Result: a :class:`RetentionCounts` with ``runs`` that had
    anything removed, ``events`` deleted and ``qc`` notes blanked.
    """

    event_ids: Sequence[str]
    started_before: str


@dataclass(frozen=True)
class DeleteRuns:
    """Delete the runs of ``event_ids`` that started before ``started_before`` (checked
    again inside the transaction), with their events and QC reviews; the per-agent and
    hourly run counts go down with them. Result: a :class:`RetentionCounts` with
    ``runs``, ``events`` and ``qc`` reviews deleted.
    """

    event_ids: Sequence[str]
    started_before: str


@dataclass(frozen=True)
class ReclaimSpace:
    """Give up to ``max_pages`` free pages of the database back to the file system.

    Result: how many pages were freed (0 when none are free or the store cannot).
    """

    max_pages: int


STALE_CLOSE_STATUSES: tuple[str, ...] = ("timeout", "failure", "cancelled")
"""Terminal statuses a stale run may be closed with (``timeout`` by default)."""
STALE_RUN_FIELDS: tuple[str, ...] = (
    "event_id",
    "agent_name",
    "job_type",
    "start_time",
    "last_heard",
)
"""Fields of a stale run as :class:`CloseStaleRuns` and ``Store.stale_runs`` report it;
``last_heard`` is the run's ``updated_at``, else its ``created_at``."""


@dataclass(frozen=True)
class CloseStaleRuns:
    """Close up to ``limit`` stale runs: status ``running`` and nothing heard from them
    (``updated_at``, else ``created_at``) before ``cutoff`` (stored UTC form; checked in
    the transaction, so a run updated meanwhile stays open).

    Each run gets ``status`` (one of ``STALE_CLOSE_STATUSES``); ``end_time``, when it
    has none, becomes its last-heard time (never before ``start_time``) with
    ``duration_ms`` end minus start, as the agent-run upsert computes it; an empty
    ``error_summary`` gets an explanation; ``updated_at`` becomes ``now``. Result: the
    closed runs (oldest first) as dicts of ``STALE_RUN_FIELDS``; fewer than ``limit``
    means none is left.
    """

    cutoff: str
    status: str
    now: str
    limit: int = 500


@dataclass(frozen=True)
class StaleRuns:
    """What ``Store.stale_runs`` found: how many runs are stale, and the first of them
    (oldest first, dicts of ``STALE_RUN_FIELDS``)."""

    total: int
    runs: list[dict[str, Any]]


ALERT_COLUMNS: tuple[str, ...] = (
    "id",
    "rule_name",
    "kind",
    "agent_name",
    "state",
    "value",
    "baseline",
    "threshold",
    "sample_runs",
    "message",
    "fired_at",
    "resolved_at",
    "updated_at",
)
"""Fields of an alert (one firing episode of a rule for an agent), as the API returns them."""


@dataclass(frozen=True)
class SaveAlertRules:
    """Replace the stored alert rules with ``rules`` (JSON-able dicts). Result: ``None``."""

    rules: Sequence[dict[str, Any]]


@dataclass(frozen=True)
class RecordAlerts:
    """Alert state changes of one evaluation, applied together.

    ``fire``: new alerts (``rule_name``, ``kind``, ``agent_name``, ``threshold``,
    ``value``, ``baseline``, ``sample_runs``, ``message``), stored firing unless that
    rule/agent pair already has an open alert. ``resolve``: open alerts (``id`` and their
    final numbers) to close now. ``refresh``: open alerts (``id`` and current numbers) to
    update. Result: the alerts that changed state, fired ones first, each a dict of
    ``ALERT_COLUMNS`` as stored.
    """

    fire: Sequence[dict[str, Any]] = ()
    resolve: Sequence[dict[str, Any]] = ()
    refresh: Sequence[dict[str, Any]] = ()

    def __bool__(self) -> bool:
        return bool(self.fire or self.resolve or self.refresh)


API_KEY_SCOPES: tuple[str, ...] = ("read", "ingest", "admin")
"""Scopes of an API key, each including the ones before it."""
API_KEY_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "scope",
    "prefix",
    "created_at",
    "expires_at",
    "revoked_at",
)
"""Fields of a stored API key as listings show them (the hash is never among them)."""


@dataclass(frozen=True)
class CreateApiKey:
    """Store a new API key: only its hash and its public ``prefix`` (unique).

    ``expires_at``: stored UTC form, or ``None`` for a key that does not expire.
    Result: the stored key as a dict of ``API_KEY_COLUMNS``.
    """

    name: str
    scope: str
    prefix: str
    key_hash: str
    expires_at: str | None = None


@dataclass(frozen=True)
class RevokeApiKey:
    """Revoke the API key ``key_id`` now (a key revoked before keeps its first time).

    Result: the key as a dict of ``API_KEY_COLUMNS``, or ``None`` when no such key exists.
    """

    key_id: int


@dataclass(frozen=True)
class OtlpSpan:
    """One span of an OTLP trace export, mapped by ``otlp.py``.

    Ids are lower-case hex. ``run``: the run row (as ``InsertRuns`` takes it, tokens of
    the span itself included) when the span is a run; else ``event``: the event (as
    ``AppendEvents`` takes it) the span becomes on the run it belongs to, whose tokens
    grow by ``tokens_input``/``tokens_output``.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    tokens_input: int = 0
    tokens_output: int = 0
    run: dict[str, Any] | None = None
    event: dict[str, Any] | None = None


@dataclass(frozen=True)
class IngestOtlpSpans:
    """Store the spans of one OTLP export, in order, each at most once per
    (trace_id, span_id) (a re-sent span changes nothing).

    A run span is inserted with the ``InsertRuns`` rules; its ``parent_run_id`` is the
    ``event_id`` of its parent span when that is a stored run; then the pending spans it
    owns are attached to it (those whose parent chain leads to it; for a run without a
    parent run, every pending span of the trace). Another span is attached to the run
    of its parent span (the nearest run ancestor), else, when its parent is unknown, to
    the trace's first root run; attaching adds its tokens to the run and appends its
    event. A span with no run to attach to yet is kept pending, unless
    ``max_pending`` spans are pending already: then it is rejected.

    Result: an :class:`OtlpIngestResult`; on an exception nothing of the op is stored.
    """

    spans: Sequence[OtlpSpan]
    max_pending: int = 100_000


@dataclass
class OtlpIngestResult:
    """What an :class:`IngestOtlpSpans` did: runs created, spans attached to a run,
    spans left pending, spans already stored, and why spans were rejected."""

    runs: int = 0
    attached: int = 0
    pending: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)


WriteOp = (
    InsertRuns
    | UpdateRun
    | AppendEvents
    | UpsertAgentRun
    | AddQc
    | BlankPayloads
    | DeleteRuns
    | ReclaimSpace
    | CloseStaleRuns
    | SaveAlertRules
    | RecordAlerts
    | CreateApiKey
    | RevokeApiKey
    | IngestOtlpSpans
)

RunJSON = tuple[str, str | None, str | None]
"""A run serialized by the store: (JSON object text, git_repo, git_commit_hash)."""


@dataclass(frozen=True)
class RunFilter:
    """Filters of a run listing; timestamps already in the stored UTC form."""

    agent_name: str | None = None
    job_type: str | None = None
    status: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None
    created_before: str | None = None
    created_after: str | None = None
    start_time_from: str | None = None
    start_time_to: str | None = None
    limit: int = 100
    offset: int = 0


KPI_GROUP_FIELDS: tuple[str, ...] = ("agent_name", "job_type", "day", "week")
"""What ``GET /api/v1/kpis`` can group by."""


@dataclass(frozen=True)
class KpiFilter:
    """Runs a KPI query covers: ``start_time_from <= start_time < start_time_to`` (stored
    UTC form; ``None``: unbounded), of one agent and/or job type when given."""

    agent_name: str | None = None
    job_type: str | None = None
    start_time_from: str | None = None
    start_time_to: str | None = None


@dataclass
class KpiInputs:
    """Aggregated inputs of one KPI group (``kpis.py`` turns them into the KPIs).

    ``durations_ms``: the effective duration of every run that has one (``duration_ms``
    when the client supplied it, else end_time - start_time), in any order.
    """

    total_runs: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    resolved: int = 0
    escalated: int = 0
    with_resolution: int = 0
    self_corrected: int = 0
    self_corrected_set: int = 0
    sla_hits: int = 0
    sla_measured: int = 0
    tokens_input: int = 0
    tokens_output: int = 0
    cost_usd: float = 0.0
    qc_score_sum: int = 0
    qc_count: int = 0
    durations_ms: list[int] = field(default_factory=list)

    def add_run(self, run: dict[str, Any]) -> None:
        """Count one run given as a dict of ``status``, ``resolution``,
        ``self_corrected``, ``end_time``, ``sla_target_seconds``, ``kpi_duration_ms``
        (its effective duration or ``None``), ``tokens_input``, ``tokens_output`` and
        ``cost_usd`` (for stores that aggregate in Python rather than in SQL)."""
        self.total_runs += 1
        status = run["status"]
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        resolution = run["resolution"]
        if resolution is not None:
            self.with_resolution += 1
            self.resolved += resolution == "resolved"
            self.escalated += resolution == "escalated"
        if run["self_corrected"] is not None:
            self.self_corrected_set += 1
            self.self_corrected += bool(run["self_corrected"])
        duration = run["kpi_duration_ms"]
        target = run["sla_target_seconds"]
        if run["end_time"] is not None and target is not None:
            self.sla_measured += 1
            self.sla_hits += duration is not None and duration <= target * 1000
        self.tokens_input += run["tokens_input"] or 0
        self.tokens_output += run["tokens_output"] or 0
        self.cost_usd += run["cost_usd"] or 0.0
        if duration is not None:
            self.durations_ms.append(int(duration))


@dataclass(frozen=True)
class AlertFilter:
    """Filters of an alert listing (newest ``fired_at`` first)."""

    state: str | None = None
    rule_name: str | None = None
    agent_name: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class RetentionPage:
    """One page of a retention scan (``Store.retention_candidates``).

    ``event_ids``: the runs of the page the sweep acts on. ``after``: the key
    (start_time, position) of the last run examined, to pass for the next page; ``None``
    when no run is left.
    """

    event_ids: list[str]
    after: tuple[str, int] | None


@dataclass
class StoreInfo:
    """What ``/health`` and ``/metrics`` report about the store."""

    backend: str
    location: str
    journal_mode: str
    synchronous: str
    extra: dict[str, Any] = field(default_factory=dict)


class Store(Protocol):
    """A run store. Query methods are thread-safe; ``apply`` is called by one writer."""

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent)."""

    def apply(self, ops: Sequence[WriteOp]) -> list[Any]:
        """Apply ``ops`` in one durable transaction; return one result or exception each.

        An exception for one operation means that operation changed nothing; the others
        are committed. If the commit itself fails, the exception propagates and nothing
        of the group is stored.
        """

    def get_run(self, event_id: str) -> dict[str, Any] | None:
        """The stored run, or ``None``."""

    def get_run_json(self, event_id: str) -> RunJSON | None:
        """``get_run`` serialized by the database: the JSON object's text equals
        ``orjson.dumps(get_run(event_id))``; the API's hot read path."""

    def list_runs(self, run_filter: RunFilter) -> list[dict[str, Any]]:
        """Runs matching the filter, newest ``created_at`` first."""

    def list_runs_json(self, run_filter: RunFilter) -> list[RunJSON]:
        """``list_runs`` serialized by the database, as ``get_run_json``."""

    def iter_runs(
        self, run_filter: RunFilter, chunk_size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        """Every run matching the filter (its ``limit`` and ``offset`` are ignored),
        newest first (``created_at`` DESC, then insertion order DESC), as ``list_runs``
        dicts in chunks of at most ``chunk_size``. Each chunk is a separate short read
        (keyset pagination), so memory stays bounded and no transaction is held between
        chunks; the generator may be advanced from different threads, one at a time."""

    def list_events(
        self, event_id: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]] | None:
        """Events of the run with ``id > after_id``, oldest (lowest ``id``) first, at most
        ``limit``; each a dict of ``EVENT_COLUMNS`` with ``data`` decoded. ``None`` when
        no such run exists."""

    def list_qc(self, event_id: str) -> list[dict[str, Any]] | None:
        """QC reviews of the run, oldest (lowest ``id``) first, each a dict of
        ``QC_COLUMNS``. ``None`` when no such run exists."""

    def distinct_values(self) -> tuple[list[str], list[str]]:
        """Sorted distinct agent names and job types."""

    def run_counts(self, since: str, until: str) -> tuple[int, dict[str, int], int]:
        """Total runs, runs per agent, and runs with ``since < created_at <= until``."""

    def kpi_inputs(
        self, kpi_filter: KpiFilter, group_by: Sequence[str], tz: str
    ) -> dict[tuple[str, ...], KpiInputs]:
        """Aggregated KPI inputs per group of the runs ``kpi_filter`` selects.

        ``group_by`` names fields of ``KPI_GROUP_FIELDS``; a key holds one value per
        name, in that order (``()`` for one overall group). ``day`` ("YYYY-MM-DD") and
        ``week`` ("YYYY-Www", ISO) are those of ``start_time`` in the IANA zone ``tz``.
        Groups without runs are absent."""

    def hourly_kpi_inputs(self, kpi_filter: KpiFilter) -> dict[str, KpiInputs]:
        """KPI inputs (QC reviews not counted) of the runs ``kpi_filter`` selects, per UTC
        hour of ``start_time`` ("YYYY-MM-DDTHH"); hours without runs are absent. Each
        hour's other inputs equal those of ``kpi_inputs`` over that hour."""

    def recent_kpi_inputs(self, agent_name: str, limit: int) -> KpiInputs:
        """KPI inputs (without QC) of the agent's ``limit`` most recently recorded runs
        (highest ``created_at``); alert rules with a run-count window use them."""

    def get_alert_rules(self) -> list[dict[str, Any]] | None:
        """The stored alert rules; ``None`` when none were ever saved (built-ins apply)."""

    def list_alerts(self, alert_filter: AlertFilter) -> list[dict[str, Any]]:
        """Alerts matching the filter, newest ``fired_at`` first, as ``ALERT_COLUMNS``."""

    def open_alerts(self) -> list[dict[str, Any]]:
        """Every alert whose state is ``firing``."""

    def retention_candidates(
        self, started_before: str, after: tuple[str, int] | None, limit: int, payloads: bool
    ) -> RetentionPage:
        """One keyset page of the runs with ``start_time < started_before``: at most
        ``limit`` runs examined in (start_time, position) order after ``after``; those
        whose payload a :class:`BlankPayloads` would change (``payloads``), or all of
        them (for :class:`DeleteRuns`). A short read: no transaction is held."""

    def retention_preview(
        self, payload_cutoff: str | None, run_cutoff: str | None
    ) -> tuple[RetentionCounts, RetentionCounts]:
        """What a sweep with these cutoffs (stored UTC form; ``None``: off) would change
        now, counted with the predicates of :class:`DeleteRuns` and
        :class:`BlankPayloads`: (runs, events, QC reviews) deleted, then (runs, events,
        QC notes) of the runs blanked, which excludes the runs deletion removes first."""

    def stale_runs(self, cutoff: str, limit: int) -> StaleRuns:
        """The runs :class:`CloseStaleRuns` with ``cutoff`` would close now: how many,
        and the first ``limit`` of them in the order it closes them."""

    def find_api_key(self, prefix: str) -> dict[str, Any] | None:
        """The API key with this ``prefix``: ``API_KEY_COLUMNS`` plus ``key_hash``, or
        ``None``. The caller compares the hash (in constant time) and checks expiry and
        revocation."""

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every API key (revoked and expired ones too), oldest first, as
        ``API_KEY_COLUMNS``."""

    def lead(self, role: str) -> bool:
        """Whether this process is the one that runs the background job ``role``
        (alert evaluation, retention, weekly export) now. With several processes on one
        database exactly one of them leads each role at a time; when it stops, another
        takes over at its next try. Call it before each run of such a job."""

    def info(self) -> StoreInfo:
        """Backend facts for health and metrics endpoints."""

    def close(self) -> None:
        """Release every connection."""
