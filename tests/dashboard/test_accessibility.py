"""Accessibility and responsiveness of every dashboard page, in Chromium.

Each page: ``<html lang>``, exactly one ``h1``, a skip link, a label for every form
control; Tab from the top reaches the skip link and then the navigation; no horizontal
scrolling at a 390 px phone width (wide tables scroll inside ``.table-wrap``); light
and dark themes follow the system setting, and every visible text keeps the WCAG AA
contrast (4.5:1, 3:1 for large text) against what is behind it, in both themes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page

from alert_support import evaluate, post_runs, put_rules
from dashboard_support import screenshot
from support import ServerProcess

AGENT = "invoice-extractor-eu-west-production"
OTHER_AGENT = "support ticket triage"
RUN_ID = "a11y-run-with-everything"
TOKEN = "a11y-dashboard-token"

Scheme = Literal["light", "dark"]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def realistic_runs() -> list[dict[str, Any]]:
    """A day of runs of two agents, every status, some long texts and JSON."""
    now = datetime.now(UTC)
    runs: list[dict[str, Any]] = []
    statuses = ("success", "success", "success", "failure", "partial", "timeout", "cancelled")
    for i in range(60):
        agent = AGENT if i % 3 else OTHER_AGENT
        start = now - timedelta(minutes=20 * i + 5)
        status = statuses[i % len(statuses)]
        run: dict[str, Any] = {
            "event_id": f"a11y-{i:03d}",
            "run_id": f"batch-2026-{i:04d}",
            "agent_name": agent,
            "job_type": "extract-and-validate" if i % 2 else "nightly reconciliation",
            "status": status,
            "start_time": stamp(start),
            "end_time": stamp(start + timedelta(seconds=30 + i * 7)),
            "items_discovered": 100 + i,
            "items_succeeded": 90 + i,
            "items_failed": i % 5,
            "cost_usd": 0.01 * (i + 1),
            "sla_target_seconds": 240,
            "resolution": "escalated" if status == "partial" else None,
            "tokens_input": 1000 + i,
            "tokens_output": 200 + i,
        }
        if status == "failure":
            run["error_summary"] = "Upstream API answered 503 Service Unavailable"
        runs.append({key: value for key, value in run.items() if value is not None})
    start = now - timedelta(minutes=2)
    runs.append(
        {
            "event_id": RUN_ID,
            "run_id": "detail-run-0001",
            "agent_name": AGENT,
            "job_type": "extract-and-validate",
            "status": "failure",
            "start_time": stamp(start),
            "end_time": stamp(start + timedelta(seconds=95)),
            "product": "Invoices",
            "platform": "linux",
            "host": "worker-eu-west-17.internal.example",
            "environment": "production",
            "trigger_type": "schedule",
            "item_name": "supplier-statement-2026-11.pdf",
            "input_summary": "37 pages, 2 tables, scanned at 300 dpi",
            "output_summary": "Extracted 112 line items; 3 failed validation",
            "error_summary": "ValidationError: total does not match the sum of line items",
            "error_details": 'Traceback (most recent call last):\n  File "extract.py", line 88,'
            " in validate\n    raise ValidationError(f'total {total} != {computed}')\n" + "x" * 300,
            "git_repo": "https://github.com/example/invoice-extractor",
            "git_branch": "main",
            "git_commit_hash": "0123456789abcdef0123456789abcdef01234567",
            "metrics_json": {"pages": 37, "line_items": 112, "model": "extractor-v4"},
            "context_json": {"customer": "ACME Corporation", "region": "eu-west"},
            "sla_target_seconds": 60,
            "cost_usd": 0.42,
        }
    )
    return runs


def seed(client: httpx.Client) -> None:
    post_runs(client, realistic_runs())
    response = client.post(
        f"/api/v1/runs/{RUN_ID}/events",
        json=[
            {"message": "started extraction", "level": "info", "data": {"pages": 37}},
            {"message": "validation failed", "level": "error"},
        ],
    )
    assert response.status_code in (200, 201), response.text
    response = client.post(
        f"/api/v1/runs/{RUN_ID}/qc", json={"score": 3, "notes": "Totals off", "reviewer": "kim"}
    )
    assert response.status_code in (200, 201), response.text
    put_rules(
        client,
        [
            {"name": "sla-daily", "kind": "sla_hit_rate_below", "threshold": 0.95,
             "window": "24h", "min_runs": 5},
            {"name": "failures", "kind": "failure_rate_above", "threshold": 0.9,
             "window": "24h", "agent_name": OTHER_AGENT},
        ],
    )  # fmt: skip
    evaluate(client)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("dash-a11y") / "telemetry.sqlite"
    server = ServerProcess(path, {"TELEMETRY_ALERT_INTERVAL_SECONDS": "0"})
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        seed(client)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """For the sign-in page (shown only when auth is on)."""
    path = tmp_path_factory.mktemp("dash-a11y-auth") / "telemetry.sqlite"
    server = ServerProcess(
        path,
        {
            "TELEMETRY_ALERT_INTERVAL_SECONDS": "0",
            "TELEMETRY_API_AUTH_ENABLED": "true",
            "TELEMETRY_API_AUTH_TOKEN": TOKEN,
        },
    )
    server.start()
    yield server
    server.stop()


PAGES = {
    "overview": "/",
    "runs": "/runs",
    "run-detail": f"/runs/{RUN_ID}",
    "agent": f"/agents/{quote(AGENT, safe='')}",
    "alerts": "/alerts",
    "login": "/login",
}


def url_of(name: str, server: ServerProcess, auth_server: ServerProcess) -> str:
    return (auth_server if name == "login" else server).url + PAGES[name]


@pytest.fixture
def servers(server: ServerProcess, auth_server: ServerProcess) -> tuple[ServerProcess, ...]:
    return server, auth_server


@contextmanager
def open_page(
    browser: Browser,
    url: str,
    *,
    width: int = 1280,
    scheme: Scheme = "light",
) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": width, "height": 900}, color_scheme=scheme, device_scale_factor=1
    )
    try:
        page = context.new_page()
        response = page.goto(url)
        assert response is not None
        assert response.status == 200, f"{url}: HTTP {response.status}"
        page.wait_for_load_state("networkidle")
        yield page
    finally:
        context.close()


STRUCTURE = """() => {
  const controls = [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden');
  const unlabelled = controls.filter((el) => {
    if (el.getAttribute('aria-label') && el.getAttribute('aria-label').trim()) return false;
    if (el.getAttribute('aria-labelledby')) {
      const ids = el.getAttribute('aria-labelledby').split(/\\s+/);
      if (ids.every((id) => document.getElementById(id))) return false;
    }
    if (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) return false;
    if (el.closest('label')) return false;
    return true;
  }).map((el) => el.outerHTML.slice(0, 120));
  const buttons = [...document.querySelectorAll('button, a[href]')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => !(el.innerText.trim() || el.getAttribute('aria-label')
                      || el.getAttribute('title')))
    .map((el) => el.outerHTML.slice(0, 120));
  const ids = [...document.querySelectorAll('[id]')].map((el) => el.id);
  const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
  const skip = document.querySelector('a.skip-link');
  return {
    lang: document.documentElement.getAttribute('lang'),
    h1: document.querySelectorAll('h1').length,
    title: document.title,
    skip: skip ? skip.getAttribute('href') : null,
    skipTarget: skip ? !!document.querySelector(skip.getAttribute('href')) : false,
    unlabelled, buttons, duplicates,
    images: [...document.querySelectorAll('img:not([alt])')].length,
  };
}"""


@pytest.mark.parametrize("name", list(PAGES))
def test_structure_lang_h1_skip_link_and_labels(
    browser: Browser, servers: tuple[ServerProcess, ServerProcess], name: str
) -> None:
    with open_page(browser, url_of(name, *servers)) as page:
        found = page.evaluate(STRUCTURE)
        assert found["lang"], f"{name}: <html> has no lang"
        assert found["h1"] == 1, f"{name}: {found['h1']} h1 elements"
        assert found["title"].strip(), f"{name}: no title"
        assert found["skip"] == "#main", f"{name}: no skip link"
        assert found["skipTarget"], f"{name}: the skip link's target is missing"
        assert found["unlabelled"] == [], f"{name}: controls without a label"
        assert found["buttons"] == [], f"{name}: links/buttons without a name"
        assert found["duplicates"] == [], f"{name}: duplicate ids"
        assert found["images"] == 0, f"{name}: images without alt"


FROM_THE_TOP = """() => {
  document.body.tabIndex = -1;
  document.body.focus();
  document.body.removeAttribute('tabindex');
}"""
FOCUSED = """() => {
  const el = document.activeElement;
  return el ? {tag: el.tagName, cls: el.className, href: el.getAttribute('href'),
               text: (el.innerText || '').trim(), id: el.id} : null;
}"""


@pytest.mark.parametrize("name", list(PAGES))
def test_tab_reaches_the_skip_link_then_the_navigation(
    browser: Browser, servers: tuple[ServerProcess, ServerProcess], name: str
) -> None:
    with open_page(browser, url_of(name, *servers)) as page:
        # From the top: focus the body itself (the sign-in page autofocuses its field).
        page.evaluate(FROM_THE_TOP)
        page.keyboard.press("Tab")
        first = page.evaluate(FOCUSED)
        assert first["cls"] == "skip-link", f"{name}: first Tab reached {first}"
        assert page.locator("a.skip-link").is_visible(), f"{name}: focused skip link hidden"
        nav = page.eval_on_selector_all(
            "header nav a[href]", "els => els.map(e => e.getAttribute('href'))"
        )
        assert "/runs" in nav, f"{name}: navigation {nav}"
        assert "/alerts" in nav, f"{name}: navigation {nav}"
        hrefs = []
        for _ in nav:
            page.keyboard.press("Tab")
            hrefs.append(page.evaluate(FOCUSED)["href"])
        assert hrefs == nav, f"{name}: Tab order {hrefs}, navigation {nav}"
        for _ in nav:
            page.keyboard.press("Shift+Tab")
        assert page.evaluate(FOCUSED)["cls"] == "skip-link", name
        page.keyboard.press("Enter")
        assert page.evaluate(FOCUSED)["id"] == "main", f"{name}: the skip link did not skip"


OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [];
  document.querySelectorAll('body *').forEach((el) => {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) return;
    if (box.right <= width + 1) return;
    if (el.closest('.table-wrap') && !el.classList.contains('table-wrap')) return;
    let inside = false;
    for (let p = el.parentElement; p; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden'].includes(style.overflowX) && p !== document.body
          && p !== document.documentElement) { inside = true; break; }
    }
    if (!inside) wide.push(`${el.tagName}.${el.className} right=${Math.round(box.right)}`);
  });
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 8)};
}"""


@pytest.mark.parametrize("name", list(PAGES))
def test_no_horizontal_scrolling_at_phone_width(
    browser: Browser, servers: tuple[ServerProcess, ServerProcess], name: str
) -> None:
    with open_page(browser, url_of(name, *servers), width=390) as page:
        found = page.evaluate(OVERFLOW)
        screenshot(page, f"a11y-{name}-phone")
        assert found["scroll"] <= found["width"] + 1, f"{name}: scrolls sideways: {found}"


LUMINANCE_JS = """
function parse(color) {
  const m = color.match(/rgba?\\(([^)]+)\\)/);
  if (!m) return null;
  const parts = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
  return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
}
function channel(c) {
  c = c / 255;
  return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
}
function luminance(c) {
  return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
}
function over(top, bottom) {
  const a = top.a;
  return {r: top.r * a + bottom.r * (1 - a), g: top.g * a + bottom.g * (1 - a),
          b: top.b * a + bottom.b * (1 - a), a: 1};
}
function background(el) {
  const layers = [];
  for (let p = el; p; p = p.parentElement) {
    const c = parse(getComputedStyle(p).backgroundColor);
    if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
  }
  let result = {r: 255, g: 255, b: 255, a: 1};
  const root = parse(getComputedStyle(document.documentElement).backgroundColor);
  if (root && root.a >= 1) result = root;
  for (let i = layers.length - 1; i >= 0; i--) result = over(layers[i], result);
  return result;
}
function ratio(fg, bg) {
  const a = luminance(fg) + 0.05, b = luminance(bg) + 0.05;
  return a > b ? a / b : b / a;
}
"""

THEME = (
    "() => {"
    + LUMINANCE_JS
    + """
  const bg = background(document.body);
  const fg = parse(getComputedStyle(document.body).color);
  return {bg: luminance(bg), fg: luminance(fg), ratio: ratio(fg, bg)};
}"""
)

CONTRAST = (
    "() => {"
    + LUMINANCE_JS
    + """
  const failures = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    if (!el || seen.has(el)) continue;
    seen.add(el);
    if (el.closest('script, style, template, noscript, .skip-link, .u-legend, canvas')) continue;
    if (!el.getClientRects().length || el.offsetParent === null) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || parseFloat(style.opacity) === 0) continue;
    const fg = parse(style.color);
    if (!fg) continue;
    const bg = background(el);
    const color = fg.a < 1 ? over(fg, bg) : fg;
    const size = parseFloat(style.fontSize);
    const bold = parseInt(style.fontWeight, 10) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    const needed = large ? 3 : 4.5;
    const r = ratio(color, bg);
    if (r < needed) {
      failures.push(`${el.tagName.toLowerCase()}.${el.className} "${node.textContent.trim()
        .slice(0, 30)}" ${style.color} on rgb(${Math.round(bg.r)},${Math.round(bg.g)},`
        + `${Math.round(bg.b)}) = ${r.toFixed(2)} < ${needed}`);
    }
  }
  const links = [...document.querySelectorAll('a[href]')].filter((a) => a.offsetParent !== null)
    .map((a) => ratio(parse(getComputedStyle(a).color), background(a)));
  return {failures: failures.slice(0, 12), links: links.length,
          minLink: links.length ? Math.min(...links) : null};
}"""
)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", list(PAGES))
def test_theme_follows_the_system_setting(
    browser: Browser, servers: tuple[ServerProcess, ServerProcess], name: str, scheme: Scheme
) -> None:
    with open_page(browser, url_of(name, *servers), scheme=scheme) as page:
        theme = page.evaluate(THEME)
        if scheme == "dark":
            assert theme["bg"] < 0.2, f"{name}: dark theme background is light: {theme}"
        else:
            assert theme["bg"] > 0.8, f"{name}: light theme background is dark: {theme}"
        assert theme["ratio"] >= 4.5, f"{name} ({scheme}): body text contrast {theme}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", list(PAGES))
def test_text_and_links_have_enough_contrast(
    browser: Browser, servers: tuple[ServerProcess, ServerProcess], name: str, scheme: Scheme
) -> None:
    with open_page(browser, url_of(name, *servers), scheme=scheme) as page:
        found = page.evaluate(CONTRAST)
        assert found["links"] > 0, name
        assert found["minLink"] >= 4.5, f"{name} ({scheme}): link contrast {found}"
        assert found["failures"] == [], f"{name} ({scheme}): low contrast text"
