"""GET /api/v1/kpis through the real server, on a seeded data set whose every KPI below
was computed by hand (not by the code under test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import ServerProcess

A, B = "kpi-agent-a", "kpi-agent-b"

# Six runs. Durations: A1 30,000 computed from end - start (exactly its SLA target of
# 30 s: a hit); A2 45,000 supplied (end - start would be 60,000; target 40 s: a miss);
# A3 none (no end, none supplied); A4 10,500 computed (target 20 s: a hit); B1 100,000
# supplied (end - start 120,000; no target); B2 5,000 supplied, no end (its target does
# not count: no end).
RUNS: dict[str, dict[str, Any]] = {
    "A1": {
        "agent_name": A,
        "start_time": "2026-01-12T10:00:00Z",
        "end_time": "2026-01-12T10:00:30Z",
        "status": "success",
        "resolution": "resolved",
        "self_corrected": True,
        "sla_target_seconds": 30,
        "tokens_input": 100,
        "tokens_output": 50,
        "cost_usd": 0.5,
    },
    "A2": {
        "agent_name": A,
        "start_time": "2026-01-12T23:30:00Z",  # 2026-01-13 00:30 in Europe/Berlin
        "end_time": "2026-01-12T23:31:00Z",
        "duration_ms": 45_000,
        "status": "failure",
        "resolution": "failed",
        "self_corrected": False,
        "sla_target_seconds": 40,
        "tokens_input": 200,
        "tokens_output": 100,
        "cost_usd": 1.0,
    },
    "A3": {"agent_name": A, "start_time": "2026-01-13T09:00:00Z", "status": "running"},
    "A4": {
        "agent_name": A,
        "job_type": "review",
        "start_time": "2026-01-19T08:00:00Z",  # Monday of ISO week 2026-W04
        "end_time": "2026-01-19T08:00:10.500Z",
        "status": "partial",
        "resolution": "escalated",
        "sla_target_seconds": 20,
        "tokens_input": 10,
        "tokens_output": 5,
        "cost_usd": 0.25,
    },
    "B1": {
        "agent_name": B,
        "start_time": "2026-01-12T12:00:00Z",
        "end_time": "2026-01-12T12:02:00Z",
        "duration_ms": 100_000,
        "status": "success",
        "resolution": "resolved",
        "tokens_input": 1000,
        "tokens_output": 500,
        "cost_usd": 2.0,
    },
    "B2": {
        "agent_name": B,
        "start_time": "2026-01-13T00:30:00Z",
        "duration_ms": 5_000,
        "sla_target_seconds": 10,
        "status": "running",
    },
}
QC = {"A1": [4, 5], "A2": [2]}

EMPTY_KPIS: dict[str, Any] = {
    "resolution_rate": None,
    "escalation_rate": None,
    "failure_rate": None,
    "self_correction_rate": None,
    "sla_hit_rate": None,
    "avg_duration_ms": None,
    "p50_duration_ms": None,
    "p95_duration_ms": None,
    "tokens_input": 0,
    "tokens_output": 0,
    "cost_usd": 0.0,
    "cost_per_resolved_run": None,
    "avg_qc_score": None,
    "qc_count": 0,
}


@pytest.fixture(scope="module")
def kpi_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server with a fresh database holding exactly RUNS and QC."""
    server = ServerProcess(tmp_path_factory.mktemp("kpis") / "telemetry.sqlite", {})
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for name, fields in RUNS.items():
                event_id = str(uuid.uuid4())
                body = {"event_id": event_id, "run_id": name, "job_type": "triage", **fields}
                assert client.post("/api/v1/runs", json=body).status_code == 201
                for score in QC.get(name, []):
                    reply = client.post(f"/api/v1/runs/{event_id}/qc", json={"score": score})
                    assert reply.status_code == 201
            yield client
    finally:
        server.stop()


