"""Versioned schema migrations for the SQLite backend.

Applied versions are recorded in ``local_telemetry_schema``. Migration 1 creates the
schema, or adopts a database made by the earlier reference implementation of the v3
API (an ``agent_runs`` table with an ``id`` primary key and client-written timestamps):
its rows are copied into the new table with timestamps normalized to UTC and status
aliases mapped to canonical values, and nothing is dropped that was stored. Migration 2
adds the agent outcome columns of the runbook and the ``run_events`` table. A released
migration is never edited; a schema change is a new migration. Migration 3 adds the QC
table, migration 4 the ``duration_ms_supplied`` column and the KPI index, migration 5 the
alert tables, migration 6 the API keys.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from local_telemetry.schemas import CANONICAL_STATUSES, STATUS_ALIASES
from local_telemetry.storage.base import RUN_COLUMNS
from local_telemetry.storage.sqlite_otlp import OTLP_SCHEMA
from local_telemetry.timestamps import normalize_legacy, now_stored

log = logging.getLogger(__name__)

# The columns migration 1 creates, frozen: later migrations add to RUN_COLUMNS, and an
# adopted legacy table must be copied into the version-1 table only.
V1_RUN_COLUMNS: tuple[str, ...] = RUN_COLUMNS[: RUN_COLUMNS.index("parent_run_id") + 1]

COUNTER_COLUMNS = (
    "items_discovered",
    "items_succeeded",
    "items_failed",
    "items_skipped",
    "duration_ms",
)
TIMESTAMP_COLUMNS = (
    "created_at",
    "updated_at",
    "start_time",
    "end_time",
    "git_commit_timestamp",
    "api_posted_at",
)

_counter_checks = ",\n    ".join(f"CHECK ({c} >= 0)" for c in COUNTER_COLUMNS)

AGENT_RUNS_DDL = f"""
CREATE TABLE agent_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    start_time TEXT NOT NULL,
    end_time TEXT,
    agent_name TEXT NOT NULL,
    agent_owner TEXT,
    job_type TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    product TEXT,
    product_family TEXT,
    platform TEXT,
    subdomain TEXT,
    website TEXT,
    website_section TEXT,
    item_name TEXT,
    items_discovered INTEGER NOT NULL DEFAULT 0,
    items_succeeded INTEGER NOT NULL DEFAULT 0,
    items_failed INTEGER NOT NULL DEFAULT 0,
    items_skipped INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    input_summary TEXT,
    output_summary TEXT,
    source_ref TEXT,
    target_ref TEXT,
    error_summary TEXT,
    error_details TEXT,
    git_repo TEXT,
    git_branch TEXT,
    git_commit_hash TEXT,
    git_run_tag TEXT,
    git_commit_source TEXT,
    git_commit_author TEXT,
    git_commit_timestamp TEXT,
    host TEXT,
    environment TEXT,
    trigger_type TEXT,
    metrics_json TEXT,
    context_json TEXT,
    api_posted INTEGER NOT NULL DEFAULT 0,
    api_posted_at TEXT,
    api_retry_count INTEGER NOT NULL DEFAULT 0,
    insight_id TEXT,
    parent_run_id TEXT,
    {_counter_checks}
)
"""

# Composite indexes serve "filter by X, newest first" without a sort.
INDEXES = (
    "CREATE INDEX idx_runs_created ON agent_runs(created_at)",
    "CREATE INDEX idx_runs_agent_created ON agent_runs(agent_name, created_at)",
    "CREATE INDEX idx_runs_job_created ON agent_runs(job_type, created_at)",
    "CREATE INDEX idx_runs_status_created ON agent_runs(status, created_at)",
    # created_at too, so a start_time range sorts by created_at from the index alone.
    "CREATE INDEX idx_runs_start ON agent_runs(start_time, created_at)",
    "CREATE INDEX idx_runs_run_id ON agent_runs(run_id)",
    # Partial: most runs have no parent, and those cost this index nothing on insert.
    "CREATE INDEX idx_runs_parent ON agent_runs(parent_run_id) WHERE parent_run_id IS NOT NULL",
)

# Per-agent and per-hour (created_at's "YYYY-MM-DDTHH") counts, so /metrics never
# counts the whole table or a whole day of it. Inserts add to them once per
# commit group (storage/sqlite.py: a trigger per row cost as much as the insert itself);
# deletes and renames, rare, are counted by triggers.
RUN_COUNTS = (
    """CREATE TABLE run_counts (
        agent_name TEXT PRIMARY KEY,
        runs INTEGER NOT NULL
    )""",
    """CREATE TABLE run_counts_hourly (
        hour TEXT PRIMARY KEY,
        runs INTEGER NOT NULL
    )""",
    """CREATE TRIGGER run_counts_delete AFTER DELETE ON agent_runs BEGIN
        UPDATE run_counts SET runs = runs - 1 WHERE agent_name = OLD.agent_name;
        DELETE FROM run_counts WHERE agent_name = OLD.agent_name AND runs <= 0;
        UPDATE run_counts_hourly SET runs = runs - 1 WHERE hour = substr(OLD.created_at, 1, 13);
        DELETE FROM run_counts_hourly WHERE hour = substr(OLD.created_at, 1, 13) AND runs <= 0;
    END""",
    """CREATE TRIGGER run_counts_rename AFTER UPDATE OF agent_name ON agent_runs
    WHEN OLD.agent_name IS NOT NEW.agent_name BEGIN
        UPDATE run_counts SET runs = runs - 1 WHERE agent_name = OLD.agent_name;
        DELETE FROM run_counts WHERE agent_name = OLD.agent_name AND runs <= 0;
        INSERT INTO run_counts(agent_name, runs) VALUES (NEW.agent_name, 1)
        ON CONFLICT(agent_name) DO UPDATE SET runs = runs + 1;
    END""",
)

LEGACY_TABLE = "agent_runs_before_local_telemetry"
COPY_CHUNK = 5000


def _table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def _legacy_row(row: dict[str, Any]) -> dict[str, Any]:
    """Map one row of the earlier implementation's table onto the current columns."""
    for column in TIMESTAMP_COLUMNS:
        if column in row:
            row[column] = normalize_legacy(row[column])
    status = row.get("status")
    if isinstance(status, str):
        status = STATUS_ALIASES.get(status.strip().lower(), status.strip().lower())
    row["status"] = status if status in CANONICAL_STATUSES else (status or "running")
    for column in (*COUNTER_COLUMNS, "api_retry_count"):
        if row.get(column) is None:
            row[column] = 0
    row["api_posted"] = 1 if row.get("api_posted") else 0
    if not row.get("event_id"):
        row["event_id"] = f"legacy-{row.get('id') or uuid.uuid4()}"
    row["created_at"] = row.get("created_at") or row.get("start_time") or now_stored()
    row["start_time"] = row.get("start_time") or row["created_at"]
    row["run_id"] = row.get("run_id") or row["event_id"]
    row["agent_name"] = row.get("agent_name") or "unknown"
    row["job_type"] = row.get("job_type") or "unknown"
    return row


