"""KPI inputs per UTC hour of ``start_time`` (the dashboard's 24-hour charts).

``Store.kpi_inputs`` buckets by local day or week only; the dashboard charts a day hour by
hour. One range scan of the covering index ``idx_runs_kpi`` (whose first column is
``start_time``) aggregates per (hour, status) with the same aggregate columns as
``kpi_inputs``, so each hour's numbers are those ``GET /api/v1/kpis`` would give for it
(without QC reviews, which the hourly charts do not show).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from local_telemetry.storage.base import KpiInputs

# "YYYY-MM-DDTHH" of the stored UTC form ("YYYY-MM-DDTHH:MM:SS.ffffffZ").
_HOUR_SQL = "substr(r.start_time, 1, 13)"


def hourly_kpi_inputs(
    conn: sqlite3.Connection,
    where: str,
    params: Sequence[Any],
    aggregates: str,
    add_row: Callable[[KpiInputs, Sequence[Any]], None],
) -> dict[str, KpiInputs]:
    """KPI inputs per ``YYYY-MM-DDTHH`` (UTC) of the runs ``where`` selects: ``aggregates``
    are the KPI aggregate columns (after the status), ``add_row`` adds one row of them."""
    sql = (
        f"SELECT {_HOUR_SQL}, {aggregates}"
        # The planner does not see that the index covers the generated column.
        f" FROM agent_runs r INDEXED BY idx_runs_kpi {where} GROUP BY 1, 2"
    )
    hours: dict[str, KpiInputs] = {}
    for row in conn.execute(sql, list(params)):
        inputs = hours.get(row[0])
        if inputs is None:
            inputs = hours[row[0]] = KpiInputs()
        add_row(inputs, row[1:])
    return hours
