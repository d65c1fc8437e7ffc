"""PostgreSQL side of the OTLP span write (``storage/otlp_spans.py`` holds the logic)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from local_telemetry.storage.base import IngestOtlpSpans, OtlpIngestResult
from local_telemetry.storage.otlp_spans import apply_spans

_T = 'TEXT COLLATE "C"'

OTLP_SCHEMA = (
    f"""CREATE TABLE otlp_spans (
        trace_id {_T} NOT NULL,
        span_id {_T} NOT NULL,
        parent_span_id {_T},
        run_event_id {_T} REFERENCES agent_runs(event_id) ON DELETE CASCADE,
        is_run SMALLINT NOT NULL DEFAULT 0 CHECK (is_run IN (0, 1)),
        is_root SMALLINT NOT NULL DEFAULT 0 CHECK (is_root IN (0, 1)),
        tokens_input BIGINT NOT NULL DEFAULT 0,
        tokens_output BIGINT NOT NULL DEFAULT 0,
        event_json {_T},
        received_at {_T} NOT NULL,
        PRIMARY KEY (trace_id, span_id)
    )""",
    # Deleting a run (retention) looks its spans up by run.
    "CREATE INDEX idx_otlp_spans_run ON otlp_spans(run_event_id)",
    "CREATE INDEX idx_otlp_spans_pending ON otlp_spans(received_at) WHERE run_event_id IS NULL",
)
"""Spans of OTLP exports (SQLite's migration 7; see ``storage/otlp_spans.py``)."""


class _PostgresSpans:
    """:class:`SpanDb` on the PostgreSQL write connection (``?`` becomes ``%s``)."""

    def __init__(
        self, conn: psycopg.Connection[Any], inserter: Callable[[dict[str, Any]], bool]
    ) -> None:
        self.conn = conn
        self.inserter = inserter

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql.replace("?", "%s"), params).fetchall())

    def run(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.execute(sql.replace("?", "%s"), params)

    def insert_run(self, row: dict[str, Any]) -> bool:
        return self.inserter(row)


def apply_op(
    conn: psycopg.Connection[Any],
    op: IngestOtlpSpans,
    insert_run: Callable[[dict[str, Any]], bool],
) -> OtlpIngestResult:
    """Apply ``op`` on the writer's connection (the caller isolates it in a savepoint);
    ``insert_run`` inserts one run row with the ``InsertRuns`` rules."""
    return apply_spans(_PostgresSpans(conn, insert_run), op)
