"""Retention through real servers on real databases (SQLite files, or PostgreSQL with
LT_TEST_BACKEND=postgres): payloads of old runs are blanked
without changing any KPI, runs past the run limit are deleted with their counts, the
periodic job sweeps by itself, and deleted space goes back to the file system."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import ServerProcess, query

StartServer = Callable[..., ServerProcess]

OFF = "retention is off: set TELEMETRY_RETENTION_PAYLOAD_DAYS or TELEMETRY_RETENTION_RUN_DAYS"
# KPI answers compared before and after a sweep.
GROUPINGS: list[list[tuple[str, str]]] = [
    [],
    [("group_by", "agent_name")],
    [("group_by", "agent_name"), ("group_by", "day")],
    [("group_by", "week")],
    [("group_by", "job_type"), ("group_by", "day"), ("tz", "Europe/Berlin")],
]
COUNT_FIELDS = (
    "payload_blanked_runs",
    "events_deleted",
    "qc_notes_blanked",
    "runs_deleted",
    "qc_reviews_deleted",
    "pages_freed",
)


def ago(days: float, hours: float = 0) -> str:
    instant = datetime.now(UTC) - timedelta(days=days, hours=hours)
    return instant.isoformat().replace("+00:00", "Z")


def client(server: ServerProcess, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, headers=headers)


def add_run(api: httpx.Client, agent: str, start: str, **fields: Any) -> str:
    """A run with every payload and outcome field, two events and two QC reviews."""
    event_id = str(uuid.uuid4())
    end = (datetime.fromisoformat(start) + timedelta(seconds=90)).isoformat()
    body = {
        "event_id": event_id,
        "run_id": f"run-{event_id[:8]}",
        "agent_name": agent,
        "job_type": "triage",
        "start_time": start,
        "end_time": end,
        "status": "success",
        "error_summary": "short summary",
        "error_details": "Traceback (most recent call last): ...",
        "metrics_json": {"rows": 42, "nested": {"a": [1, 2]}},
        "context_json": {"ticket": "T-1", "customer": "acme"},
        "resolution": "resolved",
        "self_corrected": True,
        "tokens_input": 120,
        "tokens_output": 80,
        "cost_usd": 0.125,
        "sla_target_seconds": 120,
        **fields,
    }
    assert api.post("/api/v1/runs", json=body).status_code == 201
    events = [
        {"message": "fetched", "level": "info", "data": {"rows": 42}},
        {"message": "retrying", "level": "warning"},
    ]
    assert api.post(f"/api/v1/runs/{event_id}/events", json=events).status_code == 201
    for score, notes in ((4, "customer name in here"), (2, None)):
        review = {"score": score, "notes": notes, "reviewer": "ana"}
        assert api.post(f"/api/v1/runs/{event_id}/qc", json=review).status_code == 201
    return event_id


def seed(api: httpx.Client) -> dict[str, list[str]]:
    """Runs ~100 and ~400 days old and young ones, over two agents, varied outcomes."""
    runs: dict[str, list[str]] = {"old": [], "ancient": [], "young": []}
    runs["old"].append(add_run(api, "ret-a", ago(100)))
    runs["old"].append(add_run(api, "ret-a", ago(101, 3), resolution="escalated", status="partial"))
    runs["old"].append(
        add_run(api, "ret-b", ago(120), resolution="failed", status="failure", duration_ms=5000)
    )
    runs["ancient"].append(add_run(api, "ret-a", ago(400), self_corrected=False))
    runs["ancient"].append(add_run(api, "ret-ancient", ago(410), cost_usd=3.5))
    runs["young"].append(add_run(api, "ret-a", ago(1)))
    runs["young"].append(add_run(api, "ret-b", ago(2), resolution="escalated", status="partial"))
    # A late PATCH of an old run: its new outcome is what the KPIs show, before and after.
    late = {"status": "failure", "resolution": "failed", "tokens_output": 999}
    assert api.patch(f"/api/v1/runs/{runs['old'][0]}", json=late).status_code == 200
    return runs


def kpi_answers(api: httpx.Client, since: str | None = None) -> list[Any]:
    answers: list[Any] = []
    window = [] if since is None else [("from", since)]
    for params in GROUPINGS:
        reply = api.get("/api/v1/kpis", params=[*params, *window])
        assert reply.status_code == 200, reply.text
        answers.append(reply.json())
    export = api.get(
        "/api/v1/export/kpis",
        params=[("group_by", "agent_name"), ("group_by", "week"), *window],
    )
    assert export.status_code == 200, export.text
    answers.append(export.text)
    return answers


def run_state(api: httpx.Client, event_id: str) -> tuple[bytes, bytes, bytes]:
    """The run, its events and its QC reviews as the API sends them."""
    parts = [f"/api/v1/runs/{event_id}", f"/api/v1/runs/{event_id}/events"]
    parts.append(f"/api/v1/runs/{event_id}/qc")
    replies = [api.get(path) for path in parts]
    assert [r.status_code for r in replies] == [200, 200, 200]
    return replies[0].content, replies[1].content, replies[2].content


def sweep(api: httpx.Client) -> dict[str, Any]:
    reply = api.post("/api/v1/retention/sweep")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_payload_sweep_keeps_kpis_and_young_runs(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_RETENTION_PAYLOAD_DAYS="30", TELEMETRY_RETENTION_INTERVAL_SECONDS="0"
    )
    with client(server) as api:
        runs = seed(api)
        old = runs["old"] + runs["ancient"]
        kpis_before = kpi_answers(api)
        young_before = {e: run_state(api, e) for e in runs["young"]}
        old_before = {e: api.get(f"/api/v1/runs/{e}").json() for e in old}
        qc_before = {e: api.get(f"/api/v1/runs/{e}/qc").json() for e in old}

        result = sweep(api)
        assert result["run_cutoff"] is None
        assert result["payload_cutoff"].endswith("Z")
        assert ago(30, hours=1) < result["payload_cutoff"] < ago(30, hours=-1)
        assert {k: result[k] for k in COUNT_FIELDS[:-1]} == {
            "payload_blanked_runs": 5,
            "events_deleted": 10,
            "qc_notes_blanked": 5,
            "runs_deleted": 0,
            "qc_reviews_deleted": 0,
        }

        assert kpi_answers(api) == kpis_before
        for event_id in old:
            run = api.get(f"/api/v1/runs/{event_id}").json()
            for column in ("error_details", "metrics_json", "context_json"):
                assert run[column] is None
            blanked = dict.fromkeys(("error_details", "metrics_json", "context_json"))
            expected = {**old_before[event_id], **blanked}
            assert run == expected  # the rest kept: summary, outcome, updated_at
            assert run["error_summary"] == "short summary"
            assert api.get(f"/api/v1/runs/{event_id}/events").json() == []
            reviews = api.get(f"/api/v1/runs/{event_id}/qc").json()
            assert reviews == [{**r, "notes": None} for r in qc_before[event_id]]
            assert [r["score"] for r in reviews] == [4, 2]
        for event_id, before in young_before.items():
            assert run_state(api, event_id) == before

        again = sweep(api)
        assert {k: again[k] for k in COUNT_FIELDS} == dict.fromkeys(COUNT_FIELDS, 0)
        assert kpi_answers(api) == kpis_before


def metrics(api: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = api.get("/metrics").json()
    return {k: body[k] for k in ("total_runs", "agents", "recent_24h")}


def test_run_deletion_adjusts_counts_and_keeps_window_kpis(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_RETENTION_PAYLOAD_DAYS="30",
        TELEMETRY_RETENTION_RUN_DAYS="300",
        TELEMETRY_RETENTION_INTERVAL_SECONDS="0",
    )
    with client(server) as api:
        runs = seed(api)
        window = ago(299)
        kpis_before = kpi_answers(api, since=window)
        assert metrics(api) == {
            "total_runs": 7,
            "agents": {"ret-a": 4, "ret-b": 2, "ret-ancient": 1},
            "recent_24h": 7,
        }
        assert api.get("/api/v1/metadata").json()["agent_names"] == [
            "ret-a",
            "ret-ancient",
            "ret-b",
        ]

        result = sweep(api)
        assert result["run_cutoff"] < ago(299) < result["payload_cutoff"]
        assert {k: result[k] for k in COUNT_FIELDS[:-1]} == {
            "runs_deleted": 2,
            "qc_reviews_deleted": 4,
            "payload_blanked_runs": 3,  # the ancient runs were deleted, not blanked
            "events_deleted": 4 + 6,
            "qc_notes_blanked": 3,
        }

        for event_id in runs["ancient"]:
            assert api.get(f"/api/v1/runs/{event_id}").status_code == 404
            assert api.get(f"/api/v1/runs/{event_id}/events").status_code == 404
            assert api.get(f"/api/v1/runs/{event_id}/qc").status_code == 404
        marks = ",".join("?" * len(runs["ancient"]))
        for table in ("agent_runs", "run_events", "agent_qc"):
            sql = f"SELECT COUNT(*) FROM {table} WHERE event_id IN ({marks})"
            assert query(server, sql, runs["ancient"]) == [(0,)], table
        assert metrics(api) == {
            "total_runs": 5,
            "agents": {"ret-a": 3, "ret-b": 2},
            "recent_24h": 5,
        }
        assert api.get("/api/v1/metadata").json()["agent_names"] == ["ret-a", "ret-b"]
        assert kpi_answers(api, since=window) == kpis_before
        for event_id in runs["old"] + runs["young"]:
            assert api.get(f"/api/v1/runs/{event_id}").status_code == 200

        again = sweep(api)
        assert {k: again[k] for k in COUNT_FIELDS} == dict.fromkeys(COUNT_FIELDS, 0)


def test_periodic_job_sweeps_without_the_endpoint(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_RETENTION_PAYLOAD_DAYS="30", TELEMETRY_RETENTION_INTERVAL_SECONDS="0.3"
    )
    with client(server) as api:
        event_id = add_run(api, "ret-job", ago(100))
        deadline = time.monotonic() + 60
        while True:
            run = api.get(f"/api/v1/runs/{event_id}").json()
            if run["error_details"] is None:
                break
            assert time.monotonic() < deadline, "the periodic sweep never blanked the run"
            time.sleep(0.1)
        assert run["metrics_json"] is None
        assert run["context_json"] is None
        assert api.get(f"/api/v1/runs/{event_id}/events").json() == []
        assert "retention sweep: 1 runs blanked" in server.log()


def test_sweep_is_refused_when_retention_is_off(api: httpx.Client) -> None:
    reply = api.post("/api/v1/retention/sweep")
    assert reply.status_code == 409
    assert reply.json() == {"detail": OFF}


def test_sweep_requires_the_bearer_token_when_auth_is_on(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_API_AUTH_ENABLED="true",
        TELEMETRY_API_AUTH_TOKEN="s3cret-token",
        TELEMETRY_RETENTION_RUN_DAYS="300",
        TELEMETRY_RETENTION_INTERVAL_SECONDS="0",
    )
    with client(server) as anonymous:
        assert anonymous.post("/api/v1/retention/sweep").status_code == 401
    with client(server, Authorization="Bearer s3cret-token") as api:
        assert sweep(api)["runs_deleted"] == 0


def file_pages(path: Path) -> tuple[int, int, int]:
    """(auto_vacuum, page_count, freelist_count) of the database file."""
    with sqlite3.connect(path) as conn:
        values = [
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("auto_vacuum", "page_count", "freelist_count")
        ]
    return int(values[0]), int(values[1]), int(values[2])


@pytest.mark.sqlite_only  # SQLite's incremental vacuum: auto_vacuum, page and free-list counts
def test_deleted_space_goes_back_to_the_file_system(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_RETENTION_RUN_DAYS="300", TELEMETRY_RETENTION_INTERVAL_SECONDS="0"
    )
    big = "x" * 60_000
    with client(server) as api:
        runs = [
            {
                "event_id": str(uuid.uuid4()),
                "run_id": f"big-{n}",
                "agent_name": "ret-big",
                "job_type": "bulk",
                "start_time": ago(400, hours=n),
                "error_details": big,
                "metrics_json": {"blob": big},
            }
            for n in range(100)
        ]
        reply = api.post("/api/v1/runs/batch", json=runs)
        assert reply.json()["inserted"] == 100, reply.text
        young = add_run(api, "ret-big", ago(1))
        mode, pages_before, free_before = file_pages(server.db_path)
        assert mode == 2  # a new database is created with auto_vacuum = INCREMENTAL
        payload_pages = 100 * 120_000 // 4096

        result = sweep(api)
        assert result["runs_deleted"] == 100
        assert result["pages_freed"] >= payload_pages * 0.9
        _, pages_after, free_after = file_pages(server.db_path)
        # Without the vacuum step the pages would sit on the free list, the file as big.
        assert free_after <= free_before
        assert pages_after <= pages_before - payload_pages * 0.9
        assert api.get(f"/api/v1/runs/{young}").status_code == 200
        assert sweep(api)["pages_freed"] == 0


def sweep_with(api: httpx.Client, **body: Any) -> dict[str, Any]:
    reply = api.post("/api/v1/retention/sweep", json=body)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def counts_of(result: dict[str, Any]) -> dict[str, int]:
    return {k: result[k] for k in COUNT_FIELDS[:-1]}


def test_body_ages_replace_the_limits_and_dry_runs_count_the_same(
    start_server: StartServer,
) -> None:
    # Retention is off in the settings: the body's ages alone decide.
    server = start_server(TELEMETRY_RETENTION_INTERVAL_SECONDS="0")
    with client(server) as api:
        runs = seed(api)
        before = {e: run_state(api, e) for e in runs["old"] + runs["young"]}

        planned = sweep_with(api, run_older_than="200d", dry_run=True)
        assert planned["dry_run"] is True
        assert planned["pages_freed"] == 0
        assert planned["payload_cutoff"] is None  # the configured limits are replaced
        assert counts_of(planned) == {
            "payload_blanked_runs": 0,
            "events_deleted": 4,
            "qc_notes_blanked": 0,
            "runs_deleted": 2,
            "qc_reviews_deleted": 4,
        }
        assert all(api.get(f"/api/v1/runs/{e}").status_code == 200 for e in runs["ancient"])

        done = sweep_with(api, run_older_than="200d")
        assert done["dry_run"] is False
        assert counts_of(done) == counts_of(planned)
        assert all(api.get(f"/api/v1/runs/{e}").status_code == 404 for e in runs["ancient"])
        # Only the ancient runs went: the others are untouched, payloads included.
        assert {e: run_state(api, e) for e in before} == before

        # Both ages: the 120-day run is deleted, the 100/101-day runs are blanked (a
        # deleted run is not counted as blanked too), the young ones stay.
        planned = sweep_with(api, run_older_than="110d", payload_older_than="30d", dry_run=True)
        assert counts_of(planned) == {
            "payload_blanked_runs": 2,
            "events_deleted": 6,
            "qc_notes_blanked": 2,
            "runs_deleted": 1,
            "qc_reviews_deleted": 2,
        }
        assert {e: run_state(api, e) for e in before} == before  # a dry run changes nothing
        done = sweep_with(api, run_older_than="110d", payload_older_than="30d")
        assert counts_of(done) == counts_of(planned)
        assert api.get(f"/api/v1/runs/{runs['old'][2]}").status_code == 404
        for event_id in runs["old"][:2]:
            assert api.get(f"/api/v1/runs/{event_id}").json()["error_details"] is None
        assert {e: run_state(api, e) for e in runs["young"]} == {
            e: before[e] for e in runs["young"]
        }
        # Nothing is left to do at these ages.
        again = sweep_with(api, run_older_than="110d", payload_older_than="30d", dry_run=True)
        assert set(counts_of(again).values()) == {0}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"run_older_than": "90x"}, "is not a duration"),
        ({"run_older_than": 90}, "must be a duration string"),
        ({"payload_older_than": "0d"}, "longer than 0"),
        ({"run_older_than": "10s"}, "is not a duration"),
        ({"run_older_than": "90d", "dry_run": "true"}, "dry_run"),
        ({"older_than": "90d"}, "older_than"),
        (["90d"], "valid dictionary"),
    ],
)
def test_bad_sweep_bodies_are_422(api: httpx.Client, body: Any, fragment: str) -> None:
    reply = api.post("/api/v1/retention/sweep", json=body)
    assert reply.status_code == 422, reply.text
    assert fragment in reply.text


def test_a_payload_age_longer_than_the_run_age_is_accepted(api: httpx.Client) -> None:
    body = {"run_older_than": "30d", "payload_older_than": "90d", "dry_run": True}
    result = sweep_with(api, **body)
    assert result["dry_run"] is True
    # Payload blanking is then moot (those runs are deleted first), but not an error.
    assert result["run_cutoff"] > result["payload_cutoff"]
    assert result["payload_blanked_runs"] == 0


def test_a_body_without_ages_keeps_the_configured_limits(api: httpx.Client) -> None:
    # Retention is off on the shared server: still 409, with or without a dry run.
    for body in ({}, {"dry_run": True}, {"dry_run": False}):
        reply = api.post("/api/v1/retention/sweep", json=body)
        assert reply.status_code == 409, body
        assert reply.json() == {"detail": OFF}
