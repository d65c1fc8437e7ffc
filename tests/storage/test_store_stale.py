"""The stale-run operations of every store: ``CloseStaleRuns`` and ``stale_runs``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from local_telemetry.storage.base import (
    CloseStaleRuns,
    InsertRuns,
    KpiFilter,
    Store,
    UpdateRun,
)
from local_telemetry.timestamps import to_stored
from support import store_row

NOW = datetime(2026, 6, 1, tzinfo=UTC)
STAMP = to_stored(NOW)
CUTOFF = to_stored(NOW - timedelta(days=1))
OLD = to_stored(NOW - timedelta(days=3))
START = to_stored(NOW - timedelta(days=3, hours=2))
RECENT = to_stored(NOW - timedelta(hours=1))


def one(store: Store, op: Any) -> Any:
    [result] = store.apply([op])
    assert not isinstance(result, Exception), result
    return result


def insert(store: Store, event_id: str, **fields: Any) -> None:
    row = store_row(event_id, **{"created_at": OLD, "start_time": START, **fields})
    assert one(store, InsertRuns([row])) == 1


def close(store: Store, status: str = "timeout", limit: int = 500) -> list[dict[str, Any]]:
    closed: list[dict[str, Any]] = one(store, CloseStaleRuns(CUTOFF, status, STAMP, limit))
    return closed


def test_closes_only_stale_running_runs(store: Store) -> None:
    insert(store, "stale", agent_name="crashy", job_type="sync")
    insert(store, "explained", error_summary="lost the lease")
    insert(store, "done", status="success", end_time=RECENT)
    insert(store, "failed", status="failure")
    insert(store, "young", created_at=RECENT)
    counts_before = store.run_counts(CUTOFF, STAMP)

    found = store.stale_runs(CUTOFF, 10)
    assert found.total == 2
    assert [run["event_id"] for run in found.runs] == ["stale", "explained"]
    assert found.runs[0] == {
        "event_id": "stale",
        "agent_name": "crashy",
        "job_type": "sync",
        "start_time": START,
        "last_heard": OLD,
    }
    assert store.get_run("stale")["status"] == "running"  # type: ignore[index]

    closed = close(store)
    assert closed == found.runs
    run = store.get_run("stale")
    assert run is not None
    assert run["status"] == "timeout"
    assert run["end_time"] == OLD  # its last sign of life
    assert run["duration_ms"] == 2 * 3600 * 1000
    assert run["updated_at"] == STAMP
    assert run["error_summary"] == (
        f"closed as timeout by stale-run cleanup: no update for 1d since {OLD}"
    )
    assert store.get_run("explained")["error_summary"] == "lost the lease"  # type: ignore[index]
    for kept, status in (("done", "success"), ("failed", "failure"), ("young", "running")):
        assert store.get_run(kept)["status"] == status  # type: ignore[index]
    # Closing changes no run count; the KPIs see the new statuses.
    assert store.run_counts(CUTOFF, STAMP) == counts_before
    inputs = store.kpi_inputs(KpiFilter(), [], "UTC")[()]
    assert inputs.status_counts == {"timeout": 2, "success": 1, "failure": 1, "running": 1}
    assert close(store) == []
    assert store.stale_runs(CUTOFF, 10).total == 0


def test_a_run_heard_from_after_the_read_is_kept(store: Store) -> None:
    insert(store, "revived")
    insert(store, "dead")
    assert store.stale_runs(CUTOFF, 10).total == 2
    # The agent reports in between the dry run and the close: updated_at is now.
    assert one(store, UpdateRun("revived", {"items_discovered": 1})) == "run-revived"
    assert [run["event_id"] for run in close(store, "cancelled")] == ["dead"]
    assert store.get_run("revived")["status"] == "running"  # type: ignore[index]
    assert store.get_run("dead")["status"] == "cancelled"  # type: ignore[index]


def test_an_existing_end_is_kept_and_an_end_is_never_before_the_start(store: Store) -> None:
    insert(store, "ended", end_time=RECENT, duration_ms=777)
    later_start = to_stored(NOW - timedelta(days=2))  # after the run was created
    insert(store, "late", start_time=later_start)
    close(store, "failure")
    ended = store.get_run("ended")
    assert ended is not None
    assert (ended["status"], ended["end_time"], ended["duration_ms"]) == ("failure", RECENT, 777)
    late = store.get_run("late")
    assert late is not None
    assert (late["end_time"], late["duration_ms"]) == (later_start, 0)


def test_batches_are_bounded_by_the_limit(store: Store) -> None:
    for n in range(5):
        insert(store, f"run-{n}")
    sizes = [len(close(store, limit=2)) for _ in range(4)]
    assert sizes == [2, 2, 1, 0]
    assert store.stale_runs(CUTOFF, 1).total == 0
