"""IngestOtlpSpans on every backend: nearest run ancestor, out-of-order arrival,
idempotency, the pending cap, and spans going away with their run."""

from __future__ import annotations

import uuid
from typing import Any

from local_telemetry.storage.base import (
    DeleteRuns,
    IngestOtlpSpans,
    OtlpIngestResult,
    OtlpSpan,
    Store,
)

START = "2026-01-05T10:00:00.000000Z"


def ids() -> tuple[str, str]:
    trace = uuid.uuid4().hex
    return trace, trace[:16]


def run_span(trace: str, span: str, parent: str | None, tokens: int = 0) -> OtlpSpan:
    row = {
        "event_id": f"{trace}-{span}",
        "run_id": trace,
        "agent_name": "otlp-store-agent",
        "job_type": "invoke_agent",
        "start_time": START,
        "status": "success",
        "end_time": START,
        "tokens_input": tokens,
    }
    return OtlpSpan(trace, span, parent, tokens, 0, run=row)


def child_span(trace: str, span: str, parent: str | None, tokens: int) -> OtlpSpan:
    event = {"timestamp": START, "level": "info", "message": f"span {span}", "data": None}
    return OtlpSpan(trace, span, parent, tokens, tokens * 10, event=event)


def ingest(store: Store, *spans: OtlpSpan, max_pending: int = 100) -> OtlpIngestResult:
    [result] = store.apply([IngestOtlpSpans(list(spans), max_pending)])
    assert isinstance(result, OtlpIngestResult), result
    return result


def tokens(store: Store, event_id: str) -> tuple[Any, Any]:
    run = store.get_run(event_id)
    assert run is not None
    return run["tokens_input"], run["tokens_output"]


def test_nested_run_gets_its_own_descendants(store: Store) -> None:
    trace, _ = ids()
    root, nested = run_span(trace, "a" * 16, None, 1), run_span(trace, "b" * 16, "a" * 16)
    ingest(
        store,
        root,
        nested,
        child_span(trace, "c" * 16, "b" * 16, 5),  # under the nested run
        child_span(trace, "d" * 16, "c" * 16, 7),  # its grandchild
        child_span(trace, "e" * 16, "a" * 16, 2),  # directly under the root
    )
    assert tokens(store, f"{trace}-{'a' * 16}") == (1 + 2, 20)
    assert tokens(store, f"{trace}-{'b' * 16}") == (5 + 7, 120)
    nested_run = store.get_run(f"{trace}-{'b' * 16}")
    assert nested_run is not None
    assert nested_run["parent_run_id"] == f"{trace}-{'a' * 16}"


def test_out_of_order_chain_is_attached_once(store: Store) -> None:
    trace, _ = ids()
    grandchild = child_span(trace, "d" * 16, "c" * 16, 7)
    child = child_span(trace, "c" * 16, "a" * 16, 5)
    first = ingest(store, grandchild)
    assert (first.pending, first.attached) == (1, 0)
    assert ingest(store, child).pending == 1
    done = ingest(store, run_span(trace, "a" * 16, None, 1))
    assert (done.runs, done.attached) == (1, 2)
    again = ingest(store, grandchild, child, run_span(trace, "a" * 16, None, 1))
    assert again == OtlpIngestResult(duplicates=3)
    assert tokens(store, f"{trace}-{'a' * 16}") == (13, 120)
    events = store.list_events(f"{trace}-{'a' * 16}")
    assert events is not None
    assert sorted(e["message"] for e in events) == [f"span {'c' * 16}", f"span {'d' * 16}"]


def test_pending_spans_are_capped(store: Store) -> None:
    trace, _ = ids()
    result = ingest(
        store,
        child_span(trace, "c" * 16, "a" * 16, 1),
        child_span(trace, "d" * 16, "a" * 16, 1),
        max_pending=1,
    )
    assert result.pending == 1
    assert len(result.rejected) == 1
    assert "wait for their root run" in result.rejected[0]


def test_spans_go_away_with_their_run(store: Store) -> None:
    trace, _ = ids()
    child = child_span(trace, "c" * 16, "a" * 16, 1)
    ingest(store, run_span(trace, "a" * 16, None), child)
    [deleted] = store.apply([DeleteRuns([f"{trace}-{'a' * 16}"], "9999-01-01T00:00:00.000000Z")])
    assert deleted.runs == 1
    assert ingest(store, child).pending == 1  # no bookkeeping row kept it a duplicate


def test_a_bad_run_row_stores_nothing_of_the_export(store: Store) -> None:
    trace, _ = ids()
    bad = run_span(trace, "b" * 16, None)
    bad = OtlpSpan(trace, "b" * 16, None, run={**(bad.run or {}), "start_time": None})
    [result] = store.apply([IngestOtlpSpans([run_span(trace, "a" * 16, None), bad])])
    assert isinstance(result, Exception)
    assert store.get_run(f"{trace}-{'a' * 16}") is None
