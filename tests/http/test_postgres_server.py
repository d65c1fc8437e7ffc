"""The server on PostgreSQL: the same answers as on SQLite, several processes on one
database racing on the same runs, several worker processes."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import ServerProcess, StartServer

VOLATILE = {"created_at", "updated_at", "fired_at", "resolved_at", "evaluated_at", "sent_at"}


def stable(value: Any) -> Any:
    """``value`` without the server's clock readings (they differ between two runs)."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(item) for item in value]
    return value


def scenario(client: httpx.Client) -> list[tuple[str, int, Any]]:
    """One pass over the API; every answer as (step, status, body without clock)."""
    answers: list[tuple[str, int, Any]] = []

    def call(step: str, method: str, url: str, **kwargs: Any) -> None:
        response = client.request(method, url, **kwargs)
        kind = response.headers.get("content-type", "")
        body: Any
        if "ndjson" in kind:
            body = [stable(json.loads(line)) for line in response.text.splitlines()]
        elif "json" in kind:
            body = stable(response.json())
        else:  # CSV: the text itself (no clock readings in KPI rows)
            body = response.text
        answers.append((step, response.status_code, body))

    a = {
        "event_id": "11111111-1111-4111-8111-111111111111",
        "run_id": "run-a",
        "agent_name": "pg-agent",
        "job_type": "sync",
        "start_time": "2026-01-12T22:30:00+01:00",
        "metrics_json": {"rows": 3, "nested": {"k": [1, 2]}},
        "cost_usd": 0.25,
        "sla_target_seconds": 60,
        "resolution": "resolved",
    }
    b = {**a, "event_id": "22222222-2222-4222-8222-222222222222", "run_id": "run-b"}
    c = {**a, "event_id": "33333333-3333-4333-8333-333333333333", "agent_name": "pg-other"}
    call("create", "POST", "/api/v1/runs", json=a)
    call("duplicate", "POST", "/api/v1/runs", json=a)
    call("batch", "POST", "/api/v1/runs/batch", json=[b, c, a, {"agent_name": "x"}])
    call(
        "patch",
        "PATCH",
        f"/api/v1/runs/{a['event_id']}",
        json={"status": "success", "end_time": "2026-01-12T21:30:45Z", "items_succeeded": 9},
    )
    call("patch unknown", "PATCH", "/api/v1/runs/nope", json={"status": "failure"})
    events = [
        {"timestamp": "2026-01-12T21:30:10Z", "level": "info", "message": "m1", "data": {"x": 1}},
        {"timestamp": "2026-01-12T21:30:20Z", "level": "warning", "message": "m2"},
    ]
    call("events", "POST", f"/api/v1/runs/{a['event_id']}/events", json=events)
    call("list events", "GET", f"/api/v1/runs/{a['event_id']}/events")
    call("qc", "POST", f"/api/v1/runs/{a['event_id']}/qc", json={"score": 4, "notes": "ok"})
    call("list qc", "GET", f"/api/v1/runs/{a['event_id']}/qc")
    agent_run = "44444444-4444-4444-8444-444444444444"
    start = {"run_id": agent_run, "agent_name": "pg-agent", "started_at": "2026-01-13T08:00:00Z"}
    call("agent start", "POST", "/api/agent-runs", json=start)
    end = {**start, "ended_at": "2026-01-13T08:02:00Z", "resolution": "escalated"}
    call("agent end", "POST", "/api/agent-runs", json={**end, "tokens_input": 10})
    call("agent conflict", "POST", "/api/agent-runs", json={**end, "resolution": "failed"})
    commit = {"commit_hash": "abc1234", "commit_source": "ci", "repo": "https://github.com/o/r"}
    call("commit", "POST", f"/api/v1/runs/{a['event_id']}/associate-commit", json=commit)
    call("get", "GET", f"/api/v1/runs/{a['event_id']}")
    call("list", "GET", "/api/v1/runs", params={"agent_name": "pg-agent"})
    call("list status", "GET", "/api/v1/runs", params={"status": "success", "limit": 1})
    kpi_params = {"group_by": ["agent_name", "day"], "tz": "Europe/Berlin"}
    call("kpis", "GET", "/api/v1/kpis", params=kpi_params)
    call("kpis week", "GET", "/api/v1/kpis", params={"group_by": "week"})
    call("export", "GET", "/api/v1/export/runs", params={"format": "jsonl"})
    call("export kpis", "GET", "/api/v1/export/kpis", params={"group_by": "agent_name"})
    call("metadata", "GET", "/api/v1/metadata")
    rules = [{"name": "esc", "kind": "escalation_rate_above", "threshold": 0.1,
              "window": "10runs", "min_runs": 1}]  # fmt: skip
    call("rules", "PUT", "/api/v1/alerts/rules", json=rules)
    call("evaluate", "POST", "/api/v1/alerts/evaluate")
    call("alerts", "GET", "/api/v1/alerts")
    call("retention off", "POST", "/api/v1/retention/sweep")
    return answers


