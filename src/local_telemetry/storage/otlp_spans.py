"""The :class:`IngestOtlpSpans` write, once for both backends.

Every stored span has one row in ``otlp_spans`` (primary key trace id + span id), which
is both the idempotency record (a re-sent span is skipped, so tokens are never counted
twice) and the pending list: ``run_event_id`` is the run the span is (a run span) or was
attached to, NULL while no run for it is known yet; a pending row keeps its event in
``event_json`` until it is attached. Rows go away with their run (``ON DELETE
CASCADE``), so retention needs no step of its own. Pending rows stay until their root
run arrives; their number is capped by ``IngestOtlpSpans.max_pending``.

The backends differ only in placeholders and in how a run row is inserted: each passes
a :class:`SpanDb` (``sqlite_otlp.py``, ``postgres_otlp.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from local_telemetry.storage.base import IngestOtlpSpans, OtlpIngestResult, OtlpSpan
from local_telemetry.timestamps import now_stored

log = logging.getLogger(__name__)

_SPAN_SQL = "SELECT run_event_id, is_run FROM otlp_spans WHERE trace_id = ? AND span_id = ?"
_ROOT_SQL = (
    "SELECT run_event_id FROM otlp_spans WHERE trace_id = ? AND is_root = 1"
    " ORDER BY received_at, span_id LIMIT 1"
)
_PENDING_COUNT_SQL = "SELECT COUNT(*) FROM otlp_spans WHERE run_event_id IS NULL"
_PENDING_OF_TRACE_SQL = (
    "SELECT span_id, parent_span_id, tokens_input, tokens_output, event_json"
    " FROM otlp_spans WHERE trace_id = ? AND run_event_id IS NULL ORDER BY received_at, span_id"
)
_INSERT_SQL = (
    "INSERT INTO otlp_spans (trace_id, span_id, parent_span_id, run_event_id, is_run,"
    " is_root, tokens_input, tokens_output, event_json, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ATTACH_SQL = (
    "UPDATE otlp_spans SET run_event_id = ?, event_json = NULL WHERE trace_id = ? AND span_id = ?"
)
_TOKENS_SQL = (
    "UPDATE agent_runs SET tokens_input = COALESCE(tokens_input, 0) + ?,"
    " tokens_output = COALESCE(tokens_output, 0) + ?, updated_at = ? WHERE event_id = ?"
)
_EVENT_SQL = (
    "INSERT INTO run_events (event_id, timestamp, level, message, data) VALUES (?, ?, ?, ?, ?)"
)


class SpanDb(Protocol):
    """What the span write needs of a backend's write connection (SQL uses ``?``)."""

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of a query."""

    def run(self, sql: str, params: Sequence[Any]) -> None:
        """Execute a statement."""

    def insert_run(self, row: dict[str, Any]) -> bool:
        """Insert a run row with the ``InsertRuns`` rules; whether it was created."""


def apply_spans(db: SpanDb, op: IngestOtlpSpans) -> OtlpIngestResult:
    """Apply ``op`` (see :class:`IngestOtlpSpans`) inside the caller's savepoint."""
    writer = _SpanWriter(db, op.max_pending)
    for span in op.spans:
        writer.store(span)
    if writer.over_cap:
        log.warning(
            "OTLP: %d spans rejected: %d spans already wait for their root run",
            writer.over_cap,
            op.max_pending,
        )
    return writer.result


