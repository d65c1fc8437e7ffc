"""The scheduled weekly KPI export through real server processes: the file of the due
week appears, equals ``GET /api/v1/export/kpis`` with the same parameters, is written once
across restarts, and a directory that cannot be written never stops the server."""

from __future__ import annotations

import csv
import io
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from local_telemetry.weekly_export import WEEKDAYS, DueWeek, week_due
from support import ServerProcess, new_run

StartServer = Callable[..., ServerProcess]
DEADLINE_SECONDS = 30


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def schedule_env(directory: Path, export_format: str, tz: str) -> tuple[dict[str, str], DueWeek]:
    """Settings whose schedule instant is today 00:00 in ``tz``, and the week they select."""
    now = datetime.now(UTC)
    weekday = WEEKDAYS[now.astimezone(ZoneInfo(tz)).weekday()]
    env = {
        "TELEMETRY_WEEKLY_EXPORT_DIR": str(directory),
        "TELEMETRY_WEEKLY_EXPORT_FORMAT": export_format,
        "TELEMETRY_WEEKLY_EXPORT_WEEKDAY": weekday,
        "TELEMETRY_WEEKLY_EXPORT_HOUR": "0",
        "TELEMETRY_WEEKLY_EXPORT_TZ": tz,
    }
    return env, week_due(now, weekday, 0, tz)


def seed(api: httpx.Client, week: DueWeek) -> int:
    """Runs inside the week (through both APIs) and outside it; how many are inside."""
    inside = [
        (week.start, "agent-a", "success"),  # the first instant of the week
        (week.start + timedelta(days=2, hours=13), "agent-a", "failure"),
        (week.start + timedelta(days=2, hours=14), "agent-b", "success"),
        (week.end - timedelta(seconds=1), "agent-b", "partial"),  # its last second
    ]
    outside = [
        (week.start - timedelta(seconds=1), "agent-a", "success"),
        (week.start - timedelta(days=3), "agent-c", "success"),
        (week.end, "agent-b", "success"),  # the end is exclusive
    ]
    for instant, agent, status in inside + outside:
        body = new_run(
            agent_name=agent,
            status=status,
            start_time=stamp(instant),
            duration_ms=1500,
            tokens_input=100,
            cost_usd=0.25,
        )
        reply = api.post("/api/v1/runs", json=body)
        assert reply.status_code == 201, reply.text
    # a runbook agent run inside the week, started then ended with a QC review
    run_id = str(uuid.uuid4())
    started = week.start + timedelta(days=4, hours=9)
    for body in (
        {"run_id": run_id, "agent_name": "agent-c", "started_at": stamp(started)},
        {
            "run_id": run_id,
            "agent_name": "agent-c",
            "ended_at": stamp(started + timedelta(minutes=2)),
            "resolution": "escalated",
            "qc": [{"score": 4, "reviewer": "ana"}],
        },
    ):
        reply = api.post("/api/agent-runs", json=body)
        assert reply.status_code == 200, reply.text
    # an agent run outside the week
    reply = api.post(
        "/api/agent-runs",
        json={
            "run_id": str(uuid.uuid4()),
            "agent_name": "agent-c",
            "started_at": stamp(week.end + timedelta(microseconds=1)),
        },
    )
    assert reply.status_code == 200, reply.text
    return len(inside) + 1


def http_export(server: ServerProcess, export_format: str, tz: str, week: DueWeek) -> bytes:
    params = [
        ("format", export_format),
        ("group_by", "agent_name"),
        ("group_by", "day"),
        ("tz", tz),
        ("from", week.start.isoformat()),
        ("to", week.end.isoformat()),
    ]
    reply = httpx.get(f"{server.url}/api/v1/export/kpis", params=params, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.content


def rows_of(export_format: str, content: bytes) -> list[dict[str, Any]]:
    if export_format == "csv":
        return list(csv.DictReader(io.StringIO(content.decode(), newline="")))
    if export_format == "jsonl":
        return [orjson.loads(line) for line in content.splitlines()]
    rows: list[dict[str, Any]] = pq.read_table(pa.BufferReader(content)).to_pylist()
    return rows


@pytest.mark.parametrize(
    ("export_format", "tz"),
    [("csv", "Europe/Berlin"), ("jsonl", "America/New_York"), ("parquet", "UTC")],
)
def test_the_due_week_is_exported_once_equal_to_the_http_export(
    start_server: StartServer, tmp_path: Path, export_format: str, tz: str
) -> None:
    directory = tmp_path / "weekly" / "kpis"  # created by the server
    env, week = schedule_env(directory, export_format, tz)
    path = directory / f"kpis-{week.key}.{export_format}"

    # seed through a server without the export, so the file sees every run
    seeder = start_server()
    with httpx.Client(base_url=seeder.url, timeout=30) as api:
        inside = seed(api, week)
    seeder.stop()
    assert not directory.exists()

    server = start_server(**env)
    wait_for(path.exists, f"{path} from the server")
    content = path.read_bytes()
    expected = http_export(server, export_format, tz, week)
    if export_format == "parquet":
        assert pq.read_table(path).equals(pq.read_table(pa.BufferReader(expected)))
    assert content == expected  # the same encoder: the same bytes, Parquet included
    rows = rows_of(export_format, content)
    assert sum(int(row["total_runs"]) for row in rows) == inside  # no run from outside
    assert {row["agent_name"] for row in rows} == {"agent-a", "agent-b", "agent-c"}
    local_days = {row["day"] for row in rows}
    assert week.start.date().isoformat() in local_days
    assert (week.end.date() - timedelta(days=1)).isoformat() in local_days
    assert "weekly KPI export: wrote" in server.log()
    server.stop()

    # a restart on the same database and directory leaves the file as it was
    before = os.stat(path)
    restarted = start_server(**env, TELEMETRY_LOG_LEVEL="debug")
    wait_for(lambda: "nothing to write" in restarted.log(), "the restarted server's check")
    assert path.read_bytes() == content
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    assert os.listdir(directory) == [path.name]  # exactly one file, no temporary one
    assert "weekly KPI export: wrote" not in restarted.log()


def test_an_unusable_directory_is_logged_and_the_server_keeps_serving(
    start_server: StartServer, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a regular file where the export directory should be")
    env, week = schedule_env(blocked, "csv", "UTC")
    server = start_server(**env)
    wait_for(lambda: "weekly KPI export failed" in server.log(), "the logged failure")
    assert f"kpis-{week.key}.csv" in server.log()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        body = new_run(start_time=stamp(week.start))
        assert api.post("/api/v1/runs", json=body).status_code == 201
        assert api.get(f"/api/v1/runs/{body['event_id']}").status_code == 200
        assert api.get("/api/v1/kpis").status_code == 200
        assert api.get("/health").status_code == 200
    assert server.process is not None
    assert server.process.poll() is None
    assert blocked.read_text() == "a regular file where the export directory should be"
