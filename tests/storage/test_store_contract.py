"""The Store contract: every backend must pass these tests.

Backends are listed in the ``store`` fixture; a new backend (PostgreSQL) adds itself
there and must pass the same suite unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from local_telemetry.storage.base import InsertRuns, RunFilter, Store, UpdateRun
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import normalize, to_stored


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend: Store = SQLiteStore(tmp_path / "contract.sqlite")
    backend.migrate()
    yield backend
    backend.close()


def row(event_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "run_id": f"run-{event_id}",
        "agent_name": "agent-a",
        "job_type": "job-a",
        "start_time": normalize("2026-01-12T10:00:00Z"),
    }
    base.update(fields)
    return base


def test_migrate_is_idempotent(store: Store) -> None:
    store.migrate()
    store.apply([InsertRuns([row("e1")])])
    store.migrate()
    assert store.get_run("e1") is not None


def test_insert_reports_created_then_duplicate(store: Store) -> None:
    [first] = store.apply([InsertRuns([row("e1")])])
    [second] = store.apply([InsertRuns([row("e1", agent_name="other")])])
    assert first == 1
    assert second == 0
    stored = store.get_run("e1")
    assert stored is not None
    assert stored["agent_name"] == "agent-a"


def test_duplicates_inside_one_insert_are_detected(store: Store) -> None:
    [result] = store.apply([InsertRuns([row("e1"), row("e2"), row("e1")])])
    assert result == 2


def test_first_occurrence_wins_across_agents(store: Store) -> None:
    rows = [row("e0", agent_name="b"), row("e1", agent_name="a"), row("e1", agent_name="b")]
    assert store.apply([InsertRuns(rows)]) == [2]
    stored = store.get_run("e1")
    assert stored is not None
    assert stored["agent_name"] == "a"
    window = (normalize("2000-01-01T00:00:00Z"), normalize("2100-01-01T00:00:00Z"))
    assert store.run_counts(*window)[1] == {"a": 1, "b": 1}


def test_defaults_are_filled(store: Store) -> None:
    store.apply([InsertRuns([row("e1")])])
    stored = store.get_run("e1")
    assert stored is not None
    assert stored["status"] == "running"
    assert stored["items_discovered"] == 0
    assert stored["duration_ms"] == 0
    assert stored["api_posted"] is False
    assert stored["created_at"].endswith("Z")
    assert stored["updated_at"] is None


def test_json_columns_round_trip_as_objects(store: Store) -> None:
    metrics = {"tokens": 12, "nested": {"list": [1, 2.5, "x"]}, "unicode": "é✓"}
    store.apply([InsertRuns([row("e1", metrics_json=metrics, context_json={})])])
    stored = store.get_run("e1")
    assert stored is not None
    assert stored["metrics_json"] == metrics
    assert stored["context_json"] == {}


def test_update_changes_fields_and_stamps_updated_at(store: Store) -> None:
    store.apply([InsertRuns([row("e1")])])
    [run_id] = store.apply([UpdateRun("e1", {"status": "success", "items_succeeded": 5})])
    assert run_id == "run-e1"
    stored = store.get_run("e1")
    assert stored is not None
    assert (stored["status"], stored["items_succeeded"]) == ("success", 5)
    assert stored["updated_at"] is not None


def test_update_of_missing_run_returns_none(store: Store) -> None:
    assert store.apply([UpdateRun("nope", {"status": "success"})]) == [None]


def test_update_refuses_identity_fields(store: Store) -> None:
    store.apply([InsertRuns([row("e1")])])
    [result] = store.apply([UpdateRun("e1", {"event_id": "e2"})])
    assert isinstance(result, ValueError)
    assert store.get_run("e2") is None


def test_one_failing_operation_leaves_the_rest_of_the_group_committed(store: Store) -> None:
    results = store.apply(
        [
            InsertRuns([row("good-1")]),
            InsertRuns([row("bad", items_failed=-1)]),  # violates the counter CHECK
            InsertRuns([row("good-2")]),
        ]
    )
    assert results[0] == 1
    assert isinstance(results[1], Exception)
    assert results[2] == 1
    assert store.get_run("bad") is None
    assert store.get_run("good-1") is not None
    assert store.get_run("good-2") is not None


def test_failing_insert_stores_none_of_its_rows(store: Store) -> None:
    [result] = store.apply([InsertRuns([row("ok"), row("bad", duration_ms=-5)])])
    assert isinstance(result, Exception)
    assert store.get_run("ok") is None


def _seed_for_listing(store: Store) -> None:
    rows = [
        row(
            "a1", agent_name="alpha", status="success", created_at=normalize("2026-01-01T00:00:00Z")
        ),
        row(
            "a2", agent_name="alpha", status="failure", created_at=normalize("2026-01-02T00:00:00Z")
        ),
        row(
            "b1", agent_name="beta", job_type="job-b", created_at=normalize("2026-01-03T00:00:00Z")
        ),
        row(
            "b2",
            agent_name="beta",
            start_time=normalize("2026-02-01T00:00:00Z"),
            created_at=normalize("2026-01-04T00:00:00Z"),
        ),
    ]
    store.apply([InsertRuns(rows)])


def ids(runs: list[dict[str, Any]]) -> list[str]:
    return [r["event_id"] for r in runs]


def test_list_orders_newest_first_with_limit_and_offset(store: Store) -> None:
    _seed_for_listing(store)
    assert ids(store.list_runs(RunFilter())) == ["b2", "b1", "a2", "a1"]
    assert ids(store.list_runs(RunFilter(limit=2, offset=1))) == ["b1", "a2"]


def test_list_filters_combine(store: Store) -> None:
    _seed_for_listing(store)
    assert ids(store.list_runs(RunFilter(agent_name="alpha"))) == ["a2", "a1"]
    assert ids(store.list_runs(RunFilter(agent_name="alpha", status="success"))) == ["a1"]
    assert ids(store.list_runs(RunFilter(job_type="job-b"))) == ["b1"]
    assert ids(store.list_runs(RunFilter(run_id="run-b2"))) == ["b2"]


def test_created_bounds_are_exclusive_and_start_bounds_inclusive(store: Store) -> None:
    _seed_for_listing(store)
    after = RunFilter(created_after=normalize("2026-01-02T00:00:00Z"))
    assert ids(store.list_runs(after)) == ["b2", "b1"]
    before = RunFilter(created_before=normalize("2026-01-02T00:00:00Z"))
    assert ids(store.list_runs(before)) == ["a1"]
    start = RunFilter(start_time_from=normalize("2026-02-01T02:00:00+02:00"))
    assert ids(store.list_runs(start)) == ["b2"]
    until = RunFilter(start_time_to=normalize("2026-01-12T10:00:00Z"))
    assert ids(store.list_runs(until)) == ["b1", "a2", "a1"]


def test_distinct_values_and_counts(store: Store) -> None:
    _seed_for_listing(store)
    assert store.distinct_values() == (["alpha", "beta"], ["job-a", "job-b"])
    total, per_agent, recent = store.run_counts(
        normalize("2026-01-02T12:00:00Z"), normalize("2026-12-31T00:00:00Z")
    )
    assert total == 4
    assert per_agent == {"alpha": 2, "beta": 2}
    assert recent == 2


def test_info_reports_durable_modes(store: Store) -> None:
    info = store.info()
    assert info.journal_mode == "WAL"
    assert info.synchronous == "FULL"


def test_json_reads_serialize_exactly_like_the_dict_reads(store: Store) -> None:
    varied = [
        row("j1"),
        row(
            "j2",
            metrics_json={"f": 0.05, "big": 2**63 + 5, "neg": -1, "nested": [{"a": None}]},
            context_json={"text": 'é✓ "quoted" \\ \n\t\x01', "ok": True},
            api_posted=True,
            error_details="line1\nline2\u2028",
            git_repo="git@github.com:org/repo.git",
            git_commit_hash="abcdef1",
            items_succeeded=2**63 - 1,
        ),
        row("j3", status="failure", end_time=normalize("2026-01-12T11:00:00Z")),
    ]
    store.apply([InsertRuns(varied)])
    as_dicts = store.list_runs(RunFilter())
    as_json = store.list_runs_json(RunFilter())
    assert [text for text, _, _ in as_json] == [orjson.dumps(run).decode() for run in as_dicts]
    assert [(repo, sha) for _, repo, sha in as_json] == [
        (run["git_repo"], run["git_commit_hash"]) for run in as_dicts
    ]
    single = store.get_run_json("j2")
    assert single is not None
    assert single[0] == orjson.dumps(store.get_run("j2")).decode()
    assert store.get_run_json("missing") is None


def test_recent_counts_equal_a_row_by_row_count_for_any_window(store: Store) -> None:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    stamps = [base + timedelta(minutes=37 * n) for n in range(200)]  # ~5 days
    rows = [row(f"w{n}", created_at=to_stored(t)) for n, t in enumerate(stamps)]
    store.apply([InsertRuns(rows[:120]), InsertRuns(rows[120:])])
    windows = [
        (base + timedelta(hours=5, minutes=13), base + timedelta(hours=29, minutes=13)),
        (base + timedelta(hours=5), base + timedelta(hours=29)),
        (base + timedelta(minutes=10), base + timedelta(minutes=50)),
        (base + timedelta(hours=2, minutes=59), base + timedelta(hours=3, minutes=1)),
        (base - timedelta(days=1), base + timedelta(days=10)),
        (stamps[40], stamps[80]),  # bounds exactly on rows: (since, until]
    ]
    for since, until in windows:
        expected = sum(1 for t in stamps if since < t <= until)
        assert store.run_counts(to_stored(since), to_stored(until))[2] == expected, (since, until)
