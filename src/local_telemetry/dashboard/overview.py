"""The Overview page ``/``: headline KPIs with their change, charts, agents, alerts.

GET parameters (carried by the URL, so a view can be shared): ``period`` (``24h``,
``7d``, ``30d`` or ``custom`` with ``from`` and ``to``, ISO 8601; without a zone UTC),
``agent_name`` and ``job_type``. A bad value is a 400 page saying what is wrong. The data
comes from ``series.overview_data`` on a reader thread, cached a few seconds
(``series.PageCache``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from local_telemetry.api.deps import state
from local_telemetry.dashboard import page_router, series
from local_telemetry.dashboard.web import render
from local_telemetry.storage.base import AlertFilter, Store

router = page_router()
FIRING_SHOWN = 10


def page_cache(request: Request) -> series.PageCache:
    """The app's cache of assembled page data (created on first use)."""
    cache: series.PageCache | None = getattr(request.app.state, "dashboard_page_cache", None)
    if cache is None:
        cache = series.PageCache()
        request.app.state.dashboard_page_cache = cache
    return cache


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
    cache = page_cache(request)
    key = ("overview", *query.cache_key())
    data: dict[str, Any] | None = cache.get(key)
    if data is None:
        data = await series.assemble(app_state, query, query.agent_name, by_agent=True)
        data["choices"] = await app_state.read(app_state.store.distinct_values)
        cache.put(key, data)
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
