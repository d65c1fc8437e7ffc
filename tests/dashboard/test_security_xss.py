"""Cross-page security: stored XSS payloads in every text field the dashboard shows,
the Content-Security-Policy and headers of every page, and a static review of the
templates, stylesheets and our own scripts (no inline code, nothing from other hosts).

Attacker payloads go into every field through the public API (runs, events, QC, alert
rules, and an alert of an agent whose name is a payload); each page is opened in
Chromium, which must run no payload, open no dialog and show the text literally.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from playwright.sync_api import Page

from alert_support import evaluate, post_runs, put_rules
from dashboard_support import problems
from support import ServerProcess

DASHBOARD = Path(__file__).resolve().parents[2] / "src" / "local_telemetry" / "dashboard"
TEMPLATES = DASHBOARD / "templates"
STATIC = DASHBOARD / "static"

PAYLOADS = (
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1">',
    "'><svg onload=window.__xss=1>",
    "javascript:window.__xss=1",
    "</script><script>window.__xss=1</script>",
    "{{7*7}}",
)
COMBINED = " | ".join(PAYLOADS)
ESCAPED_SCRIPT = "&lt;script&gt;window.__xss=1&lt;/script&gt;"
RAW_MARKUP = (
    "<script>window.__xss",
    "<img src=x",
    "<svg onload",
    "</script><script>",
)
AGENT = "xss-agent " + COMBINED  # an agent whose name is a payload
RULE = "xss-rule " + COMBINED
RUN_ID = "xss-run-payloads"  # event_ids cannot hold "/", so the URL of the run is plain
JS_REPO_RUN = "xss-run-js-repo"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

TEXT_FIELDS = (
    "product",
    "product_family",
    "platform",
    "subdomain",
    "website",
    "website_section",
    "item_name",
    "agent_owner",
    "input_summary",
    "output_summary",
    "source_ref",
    "target_ref",
    "error_summary",
    "error_details",
    "git_repo",
    "git_branch",
    "git_run_tag",
    "git_commit_author",
    "host",
    "environment",
    "trigger_type",
    "insight_id",
    "parent_run_id",
    "input_kind",
)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload_run(event_id: str, **fields: Any) -> dict[str, Any]:
    """A failed run of the payload agent with a payload in every text field."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    body: dict[str, Any] = {
        "event_id": event_id,
        "run_id": "run " + COMBINED,
        "agent_name": AGENT,
        "job_type": "job " + COMBINED,
        "status": "failure",
        "start_time": stamp(start),
        "end_time": stamp(start + timedelta(seconds=90)),
        "sla_target_seconds": 1,
        "items_discovered": 3,
        "items_failed": 1,
        "cost_usd": 0.25,
        "git_commit_hash": COMMIT,
        "metrics_json": {COMBINED: COMBINED, "nested": {COMBINED: [COMBINED, 1]}},
        "context_json": {COMBINED: COMBINED, "list": [COMBINED]},
    }
    body.update({name: f"{name} {COMBINED}" for name in TEXT_FIELDS})
    body.update(fields)
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("dash-xss") / "telemetry.sqlite"
    server = ServerProcess(path, {"TELEMETRY_ALERT_INTERVAL_SECONDS": "0"})
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        runs = [payload_run(RUN_ID), payload_run(JS_REPO_RUN, git_repo="javascript:alert(1)")]
        runs += [payload_run(f"xss-more-{uuid.uuid4().hex[:8]}") for _ in range(3)]
        post_runs(client, runs)
        events = [
            {"message": "event " + COMBINED, "level": "error", "data": {COMBINED: COMBINED}},
            {"message": COMBINED, "level": "warning"},
        ]
        response = client.post(f"/api/v1/runs/{RUN_ID}/events", json=events)
        assert response.status_code in (200, 201), response.text
        review = {"score": 2, "notes": "notes " + COMBINED, "reviewer": "rev " + COMBINED}
        response = client.post(f"/api/v1/runs/{RUN_ID}/qc", json=review)
        assert response.status_code in (200, 201), response.text
        put_rules(
            client,
            [{"name": RULE, "kind": "failure_rate_above", "threshold": 0.5, "window": "24h",
              "min_runs": 1}],
        )  # fmt: skip
        result = evaluate(client)
        assert any(a["agent_name"] == AGENT for a in result["changed"]), result
    yield server
    server.stop()


