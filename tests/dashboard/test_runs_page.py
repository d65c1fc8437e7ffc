"""The Runs page: filters in the URL, pagination, live refresh, bad filters are 400."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page

from dashboard_support import problems, screenshot
from support import ServerProcess, new_run

LIVE_DEADLINE_SECONDS = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("dash-runs") / "telemetry.sqlite"
    started = ServerProcess(path, {"TELEMETRY_ALERT_INTERVAL_SECONDS": "0"})
    started.start()
    yield started
    started.stop()


def create(server: ServerProcess, **fields: object) -> dict[str, object]:
    body = new_run(**fields)
    response = httpx.post(f"{server.url}/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return body


def create_batch(server: ServerProcess, bodies: list[dict[str, object]]) -> None:
    response = httpx.post(f"{server.url}/api/v1/runs/batch", json=bodies)
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == len(bodies)


def shown_run_ids(page: Page) -> list[str]:
    return page.locator("#runs-body tr.run-row td.runs-id a").all_inner_texts()


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "created_after=yesterday",
        "created_before=2026-01-12T10:00:00",  # no timezone
        "start_time_from=not-a-time",
        "start_time_to=2026-13-45T00:00:00Z",
        "limit=0",
        "limit=abc",
        "limit=5000",
        "offset=-1",
        "offset=lots",
        "agent_name=a%00b",
    ],
)
def test_bad_filter_values_show_the_problem_with_400(server: ServerProcess, query: str) -> None:
    response = httpx.get(f"{server.url}/runs?{query}")
    assert response.status_code == 400, response.text
    assert "These filters are not valid" in response.text
    assert "content-security-policy" in response.headers
    fragment = httpx.get(f"{server.url}/runs/-/rows?{query}")
    assert fragment.status_code == 400


def test_empty_form_fields_redirect_to_the_clean_url(server: ServerProcess) -> None:
    response = httpx.get(
        f"{server.url}/runs?agent_name=x&job_type=&status=&created_after=&limit=50",
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/runs?agent_name=x&limit=50"


def test_status_aliases_filter_like_the_api(server: ServerProcess) -> None:
    agent = f"alias-{tag()}"
    failed = create(server, agent_name=agent, status="failure")
    create(server, agent_name=agent, status="success")
    response = httpx.get(f"{server.url}/runs", params={"agent_name": agent, "status": "failed"})
    assert response.status_code == 200
    assert str(failed["run_id"]) in response.text
    assert response.text.count('class="run-row"') == 1


def test_filters_change_the_list_and_the_url_and_back_restores(
    server: ServerProcess, page: Page
) -> None:
    agent = f"team a/b {tag()}"  # a space and a slash: the agent link must encode them
    ok = [create(server, agent_name=agent, status="success") for _ in range(3)]
    bad = [
        create(
            server,
            agent_name=agent,
            status="failure",
            items_discovered=10,
            items_succeeded=7,
            items_failed=2,
            items_skipped=1,
            duration_ms=1500,
        )
        for _ in range(2)
    ]
    create(server, status="failure")  # another agent: never listed below

    page.goto(f"{server.url}/runs?{httpx.QueryParams({'agent_name': agent})}")
    assert sorted(shown_run_ids(page)) == sorted(str(run["run_id"]) for run in ok + bad)

    page.select_option("#f-status", "failure")
    page.click("button[type=submit] >> text=Apply filters")
    page.wait_for_url(lambda url: "status=failure" in url)
    assert query_of(page.url) == {"agent_name": [agent], "status": ["failure"], "limit": ["50"]}
    assert sorted(shown_run_ids(page)) == sorted(str(run["run_id"]) for run in bad)
    badges = page.locator("#runs-body tr.run-row .badge").all_inner_texts()
    assert badges == ["failure", "failure"]  # the status is text, not only colour
    first = page.locator("#runs-body tr.run-row").first
    cells = first.locator("td").all_inner_texts()
    assert "1.5 s" in cells
    assert cells[-4:] == ["10", "7", "2", "1"]
    agent_link = first.locator("td a").nth(1)
    assert agent_link.get_attribute("href") == "/agents/" + agent.replace(" ", "%20").replace(
        "/", "%2F"
    )
    assert page.locator("#f-status").input_value() == "failure"
    assert page.locator("#f-agent_name").input_value() == agent

    page.go_back()
    page.wait_for_url(lambda url: "status=" not in url)
    assert len(shown_run_ids(page)) == 5
    page.go_forward()
    page.wait_for_url(lambda url: "status=failure" in url)
    assert len(shown_run_ids(page)) == 2

    # A row leads to the run's detail page.
    link = page.locator("#runs-body tr.run-row td.runs-id a").first
    run_id = link.inner_text()
    link.click()
    page.wait_for_url(lambda url: "/runs/" in url)
    assert page.locator("h1 .run-id").inner_text() == run_id
    assert problems(page) == []


def test_pagination_without_counting_all_runs(server: ServerProcess, page: Page) -> None:
    agent = f"pager-{tag()}"
    bodies = [new_run(agent_name=agent, run_id=f"page-run-{index}") for index in range(7)]
    create_batch(server, bodies)
    page.goto(f"{server.url}/runs?agent_name={agent}&limit=3")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        ids = shown_run_ids(page)
        assert 1 <= len(ids) <= 3
        seen.extend(ids)
        older = page.locator("a[rel=next]")
        if older.count() == 0:
            break
        older.click()
        expected = f"offset={len(seen)}"
        page.wait_for_url(lambda url, expected=expected: expected in url)
    assert pages == 3
    assert sorted(seen) == sorted(str(body["run_id"]) for body in bodies)
    assert len(set(seen)) == 7
    page.locator("a[rel=prev]").click()
    page.wait_for_url(lambda url: "offset=3" in url)
    assert len(shown_run_ids(page)) == 3
    # A later page does not poll for new runs (only the first page refreshes).
    assert page.locator("#runs-poll").count() == 0
    assert problems(page) == []


def wait_for_row(page: Page, run_id: str) -> None:
    deadline = time.monotonic() + LIVE_DEADLINE_SECONDS
    while run_id not in shown_run_ids(page):
        assert time.monotonic() < deadline, f"{run_id} did not appear without a reload"
        page.wait_for_timeout(200)


def test_new_runs_appear_without_reload_and_keep_the_scroll_position(
    server: ServerProcess, page: Page
) -> None:
    agent = f"live-{tag()}"
    create_batch(server, [new_run(agent_name=agent) for _ in range(60)])
    page.goto(f"{server.url}/runs?agent_name={agent}")
    assert len(shown_run_ids(page)) == 50
    assert page.locator("a[rel=next]").count() == 1
    page.evaluate("window.scrollTo(0, 600)")
    page.wait_for_function("window.scrollY >= 600")
    page.evaluate("window.notReloaded = true")
    url = page.url

    other = create(server, agent_name=f"other-{tag()}")  # does not match the filter
    first = create(server, agent_name=agent, status="failure")
    wait_for_row(page, str(first["run_id"]))
    assert shown_run_ids(page)[0] == first["run_id"]
    assert page.evaluate("window.notReloaded") is True
    assert page.url == url
    assert page.evaluate("window.scrollY") >= 600  # not back at the top
    assert str(other["run_id"]) not in shown_run_ids(page)

    second = create(server, agent_name=agent)  # the poller moved on: no duplicates
    wait_for_row(page, str(second["run_id"]))
    ids = shown_run_ids(page)
    assert ids[:2] == [second["run_id"], first["run_id"]]
    assert len(ids) == len(set(ids)) == 52
    assert page.evaluate("window.scrollY") > 0
    assert page.evaluate("window.notReloaded") is True
    assert problems(page) == []


def test_an_empty_list_fills_in_live(server: ServerProcess, page: Page) -> None:
    agent = f"empty-{tag()}"
    page.goto(f"{server.url}/runs?agent_name={agent}")
    assert shown_run_ids(page) == []
    assert page.locator("tr.runs-empty").is_visible()
    run = create(server, agent_name=agent)
    wait_for_row(page, str(run["run_id"]))
    assert not page.locator("tr.runs-empty").is_visible()
    assert problems(page) == []


def test_screenshots(server: ServerProcess, page: Page) -> None:
    agent = f"shots-{tag()}"
    statuses = ["success", "failure", "partial", "running", "timeout", "cancelled"]
    create_batch(
        server,
        [
            new_run(
                agent_name=agent,
                status=status,
                items_discovered=12,
                items_succeeded=9,
                items_failed=2,
                items_skipped=1,
                duration_ms=4200 * (index + 1),
            )
            for index, status in enumerate(statuses)
        ],
    )
    page.goto(f"{server.url}/runs")
    screenshot(page, "runs")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/runs?agent_name={agent}")
    assert page.locator("#f-agent_name").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page scrolls sideways on a phone"
    screenshot(page, "runs-phone")
    assert problems(page) == []


def test_the_rows_fragment_needs_a_session_when_auth_is_on(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = tmp_path_factory.mktemp("dash-runs-auth") / "telemetry.sqlite"
    env = {
        "TELEMETRY_API_AUTH_ENABLED": "true",
        "TELEMETRY_API_AUTH_TOKEN": "runs-page-token",
        "TELEMETRY_ALERT_INTERVAL_SECONDS": "0",
    }
    secured = ServerProcess(path, env).start()
    try:
        with httpx.Client(base_url=secured.url, follow_redirects=False) as client:
            fragment = client.get("/runs/-/rows", headers={"HX-Request": "true"})
            assert fragment.status_code == 401
            assert fragment.headers["hx-redirect"].startswith("/login")
            for path_ in ("/runs/-/rows", "/runs/x", "/runs?status=bogus"):
                assert client.get(path_).status_code == 303
            assert client.post("/runs/x/qc", data={"score": "3"}).status_code == 303
    finally:
        secured.stop()
