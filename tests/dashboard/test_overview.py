"""The Overview page in Chromium: headline KPIs equal the API's, charts draw, filters
change the URL and the numbers, the agent table sorts, firing alerts show; and the
merging of KPI groups in ``series.py`` (no browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from dashboard_support import problems, screenshot
from local_telemetry.dashboard import series
from local_telemetry.kpis import group_kpis
from local_telemetry.storage.base import InsertRuns, KpiFilter
from local_telemetry.storage.sqlite import SQLiteStore
from overview_support import (
    AGENTS,
    CHARTS_DRAWN_JS,
    OLD_AGENT,
    api_kpis,
    expected_headline,
    seed,
)
from support import ServerProcess, store_row


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("dash-overview") / "telemetry.sqlite"
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
        seed(client)
        rules = [
            {
                "name": "failing",
                "kind": "failure_rate_above",
                "threshold": 0.1,
                "window": "24h",
                "min_runs": 1,
                "agent_name": "alpha",
            }
        ]
        assert client.put("/api/v1/alerts/rules", json=rules).status_code == 200
        assert client.post("/api/v1/alerts/evaluate").status_code == 200
        firing = client.get("/api/v1/alerts", params={"state": "firing"}).json()
        assert firing, "the seeded failures should fire the rule"
    yield process
    process.stop()


def headline_texts(page: Page) -> dict[str, str]:
    texts: dict[str, str] = {}
    for card in page.locator(".kpi").all():
        key = card.get_attribute("data-kpi")
        assert key is not None
        texts[key] = card.locator(".value").inner_text().strip()
    return texts


def window_of(page: Page) -> tuple[str, str]:
    start = page.locator("#window-start").get_attribute("datetime")
    end = page.locator("#window-end").get_attribute("datetime")
    assert start
    assert end
    return start, end


def assert_headline_matches_api(page: Page, server: ServerProcess, **filters: str) -> str:
    start, end = window_of(page)
    with httpx.Client(base_url=server.url) as client:
        group = api_kpis(client, start, end, **filters)
    assert headline_texts(page) == expected_headline(group)
    return str(group["total_runs"])


def assert_charts_drawn(page: Page) -> None:
    page.wait_for_selector("[data-chart] canvas")
    drawn = dict(page.evaluate(CHARTS_DRAWN_JS))
    assert drawn == {"runs": True, "rates": True, "cost": True, "duration": True}


def test_headline_equals_the_api_and_charts_draw(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}/")
    assert_headline_matches_api(page, server)
    assert page.locator("[data-kpi=total_runs] .value").inner_text() == "30"
    assert_charts_drawn(page)
    for chart in page.locator("[data-chart]").all():
        assert chart.get_attribute("role") == "img"
        assert "Runs" in (chart.get_attribute("aria-label") or "") or chart.get_attribute(
            "aria-label"
        )
    assert problems(page) == []
    screenshot(page, "overview")


def test_period_and_agent_filters_change_url_and_numbers(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}/")
    day_runs = page.locator("[data-kpi=total_runs] .value").inner_text()
    assert page.locator("#agents a", has_text=OLD_AGENT).count() == 0
    page.select_option("#f-period", "7d")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/?period=7d*")
    week_runs = assert_headline_matches_api(page, server)
    assert week_runs != day_runs.replace(",", "")
    assert page.locator("#agents a", has_text=OLD_AGENT).count() == 1
    assert_charts_drawn(page)
    page.select_option("#f-agent", "beta")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**agent_name=beta*")
    beta_runs = assert_headline_matches_api(page, server, agent_name="beta")
    assert beta_runs != week_runs
    assert [a.inner_text() for a in page.locator("#agents tbody a").all()] == ["beta"]
    page.go_back()
    page.wait_for_url("**/?period=7d")
    assert problems(page) == []


def test_custom_period_from_the_form(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}/")
    page.select_option("#f-period", "custom")
    page.fill("#f-from", "2020-01-01T00:00")
    page.fill("#f-to", "2020-01-08T00:00")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/?period=custom&from=2020-01-01T00%3A00*")
    assert window_of(page) == ("2020-01-01T00:00:00.000000Z", "2020-01-08T00:00:00.000000Z")
    texts = headline_texts(page)
    assert texts["total_runs"] == "0"
    assert texts["success_rate"] == "\u2013"
    assert page.locator("#f-from").input_value().startswith("2020-01-01T00:00")
    assert_charts_drawn(page)
    assert problems(page) == []


def test_agent_table_sorts_and_links(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}/?period=7d")
    table = page.locator("table#agents")

    def names() -> list[str]:
        return [a.inner_text() for a in table.locator("tbody td:first-child a").all()]

    table.locator("th button", has_text="Agent").click()
    assert names() == sorted([*AGENTS, OLD_AGENT])
    assert table.locator("th[aria-sort=ascending]").inner_text().startswith("Agent")
    table.locator("th button", has_text="Agent").click()
    assert names() == sorted([*AGENTS, OLD_AGENT], reverse=True)
    table.locator("th button", has_text="Runs").click()
    runs = [
        int(cell.get_attribute("data-value") or 0)
        for cell in table.locator("tbody td:nth-child(2)").all()
    ]
    assert runs == sorted(runs)
    assert table.locator("a", has_text="gamma.ops").get_attribute("href") == "/agents/gamma.ops"
    table.locator("a", has_text="beta").click()
    page.wait_for_url(f"{server.url}/agents/beta")
    assert page.locator("h1").inner_text() == "Agent beta"
    assert page.locator("#failures tbody tr").count() > 0
    assert problems(page) == []


def test_firing_alert_is_shown_at_the_top(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}/")
    banner = page.locator("#firing-alerts")
    assert "failing" in banner.inner_text()
    assert "alpha" in banner.inner_text()
    assert banner.locator("a[href='/alerts']").count() == 1
    box = banner.bounding_box()
    heading = page.locator("h1").bounding_box()
    assert box is not None
    assert heading is not None
    assert box["y"] < heading["y"]
    assert problems(page) == []


BAD_QUERIES = [
    "period=99y",
    "period=custom",
    "period=custom&from=yesterday&to=today",
    "period=custom&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
    "period=custom&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    "period=custom&from=0001-01-01T00:00:00Z&to=0001-02-01T00:00:00Z",
    "agent_name=" + "x" * 300,
    "job_type=a%00b",
]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_query_parameters_are_a_400_page(server: ServerProcess, query: str) -> None:
    response = httpx.get(f"{server.url}/?{query}")
    assert response.status_code == 400, response.text
    assert "That view cannot be shown" in response.text
    assert "content-security-policy" in response.headers


def test_bad_query_page_in_the_browser(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}/?period=custom&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")
    assert page.locator("[role=alert]").inner_text() == "from must be before to"
    assert problems(page) == []


def test_dark_and_phone_screenshots(server: ServerProcess, browser: Browser) -> None:
    for name, options in (
        ("overview-dark", {"viewport": {"width": 1280, "height": 900}, "color_scheme": "dark"}),
        ("overview-phone", {"viewport": {"width": 390, "height": 844}, "is_mobile": True}),
    ):
        context = browser.new_context(**options)  # type: ignore[arg-type]
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error, e=errors: e.append(str(error)))
        page.goto(f"{server.url}/?period=7d")
        assert_charts_drawn(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= options["viewport"]["width"] + 1, (name, width)  # type: ignore[index]
        screenshot(page, name)
        assert errors == []
        context.close()


# ----- series.py without a browser -----


def same(found: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equal KPIs (float sums may differ in their last bits: summed in another order)."""
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert found[key] == pytest.approx(value), key
        else:
            assert found[key] == value, key
    return True


