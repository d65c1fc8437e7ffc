"""Retention operations of the store: candidate pages, blanking, deletion, space."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from local_telemetry.storage.base import (
    AddQc,
    AppendEvents,
    BlankPayloads,
    DeleteRuns,
    InsertRuns,
    KpiFilter,
    ReclaimSpace,
    RetentionCounts,
    Store,
)
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import to_stored
from support import store_row

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CUTOFF = to_stored(NOW - timedelta(days=30))
OLD = to_stored(NOW - timedelta(days=100))
YOUNG = to_stored(NOW - timedelta(days=1))
PAYLOAD = {
    "error_details": "Traceback ...",
    "metrics_json": {"rows": 1},
    "context_json": {"k": "v"},
    "error_summary": "boom",
    "end_time": None,
    "status": "failure",
    "resolution": "failed",
    "self_corrected": True,
    "tokens_input": 10,
    "tokens_output": 5,
    "cost_usd": 0.25,
    "sla_target_seconds": 60,
    "duration_ms": 1234,
}


def one(store: Store, op: Any) -> Any:
    [result] = store.apply([op])
    assert not isinstance(result, Exception), result
    return result


def seed(store: Store, event_id: str, start: str, **fields: Any) -> None:
    row = store_row(event_id, start_time=start, **{**PAYLOAD, **fields})
    assert one(store, InsertRuns([row])) == 1
    event = {"timestamp": start, "level": "info", "message": "m", "data": {"a": 1}}
    assert one(store, AppendEvents(event_id, [event, event])) == 2
    one(store, AddQc(event_id, {"score": 4, "notes": "secret", "reviewer": "ana"}))


def all_ids(store: Store, started_before: str, limit: int, payloads: bool) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        page = store.retention_candidates(started_before, after, limit, payloads)
        pages.append(page.event_ids)
        if page.after is None:
            return pages
        after = page.after


def test_new_database_uses_incremental_auto_vacuum(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "store.sqlite") as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2


def test_candidates_page_through_old_runs_only(store: Store) -> None:
    for n in range(5):  # equal start times: the keyset must not skip or repeat
        seed(store, f"old-{n}", OLD)
    seed(store, "older", to_stored(NOW - timedelta(days=200)))
    seed(store, "young", YOUNG)
    pages = all_ids(store, CUTOFF, 2, False)
    assert [len(p) for p in pages] == [2, 2, 2, 0]
    found = [event_id for page in pages for event_id in page]
    assert found[0] == "older"  # oldest first
    assert sorted(found) == sorted(["older", *(f"old-{n}" for n in range(5))])


def test_payload_candidates_skip_runs_already_blank(store: Store) -> None:
    seed(store, "full", OLD)
    row = store_row("bare", start_time=OLD)  # no payload, events or QC notes
    one(store, InsertRuns([row]))
    one(store, AddQc("bare", {"score": 3}))
    seed(store, "events-only", OLD, error_details=None, metrics_json=None, context_json=None)
    found = [e for page in all_ids(store, CUTOFF, 10, True) for e in page]
    assert sorted(found) == ["events-only", "full"]


def test_blank_payloads_keeps_kpi_inputs_and_young_runs(store: Store) -> None:
    seed(store, "old", OLD)
    seed(store, "young", YOUNG)
    kpis_before = store.kpi_inputs(KpiFilter(), ("agent_name", "day"), "UTC")
    old_before, young_before = store.get_run("old"), store.get_run("young")
    young_events, young_qc = store.list_events("young"), store.list_qc("young")

    # "young" is passed too: the age is checked again inside the transaction.
    counts = one(store, BlankPayloads(["old", "young", "missing"], CUTOFF))
    assert counts == RetentionCounts(runs=1, events=2, qc=1)

    old = store.get_run("old")
    assert old is not None
    assert old_before is not None
    for column in ("error_details", "metrics_json", "context_json"):
        assert old[column] is None
        old_before[column] = None
    assert old == old_before  # everything else kept, updated_at too
    assert store.list_events("old") == []
    [review] = store.list_qc("old") or []
    assert (review["score"], review["notes"], review["reviewer"]) == (4, None, "ana")
    assert store.get_run("young") == young_before
    assert store.list_events("young") == young_events
    assert store.list_qc("young") == young_qc
    assert store.kpi_inputs(KpiFilter(), ("agent_name", "day"), "UTC") == kpis_before
    # Nothing left to do: a second pass changes nothing.
    assert one(store, BlankPayloads(["old"], CUTOFF)) == RetentionCounts()
    assert [e for p in all_ids(store, CUTOFF, 10, True) for e in p] == []


def test_delete_runs_rechecks_age_and_maintains_counts(store: Store) -> None:
    seed(store, "old-a", OLD, agent_name="gone-agent")
    seed(store, "old-b", OLD, agent_name="kept-agent")
    seed(store, "young", YOUNG, agent_name="kept-agent")
    since, until = "2000-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000000Z"
    assert store.run_counts(since, until) == (3, {"kept-agent": 2, "gone-agent": 1}, 3)

    counts = one(store, DeleteRuns(["old-a", "old-b", "young"], CUTOFF))
    assert counts == RetentionCounts(runs=2, events=4, qc=2)
    assert store.get_run("old-a") is None
    assert store.get_run("old-b") is None
    assert store.list_events("old-a") is None
    assert store.list_qc("old-b") is None
    assert store.get_run("young") is not None
    # Per agent (the agent without runs is gone) and, summed from the hourly counts
    # (the window's whole hours), the hour the deleted runs were created in.
    assert store.run_counts(since, until) == (1, {"kept-agent": 1}, 1)
    assert store.distinct_values()[0] == ["kept-agent"]
    assert one(store, DeleteRuns(["old-a"], CUTOFF)) == RetentionCounts()


def test_delete_after_insert_in_the_same_group(store: Store) -> None:
    seed(store, "old", OLD, agent_name="agent-x")
    results = store.apply(
        [
            InsertRuns([store_row("new", agent_name="agent-x", start_time=YOUNG)]),
            DeleteRuns(["old"], CUTOFF),
            InsertRuns([store_row("new-2", agent_name="agent-y", start_time=YOUNG)]),
        ]
    )
    assert results == [1, RetentionCounts(runs=1, events=2, qc=1), 1]
    total, agents, _ = store.run_counts("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z")
    assert (total, agents) == (2, {"agent-x": 1, "agent-y": 1})


def freelist_and_pages(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    return int(free), int(pages)


def test_reclaim_space_gives_pages_back(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    store = sqlite_store
    path = tmp_path / "store.sqlite"
    big = "x" * 50_000
    rows = [store_row(f"big-{n}", start_time=OLD, error_details=big) for n in range(40)]
    one(store, InsertRuns(rows))
    _, pages_full = freelist_and_pages(path)
    one(store, DeleteRuns([r["event_id"] for r in rows], CUTOFF))
    free_before, _ = freelist_and_pages(path)
    assert free_before > 400  # 2 MB of payload freed

    assert one(store, ReclaimSpace(100)) == 100  # bounded chunk
    freed = 100
    while (pages := one(store, ReclaimSpace(100))) == 100:
        freed += pages
    freed += pages
    free_after, pages_after = freelist_and_pages(path)
    assert freed == free_before - free_after
    assert free_after == 0
    assert pages_after <= pages_full - free_before
    assert one(store, ReclaimSpace(100)) == 0


def test_reclaim_space_on_a_database_without_incremental_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # a table already: the mode stays NONE
        conn.execute("CREATE TABLE unrelated (x)")
    old_store = SQLiteStore(path)
    old_store.migrate()
    try:
        rows = [store_row(f"big-{n}", start_time=OLD, error_details="x" * 50_000) for n in range(5)]
        assert old_store.apply([InsertRuns(rows)]) == [5]
        [deleted] = old_store.apply([DeleteRuns([r["event_id"] for r in rows], CUTOFF)])
        assert deleted == RetentionCounts(runs=5, events=0, qc=0)
        assert old_store.apply([ReclaimSpace(100)]) == [0]
        free, _ = freelist_and_pages(path)
        assert free > 0  # kept for reuse by new rows
    finally:
        old_store.close()
