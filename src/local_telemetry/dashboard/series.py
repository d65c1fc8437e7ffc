"""Data of the overview and agent pages, assembled from store reads.

One read per view: ``Store.kpi_inputs`` grouped by agent and UTC day (or, for windows of
up to two days, ``Store.hourly_kpi_inputs`` per UTC hour plus ``kpi_inputs`` per agent),
and one ungrouped ``kpi_inputs`` of the previous period of equal length. The groups are
merged here (:func:`merge`: counts and sums add up, durations concatenate), so the
headline of a window is ``kpis.group_kpis`` of the same inputs ``GET /api/v1/kpis``
aggregates for that window: the numbers agree (a sum of costs may differ in the last
bits of a float, never in what is shown).

Assembled views are kept fresh by ``page_cache.PageCache``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from local_telemetry import kpis
from local_telemetry.api.deps import AppState
from local_telemetry.dashboard.web import fmt_change, fmt_cost, fmt_int, fmt_ms, fmt_rate
from local_telemetry.storage.base import KpiFilter, KpiInputs, RunFilter, Store
from local_telemetry.timestamps import TimestampError, parse_instant, to_stored

PERIODS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
PERIOD_LABELS = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "custom": "Custom",
}
MAX_WINDOW = timedelta(days=400)
HOURLY_UP_TO = timedelta(days=2)  # windows up to this long are charted per hour
MAX_FILTER_CHARS = 200
# Statuses in stacking order (bottom first); any other status is stacked after them.
STATUSES = ("success", "partial", "failure", "timeout", "cancelled", "running")
STATUS_COLOURS = {
    "success": "--success",
    "partial": "--partial",
    "failure": "--failure",
    "timeout": "--timeout",
    "cancelled": "--cancelled",
    "running": "--running",
}
RECENT_FAILURES = 20


class BadQuery(ValueError):
    """A query parameter of a dashboard page is not valid (the page answers 400)."""


# ----- the period -----


@dataclass(frozen=True)
class Window:
    """Runs with ``start <= start_time < end``; charted per hour or per day (UTC)."""

    start: datetime
    end: datetime

    @property
    def hourly(self) -> bool:
        return self.end - self.start <= HOURLY_UP_TO

    @property
    def previous(self) -> Window:
        """The period of equal length just before."""
        return Window(self.start - (self.end - self.start), self.start)

    @property
    def start_stored(self) -> str:
        return to_stored(self.start)

    @property
    def end_stored(self) -> str:
        return to_stored(self.end)

    def kpi_filter(self, agent_name: str | None, job_type: str | None) -> KpiFilter:
        return KpiFilter(
            agent_name=agent_name,
            job_type=job_type,
            start_time_from=self.start_stored,
            start_time_to=self.end_stored,
        )

    def buckets(self) -> list[datetime]:
        """Start of every hour or day (UTC) the window touches, oldest first."""
        step = timedelta(hours=1) if self.hourly else timedelta(days=1)
        if self.hourly:
            at = self.start.replace(minute=0, second=0, microsecond=0)
        else:
            at = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        found = []
        while at < self.end:
            found.append(at)
            at += step
        return found


def _instant(text: str, name: str) -> datetime:
    """An ISO 8601 time; without a zone (an ``<input type=datetime-local>``) it is UTC."""
    text = text.strip()
    try:
        return parse_instant(text)
    except (TimestampError, ValueError, TypeError):
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{name} is not a date and time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Query:
    """The validated query parameters of the overview or agent page."""

    period: str
    window: Window
    agent_name: str | None
    job_type: str | None
    from_text: str  # as given (custom periods), for the form
    to_text: str

    def cache_key(self) -> tuple[Any, ...]:
        return (self.period, self.from_text, self.to_text, self.agent_name, self.job_type)

    def params(self) -> dict[str, str]:
        """The query parameters that reproduce this view (for links)."""
        found = {"period": self.period}
        if self.period == "custom":
            found.update({"from": self.from_text, "to": self.to_text})
        if self.agent_name:
            found["agent_name"] = self.agent_name
        if self.job_type:
            found["job_type"] = self.job_type
        return found


def parse_query(params: Mapping[str, str], now: datetime | None = None) -> Query:
    """The page's query (``period=24h|7d|30d|custom``, ``from``/``to`` for custom,
    ``agent_name``, ``job_type``); :class:`BadQuery` saying what is wrong."""
    period = params.get("period") or "24h"
    if period not in PERIOD_LABELS:
        raise BadQuery(f"period must be one of 24h, 7d, 30d or custom, not {period!r}")
    filters: dict[str, str | None] = {}
    for name in ("agent_name", "job_type"):
        value = params.get(name) or None
        if value is not None and (len(value) > MAX_FILTER_CHARS or "\x00" in value):
            raise BadQuery(f"{name} is not a valid name")
        filters[name] = value
    from_text = params.get("from") or ""
    to_text = params.get("to") or ""
    if period == "custom":
        if not from_text or not to_text:
            raise BadQuery("a custom period needs both from and to")
        start, end = _instant(from_text, "from"), _instant(to_text, "to")
        if start >= end:
            raise BadQuery("from must be before to")
        if end - start > MAX_WINDOW:
            raise BadQuery(f"a period can be at most {MAX_WINDOW.days} days long")
        try:
            to_stored(start - (end - start))  # the previous period must exist too
        except (OverflowError, ValueError):
            raise BadQuery("from is too far in the past") from None
    else:
        end = (now or datetime.now(UTC)).astimezone(UTC)
        start = end - PERIODS[period]
        from_text = to_text = ""
    return Query(
        period, Window(start, end), filters["agent_name"], filters["job_type"], from_text, to_text
    )


# ----- merging groups -----


def add_into(total: KpiInputs, part: KpiInputs) -> KpiInputs:
    """Add ``part``'s inputs to ``total`` (in place); returns ``total``."""
    total.total_runs += part.total_runs
    for status, count in part.status_counts.items():
        total.status_counts[status] = total.status_counts.get(status, 0) + count
    total.resolved += part.resolved
    total.escalated += part.escalated
    total.with_resolution += part.with_resolution
    total.self_corrected += part.self_corrected
    total.self_corrected_set += part.self_corrected_set
    total.sla_hits += part.sla_hits
    total.sla_measured += part.sla_measured
    total.tokens_input += part.tokens_input
    total.tokens_output += part.tokens_output
    total.cost_usd += part.cost_usd
    total.qc_score_sum += part.qc_score_sum
    total.qc_count += part.qc_count
    total.durations_ms.extend(part.durations_ms)
    return total


