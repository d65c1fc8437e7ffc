"""The embedded SQLite backend (standard library ``sqlite3``).

One write connection, used only by the ingest writer thread, applies groups of
operations in one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (WAL + ``synchronous=FULL``: the
commit returns after the WAL is fsync'd). Readers get one connection per thread, so the
thread pool's queries run beside the writer.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from local_telemetry import kpis
from local_telemetry.storage import (
    sqlite_alerts,
    sqlite_keys,
    sqlite_retention,
    sqlite_series,
    sqlite_stale,
)
from local_telemetry.storage.base import (
    AGENT_OUTCOME_COLUMNS,
    BOOL_COLUMNS,
    EVENT_COLUMNS,
    JSON_COLUMNS,
    NULLABLE_BOOL_COLUMNS,
    QC_COLUMNS,
    REAL_COLUMNS,
    RUN_COLUMNS,
    AddQc,
    AlertFilter,
    AppendEvents,
    BlankPayloads,
    CloseStaleRuns,
    CreateApiKey,
    DeleteRuns,
    EndsBeforeStart,
    IngestOtlpSpans,
    InsertRuns,
    KpiFilter,
    KpiInputs,
    ReclaimSpace,
    RecordAlerts,
    RetentionCounts,
    RetentionPage,
    RevokeApiKey,
    RunConflict,
    RunFilter,
    RunJSON,
    SaveAlertRules,
    StaleRuns,
    StoreInfo,
    UpdateRun,
    UpsertAgentRun,
    WriteOp,
)
from local_telemetry.storage.migrations import sqlite as migrations
from local_telemetry.storage.sqlite_otlp import apply_op as apply_otlp_op
from local_telemetry.storage.sqlite_tx import isolated
from local_telemetry.timestamps import TimestampError, now_stored, parse_instant, to_stored

WRITER_CACHE_KIB = 64 * 1024
FULL_BELOW_BYTES = 1024 * 1024
"""Free space under which a failed write is taken for "disk full" (see ``looks_full``)."""
# duration_ms_supplied (migration 4) is stored, not returned: whether the client sent
# duration_ms (KPIs use it then, else end_time - start_time). An insert row may say so
# itself (the agent-runs upsert computes its duration: not supplied); otherwise it is
# supplied when the row has a duration_ms.
SUPPLIED_COLUMN = "duration_ms_supplied"
# updated_at last: only an import (InsertRuns.keep_times) stores a row's own value.
INSERT_COLUMNS: tuple[str, ...] = (
    *(c for c in RUN_COLUMNS if c != "updated_at"),
    SUPPLIED_COLUMN,
    "updated_at",
)
_INSERT_SQL = (
    f"INSERT INTO agent_runs ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in INSERT_COLUMNS)}) ON CONFLICT(event_id) DO NOTHING"
)
_SELECT_COLUMNS = ", ".join(RUN_COLUMNS)
_DEFAULTS: dict[str, Any] = {
    "status": "running",
    "items_discovered": 0,
    "items_succeeded": 0,
    "items_failed": 0,
    "items_skipped": 0,
    "duration_ms": 0,
    "api_posted": 0,
    "api_retry_count": 0,
}
_UPDATABLE = (frozenset(RUN_COLUMNS) | {SUPPLIED_COLUMN}) - {"event_id", "created_at", "updated_at"}
# Positions in INSERT_COLUMNS, so the hot insert loop does no per-column lookups.
_DEFAULT_AT = tuple((INSERT_COLUMNS.index(c), v) for c, v in _DEFAULTS.items())
_JSON_AT = tuple(INSERT_COLUMNS.index(c) for c in sorted(JSON_COLUMNS))
_CREATED_AT = INSERT_COLUMNS.index("created_at")
_AGENT_NAME = INSERT_COLUMNS.index("agent_name")
_SUPPLIED = INSERT_COLUMNS.index(SUPPLIED_COLUMN)
_DURATION = INSERT_COLUMNS.index("duration_ms")
_UPDATED_AT = INSERT_COLUMNS.index("updated_at")
_MAX_VARIABLES = 30_000  # SQLite allows 32,766 parameters per statement
_HOURLY_SQL = (
    "INSERT INTO run_counts_hourly(hour, runs) VALUES (?, ?) "
    "ON CONFLICT(hour) DO UPDATE SET runs = runs + excluded.runs"
)
_COUNT_SQL = (
    "INSERT INTO run_counts(agent_name, runs) VALUES (?, ?) "
    "ON CONFLICT(agent_name) DO UPDATE SET runs = runs + excluded.runs"
)


_EVENT_SELECT = f"SELECT {', '.join(EVENT_COLUMNS)} FROM run_events"
_EVENT_INSERT_SQL = (
    "INSERT INTO run_events (event_id, timestamp, level, message, data) VALUES (?, ?, ?, ?, ?)"
)
_QC_SELECT = f"SELECT {', '.join(QC_COLUMNS)} FROM agent_qc"
_QC_INSERT_SQL = (
    "INSERT INTO agent_qc (event_id, score, notes, reviewer, created_at) "
    f"VALUES (?, ?, ?, ?, ?) RETURNING {', '.join(QC_COLUMNS)}"
)
# What an agent-run post is compared with: identity, times, outcome and metadata.
AGENT_RUN_COLUMNS: tuple[str, ...] = (
    "agent_name",
    "job_type",
    "start_time",
    "end_time",
    "context_json",
    *AGENT_OUTCOME_COLUMNS,
)
_AGENT_RUN_SELECT = f"SELECT {', '.join(AGENT_RUN_COLUMNS)} FROM agent_runs WHERE event_id = ?"
# A run belongs to one agent: another agent_name or job_type is always a conflict.
_IDENTITY_COLUMNS = ("agent_name", "job_type")

# SQL function (registered on every connection) writing a number as orjson does. SQLite's
# own JSON text for a REAL keeps 15 significant digits (0.1 + 0.2 would come back as 0.3,
# 1/3 as 0.333333333333333) and spells exponents its own way (1.0e-05 for 0.00001), so
# the JSON reads would differ from the dict reads; only REAL columns pay this call.
JSON_NUMBER_FUNCTION = "local_telemetry_json_number"


def _json_number(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _json_expression(column: str) -> str:
    if column in JSON_COLUMNS:  # text adopted from an older database may not be JSON
        return f"CASE WHEN json_valid({column}) THEN json({column}) ELSE {column} END"
    if column in NULLABLE_BOOL_COLUMNS:
        return (
            f"json(CASE WHEN {column} IS NULL THEN 'null' "
            f"WHEN {column} THEN 'true' ELSE 'false' END)"
        )
    if column in BOOL_COLUMNS:
        return f"json(CASE WHEN {column} THEN 'true' ELSE 'false' END)"
    if column in REAL_COLUMNS:
        return (
            f"CASE WHEN {column} IS NULL THEN NULL ELSE json({JSON_NUMBER_FUNCTION}({column})) END"
        )
    return column


# One run as a JSON object built by SQLite, plus the two fields its links need. The key
# order and values equal orjson.dumps(decode_row(row)) (tests/storage checks it).
_JSON_SELECT = (
    "json_object("
    + ", ".join(f"'{c}', {_json_expression(c)}" for c in RUN_COLUMNS)
    + "), git_repo, git_commit_hash"
)


def _filter_clauses(run_filter: RunFilter) -> tuple[list[str], list[Any]]:
    """The WHERE conditions and parameters of a run filter (list and export alike)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("agent_name", "job_type", "status", "run_id", "parent_run_id"):
        value = getattr(run_filter, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    for attribute, column, operator in (
        ("created_before", "created_at", "<"),
        ("created_after", "created_at", ">"),
        ("start_time_from", "start_time", ">="),
        ("start_time_to", "start_time", "<="),
    ):
        value = getattr(run_filter, attribute)
        if value is not None:
            clauses.append(f"{column} {operator} ?")
            params.append(value)
    return clauses, params


def _list_query(columns: str, run_filter: RunFilter) -> tuple[str, list[Any]]:
    clauses, params = _filter_clauses(run_filter)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    # Pick the page's ids from an index first, then build only those rows: a filter the
    # order index cannot serve (a start_time range) sorts (created_at, id) pairs, not
    # whole serialized runs.
    sql = (
        f"SELECT {columns} FROM agent_runs WHERE id IN ("
        f"SELECT id FROM agent_runs {where} "
        "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        ") ORDER BY created_at DESC, id DESC"
    )
    return sql, [*params, run_filter.limit, run_filter.offset]


