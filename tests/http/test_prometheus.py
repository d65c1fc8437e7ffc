"""``GET /metrics/prometheus`` through a real server: text format, ingest counters,
latency histogram, per-agent gauges and their cap, SLA hit rate, firing alerts, auth."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alert_support import evaluate, post_runs, put_rules, run
from local_telemetry.api.http import ApiError
from local_telemetry.api.prometheus import route_template
from local_telemetry.ingest import StorageUnavailable, WriterBusy, WriterStopped
from local_telemetry.observability import rejection_reason
from support import StartServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Scrapes see every write at once (no caching), alerts are evaluated on demand only.
FRESH = {"TELEMETRY_PROMETHEUS_CACHE_SECONDS": "0", "TELEMETRY_ALERT_INTERVAL_SECONDS": "0"}


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics/prometheus")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def agent() -> str:
    return f"prom-agent-{uuid.uuid4().hex[:8]}"


def test_counters_latency_gauges_sla_and_alerts(start_server: StartServer) -> None:
    server = start_server(TELEMETRY_MAX_RUN_BODY_BYTES="4096", **FRESH)
    first, second = agent(), agent()
    hit = run(first, timedelta(minutes=5), seconds=1, sla_target_seconds=60)
    runs = [
        hit,
        run(first, timedelta(minutes=4), seconds=2, sla_target_seconds=60),
        run(first, timedelta(minutes=3), seconds=10, sla_target_seconds=1, status="failure"),
    ]
    batch = [run(second, timedelta(minutes=2)), run(second, timedelta(minutes=1)), hit]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        before = scrape(client)
        for body in runs:
            assert client.post("/api/v1/runs", json=body).json()["status"] == "created"
        assert client.post("/api/v1/runs", json=hit).json()["status"] == "duplicate"
        answer = client.post("/api/v1/runs/batch", json=batch).json()
        assert (answer["inserted"], answer["duplicates"]) == (2, 1)
        assert client.post("/api/v1/runs", json={}).status_code == 422
        too_large = {**run(first, timedelta(0)), "error_summary": "x" * 5000}
        assert client.post("/api/v1/runs", json=too_large).status_code == 413
        plain = client.post("/api/v1/runs", content=b"{}", headers={"content-type": "text/plain"})
        assert plain.status_code == 415
        after = scrape(client)

        assert delta(before, after, "local_telemetry_runs_created_total") == 5
        assert delta(before, after, "local_telemetry_runs_duplicate_total") == 2
        for reason in ("validation", "too_large", "unsupported_media_type"):
            rejected = delta(before, after, "local_telemetry_ingest_rejected_total", reason=reason)
            assert rejected == 1, reason
        for reason in ("busy", "storage"):
            assert delta(before, after, "local_telemetry_ingest_rejected_total", reason=reason) == 0
        assert delta(before, after, "local_telemetry_batch_size_runs_count") == 1
        assert delta(before, after, "local_telemetry_batch_size_runs_sum") == 3
        # Every write committed: 3 creates, the duplicate, the batch.
        assert delta(before, after, "local_telemetry_commit_group_size_writes_sum") == 5
        latency = "local_telemetry_http_request_duration_seconds_count"
        created = {"route": "/api/v1/runs", "method": "POST"}
        assert delta(before, after, latency, **created, status="2xx") == 4
        assert delta(before, after, latency, **created, status="4xx") == 3
        batch_route = {"route": "/api/v1/runs/batch", "method": "POST", "status": "2xx"}
        assert delta(before, after, latency, **batch_route) == 1
        assert value(after, "local_telemetry_writer_queue_depth") == 0
        assert value(after, "local_telemetry_database_size_bytes") > 0

        gauge = "local_telemetry_agent_runs_24h"
        assert value(after, gauge, agent=first, status="success") == 2
        assert value(after, gauge, agent=first, status="failure") == 1
        assert value(after, gauge, agent=second, status="success") == 2

        kpis = client.get("/api/v1/kpis", params={"agent_name": first, "group_by": "agent_name"})
        expected = kpis.json()["groups"][0]["sla_hit_rate"]
        assert expected == pytest.approx(2 / 3)
        sla = value(after, "local_telemetry_agent_sla_hit_rate_24h", agent=first)
        assert sla == pytest.approx(expected)

        rule = {
            "name": "prom-sla",
            "kind": "sla_hit_rate_below",
            "threshold": 0.9,
            "window": "24h",
            "agent_name": first,
            "min_runs": 1,
        }
        put_rules(client, [rule])
        evaluate(client)
        firing = scrape(client)
        assert value(firing, "local_telemetry_alerts_firing", rule="prom-sla", agent=first) == 1


def test_unknown_paths_fold_into_one_route_label(start_server: StartServer) -> None:
    server = start_server(**FRESH)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for index in range(3):
            assert client.get(f"/no/such/path/{index}").status_code == 404
        samples = scrape(client)
    routes = {dict(labels)["route"] for name, labels in samples if "duration_seconds" in name}
    assert "other" in routes
    assert not any(route.startswith("/no/") for route in routes)


def test_agents_beyond_the_cap_fold_into_other(start_server: StartServer) -> None:
    server = start_server(TELEMETRY_PROMETHEUS_MAX_AGENTS="2", **FRESH)
    busiest, middle, quiet = agent(), agent(), agent()
    runs = [run(busiest, timedelta(minutes=m)) for m in (1, 2, 3)]
    runs += [run(middle, timedelta(minutes=m)) for m in (1, 2)]
    runs += [run(quiet, timedelta(minutes=1))]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        post_runs(client, runs)
        samples = scrape(client)
    per_agent = {
        dict(labels)["agent"]: count
        for (name, labels), count in samples.items()
        if name == "local_telemetry_agent_runs_24h"
    }
    assert per_agent == {busiest: 3, middle: 2, "other": 1}


def test_needs_a_read_key_when_auth_is_on(start_server: StartServer) -> None:
    token = f"prom-token-{uuid.uuid4().hex}"
    server = start_server(TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN=token)
    assert httpx.get(f"{server.url}/metrics/prometheus").status_code == 401
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=30, headers=headers) as client:
        assert "local_telemetry_runs_created_total" in {name for name, _ in scrape(client)}


def test_rejection_reasons_of_refused_ingest() -> None:
    assert rejection_reason(ApiError(422, [])) == "validation"
    assert rejection_reason(ApiError(400, "bad")) == "validation"
    assert rejection_reason(ApiError(413, "big")) == "too_large"
    assert rejection_reason(ApiError(415, "xml")) == "unsupported_media_type"
    assert rejection_reason(ApiError(503, "queue full")) == "busy"
    assert rejection_reason(WriterBusy()) == "busy"
    assert rejection_reason(WriterStopped()) == "busy"
    assert rejection_reason(StorageUnavailable("full", full=True)) == "storage"
    assert rejection_reason(RuntimeError("bug")) is None


def test_route_templates_of_fast_path_requests() -> None:
    def template(path: str) -> str:
        return route_template({"type": "http", "path": path})

    assert template("/api/v1/runs") == "/api/v1/runs"
    assert template("/api/v1/runs/batch") == "/api/v1/runs/batch"
    assert template("/api/v1/runs/abc") == "/api/v1/runs/{event_id}"
    assert template("/api/v1/runs/abc/events") == "/api/v1/runs/{event_id}/events"
    assert template("/api/v1/runs/abc/nope") == "other"
    assert template("/api/v1/runs/abc/") == "other"
    assert template("/elsewhere") == "other"