def pages() -> dict[str, str]:
    """Every dashboard page, with the payload agent where a page takes one."""
    agent = quote(AGENT, safe="")
    return {
        "overview": "/?" + urlencode({"agent_name": AGENT, "job_type": "job " + COMBINED}),
        "overview-all": "/",
        "agent": f"/agents/{agent}",
        "runs": "/runs",
        "runs-filtered": "/runs?" + urlencode({"agent_name": AGENT, "job_type": "job " + COMBINED}),
        "run-detail": f"/runs/{RUN_ID}",
        "run-detail-js-repo": f"/runs/{JS_REPO_RUN}",
        "alerts": "/alerts",
        "alerts-filtered": "/alerts?" + urlencode({"agent_name": AGENT, "rule_name": RULE}),
    }


PAGES = pages()

INJECTED_DOM = """() => {
  const found = [];
  document.querySelectorAll('img[src="x"], svg[onload], img[onerror]').forEach(
    (el) => found.push(el.outerHTML.slice(0, 120)));
  document.querySelectorAll('*').forEach((el) => {
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name)) found.push(el.tagName + ' ' + attr.name);
      if (['href', 'src', 'action', 'formaction'].includes(attr.name)
          && /^\\s*javascript:/i.test(attr.value)) found.push(el.tagName + ' ' + attr.value);
    }
  });
  document.querySelectorAll('script:not([src])').forEach((el) => {
    const type = (el.getAttribute('type') || '').toLowerCase();
    if (type !== 'application/json') found.push('inline script: ' + el.textContent.slice(0, 80));
  });
  return found;
}"""


def visit(page: Page, url: str) -> tuple[int, list[str]]:
    """Open ``url``; its status and the dialogs that opened."""
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    response = page.goto(url)
    page.wait_for_load_state("networkidle")
    return (response.status if response is not None else 0), dialogs


@pytest.mark.parametrize("name", list(PAGES))
def test_no_payload_runs_in_the_browser(server: ServerProcess, page: Page, name: str) -> None:
    status, dialogs = visit(page, server.url + PAGES[name])
    assert status == 200, f"{name}: HTTP {status}"
    assert page.evaluate("window.__xss") is None, f"{name}: a payload ran"
    assert dialogs == [], f"{name}: a dialog opened"
    assert page.evaluate(INJECTED_DOM) == [], f"{name}: markup from a payload is in the DOM"
    text = page.inner_text("body")
    assert "<script>window.__xss=1</script>" in text, f"{name}: the payload is not shown as text"
    assert "| 49" not in text, f"{name}: {{{{7*7}}}} was evaluated"
    assert problems(page) == [], name


def test_run_detail_shows_every_field_literally(server: ServerProcess, page: Page) -> None:
    status, dialogs = visit(page, f"{server.url}/runs/{RUN_ID}")
    assert status == 200
    text = page.inner_text("body")
    for name in (*TEXT_FIELDS, "run", "job", "event", "notes", "rev"):
        if name in ("git_repo",):
            continue  # a repo may be shown as a link label (the whole text is still checked)
        assert f"{name} {COMBINED}" in text, f"{name} not shown literally"
    assert "{{7*7}}" in text
    assert "| 49" not in text
    # JSON: keys and values pretty-printed, the payload text intact.
    assert text.count(COMBINED) >= 8
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    assert page.evaluate(INJECTED_DOM) == []
    assert problems(page) == []


def test_a_javascript_repo_is_never_a_link(server: ServerProcess, page: Page) -> None:
    status, _ = visit(page, f"{server.url}/runs/{JS_REPO_RUN}")
    assert status == 200
    assert "javascript:alert(1)" in page.inner_text("body")
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    assert [h for h in hrefs if h.strip().lower().startswith(("javascript:", "data:"))] == []