def merge(parts: Iterable[KpiInputs]) -> KpiInputs:
    """One group's inputs from the inputs of groups that split it (a new object)."""
    total = KpiInputs()
    for part in parts:
        add_into(total, part)
    return total


def merge_by(groups: Mapping[tuple[str, ...], KpiInputs], position: int) -> dict[str, KpiInputs]:
    """``groups`` merged by the key field at ``position``."""
    merged: dict[str, KpiInputs] = {}
    for key, inputs in groups.items():
        add_into(merged.setdefault(key[position], KpiInputs()), inputs)
    return merged


# ----- KPIs -----


def success_rate(status_counts: Mapping[str, int]) -> float | None:
    """Runs with status ``success`` / completed runs (status not ``running``)."""
    return kpis.rate(status_counts.get("success", 0), kpis.completed_runs(dict(status_counts)))


def kpis_of(inputs: KpiInputs) -> dict[str, Any]:
    """``kpis.group_kpis`` of ``inputs`` plus ``success_rate``."""
    found = kpis.group_kpis({}, inputs)
    found["success_rate"] = success_rate(inputs.status_counts)
    return found


# (key, label, format, kind of change: "relative" or "points")
HEADLINE: tuple[tuple[str, str, Callable[[Any], str], str], ...] = (
    ("total_runs", "Runs", fmt_int, "relative"),
    ("success_rate", "Success rate", fmt_rate, "points"),
    ("escalation_rate", "Escalation rate", fmt_rate, "points"),
    ("sla_hit_rate", "SLA hit rate", fmt_rate, "points"),
    ("avg_qc_score", "Avg QC score", lambda v: "\u2013" if v is None else f"{v:.2f}", "relative"),
    ("cost_usd", "Cost", fmt_cost, "relative"),
    ("cost_per_resolved_run", "Cost per resolved run", fmt_cost, "relative"),
    ("p95_duration_ms", "p95 duration", fmt_ms, "relative"),
)


def _points(current: float | None, previous: float | None) -> str:
    if current is None or previous is None:
        return ""
    return f"{(current - previous) * 100:+.1f} pp"


