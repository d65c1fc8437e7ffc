"""``migrate-data``: copy a SQLite store into PostgreSQL, resumably, and verify it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from local_telemetry import migrate_data as md
from local_telemetry.storage.base import (
    AddQc,
    AlertFilter,
    AppendEvents,
    DeleteRuns,
    InsertRuns,
    KpiFilter,
    KpiInputs,
    RecordAlerts,
    RunFilter,
    SaveAlertRules,
    Store,
    UpdateRun,
    UpsertAgentRun,
)
from local_telemetry.storage.postgres import PostgresStore
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import normalize
from support import store_row

AGENTS = ("agent-a", "agent-b", "agent-ß")
RULES = [{"name": "fail", "kind": "failure_rate_above", "threshold": 0.25, "window_runs": 20}]


def full_row(n: int) -> dict[str, Any]:
    """A run with (nearly) every column set, varied by ``n``."""
    start = normalize(f"2026-01-{10 + n % 5:02d}T{n % 24:02d}:{n % 60:02d}:07.123456Z")
    row = store_row(
        f"ev-{n:03d}",
        run_id=f"run-{n % 7}",
        agent_name=AGENTS[n % 3],
        agent_owner="team",
        job_type=f"job-{n % 4}",
        start_time=start,
        product="p",
        product_family="pf",
        platform="linux",
        subdomain="sd",
        website="w",
        website_section="ws",
        item_name=f"item {n}",
        items_discovered=n,
        items_succeeded=n // 2,
        items_failed=n % 3,
        items_skipped=1,
        input_summary="in",
        output_summary="out",
        source_ref="s",
        target_ref="t",
        error_summary=None if n % 2 else "boom",
        error_details="trace é✓",
        git_repo="https://example.com/r.git",
        git_branch="main",
        git_commit_hash=f"{n:040x}",
        git_run_tag="tag",
        git_commit_source="manual",
        git_commit_author="me",
        git_commit_timestamp=start,
        host="h",
        environment="prod",
        trigger_type="cron",
        metrics_json={"tokens": n, "nested": {"list": [1, 2.5, "x"]}, "u": "é✓"},
        context_json={} if n % 4 else None,
        api_posted=bool(n % 2),
        api_posted_at=start if n % 2 else None,
        api_retry_count=n % 3,
        insight_id="i",
        parent_run_id=None if n % 5 else "parent",
        resolution=("resolved", "escalated", None)[n % 3],
        input_kind="ticket",
        self_corrected=(True, False, None)[n % 3],
        tokens_input=100 * n,
        tokens_output=None if n % 6 == 0 else 7 * n,
        cost_usd=None if n % 6 == 1 else n * 0.013,
        sla_target_seconds=None if n % 4 == 0 else 60,
    )
    if n % 3 == 0:
        row["status"] = ("success", "failure")[n % 2]
        row["end_time"] = normalize(f"2026-01-{10 + n % 5:02d}T{n % 24:02d}:59:59.5Z")
        row["duration_ms"] = 1234 + n  # supplied by the client
    return row


def fill(store: Store) -> None:
    """Varied data through the Store API: runs, updates, events, QC, deletions, alerts."""
    store.migrate()
    assert store.apply([InsertRuns([full_row(n) for n in range(40)])]) == [40]
    store.apply([InsertRuns([store_row(f"min-{n}", agent_name=AGENTS[n % 3]) for n in range(9)])])
    store.apply([UpdateRun("ev-001", {"status": "success", "output_summary": "changed"})])
    for n in range(6):
        ended = {
            "agent_name": "agent-c",
            "job_type": "triage",
            "start_time": normalize(f"2026-01-1{n}T08:00:00Z"),
            "end_time": normalize(f"2026-01-1{n}T08:00:{10 + n}.25Z"),
            "status": "success",
            "resolution": "resolved",
            "self_corrected": n % 2 == 0,
            "tokens_input": 10,
            "tokens_output": 20,
            "cost_usd": 0.5,
            "sla_target_seconds": 12,
            "context_json": {"k": n},
        }
        result = store.apply(
            [UpsertAgentRun(f"up-{n}", ended, {"job_type": "triage"}, [{"score": 1 + n % 5}])]
        )
        assert result == ["created"]
    event = {"timestamp": normalize("2026-01-12T10:00:01Z"), "level": "info", "message": "m"}
    ops: list[Any] = []
    for n in range(0, 40, 3):
        ops.append(AppendEvents(f"ev-{n:03d}", [event, {**event, "data": {"n": n, "s": "é"}}]))
        ops.append(AddQc(f"ev-{n:03d}", {"score": 1 + n % 5, "notes": "ok", "reviewer": "r"}))
    store.apply(ops)
    # Deleted rows leave gaps in every id sequence.
    store.apply([DeleteRuns(["ev-003", "min-8"], normalize("2030-01-01T00:00:00Z"))])
    store.apply([SaveAlertRules(RULES)])

    def fire(rule: str, agent: str) -> dict[str, Any]:
        return {
            "rule_name": rule,
            "kind": "failure_rate_above",
            "agent_name": agent,
            "threshold": 0.4,
            "value": 0.5,
            "baseline": None,
            "sample_runs": 12,
            "message": f"{rule} fired",
        }

    [fired] = store.apply([RecordAlerts(fire=[fire("fail", "agent-a"), fire("fail", "agent-b")])])
    closing = {"id": fired[1]["id"], "value": 0.1, "baseline": 0.2, "sample_runs": 30}
    store.apply([RecordAlerts(resolve=[{**closing, "message": "ok again"}])])


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[str, SQLiteStore]]:
    path = tmp_path / "telemetry.sqlite"
    store = SQLiteStore(path)
    fill(store)
    yield f"sqlite:///{path}", store
    store.close()


@pytest.fixture
def target(postgres_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_url, pool_size=2)
    yield store
    store.close()


def kpis(store: Store, group_by: tuple[str, ...], tz: str) -> dict[tuple[str, ...], Any]:
    result = store.kpi_inputs(KpiFilter(), group_by, tz)
    return {key: comparable(inputs) for key, inputs in result.items()}


def comparable(inputs: KpiInputs) -> dict[str, Any]:
    fields = dict(vars(inputs))
    fields["durations_ms"] = sorted(fields["durations_ms"])
    fields["cost_usd"] = round(fields["cost_usd"], 9)
    return fields


def assert_same_contents(lite: Store, pg: Store) -> None:
    everything = RunFilter(limit=10_000)
    runs = lite.list_runs(everything)
    assert len(runs) == 53
    assert pg.list_runs(everything) == runs
    assert pg.list_runs_json(everything) == lite.list_runs_json(everything)
    for run in runs:
        event_id = run["event_id"]
        assert pg.get_run(event_id) == lite.get_run(event_id) == run
        assert pg.list_events(event_id) == lite.list_events(event_id)
        assert pg.list_qc(event_id) == lite.list_qc(event_id)
    assert pg.get_alert_rules() == lite.get_alert_rules() == RULES
    assert pg.list_alerts(AlertFilter(limit=1000)) == lite.list_alerts(AlertFilter(limit=1000))
    assert pg.open_alerts() == lite.open_alerts()
    assert pg.distinct_values() == lite.distinct_values()
    for window in (
        (normalize("2000-01-01T00:00:00Z"), normalize("2100-01-01T00:00:00Z")),
        (normalize("2000-01-01T00:00:00Z"), normalize("2001-01-01T00:00:00Z")),
    ):
        assert pg.run_counts(*window) == lite.run_counts(*window)
    for group_by in ((), ("agent_name",), ("agent_name", "day"), ("job_type", "week")):
        for tz in ("UTC", "Europe/Berlin"):
            assert kpis(pg, group_by, tz) == kpis(lite, group_by, tz)
    pg_hourly = pg.hourly_kpi_inputs(KpiFilter(agent_name="agent-a"))
    lite_hourly = lite.hourly_kpi_inputs(KpiFilter(agent_name="agent-a"))
    assert {h: comparable(i) for h, i in pg_hourly.items()} == {
        h: comparable(i) for h, i in lite_hourly.items()
    }
    for agent in (*AGENTS, "agent-c"):
        assert comparable(pg.recent_kpi_inputs(agent, 5)) == comparable(
            lite.recent_kpi_inputs(agent, 5)
        )


def test_copies_everything_faithfully(
    source: tuple[str, SQLiteStore], target: PostgresStore, postgres_url: str
) -> None:
    url, lite = source
    report = md.migrate_data(url, postgres_url, batch_size=7)
    assert report.ok, report.problems()
    by_table = {t.name: t for t in report.tables}
    assert set(by_table) == {
        "agent_runs",
        "run_events",
        "agent_qc",
        "server_state",
        "alerts",
        "run_counts",
        "run_counts_hourly",
    }
    assert by_table["agent_runs"].source_rows == by_table["agent_runs"].inserted == 53
    assert by_table["run_events"].inserted == 26  # 14 runs x 2, minus the deleted run's
    assert_same_contents(lite, target)
    # Stored columns the API does not return are copied too.
    with sqlite3.connect(lite.path) as conn:
        supplied = conn.execute(
            "SELECT event_id, duration_ms_supplied FROM agent_runs ORDER BY id"
        ).fetchall()
    with psycopg.connect(postgres_url) as pconn:
        assert (
            pconn.execute(
                "SELECT event_id, duration_ms_supplied FROM agent_runs ORDER BY id"
            ).fetchall()
            == supplied
        )
    # The sequences moved past the copied (and the deleted) ids: new rows get fresh ids.
    target.apply([InsertRuns([store_row("after")])])
    [review] = target.apply([AddQc("after", {"score": 3})])
    [count] = target.apply(
        [AppendEvents("after", [{"timestamp": "x", "level": "i", "message": "m"}])]
    )
    assert count == 1
    with sqlite3.connect(lite.path) as conn:
        [(max_qc,)] = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'agent_qc'")
    assert review["id"] == max_qc + 1
    [fired] = target.apply(
        [
            RecordAlerts(
                fire=[
                    {
                        "rule_name": "fail",
                        "kind": "failure_rate_above",
                        "agent_name": "agent-c",
                        "threshold": 0.4,
                        "value": 0.5,
                        "baseline": None,
                        "sample_runs": 3,
                        "message": "m",
                    }
                ]
            )
        ]
    )
    assert fired[0]["id"] == 3


def test_interrupted_copy_resumes_without_duplicates(
    source: tuple[str, SQLiteStore], target: PostgresStore, postgres_url: str
) -> None:
    url, lite = source
    with pytest.raises(md.Interrupted):
        md.migrate_data(url, postgres_url, batch_size=5, stop_after_batches=4)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM agent_runs").fetchone() == (20,)
        assert conn.execute("SELECT COUNT(*) FROM run_events").fetchone() == (0,)
    report = md.migrate_data(url, postgres_url, batch_size=5)
    assert report.ok, report.problems()
    runs = next(t for t in report.tables if t.name == "agent_runs")
    assert (runs.source_rows, runs.target_rows, runs.inserted) == (53, 53, 33)
    assert_same_contents(lite, target)
    # A third run finds everything there and changes nothing.
    again = md.migrate_data(url, postgres_url, batch_size=50)
    assert again.ok
    assert all(t.inserted == 0 for t in again.tables)
    assert_same_contents(lite, target)


def test_foreign_rows_in_the_target_fail_verification(
    source: tuple[str, SQLiteStore], target: PostgresStore, postgres_url: str
) -> None:
    url, _ = source
    target.migrate()
    target.apply([InsertRuns([store_row("ev-000", agent_name="someone-else")])])
    report = md.migrate_data(url, postgres_url)
    assert not report.ok
    assert "agent_runs: same row count (53) but different content" in report.problems()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(md.BadArguments, match="--from"):
        md.migrate_data("postgresql://x/y", "postgresql://x/y")
    with pytest.raises(md.BadArguments, match="no SQLite file"):
        md.migrate_data(f"sqlite:///{tmp_path}/missing.sqlite", "postgresql://x/y")
    (tmp_path / "a.sqlite").touch()
    with pytest.raises(md.BadArguments, match="--to"):
        md.migrate_data(f"sqlite:///{tmp_path}/a.sqlite", "sqlite:///elsewhere")
    assert md.public_url("postgresql://u:secret@h:5432/db") == "postgresql://u@h:5432/db"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    return subprocess.run(
        [sys.executable, "-m", "local_telemetry", "migrate-data", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_copies_and_prints_a_json_summary(
    source: tuple[str, SQLiteStore], target: PostgresStore, postgres_url: str
) -> None:
    url, lite = source
    result = cli("--from", url, "--to", postgres_url, "--batch-size", "10", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert summary["problems"] == []
    rows = {t["table"]: t["target_rows"] for t in summary["tables"]}
    assert rows["agent_runs"] == 53
    assert rows["alerts"] == 2
    assert "agent_runs" in result.stderr  # the progress bars
    assert_same_contents(lite, target)


def test_cli_exit_codes(
    source: tuple[str, SQLiteStore], target: PostgresStore, postgres_url: str
) -> None:
    url, _ = source
    bad_source = cli("--from", "mysql://x", "--to", postgres_url)
    assert bad_source.returncode == 2
    assert "--from must be sqlite:///" in bad_source.stderr
    bad_target = cli("--from", url, "--to", "sqlite:///x.sqlite")
    assert bad_target.returncode == 2
    assert "--to must be postgresql://" in bad_target.stderr
    assert md.migrate_data(url, postgres_url).ok
    target.apply([InsertRuns([store_row("foreign")])])
    mismatch = cli("--from", url, "--to", postgres_url)
    assert mismatch.returncode == 1
    assert "verification failed: agent_runs: 53 rows in the source, 54 in the target" in (
        mismatch.stderr
    )
    unreachable = cli("--from", url, "--to", "postgresql://nobody@127.0.0.1:1/none")
    assert unreachable.returncode == 1
    assert "error:" in unreachable.stderr


def test_cli_help() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for option in ("--from", "--to", "--batch-size", "--json"):
        assert option in result.stdout
