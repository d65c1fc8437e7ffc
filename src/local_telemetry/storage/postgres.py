"""The PostgreSQL backend (``psycopg`` 3 with ``psycopg_pool``).

One dedicated write connection, used by the ingest writer, applies each group of
operations in one transaction (``COMMIT`` returns once the WAL is flushed:
``synchronous_commit = on``), every operation inside a savepoint of its own so that one
failing operation undoes only itself. Several processes may write to one database at
once: inserts are ``INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING event_id``, so
when two processes race on an ``event_id`` exactly one of them creates the run, and the
agent-run upsert locks the stored run (``SELECT … FOR UPDATE``) before comparing. Reads
use a connection pool (``REPEATABLE READ``: the queries of one read see one snapshot).

The schema is ``migrations/postgres.py`` (the same tables as SQLite's); the KPI, alert
and retention queries are in ``postgres_analytics.py``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool

from local_telemetry.storage import postgres_analytics, sqlite_keys
from local_telemetry.storage.base import (
    BOOL_COLUMNS,
    EVENT_COLUMNS,
    JSON_COLUMNS,
    QC_COLUMNS,
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
from local_telemetry.storage.migrations import postgres as migrations
from local_telemetry.storage.postgres_otlp import apply_op as apply_otlp_op
from local_telemetry.storage.sqlite import (
    AGENT_RUN_COLUMNS,
    INSERT_COLUMNS,
    SUPPLIED_COLUMN,
    agent_run_changes,
    decode_event,
    decode_row,
    encode_value,
)
from local_telemetry.storage.sqlite import _duration_ms as duration_between
from local_telemetry.timestamps import now_stored

Conn = psycopg.Connection[Any]
T = TypeVar("T")

ISOLATED_ERRORS = (
    psycopg.errors.IntegrityError,
    psycopg.errors.DataError,
    ValueError,
    TypeError,
    KeyError,
)
"""Errors of one operation that undo only that operation (anything else fails the group)."""

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
_DEFAULT_AT = tuple((INSERT_COLUMNS.index(c), v) for c, v in _DEFAULTS.items())
_JSON_AT = tuple(INSERT_COLUMNS.index(c) for c in sorted(JSON_COLUMNS))
_BOOL_AT = tuple(INSERT_COLUMNS.index(c) for c in sorted(BOOL_COLUMNS))
_EVENT_ID = INSERT_COLUMNS.index("event_id")
_CREATED_AT = INSERT_COLUMNS.index("created_at")
_AGENT_NAME = INSERT_COLUMNS.index("agent_name")
_SUPPLIED = INSERT_COLUMNS.index(SUPPLIED_COLUMN)
_DURATION = INSERT_COLUMNS.index("duration_ms")
_UPDATED_AT = INSERT_COLUMNS.index("updated_at")
# PostgreSQL allows 65,535 parameters per statement.
_ROWS_PER_STATEMENT = 60_000 // len(INSERT_COLUMNS)
_INSERT_HEAD = f"INSERT INTO agent_runs ({', '.join(INSERT_COLUMNS)}) VALUES "
_ROW_MARKS = "(" + ", ".join("%s" for _ in INSERT_COLUMNS) + ")"
_INSERT_TAIL = " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
_COUNT_SQL = (
    "INSERT INTO run_counts(agent_name, runs)"
    " SELECT * FROM unnest(%s::text[], %s::bigint[])"
    " ON CONFLICT (agent_name) DO UPDATE SET runs = run_counts.runs + excluded.runs"
)
_HOURLY_SQL = (
    "INSERT INTO run_counts_hourly(hour, runs)"
    " SELECT * FROM unnest(%s::text[], %s::bigint[])"
    " ON CONFLICT (hour) DO UPDATE SET runs = run_counts_hourly.runs + excluded.runs"
)
_EVENT_SELECT = f"SELECT {', '.join(EVENT_COLUMNS)} FROM run_events"
_EVENT_INSERT_SQL = (
    "INSERT INTO run_events (event_id, timestamp, level, message, data) VALUES (%s, %s, %s, %s, %s)"
)
_QC_SELECT = f"SELECT {', '.join(QC_COLUMNS)} FROM agent_qc"
_QC_INSERT_SQL = (
    "INSERT INTO agent_qc (event_id, score, notes, reviewer, created_at) "
    f"VALUES (%s, %s, %s, %s, %s) RETURNING {', '.join(QC_COLUMNS)}"
)
# Locks the stored run until the group commits: another process's upsert of the same
# run waits, then compares with what this one stored.
_AGENT_RUN_SELECT = (
    f"SELECT {', '.join(AGENT_RUN_COLUMNS)} FROM agent_runs WHERE event_id = %s FOR UPDATE"
)
_EXISTS_SQL = "SELECT 1 FROM agent_runs WHERE event_id = %s"
_JOB_TYPES_SQL = (
    # Skip scan over idx_runs_job_created: one index probe per distinct job type.
    "WITH RECURSIVE t(j) AS ("
    " (SELECT job_type FROM agent_runs ORDER BY job_type LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT job_type FROM agent_runs WHERE job_type > t.j ORDER BY job_type LIMIT 1)"
    " FROM t WHERE t.j IS NOT NULL"
    ") SELECT j FROM t WHERE j IS NOT NULL"
)


def isolated(conn: Conn, name: str, action: Callable[[], T]) -> T | Exception:
    """``action()`` inside a savepoint: its result, or, when it raises one of
    ``ISOLATED_ERRORS``, that exception with everything the action did undone (the rest
    of the group transaction is kept and usable)."""
    try:
        with conn.transaction(savepoint_name=name):
            return action()
    except ISOLATED_ERRORS as exc:
        return exc


def _filter_clauses(run_filter: RunFilter) -> tuple[list[str], list[Any]]:
    """The WHERE conditions and parameters of a run filter (list and export alike)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("agent_name", "job_type", "status", "run_id", "parent_run_id"):
        value = getattr(run_filter, column)
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    for attribute, column, operator in (
        ("created_before", "created_at", "<"),
        ("created_after", "created_at", ">"),
        ("start_time_from", "start_time", ">="),
        ("start_time_to", "start_time", "<="),
    ):
        value = getattr(run_filter, attribute)
        if value is not None:
            clauses.append(f"{column} {operator} %s")
            params.append(value)
    return clauses, params