def _adopt_legacy_runs(conn: sqlite3.Connection) -> int:
    """Move the earlier implementation's rows into the new table; return how many."""
    conn.execute(f"ALTER TABLE agent_runs RENAME TO {LEGACY_TABLE}")
    conn.execute(AGENT_RUNS_DDL)
    legacy_columns = _table_columns(conn, LEGACY_TABLE)
    kept = (["id"] if "id" in legacy_columns else []) + [
        c for c in V1_RUN_COLUMNS if c in legacy_columns
    ]
    # Columns _legacy_row always fills, whether or not the old table had them.
    always = (
        "event_id",
        "run_id",
        "created_at",
        "start_time",
        "agent_name",
        "job_type",
        "status",
        "api_posted",
        *COUNTER_COLUMNS,
        "api_retry_count",
    )
    target = list(dict.fromkeys([*kept, *always]))
    insert = (
        f"INSERT INTO agent_runs ({', '.join(target)}) VALUES ({', '.join('?' for _ in target)})"
    )
    select = f"SELECT {', '.join(kept)} FROM {LEGACY_TABLE} ORDER BY rowid"
    reader = conn.execute(select)
    copied = 0
    while chunk := reader.fetchmany(COPY_CHUNK):
        rows = [_legacy_row(dict(zip(kept, values, strict=True))) for values in chunk]
        conn.executemany(insert, [tuple(r.get(c) for c in target) for r in rows])
        copied += len(rows)
    conn.execute(f"DROP TABLE {LEGACY_TABLE}")
    return copied


