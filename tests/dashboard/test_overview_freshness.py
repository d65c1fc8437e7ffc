"""The overview's standard views are kept built in the background and follow new runs
within TELEMETRY_DASHBOARD_REFRESH_SECONDS (no browser: the served HTML)."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx

from alert_support import agent_name, post_runs, run
from support import StartServer

RUNS_CARD = re.compile(r'data-kpi="total_runs">\s*<dt[^>]*>[^<]*</dt>\s*<dd class="value">([^<]*)<')
WINDOW_END = re.compile(r'id="window-end"[^>]*datetime="([^"]+)"')


def shown_runs(client: httpx.Client, period: str) -> tuple[str, str]:
    html = client.get("/", params={"period": period}).text
    runs, end = RUNS_CARD.search(html), WINDOW_END.search(html)
    assert runs is not None
    assert end is not None
    return runs.group(1).strip(), end.group(1)


def test_standard_views_follow_new_runs_within_the_refresh(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_ALERT_INTERVAL_SECONDS="0", TELEMETRY_DASHBOARD_REFRESH_SECONDS="0.5"
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert shown_runs(client, "30d")[0] == "0"
        agent = agent_name()
        post_runs(client, [run(agent, timedelta(hours=2)) for _ in range(7)])
        deadline = time.monotonic() + 30
        seen: list[tuple[str, str]] = []
        while time.monotonic() < deadline:
            seen.append(shown_runs(client, "30d"))
            if seen[-1][0] == "7":
                break
            time.sleep(0.1)
        assert seen[-1][0] == "7", seen[-5:]
        assert shown_runs(client, "24h")[0] == "7"


def test_refresh_zero_computes_every_request(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_ALERT_INTERVAL_SECONDS="0", TELEMETRY_DASHBOARD_REFRESH_SECONDS="0"
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert shown_runs(client, "7d")[0] == "0"
        post_runs(client, [run(agent_name(), timedelta(days=1)) for _ in range(3)])
        assert shown_runs(client, "7d")[0] == "3"  # at once: nothing kept
