"""SQLite side of the OTLP span write (``storage/otlp_spans.py`` holds the logic)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from local_telemetry.storage.base import IngestOtlpSpans, OtlpIngestResult
from local_telemetry.storage.otlp_spans import apply_spans

OTLP_SCHEMA = (
    """CREATE TABLE otlp_spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    run_event_id TEXT REFERENCES agent_runs(event_id) ON DELETE CASCADE,
    is_run INTEGER NOT NULL DEFAULT 0 CHECK (is_run IN (0, 1)),
    is_root INTEGER NOT NULL DEFAULT 0 CHECK (is_root IN (0, 1)),
    tokens_input INTEGER NOT NULL DEFAULT 0,
    tokens_output INTEGER NOT NULL DEFAULT 0,
    event_json TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
    ) WITHOUT ROWID""",
    # Deleting a run (retention) looks its spans up by run: without this index every
    # deleted run would scan the table.
    "CREATE INDEX idx_otlp_spans_run ON otlp_spans(run_event_id)",
    "CREATE INDEX idx_otlp_spans_pending ON otlp_spans(received_at) WHERE run_event_id IS NULL",
)
"""Migration 7: spans of OTLP exports (see ``storage/otlp_spans.py``)."""


class _SQLiteSpans:
    """:class:`SpanDb` on the SQLite write connection."""

    def __init__(
        self, conn: sqlite3.Connection, inserter: Callable[[dict[str, Any]], bool]
    ) -> None:
        self.conn = conn
        self.inserter = inserter

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, params).fetchall())

    def run(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.execute(sql, params)

    def insert_run(self, row: dict[str, Any]) -> bool:
        return self.inserter(row)


def apply_op(
    conn: sqlite3.Connection,
    op: IngestOtlpSpans,
    insert_run: Callable[[dict[str, Any]], bool],
) -> OtlpIngestResult:
    """Apply ``op`` on the writer's connection (the caller isolates it in a savepoint);
    ``insert_run`` inserts one run row with the ``InsertRuns`` rules."""
    return apply_spans(_SQLiteSpans(conn, insert_run), op)