def _migration_1(conn: sqlite3.Connection) -> None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "agent_runs" in tables:
        copied = _adopt_legacy_runs(conn)
        log.info("adopted %d runs from an earlier telemetry database", copied)
    else:
        conn.execute(AGENT_RUNS_DDL)
    if "run_events" in tables:
        # The earlier implementation's event table has another shape; keep it aside.
        conn.execute("ALTER TABLE run_events RENAME TO legacy_run_events")
    for statement in INDEXES:
        conn.execute(statement)
    for statement in RUN_COUNTS[:2]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO run_counts(agent_name, runs) "
        "SELECT agent_name, COUNT(*) FROM agent_runs GROUP BY agent_name"
    )
    conn.execute(
        "INSERT INTO run_counts_hourly(hour, runs) "
        "SELECT substr(created_at, 1, 13), COUNT(*) FROM agent_runs GROUP BY 1"
    )
    for statement in RUN_COUNTS[2:]:
        conn.execute(statement)


# Agent outcome fields (agent-metrics runbook). All nullable: a job run reports none of
# them. Value rules live in schemas.py; the CHECKs only keep numbers in range, as the
# counters' do (no CHECK on the resolution enum, as none on status: a later value must
# not need a table rebuild).
OUTCOME_COLUMNS = (
    "ALTER TABLE agent_runs ADD COLUMN resolution TEXT",
    "ALTER TABLE agent_runs ADD COLUMN input_kind TEXT",
    "ALTER TABLE agent_runs ADD COLUMN self_corrected INTEGER CHECK (self_corrected IN (0, 1))",
    "ALTER TABLE agent_runs ADD COLUMN tokens_input INTEGER CHECK (tokens_input >= 0)",
    "ALTER TABLE agent_runs ADD COLUMN tokens_output INTEGER CHECK (tokens_output >= 0)",
    "ALTER TABLE agent_runs ADD COLUMN cost_usd REAL CHECK (cost_usd >= 0)",
    "ALTER TABLE agent_runs ADD COLUMN sla_target_seconds INTEGER CHECK (sla_target_seconds > 0)",
)

# Log lines of a run, read back in insertion order (id). Deleting a run deletes its
# events. The foreign key names agent_runs: a later migration that rebuilds agent_runs
# by renaming it must recreate run_events too (SQLite rewrites references on rename).
RUN_EVENTS = (
    """CREATE TABLE run_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL REFERENCES agent_runs(event_id) ON DELETE CASCADE,
        timestamp TEXT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
    )""",
    "CREATE INDEX idx_run_events_run ON run_events(event_id, id)",
)


def _migration_2(conn: sqlite3.Connection) -> None:
    for statement in (*OUTCOME_COLUMNS, *RUN_EVENTS):
        conn.execute(statement)


# QC reviews of a run (agent-metrics runbook), read back in insertion order (id); as
# run_events, they go with their run.
AGENT_QC = (
    """CREATE TABLE agent_qc (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL REFERENCES agent_runs(event_id) ON DELETE CASCADE,
        score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
        notes TEXT,
        reviewer TEXT,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX idx_agent_qc_run ON agent_qc(event_id, id)",
)


def _migration_3(conn: sqlite3.Connection) -> None:
    for statement in AGENT_QC:
        conn.execute(statement)


# KPIs (kpis.py): whether the client sent duration_ms (a KPI then uses it; otherwise it
# uses end_time - start_time). Rows stored before this migration never recorded that:
# the best guess is that a positive duration_ms was sent (the column default is 0, and
# the agent-runs upsert's computed duration equals end - start anyway).
# kpi_duration_ms is that KPI duration as a virtual generated column (computed, never
# stored in the table): end - start in whole milliseconds from the stored UTC form
# (seconds by unixepoch, microseconds from characters 21-26), NULL without an end or for
# text that is no timestamp. The covering index holds it, so a KPI query over a
# start_time range reads the index alone and computes no duration per row.
KPI_DURATION_SQL = (
    "CASE WHEN duration_ms_supplied THEN duration_ms"
    " WHEN end_time IS NOT NULL THEN"
    " ((unixepoch(substr(end_time, 1, 19)) - unixepoch(substr(start_time, 1, 19)))"
    " * 1000000 + CAST(substr(end_time, 21, 6) AS INTEGER)"
    " - CAST(substr(start_time, 21, 6) AS INTEGER)) / 1000 END"
)
KPI_SCHEMA = (
    "ALTER TABLE agent_runs ADD COLUMN duration_ms_supplied INTEGER NOT NULL DEFAULT 0"
    " CHECK (duration_ms_supplied IN (0, 1))",
    "UPDATE agent_runs SET duration_ms_supplied = 1 WHERE duration_ms > 0",
    "ALTER TABLE agent_runs ADD COLUMN kpi_duration_ms INTEGER"
    f" GENERATED ALWAYS AS ({KPI_DURATION_SQL}) VIRTUAL",
    "CREATE INDEX idx_runs_kpi ON agent_runs(start_time, agent_name, job_type, status,"
    " resolution, self_corrected, end_time, sla_target_seconds, kpi_duration_ms,"
    " tokens_input, tokens_output, cost_usd)",
)


def _migration_4(conn: sqlite3.Connection) -> None:
    for statement in KPI_SCHEMA:
        conn.execute(statement)


# Alerts (alerts.py): ``server_state`` keeps small documents the server owns (the alert
# rules as a JSON array under 'alert_rules'; absent: the built-in rules). ``alerts``
# holds one row per firing episode of a rule for an agent: inserted when it starts
# firing, completed with ``resolved_at`` when it resolves; at most one open per pair.
ALERT_SCHEMA = (
    """CREATE TABLE server_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    agent_name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    value REAL,
    baseline REAL,
    threshold REAL NOT NULL,
    sample_runs INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL,
    fired_at TEXT NOT NULL,
    resolved_at TEXT,
    updated_at TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX idx_alerts_open ON alerts(rule_name, agent_name) WHERE state = 'firing'",
    "CREATE INDEX idx_alerts_fired ON alerts(fired_at)",
)