def test_the_api_answers_the_same_on_postgresql_as_on_sqlite(
    start_server: StartServer, postgres_url: str, tmp_path: Path
) -> None:
    on_sqlite = start_server(  # SQLite even when LT_TEST_BACKEND=postgres
        tmp_path / "a.sqlite",
        TELEMETRY_DATABASE_URL=f"sqlite:///{tmp_path / 'a.sqlite'}",
        TELEMETRY_ALERT_INTERVAL_SECONDS="0",
    )
    on_postgres = start_server(
        tmp_path / "unused.sqlite",
        TELEMETRY_DATABASE_URL=postgres_url,
        TELEMETRY_ALERT_INTERVAL_SECONDS="0",
    )
    health = httpx.get(f"{on_postgres.url}/health").json()
    assert health["backend"] == "postgresql"
    assert httpx.get(f"{on_sqlite.url}/health").json()["backend"] == "sqlite"
    with httpx.Client(base_url=on_sqlite.url, timeout=30) as lite:
        expected = scenario(lite)
    with httpx.Client(base_url=on_postgres.url, timeout=30) as pg:
        got = scenario(pg)
    assert [step for step, _, _ in got] == [step for step, _, _ in expected]
    for (step, status, body), (_, want_status, want_body) in zip(got, expected, strict=True):
        assert (step, status) == (step, want_status)
        assert body == want_body, step


@pytest.fixture
def two_servers(
    start_server: StartServer, postgres_url: str, tmp_path: Path
) -> tuple[ServerProcess, ServerProcess]:
    env = {"TELEMETRY_DATABASE_URL": postgres_url, "TELEMETRY_ALERT_INTERVAL_SECONDS": "0"}
    return start_server(tmp_path / "1.sqlite", **env), start_server(tmp_path / "2.sqlite", **env)


def test_two_processes_racing_on_the_same_event_ids_create_each_run_once(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(150)]

    def post(args: tuple[str, str]) -> str:
        url, event_id = args
        body = {
            "event_id": event_id,
            "run_id": f"run-{event_id[:8]}",
            "agent_name": "racer",
            "job_type": "race",
            "start_time": "2026-01-12T10:00:00Z",
        }
        response = httpx.post(f"{url}/api/v1/runs", json=body, timeout=60)
        assert response.status_code == 201, response.text
        status: str = response.json()["status"]
        return status

    urls = [server.url for server in two_servers]
    work = [(url, event_id) for event_id in ids for url in urls]
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = Counter(pool.map(post, work))
    assert outcomes == {"created": len(ids), "duplicate": len(ids)}
    for url in urls:
        metrics = httpx.get(f"{url}/metrics").json()
        assert metrics["total_runs"] == len(ids)
        assert metrics["agents"] == {"racer": len(ids)}