def kpis(api: httpx.Client, params: Any = None) -> dict[str, Any]:
    reply = api.get("/api/v1/kpis", params=params)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_one_overall_group(kpi_api: httpx.Client) -> None:
    body = kpis(kpi_api)
    assert (body["from"], body["to"], body["group_by"]) == (None, None, [])
    [group] = body["groups"]
    assert group == {
        "total_runs": 6,
        "completed_runs": 4,
        "status_counts": {"failure": 1, "partial": 1, "running": 2, "success": 2},
        "resolution_rate": 0.5,  # A1, B1 of A1, A2, A4, B1
        "escalation_rate": 0.25,  # A4
        "failure_rate": 0.25,  # A2 of the 4 not running
        "self_correction_rate": 0.5,  # A1 of A1, A2
        "sla_hit_rate": pytest.approx(2 / 3),  # A1 (at the target), A4; A2 missed
        "avg_duration_ms": 38_100.0,  # (30,000 + 45,000 + 10,500 + 100,000 + 5,000) / 5
        "p50_duration_ms": 30_000,  # 3rd of 5
        "p95_duration_ms": 100_000,  # 5th of 5
        "tokens_input": 1310,
        "tokens_output": 655,
        "cost_usd": 3.75,
        "cost_per_resolved_run": 1.875,
        "avg_qc_score": pytest.approx(11 / 3),
        "qc_count": 3,
    }


def test_per_agent_per_day(kpi_api: httpx.Client) -> None:
    body = kpis(kpi_api, [("group_by", "agent_name"), ("group_by", "day")])
    assert body["group_by"] == ["agent_name", "day"]
    assert body["groups"] == [
        {
            "agent_name": A,
            "day": "2026-01-12",
            "total_runs": 2,
            "completed_runs": 2,
            "status_counts": {"failure": 1, "success": 1},
            "resolution_rate": 0.5,
            "escalation_rate": 0.0,
            "failure_rate": 0.5,
            "self_correction_rate": 0.5,
            "sla_hit_rate": 0.5,
            "avg_duration_ms": 37_500.0,
            "p50_duration_ms": 30_000,
            "p95_duration_ms": 45_000,
            "tokens_input": 300,
            "tokens_output": 150,
            "cost_usd": 1.5,
            "cost_per_resolved_run": 1.5,
            "avg_qc_score": pytest.approx(11 / 3),
            "qc_count": 3,
        },
        {
            "agent_name": A,
            "day": "2026-01-13",
            "total_runs": 1,
            "completed_runs": 0,
            "status_counts": {"running": 1},
            **EMPTY_KPIS,
        },
        {
            "agent_name": A,
            "day": "2026-01-19",
            "total_runs": 1,
            "completed_runs": 1,
            "status_counts": {"partial": 1},
            **EMPTY_KPIS,
            "resolution_rate": 0.0,
            "escalation_rate": 1.0,
            "failure_rate": 0.0,
            "sla_hit_rate": 1.0,
            "avg_duration_ms": 10_500.0,
            "p50_duration_ms": 10_500,
            "p95_duration_ms": 10_500,
            "tokens_input": 10,
            "tokens_output": 5,
            "cost_usd": 0.25,
        },
        {
            "agent_name": B,
            "day": "2026-01-12",
            "total_runs": 1,
            "completed_runs": 1,
            "status_counts": {"success": 1},
            **EMPTY_KPIS,
            "resolution_rate": 1.0,
            "escalation_rate": 0.0,
            "failure_rate": 0.0,
            "avg_duration_ms": 100_000.0,
            "p50_duration_ms": 100_000,
            "p95_duration_ms": 100_000,
            "tokens_input": 1000,
            "tokens_output": 500,
            "cost_usd": 2.0,
            "cost_per_resolved_run": 2.0,
        },
        {
            "agent_name": B,
            "day": "2026-01-13",
            "total_runs": 1,
            "completed_runs": 0,
            "status_counts": {"running": 1},
            **EMPTY_KPIS,
            "avg_duration_ms": 5_000.0,
            "p50_duration_ms": 5_000,
            "p95_duration_ms": 5_000,
        },
    ]


def counts(body: dict[str, Any], field: str) -> dict[str, int]:
    return {group[field]: group["total_runs"] for group in body["groups"]}