def headline(now: Mapping[str, Any], before: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The headline KPIs (``now``, ``before``: :func:`kpis_of` the window and the
    previous period): key, label, shown value, raw value and change from the previous
    period ("" when not comparable)."""
    cards = []
    for key, label, shown, kind in HEADLINE:
        value, earlier = now[key], before[key]
        change = _points(value, earlier) if kind == "points" else fmt_change(value, earlier)
        cards.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "text": shown(value),
                "previous_text": shown(earlier),
                "change": change,
            }
        )
    return cards


def agent_href(name: str) -> str:
    """The agent page of ``name`` (URL-encoded: any character may be in a name)."""
    return "/agents/" + quote(name, safe="")


def run_href(event_id: str) -> str:
    return "/runs/" + quote(event_id, safe="")


def agent_rows(per_agent: Mapping[str, KpiInputs]) -> list[dict[str, Any]]:
    """The agent table: one row of KPIs per agent, most runs first."""
    rows = []
    for name, inputs in per_agent.items():
        row = kpis_of(inputs)
        row["agent_name"] = name
        row["href"] = agent_href(name)
        rows.append(row)
    rows.sort(key=lambda row: (-row["total_runs"], row["agent_name"]))
    return rows


# ----- series -----


def _bucket_key(moment: datetime, hourly: bool) -> str:
    return moment.strftime("%Y-%m-%dT%H") if hourly else moment.strftime("%Y-%m-%d")


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def chart_series(window: Window, buckets: Mapping[str, KpiInputs]) -> dict[str, Any]:
    """The charts' data (the JSON island): ``x`` (bucket starts, Unix seconds) and per
    chart its series (label, CSS colour variable, values; ``None`` for no value)."""
    starts = window.buckets()
    keys = [_bucket_key(at, window.hourly) for at in starts]
    inputs = [buckets.get(key) or KpiInputs() for key in keys]
    seen = {status for part in buckets.values() for status in part.status_counts}
    statuses = [s for s in STATUSES if s in seen] + sorted(seen - set(STATUSES))
    if not statuses:
        statuses = ["success"]
    extra = iter(("--chart-5", "--chart-4", "--chart-6", "--chart-1"))
    runs = [
        {
            "label": status,
            "color": STATUS_COLOURS.get(status) or next(extra, "--chart-6"),
            "values": [part.status_counts.get(status, 0) for part in inputs],
        }
        for status in statuses
    ]
    per_bucket = [kpis_of(part) for part in inputs]
    unit = "hour" if window.hourly else "day"
    return {
        "unit": unit,
        "x": [int(at.timestamp()) for at in starts],
        "charts": {
            "runs": {"kind": "stacked", "format": "int", "series": runs},
            "rates": {
                "kind": "line",
                "format": "rate",
                "series": [
                    {
                        "label": "SLA hit rate",
                        "color": "--chart-1",
                        "values": [_clean(k["sla_hit_rate"]) for k in per_bucket],
                    },
                    {
                        "label": "Failure rate",
                        "color": "--chart-2",
                        "values": [_clean(k["failure_rate"]) for k in per_bucket],
                    },
                ],
            },
            "cost": {
                "kind": "bars",
                "format": "cost",
                "series": [
                    {
                        "label": f"Cost per {unit}",
                        "color": "--chart-3",
                        "values": [_clean(k["cost_usd"]) for k in per_bucket],
                    }
                ],
            },
            "duration": {
                "kind": "line",
                "format": "ms",
                "series": [
                    {
                        "label": "p50 duration",
                        "color": "--chart-1",
                        "values": [k["p50_duration_ms"] for k in per_bucket],
                    },
                    {
                        "label": "p95 duration",
                        "color": "--chart-4",
                        "values": [k["p95_duration_ms"] for k in per_bucket],
                    },
                ],
            },
        },
    }


def _peak(values: list[Any], starts: list[datetime], unit: str) -> tuple[str, Any] | None:
    numbers = [(v, i) for i, v in enumerate(values) if v is not None]
    if not numbers:
        return None
    value, index = max(numbers)
    return starts[index].strftime("%Y-%m-%d %H:00 UTC" if unit == "hour" else "%Y-%m-%d"), value


def chart_summaries(window: Window, data: dict[str, Any], found: dict[str, Any]) -> dict[str, str]:
    """A sentence per chart saying what it shows (its text alternative)."""
    unit = data["unit"]
    starts = window.buckets()
    charts = data["charts"]
    columns = zip(*(s["values"] for s in charts["runs"]["series"]), strict=True)
    totals = [sum(column) for column in columns]
    counts = ", ".join(
        f"{s['label']} {fmt_int(sum(s['values']))}" for s in charts["runs"]["series"]
    )
    runs = found["total_runs"]
    summaries = {
        "runs": f"Runs per {unit}, stacked by status: {fmt_int(runs)} in total ({counts}).",
    }
    peak = _peak(totals, starts, unit)
    if peak and runs:
        summaries["runs"] += f" Busiest {unit}: {peak[0]} with {fmt_int(peak[1])} runs."
    summaries["rates"] = (
        f"SLA hit rate and failure rate per {unit}; over the period"
        f" {fmt_rate(found['sla_hit_rate'])} and {fmt_rate(found['failure_rate'])}."
    )
    cost_peak = _peak(charts["cost"]["series"][0]["values"], starts, unit)
    summaries["cost"] = f"Cost per {unit}: {fmt_cost(found['cost_usd'])} in total."
    if cost_peak and runs:
        summaries["cost"] += f" Highest {unit}: {cost_peak[0]} ({fmt_cost(cost_peak[1])})."
    summaries["duration"] = (
        f"p50 and p95 run duration per {unit}; over the period"
        f" {fmt_ms(found['p50_duration_ms'])} and {fmt_ms(found['p95_duration_ms'])}."
    )
    return summaries


# ----- the views (blocking: run them on a reader thread) -----


def _window_inputs(
    store: Store, query: Query, agent_name: str | None, by_agent: bool
) -> tuple[dict[str, KpiInputs], dict[str, KpiInputs]]:
    """Inputs of the query's window per chart bucket and (``by_agent``) per agent."""
    window = query.window
    kpi_filter = window.kpi_filter(agent_name, query.job_type)
    if window.hourly:
        buckets = store.hourly_kpi_inputs(kpi_filter)
        # The window's totals come from kpi_inputs (with QC reviews), not from the hours.
        if by_agent:
            grouped = store.kpi_inputs(kpi_filter, ("agent_name",), "UTC")
            return buckets, {key[0]: inputs for key, inputs in grouped.items()}
        return buckets, {"": merge(store.kpi_inputs(kpi_filter, (), "UTC").values())}
    if by_agent:
        grouped = store.kpi_inputs(kpi_filter, ("agent_name", "day"), "UTC")
        return merge_by(grouped, 1), merge_by(grouped, 0)
    grouped = store.kpi_inputs(kpi_filter, ("day",), "UTC")
    return merge_by(grouped, 0), {"": merge(grouped.values())}


def previous_kpis(store: Store, query: Query, agent_name: str | None) -> dict[str, Any]:
    """:func:`kpis_of` the period before the window (blocking)."""
    kpi_filter = query.window.previous.kpi_filter(agent_name, query.job_type)
    return kpis_of(merge(store.kpi_inputs(kpi_filter, (), "UTC").values()))


def current_view(
    store: Store, query: Query, agent_name: str | None, by_agent: bool
) -> dict[str, Any]:
    """The window's part of a view (blocking): totals, chart data and summaries, the
    agent rows (``by_agent``); :func:`finish` adds the headline."""
    buckets, per_agent = _window_inputs(store, query, agent_name, by_agent)
    total = kpis_of(merge(per_agent.values()))
    data = chart_series(query.window, buckets)
    return {
        "start": query.window.start_stored,
        "end": query.window.end_stored,
        "unit": data["unit"],
        "total": total,
        "chart_data": data,
        "summaries": chart_summaries(query.window, data, total),
        "agents": agent_rows(per_agent) if by_agent else [],
    }


def finish(view: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    """``view`` (of :func:`current_view`) with its headline against ``previous``."""
    view["headline"] = headline(view["total"], previous)
    return view


async def assemble(
    app_state: AppState, query: Query, agent_name: str | None, by_agent: bool
) -> dict[str, Any]:
    """A view, its window and the previous period read on two reader threads at once."""
    store = app_state.store
    view, previous = await asyncio.gather(
        app_state.read(current_view, store, query, agent_name, by_agent),
        app_state.read(previous_kpis, store, query, agent_name),
    )
    return finish(view, previous)


def overview_data(store: Store, query: Query) -> dict[str, Any]:
    """Everything the overview shows of ``query``'s window (blocking store reads)."""
    view = current_view(store, query, query.agent_name, by_agent=True)
    return finish(view, previous_kpis(store, query, query.agent_name))


def recent_failures(store: Store, agent_name: str, job_type: str | None) -> list[dict[str, Any]]:
    """The agent's latest runs with status failure or timeout, newest first (blocking)."""
    failures: list[dict[str, Any]] = []
    for status in ("failure", "timeout"):
        failures += store.list_runs(
            RunFilter(
                agent_name=agent_name, job_type=job_type, status=status, limit=RECENT_FAILURES
            )
        )
    failures.sort(key=lambda run: (run["created_at"] or "", run["start_time"] or ""), reverse=True)
    return [{**run, "href": run_href(run["event_id"])} for run in failures[:RECENT_FAILURES]]
