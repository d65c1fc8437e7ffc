"""``GET /api/v1/export/runs`` and ``/api/v1/export/kpis``: CSV, JSON Lines or Parquet.

Run exports take the filters of ``GET /api/v1/runs`` (validated the same way) but no
page: every matching run, newest first. ``limit`` and ``offset`` are ignored. The store
yields runs in chunks (``Store.iter_runs``, keyset pagination); each chunk is read and
encoded on a reader thread and sent before the next is read, so memory stays bounded
whatever the number of rows. KPI exports flatten the groups of ``GET /api/v1/kpis``
(same parameters): one row per group, ``status_counts`` as ``status_<name>`` columns.
The encoders live in ``local_telemetry/exports.py`` (shared with the weekly KPI export).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import Incoming, validate
from local_telemetry.api.kpis import kpi_groups
from local_telemetry.api.runs import incoming, public_run, query_parameters
from local_telemetry.exports import (
    Encoder,
    ExportFormat,
    flatten_kpi_groups,
    kpi_encoder,
    run_encoder,
)
from local_telemetry.schemas import KpiQuery, RunQuery
from local_telemetry.storage.base import RunFilter

CHUNK_SIZE = 5000
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}


class ExportFormatQuery(BaseModel):
    """The ``format`` parameter of every export."""

    model_config = ConfigDict(extra="ignore")

    format: ExportFormat = "csv"


class RunExportQuery(ExportFormatQuery):
    """Documented parameters of ``GET /api/v1/export/runs`` (OpenAPI only)."""

    agent_name: str | None = None
    job_type: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None
    status: str | None = None
    created_before: str | None = None
    created_after: str | None = None
    start_time_from: str | None = None
    start_time_to: str | None = None


class KpiExportQuery(KpiQuery):
    """Documented parameters of ``GET /api/v1/export/kpis`` (OpenAPI only)."""

    format: ExportFormat = "csv"


# ----- responses -----


def _disposition(name: str, export_format: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}.{export_format}"'}


async def _stream(
    app_state: AppState, chunks: Iterator[list[dict[str, Any]]], encoder: Encoder
) -> AsyncIterator[bytes]:
    """Each chunk read and encoded on a reader thread, then sent; the trailer last."""

    def step() -> bytes | None:
        rows = next(chunks, None)
        return None if rows is None else encoder.encode(rows)

    while True:
        data = await app_state.read(step)
        if data is None:
            break
        if data:
            yield data
    tail = await app_state.read(encoder.finish)
    if tail:
        yield tail


def _export_format(query: Any) -> str:
    return validate(ExportFormatQuery, dict(query.items()), location="query").format


async def export_runs(app_state: AppState, incoming: Incoming) -> StreamingResponse:
    """Every run the filters of ``GET /api/v1/runs`` select, in the format asked."""
    data = {k: v for k, v in incoming.query.items() if k not in ("limit", "offset", "format")}
    query = validate(RunQuery, data, location="query")
    export_format = _export_format(incoming.query)
    run_filter = RunFilter(**query.model_dump())
    encoder = run_encoder(export_format)

    def public_chunks() -> Iterator[list[dict[str, Any]]]:
        for chunk in app_state.store.iter_runs(run_filter, CHUNK_SIZE):
            yield [public_run(run, app_state) for run in chunk]

    return StreamingResponse(
        _stream(app_state, public_chunks(), encoder),
        media_type=MEDIA_TYPES[export_format],
        headers=_disposition("runs", export_format),
    )


async def export_kpis(app_state: AppState, incoming: Incoming) -> StreamingResponse:
    """The groups of ``GET /api/v1/kpis`` (same parameters), one row each."""
    export_format = _export_format(incoming.query)
    params, groups = await kpi_groups(app_state, incoming)
    group_by = list(params.group_by)
    columns, rows = flatten_kpi_groups(groups, group_by)
    encoder = kpi_encoder(export_format, columns, group_by)
    return StreamingResponse(
        _stream(app_state, iter([rows]), encoder),
        media_type=MEDIA_TYPES[export_format],
        headers=_disposition("kpis", export_format),
    )


# ----- routes -----

router = APIRouter(prefix="/api/v1/export", tags=["exports"])

_FORMATS = ", ".join(MEDIA_TYPES)


def _export_responses() -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media: {} for media in MEDIA_TYPES.values()}}}


@router.get(
    "/runs",
    summary="Export runs (CSV, JSON Lines, Parquet), streamed",
    response_class=StreamingResponse,
    responses=_export_responses(),
    openapi_extra=query_parameters(RunExportQuery),
)
async def export_runs_route(request: Request) -> StreamingResponse:
    """Every run matching the filters of ``GET /api/v1/runs``, newest first, streamed;
    ``format`` csv (default), jsonl or parquet. No paging: ``limit`` and ``offset`` are
    ignored. JSONL lines equal ``GET /api/v1/runs/{event_id}``; CSV has a header row,
    JSON fields as JSON text and null as an empty cell; Parquet is typed."""
    return await export_runs(state(request), incoming(request))


@router.get(
    "/kpis",
    summary="Export KPI groups (CSV, JSON Lines, Parquet)",
    response_class=StreamingResponse,
    responses=_export_responses(),
    openapi_extra=query_parameters(KpiExportQuery),
)
async def export_kpis_route(request: Request) -> StreamingResponse:
    """The groups of ``GET /api/v1/kpis`` (same parameters, plus ``format``), one row
    each: group keys, the scalar KPIs, then ``status_<name>`` counts."""
    return await export_kpis(state(request), incoming(request))
