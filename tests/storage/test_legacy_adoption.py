"""A database made by the v3 guide's earlier reference implementation is adopted in place.

The file is built here with that implementation's ``agent_runs`` DDL (schema v6: ``id``
primary key, client-written timestamps, DELETE journal), its ``schema_migrations`` and
``run_events`` tables, then served by our server: every row must come back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx

from support import ServerProcess, new_run

REFERENCE_V6_DDL = """
CREATE TABLE agent_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    schema_version INTEGER DEFAULT 6,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at TEXT DEFAULT (datetime('now')),
    start_time TEXT NOT NULL,
    end_time TEXT,
    agent_name TEXT NOT NULL,
    agent_owner TEXT,
    job_type TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    product TEXT, product_family TEXT, platform TEXT, subdomain TEXT,
    website TEXT, website_section TEXT, item_name TEXT,
    items_discovered INTEGER DEFAULT 0, items_succeeded INTEGER DEFAULT 0,
    items_failed INTEGER DEFAULT 0, items_skipped INTEGER DEFAULT 0,
    duration_ms INTEGER DEFAULT 0,
    input_summary TEXT, output_summary TEXT, source_ref TEXT, target_ref TEXT,
    error_summary TEXT, error_details TEXT,
    git_repo TEXT, git_branch TEXT, git_commit_hash TEXT, git_run_tag TEXT,
    git_commit_source TEXT, git_commit_author TEXT, git_commit_timestamp TEXT,
    host TEXT, environment TEXT, trigger_type TEXT,
    metrics_json TEXT, context_json TEXT,
    api_posted INTEGER DEFAULT 0, api_posted_at TEXT, api_retry_count INTEGER DEFAULT 0,
    insight_id TEXT, parent_run_id TEXT,
    CHECK (items_discovered >= 0), CHECK (items_succeeded >= 0),
    CHECK (items_failed >= 0), CHECK (items_skipped >= 0), CHECK (duration_ms >= 0),
    CHECK (status IN ('running', 'success', 'failure', 'partial', 'timeout', 'cancelled'))
);
CREATE INDEX idx_runs_agent ON agent_runs(agent_name);
CREATE INDEX idx_runs_created_desc ON agent_runs(created_at DESC);
CREATE TABLE run_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES agent_runs(run_id),
    event_type TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    payload_json TEXT
);
CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TEXT DEFAULT (datetime('now')),
    description TEXT
);
INSERT INTO schema_migrations (version, description) VALUES (6, 'Schema v6');
"""

LEGACY_ROWS = [
    # event_id, run_id, created_at, start_time, agent, job, status, succeeded, metrics, repo
    (
        "legacy-1",
        "run-1",
        "2026-01-10 08:00:00",  # SQLite datetime('now') form: naive UTC
        "2026-01-10T10:00:00+02:00",
        "old-agent",
        "etl",
        "success",
        12,
        '{"tokens": 5}',
        "git@github.com:org/repo.git",
    ),
    (
        "legacy-2",
        "run-2",
        "2026-01-11T09:30:00.123456+00:00",
        "2026-01-11T09:29:00Z",
        "old-agent",
        "etl",
        "failure",
        0,
        None,
        None,
    ),
    (
        "legacy-3",
        "run-3",
        "2026-01-12T00:00:00+00:00",
        "not a timestamp",  # kept as it was, never dropped
        "other-agent",
        "report",
        "running",
        3,
        "not json",
        None,
    ),
]


def build_reference_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.executescript(REFERENCE_V6_DDL)
        conn.executemany(
            "INSERT INTO agent_runs (event_id, run_id, created_at, start_time, agent_name,"
            " job_type, status, items_succeeded, metrics_json, git_repo, git_commit_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'abc1234')",
            LEGACY_ROWS,
        )
        conn.execute(
            "INSERT INTO run_events (run_id, event_type, timestamp, payload_json)"
            " VALUES ('run-1', 'start', '2026-01-10T10:00:00', '{}')"
        )
    conn.close()


def test_reference_database_is_upgraded_with_every_row_kept(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    db_path = tmp_path / "reference.sqlite"
    build_reference_database(db_path)
    server = start_server(db_path=db_path)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        listed = client.get("/api/v1/runs").json()
        assert [run["event_id"] for run in listed] == ["legacy-3", "legacy-2", "legacy-1"]

        first = client.get("/api/v1/runs/legacy-1").json()
        assert first["created_at"] == "2026-01-10T08:00:00.000000Z"
        assert first["start_time"] == "2026-01-10T08:00:00.000000Z"
        assert (first["status"], first["items_succeeded"]) == ("success", 12)
        assert first["metrics_json"] == {"tokens": 5}
        assert first["commit_url"] == "https://github.com/org/repo/commit/abc1234"

        third = client.get("/api/v1/runs/legacy-3").json()
        assert third["start_time"] == "not a timestamp"
        assert third["metrics_json"] == "not json"

        window = client.get(
            "/api/v1/runs", params={"created_after": "2026-01-11T11:00:00+02:00"}
        ).json()
        assert [run["event_id"] for run in window] == ["legacy-3", "legacy-2"]

        metrics = client.get("/metrics").json()
        assert metrics["total_runs"] == 3
        assert metrics["agents"] == {"old-agent": 2, "other-agent": 1}
        assert client.get("/api/v1/metadata").json()["agent_names"] == [
            "old-agent",
            "other-agent",
        ]

        again = client.post("/api/v1/runs", json=new_run(event_id="legacy-1"))
        assert again.json()["status"] == "duplicate"
        assert client.post("/api/v1/runs", json=new_run()).json()["status"] == "created"
    server.stop()

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM legacy_run_events").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM run_events").fetchone()[0] == 0  # ours, new
        assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [(6,)]
        assert conn.execute("SELECT MAX(version) FROM local_telemetry_schema").fetchone()[0] >= 1
    conn.close()


def test_pre_v6_table_without_event_id_gets_generated_ids(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    db_path = tmp_path / "older.sqlite"
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TABLE agent_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,"
            " start_time TEXT NOT NULL, agent_name TEXT NOT NULL, job_type TEXT NOT NULL,"
            " status TEXT, created_at TEXT DEFAULT (datetime('now')))"
        )
        conn.execute(
            "INSERT INTO agent_runs (run_id, start_time, agent_name, job_type, status)"
            " VALUES ('r-old', '2025-12-01T00:00:00Z', 'ancient', 'job', 'failed')"
        )
    conn.close()
    server = start_server(db_path=db_path)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        [run] = client.get("/api/v1/runs").json()
        assert run["event_id"] == "legacy-1"
        assert run["run_id"] == "r-old"
        assert run["status"] == "failure"  # alias from the old client, normalized
        assert client.get("/api/v1/runs/legacy-1").status_code == 200
