"""The Overview page ``/``: headline KPIs with their change, charts, agents, alerts.

GET parameters (carried by the URL, so a view can be shared): ``period`` (``24h``,
``7d``, ``30d`` or ``custom`` with ``from`` and ``to``, ISO 8601; without a zone UTC),
``agent_name`` and ``job_type``. A bad value is a 400 page saying what is wrong. The data
comes from ``series.assemble`` on reader threads, kept fresh by ``page_cache.PageCache``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from local_telemetry.api.deps import AppState, state
from local_telemetry.dashboard import page_router, series
from local_telemetry.dashboard.page_cache import Build, PageCache
from local_telemetry.dashboard.web import render
from local_telemetry.storage.base import AlertFilter, Store

router = page_router()
FIRING_SHOWN = 10
STANDARD_PERIODS = ("24h", "7d", "30d")


def page_cache(request: Request) -> PageCache:
    """The app's cache of assembled views (made by ``dashboard.install``)."""
    cache: PageCache = request.app.state.dashboard_page_cache
    return cache


def view_key(query: series.Query) -> tuple[Any, ...]:
    """The cache key of the overview of ``query``."""
    return ("overview", *query.cache_key())


def view_builder(app_state: AppState, params: dict[str, str]) -> Build:
    """Builds the overview data of ``params`` (a relative period ends at the build's now)."""

    async def build() -> dict[str, Any]:
        query = series.parse_query(params)
        view = await series.assemble(app_state, query, query.agent_name, by_agent=True)
        view["choices"] = await app_state.read(app_state.store.distinct_values)
        return view

    return build


def pin_standard_views(cache: PageCache, app_state: AppState) -> None:
    """Keep the overview of each standard period (no filters) built and fresh."""
    for period in STANDARD_PERIODS:
        params = {"period": period}
        cache.pin(view_key(series.parse_query(params)), view_builder(app_state, params))


def bad_query(request: Request, message: str) -> Response:
    """The 400 page of a query parameter that cannot be used."""
    return render(
        request,
        "overview_message.html",
        {"heading": "That view cannot be shown", "message": message, "back": "/"},
        status_code=400,
    )


def _firing(store: Store) -> list[dict[str, Any]]:
    found = store.list_alerts(AlertFilter(state="firing", limit=FIRING_SHOWN + 1))
    return [
        {**alert, "href": series.agent_href(alert["agent_name"]) if alert["agent_name"] else ""}
        for alert in found
    ]


@router.get("/")
async def overview_page(request: Request) -> Response:
    """The overview of the chosen period."""
    try:
        query = series.parse_query(request.query_params)
    except series.BadQuery as error:
        return bad_query(request, str(error))
    app_state = state(request)
    build = view_builder(app_state, dict(request.query_params))
    data: dict[str, Any] = await page_cache(request).view(view_key(query), build)
    firing = await app_state.read(_firing, app_state.store)  # never cached: alerts matter
    agents, job_types = data["choices"]
    return render(
        request,
        "overview.html",
        {
            "query": query,
            "params": query.params(),
            "periods": series.PERIOD_LABELS,
            "agent_choices": agents,
            "job_type_choices": job_types,
            "firing": firing[:FIRING_SHOWN],
            "more_firing": len(firing) > FIRING_SHOWN,
            "view": data,
            "form_action": "/",
            "show_agent_filter": True,
        },
    )
