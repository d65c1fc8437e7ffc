"""``local-telemetry kpis`` and ``local-telemetry alerts`` against real servers."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from alert_support import run as recent_run
from cli_support import cli_against
from local_telemetry.cli.tables import MISSING
from support import ServerProcess, StartServer

TOKEN = "cli-reports-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def agent_run(agent: str, day: str, resolution: str, **fields: Any) -> dict[str, Any]:
    """A completed runbook agent run of two minutes on ``day``."""
    return {
        "run_id": str(uuid.uuid4()),
        "agent_name": agent,
        "started_at": f"{day}T10:00:00Z",
        "ended_at": f"{day}T10:02:00Z",
        "resolution": resolution,
        **fields,
    }


@pytest.fixture
def kpi_agent(api: httpx.Client) -> str:
    """An agent of its own with four agent runs over two days (QC, cost and SLA set)."""
    agent = f"cli-kpis-{uuid.uuid4().hex[:10]}"
    posts = [
        agent_run(
            agent,
            "2026-02-02",
            "resolved",
            cost_usd=0.0125,
            sla_target_seconds=300,
            qc=[{"score": 5}],
        ),
        agent_run(agent, "2026-02-02", "escalated", cost_usd=0.0075, sla_target_seconds=60),
        agent_run(agent, "2026-02-03", "resolved", cost_usd=1.5, qc=[{"score": 3}]),
        agent_run(agent, "2026-02-03", "failed", cost_usd=0.25),
    ]
    for body in posts:
        response = api.post("/api/agent-runs", json=body)
        assert response.status_code == 200, response.text
    return agent


def kpis_json(server: ServerProcess, *args: str) -> dict[str, Any]:
    result = cli_against(server, "kpis", "--json", *args)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_kpis_json_equals_the_api_for_the_same_query(
    shared_server: ServerProcess, api: httpx.Client, kpi_agent: str
) -> None:
    default = kpis_json(shared_server, "--agent-name", kpi_agent)
    expected = api.get(
        "/api/v1/kpis",
        params=[("agent_name", kpi_agent), ("group_by", "agent_name"), ("group_by", "day")],
    ).json()
    assert default == expected
    assert [group["day"] for group in default["groups"]] == ["2026-02-02", "2026-02-03"]
    assert default["groups"][0]["resolution_rate"] == 0.5

    custom = kpis_json(
        shared_server,
        "--agent-name",
        kpi_agent,
        "--group-by",
        "job_type",
        "--group-by",
        "week",
        "--tz",
        "Europe/Berlin",
        "--from",
        "2026-02-03T00:00:00Z",
        "--to",
        "2026-03-01T00:00:00Z",
    )
    expected_custom = api.get(
        "/api/v1/kpis",
        params=[
            ("agent_name", kpi_agent),
            ("group_by", "job_type"),
            ("group_by", "week"),
            ("tz", "Europe/Berlin"),
            ("from", "2026-02-03T00:00:00Z"),
            ("to", "2026-03-01T00:00:00Z"),
        ],
    ).json()
    assert custom == expected_custom
    assert [group["total_runs"] for group in custom["groups"]] == [2]

    overall = kpis_json(shared_server, "--agent-name", kpi_agent, "--group-by", "none")
    assert overall["group_by"] == []
    assert [group["total_runs"] for group in overall["groups"]] == [4]


def test_kpis_table_shows_the_agent_days_and_formatted_numbers(
    shared_server: ServerProcess, kpi_agent: str
) -> None:
    result = cli_against(shared_server, "kpis", "--agent-name", kpi_agent)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count(kpi_agent) == 2  # one row per day
    assert "2026-02-02" in out
    assert "2026-02-03" in out
    assert "50.0%" in out  # resolution and escalation rate of the first day
    assert "$0.0200" in out  # the first day's cost: 4 decimals below a dollar
    assert "$1.75" in out  # the second day's cost
    assert "2m00s" in out  # p50 duration
    assert MISSING in out  # a rate without a denominator (no SLA target on the second day)


def test_kpis_bad_time_zone_exits_2(shared_server: ServerProcess) -> None:
    result = cli_against(shared_server, "kpis", "--tz", "Mars/Olympus_Mons")
    assert result.returncode == 2
    assert "unknown time zone" in result.stderr
    assert "Traceback" not in result.stderr


def test_kpis_without_runs_says_so(shared_server: ServerProcess) -> None:
    result = cli_against(shared_server, "kpis", "--agent-name", f"nobody-{uuid.uuid4().hex}")
    assert result.returncode == 0
    assert "no runs match" in result.stderr


# ----- alerts -----


@pytest.fixture
def firing_server(start_server: StartServer) -> tuple[ServerProcess, str]:
    """A server with auth on, one rule that fires for a failing agent, not yet evaluated."""
    server = start_server(TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN=TOKEN)
    agent = f"cli-alerts-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        rules = [
            {
                "name": "failures-high",
                "kind": "failure_rate_above",
                "threshold": 0.1,
                "window": "24h",
            }
        ]
        assert client.put("/api/v1/alerts/rules", json=rules).status_code == 200
        runs = [recent_run(agent, timedelta(minutes=10 + i), status="failure") for i in range(12)]
        response = client.post("/api/v1/runs/batch", json=runs)
        assert response.json()["inserted"] == 12, response.text
    return server, agent


def test_evaluate_needs_the_token_when_auth_is_on(
    firing_server: tuple[ServerProcess, str],
) -> None:
    server, agent = firing_server
    # cli_against passes the server's own TELEMETRY_API_AUTH_TOKEN; blank it out.
    refused = cli_against(server, "alerts", "evaluate", TELEMETRY_API_AUTH_TOKEN="")
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "TELEMETRY_API_TOKEN" in refused.stderr

    accepted = cli_against(
        server, "alerts", "evaluate", TELEMETRY_API_AUTH_TOKEN="", TELEMETRY_API_TOKEN=TOKEN
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "1 firing, 1 changed" in accepted.stdout
    assert "failures-high" in accepted.stdout
    assert agent in accepted.stdout


def test_alerts_list_the_firing_alert(firing_server: tuple[ServerProcess, str]) -> None:
    server, agent = firing_server
    evaluated = cli_against(server, "alerts", "evaluate", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    changed = json.loads(evaluated.stdout)["changed"]
    assert [(a["rule_name"], a["agent_name"], a["state"]) for a in changed] == [
        ("failures-high", agent, "firing")
    ]

    firing = cli_against(server, "alerts", "--state", "firing", "--json")
    assert firing.returncode == 0, firing.stderr
    alerts = json.loads(firing.stdout)
    assert [(a["rule_name"], a["agent_name"], a["value"]) for a in alerts] == [
        ("failures-high", agent, 1.0)
    ]
    # Reads need the token too with auth on (issue 10).
    direct = httpx.get(f"{server.url}/api/v1/alerts", params={"state": "firing"}, headers=AUTH)
    assert alerts == direct.json()

    resolved = cli_against(server, "alerts", "--state", "resolved", "--json")
    assert resolved.returncode == 0
    assert json.loads(resolved.stdout) == []
    assert "no alerts match" in resolved.stderr

    other = cli_against(server, "alerts", "--agent-name", "someone-else", "--json")
    assert json.loads(other.stdout) == []

    table = cli_against(server, "alerts")
    assert table.returncode == 0, table.stderr
    assert "failures-high" in table.stdout
    assert agent in table.stdout
    assert "firing" in table.stdout


def test_alert_rules_are_the_apis(firing_server: tuple[ServerProcess, str]) -> None:
    server, _ = firing_server
    result = cli_against(server, "alerts", "rules", "--json")
    assert result.returncode == 0, result.stderr
    rules = json.loads(result.stdout)
    assert rules == httpx.get(f"{server.url}/api/v1/alerts/rules", headers=AUTH).json()
    assert [rule["name"] for rule in rules] == ["failures-high"]

    table = cli_against(server, "alerts", "rules")
    assert table.returncode == 0, table.stderr
    assert "failures-high" in table.stdout
    assert "failure_rate_above" in table.stdout


def test_alerts_bad_state_exits_2(shared_server: ServerProcess) -> None:
    result = cli_against(shared_server, "alerts", "--state", "smouldering")
    assert result.returncode == 2
    assert "state" in result.stderr
    assert "Traceback" not in result.stderr