@pytest.mark.parametrize("name", list(PAGES))
def test_pages_answer_escaped_html_with_strict_headers(server: ServerProcess, name: str) -> None:
    response = httpx.get(server.url + PAGES[name], timeout=30)
    assert response.status_code == 200, name
    assert ESCAPED_SCRIPT in response.text, f"{name}: no escaped payload in the HTML"
    for raw in RAW_MARKUP:
        assert raw not in response.text, f"{name}: raw {raw!r} in the HTML"
    check_headers(response, name)


def check_headers(response: httpx.Response, name: str) -> None:
    csp = response.headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives.get("script-src") == ["'self'"], f"{name}: {csp!r}"
    assert directives.get("frame-ancestors") == ["'none'"], f"{name}: {csp!r}"
    assert directives.get("default-src") == ["'none'"], f"{name}: {csp!r}"
    assert "unsafe-inline" not in csp, name
    assert "unsafe-eval" not in csp, name
    assert "http:" not in csp, name
    assert "https:" not in csp, name
    assert "*" not in csp, name
    assert response.headers.get("x-content-type-options") == "nosniff", name
    assert response.headers["content-type"].startswith("text/html"), name


@pytest.mark.parametrize(
    "path",
    [
        "/runs/no-such-run",
        "/agents/no-such-agent",
        "/alerts?page=0",
        "/runs?limit=x",
        "/runs/-/rows",
        "/login",
    ],
)
def test_other_answers_carry_the_headers_too(server: ServerProcess, path: str) -> None:
    """Error pages, partials and redirects of the dashboard: no page without the CSP."""
    response = httpx.get(server.url + path, timeout=30)
    if response.status_code in (302, 303, 307):
        return  # a redirect renders nothing
    if response.headers.get("content-type", "").startswith("text/html"):
        check_headers(response, path)


# ----- static review of templates, stylesheets and scripts -----

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
OWN_JS = sorted(STATIC.glob("*.js"))
OWN_CSS = sorted(STATIC.glob("*.css"))
TEMPLATE_FILES = sorted(TEMPLATES.glob("**/*.html"))


def strip_jinja_comments(text: str) -> str:
    return re.sub(r"\{#.*?#\}", "", text, flags=re.DOTALL)


def test_there_is_something_to_review() -> None:
    assert len(TEMPLATE_FILES) >= 3
    assert OWN_JS
    assert OWN_CSS


@pytest.mark.parametrize("template", TEMPLATE_FILES, ids=lambda p: p.name)
def test_templates_have_no_inline_code_or_styles(template: Path) -> None:
    text = strip_jinja_comments(template.read_text())
    for attributes, body in SCRIPT_TAG.findall(text):
        external = re.search(r"\bsrc\s*=", attributes) is not None and body.strip() == ""
        island = re.search(r"""\btype\s*=\s*["']application/json["']""", attributes)
        assert external or island, f"{template.name}: inline <script{attributes}>"
    assert not re.search(r"<script\b(?![^>]*>)", text), f"{template.name}: odd <script"
    assert not re.search(r"\sstyle\s*=", text, re.IGNORECASE), f"{template.name}: style="
    assert not re.search(r"<style\b", text, re.IGNORECASE), f"{template.name}: <style>"
    handlers = re.findall(r"\son[a-z]+\s*=", text, re.IGNORECASE)
    assert handlers == [], f"{template.name}: event handler attributes {handlers}"
    assert not re.search(r"\bhx-on", text), f"{template.name}: hx-on needs eval"
    assert not re.search(r"\bjavascript:", text, re.IGNORECASE), template.name
    assert not re.search(r"\|\s*safe\b", text), f"{template.name}: |safe turns escaping off"
    assert "autoescape false" not in text, template.name
    assert "Markup(" not in text, template.name


@pytest.mark.parametrize("template", TEMPLATE_FILES, ids=lambda p: p.name)
def test_templates_load_nothing_from_other_hosts(template: Path) -> None:
    text = strip_jinja_comments(template.read_text())
    remote = re.findall(
        r"""\b(?:src|href|action|formaction|poster|data|hx-get|hx-post|hx-put|hx-delete|"""
        r"""hx-patch|srcset)\s*=\s*["']?\s*(?:https?:)?//""",
        text,
        re.IGNORECASE,
    )
    assert remote == [], f"{template.name}: {remote}"
    assert not re.search(r"@import", text), template.name


