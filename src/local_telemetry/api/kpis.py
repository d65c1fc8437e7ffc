"""``GET /api/v1/kpis``: KPIs of runs per agent, job type, day and/or week.

The store aggregates each group's inputs (``Store.kpi_inputs``) on a reader thread;
``kpis.py`` turns them into the KPIs. Nothing is precomputed, so a late PATCH is in the
next answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from local_telemetry import kpis
from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import Incoming, JSONBody, validate
from local_telemetry.api.runs import Reply, incoming, json_reply, query_parameters
from local_telemetry.schemas import KpiQuery, KpiResult
from local_telemetry.storage.base import KpiFilter


async def kpi_groups(app_state: AppState, incoming: Incoming) -> tuple[KpiQuery, list[Any]]:
    """The validated parameters and the groups (sorted by key) they select."""
    query = incoming.query
    data: dict[str, Any] = dict(query.items())
    getlist = getattr(query, "getlist", None)
    data["group_by"] = getlist("group_by") if getlist is not None else []
    params = validate(KpiQuery, data, location="query")
    kpi_filter = KpiFilter(
        agent_name=params.agent_name,
        job_type=params.job_type,
        start_time_from=params.from_,
        start_time_to=params.to,
    )
    group_by = tuple(params.group_by)
    inputs = await app_state.read(app_state.store.kpi_inputs, kpi_filter, group_by, params.tz)
    return params, kpis.groups_of(inputs, group_by)


async def get_kpis(app_state: AppState, incoming: Incoming) -> Reply:
    """KPIs of the runs the filters select, one entry per non-empty group, sorted by key."""
    params, groups = await kpi_groups(app_state, incoming)
    return 200, {
        "from": params.from_,
        "to": params.to,
        "group_by": list(params.group_by),
        "groups": groups,
    }


router = APIRouter(prefix="/api/v1/kpis", tags=["kpis"])


@router.get(
    "",
    summary="KPIs of runs, per agent, job type, day and/or week",
    response_model=None,
    responses={200: {"model": KpiResult}},
    openapi_extra=query_parameters(KpiQuery),
)
async def get_kpis_route(request: Request) -> JSONBody:
    """Filters: ``agent_name``, ``job_type``, ``from`` (inclusive) and ``to`` (exclusive)
    on ``start_time``. ``group_by`` (repeatable): agent_name, job_type, day, week; days
    and ISO weeks in the IANA zone ``tz`` (default UTC). 422 for an unknown group_by or
    zone, a timestamp without timezone, or ``from`` >= ``to``."""
    return json_reply(await get_kpis(state(request), incoming(request)))
