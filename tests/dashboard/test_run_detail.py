"""The Run detail page: every field, escaped errors, events, JSON, links, QC reviews."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from dashboard_support import problems, screenshot
from local_telemetry.dashboard.runs import duration_ms, pretty_json, web_link
from local_telemetry.storage.base import RUN_COLUMNS
from support import ServerProcess, new_run

METRICS = {"tokens": {"input": 1200, "output": 340}, "steps": [1, 2, 3], "note": "<i>x</i>"}
CONTEXT = {"ticket": "OPS-42", "labels": ["a", "b"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("dash-run-detail") / "telemetry.sqlite"
    started = ServerProcess(path, {"TELEMETRY_ALERT_INTERVAL_SECONDS": "0"})
    started.start()
    yield started
    started.stop()


def create(server: ServerProcess, **fields: Any) -> dict[str, Any]:
    body = new_run(**fields)
    response = httpx.post(f"{server.url}/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return body


@pytest.fixture(scope="module")
def rich_run(server: ServerProcess) -> dict[str, Any]:
    parent = create(server)
    run = create(
        server,
        status="failure",
        end_time="2026-01-12T10:31:05Z",
        error_summary="Step 3 failed: <script>alert(1)</script>",
        error_details="Traceback:\n  <b>bold</b>\n  line 2",
        metrics_json=METRICS,
        context_json=CONTEXT,
        git_repo="git@github.com:example/tools.git",
        git_commit_hash="0123456789abcdef0123456789abcdef01234567",
        git_branch="main",
        parent_run_id=parent["run_id"],
        items_discovered=5,
        items_succeeded=3,
        items_failed=2,
        resolution="failed",
        cost_usd=0.125,
        tokens_input=1200,
    )
    events = [
        {"level": "info", "message": "started", "timestamp": "2026-01-12T10:30:01Z"},
        {
            "level": "warning",
            "message": "slow <em>step</em>",
            "timestamp": "2026-01-12T10:30:30Z",
            "data": {"step": 3, "elapsed_ms": 2500},
        },
        {"level": "error", "message": "step 3 failed", "timestamp": "2026-01-12T10:31:00Z"},
    ]
    url = f"{server.url}/api/v1/runs/{run['event_id']}/events"
    assert httpx.post(url, json=events).status_code == 201
    return {**run, "parent": parent}


def test_unknown_run_is_a_404_page(server: ServerProcess, page: Page) -> None:
    response = httpx.get(f"{server.url}/runs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "Run not found" in response.text
    assert "content-security-policy" in response.headers
    answer = page.goto(f"{server.url}/runs/no-such-run")
    assert answer is not None
    assert answer.status == 404
    assert page.locator("h1").inner_text() == "Run not found"
    assert problems(page) == []


def test_detail_shows_every_field_escaped_error_events_and_json(
    server: ServerProcess, page: Page, rich_run: dict[str, Any]
) -> None:
    page.goto(f"{server.url}/runs/{rich_run['event_id']}")
    assert page.locator("h1 .run-id").inner_text() == rich_run["run_id"]
    assert page.locator("h1 .badge").inner_text() == "failure"

    terms = page.locator("dl.run-fields dt").all_inner_texts()
    shown_elsewhere = {"error_summary", "error_details", "metrics_json", "context_json"}
    assert [term for term in terms if term in RUN_COLUMNS] == [
        column for column in RUN_COLUMNS if column not in shown_elsewhere
    ]

    details = page.locator("pre.run-error-details")
    assert details.inner_text() == "Traceback:\n  <b>bold</b>\n  line 2"
    assert details.locator("b").count() == 0
    summary = page.locator("pre.run-error-summary")
    assert summary.inner_text() == "Step 3 failed: <script>alert(1)</script>"
    assert summary.locator("script").count() == 0

    assert page.locator("#metrics-json").inner_text() == json.dumps(METRICS, indent=2)
    assert page.locator("#context-json").inner_text() == json.dumps(CONTEXT, indent=2)

    events = page.locator("ol.run-events li.run-event")
    assert events.count() == 3
    assert events.locator(".badge").all_inner_texts() == ["info", "warning", "error"]
    assert events.locator(".run-event-message").all_inner_texts() == [
        "started",
        "slow <em>step</em>",
        "step 3 failed",
    ]
    assert events.nth(1).locator("pre").inner_text() == json.dumps(
        {"step": 3, "elapsed_ms": 2500}, indent=2
    )
    assert page.locator("ol.run-events em").count() == 0

    commit = page.locator("a", has_text="0123456789abcdef0123456789abcdef01234567").first
    assert commit.get_attribute("href") == (
        "https://github.com/example/tools/commit/0123456789abcdef0123456789abcdef01234567"
    )
    repo = page.locator("a", has_text="git@github.com:example/tools.git")
    assert repo.get_attribute("href") == "https://github.com/example/tools"
    parent = page.locator(".run-summary a", has_text=rich_run["parent"]["run_id"])
    assert parent.get_attribute("href") == f"/runs?run_id={rich_run['parent']['run_id']}"
    agent = page.locator(".run-summary a").first
    assert agent.get_attribute("href") == f"/agents/{rich_run['agent_name']}"
    assert "duration 65.0 s" in page.locator(".run-summary").inner_text()  # end - start
    screenshot(page, "run-detail")

    parent.click()  # the parent link lists that run
    page.wait_for_url(lambda url: "run_id=" in url)
    assert page.locator("#runs-body tr.run-row td.runs-id a").all_inner_texts() == [
        rich_run["parent"]["run_id"]
    ]
    assert problems(page) == []


def test_the_qc_form_stores_a_score(server: ServerProcess, page: Page) -> None:
    run = create(server)
    page.goto(f"{server.url}/runs/{run['event_id']}")
    page.select_option("#qc-score", "4")
    page.fill("#qc-reviewer", "Dana <QA>")
    page.fill("#qc-notes", "Good run, one <flaky> step.")
    page.click("button[type=submit] >> text=Add review")
    page.wait_for_url(f"{server.url}/runs/{run['event_id']}#qc")
    rows = page.locator("table.run-qc tbody tr")
    assert rows.count() == 1
    assert rows.first.locator("td").all_inner_texts()[:3] == [
        "4 / 5",
        "Dana <QA>",
        "Good run, one <flaky> step.",
    ]
    stored = httpx.get(f"{server.url}/api/v1/runs/{run['event_id']}/qc").json()
    assert [(r["score"], r["reviewer"], r["notes"]) for r in stored] == [
        (4, "Dana <QA>", "Good run, one <flaky> step.")
    ]
    page.reload()  # Post/Redirect/Get: a reload does not post again
    assert len(httpx.get(f"{server.url}/api/v1/runs/{run['event_id']}/qc").json()) == 1
    assert problems(page) == []


@contextmanager
def csrf_client(server: ServerProcess, event_id: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding the CSRF cookie the detail page set, and the form's token."""
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        page = client.get(f"/runs/{event_id}")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        yield client, token


