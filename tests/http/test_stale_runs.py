"""Closing stale runs through real servers (SQLite files, or PostgreSQL with
LT_TEST_BACKEND=postgres): ``POST /api/v1/maintenance/close-stale-runs`` closes exactly
the runs still ``running`` with no update for longer than the age, a dry run changes
nothing, bad bodies are 422, auth covers it, and the periodic job
(``TELEMETRY_STALE_RUN_TIMEOUT``) closes stale runs by itself.

Ages use seconds (``1s``) and the tests wait about 1.5 s, so runs become stale for real:
``updated_at`` cannot be set through the API."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from support import StartServer, create_run, fetch_run

CLOSE = "/api/v1/maintenance/close-stale-runs"
STALE_WAIT_SECONDS = 1.5
JOB_WAIT_SECONDS = 20.0


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def close(api: httpx.Client, **body: Any) -> dict[str, Any]:
    reply = api.post(CLOSE, json=body)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def status_counts(api: httpx.Client, agent: str) -> dict[str, int]:
    reply = api.get("/api/v1/kpis", params={"agent_name": agent})
    assert reply.status_code == 200, reply.text
    counts: dict[str, int] = reply.json()["groups"][0]["status_counts"]
    return counts


def test_closes_exactly_the_stale_running_runs(start_server: StartServer) -> None:
    server = start_server()
    agent = f"stale-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        stale = create_run(api, agent_name=agent)
        explained = create_run(api, agent_name=agent, error_summary="worker lost its lease")
        done = create_run(api, agent_name=agent, status="success", end_time="2026-01-12T10:31:00Z")
        failed = create_run(
            api, agent_name=agent, status="failure", end_time="2026-01-12T10:32:00Z"
        )
        patched = create_run(api, agent_name=agent)
        agent_run_id = str(uuid.uuid4())
        posted = api.post("/api/agent-runs", json={"run_id": agent_run_id, "agent_name": agent})
        assert posted.status_code in (200, 201), posted.text
        agent_run = fetch_run(api, agent_run_id)
        assert agent_run["status"] == "running"
        metrics_before = api.get("/metrics").json()
        time.sleep(STALE_WAIT_SECONDS)
        # Heard from after the wait (so after any cutoff of "1s" below): not stale.
        reply = api.patch(f"/api/v1/runs/{patched['event_id']}", json={"items_discovered": 3})
        assert reply.status_code == 200, reply.text
        fresh = create_run(api, agent_name=agent)
        expected = {stale["event_id"], explained["event_id"], agent_run_id}

        preview = close(api, older_than="1s", dry_run=True)
        assert preview["dry_run"] is True
        assert preview["status"] == "timeout"
        assert preview["closed"] == 3
        assert set(preview["event_ids"]) == expected
        assert fetch_run(api, stale["event_id"]) == stale  # a dry run changes nothing
        assert status_counts(api, agent) == {"running": 5, "success": 1, "failure": 1}

        result = close(api, older_than="1s")
        assert result["dry_run"] is False
        assert result["closed"] == 3
        assert sorted(result["event_ids"]) == sorted(preview["event_ids"])
        assert {run["event_id"]: run["agent_name"] for run in result["runs"]} == dict.fromkeys(
            expected, agent
        )

        for before in (stale, explained, agent_run):
            after = fetch_run(api, before["event_id"])
            heard = before["updated_at"] or before["created_at"]
            assert after["status"] == "timeout"
            assert after["end_time"] == max(heard, before["start_time"])
            span = instant(after["end_time"]) - instant(before["start_time"])
            assert after["duration_ms"] == span // timedelta(milliseconds=1)
            assert after["updated_at"] is not None
            assert after["updated_at"] > heard
        assert fetch_run(api, explained["event_id"])["error_summary"] == "worker lost its lease"
        summary = fetch_run(api, stale["event_id"])["error_summary"]
        assert summary == (
            f"closed as timeout by stale-run cleanup: no update for 1s since {stale['created_at']}"
        )
        for kept in (done, failed):
            assert fetch_run(api, kept["event_id"]) == kept
        for still in (patched, fresh):
            assert fetch_run(api, still["event_id"])["status"] == "running"

        # KPIs read the new statuses; a timeout is a completed run that did not succeed.
        assert status_counts(api, agent) == {
            "running": 2,
            "success": 1,
            "failure": 1,
            "timeout": 3,
        }
        metrics_after = api.get("/metrics").json()
        assert metrics_after["total_runs"] == metrics_before["total_runs"] + 1  # fresh
        assert metrics_after["agents"][agent] == metrics_before["agents"][agent] + 1

        # Nothing is left to close: a second call is a no-op.
        assert close(api, older_than="1s")["closed"] == 0


def test_other_status_and_an_end_never_before_the_start(start_server: StartServer) -> None:
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        # A start the client put after the run's creation: the end is the start.
        later = create_run(api, start_time="2099-01-01T00:00:00Z")
        time.sleep(STALE_WAIT_SECONDS)
        result = close(api, older_than="1s", status="cancelled")
        assert result["event_ids"] == [later["event_id"]]
        after = fetch_run(api, later["event_id"])
        assert after["status"] == "cancelled"
        assert after["end_time"] == later["start_time"]
        assert after["duration_ms"] == 0
        assert after["error_summary"].startswith("closed as cancelled by stale-run cleanup")


def test_an_age_not_yet_reached_closes_nothing(start_server: StartServer) -> None:
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        run = create_run(api)
        result = close(api, older_than="1h")
        assert (result["closed"], result["event_ids"]) == (0, [])
        assert fetch_run(api, run["event_id"]) == run


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"older_than": "soon"}, "is not a duration"),
        ({"older_than": "0s"}, "longer than 0"),
        ({"older_than": 60}, "must be a duration string"),
        ({"older_than": "1h", "status": "running"}, "terminal status"),
        ({"older_than": "1h", "status": "done"}, "terminal status"),
        ({"older_than": "1h", "dry_run": "yes"}, "dry_run"),
        ({"older_than": "1h", "limit": 5}, "limit"),
        ({}, "older_than is required"),
        ([], "valid dictionary"),
    ],
)
def test_bad_bodies_are_422(api: httpx.Client, body: Any, fragment: str) -> None:
    # The shared server has no TELEMETRY_STALE_RUN_TIMEOUT; nothing valid is sent to it.
    reply = api.post(CLOSE, json=body)
    assert reply.status_code == 422, reply.text
    assert fragment in reply.text


def test_invalid_json_is_422(api: httpx.Client) -> None:
    reply = api.post(CLOSE, content=b"{older_than", headers={"Content-Type": "application/json"})
    assert reply.status_code == 422
    assert "Invalid JSON" in reply.text


def test_the_bearer_token_is_required_when_auth_is_on(start_server: StartServer) -> None:
    server = start_server(TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN="s3cret")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        body = {"older_than": "1h", "dry_run": True}
        assert api.post(CLOSE, json=body).status_code == 401
        wrong = api.post(CLOSE, json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code in (401, 403)
        right = api.post(CLOSE, json=body, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200, right.text
        assert right.json()["closed"] == 0


def test_the_periodic_job_closes_stale_runs_by_itself(start_server: StartServer) -> None:
    server = start_server(TELEMETRY_STALE_RUN_TIMEOUT="1s", TELEMETRY_STALE_RUN_STATUS="failure")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        run = create_run(api)
        done = create_run(api, status="success", end_time="2026-01-12T10:31:00Z")
        deadline = time.monotonic() + JOB_WAIT_SECONDS
        while time.monotonic() < deadline:
            if fetch_run(api, run["event_id"])["status"] != "running":
                break
            time.sleep(0.2)
        closed = fetch_run(api, run["event_id"])
        assert closed["status"] == "failure"
        assert closed["error_summary"].startswith("closed as failure by stale-run cleanup")
        assert fetch_run(api, done["event_id"]) == done
        # The endpoint uses the configured timeout and status when the body gives none.
        preview = close(api, dry_run=True)
        assert (preview["status"], preview["closed"]) == ("failure", 0)
