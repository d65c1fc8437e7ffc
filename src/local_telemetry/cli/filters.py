"""The filter options several commands share, declared once.

``runs list``, ``runs tail`` and ``export runs`` filter runs like ``GET /api/v1/runs``;
``kpis`` and ``export kpis`` take the parameters of ``GET /api/v1/kpis`` (whose
``--agent-name`` and ``--job-type`` are the same options). Each option has
one name and one help text here, and :func:`run_params` / :func:`kpi_params` turn the
values into the query parameters under the server's names, so the commands cannot drift
apart. The server validates the values (a bad one is its 422, exit 2).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

# ----- runs (GET /api/v1/runs, GET /api/v1/export/runs) -----

AgentNameOption = Annotated[
    str | None, typer.Option("--agent-name", help="Only runs of this agent.", show_default=False)
]
JobTypeOption = Annotated[
    str | None, typer.Option("--job-type", help="Only runs of this job type.", show_default=False)
]
RunIdOption = Annotated[
    str | None, typer.Option("--run-id", help="Only runs with this run_id.", show_default=False)
]
ParentRunIdOption = Annotated[
    str | None,
    typer.Option("--parent-run-id", help="Only children of this run.", show_default=False),
]
StatusOption = Annotated[
    str | None,
    typer.Option(
        "--status",
        help="Only runs with this status (canonical or alias, e.g. success, failure).",
        show_default=False,
    ),
]
CreatedAfterOption = Annotated[
    str | None,
    typer.Option(
        "--created-after",
        help="Only runs recorded after this instant (ISO 8601 with timezone, exclusive).",
        show_default=False,
    ),
]
CreatedBeforeOption = Annotated[
    str | None,
    typer.Option(
        "--created-before",
        help="Only runs recorded before this instant (exclusive).",
        show_default=False,
    ),
]
StartTimeFromOption = Annotated[
    str | None,
    typer.Option(
        "--start-time-from", help="Only runs started at or after this.", show_default=False
    ),
]
StartTimeToOption = Annotated[
    str | None,
    typer.Option(
        "--start-time-to", help="Only runs started at or before this.", show_default=False
    ),
]


def run_params(
    *,
    agent_name: str | None = None,
    job_type: str | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    status: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    start_time_from: str | None = None,
    start_time_to: str | None = None,
) -> dict[str, Any]:
    """The run filters that are set, as query parameters of ``GET /api/v1/runs``."""
    params = {
        "agent_name": agent_name,
        "job_type": job_type,
        "run_id": run_id,
        "parent_run_id": parent_run_id,
        "status": status,
        "created_after": created_after,
        "created_before": created_before,
        "start_time_from": start_time_from,
        "start_time_to": start_time_to,
    }
    return {name: value for name, value in params.items() if value is not None}


# ----- KPIs (GET /api/v1/kpis, GET /api/v1/export/kpis) -----

FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Runs started at or after this (ISO 8601 with timezone).",
        show_default=False,
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", help="Runs started before this (exclusive).", show_default=False),
]
GROUP_BY_HELP = "agent_name, job_type, day or week; repeat for several."
GroupByOption = Annotated[
    list[str] | None, typer.Option("--group-by", help=GROUP_BY_HELP, show_default=False)
]
TzOption = Annotated[
    str | None,
    typer.Option(
        "--tz",
        help="IANA time zone of the day and week boundaries (default UTC).",
        show_default=False,
    ),
]


def kpi_params(
    *,
    agent_name: str | None,
    job_type: str | None,
    start: str | None,
    end: str | None,
    group_by: list[str] | None,
    tz: str | None,
) -> dict[str, Any]:
    """The KPI parameters that are set, as query parameters of ``GET /api/v1/kpis``
    (``group_by`` repeats the parameter; an empty list sends none)."""
    params = {
        "agent_name": agent_name,
        "job_type": job_type,
        "from": start,
        "to": end,
        "group_by": group_by,
        "tz": tz,
    }
    return {name: value for name, value in params.items() if value is not None}
