"""A flood of 256 connections: fast 503s with Retry-After, health answers, nothing lost.

The flood runs in a process of its own for ``FLOOD_SECONDS`` (20 s, as issue 10 asks)
while this test polls ``/health`` every ~100 ms. ``bench/flood.py`` runs the same flood
and prints the /health latency percentiles against the 500 ms p99 target (wall-clock
figures are measured there, not asserted here).
"""

from __future__ import annotations

import uuid

import httpx
from load_support import (
    HealthPoller,
    flood_result,
    peak_rss_mb,
    percentile,
    run_flood,
)

from support import StartServer, new_run, query

CONNECTIONS = 256
FLOOD_SECONDS = 20.0
RSS_CEILING_MB = 300
AFTER_FLOOD_GUARD_SECONDS = 2.0
# A cap well below the flood, so the test sees the cap's 503s as well as 2xx.
CAP = "32"


def test_flood_gets_2xx_or_fast_503_health_answers_and_nothing_acked_is_lost(
    start_server: StartServer,
) -> None:
    server = start_server(TELEMETRY_MAX_CONCURRENT_REQUESTS=CAP)
    assert server.process is not None
    agent = f"flood-{uuid.uuid4().hex[:8]}"
    poller = HealthPoller(server.url)
    poller.start()
    client = run_flood(server.url, CONNECTIONS, FLOOD_SECONDS, agent)
    try:
        result = flood_result(client, timeout=FLOOD_SECONDS + 120)
    finally:
        poller.finish()
        if client.poll() is None:
            client.kill()
    rss = peak_rss_mb(server.process.pid)

    statuses = {int(k): v for k, v in result["statuses"].items()}
    p50, p99 = percentile(poller.latencies, 0.5), percentile(poller.latencies, 0.99)
    print(
        f"\nflood: {result['requests']} requests in {result['seconds']:.1f} s, statuses "
        f"{statuses}; /health p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms "
        f"({len(poller.latencies)} polls); peak RSS {rss:.0f} MiB"
    )
    assert result["contract_breaks"] == []  # only 2xx, or 503/429 with Retry-After
    assert result["timeouts"] == 0  # no request hung
    assert result["transport_errors"] == []
    assert statuses.get(503, 0) > 0, "the flood never reached the concurrency cap"
    assert any(200 <= status < 300 for status in statuses)
    assert poller.failures == []
    assert len(poller.latencies) >= FLOOD_SECONDS  # polled all along, at least 1/s
    assert rss <= RSS_CEILING_MB

    # Right after the flood a normal request succeeds on the first try.
    run = new_run(agent_name=agent)
    with httpx.Client(base_url=server.url, timeout=AFTER_FLOOD_GUARD_SECONDS) as api:
        assert api.post("/api/v1/runs", json=run).status_code == 201

    stored = {
        row[0]
        for row in query(server, "SELECT event_id FROM agent_runs WHERE agent_name = ?", [agent])
    }
    acked = set(result["acked"])
    assert acked
    assert acked <= stored
    assert run["event_id"] in stored
