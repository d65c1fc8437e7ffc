"""The Alerts page ``/alerts``: the rules in force, what fires now and the history.

Read-only: rules are replaced through ``PUT /api/v1/alerts/rules`` (the page shows how).
The history lists resolved alerts newest first, ``PAGE_SIZE`` a page, filtered by the
GET parameters ``agent_name`` and ``rule_name`` (exact names, as in the API) and paged
by ``page``; the URL carries them, so a view can be shared. A bad parameter is a 400
page, not a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from local_telemetry import alerts
from local_telemetry.api.alerts import load_rules
from local_telemetry.api.deps import state
from local_telemetry.dashboard import page_router
from local_telemetry.dashboard.web import NONE, fmt_cost, fmt_ms, fmt_rate, render
from local_telemetry.storage.base import AlertFilter, Store

PAGE_SIZE = 50
MAX_PAGE = 100_000
MAX_NAME = 256

KIND_LABELS = {
    "sla_hit_rate_below": "SLA hit rate below",
    "failure_rate_above": "Failure rate above",
    "escalation_rate_above": "Escalation rate above",
    "failure_rate_spike": "Failure rate spike",
    "duration_above_baseline": "Duration above baseline",
    "cost_above_baseline": "Cost above baseline",
}


class BadQuery(ValueError):
    """A GET parameter of the page that cannot be used (400)."""


@dataclass(frozen=True)
class HistoryQuery:
    """The validated filters and page of the history."""

    agent: str | None
    rule: str | None
    page: int

    def params(self) -> dict[str, str]:
        """The non-default parameters, as the URL carries them."""
        found: dict[str, str] = {}
        if self.agent:
            found["agent_name"] = self.agent
        if self.rule:
            found["rule_name"] = self.rule
        if self.page > 1:
            found["page"] = str(self.page)
        return found


def _name(value: str | None, what: str) -> str | None:
    if value is None or value.strip() == "":
        return None
    if len(value) > MAX_NAME:
        raise BadQuery(f"The {what} filter is longer than {MAX_NAME} characters.")
    if "\x00" in value:
        raise BadQuery(f"The {what} filter contains a NUL character.")
    return value


def parse_query(query: Any) -> HistoryQuery:
    """``agent_name``, ``rule_name`` and ``page`` from the query string; :class:`BadQuery`."""
    raw_page = query.get("page")
    page = 1
    if raw_page not in (None, ""):
        if not raw_page.isdigit() or len(raw_page) > 9:
            raise BadQuery("The page must be a whole number from 1.")
        page = int(raw_page)
        if not 1 <= page <= MAX_PAGE:
            raise BadQuery(f"The page must be between 1 and {MAX_PAGE}.")
    return HistoryQuery(
        agent=_name(query.get("agent_name"), "agent"),
        rule=_name(query.get("rule_name"), "rule"),
        page=page,
    )


def agent_href(name: str) -> str:
    """The agent page of ``name`` (every character that is not unreserved encoded)."""
    return "/agents/" + quote(name, safe="")


def measure(kind: str, value: float | None) -> str:
    """A value of ``kind``'s measure, readable (rate, duration or cost)."""
    if value is None:
        return NONE
    if kind == "duration_above_baseline":
        return fmt_ms(value)
    if kind == "cost_above_baseline":
        return fmt_cost(value)
    return fmt_rate(value)


def condition(kind: str, threshold: float) -> str:
    """When a rule of ``kind`` fires, e.g. "< 90.0%" or "> 1.5 x baseline"."""
    if kind == "sla_hit_rate_below":
        return f"< {fmt_rate(threshold)}"
    if kind in alerts.RATE_KINDS:
        return f"> {fmt_rate(threshold)}"
    return f"> {threshold:g} \u00d7 baseline"


def since(stamp: str | None, now: datetime) -> str:
    """How long ago ``stamp`` was, roughly ("5 min", "3.2 h", "2 d")."""
    if not stamp:
        return NONE
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return NONE
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _span((now - moment).total_seconds())


