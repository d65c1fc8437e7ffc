"""The Alerts page in a real browser: rules in force, firing alerts, resolved history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Page

from alert_support import alerts_of, evaluate, post_runs, put_rules, run
from dashboard_support import problems, screenshot
from support import ServerProcess, StartServer

FIRING_AGENT = "page agent/firing & co"  # a slash and an ampersand: the link must encode them
RESOLVED_AGENT = "page-agent-resolved"
SPIKE_AGENT = "page-agent-spike"
RULES: list[dict[str, Any]] = [
    {"name": "page-sla", "kind": "sla_hit_rate_below", "threshold": 0.9, "window": "24h"},
    {"name": "page-spike", "kind": "failure_rate_spike", "threshold": 2.0, "window": "1h",
     "baseline": "7d", "agent_name": SPIKE_AGENT},
    {"name": "page-muted", "kind": "cost_above_baseline", "threshold": 1.5, "window": "7d",
     "agent_name": "quiet-agent", "enabled": False, "min_runs": 3},
]  # fmt: skip


def sla_runs(agent: str, hits: int, misses: int, ago: timedelta) -> list[dict[str, Any]]:
    return [
        run(agent, ago, seconds=30 if i < hits else 90, sla_target_seconds=60)
        for i in range(hits + misses)
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with: one firing SLA alert, one resolved SLA alert (3 episodes of
    history for the pager), one firing baseline alert."""
    path = tmp_path_factory.mktemp("alerts-page") / "telemetry.sqlite"
    server = ServerProcess(path, {"TELEMETRY_ALERT_INTERVAL_SECONDS": "0"})
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        put_rules(client, RULES)
        post_runs(client, sla_runs(FIRING_AGENT, 8, 2, timedelta(hours=2)))  # 0.8 < 0.9
        post_runs(client, sla_runs(RESOLVED_AGENT, 7, 3, timedelta(hours=3)))  # 0.7
        baseline = [
            run(SPIKE_AGENT, timedelta(days=2), status="failure" if i < 2 else "success")
            for i in range(20)
        ]  # 10% failures
        recent = [
            run(SPIKE_AGENT, timedelta(minutes=10), status="failure" if i < 5 else "success")
            for i in range(10)
        ]  # 50%
        post_runs(client, baseline + recent)
        evaluate(client)
        post_runs(client, sla_runs(RESOLVED_AGENT, 90, 0, timedelta(hours=1)))  # 97/100
        evaluate(client)
    yield server
    server.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_alert_state_is_what_the_page_is_checked_against(api: httpx.Client) -> None:
    assert [(a["state"], a["value"]) for a in alerts_of(api, FIRING_AGENT)] == [("firing", 0.8)]
    assert [(a["state"], a["value"]) for a in alerts_of(api, RESOLVED_AGENT)] == [
        ("resolved", 0.97)
    ]
    [spike] = alerts_of(api, SPIKE_AGENT)
    assert (spike["state"], spike["value"], spike["baseline"]) == ("firing", 0.5, 0.1)