def test_merged_groups_equal_the_ungrouped_kpis(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "merge.sqlite")
    store.migrate()
    rows: list[dict[str, Any]] = []
    for i in range(60):
        day, hour = 10 + (i // 3) % 3, i % 24
        start = f"2026-01-{day:02d}T{hour:02d}:{i % 60:02d}:00.000000Z"
        rows.append(
            store_row(
                f"run-{i}",
                agent_name=("a", "b", "c")[i % 3],
                job_type=("x", "y")[i % 2],
                start_time=start,
                end_time=f"2026-01-{day:02d}T{hour:02d}:{i % 60:02d}:{i % 50 + 1:02d}.000000Z",
                status=("success", "failure", "partial", "running")[i % 4],
                resolution=("resolved", "escalated", None)[i % 3],
                sla_target_seconds=20,
                cost_usd=0.5 * (i % 5),
                tokens_input=i,
            )
        )
    store.apply([InsertRuns(rows)])
    whole = KpiFilter(start_time_from="2026-01-10T00:00:00.000000Z",
                      start_time_to="2026-01-13T00:00:00.000000Z")  # fmt: skip
    expected = group_kpis({}, store.kpi_inputs(whole, (), "UTC")[()])

    by_agent_day = store.kpi_inputs(whole, ("agent_name", "day"), "UTC")
    assert len(by_agent_day) == 9
    merged = series.merge(by_agent_day.values())
    assert same(group_kpis({}, merged), expected)
    per_agent = series.merge_by(by_agent_day, 0)
    assert sorted(per_agent) == ["a", "b", "c"]
    for agent, inputs in per_agent.items():
        alone = store.kpi_inputs(KpiFilter(agent_name=agent), (), "UTC")[()]
        assert same(group_kpis({}, inputs), group_kpis({}, alone))
    per_day = series.merge_by(by_agent_day, 1)
    assert sorted(per_day) == ["2026-01-10", "2026-01-11", "2026-01-12"]

    hours = store.hourly_kpi_inputs(whole)
    assert sum(inputs.total_runs for inputs in hours.values()) == 60
    assert all(len(hour) == 13 for hour in hours)
    from_hours = group_kpis({}, series.merge(hours.values()))
    assert same(from_hours, {**expected, "avg_qc_score": None, "qc_count": 0})

    # the view: headline against the previous period, chart buckets cover the window
    query = series.parse_query(
        {"period": "custom", "from": "2026-01-10T00:00", "to": "2026-01-13T00:00"}
    )
    view = series.overview_data(store, query)
    assert view["total"]["total_runs"] == 60
    assert view["chart_data"]["unit"] == "day"
    assert len(view["chart_data"]["x"]) == 3
    runs_chart = view["chart_data"]["charts"]["runs"]["series"]
    assert sum(sum(s["values"]) for s in runs_chart) == 60
    cards = {card["key"]: card for card in view["headline"]}
    assert cards["total_runs"]["text"] == "60"
    assert cards["total_runs"]["change"] == ""  # nothing in the previous period
    store.close()


def test_queries_are_validated() -> None:
    for params in ({"period": "1y"}, {"period": "custom", "from": "2026-01-01"}):
        with pytest.raises(series.BadQuery):
            series.parse_query(params)
    query = series.parse_query({"period": "7d", "agent_name": "a b/c"})
    assert query.params() == {"period": "7d", "agent_name": "a b/c"}
    assert series.agent_href("a b/c") == "/agents/a%20b%2Fc"
    assert not query.window.hourly
    assert series.parse_query({}).window.hourly
