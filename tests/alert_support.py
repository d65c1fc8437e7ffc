"""Seeding runs relative to now and driving the alert API, for the alert tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run(agent: str, start_ago: timedelta, **fields: Any) -> dict[str, Any]:
    """A run of ``agent`` that started ``start_ago`` before now; ``seconds`` (if given)
    is its duration, ending it."""
    start = datetime.now(UTC) - start_ago
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "run_id": str(uuid.uuid4()),
        "agent_name": agent,
        "job_type": "alert-test",
        "start_time": stamp(start),
        "status": "success",
    }
    seconds = fields.pop("seconds", None)
    if seconds is not None:
        body["end_time"] = stamp(start + timedelta(seconds=seconds))
    body.update(fields)
    return body


def post_runs(client: httpx.Client, runs: list[dict[str, Any]]) -> None:
    response = client.post("/api/v1/runs/batch", json=runs)
    assert response.status_code in (200, 201, 207), response.text


def put_rules(client: httpx.Client, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.put("/api/v1/alerts/rules", json=rules)
    assert response.status_code == 200, response.text
    stored: list[dict[str, Any]] = response.json()
    return stored


def evaluate(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/api/v1/alerts/evaluate")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def alerts_of(client: httpx.Client, agent: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/alerts", params={"agent_name": agent, **params})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def agent_name() -> str:
    return f"alert-agent-{uuid.uuid4().hex[:8]}"
