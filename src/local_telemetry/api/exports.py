"""``GET /api/v1/export/runs`` and ``/api/v1/export/kpis``: CSV, JSON Lines or Parquet.

Run exports take the filters of ``GET /api/v1/runs`` (validated the same way) but no
page: every matching run, newest first. ``limit`` and ``offset`` are ignored. The store
yields runs in chunks (``Store.iter_runs``, keyset pagination); each chunk is read and
encoded on a reader thread and sent before the next is read, so memory stays bounded
whatever the number of rows. KPI exports flatten the groups of ``GET /api/v1/kpis``
(same parameters): one row per group, ``status_counts`` as ``status_<name>`` columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import Incoming, validate
from local_telemetry.api.kpis import kpi_groups
from local_telemetry.api.runs import incoming, public_run, query_parameters
from local_telemetry.schemas import KpiQuery, RunQuery
from local_telemetry.storage.base import (
    BOOL_COLUMNS,
    JSON_COLUMNS,
    REAL_COLUMNS,
    RUN_COLUMNS,
    RunFilter,
)

ExportFormat = Literal["csv", "jsonl", "parquet"]
CHUNK_SIZE = 5000
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
EXPORT_RUN_COLUMNS: tuple[str, ...] = (*RUN_COLUMNS, "commit_url", "repo_url")
# Integer columns of a run (the others not boolean, real or JSON are text).
INT_COLUMNS: frozenset[str] = frozenset(
    {
        "items_discovered",
        "items_succeeded",
        "items_failed",
        "items_skipped",
        "duration_ms",
        "api_retry_count",
        "tokens_input",
        "tokens_output",
        "sla_target_seconds",
    }
)
# Scalar KPIs of a group, in the order of GET /api/v1/kpis (status_counts flattened).
KPI_INT_COLUMNS = ("total_runs", "completed_runs")
KPI_COLUMNS: tuple[str, ...] = (
    "total_runs",
    "completed_runs",
    "resolution_rate",
    "escalation_rate",
    "failure_rate",
    "self_correction_rate",
    "sla_hit_rate",
    "avg_duration_ms",
    "p50_duration_ms",
    "p95_duration_ms",
    "tokens_input",
    "tokens_output",
    "cost_usd",
    "cost_per_resolved_run",
    "avg_qc_score",
    "qc_count",
)
KPI_INTEGERS = frozenset(
    {"total_runs", "completed_runs", "p50_duration_ms", "p95_duration_ms"}
    | {"tokens_input", "tokens_output", "qc_count"}
)


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


# ----- encoders: rows (dicts) to the bytes of one format, chunk by chunk -----


def _csv_cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in JSON_COLUMNS or column in REAL_COLUMNS or isinstance(value, float):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class Encoder:
    """Turns chunks of rows into bytes; ``finish`` gives the trailing bytes."""

    def encode(self, rows: Sequence[dict[str, Any]]) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        return b""


class CsvEncoder(Encoder):
    """RFC 4180 CSV with a header row; null is an empty cell, JSON values JSON text,
    booleans ``true``/``false``."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.header_sent = False

    def encode(self, rows: Sequence[dict[str, Any]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        if not self.header_sent:
            writer.writerow(self.columns)
            self.header_sent = True
        for row in rows:
            writer.writerow([_csv_cell(c, row.get(c)) for c in self.columns])
        return out.getvalue().encode()

    def finish(self) -> bytes:
        return self.encode(()) if not self.header_sent else b""


class JsonLinesEncoder(Encoder):
    """One JSON object per line."""

    def encode(self, rows: Sequence[dict[str, Any]]) -> bytes:
        return b"".join(orjson.dumps(row) + b"\n" for row in rows)


class _Sink:
    """A write-only file collecting what ParquetWriter writes until drained."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class ParquetEncoder(Encoder):
    """Parquet, one row group per chunk, streamed as each group is written."""

    def __init__(self, schema: pa.Schema, convert: Callable[[str, Any], Any]) -> None:
        self.schema = schema
        self.convert = convert
        self.sink = _Sink()
        self.writer = pq.ParquetWriter(self.sink, schema, compression="zstd")

    def encode(self, rows: Sequence[dict[str, Any]]) -> bytes:
        if rows:
            columns = [
                pa.array([self.convert(f.name, row.get(f.name)) for row in rows], type=f.type)
                for f in self.schema
            ]
            self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
        return self.sink.drain()

    def finish(self) -> bytes:
        self.writer.close()
        return self.sink.drain()


def run_arrow_type(column: str) -> pa.DataType:
    """The Parquet column type of a run field."""
    if column in INT_COLUMNS:
        return pa.int64()
    if column in REAL_COLUMNS:
        return pa.float64()
    if column in BOOL_COLUMNS:
        return pa.bool_()
    return pa.string()


RUN_SCHEMA = pa.schema([pa.field(c, run_arrow_type(c)) for c in EXPORT_RUN_COLUMNS])


def _run_parquet_value(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in JSON_COLUMNS:
        return orjson.dumps(value).decode()
    if column in REAL_COLUMNS:
        return float(value)
    return value


def run_encoder(export_format: str) -> Encoder:
    if export_format == "csv":
        return CsvEncoder(EXPORT_RUN_COLUMNS)
    if export_format == "jsonl":
        return JsonLinesEncoder()
    return ParquetEncoder(RUN_SCHEMA, _run_parquet_value)


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


def flatten_kpi_groups(
    groups: list[dict[str, Any]], group_by: Sequence[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of a KPI export: group keys, scalar KPIs, ``status_<name>``."""
    statuses = sorted({s for g in groups for s in g["status_counts"]})
    columns = [*group_by, *KPI_COLUMNS, *(f"status_{s}" for s in statuses)]
    rows = []
    for group in groups:
        row = {key: group[key] for key in (*group_by, *KPI_COLUMNS)}
        for status in statuses:
            row[f"status_{status}"] = group["status_counts"].get(status, 0)
        rows.append(row)
    return columns, rows


def kpi_arrow_type(column: str, group_by: Sequence[str]) -> pa.DataType:
    if column in group_by:
        return pa.string()
    if column in KPI_INTEGERS or column.startswith("status_"):
        return pa.int64()
    return pa.float64()


async def export_kpis(app_state: AppState, incoming: Incoming) -> StreamingResponse:
    """The groups of ``GET /api/v1/kpis`` (same parameters), one row each."""
    export_format = _export_format(incoming.query)
    params, groups = await kpi_groups(app_state, incoming)
    group_by = list(params.group_by)
    columns, rows = flatten_kpi_groups(groups, group_by)
    encoder: Encoder
    if export_format == "csv":
        encoder = CsvEncoder(columns)
    elif export_format == "jsonl":
        encoder = JsonLinesEncoder()
    else:
        schema = pa.schema([pa.field(c, kpi_arrow_type(c, group_by)) for c in columns])
        encoder = ParquetEncoder(schema, lambda _c, v: v)
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