def test_two_processes_patching_and_completing_one_run_lose_nothing(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = two_servers
    run_ids = [str(uuid.uuid4()) for _ in range(30)]
    for run_id in run_ids:
        start = {"run_id": run_id, "agent_name": "upserter", "started_at": "2026-01-12T10:00:00Z"}
        assert httpx.post(f"{first.url}/api/agent-runs", json=start).status_code == 200

    def finish(run_id: str) -> list[int]:
        end = {
            "run_id": run_id,
            "agent_name": "upserter",
            "started_at": "2026-01-12T10:00:00Z",
            "ended_at": "2026-01-12T10:01:00Z",
            "resolution": "resolved",
        }
        answers = []
        for url in (first.url, second.url):  # the same end through both processes
            answers.append(httpx.post(f"{url}/api/agent-runs", json=end, timeout=60).status_code)
        patch = {"items_succeeded": 5}
        answers.append(
            httpx.patch(f"{second.url}/api/v1/runs/{run_id}", json=patch, timeout=60).status_code
        )
        return answers

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(finish, run_ids))
    assert all(codes == [200, 200, 200] for codes in answers), answers
    for run_id in run_ids:
        run = httpx.get(f"{first.url}/api/v1/runs/{run_id}").json()
        assert (run["status"], run["resolution"], run["items_succeeded"]) == (
            "success",
            "resolved",
            5,
        )
        assert run["duration_ms"] == 60_000


def test_several_worker_processes_serve_one_postgresql_database(
    start_server: StartServer, postgres_url: str, tmp_path: Path
) -> None:
    server = start_server(
        tmp_path / "unused.sqlite",
        TELEMETRY_DATABASE_URL=postgres_url,
        TELEMETRY_API_WORKERS="2",
        TELEMETRY_ALERT_INTERVAL_SECONDS="0",
    )
    ids = [str(uuid.uuid4()) for _ in range(40)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for event_id in ids:
            body = {
                "event_id": event_id,
                "run_id": "r",
                "agent_name": "worker-test",
                "job_type": "j",
                "start_time": "2026-01-12T10:00:00Z",
            }
            assert client.post("/api/v1/runs", json=body).status_code == 201
        listed = client.get("/api/v1/runs", params={"agent_name": "worker-test", "limit": 100})
        assert sorted(run["event_id"] for run in listed.json()) == sorted(ids)


def test_with_two_processes_each_alert_transition_is_stored_and_sent_once(
    start_server: StartServer, postgres_url: str, tmp_path: Path
) -> None:
    from alert_support import post_runs, put_rules, run
    from webhook_receiver import Receiver

    hook = Receiver()
    try:
        env = {
            "TELEMETRY_DATABASE_URL": postgres_url,
            "TELEMETRY_ALERT_INTERVAL_SECONDS": "0.2",
            "TELEMETRY_ALERT_WEBHOOKS": hook.url,
        }
        first = start_server(tmp_path / "1.sqlite", **env)
        second = start_server(tmp_path / "2.sqlite", **env)
        rule = {"name": "fail", "kind": "failure_rate_above", "threshold": 0.5,
                "window": "1h", "min_runs": 4}  # fmt: skip
        with httpx.Client(base_url=first.url, timeout=30) as client:
            put_rules(client, [rule])
            post_runs(
                client,
                [run("pg-alerting", timedelta(minutes=5), status="failure") for _ in range(4)],
            )
            hook.wait_for(lambda got: len(got) >= 1)
        with httpx.Client(base_url=second.url, timeout=30) as client:
            post_runs(
                client,
                [run("pg-alerting", timedelta(minutes=5), status="success") for _ in range(20)],
            )
            delivered = hook.wait_for(lambda got: any(b["event"] == "alert.resolved" for b in got))
        # One process leads the periodic evaluation (Store.lead); whichever process
        # records a transition (a unique index admits one open alert per rule and agent)
        # is the one that announces it.
        assert [body["event"] for body in delivered] == ["alert.firing", "alert.resolved"]
        assert len(httpx.get(f"{first.url}/api/v1/alerts").json()) == 1
    finally:
        hook.close()