def test_rules_firing_and_history_render(server: ServerProcess, page: Page) -> None:
    response = page.goto(f"{server.url}/alerts")
    assert response is not None
    assert response.status == 200
    assert page.locator("h1").inner_text() == "Alerts"

    # Rules in force: saved ones, with every column.
    assert "rules saved through the API" in page.locator(".rules-origin").inner_text()
    rows = page.locator(".rules-table tbody tr")
    assert rows.count() == 3
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(3)]
    assert cells[0] == ["page-sla", "sla_hit_rate_below", "< 90.0%", "24h", "\u2013", "10",
                        "all agents", "yes"]  # fmt: skip
    assert cells[1] == ["page-spike", "failure_rate_spike", "> 2 \u00d7 baseline", "1h", "7d",
                        "10", SPIKE_AGENT, "yes"]  # fmt: skip
    assert cells[2] == ["page-muted", "cost_above_baseline", "> 1.5 \u00d7 baseline", "7d",
                        "7d", "3", "quiet-agent", "disabled"]  # fmt: skip
    assert rows.nth(1).locator("a").get_attribute("href") == f"/agents/{SPIKE_AGENT}"
    assert "curl -X PUT" in page.locator(".rules-hint pre").text_content()  # type: ignore[operator]

    # Firing: both open alerts, with their numbers and agent links.
    firing = page.locator(".alerts-firing .alert-item")
    assert firing.count() == 2
    sla = page.locator(".alert-item", has_text="page-sla")
    assert sla.locator(".badge.firing").inner_text() == "firing"
    link = sla.locator("a.alert-agent")
    assert link.inner_text() == FIRING_AGENT
    assert link.get_attribute("href") == "/agents/" + quote(FIRING_AGENT, safe="")
    assert link.get_attribute("href") == "/agents/page%20agent%2Ffiring%20%26%20co"
    numbers = sla.locator(".alert-numbers").inner_text()
    assert re.sub(r"\s+", " ", numbers) == "80.0% < 90.0% (10 runs)"
    assert "Since 20" in sla.locator(".alert-since").inner_text()
    assert "0.8 < 0.9" in sla.locator(".alert-message").inner_text()
    spike = page.locator(".alert-item", has_text="page-spike")
    assert re.sub(r"\s+", " ", spike.locator(".alert-numbers").inner_text()) == (
        "50.0% > 2 \u00d7 baseline 10.0% = 20.0% (10 runs)"
    )

    # History: the resolved alert only.
    history = page.locator(".history-table tbody tr")
    assert history.count() == 1
    texts = history.nth(0).locator("td").all_inner_texts()
    assert texts[0] == "resolved"
    assert texts[1:3] == ["page-sla", RESOLVED_AGENT]
    assert texts[6] == "97.0%"
    assert "0.97 not < 0.9" in texts[7]
    assert problems(page) == []
    screenshot(page, "alerts")


def test_history_filters_are_reflected_in_the_url(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}/alerts")
    page.fill("#filter-agent", "nobody")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/alerts\?agent_name=nobody&rule_name=$"))
    assert page.locator(".history-table").count() == 0
    assert "No resolved alerts match" in page.locator(".empty-state").last.inner_text()
    page.fill("#filter-agent", RESOLVED_AGENT)
    page.fill("#filter-rule", "page-sla")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(rf".*agent_name={RESOLVED_AGENT}&rule_name=page-sla$"))
    assert page.locator(".history-table tbody tr").count() == 1
    assert page.input_value("#filter-agent") == RESOLVED_AGENT
    page.go_back()
    page.wait_for_url(re.compile(r".*agent_name=nobody.*"))
    assert page.input_value("#filter-agent") == "nobody"
    page.goto(f"{server.url}/alerts?rule_name=page-spike")  # page-spike never resolved
    assert page.locator(".history-table").count() == 0
    assert problems(page) == []


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=x", "page=-1", "page=99999999999", "agent_name=" + "a" * 300, "rule_name=%00"],
)
def test_bad_parameters_are_a_400_page(server: ServerProcess, query: str) -> None:
    response = httpx.get(f"{server.url}/alerts?{query}")
    assert response.status_code == 400
    assert "Bad request" in response.text
    assert "content-security-policy" in response.headers


def test_history_is_paginated_newest_first(server: ServerProcess, api: httpx.Client) -> None:
    first = httpx.get(f"{server.url}/alerts?page=1")
    assert first.status_code == 200
    assert 'rel="next"' not in first.text  # one resolved alert: a single page
    empty = httpx.get(f"{server.url}/alerts?page=2")
    assert empty.status_code == 200
    assert "No resolved alerts match these filters on page 2" in empty.text
    assert 'rel="prev"' in empty.text
    assert 'href="/alerts"' in empty.text


def test_built_in_rules_and_empty_states(start_server: StartServer, page: Page) -> None:
    server = start_server(TELEMETRY_ALERT_INTERVAL_SECONDS="0")
    page.goto(f"{server.url}/alerts")
    assert "built-in rules" in page.locator(".rules-origin").inner_text()
    names = page.locator(".rules-table tbody td.rule-name").all_inner_texts()
    assert names == [
        "sla-hit-rate-daily",
        "failure-rate-spike",
        "escalation-rate-high",
        "duration-above-baseline",
        "cost-week-over-week",
    ]
    assert page.locator(".alert-item").count() == 0
    assert "Nothing is firing" in page.locator(".alerts-firing").inner_text()
    assert "No alert has resolved yet" in page.inner_text("main")
    assert problems(page) == []
    with httpx.Client(base_url=server.url) as client:
        put_rules(client, [])
    page.reload()
    assert "alerting is off" in page.inner_text("main")
    assert problems(page) == []
