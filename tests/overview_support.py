"""Seeded data for the overview and agent page tests: runs relative to now through the
HTTP API (several agents, statuses, resolutions, SLA targets, costs, QC reviews)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from local_telemetry.dashboard.web import fmt_cost, fmt_int, fmt_ms, fmt_rate

AGENTS = ("alpha", "beta", "gamma.ops")
OLD_AGENT = "delta"  # only runs 2-5 days ago: in the 7-day view, not in the 24-hour one
STATUSES = ("success", "success", "failure", "partial", "timeout")
RESOLUTIONS = {"success": "resolved", "partial": "escalated", "failure": "failed"}
ERROR = 'boom <b>bold</b> "><img src=x onerror=alert(1)>'


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _run(agent: str, start: datetime, index: int) -> dict[str, Any]:
    status = STATUSES[index % len(STATUSES)]
    seconds = (30, 90, 45, 200)[index % 4]
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "run_id": f"run-{index}-{uuid.uuid4().hex[:6]}",
        "agent_name": agent,
        "job_type": "triage" if index % 2 else "review",
        "start_time": stamp(start),
        "end_time": stamp(start + timedelta(seconds=seconds)),
        "status": status,
        "sla_target_seconds": 60,
        "cost_usd": round(0.01 * (index % 7 + 1), 4),
    }
    if status in RESOLUTIONS:
        body["resolution"] = RESOLUTIONS[status]
    if status in ("failure", "timeout"):
        body["error_summary"] = f"{ERROR} #{index}"
    return body


def seed(client: httpx.Client) -> list[dict[str, Any]]:
    """Store the runs (and QC reviews); return them."""
    now = datetime.now(UTC)
    runs = [
        _run(AGENTS[i % 3], now - timedelta(minutes=10 + i * 40), i) for i in range(30)
    ]  # the last 24 hours
    runs += [_run(AGENTS[i % 3], now - timedelta(hours=26 + i * 2), i) for i in range(8)]
    runs += [_run(OLD_AGENT, now - timedelta(days=2 + i / 3), i) for i in range(10)]
    response = client.post("/api/v1/runs/batch", json=runs)
    assert response.status_code in (200, 201), response.text
    for run, score in zip(runs[:6], (5, 4, 2, 3, 1, 4), strict=True):
        reply = client.post(f"/api/v1/runs/{run['event_id']}/qc", json={"score": score})
        assert reply.status_code == 201, reply.text
    return runs


def api_kpis(client: httpx.Client, start: str, end: str, **filters: str) -> dict[str, Any]:
    """The single group of ``GET /api/v1/kpis`` for the window (zeros when empty)."""
    params = {"from": start, "to": end, **filters}
    response = client.get("/api/v1/kpis", params=params)
    assert response.status_code == 200, response.text
    groups: list[dict[str, Any]] = response.json()["groups"]
    assert len(groups) == 1, groups
    return groups[0]


def expected_headline(group: dict[str, Any]) -> dict[str, str]:
    """The headline texts the page must show for the API's group."""
    counts = group["status_counts"]
    completed = group["completed_runs"]
    success = counts.get("success", 0) / completed if completed else None
    qc = group["avg_qc_score"]
    return {
        "total_runs": fmt_int(group["total_runs"]),
        "success_rate": fmt_rate(success),
        "escalation_rate": fmt_rate(group["escalation_rate"]),
        "sla_hit_rate": fmt_rate(group["sla_hit_rate"]),
        "avg_qc_score": "\u2013" if qc is None else f"{qc:.2f}",
        "cost_usd": fmt_cost(group["cost_usd"]),
        "cost_per_resolved_run": fmt_cost(group["cost_per_resolved_run"]),
        "p95_duration_ms": fmt_ms(group["p95_duration_ms"]),
    }


# Every chart has drawn: a canvas with a width and some non-transparent pixels.
CHARTS_DRAWN_JS = """() => Array.from(document.querySelectorAll('[data-chart]')).map((el) => {
  const canvas = el.querySelector('canvas');
  if (!canvas || canvas.width === 0 || canvas.height === 0) return [el.dataset.chart, false];
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
  return [el.dataset.chart, painted > 100];
})"""
