"""What every dashboard page shares: templates, formatting filters, security headers.

Pages are rendered server-side with Jinja2 (autoescaping everything: agent names, error
texts and JSON are attacker-controlled) and enhanced with htmx and uPlot, vendored under
``static/vendor`` (``manifest.json`` pins their versions and sha256). No inline script
runs on any page: data for charts travels in ``<script type="application/json">``
islands (not executed) read by our own ``static/*.js``, and htmx is configured to need
no ``eval``. So the Content-Security-Policy can be strict: scripts, styles, images and
requests from this server only, no inline scripts, no framing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from local_telemetry import __version__

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
MAX_FORM_BYTES = 64 * 1024
NONE = "\u2013"  # an en dash: no value


def fmt_rate(value: float | None) -> str:
    """A rate in [0, 1] as a percentage with one decimal (NONE for none)."""
    if value is None or not math.isfinite(value):
        return NONE
    return f"{value * 100:.1f}%"


def fmt_ms(value: float | None) -> str:
    """A duration in milliseconds, in the largest readable unit (NONE for none)."""
    if value is None or not math.isfinite(value):
        return NONE
    if value < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_cost(value: float | None) -> str:
    """US dollars (NONE for none)."""
    if value is None or not math.isfinite(value):
        return NONE
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


def fmt_int(value: int | None) -> str:
    """An integer with thousands separators (NONE for none)."""
    return NONE if value is None else f"{value:,}"


def fmt_time(stamp: str | None) -> str:
    """A stored UTC timestamp shown to the second, with its zone (NONE for none)."""
    if not stamp:
        return NONE
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp  # adopted text that is no timestamp: shown as it is (escaped)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_change(current: float | None, previous: float | None) -> str:
    """The relative change from ``previous`` to ``current`` ("" when not comparable)."""
    if current is None or previous is None or previous == 0:
        return ""
    change = (current - previous) / abs(previous)
    return f"{change * 100:+.1f}%"


def with_query(query: Mapping[str, Any], **changes: Any) -> str:
    """The query string of ``query`` with ``changes`` (``None`` removes a key)."""
    merged = {key: value for key, value in query.items() if value not in (None, "")}
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return urlencode(merged)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        rate=fmt_rate,
        ms=fmt_ms,
        cost=fmt_cost,
        int=fmt_int,
        time=fmt_time,
    )
    env.globals.update(change=fmt_change, with_query=with_query, version=__version__)
    return env


ENVIRONMENT = _environment()


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """``template`` rendered with ``context`` (plus ``request``, ``path`` and the CSRF
    token of this browser) as an HTML response with the dashboard's security headers."""
    from local_telemetry.dashboard.auth import csrf_token

    token, cookie = csrf_token(request)
    html = ENVIRONMENT.get_template(template).render(
        request=request,
        path=request.url.path,
        csrf_token=token,
        auth_enabled=request.app.state.local_telemetry.settings.api_auth_enabled,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers={**PAGE_HEADERS})
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if cookie is not None:
        cookie(response)
    return response


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (at most 64 KiB) as a dict; the
    last value of a repeated field wins. Anything else is an empty dict."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=100))