def _migration_5(conn: sqlite3.Connection) -> None:
    for statement in ALERT_SCHEMA:
        conn.execute(statement)


# Migration 6: scoped API keys. Only a SHA-256 hash of each key is stored (see
# api/auth.py for why a fast hash suffices); ``prefix`` is the key's public part, shown
# in listings and used to find the row.
API_KEYS_SCHEMA = (
    """CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'ingest', 'admin')),
    prefix TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
    )""",
)


def _migration_6(conn: sqlite3.Connection) -> None:
    for statement in API_KEYS_SCHEMA:
        conn.execute(statement)


def _migration_7(conn: sqlite3.Connection) -> None:
    for statement in OTLP_SCHEMA:
        conn.execute(statement)


Migration = tuple[int, str, Callable[[sqlite3.Connection], None]]

MIGRATIONS: tuple[Migration, ...] = (
    (1, "runs table, indexes, per-agent counts; adopt an earlier agent_runs table", _migration_1),
    (2, "agent outcome columns on agent_runs; run_events table", _migration_2),
    (3, "agent_qc table (QC reviews of runs)", _migration_3),
    (
        4,
        "duration_ms_supplied, kpi_duration_ms (generated) columns; KPI covering index",
        _migration_4,
    ),
    (5, "server_state table (alert rules); alerts table (firing episodes)", _migration_5),
    (6, "api_keys table (scoped API keys, stored as hashes)", _migration_6),
    (7, "otlp_spans table (OTLP trace ingest: idempotency and pending spans)", _migration_7),
)


def applied_version(conn: sqlite3.Connection) -> int:
    """Highest applied migration version (0 for a new or foreign database)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS local_telemetry_schema ("
        "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    row = conn.execute("SELECT MAX(version) FROM local_telemetry_schema").fetchone()
    return int(row[0] or 0)


def use_incremental_vacuum(conn: sqlite3.Connection) -> None:
    """Create a new database (no tables yet) with ``auto_vacuum = INCREMENTAL``, so the
    retention sweeper can give freed pages back (``PRAGMA incremental_vacuum``).

    The mode is fixed once a table exists: a database created before this keeps its
    mode (its free pages are reused by new rows; a one-off ``VACUUM`` after
    ``PRAGMA auto_vacuum = INCREMENTAL`` converts it). Switching to WAL already wrote the
    header of a new file, so there the mode takes effect through ``VACUUM`` of the still
    empty database, which costs nothing.
    """
    if conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
        return
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
        conn.execute("VACUUM")


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations, each in its own transaction; return the versions applied."""
    done: list[int] = []
    use_incremental_vacuum(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = applied_version(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for version, description, apply in MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            if applied_version(conn) >= version:
                conn.execute("COMMIT")
                continue
            apply(conn)
            conn.execute(
                "INSERT INTO local_telemetry_schema(version, description, applied_at) "
                "VALUES (?, ?, ?)",
                (version, description, now_stored()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(version)
        log.info("applied migration %d: %s", version, description)
    return done