def _export_query(run_filter: RunFilter, after: tuple[str, int] | None) -> tuple[str, list[Any]]:
    """One keyset page of an export: rows after ``after`` = (created_at, id) of the last
    row of the previous page, in (created_at DESC, id DESC) order; ``id``, ``created_at``
    first, then the stored columns. The LIMIT is the last parameter, left to the caller."""
    clauses, params = _filter_clauses(run_filter)
    if after is not None:
        clauses.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params.extend((after[0], after[0], after[1]))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT id, created_at, {_SELECT_COLUMNS} FROM agent_runs {where} "
        "ORDER BY created_at DESC, id DESC LIMIT ?"
    )
    return sql, params


def _next_hour(stamp: str) -> str:
    """The hour key ("YYYY-MM-DDTHH") of the first whole hour after ``stamp``."""
    start = datetime.fromisoformat(stamp[:13] + ":00:00+00:00")
    return (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H")


class _NewRunCounts:
    """Runs created in one transaction, per agent and per hour, written at its end."""

    def __init__(self) -> None:
        self.per_agent: Counter[str] = Counter()
        self.per_hour: Counter[str] = Counter()

    def add(self, other: _NewRunCounts) -> None:
        self.per_agent.update(other.per_agent)
        self.per_hour.update(other.per_hour)

    def write(self, conn: sqlite3.Connection) -> None:
        if self.per_agent:
            conn.executemany(_COUNT_SQL, self.per_agent.items())
            conn.executemany(_HOURLY_SQL, self.per_hour.items())


def _existing_ids(conn: sqlite3.Connection, event_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(event_ids), _MAX_VARIABLES):
        chunk = event_ids[start : start + _MAX_VARIABLES]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT event_id FROM agent_runs WHERE event_id IN ({marks})"
        found.update(row[0] for row in conn.execute(sql, chunk))
    return found


def _insert_rows(
    conn: sqlite3.Connection,
    rows: Sequence[dict[str, Any]],
    counts: _NewRunCounts,
    keep_times: Sequence[bool] | None = None,
) -> list[bool]:
    """Insert rows whose event_id is new; return created (True) or duplicate per row.

    Inside the writer's transaction nobody else can write, so one look-up of the ids
    tells exactly which rows are duplicates; the first occurrence of an id wins.
    ``keep_times[i]``: row ``i`` keeps its own ``updated_at`` (else it is stored NULL).
    """
    now = now_stored()
    taken = _existing_ids(conn, [row["event_id"] for row in rows])
    created: list[bool] = []
    fresh: list[list[Any]] = []
    pending = _NewRunCounts()
    for position, row in enumerate(rows):
        event_id = row["event_id"]
        if event_id in taken:
            created.append(False)
            continue
        taken.add(event_id)
        created.append(True)
        values = [row.get(column) for column in INSERT_COLUMNS]
        if keep_times is None or not keep_times[position]:
            values[_UPDATED_AT] = None
        supplied = values[_SUPPLIED]
        if supplied is None:
            supplied = values[_DURATION]
            values[_SUPPLIED] = 0 if supplied is None else 1
        else:
            values[_SUPPLIED] = 1 if supplied else 0
        for index, default in _DEFAULT_AT:
            if values[index] is None:
                values[index] = default
        if values[_CREATED_AT] is None:
            values[_CREATED_AT] = now
        for index in _JSON_AT:
            if values[index] is not None:
                values[index] = orjson.dumps(values[index]).decode()
        pending.per_agent[str(values[_AGENT_NAME])] += 1
        pending.per_hour[str(values[_CREATED_AT])[:13]] += 1
        fresh.append(values)
    conn.executemany(_INSERT_SQL, fresh)
    counts.add(pending)  # only once every row went in
    return created


def encode_value(column: str, value: Any) -> Any:
    """Python value of a run field to the value stored in its column."""
    if value is None:
        return None
    if column in JSON_COLUMNS:
        return orjson.dumps(value).decode()
    if column in BOOL_COLUMNS:
        return 1 if value else 0
    if column in REAL_COLUMNS:
        return float(value)
    return value


def decode_row(row: Sequence[Any]) -> dict[str, Any]:
    """A stored row (columns in ``RUN_COLUMNS`` order) as the API's run dict."""
    run = dict(zip(RUN_COLUMNS, row, strict=True))
    for column in JSON_COLUMNS:
        text = run[column]
        if text is not None:
            # Text adopted from an older database may not be JSON: keep it as it was.
            with contextlib.suppress(orjson.JSONDecodeError):
                run[column] = orjson.loads(text)
    for column in BOOL_COLUMNS:
        value = run[column]
        if value is not None or column not in NULLABLE_BOOL_COLUMNS:
            run[column] = bool(value)
    return run


def decode_event(row: Sequence[Any]) -> dict[str, Any]:
    """A stored event row (``EVENT_COLUMNS`` order) as the API's event dict."""
    event = dict(zip(EVENT_COLUMNS, row, strict=True))
    if event["data"] is not None:
        event["data"] = orjson.loads(event["data"])
    return event


def _duration_ms(start: str, end: str) -> int | None:
    """Milliseconds from ``start`` to ``end``; ``None`` if either is not a timestamp
    (text adopted from an older database)."""
    try:
        return (parse_instant(end) - parse_instant(start)) // timedelta(milliseconds=1)
    except (TimestampError, ValueError):
        return None


def _insert_reviews(
    conn: sqlite3.Connection, event_id: str, reviews: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    now = now_stored()
    stored: list[dict[str, Any]] = []
    for review in reviews:
        values = (event_id, review["score"], review.get("notes"), review.get("reviewer"), now)
        row = conn.execute(_QC_INSERT_SQL, values).fetchone()
        stored.append(dict(zip(QC_COLUMNS, row, strict=True)))
    return stored


def _new_reviews(
    conn: sqlite3.Connection, event_id: str, reviews: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The reviews not already stored for the run (same score, notes and reviewer)."""
    if not reviews:
        return []
    known = set(
        conn.execute(
            "SELECT score, notes, reviewer FROM agent_qc WHERE event_id = ?", (event_id,)
        ).fetchall()
    )
    return [
        review
        for review in reviews
        if (review["score"], review.get("notes"), review.get("reviewer")) not in known
    ]


def _merged_context(run_id: str, stored: Any, sent: dict[str, Any], ended: bool) -> Any:
    """``context_json`` after a post's metadata: keys added or (while running) replaced;
    ``None`` when nothing changes."""
    current: Any = None
    if stored is not None:
        try:
            current = orjson.loads(stored)
        except orjson.JSONDecodeError:
            current = stored  # text adopted from an older database
    if not isinstance(current, dict):
        if current is not None and ended:
            raise RunConflict(f"Run {run_id} has ended; its metadata cannot be replaced")
        return sent
    if ended:
        changed = sorted(k for k, v in sent.items() if k in current and current[k] != v)
        if changed:
            raise RunConflict(
                f"Run {run_id} has ended with other metadata values for: {', '.join(changed)}"
            )
    merged = {**current, **sent}
    return None if merged == current else merged


def agent_run_changes(run_id: str, run: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The columns a later post of an agent run changes on its stored ``run`` (a dict of
    ``AGENT_RUN_COLUMNS``), by the rules of ``UpsertAgentRun``: the identity must match;
    outcome fields and times may change until the run has ended, after which only nulls
    may be filled in (:class:`RunConflict` otherwise); ``context_json`` keys merge; a new
    end sets ``duration_ms`` (end minus start) and the sent ``status``. Shared by every
    backend, so the rules cannot drift apart.
    """
    ended = run["end_time"] is not None
    for column in _IDENTITY_COLUMNS:
        if column in fields and fields[column] != run[column]:
            raise RunConflict(
                f"Run {run_id} is stored with {column} {run[column]!r}, not {fields[column]!r}"
            )
    changes: dict[str, Any] = {}
    for column in ("start_time", "end_time", *AGENT_OUTCOME_COLUMNS):
        if column not in fields:
            continue
        current = run[column]
        if encode_value(column, fields[column]) == current:
            continue
        if ended and current is not None:
            name = {"start_time": "started_at", "end_time": "ended_at"}.get(column, column)
            raise RunConflict(f"Run {run_id} has ended with another {name}: {current!r}")
        changes[column] = fields[column]
    if "context_json" in fields:
        merged = _merged_context(run_id, run["context_json"], fields["context_json"], ended)
        if merged is not None:
            changes["context_json"] = merged
    start = changes.get("start_time", run["start_time"])
    end = changes.get("end_time", run["end_time"])
    if end is not None and ("start_time" in changes or "end_time" in changes):
        if end < start:
            raise EndsBeforeStart(f"ended_at must not be before started_at ({start})")
        duration = _duration_ms(start, end)
        if duration is not None:
            changes["duration_ms"] = duration
            changes[SUPPLIED_COLUMN] = 0
    if "status" in fields and ("end_time" in changes or "resolution" in changes):
        changes["status"] = fields["status"]
    return changes


def _upsert_agent_run(conn: sqlite3.Connection, op: UpsertAgentRun, counts: _NewRunCounts) -> str:
    """Apply :class:`UpsertAgentRun` (its rules are documented there)."""
    run_id, fields = op.event_id, op.fields
    found = conn.execute(_AGENT_RUN_SELECT, (run_id,)).fetchone()
    if found is None:
        row = {**op.on_create, **fields, "event_id": run_id, "run_id": run_id}
        end = row.get("end_time")
        if end is not None:
            if end < row["start_time"]:  # stored form: text order is time order
                raise EndsBeforeStart("ended_at must not be before started_at")
            row["duration_ms"] = _duration_ms(row["start_time"], end)
        # Computed from ended_at - started_at, not sent: KPIs compute the same value.
        row[SUPPLIED_COLUMN] = False
        pending = _NewRunCounts()
        _insert_rows(conn, [row], pending)
        _insert_reviews(conn, run_id, op.qc)
        counts.add(pending)
        return "created"
    run = dict(zip(AGENT_RUN_COLUMNS, found, strict=True))
    changes = agent_run_changes(run_id, run, fields)
    reviews = _new_reviews(conn, run_id, op.qc)
    if not changes and not reviews:
        return "duplicate"
    if changes:
        SQLiteStore._update(conn, UpdateRun(run_id, changes))
    _insert_reviews(conn, run_id, reviews)
    return "updated"


# Where a zone's offsets cannot be listed (text adopted from an older database that is no
# timestamp, or too many changes), the UTC slot of start_time decides a run's local day:
# the UTC hour in a zone whose offsets are whole hours, else the quarter hour (every
# offset in use is a multiple of 15 minutes). Each is a prefix local_date() can read.
_SLOT_HOUR = "substr(r.start_time, 1, 13) || ':00'"
_SLOT_QUARTER = (
    "substr(r.start_time, 1, 14)"
    " || printf('%02d', CAST(substr(r.start_time, 15, 2) AS INTEGER) / 15 * 15)"
)
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "Universal"})
_MAX_OFFSET_SPANS = 400


# A KPI query over days or weeks aggregates its range piece by piece (see kpi_inputs):
# at most about this many pieces of whole local days.
_MAX_PIECES = 64
_UTC_DAY = "substr(r.start_time, 1, 10)"
_LOCAL_DAY = "date(substr(r.start_time, 1, 19), ?)"
# (lower bound of start_time or None, upper bound or None, SQL of the local date, params)
_Piece = tuple[str | None, str | None, str, list[Any]]


def _local_date_sql(
    conn: sqlite3.Connection, kpi_filter: KpiFilter, tz: str
) -> tuple[tuple[str, list[Any]], list[_Piece]] | None:
    """SQL of a run's local date ("YYYY-MM-DD") in ``tz`` over the whole range: ``date()``
    of start_time plus the offset in force then (a CASE over the zone's offset changes in
    the range; ``substr`` in UTC). And the range, from its first run to its last, cut at
    local midnights into at most about ``_MAX_PIECES`` pieces of whole local days (see
    ``kpis.day_pieces``), each with its SQL of the local date: for one offset in force
    throughout the piece, ``date()`` plus that offset (what the CASE gives there, for
    any text), else the CASE. ``None`` when the range's bounds are not timestamps or it
    has too many changes (not in UTC)."""
    utc = tz in _UTC_NAMES
    whole: list[_Piece] = [(None, None, _UTC_DAY, [])]
    where, params = _kpi_where(kpi_filter)
    bounds = [
        conn.execute(
            f"SELECT {edge}(r.start_time) FROM agent_runs r INDEXED BY idx_runs_kpi {where}",
            params,
        ).fetchone()[0]
        for edge in ("MIN", "MAX")
    ]
    low, high = bounds
    if low is None:
        return (_UTC_DAY, []), whole  # no runs: any expression will do
    try:
        first, last = parse_instant(low), parse_instant(high)
    except (TimestampError, ValueError):
        return ((_UTC_DAY, []), whole) if utc else None
    spans = [(first, 0)] if utc else kpis.offset_spans(kpis.zone(tz), first, last)
    if len(spans) > _MAX_OFFSET_SPANS and not utc:
        return None
    cases = " ".join("WHEN r.start_time < ? THEN ?" for _ in spans[1:])
    values: list[Any] = []
    for (_, offset), (change, _) in itertools.pairwise(spans):
        values += [to_stored(change), f"{offset:+d} seconds"]
    values.append(f"{spans[-1][1]:+d} seconds")
    shift = f"CASE {cases} ELSE ? END" if cases else "?"
    whole_sql = _UTC_DAY if utc else f"date(substr(r.start_time, 1, 19), {shift})"
    days = (last - first).days + 1
    cuts = kpis.day_pieces(spans, last, max(1, -(-days // _MAX_PIECES)))
    edges = [None, *(to_stored(at) for at, _ in cuts[1:]), None]
    pieces: list[_Piece] = []
    for (lower, upper), (_, fixed) in zip(itertools.pairwise(edges), cuts, strict=True):
        if utc:
            pieces.append((lower, upper, _UTC_DAY, []))
        elif fixed is None:  # the offset changes within the piece
            pieces.append((lower, upper, whole_sql, values))
        else:
            pieces.append((lower, upper, _LOCAL_DAY, [f"{fixed:+d} seconds"]))
    return (whole_sql, [] if utc else values), pieces


def _kpi_where(
    kpi_filter: KpiFilter, lower: str | None = None, upper: str | None = None
) -> tuple[str, list[Any]]:
    """WHERE clause of the filter's runs; with ``lower``/``upper``, of those whose
    start_time is also >= ``lower`` and < ``upper`` (one bound per side, the tighter: the
    index range is then the piece's alone)."""
    clauses: list[str] = []
    params: list[Any] = []
    start_from, start_to = kpi_filter.start_time_from, kpi_filter.start_time_to
    if lower is not None and (start_from is None or lower > start_from):
        start_from = lower
    if upper is not None and (start_to is None or upper < start_to):
        start_to = upper
    for column, value, operator in (
        ("start_time", start_from, ">="),
        ("start_time", start_to, "<"),
        ("agent_name", kpi_filter.agent_name, "="),
        ("job_type", kpi_filter.job_type, "="),
    ):
        if value is not None:
            clauses.append(f"r.{column} {operator} ?")
            params.append(value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


# The aggregate columns of a KPI query, per status (``_add_kpi_row`` reads one row).
_KPI_AGGREGATES = (
    "r.status, COUNT(*),"
    " SUM(r.resolution = 'resolved'), SUM(r.resolution = 'escalated'),"
    " COUNT(r.resolution), SUM(r.self_corrected = 1), COUNT(r.self_corrected),"
    " SUM(r.kpi_duration_ms <= r.sla_target_seconds * 1000 AND r.end_time IS NOT NULL),"
    " SUM(r.end_time IS NOT NULL AND r.sla_target_seconds IS NOT NULL),"
    " TOTAL(r.tokens_input), TOTAL(r.tokens_output), TOTAL(r.cost_usd),"
    " group_concat(r.kpi_duration_ms)"
)


def _add_kpi_row(inputs: KpiInputs, values: Sequence[Any]) -> None:
    """Add one row of the KPI aggregate query (after its key columns) to ``inputs``."""
    (status, count, resolved, escalated, with_resolution, corrected, corrected_set,
     hits, measured, tokens_in, tokens_out, cost, durations) = values  # fmt: skip
    inputs.total_runs += count
    inputs.status_counts[status] = inputs.status_counts.get(status, 0) + count
    inputs.resolved += resolved or 0
    inputs.escalated += escalated or 0
    inputs.with_resolution += with_resolution
    inputs.self_corrected += corrected or 0
    inputs.self_corrected_set += corrected_set
    inputs.sla_hits += hits or 0
    inputs.sla_measured += measured or 0
    inputs.tokens_input += int(tokens_in)
    inputs.tokens_output += int(tokens_out)
    inputs.cost_usd += cost
    if durations:
        inputs.durations_ms.extend(map(int, durations.split(",")))


def _alert_write(conn: sqlite3.Connection, op: SaveAlertRules | RecordAlerts) -> Any:
    """Apply an alert write in a savepoint of its own: all of it, or none of it."""
    if isinstance(op, SaveAlertRules):
        return isolated(conn, "alerts", lambda: sqlite_alerts.save_rules(conn, op))
    return isolated(conn, "alerts", lambda: sqlite_alerts.record_alerts(conn, op))


def _settings_write(
    conn: sqlite3.Connection, op: SaveAlertRules | RecordAlerts | CreateApiKey | RevokeApiKey
) -> Any:
    """An alert or API-key write in a savepoint of its own: all of it, or none of it."""
    if isinstance(op, SaveAlertRules | RecordAlerts):
        return _alert_write(conn, op)
    if isinstance(op, CreateApiKey):
        return isolated(conn, "api_key", lambda: sqlite_keys.create(conn, op))
    return isolated(conn, "api_key", lambda: sqlite_keys.revoke(conn, op))


def _maintenance_write(
    conn: sqlite3.Connection, op: BlankPayloads | DeleteRuns | ReclaimSpace | CloseStaleRuns
) -> Any:
    """A retention or stale-run write in a savepoint of its own."""
    if isinstance(op, CloseStaleRuns):
        return sqlite_stale.apply_op(conn, op)
    return sqlite_retention.apply_op(conn, op)


class SQLiteStore:
    """:class:`~local_telemetry.storage.base.Store` on one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        journal_mode: str = "WAL",
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = Path(path)
        self.journal_mode = journal_mode
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None

    # ----- connections -----

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute(f"PRAGMA journal_mode = {self.journal_mode}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Savepoint sub-journals and sorts in memory, not in temporary files.
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.create_function(JSON_NUMBER_FUNCTION, 1, _json_number, deterministic=True)
        with self._lock:
            self._connections.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _write_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = self._connect()
            # Index pages the writer touches stay in its cache (64 MiB) instead of being
            # re-read from the OS for every insert into a large table.
            self._writer.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        return self._writer

    # ----- Store protocol -----

    def migrate(self) -> None:
        """Apply pending schema migrations."""
        migrations.migrate(self._write_conn())

    def apply(self, ops: Sequence[WriteOp]) -> list[Any]:
        """Apply a group of writes in one transaction (see ``Store.apply``).

        Consecutive inserts of the group are written by one ``executemany`` (queue order
        is kept: an update between two inserts runs between them). A statement that
        fails undoes only itself, events are appended in a savepoint of their own, and
        a failing insert run is retried operation by operation, so one bad write never
        undoes another. Per-agent and hourly counts are added once per group.
        """
        conn = self._write_conn()
        results: list[Any] = []
        counts = _NewRunCounts()
        conn.execute("BEGIN IMMEDIATE")
        try:
            index = 0
            while index < len(ops):
                op = ops[index]
                if isinstance(op, UpdateRun):
                    results.append(self._update_or_error(conn, op))
                    index += 1
                    continue
                if isinstance(op, AppendEvents):
                    results.append(self._append_events_or_error(conn, op))
                    index += 1
                    continue
                if isinstance(op, UpsertAgentRun | IngestOtlpSpans):
                    results.append(self._run_write_or_error(conn, op, counts))
                    index += 1
                    continue
                if isinstance(op, AddQc):
                    results.append(self._add_qc_or_error(conn, op))
                    index += 1
                    continue
                if isinstance(op, BlankPayloads | DeleteRuns | ReclaimSpace | CloseStaleRuns):
                    counts.write(conn)  # a run deleted below must be counted first
                    counts = _NewRunCounts()
                    results.append(_maintenance_write(conn, op))
                    index += 1
                    continue
                if isinstance(op, SaveAlertRules | RecordAlerts | CreateApiKey | RevokeApiKey):
                    results.append(_settings_write(conn, op))
                    index += 1
                    continue
                inserts: list[InsertRuns] = []
                while index < len(ops):
                    following = ops[index]
                    if not isinstance(following, InsertRuns):
                        break
                    inserts.append(following)
                    index += 1
                results.extend(self._insert_ops(conn, inserts, counts))
            counts.write(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _update_or_error(self, conn: sqlite3.Connection, op: UpdateRun) -> Any:
        try:
            return self._update(conn, op)
        except (sqlite3.IntegrityError, ValueError) as exc:
            return exc

    @staticmethod
    def _append_events_or_error(conn: sqlite3.Connection, op: AppendEvents) -> Any:
        """Insert every event of ``op`` or none; ``None`` when the run does not exist."""
        found = conn.execute("SELECT 1 FROM agent_runs WHERE event_id = ?", (op.event_id,))
        if found.fetchone() is None:
            return None
        conn.execute("SAVEPOINT events")
        try:
            rows = [
                (
                    op.event_id,
                    event["timestamp"],
                    event["level"],
                    event["message"],
                    None if event.get("data") is None else orjson.dumps(event["data"]).decode(),
                )
                for event in op.events
            ]
            conn.executemany(_EVENT_INSERT_SQL, rows)
        except (sqlite3.IntegrityError, ValueError, TypeError, KeyError) as exc:
            conn.execute("ROLLBACK TO events")
            conn.execute("RELEASE events")
            return exc
        conn.execute("RELEASE events")
        return len(rows)

    @staticmethod
    def _upsert_agent_run_or_error(
        conn: sqlite3.Connection, op: UpsertAgentRun, counts: _NewRunCounts
    ) -> Any:
        """The run and its reviews in a savepoint: all of the operation, or none of it."""
        return isolated(conn, "agent_run", lambda: _upsert_agent_run(conn, op, counts))

    def _run_write_or_error(
        self, conn: sqlite3.Connection, op: UpsertAgentRun | IngestOtlpSpans, counts: _NewRunCounts
    ) -> Any:
        if isinstance(op, UpsertAgentRun):
            return self._upsert_agent_run_or_error(conn, op, counts)
        return self._otlp_spans_or_error(conn, op, counts)

    @staticmethod
    def _otlp_spans_or_error(
        conn: sqlite3.Connection, op: IngestOtlpSpans, counts: _NewRunCounts
    ) -> Any:
        """The spans of one OTLP export in a savepoint: all of the operation, or none."""
        new_runs = _NewRunCounts()  # added to the group's counts only if the op stays

        def insert_run(row: dict[str, Any]) -> bool:
            return _insert_rows(conn, [row], new_runs)[0]

        result = isolated(conn, "otlp", lambda: apply_otlp_op(conn, op, insert_run))
        if isinstance(result, Exception):
            # The spans hold values the database refuses (say, token sums past 64 bits):
            # a ValueError, which the endpoint answers 400, as for any bad export.
            return result if isinstance(result, ValueError) else ValueError(str(result))
        counts.add(new_runs)
        return result

    @staticmethod
    def _add_qc_or_error(conn: sqlite3.Connection, op: AddQc) -> Any:
        """The stored review; ``None`` when the run does not exist."""
        found = conn.execute("SELECT 1 FROM agent_runs WHERE event_id = ?", (op.event_id,))
        if found.fetchone() is None:
            return None
        try:
            [review] = _insert_reviews(conn, op.event_id, [op.review])
        except (sqlite3.IntegrityError, ValueError, TypeError, KeyError) as exc:
            return exc  # one statement: it undid only itself
        return review

    def _insert_ops(
        self, conn: sqlite3.Connection, ops: list[InsertRuns], counts: _NewRunCounts
    ) -> list[Any]:
        """Insert the rows of consecutive operations; one created-count per operation."""
        rows = [row for op in ops for row in op.rows]
        keep_times = [op.keep_times for op in ops for _ in op.rows]
        conn.execute("SAVEPOINT inserts")
        try:
            created = _insert_rows(conn, rows, counts, keep_times)
        except (sqlite3.IntegrityError, ValueError) as exc:
            conn.execute("ROLLBACK TO inserts")
            conn.execute("RELEASE inserts")
            if len(ops) == 1:
                return [exc]
            return [r for op in ops for r in self._insert_ops(conn, [op], counts)]
        conn.execute("RELEASE inserts")
        results: list[Any] = []
        start = 0
        for op in ops:
            results.append(sum(created[start : start + len(op.rows)]))
            start += len(op.rows)
        return results

    @staticmethod
    def _update(conn: sqlite3.Connection, op: UpdateRun) -> str | None:
        unknown = set(op.fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"fields cannot be updated: {', '.join(sorted(unknown))}")
        fields = op.fields
        if "duration_ms" in fields and SUPPLIED_COLUMN not in fields:
            fields = {**fields, SUPPLIED_COLUMN: 0 if fields["duration_ms"] is None else 1}
        columns = list(fields)
        assignments = ", ".join(f"{c} = ?" for c in [*columns, "updated_at"])
        values = [encode_value(c, fields[c]) for c in columns]
        row = conn.execute(
            f"UPDATE agent_runs SET {assignments} WHERE event_id = ? RETURNING run_id",
            [*values, now_stored(), op.event_id],
        ).fetchone()
        return None if row is None else str(row[0])

    def get_run(self, event_id: str) -> dict[str, Any] | None:
        """The run with this ``event_id``, or ``None``."""
        sql = f"SELECT {_SELECT_COLUMNS} FROM agent_runs WHERE event_id = ?"
        row = self._reader().execute(sql, (event_id,)).fetchone()
        return None if row is None else decode_row(row)

    def get_run_json(self, event_id: str) -> RunJSON | None:
        """The run as JSON text (see ``Store.get_run_json``), or ``None``."""
        sql = f"SELECT {_JSON_SELECT} FROM agent_runs WHERE event_id = ?"
        row = self._reader().execute(sql, (event_id,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def list_runs(self, run_filter: RunFilter) -> list[dict[str, Any]]:
        """Runs matching ``run_filter``, newest ``created_at`` first."""
        sql, params = _list_query(_SELECT_COLUMNS, run_filter)
        return [decode_row(row) for row in self._reader().execute(sql, params)]

    def list_runs_json(self, run_filter: RunFilter) -> list[RunJSON]:
        """``list_runs`` with each run as JSON text built by SQLite (no Python dicts)."""
        sql, params = _list_query(_JSON_SELECT, run_filter)
        return [(row[0], row[1], row[2]) for row in self._reader().execute(sql, params)]

    def iter_runs(
        self, run_filter: RunFilter, chunk_size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        """Every run matching ``run_filter`` (``limit``/``offset`` ignored), newest first,
        in chunks of at most ``chunk_size`` (see ``Store.iter_runs``).

        Keyset pagination on (created_at, id): each chunk is one short query on the
        connection of the thread that advances the generator, and no read transaction
        stays open between chunks.
        """
        after: tuple[str, int] | None = None
        while True:
            sql, params = _export_query(run_filter, after)
            rows = self._reader().execute(sql, [*params, chunk_size]).fetchall()
            if not rows:
                return
            after = (rows[-1][1], rows[-1][0])
            yield [decode_row(row[2:]) for row in rows]
            if len(rows) < chunk_size:
                return

    def list_events(
        self, event_id: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]] | None:
        """Events of the run after ``after_id``, oldest first; ``None`` for an unknown run."""
        conn = self._reader()
        # One read transaction: the run and its events are seen at the same instant.
        conn.execute("BEGIN")
        try:
            found = conn.execute("SELECT 1 FROM agent_runs WHERE event_id = ?", (event_id,))
            if found.fetchone() is None:
                return None
            rows = conn.execute(
                f"{_EVENT_SELECT} WHERE event_id = ? AND id > ? ORDER BY id LIMIT ?",
                (event_id, after_id, limit),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return [decode_event(row) for row in rows]

    def list_qc(self, event_id: str) -> list[dict[str, Any]] | None:
        """QC reviews of the run, oldest first; ``None`` for an unknown run."""
        conn = self._reader()
        conn.execute("BEGIN")  # the run and its reviews seen at the same instant
        try:
            found = conn.execute("SELECT 1 FROM agent_runs WHERE event_id = ?", (event_id,))
            if found.fetchone() is None:
                return None
            rows = conn.execute(f"{_QC_SELECT} WHERE event_id = ? ORDER BY id", (event_id,))
            return [dict(zip(QC_COLUMNS, row, strict=True)) for row in rows.fetchall()]
        finally:
            conn.execute("COMMIT")

    def distinct_values(self) -> tuple[list[str], list[str]]:
        """Sorted distinct agent names (from the counts table) and job types."""
        conn = self._reader()
        agents = [r[0] for r in conn.execute("SELECT agent_name FROM run_counts ORDER BY 1")]
        # Skip-scan over the (job_type, created_at) index: one probe per distinct value.
        job_types: list[str] = []
        row = conn.execute("SELECT MIN(job_type) FROM agent_runs").fetchone()
        while row is not None and row[0] is not None:
            job_types.append(row[0])
            row = conn.execute(
                "SELECT MIN(job_type) FROM agent_runs WHERE job_type > ?", (row[0],)
            ).fetchone()
        return agents, job_types

    def run_counts(self, since: str, until: str) -> tuple[int, dict[str, int], int]:
        """Total runs, runs per agent (most first), runs with since < created_at <= until.

        The window is summed from hourly counts; only its partial first and last hours
        are counted row by row (an index range of at most two hours).
        """
        conn = self._reader()
        per_agent = {
            str(name): int(count)
            for name, count in conn.execute(
                "SELECT agent_name, runs FROM run_counts ORDER BY runs DESC, agent_name"
            )
        }
        first_full = _next_hour(since)
        last_partial = until[:13]
        if first_full > last_partial:  # the window lies inside one or two partial hours
            recent = conn.execute(
                "SELECT COUNT(*) FROM agent_runs WHERE created_at > ? AND created_at <= ?",
                (since, until),
            ).fetchone()[0]
        else:
            recent = conn.execute(
                "SELECT (SELECT COUNT(*) FROM agent_runs WHERE created_at > ? AND created_at < ?)"
                " + (SELECT COALESCE(SUM(runs), 0) FROM run_counts_hourly"
                "    WHERE hour >= ? AND hour < ?)"
                " + (SELECT COUNT(*) FROM agent_runs WHERE created_at >= ? AND created_at <= ?)",
                (since, first_full, first_full, last_partial, last_partial, until),
            ).fetchone()[0]
        return sum(per_agent.values()), per_agent, int(recent)

    def kpi_inputs(
        self, kpi_filter: KpiFilter, group_by: Sequence[str], tz: str
    ) -> dict[tuple[str, ...], KpiInputs]:
        """KPI inputs per group (see ``Store.kpi_inputs``).

        SQLite aggregates per (agent_name, job_type, local date of start_time, status)
        as far as the grouping needs them, from the covering index ``idx_runs_kpi``
        whose ``kpi_duration_ms`` (migration 4) is each run's KPI duration, durations as
        one ``group_concat`` per row. Grouped by day or week, the range (from the first
        to the last run the filters select) is aggregated piece by piece: at most
        ``_MAX_PIECES`` pieces of whole local days, one query each, since a GROUP BY sorts
        its rows and sorting a few thousand rows at a time is far cheaper than sorting
        all of them at once. In a piece with one UTC offset throughout, a run's local
        date is ``date()`` of start_time plus that offset (``substr`` in UTC; see
        ``_local_date_sql``): the value the CASE over the zone's offset changes gives
        there, for every text; a piece with a change of offset inside keeps the CASE. A
        local day is never split, so each SQL group holds the same rows as one query over
        the whole range would (when the range's bounds are no timestamps or the zone has
        too many changes, one query over the whole range, as before). Python maps dates to
        weeks and merges the
        pieces' rows. QC reviews are summed by one more query (the CASE) in the same read
        transaction, skipped when there are none. No rollup is kept, so late PATCHes and
        deletes are always reflected.
        """
        zone = kpis.zone(tz)
        columns: list[str] = [c for c in ("agent_name", "job_type") if c in group_by]
        select = [f"r.{c}" for c in columns]
        bucketed = "day" in group_by or "week" in group_by
        conn = self._reader()
        conn.execute("BEGIN")  # one snapshot for every query below
        try:
            qc_slot: tuple[str, list[Any]] = ("", [])
            pieces: list[_Piece] = [(None, None, "", [])]
            local_dates = True  # the slot column is the local date itself
            if bucketed:
                found = _local_date_sql(conn, kpi_filter, tz)
                if found is not None:
                    qc_slot, pieces = found
                else:
                    local_dates = False
                    slot_sql = _SLOT_HOUR if kpis.whole_hour_zone(tz) else _SLOT_QUARTER
                    qc_slot, pieces = (slot_sql, []), [(None, None, slot_sql, [])]
            return self._kpi_groups(
                conn, kpi_filter, group_by, columns, select, pieces, qc_slot, local_dates, zone
            )
        finally:
            conn.execute("COMMIT")

    @staticmethod
    def _kpi_groups(
        conn: sqlite3.Connection,
        kpi_filter: KpiFilter,
        group_by: Sequence[str],
        columns: list[str],
        select: list[str],
        pieces: list[_Piece],
        qc_slot: tuple[str, list[Any]],
        local_dates: bool,
        zone: ZoneInfo,
    ) -> dict[tuple[str, ...], KpiInputs]:
        """The queries of ``kpi_inputs`` (inside its read transaction): the runs' per
        piece (the slot column's SQL is the piece's; none when not bucketed), then QC."""
        bucketed = bool(qc_slot[0])
        width = len(select) + bucketed
        where, params = _kpi_where(kpi_filter)
        group = f"GROUP BY {', '.join(str(i + 1) for i in range(width + 1))}"
        aggregates = _KPI_AGGREGATES

        def keys_sql(slot_sql: str) -> str:
            return "".join(f"{c}, " for c in [*select, *([slot_sql] if bucketed else [])])

        slots: dict[str, tuple[str, str]] = {}

        def key_of(values: Sequence[Any]) -> tuple[str, ...]:
            named = dict(zip(columns, values, strict=False))
            if bucketed:
                slot = str(values[width - 1])
                found = slots.get(slot)
                if found is None:
                    try:
                        day = (
                            date.fromisoformat(slot) if local_dates else kpis.local_date(slot, zone)
                        )
                        found = (kpis.day_key(day), kpis.week_key(day))
                    except ValueError:  # adopted text that is no timestamp: kept apart
                        found = (slot, slot)
                    slots[slot] = found
                named["day"], named["week"] = found
            return tuple(str(named[name]) for name in group_by)

        groups: dict[tuple[str, ...], KpiInputs] = {}
        for lower, upper, slot_sql, slot_params in pieces:
            piece_where, piece_params = _kpi_where(kpi_filter, lower, upper)
            runs_sql = (
                f"SELECT {keys_sql(slot_sql)}{aggregates}"
                # The planner does not see that the index covers the generated column.
                f" FROM agent_runs r INDEXED BY idx_runs_kpi {piece_where} {group}"
            )
            for row in conn.execute(runs_sql, [*slot_params, *piece_params]):
                key = key_of(row[:width])
                inputs = groups.get(key)
                if inputs is None:
                    inputs = groups[key] = KpiInputs()
                _add_kpi_row(inputs, row[width:])
        # Reviews count only for runs in a group. The planner walks the selected runs and
        # looks up each one's reviews; with fewer reviews (ids are never reused, so the
        # highest id bounds their number) than selected runs, walking the reviews and
        # looking up each one's run is cheaper (CROSS JOIN keeps that order): same rows.
        reviews = conn.execute("SELECT MAX(id) FROM agent_qc").fetchone()[0] if groups else None
        if reviews is None:
            return groups
        selected = sum(inputs.total_runs for inputs in groups.values())
        join = "CROSS JOIN" if reviews < selected else "JOIN"
        qc_group = f"GROUP BY {', '.join(str(i + 1) for i in range(width))}" if width else ""
        qc_sql = (
            f"SELECT {keys_sql(qc_slot[0])}SUM(q.score), COUNT(*) FROM agent_qc q"
            f" {join} agent_runs r ON r.event_id = q.event_id {where} {qc_group}"
        )
        for row in conn.execute(qc_sql, [*qc_slot[1], *params]):
            qc_inputs = groups.get(key_of(row[:width]))
            if qc_inputs is not None:
                qc_inputs.qc_score_sum += row[width] or 0
                qc_inputs.qc_count += row[width + 1]
        return groups

    def hourly_kpi_inputs(self, kpi_filter: KpiFilter) -> dict[str, KpiInputs]:
        """KPI inputs (without QC) per UTC hour of start_time (see the protocol)."""
        where, params = _kpi_where(kpi_filter)
        return sqlite_series.hourly_kpi_inputs(
            self._reader(), where, params, _KPI_AGGREGATES, _add_kpi_row
        )

    def recent_kpi_inputs(self, agent_name: str, limit: int) -> KpiInputs:
        """KPI inputs of the agent's last ``limit`` recorded runs (see the protocol)."""
        return sqlite_alerts.recent_kpi_inputs(self._reader(), agent_name, limit)

    def get_alert_rules(self) -> list[dict[str, Any]] | None:
        """The stored alert rules, or ``None`` (built-ins apply)."""
        return sqlite_alerts.get_rules(self._reader())

    def list_alerts(self, alert_filter: AlertFilter) -> list[dict[str, Any]]:
        """Alerts matching ``alert_filter``, newest first."""
        return sqlite_alerts.list_alerts(self._reader(), alert_filter)

    def open_alerts(self) -> list[dict[str, Any]]:
        """Every firing alert."""
        return sqlite_alerts.open_alerts(self._reader())

    def find_api_key(self, prefix: str) -> dict[str, Any] | None:
        """The API key with ``prefix`` and its hash, or ``None``."""
        return sqlite_keys.find(self._reader(), prefix)

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every API key, oldest first, without hashes."""
        return sqlite_keys.list_all(self._reader())

    def retention_candidates(
        self, started_before: str, after: tuple[str, int] | None, limit: int, payloads: bool
    ) -> RetentionPage:
        """A page of runs a retention sweep acts on (see ``Store.retention_candidates``)."""
        return sqlite_retention.candidates(self._reader(), started_before, after, limit, payloads)

    def retention_preview(
        self, payload_cutoff: str | None, run_cutoff: str | None
    ) -> tuple[RetentionCounts, RetentionCounts]:
        """What a sweep would change now (see ``Store.retention_preview``)."""
        return sqlite_retention.preview(self._reader(), payload_cutoff, run_cutoff)

    def stale_runs(self, cutoff: str, limit: int) -> StaleRuns:
        """The runs a stale-run close would act on (see ``Store.stale_runs``)."""
        return sqlite_stale.stale_runs(self._reader(), cutoff, limit)

    def lead(self, role: str) -> bool:
        """Always: one server process owns a SQLite file (see ``Store.lead``)."""
        return True

    def info(self) -> StoreInfo:
        """Backend, file and the journal/synchronous modes actually in force."""
        conn = self._reader()
        journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).upper()
        level = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return StoreInfo(
            backend="sqlite",
            location=str(self.path.resolve()),
            journal_mode=journal,
            synchronous=names.get(level, str(level)),
        )

    def integrity_check(self) -> str:
        """Result of ``PRAGMA integrity_check`` (``"ok"`` when healthy)."""
        return str(self._reader().execute("PRAGMA integrity_check").fetchone()[0])

    def looks_full(self) -> bool:
        """Whether the store's files cannot grow: no free space left on their file
        system, or a file-size limit (``RLIMIT_FSIZE``) reached. Tells "disk full" from
        other I/O errors, which SQLite reports alike when a write fails part-way."""
        files = [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-journal")]
        sizes = [path.stat().st_size for path in files if path.exists()]
        soft_limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft_limit != resource.RLIM_INFINITY and max(sizes, default=0) >= soft_limit:
            return True
        try:
            space = os.statvfs(self.path.parent)
        except OSError:
            return False
        return space.f_bavail * space.f_frsize < FULL_BELOW_BYTES

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._writer = None
        self._local = threading.local()