@pytest.mark.parametrize("script", OWN_JS, ids=lambda p: p.name)
def test_our_scripts_need_no_eval_and_load_nothing_remote(script: Path) -> None:
    text = script.read_text()
    code = re.sub(r"//[^\n]*", "", text)  # comments may mention anything
    for pattern in (
        r"\beval\s*\(",
        r"\bnew\s+Function\b",
        r"\bFunction\s*\(",
        r"\bset(?:Timeout|Interval)\s*\(\s*[\"'`]",
        r"\bdocument\.write",
        r"\.innerHTML\s*=",
        r"\.outerHTML\s*=",
        r"insertAdjacentHTML",
    ):
        assert not re.search(pattern, code), f"{script.name}: {pattern}"
    urls = re.findall(r"""["'`](?:https?:)?//[^"'`]*""", code)
    remote = [url for url in urls if not url.lstrip("\"'`").startswith("http://www.w3.org/")]
    assert remote == [], f"{script.name}: {remote}"


@pytest.mark.parametrize("sheet", OWN_CSS, ids=lambda p: p.name)
def test_our_stylesheets_load_nothing_remote(sheet: Path) -> None:
    text = sheet.read_text()
    assert not re.search(r"url\(\s*[\"']?\s*(?:https?:)?//", text), sheet.name
    assert not re.search(r"@import", text), sheet.name
    assert "expression(" not in text, sheet.name


# ----- reflected payloads: query parameters every page echoes -----

REFLECTED = {
    "overview-period": "/?" + urlencode({"period": COMBINED}),
    "overview-custom": "/?" + urlencode({"period": "custom", "from": COMBINED, "to": COMBINED}),
    "overview-agent": "/?" + urlencode({"agent_name": COMBINED}),
    "agent-missing": f"/agents/{quote('missing ' + COMBINED, safe='')}",
    "runs-bad-time": "/runs?" + urlencode({"created_after": COMBINED}),
    "runs-bad-limit": "/runs?" + urlencode({"limit": COMBINED, "agent_name": COMBINED}),
    "runs-rows": "/runs/-/rows?" + urlencode({"created_after": COMBINED}),
    "runs-rows-limit": "/runs/-/rows?" + urlencode({"limit": COMBINED}),
    "run-missing": f"/runs/{quote('missing ' + COMBINED.replace('/', ''), safe='')}",
    "alerts-bad-page": "/alerts?" + urlencode({"page": COMBINED}),
    "alerts-unknown-agent": "/alerts?" + urlencode({"agent_name": COMBINED}),
    "login-next": "/login?" + urlencode({"next": COMBINED}),
}


@pytest.mark.parametrize("name", list(REFLECTED))
def test_reflected_parameters_are_escaped(server: ServerProcess, page: Page, name: str) -> None:
    url = server.url + REFLECTED[name]
    response = httpx.get(url, timeout=30)
    assert response.status_code < 500, f"{name}: HTTP {response.status_code}"
    media = response.headers.get("content-type", "")
    if response.text:
        assert media, f"{name}: a body without a content type may be sniffed as HTML"
    if media.startswith("text/html"):
        check_headers(response, name)
        for raw in RAW_MARKUP:
            assert raw not in response.text, f"{name}: raw {raw!r} in the HTML"
    _, dialogs = visit(page, url)
    assert page.evaluate("window.__xss") is None, f"{name}: a payload ran"
    assert dialogs == [], name
    assert page.evaluate(INJECTED_DOM) == [], name


def test_live_refresh_swaps_in_payload_rows_inertly(server: ServerProcess, page: Page) -> None:
    """A payload run recorded while the list is open arrives through htmx, inert."""
    visit(page, f"{server.url}/runs")
    marker = f"live-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        post_runs(client, [payload_run(marker, run_id=f"{marker} {COMBINED}")])
    page.wait_for_selector(f"text={marker}", timeout=30_000)
    assert page.evaluate("window.__xss") is None
    assert page.evaluate(INJECTED_DOM) == []
    assert problems(page) == []