def between(start: str | None, end: str | None) -> str:
    """How long an alert fired."""
    if not start or not end:
        return NONE
    try:
        first, last = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError:
        return NONE
    return _span((last - first).total_seconds())


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def rule_row(rule: alerts.AlertRule) -> dict[str, Any]:
    """A rule as the rules table shows it."""
    return {
        "name": rule.name,
        "kind": rule.kind,
        "kind_label": KIND_LABELS.get(rule.kind, rule.kind),
        "condition": condition(rule.kind, rule.threshold),
        "threshold": f"{rule.threshold:g}",
        "window": rule.window,
        "baseline": rule.baseline or NONE,
        "min_runs": rule.min_runs,
        "agent_name": rule.agent_name,
        "agent_href": agent_href(rule.agent_name) if rule.agent_name is not None else None,
        "enabled": rule.enabled,
    }


def alert_row(alert: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A stored alert as the firing list and the history table show it."""
    kind = str(alert["kind"])
    baseline = alert["baseline"]
    threshold = float(alert["threshold"])
    if kind in alerts.BASELINE_KINDS and baseline is not None:
        limit = measure(kind, threshold * float(baseline))
        compared = f"{threshold:g} \u00d7 baseline {measure(kind, float(baseline))} = {limit}"
    elif kind in alerts.BASELINE_KINDS:
        compared = f"{threshold:g} \u00d7 baseline"
    else:
        compared = measure(kind, threshold)
    sign = "<" if kind == "sla_hit_rate_below" else ">"
    return {
        **alert,
        "kind_label": KIND_LABELS.get(kind, kind),
        "agent_href": agent_href(str(alert["agent_name"])),
        "value_text": measure(kind, alert["value"]),
        "sign": sign,
        "compared": compared,
        "since": since(alert["fired_at"], now),
        "lasted": between(alert["fired_at"], alert["resolved_at"]),
    }


def read_page(store: Store, query: HistoryQuery) -> dict[str, Any]:
    """Everything the page shows, read in one go (blocking: run on a reader thread)."""
    saved = store.get_alert_rules()
    rules = load_rules(store)
    firing = store.open_alerts()
    history = store.list_alerts(
        AlertFilter(
            state="resolved",
            rule_name=query.rule,
            agent_name=query.agent,
            limit=PAGE_SIZE + 1,
            offset=(query.page - 1) * PAGE_SIZE,
        )
    )
    return {"built_in": saved is None, "rules": rules, "firing": firing, "history": history}


def _link(query: HistoryQuery, page: int) -> str:
    params = {**query.params(), "page": str(page)}
    if page <= 1:
        params.pop("page")
    text = "&".join(f"{quote(key)}={quote(value, safe='')}" for key, value in params.items())
    return "/alerts" + (f"?{text}" if text else "")


router = page_router()


@router.get("/alerts")
async def alerts_page(request: Request) -> Response:
    """The Alerts page (400 for a bad filter or page)."""
    try:
        query = parse_query(request.query_params)
    except BadQuery as exc:
        failed: dict[str, Any] = {"bad_query": str(exc), "query": {}}
        return render(request, "alerts.html", failed, status_code=400)
    app_state = state(request)
    data = await app_state.read(read_page, app_state.store, query)
    now = datetime.now(UTC)
    firing = sorted(
        (alert_row(alert, now) for alert in data["firing"]),
        key=lambda row: (str(row["fired_at"]), int(row["id"])),
        reverse=True,
    )
    history = [alert_row(alert, now) for alert in data["history"][:PAGE_SIZE]]
    has_next = len(data["history"]) > PAGE_SIZE
    rules = [rule_row(rule) for rule in data["rules"]]
    rule_names = sorted({rule["name"] for rule in rules} | {a["rule_name"] for a in firing})
    context: dict[str, Any] = {
        "bad_query": None,
        "query": {"agent": query.agent or "", "rule": query.rule or ""},
        "filtered": bool(query.agent or query.rule),
        "built_in": data["built_in"],
        "rules": rules,
        "rule_names": rule_names,
        "firing": firing,
        "history": history,
        "page": query.page,
        "previous_href": _link(query, query.page - 1) if query.page > 1 else None,
        "next_href": _link(query, query.page + 1) if has_next else None,
        "api_base": str(request.base_url).rstrip("/"),
    }
    return render(request, "alerts.html", context)