def test_days_in_a_time_zone(kpi_api: httpx.Client) -> None:
    utc = kpis(kpi_api, {"group_by": "day"})
    assert counts(utc, "day") == {"2026-01-12": 3, "2026-01-13": 2, "2026-01-19": 1}
    # 23:30Z on the 12th (A2) and 00:30Z on the 13th (B2) are on the 13th in Berlin.
    berlin = kpis(kpi_api, {"group_by": "day", "tz": "Europe/Berlin"})
    assert counts(berlin, "day") == {"2026-01-12": 2, "2026-01-13": 3, "2026-01-19": 1}
    # UTC-10: 00:30Z on the 13th (B2) is on the 12th, 09:00Z on the 13th (A3) too.
    honolulu = kpis(kpi_api, {"group_by": "day", "tz": "Pacific/Honolulu"})
    assert counts(honolulu, "day") == {"2026-01-12": 5, "2026-01-18": 1}
    # +05:30: a zone whose offset is not whole hours; 23:30Z on the 12th is 05:00 the 13th.
    kolkata = kpis(kpi_api, {"group_by": "day", "tz": "Asia/Kolkata"})
    assert counts(kolkata, "day") == {"2026-01-12": 2, "2026-01-13": 3, "2026-01-19": 1}


def test_weeks(kpi_api: httpx.Client) -> None:
    body = kpis(kpi_api, {"group_by": "week"})
    assert counts(body, "week") == {"2026-W03": 5, "2026-W04": 1}
    # In Honolulu, A4 (Monday 08:00Z) is still Sunday the 18th: week 3.
    assert counts(kpis(kpi_api, {"group_by": "week", "tz": "Pacific/Honolulu"}), "week") == {
        "2026-W03": 6
    }


def test_group_by_job_type_and_agent(kpi_api: httpx.Client) -> None:
    body = kpis(kpi_api, [("group_by", "job_type"), ("group_by", "agent_name")])
    keys = [(g["job_type"], g["agent_name"], g["total_runs"]) for g in body["groups"]]
    assert keys == [("review", A, 1), ("triage", A, 3), ("triage", B, 2)]


def test_filters(kpi_api: httpx.Client) -> None:
    # from inclusive, to exclusive: A4 starts exactly at `to`.
    body = kpis(
        kpi_api,
        {"agent_name": A, "from": "2026-01-12T12:00:00Z", "to": "2026-01-19T08:00:00+00:00"},
    )
    assert (body["from"], body["to"]) == (
        "2026-01-12T12:00:00.000000Z",
        "2026-01-19T08:00:00.000000Z",
    )
    [group] = body["groups"]
    assert group["total_runs"] == 2  # A2, A3
    assert group["status_counts"] == {"failure": 1, "running": 1}
    [from_a4] = kpis(kpi_api, {"from": "2026-01-19T08:00:00Z"})["groups"]
    assert from_a4["total_runs"] == 1
    [review] = kpis(kpi_api, {"job_type": "review"})["groups"]
    assert (review["total_runs"], review["escalation_rate"]) == (1, 1.0)


def test_nothing_selected_is_no_group(kpi_api: httpx.Client) -> None:
    assert kpis(kpi_api, {"agent_name": "nobody"})["groups"] == []
    assert kpis(kpi_api, {"from": "2027-01-01T00:00:00Z", "group_by": "day"})["groups"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"group_by": "month"}, "group_by"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"from": "2026-01-12T00:00:00"}, "no timezone"),
        ({"to": "yesterday"}, "ISO 8601"),
        ({"from": "2026-01-12T00:00:00Z", "to": "2026-01-12T00:00:00Z"}, "before"),
        ({"from": "2026-01-13T00:00:00Z", "to": "2026-01-12T00:00:00Z"}, "before"),
    ],
)
def test_bad_parameters(kpi_api: httpx.Client, params: dict[str, str], message: str) -> None:
    reply = kpi_api.get("/api/v1/kpis", params=params)
    assert reply.status_code == 422
    assert message in reply.text


def test_documented_in_openapi(kpi_api: httpx.Client) -> None:
    operation = kpi_api.get("/openapi.json").json()["paths"]["/api/v1/kpis"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names == {"agent_name", "job_type", "from", "to", "group_by", "tz"}