class _SpanWriter:
    def __init__(self, db: SpanDb, max_pending: int) -> None:
        self.db = db
        self.max_pending = max_pending
        self.now = now_stored()
        self.result = OtlpIngestResult()
        self.pending_count: int | None = None
        self.over_cap = 0

    def store(self, span: OtlpSpan) -> None:
        """Store one span (skipped when it was stored before)."""
        if self.db.rows(_SPAN_SQL, (span.trace_id, span.span_id)):
            self.result.duplicates += 1
        elif span.run is not None:
            self._store_run(span, span.run)
        else:
            self._store_child(span)

    def _parent(self, span: OtlpSpan) -> tuple[Any, ...] | None:
        if span.parent_span_id is None:
            return None
        found = self.db.rows(_SPAN_SQL, (span.trace_id, span.parent_span_id))
        return found[0] if found else None

    def _store_run(self, span: OtlpSpan, row: dict[str, Any]) -> None:
        parent = self._parent(span)
        parent_is_run = parent is not None and bool(parent[1])
        if parent_is_run:
            assert parent is not None
            row = {**row, "parent_run_id": parent[0]}
        event_id = row["event_id"]
        if not self.db.insert_run(row):
            self.result.duplicates += 1
            return
        self._insert(span, event_id, is_run=True, is_root=not parent_is_run, event_json=None)
        self.result.runs += 1
        self._adopt_pending(span, event_id, take_all=not parent_is_run)

    def _adopt_pending(self, span: OtlpSpan, event_id: str, *, take_all: bool) -> None:
        """Attach the pending spans of the trace below this run (all of them when it is
        the trace's root run: their chain to a nearer run is unknown)."""
        pending = self.db.rows(_PENDING_OF_TRACE_SQL, (span.trace_id,))
        if not pending:
            return
        below: dict[str | None, list[tuple[Any, ...]]] = {}
        for row in pending:
            below.setdefault(row[1], []).append(row)
        chosen: list[tuple[Any, ...]] = []
        frontier = [span.span_id]
        while frontier:
            for row in below.pop(frontier.pop(), []):
                chosen.append(row)
                frontier.append(row[0])
        if take_all:
            chosen += [row for rows in below.values() for row in rows]
        tokens_in = tokens_out = 0
        for span_id, _, span_in, span_out, event_json in chosen:
            self.db.run(_ATTACH_SQL, (event_id, span.trace_id, span_id))
            tokens_in += int(span_in)
            tokens_out += int(span_out)
            if event_json is not None:
                self._add_event(event_id, orjson.loads(event_json))
        self._add_tokens(event_id, tokens_in, tokens_out)
        self.result.attached += len(chosen)
        if self.pending_count is not None:
            self.pending_count -= len(chosen)

    def _store_child(self, span: OtlpSpan) -> None:
        parent = self._parent(span)
        if parent is not None:
            target = parent[0]  # NULL: the parent waits for its run, so does the child
        else:
            root = self.db.rows(_ROOT_SQL, (span.trace_id,))
            target = root[0][0] if root else None
        if target is None:
            self._keep_pending(span)
            return
        self._insert(span, target, is_run=False, is_root=False, event_json=None)
        if span.event is not None:
            self._add_event(target, span.event)
        self._add_tokens(target, span.tokens_input, span.tokens_output)
        self.result.attached += 1

    def _keep_pending(self, span: OtlpSpan) -> None:
        if self.pending_count is None:
            self.pending_count = int(self.db.rows(_PENDING_COUNT_SQL, ())[0][0])
        if self.pending_count >= self.max_pending:
            self.over_cap += 1
            self.result.rejected.append(
                f"span {span.span_id}: {self.max_pending} spans already wait for their root run"
            )
            return
        event_json = None if span.event is None else orjson.dumps(span.event).decode()
        self._insert(span, None, is_run=False, is_root=False, event_json=event_json)
        self.pending_count += 1
        self.result.pending += 1

    def _insert(
        self,
        span: OtlpSpan,
        run_event_id: str | None,
        *,
        is_run: bool,
        is_root: bool,
        event_json: str | None,
    ) -> None:
        self.db.run(
            _INSERT_SQL,
            (
                span.trace_id,
                span.span_id,
                span.parent_span_id,
                run_event_id,
                int(is_run),
                int(is_root),
                span.tokens_input,
                span.tokens_output,
                event_json,
                self.now,
            ),
        )

    def _add_event(self, event_id: str, event: dict[str, Any]) -> None:
        data = event.get("data")
        self.db.run(
            _EVENT_SQL,
            (
                event_id,
                event["timestamp"],
                event["level"],
                event["message"],
                None if data is None else orjson.dumps(data).decode(),
            ),
        )

    def _add_tokens(self, event_id: str, tokens_in: int, tokens_out: int) -> None:
        if tokens_in or tokens_out:
            self.db.run(_TOKENS_SQL, (tokens_in, tokens_out, self.now, event_id))