def test_a_qc_post_without_the_csrf_token_is_refused(server: ServerProcess) -> None:
    run = create(server)
    with csrf_client(server, run["event_id"]) as (client, token):
        for form in ({"score": "5"}, {"score": "5", "csrf_token": "x" * 43}):
            response = client.post(f"/runs/{run['event_id']}/qc", data=form)
            assert response.status_code == 403
        foreign = client.post(
            f"/runs/{run['event_id']}/qc",
            data={"score": "5", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
    # A browser without the cookie (a forged cross-site form) is refused too.
    bare = httpx.post(
        f"{server.url}/runs/{run['event_id']}/qc", data={"score": "5", "csrf_token": token}
    )
    assert bare.status_code == 403
    assert httpx.get(f"{server.url}/api/v1/runs/{run['event_id']}/qc").json() == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"score": "9"}, "score"),
        ({"score": "0"}, "score"),
        ({"score": ""}, "score"),
        ({"score": "four"}, "score"),
        ({"score": "3", "reviewer": "r" * 300}, "reviewer"),
    ],
)
def test_an_invalid_review_rerenders_with_422(
    server: ServerProcess, form: dict[str, str], message: str
) -> None:
    run = create(server)
    with csrf_client(server, run["event_id"]) as (client, token):
        response = client.post(f"/runs/{run['event_id']}/qc", data={**form, "csrf_token": token})
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert f"{message}: " in response.text
    assert httpx.get(f"{server.url}/api/v1/runs/{run['event_id']}/qc").json() == []


def test_a_review_of_an_unknown_run_is_404(server: ServerProcess) -> None:
    run = create(server)
    with csrf_client(server, run["event_id"]) as (client, token):
        response = client.post("/runs/no-such-run/qc", data={"score": "3", "csrf_token": token})
    assert response.status_code == 404


def test_only_http_links_are_rendered() -> None:
    assert web_link("https://github.com/o/r") == "https://github.com/o/r"
    assert web_link("http://git.local/o/r") == "http://git.local/o/r"
    assert web_link("javascript:alert(1)") is None
    assert web_link("data:text/html,x") is None
    assert web_link(None) is None


def test_durations_and_json_text() -> None:
    assert duration_ms({"duration_ms": 1500}) == 1500.0
    started = {"start_time": "2026-01-12T10:00:00.000000Z"}
    assert duration_ms({**started, "duration_ms": 0, "end_time": None}) is None
    ended = {**started, "duration_ms": 0, "end_time": "2026-01-12T10:00:02.500000Z"}
    assert duration_ms(ended) == 2500.0
    assert pretty_json({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}'
    assert pretty_json("not json, adopted") == "not json, adopted"
