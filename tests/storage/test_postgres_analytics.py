"""``storage/postgres_analytics.py`` against a real PostgreSQL: the same data set stored by
SQLite and copied row by row into PostgreSQL gives the same KPI inputs (every grouping,
zones with changes of offset, filters), hourly and recent inputs and retention pages;
alert writes keep one open alert per pair."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from local_telemetry.storage import postgres_analytics as pga
from local_telemetry.storage.base import (
    AddQc,
    AlertFilter,
    AppendEvents,
    BlankPayloads,
    DeleteRuns,
    InsertRuns,
    KpiFilter,
    KpiInputs,
    ReclaimSpace,
    RecordAlerts,
    RetentionCounts,
    SaveAlertRules,
    UpdateRun,
    UpsertAgentRun,
)
from local_telemetry.storage.migrations import postgres as pg_migrations
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import to_stored
from pg_support import pg_bindir
from support import store_row

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL binaries not found")

BASE = datetime(2026, 3, 20, tzinfo=UTC)


def stamp(hours: float) -> str:
    return to_stored(BASE + timedelta(hours=hours))


def _rows() -> list[dict[str, Any]]:
    """Runs over three weeks around Europe's and America's changes of offset, with every
    kind of KPI input; some without end, some with a supplied duration."""
    rows: list[dict[str, Any]] = []
    statuses = ("success", "failure", "partial", "running", "timeout", "cancelled")
    resolutions = ("resolved", "escalated", "failed", None)
    for n in range(120):
        start = n * 4.25 + (n % 3) * 0.5  # every 4 h 15 min, some on the half hour
        row: dict[str, Any] = {
            "agent_name": f"agent-{n % 3}",
            "job_type": f"job-{n % 2}",
            "start_time": stamp(start),
            "status": statuses[n % len(statuses)],
            "resolution": resolutions[n % 4],
            "self_corrected": (None, True, False)[n % 3],
            "tokens_input": None if n % 5 == 0 else n * 10,
            "tokens_output": None if n % 7 == 0 else n,
            "cost_usd": None if n % 4 == 0 else n * 0.01,
            "sla_target_seconds": None if n % 6 == 0 else 30 + n % 50,
        }
        if n % 5 != 1:  # n % 5 == 1: no end
            row["end_time"] = to_stored(
                BASE + timedelta(hours=start, seconds=n % 70, microseconds=n * 1777)
            )
        if n % 4 == 2:
            row["duration_ms"] = 1000 + n * 333
        rows.append(store_row(f"run-{n:03d}", **row))
    return rows


def _copy(sqlite_path: Path, conn: psycopg.Connection[Any]) -> None:
    """Copy every stored row of the SQLite file into the PostgreSQL schema."""
    with sqlite3.connect(sqlite_path) as source, conn.transaction():
        for table, skip in (
            ("agent_runs", {"kpi_duration_ms"}),
            ("run_events", set()),
            ("agent_qc", set()),
            ("run_counts", set()),
            ("run_counts_hourly", set()),
        ):
            columns = [r[1] for r in source.execute(f"PRAGMA table_xinfo({table})")]
            columns = [c for c in columns if c not in skip]
            marks = ", ".join("%s" for _ in columns)
            rows = source.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            with conn.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    rows,
                )


@pytest.fixture
def pair(
    tmp_path: Path,
    postgres_url: str,
) -> Iterator[tuple[SQLiteStore, psycopg.Connection[Any]]]:
    """The data set in a SQLiteStore and, copied, in a migrated PostgreSQL database."""
    lite = SQLiteStore(tmp_path / "store.sqlite")
    lite.migrate()
    rows = _rows()
    assert lite.apply([InsertRuns(rows)]) == [len(rows)]
    for n, row in enumerate(rows):
        event = {"timestamp": row["start_time"], "level": "info", "message": "m", "data": None}
        ops: list[Any] = [AppendEvents(row["event_id"], [event] * (n % 3))]
        ops += [
            AddQc(row["event_id"], {"score": 1 + (n + k) % 5, "notes": "n" if k else None})
            for k in range(n % 4)
        ]
        lite.apply(ops)
    conn = psycopg.connect(postgres_url)
    try:
        pg_migrations.migrate(conn)
        _copy(tmp_path / "store.sqlite", conn)
        yield lite, conn
    finally:
        conn.close()
        lite.close()


def _normal(inputs: KpiInputs) -> KpiInputs:
    """Equal for equal inputs: durations sorted, cost rounded (summation order)."""
    return replace(
        inputs, durations_ms=sorted(inputs.durations_ms), cost_usd=round(inputs.cost_usd, 9)
    )


def _normal_all(groups: dict[Any, KpiInputs]) -> dict[Any, KpiInputs]:
    return {key: _normal(inputs) for key, inputs in groups.items()}


@pytest.mark.parametrize(
    "tz", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
)
@pytest.mark.parametrize(
    "group_by",
    [
        (),
        ("agent_name",),
        ("day",),
        ("week",),
        ("agent_name", "job_type", "day"),
        ("week", "job_type"),
    ],
)
def test_kpi_inputs_equal_sqlite(
    pair: tuple[SQLiteStore, psycopg.Connection[Any]], tz: str, group_by: tuple[str, ...]
) -> None:
    lite, conn = pair
    expected = _normal_all(lite.kpi_inputs(KpiFilter(), group_by, tz))
    assert sum(i.total_runs for i in expected.values()) == 120
    assert sum(i.qc_count for i in expected.values()) > 0
    assert _normal_all(pga.kpi_inputs(conn, KpiFilter(), group_by, tz)) == expected


@pytest.mark.parametrize(
    "kpi_filter",
    [
        KpiFilter(agent_name="agent-1"),
        KpiFilter(job_type="job-0", start_time_from=stamp(100)),
        KpiFilter(start_time_from=stamp(8.5), start_time_to=stamp(200)),  # bounds on runs
        KpiFilter(agent_name="nobody"),
    ],
)
def test_filters_equal_sqlite(
    pair: tuple[SQLiteStore, psycopg.Connection[Any]], kpi_filter: KpiFilter
) -> None:
    lite, conn = pair
    for group_by in [("day",), ("agent_name", "week")]:
        expected = _normal_all(lite.kpi_inputs(kpi_filter, group_by, "Europe/Berlin"))
        actual = _normal_all(pga.kpi_inputs(conn, kpi_filter, group_by, "Europe/Berlin"))
        assert actual == expected
    assert _normal_all(pga.hourly_kpi_inputs(conn, kpi_filter)) == _normal_all(
        lite.hourly_kpi_inputs(kpi_filter)
    )


def test_hourly_and_recent_inputs_equal_sqlite(
    pair: tuple[SQLiteStore, psycopg.Connection[Any]],
) -> None:
    lite, conn = pair
    hourly = pga.hourly_kpi_inputs(conn, KpiFilter())
    assert _normal_all(hourly) == _normal_all(lite.hourly_kpi_inputs(KpiFilter()))
    assert all(len(hour) == 13 and hour[10] == "T" for hour in hourly)
    for agent, limit in [("agent-0", 5), ("agent-2", 1000), ("nobody", 3)]:
        expected = _normal(lite.recent_kpi_inputs(agent, limit))
        assert _normal(pga.recent_kpi_inputs(conn, agent, limit)) == expected


def test_unknown_zone_is_a_value_error(pair: tuple[SQLiteStore, psycopg.Connection[Any]]) -> None:
    _, conn = pair
    with pytest.raises(ValueError, match="unknown time zone"):
        pga.kpi_inputs(conn, KpiFilter(), ("day",), "Mars/Olympus")


def test_berlin_midnight_and_iso_weeks(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        pg_migrations.migrate(conn)
        insert = (
            "INSERT INTO agent_runs(event_id, run_id, created_at, start_time, agent_name,"
            " job_type) VALUES (%s, %s, %s, %s, 'a', 'j')"
        )
        with conn.transaction():
            for event_id, start in [
                ("sun", "2026-01-18T22:59:59.999999Z"),  # Sunday 23:59 in Berlin: W03
                ("mon", "2026-01-18T23:00:00.000000Z"),  # Monday 00:00 in Berlin: W04
                ("ny", "2027-01-01T00:00:00.000000Z"),  # ISO week 2026-W53 (a Friday)
            ]:
                conn.execute(insert, (event_id, event_id, start, start))
        days = pga.kpi_inputs(conn, KpiFilter(), ("day", "week"), "Europe/Berlin")
        assert sorted(days) == [
            ("2026-01-18", "2026-W03"),
            ("2026-01-19", "2026-W04"),
            ("2027-01-01", "2026-W53"),
        ]
        kolkata = pga.kpi_inputs(conn, KpiFilter(agent_name="a"), ("day",), "Asia/Kolkata")
        assert sorted(kolkata) == [("2026-01-19",), ("2027-01-01",)]  # 04:29, 04:30 IST
        with conn.transaction():  # +05:30: the day changes at 18:30 UTC
            for event_id, start in [
                ("k-before", "2026-01-19T18:29:59.999999Z"),
                ("k-after", "2026-01-19T18:30:00.000000Z"),
            ]:
                conn.execute(insert.replace("'a'", "'k'"), (event_id, event_id, start, start))
        kolkata = pga.kpi_inputs(conn, KpiFilter(agent_name="k"), ("day",), "Asia/Kolkata")
        assert {k: v.total_runs for k, v in kolkata.items()} == {
            ("2026-01-19",): 1,
            ("2026-01-20",): 1,
        }
        utc = pga.kpi_inputs(conn, KpiFilter(agent_name="a"), ("week",), "UTC")
        assert {k: v.total_runs for k, v in utc.items()} == {("2026-W03",): 2, ("2026-W53",): 1}


def test_retention_pages_and_writes_equal_sqlite(
    pair: tuple[SQLiteStore, psycopg.Connection[Any]],
) -> None:
    lite, conn = pair
    cutoff = stamp(250)
    for payloads in (False, True):
        after: tuple[str, int] | None = None
        while True:
            page = pga.retention_candidates(conn, cutoff, after, 7, payloads)
            assert page == lite.retention_candidates(cutoff, after, 7, payloads)
            if page.after is None:
                break
            after = page.after
    old = [f"run-{n:03d}" for n in range(0, 80, 3)]
    blank = BlankPayloads([*old, "missing"], cutoff)
    with conn.transaction():
        assert pga.apply_retention(conn, blank) == lite.apply([blank])[0]
    assert conn.execute("SELECT COUNT(*) FROM agent_qc WHERE notes IS NOT NULL").fetchone() == (
        sqlite3.connect(lite.path)
        .execute("SELECT COUNT(*) FROM agent_qc WHERE notes IS NOT NULL")
        .fetchone()
    )
    delete = DeleteRuns([f"run-{n:03d}" for n in range(0, 120, 2)], cutoff)
    with conn.transaction():
        counts = pga.apply_retention(conn, delete)
    assert counts == lite.apply([delete])[0]
    assert isinstance(counts, RetentionCounts)
    assert counts.runs > 0
    for table in ("run_counts", "run_counts_hourly"):
        key = "agent_name" if table == "run_counts" else "hour"
        lite_rows = (
            sqlite3.connect(lite.path)
            .execute(f"SELECT {key}, runs FROM {table} ORDER BY 1")
            .fetchall()
        )
        assert conn.execute(f"SELECT {key}, runs FROM {table} ORDER BY 1").fetchall() == lite_rows
    assert _normal_all(pga.kpi_inputs(conn, KpiFilter(), ("agent_name",), "UTC")) == _normal_all(
        lite.kpi_inputs(KpiFilter(), ("agent_name",), "UTC")
    )
    with conn.transaction():
        assert pga.apply_retention(conn, ReclaimSpace(100)) == 0


def test_alert_writes(postgres_url: str) -> None:
    def fire(agent: str) -> dict[str, Any]:
        return {
            "rule_name": "r",
            "kind": "failure_rate_above",
            "agent_name": agent,
            "threshold": 1,  # an int: read back as a float, as from SQLite
            "value": 0.5,
            "baseline": None,
            "sample_runs": 3,
            "message": "fired",
        }

    with psycopg.connect(postgres_url) as conn:
        pg_migrations.migrate(conn)
        assert pga.get_rules(conn) is None
        with conn.transaction():
            pga.save_rules(conn, SaveAlertRules([{"name": "a", "threshold": 0.5}]))
            pga.save_rules(conn, SaveAlertRules([{"name": "b"}]))
        assert pga.get_rules(conn) == [{"name": "b"}]
        with conn.transaction():
            fired = pga.record_alerts(conn, RecordAlerts(fire=[fire("a"), fire("a"), fire("b")]))
        assert [(a["agent_name"], a["state"]) for a in fired] == [("a", "firing"), ("b", "firing")]
        assert all(type(a["threshold"]) is float and type(a["id"]) is int for a in fired)
        a_id, b_id = fired[0]["id"], fired[1]["id"]
        with conn.transaction():
            changed = pga.record_alerts(
                conn,
                RecordAlerts(
                    resolve=[
                        {
                            "id": b_id,
                            "value": 0.0,
                            "baseline": 1.5,
                            "sample_runs": 9,
                            "message": "ok",
                        }
                    ],
                    refresh=[
                        {
                            "id": a_id,
                            "value": 0.75,
                            "baseline": None,
                            "sample_runs": 4,
                            "message": "now",
                        }
                    ],
                ),
            )
        assert [(a["id"], a["state"], a["baseline"]) for a in changed] == [(b_id, "resolved", 1.5)]
        [open_a] = pga.open_alerts(conn)
        assert (open_a["id"], open_a["value"], open_a["message"]) == (a_id, 0.75, "now")
        with conn.transaction():
            [again] = pga.record_alerts(conn, RecordAlerts(fire=[fire("b")]))
        listed = pga.list_alerts(conn, AlertFilter(agent_name="b"))
        assert [a["id"] for a in listed] == [again["id"], b_id]
        assert [a["id"] for a in pga.list_alerts(conn, AlertFilter(state="resolved"))] == [b_id]
        assert len(pga.list_alerts(conn, AlertFilter(limit=1, offset=2))) == 1


def test_stores_written_alike_give_equal_analytics(
    sqlite_store: SQLiteStore, postgres_url: str
) -> None:
    """Through each store's own write path (supplied durations, late PATCHes, the
    agent-runs upsert, QC reviews, alerts, retention), then every analytics read."""
    from local_telemetry.storage.postgres import PostgresStore

    pg_store = PostgresStore(postgres_url, pool_size=2)
    pg_store.migrate()
    try:
        rows = _rows()
        started = {"agent_name": "agent-0", "start_time": stamp(30.2)}
        ended = {"end_time": stamp(30.3), "resolution": "resolved", "status": "success"}
        groups: list[list[Any]] = [
            [InsertRuns(rows[:60]), InsertRuns(rows[60:])],
            [
                UpdateRun("run-001", {"end_time": stamp(9)}),
                UpdateRun("run-002", {"duration_ms": 5}),
            ],
            [UpsertAgentRun("upsert", started, {"job_type": "job-0"})],
            [UpsertAgentRun("upsert", ended, qc=[{"score": 5}, {"score": 3}])],
            [AddQc(f"run-{n:03d}", {"score": 1 + n % 5, "notes": "x"}) for n in range(0, 120, 7)],
        ]
        for group in groups[:-1]:
            assert pg_store.apply(group) == sqlite_store.apply(group)
        reviews = [store.apply(groups[-1]) for store in (pg_store, sqlite_store)]
        pg_scores, lite_scores = ([r["score"] for r in done] for done in reviews)
        assert pg_scores == lite_scores
        assert len(pg_scores) == 18
        for tz, group_by in [
            ("UTC", ()),
            ("Europe/Berlin", ("agent_name", "day")),
            ("Asia/Kathmandu", ("week", "job_type")),
        ]:
            expected = _normal_all(sqlite_store.kpi_inputs(KpiFilter(), group_by, tz))
            assert _normal_all(pg_store.kpi_inputs(KpiFilter(), group_by, tz)) == expected
        window = KpiFilter(start_time_from=stamp(20), start_time_to=stamp(300))
        assert _normal_all(pg_store.hourly_kpi_inputs(window)) == _normal_all(
            sqlite_store.hourly_kpi_inputs(window)
        )
        assert _normal(pg_store.recent_kpi_inputs("agent-0", 7)) == _normal(
            sqlite_store.recent_kpi_inputs("agent-0", 7)
        )
        cutoff = stamp(200)
        ops: list[Any] = [
            BlankPayloads([f"run-{n:03d}" for n in range(0, 60, 2)], cutoff),
            DeleteRuns([f"run-{n:03d}" for n in range(0, 60, 3)], cutoff),
        ]
        assert pg_store.apply(ops) == sqlite_store.apply(ops)
        assert pg_store.apply([ReclaimSpace(10)]) == [0]
        span = ("2000-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000000Z")
        assert pg_store.run_counts(*span) == sqlite_store.run_counts(*span)
        assert _normal_all(pg_store.kpi_inputs(KpiFilter(), ("day",), "UTC")) == _normal_all(
            sqlite_store.kpi_inputs(KpiFilter(), ("day",), "UTC")
        )
    finally:
        pg_store.close()
