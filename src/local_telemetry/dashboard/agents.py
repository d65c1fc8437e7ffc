"""The Agent page ``/agents/{agent_name}``: one agent's KPIs over time, recent failures.

Same period selector as the overview (``period``, ``from``, ``to``, ``job_type``); an
agent the store has never seen is a 404 page. Data from ``series.agent_data`` on a
reader thread, kept fresh like the overview's (``page_cache.PageCache``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from local_telemetry.api.deps import state
from local_telemetry.dashboard import page_router, series
from local_telemetry.dashboard.overview import bad_query, page_cache
from local_telemetry.dashboard.web import render

router = page_router()


@router.get("/agents/{agent_name:path}")
async def agent_page(request: Request, agent_name: str) -> Response:
    """One agent's KPIs, charts and recent failures."""
    params = {k: v for k, v in request.query_params.items() if k != "agent_name"}
    try:
        query = series.parse_query(params)
    except series.BadQuery as error:
        return bad_query(request, str(error))
    app_state = state(request)

    async def build() -> dict[str, Any] | None:
        agents, job_types = await app_state.read(app_state.store.distinct_values)
        if agent_name not in agents:
            return None  # a 404 page (kept briefly like any view: agents rarely appear)
        now_query = series.parse_query(params)  # a relative period ends at the new now
        view = await series.assemble(app_state, now_query, agent_name, by_agent=False)
        view["failures"] = await app_state.read(
            series.recent_failures, app_state.store, agent_name, now_query.job_type
        )
        view["choices"] = (agents, job_types)
        return view

    key = ("agent", agent_name, *query.cache_key())
    data: dict[str, Any] | None = await page_cache(request).view(key, build)
    if data is None:
        return render(
            request,
            "overview_message.html",
            {
                "heading": "No such agent",
                "message": f"No run of an agent named {agent_name!r} is stored.",
                "back": "/",
            },
            status_code=404,
        )
    return render(
        request,
        "agent.html",
        {
            "agent_name": agent_name,
            "query": query,
            "params": query.params(),
            "periods": series.PERIOD_LABELS,
            "agent_choices": [],
            "job_type_choices": data["choices"][1],
            "view": data,
            "form_action": series.agent_href(agent_name),
            "show_agent_filter": False,
        },
    )