def _next_hour(stamp: str) -> str:
    """The hour key ("YYYY-MM-DDTHH") of the first whole hour after ``stamp``."""
    start = datetime.fromisoformat(stamp[:13] + ":00:00+00:00")
    return (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H")


def _run_json(row: Sequence[Any]) -> RunJSON:
    """A stored row (``RUN_COLUMNS`` order) as (JSON text, git_repo, git_commit_hash)."""
    run = decode_row(row)
    return orjson.dumps(run).decode(), run["git_repo"], run["git_commit_hash"]


class _NewRunCounts:
    """Runs created in one transaction, per agent and per hour, written at its end."""

    def __init__(self) -> None:
        self.per_agent: Counter[str] = Counter()
        self.per_hour: Counter[str] = Counter()

    def add(self, other: _NewRunCounts) -> None:
        self.per_agent.update(other.per_agent)
        self.per_hour.update(other.per_hour)

    def write(self, conn: Conn) -> None:
        """Add the counts (keys in sorted order: concurrent writers lock rows in the same
        order, so they wait for each other instead of deadlocking)."""
        for sql, counter in ((_COUNT_SQL, self.per_agent), (_HOURLY_SQL, self.per_hour)):
            if counter:
                keys = sorted(counter)
                conn.execute(sql, (keys, [counter[k] for k in keys]))


def _insert_rows(
    conn: Conn,
    rows: Sequence[dict[str, Any]],
    counts: _NewRunCounts,
    keep_times: Sequence[bool] | None = None,
) -> list[bool]:
    """Insert rows whose event_id is new; return created (True) or duplicate per row.

    The first occurrence of an id in ``rows`` is the one inserted; ``ON CONFLICT DO
    NOTHING RETURNING`` tells which were new in the database, also when another process
    inserts the same id at the same time (its commit decides; one creator only).
    ``keep_times[i]``: row ``i`` keeps its own ``updated_at`` (else it is stored NULL).
    """
    now = now_stored()
    seen: set[Any] = set()
    fresh: list[list[Any]] = []
    positions: list[int] = []
    for position, row in enumerate(rows):
        event_id = row["event_id"]
        if event_id in seen:
            continue
        seen.add(event_id)
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
        for index in _BOOL_AT:
            if isinstance(values[index], bool):
                values[index] = 1 if values[index] else 0
        fresh.append(values)
        positions.append(position)
    inserted: set[Any] = set()
    for start in range(0, len(fresh), _ROWS_PER_STATEMENT):
        chunk = fresh[start : start + _ROWS_PER_STATEMENT]
        sql = _INSERT_HEAD + ", ".join([_ROW_MARKS] * len(chunk)) + _INSERT_TAIL
        params = [value for values in chunk for value in values]
        inserted.update(row[0] for row in conn.execute(sql, params).fetchall())
    created = [False] * len(rows)
    pending = _NewRunCounts()
    for values, position in zip(fresh, positions, strict=True):
        if values[_EVENT_ID] in inserted:
            created[position] = True
            pending.per_agent[str(values[_AGENT_NAME])] += 1
            pending.per_hour[str(values[_CREATED_AT])[:13]] += 1
    counts.add(pending)
    return created


def _unstorable(text: str) -> bool:
    """Whether PostgreSQL cannot even compare ``text`` (a NUL character): no stored id
    holds one (ingest refuses them), so a lookup of it finds nothing."""
    return "\x00" in text


def _update(conn: Conn, op: UpdateRun) -> str | None:
    unknown = set(op.fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"fields cannot be updated: {', '.join(sorted(unknown))}")
    fields = op.fields
    if "duration_ms" in fields and SUPPLIED_COLUMN not in fields:
        fields = {**fields, SUPPLIED_COLUMN: 0 if fields["duration_ms"] is None else 1}
    elif SUPPLIED_COLUMN in fields:
        fields = {**fields, SUPPLIED_COLUMN: 1 if fields[SUPPLIED_COLUMN] else 0}
    columns = list(fields)
    assignments = ", ".join(f"{c} = %s" for c in [*columns, "updated_at"])
    values = [encode_value(c, fields[c]) for c in columns]
    row = conn.execute(
        f"UPDATE agent_runs SET {assignments} WHERE event_id = %s RETURNING run_id",
        [*values, now_stored(), op.event_id],
    ).fetchone()
    return None if row is None else str(row[0])


def _insert_reviews(
    conn: Conn, event_id: str, reviews: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    now = now_stored()
    stored: list[dict[str, Any]] = []
    for review in reviews:
        values = (event_id, review["score"], review.get("notes"), review.get("reviewer"), now)
        row = conn.execute(_QC_INSERT_SQL, values).fetchone()
        assert row is not None
        stored.append(dict(zip(QC_COLUMNS, row, strict=True)))
    return stored


def _new_reviews(
    conn: Conn, event_id: str, reviews: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The reviews not already stored for the run (same score, notes and reviewer)."""
    if not reviews:
        return []
    known = {
        tuple(row)
        for row in conn.execute(
            "SELECT score, notes, reviewer FROM agent_qc WHERE event_id = %s", (event_id,)
        ).fetchall()
    }
    return [
        review
        for review in reviews
        if (review["score"], review.get("notes"), review.get("reviewer")) not in known
    ]


def _create_agent_run(conn: Conn, op: UpsertAgentRun, counts: _NewRunCounts) -> bool:
    """Insert the new agent run of ``op`` with its reviews; ``False`` when another
    process created the run first (then nothing is stored)."""
    run_id = op.event_id
    row = {**op.on_create, **op.fields, "event_id": run_id, "run_id": run_id}
    end = row.get("end_time")
    if end is not None:
        if end < row["start_time"]:  # stored form: text order is time order
            raise EndsBeforeStart("ended_at must not be before started_at")
        row["duration_ms"] = duration_between(row["start_time"], end)
    # Computed from ended_at - started_at, not sent: KPIs compute the same value.
    row[SUPPLIED_COLUMN] = False
    pending = _NewRunCounts()
    [created] = _insert_rows(conn, [row], pending)
    if not created:
        return False
    _insert_reviews(conn, run_id, op.qc)
    counts.add(pending)
    return True


def _upsert_agent_run(conn: Conn, op: UpsertAgentRun, counts: _NewRunCounts) -> str:
    """Apply :class:`UpsertAgentRun` (rules documented there; as SQLite's
    ``_upsert_agent_run``, with the stored run locked while it is compared)."""
    run_id, fields = op.event_id, op.fields
    found = conn.execute(_AGENT_RUN_SELECT, (run_id,)).fetchone()
    if found is None:
        if _create_agent_run(conn, op, counts):
            return "created"
        # Another process created the run since the look-up: compare with its row.
        found = conn.execute(_AGENT_RUN_SELECT, (run_id,)).fetchone()
        if found is None:  # pragma: no cover - deleted again at once
            raise RunConflict(f"Run {run_id} was created and deleted concurrently")
    run = dict(zip(AGENT_RUN_COLUMNS, found, strict=True))
    changes = agent_run_changes(run_id, run, fields)
    reviews = _new_reviews(conn, run_id, op.qc)
    if not changes and not reviews:
        return "duplicate"
    if changes:
        _update(conn, UpdateRun(run_id, changes))
    _insert_reviews(conn, run_id, reviews)
    return "updated"


def _exists(conn: Conn, event_id: str) -> bool:
    return conn.execute(_EXISTS_SQL, (event_id,)).fetchone() is not None


def _append_events(conn: Conn, op: AppendEvents) -> int | Exception | None:
    """Insert every event of ``op`` or none; ``None`` when the run does not exist."""
    if not _exists(conn, op.event_id):
        return None

    def insert() -> int:
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
        if rows:
            with conn.cursor() as cursor:
                cursor.executemany(_EVENT_INSERT_SQL, rows)
        return len(rows)

    return isolated(conn, "events", insert)


def _otlp_spans(conn: Conn, op: IngestOtlpSpans, counts: _NewRunCounts) -> Any:
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


def _add_qc(conn: Conn, op: AddQc) -> dict[str, Any] | Exception | None:
    """The stored review; ``None`` when the run does not exist."""
    if not _exists(conn, op.event_id):
        return None
    return isolated(conn, "qc", lambda: _insert_reviews(conn, op.event_id, [op.review])[0])


def _public_url(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _setting(conn: Conn, name: str) -> str:
    """The value of a server setting in force."""
    row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    return "" if row is None else str(row[0])


READER_WORK_MEM = "64MB"
"""Sort memory of a reader: a KPI read over a few hundred thousand runs sorts in memory."""


def _configure_reader(conn: Conn) -> None:
    # One snapshot for all the queries of one read (a pooled connection's block).
    conn.execute(f"SET work_mem = '{READER_WORK_MEM}'")
    conn.commit()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ


class PostgresStore:
    """:class:`~local_telemetry.storage.base.Store` on one PostgreSQL database."""

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 30.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            open=True,
            configure=_configure_reader,
            check=ConnectionPool.check_connection,
            timeout=connect_timeout,
            name="local-telemetry-readers",
        )
        self._writer: Conn | None = None
        self._write_lock = threading.Lock()
        self._leader: Conn | None = None
        self._leading: set[str] = set()
        self._lead_lock = threading.Lock()

    # ----- connections -----

    def _write_conn(self) -> Conn:
        if self._writer is None or self._writer.closed or self._writer.broken:
            if self._writer is not None:
                self._writer.close()
            self._writer = psycopg.connect(
                self.url, autocommit=True, connect_timeout=int(self.connect_timeout)
            )
        return self._writer

    # ----- Store protocol -----

    def migrate(self) -> None:
        """Apply pending schema migrations (once, when several processes start at once)."""
        with self._write_lock:
            migrations.migrate(self._write_conn())

    def apply(self, ops: Sequence[WriteOp]) -> list[Any]:
        """Apply a group of writes in one transaction (see ``Store.apply``).

        Consecutive inserts of the group are written by one multi-row statement per
        chunk (queue order is kept); a failing insert run is retried operation by
        operation. Every operation runs in a savepoint of its own, so one bad write never
        undoes another. Per-agent and hourly counts are added once per group.
        """
        with self._write_lock:
            conn = self._write_conn()
            try:
                return self._apply(conn, ops)
            except BaseException:
                if conn.broken:
                    self._writer = None
                raise

    def _apply(self, conn: Conn, ops: Sequence[WriteOp]) -> list[Any]:
        results: list[Any] = []
        counts = _NewRunCounts()
        with conn.transaction():
            index = 0
            while index < len(ops):
                op = ops[index]
                index += 1
                if isinstance(op, UpdateRun | AppendEvents | AddQc) and _unstorable(op.event_id):
                    results.append(None)  # no such run (a NUL never reaches the table)
                elif isinstance(op, UpdateRun):
                    results.append(isolated(conn, "op", partial(_update, conn, op)))
                elif isinstance(op, AppendEvents):
                    results.append(_append_events(conn, op))
                elif isinstance(op, UpsertAgentRun):
                    upsert = partial(_upsert_agent_run, conn, op, counts)
                    results.append(isolated(conn, "op", upsert))
                elif isinstance(op, AddQc):
                    results.append(_add_qc(conn, op))
                elif isinstance(op, BlankPayloads | DeleteRuns | ReclaimSpace):
                    counts.write(conn)  # a run deleted below must be counted first
                    counts = _NewRunCounts()
                    results.append(_retention_write(conn, op))
                elif isinstance(op, CloseStaleRuns):
                    close = partial(postgres_analytics.close_stale_runs, conn, op)
                    results.append(isolated(conn, "stale", close))
                elif isinstance(op, SaveAlertRules | RecordAlerts):
                    results.append(_alert_write(conn, op))
                elif isinstance(op, CreateApiKey | RevokeApiKey):
                    results.append(_key_write(conn, op))
                elif isinstance(op, IngestOtlpSpans):
                    results.append(_otlp_spans(conn, op, counts))
                else:
                    inserts = [op]
                    while index < len(ops):
                        following = ops[index]
                        if not isinstance(following, InsertRuns):
                            break
                        inserts.append(following)
                        index += 1
                    results.extend(self._insert_ops(conn, inserts, counts))
            counts.write(conn)
        return results

    def _insert_ops(self, conn: Conn, ops: list[InsertRuns], counts: _NewRunCounts) -> list[Any]:
        """Insert the rows of consecutive operations; one created-count per operation."""
        rows = [row for op in ops for row in op.rows]
        keep_times = [op.keep_times for op in ops for _ in op.rows]
        pending = _NewRunCounts()
        created = isolated(conn, "inserts", lambda: _insert_rows(conn, rows, pending, keep_times))
        if isinstance(created, Exception):
            if len(ops) == 1:
                return [created]
            return [r for op in ops for r in self._insert_ops(conn, [op], counts)]
        counts.add(pending)
        results: list[Any] = []
        start = 0
        for op in ops:
            results.append(sum(created[start : start + len(op.rows)]))
            start += len(op.rows)
        return results

    def get_run(self, event_id: str) -> dict[str, Any] | None:
        """The run with this ``event_id``, or ``None``."""
        if _unstorable(event_id):
            return None
        sql = f"SELECT {_SELECT_COLUMNS} FROM agent_runs WHERE event_id = %s"
        with self._pool.connection() as conn:
            row = conn.execute(sql, (event_id,)).fetchone()
        return None if row is None else decode_row(row)

    def get_run_json(self, event_id: str) -> RunJSON | None:
        """The run as JSON text equal to ``orjson.dumps(get_run(event_id))``, or ``None``."""
        if _unstorable(event_id):
            return None
        sql = f"SELECT {_SELECT_COLUMNS} FROM agent_runs WHERE event_id = %s"
        with self._pool.connection() as conn:
            row = conn.execute(sql, (event_id,)).fetchone()
        return None if row is None else _run_json(row)

    def _list_rows(self, run_filter: RunFilter) -> list[tuple[Any, ...]]:
        clauses, params = _filter_clauses(run_filter)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            f"SELECT {_SELECT_COLUMNS} FROM agent_runs {where}"
            " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s"
        )
        with self._pool.connection() as conn:
            return conn.execute(sql, [*params, run_filter.limit, run_filter.offset]).fetchall()

    def list_runs(self, run_filter: RunFilter) -> list[dict[str, Any]]:
        """Runs matching ``run_filter``, newest ``created_at`` first."""
        return [decode_row(row) for row in self._list_rows(run_filter)]

    def list_runs_json(self, run_filter: RunFilter) -> list[RunJSON]:
        """``list_runs`` with each run as JSON text (see ``get_run_json``)."""
        return [_run_json(row) for row in self._list_rows(run_filter)]

    def iter_runs(
        self, run_filter: RunFilter, chunk_size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        """Every run matching ``run_filter`` (``limit``/``offset`` ignored), newest first,
        in chunks of at most ``chunk_size``: keyset pagination on (created_at, id), each
        chunk one short query on a pooled connection."""
        after: tuple[str, int] | None = None
        while True:
            clauses, params = _filter_clauses(run_filter)
            if after is not None:
                clauses.append("(created_at, id) < (%s, %s)")
                params.extend(after)
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            sql = (
                f"SELECT id, created_at, {_SELECT_COLUMNS} FROM agent_runs {where}"
                " ORDER BY created_at DESC, id DESC LIMIT %s"
            )
            with self._pool.connection() as conn:
                rows = conn.execute(sql, [*params, chunk_size]).fetchall()
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
        if _unstorable(event_id):
            return None
        with self._pool.connection() as conn:  # one snapshot: run and events together
            if not _exists(conn, event_id):
                return None
            rows = conn.execute(
                f"{_EVENT_SELECT} WHERE event_id = %s AND id > %s ORDER BY id LIMIT %s",
                (event_id, after_id, limit),
            ).fetchall()
        return [decode_event(row) for row in rows]

    def list_qc(self, event_id: str) -> list[dict[str, Any]] | None:
        """QC reviews of the run, oldest first; ``None`` for an unknown run."""
        if _unstorable(event_id):
            return None
        with self._pool.connection() as conn:
            if not _exists(conn, event_id):
                return None
            rows = conn.execute(
                f"{_QC_SELECT} WHERE event_id = %s ORDER BY id",
                (event_id,),
            ).fetchall()
        return [dict(zip(QC_COLUMNS, row, strict=True)) for row in rows]

    def distinct_values(self) -> tuple[list[str], list[str]]:
        """Sorted distinct agent names (from the counts table) and job types."""
        with self._pool.connection() as conn:
            agents = [
                str(r[0]) for r in conn.execute("SELECT agent_name FROM run_counts ORDER BY 1")
            ]
            job_types = [str(r[0]) for r in conn.execute(_JOB_TYPES_SQL)]
        return agents, job_types

    def run_counts(self, since: str, until: str) -> tuple[int, dict[str, int], int]:
        """Total runs, runs per agent (most first), runs with since < created_at <= until
        (whole hours from the hourly counts, the partial first and last hours row by row)."""
        first_full = _next_hour(since)
        last_partial = until[:13]
        with self._pool.connection() as conn:
            per_agent = {
                str(name): int(count)
                for name, count in conn.execute(
                    "SELECT agent_name, runs FROM run_counts ORDER BY runs DESC, agent_name"
                )
            }
            if first_full > last_partial:
                row = conn.execute(
                    "SELECT COUNT(*) FROM agent_runs WHERE created_at > %s AND created_at <= %s",
                    (since, until),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM agent_runs"
                    "  WHERE created_at > %s AND created_at < %s)"
                    " + (SELECT COALESCE(SUM(runs), 0) FROM run_counts_hourly"
                    "    WHERE hour >= %s AND hour < %s)"
                    " + (SELECT COUNT(*) FROM agent_runs"
                    "  WHERE created_at >= %s AND created_at <= %s)",
                    (since, first_full, first_full, last_partial, last_partial, until),
                ).fetchone()
        recent = int(row[0]) if row is not None and row[0] is not None else 0
        return sum(per_agent.values()), per_agent, recent

    # ----- analytics (storage/postgres_analytics.py) -----

    def kpi_inputs(
        self, kpi_filter: KpiFilter, group_by: Sequence[str], tz: str
    ) -> dict[tuple[str, ...], KpiInputs]:
        """KPI inputs per group (see ``Store.kpi_inputs``)."""

        with self._pool.connection() as conn:
            return postgres_analytics.kpi_inputs(conn, kpi_filter, group_by, tz)

    def hourly_kpi_inputs(self, kpi_filter: KpiFilter) -> dict[str, KpiInputs]:
        """KPI inputs (without QC) per UTC hour of start_time (see the protocol)."""

        with self._pool.connection() as conn:
            return postgres_analytics.hourly_kpi_inputs(conn, kpi_filter)

    def recent_kpi_inputs(self, agent_name: str, limit: int) -> KpiInputs:
        """KPI inputs of the agent's last ``limit`` recorded runs (see the protocol)."""

        with self._pool.connection() as conn:
            return postgres_analytics.recent_kpi_inputs(conn, agent_name, limit)

    def get_alert_rules(self) -> list[dict[str, Any]] | None:
        """The stored alert rules, or ``None`` (built-ins apply)."""

        with self._pool.connection() as conn:
            return postgres_analytics.get_rules(conn)

    def list_alerts(self, alert_filter: AlertFilter) -> list[dict[str, Any]]:
        """Alerts matching ``alert_filter``, newest first."""

        with self._pool.connection() as conn:
            return postgres_analytics.list_alerts(conn, alert_filter)

    def open_alerts(self) -> list[dict[str, Any]]:
        """Every firing alert."""

        with self._pool.connection() as conn:
            return postgres_analytics.open_alerts(conn)

    def find_api_key(self, prefix: str) -> dict[str, Any] | None:
        """The API key with ``prefix`` and its hash, or ``None``."""
        if _unstorable(prefix):
            return None  # a NUL cannot be stored, so no key has it
        with self._pool.connection() as conn:
            return sqlite_keys.find(conn, prefix, "%s")

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every API key, oldest first, without hashes."""
        with self._pool.connection() as conn:
            return sqlite_keys.list_all(conn)

    def retention_candidates(
        self, started_before: str, after: tuple[str, int] | None, limit: int, payloads: bool
    ) -> RetentionPage:
        """A page of runs a retention sweep acts on (see ``Store.retention_candidates``)."""

        with self._pool.connection() as conn:
            return postgres_analytics.retention_candidates(
                conn, started_before, after, limit, payloads
            )

    def retention_preview(
        self, payload_cutoff: str | None, run_cutoff: str | None
    ) -> tuple[RetentionCounts, RetentionCounts]:
        """What a sweep would change now (see ``Store.retention_preview``)."""

        with self._pool.connection() as conn:
            return postgres_analytics.retention_preview(conn, payload_cutoff, run_cutoff)

    def stale_runs(self, cutoff: str, limit: int) -> StaleRuns:
        """The runs a stale-run close would act on (see ``Store.stale_runs``)."""

        with self._pool.connection() as conn:
            return postgres_analytics.stale_runs(conn, cutoff, limit)

    # ----- facts -----

    def info(self) -> StoreInfo:
        """Backend, URL (without password) and the durability settings in force:
        ``synchronous`` is FULL when ``fsync`` and ``synchronous_commit`` are on."""
        with self._pool.connection() as conn:
            fsync, commit, version = (
                _setting(conn, name) for name in ("fsync", "synchronous_commit", "server_version")
            )
        full = fsync == "on" and commit in ("on", "remote_write", "remote_apply")
        return StoreInfo(
            backend="postgresql",
            location=_public_url(self.url),
            journal_mode="WAL",
            synchronous="FULL" if full else commit.upper(),
            extra={"server_version": version, "fsync": fsync, "synchronous_commit": commit},
        )

    def lead(self, role: str) -> bool:
        """Whether this process runs ``role`` (see ``Store.lead``): a session advisory lock
        on a connection of its own, held until the store closes or the connection breaks
        (then another process takes the role at its next try)."""
        with self._lead_lock:
            conn = self._leader
            if conn is not None and (conn.closed or conn.broken):
                conn.close()
                conn = self._leader = None
            if conn is None:
                self._leading.clear()
                try:
                    conn = self._leader = psycopg.connect(
                        self.url, autocommit=True, connect_timeout=int(self.connect_timeout)
                    )
                except psycopg.Error:
                    return False
            try:
                if role in self._leading:
                    conn.execute("SELECT 1")  # still connected: the lock is still ours
                    return True
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                    (f"local-telemetry:{role}",),
                ).fetchone()
            except psycopg.Error:
                conn.close()
                self._leader = None
                self._leading.clear()
                return False
            if row is not None and row[0]:
                self._leading.add(role)
                return True
            return False

    def close(self) -> None:
        """Close the pool, the write connection and the leadership connection."""
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._lead_lock:
            if self._leader is not None:
                self._leader.close()
                self._leader = None
            self._leading.clear()
        self._pool.close()


def _retention_write(conn: Conn, op: BlankPayloads | DeleteRuns | ReclaimSpace) -> Any:
    """A retention write in a savepoint of its own: all of it, or none of it."""

    return isolated(conn, "retention", lambda: postgres_analytics.apply_retention(conn, op))


def _alert_write(conn: Conn, op: SaveAlertRules | RecordAlerts) -> Any:
    """An alert write in a savepoint of its own: all of it, or none of it."""

    if isinstance(op, SaveAlertRules):
        return isolated(conn, "alerts", lambda: postgres_analytics.save_rules(conn, op))
    return isolated(conn, "alerts", lambda: postgres_analytics.record_alerts(conn, op))


def _key_write(conn: Conn, op: CreateApiKey | RevokeApiKey) -> Any:
    """Create or revoke an API key in a savepoint of its own (a taken prefix undoes it)."""

    if isinstance(op, CreateApiKey):
        return isolated(conn, "api_key", lambda: sqlite_keys.create(conn, op, "%s"))
    return isolated(conn, "api_key", lambda: sqlite_keys.revoke(conn, op, "%s"))
