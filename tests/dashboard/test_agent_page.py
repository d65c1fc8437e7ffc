"""The Agent page in Chromium: the agent's KPIs equal the API's, charts draw, recent
failures link to their runs with the error escaped; unknown agents are a 404 page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from dashboard_support import problems, screenshot
from overview_support import CHARTS_DRAWN_JS, ERROR, api_kpis, expected_headline, seed
from support import ServerProcess


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Any]]:
    path = tmp_path_factory.mktemp("dash-agent") / "telemetry.sqlite"
    process = ServerProcess(
        path,
        {
            "TELEMETRY_ALERT_INTERVAL_SECONDS": "0",
            # Live figures: these tests seed, then compare with the API at once
            # (test_overview_freshness.py covers the kept-fresh views).
            "TELEMETRY_DASHBOARD_REFRESH_SECONDS": "0",
        },
    )
    process.start()
    with httpx.Client(base_url=process.url) as client:
        runs = seed(client)
    yield process, runs
    process.stop()


def test_agent_page_shows_kpis_charts_and_failures(
    seeded: tuple[ServerProcess, list[dict[str, Any]]], page: Page
) -> None:
    server, runs = seeded
    page.goto(f"{server.url}/agents/alpha?period=7d")
    assert page.locator("h1").inner_text() == "Agent alpha"
    start = page.locator("#window-start").get_attribute("datetime")
    end = page.locator("#window-end").get_attribute("datetime")
    assert start
    assert end
    with httpx.Client(base_url=server.url) as client:
        group = api_kpis(client, start, end, agent_name="alpha")
    shown = {
        card.get_attribute("data-kpi"): card.locator(".value").inner_text()
        for card in page.locator(".kpi").all()
    }
    assert shown == expected_headline(group)
    page.wait_for_selector("[data-chart] canvas")
    assert all(drawn for _, drawn in page.evaluate(CHARTS_DRAWN_JS))
    assert page.locator("[data-chart]").count() == 4

    failed = [
        r for r in runs if r["agent_name"] == "alpha" and r["status"] in ("failure", "timeout")
    ]
    rows = page.locator("#failures tbody tr")
    assert rows.count() == len(failed)
    summaries = page.locator("#failures .error-summary")
    assert ERROR in summaries.first.inner_text()  # shown as text
    assert page.locator("#failures .error-summary img, #failures .error-summary b").count() == 0
    badges = {b.inner_text() for b in page.locator("#failures .badge").all()}
    assert badges <= {"failure", "timeout"}
    newest = max(failed, key=lambda r: r["start_time"])
    link = rows.first.locator("a")
    assert link.get_attribute("href") == f"/runs/{newest['event_id']}"
    assert problems(page) == []
    screenshot(page, "agent")


def test_agent_page_period_selector(
    seeded: tuple[ServerProcess, list[dict[str, Any]]], page: Page
) -> None:
    server, _ = seeded
    page.goto(f"{server.url}/agents/beta")
    day = page.locator("[data-kpi=total_runs] .value").inner_text()
    assert page.locator("#f-agent").count() == 0  # the agent is the page
    page.select_option("#f-period", "7d")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/agents/beta?period=7d")
    assert page.locator("[data-kpi=total_runs] .value").inner_text() != day
    assert problems(page) == []


def test_unknown_agent_is_a_404_page(
    seeded: tuple[ServerProcess, list[dict[str, Any]]], page: Page
) -> None:
    server, _ = seeded
    response = httpx.get(f"{server.url}/agents/%3Cscript%3Enobody")
    assert response.status_code == 404
    assert "No such agent" in response.text
    assert "<script>nobody" not in response.text
    page.goto(f"{server.url}/agents/nobody")
    assert page.locator("h1").inner_text() == "No such agent"
    assert problems(page) == []


@pytest.mark.parametrize("query", ["period=2w", "period=custom&from=x&to=y"])
def test_bad_agent_query_is_a_400_page(
    seeded: tuple[ServerProcess, list[dict[str, Any]]], query: str
) -> None:
    server, _ = seeded
    response = httpx.get(f"{server.url}/agents/alpha?{query}")
    assert response.status_code == 400
    assert "That view cannot be shown" in response.text
