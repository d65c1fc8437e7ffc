"""SQLite migrations: a database at an earlier version is upgraded in place, rows kept."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from local_telemetry.storage.base import QC_COLUMNS, RUN_COLUMNS, AddQc, AppendEvents, InsertRuns
from local_telemetry.storage.migrations import sqlite as migrations
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import normalize

OUTCOME_COLUMNS = (
    "resolution",
    "input_kind",
    "self_corrected",
    "tokens_input",
    "tokens_output",
    "cost_usd",
    "sla_target_seconds",
)


@pytest.fixture
def version_1_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database as the release with only migration 1 left it, holding one run."""
    path = tmp_path / "v1.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        assert migrations.migrate(conn) == [1]
        monkeypatch.undo()
        conn.execute(
            "INSERT INTO agent_runs (event_id, run_id, created_at, start_time, agent_name,"
            " job_type, items_succeeded) VALUES ('old', 'run-old', ?, ?, 'agent', 'job', 7)",
            (normalize("2026-01-10T00:00:00Z"), normalize("2026-01-10T00:00:00Z")),
        )
    return path


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_migration_2_adds_outcome_columns_and_the_events_table(version_1_database: Path) -> None:
    store = SQLiteStore(version_1_database)
    store.migrate()
    try:
        old = store.get_run("old")
        assert old is not None
        assert old["items_succeeded"] == 7
        assert {key: old[key] for key in OUTCOME_COLUMNS} == dict.fromkeys(OUTCOME_COLUMNS)
        assert store.list_events("old") == []
    finally:
        store.close()
    with closing(sqlite3.connect(version_1_database)) as conn:
        outcome_end = columns(conn, "agent_runs").index(OUTCOME_COLUMNS[-1]) + 1
        assert columns(conn, "agent_runs")[outcome_end - len(OUTCOME_COLUMNS) : outcome_end] == (
            list(OUTCOME_COLUMNS)
        )
        assert set(RUN_COLUMNS) <= set(columns(conn, "agent_runs"))
        assert columns(conn, "run_events") == [
            "id",
            "event_id",
            "timestamp",
            "level",
            "message",
            "data",
        ]
        versions = [row[0] for row in conn.execute("SELECT version FROM local_telemetry_schema")]
        assert versions == [1, 2, 3, 4, 5, 6, 7]
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM run_events"
            " WHERE event_id = ? AND id > ? ORDER BY id",
            ("old", 0),
        ).fetchall()
        assert "idx_run_events_run" in str(plan)
        assert "TEMP B-TREE" not in str(plan)  # no sort: the index gives id order


def test_migration_3_adds_the_qc_table(version_1_database: Path) -> None:
    store = SQLiteStore(version_1_database)
    store.migrate()
    try:
        assert store.list_qc("old") == []
        [review] = store.apply([AddQc("old", {"score": 5, "notes": None, "reviewer": "r"})])
        assert store.list_qc("old") == [review]
    finally:
        store.close()
    with closing(sqlite3.connect(version_1_database, isolation_level=None)) as conn:
        assert columns(conn, "agent_qc") == list(QC_COLUMNS)
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM agent_qc WHERE event_id = ? ORDER BY id", ("old",)
        ).fetchall()
        assert "idx_agent_qc_run" in str(plan)
        assert "TEMP B-TREE" not in str(plan)
        for score in (0, 6):
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(
                    "INSERT INTO agent_qc (event_id, score, created_at) VALUES ('old', ?, 'x')",
                    (score,),
                )
        conn.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO agent_qc (event_id, score, created_at) VALUES ('nope', 3, 'x')"
            )
        conn.execute("DELETE FROM agent_runs WHERE event_id = 'old'")
        assert conn.execute("SELECT COUNT(*) FROM agent_qc").fetchone() == (0,)


def test_deleting_a_run_deletes_its_events(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "cascade.sqlite")
    store.migrate()
    base = {"agent_name": "a", "job_type": "j", "start_time": normalize("2026-01-12T10:00:00Z")}
    event = {"timestamp": base["start_time"], "level": "info", "message": "m", "data": None}
    store.apply(
        [
            InsertRuns([{"event_id": "r1", "run_id": "r1", **base}]),
            InsertRuns([{"event_id": "r2", "run_id": "r2", **base}]),
            AppendEvents("r1", [event, event]),
            AppendEvents("r2", [event]),
        ]
    )
    store.close()
    with closing(sqlite3.connect(tmp_path / "cascade.sqlite", isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM agent_runs WHERE event_id = 'r1'")
        remaining = conn.execute("SELECT event_id FROM run_events").fetchall()
    assert remaining == [("r2",)]


def test_outcome_checks_guard_numbers_stored_by_any_writer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "checks.sqlite")
    store.migrate()
    store.close()
    insert = (
        "INSERT INTO agent_runs (event_id, run_id, created_at, start_time, agent_name, job_type,"
        " {column}) VALUES ('x', 'x', 'now', 'now', 'a', 'j', ?)"
    )
    with closing(sqlite3.connect(tmp_path / "checks.sqlite")) as conn:
        for column, value in (
            ("self_corrected", 2),
            ("tokens_input", -1),
            ("tokens_output", -1),
            ("cost_usd", -0.01),
            ("sla_target_seconds", 0),
        ):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute(insert.format(column=column), (value,))


def test_migration_4_guesses_which_durations_were_supplied(version_1_database: Path) -> None:
    with closing(sqlite3.connect(version_1_database, isolation_level=None)) as conn:
        conn.execute(
            "INSERT INTO agent_runs (event_id, run_id, created_at, start_time, agent_name,"
            " job_type, duration_ms) VALUES ('timed', 'run-timed', ?, ?, 'agent', 'job', 1500)",
            (normalize("2026-01-10T00:00:00Z"), normalize("2026-01-10T00:00:00Z")),
        )
    store = SQLiteStore(version_1_database)
    store.migrate()
    store.close()
    with closing(sqlite3.connect(version_1_database)) as conn:
        supplied = dict(conn.execute("SELECT event_id, duration_ms_supplied FROM agent_runs"))
        assert supplied == {"old": 0, "timed": 1}  # duration_ms > 0: taken as supplied
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT agent_name, count(*) FROM agent_runs"
            " WHERE start_time >= ? AND start_time < ? GROUP BY 1",
            ("a", "b"),
        ).fetchall()
        assert "COVERING INDEX idx_runs_kpi" in str(plan)
