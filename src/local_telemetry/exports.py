"""Export encodings shared by the HTTP exports and the weekly KPI export file.

Rows (dicts) become the bytes of one format, chunk by chunk: CSV (RFC 4180, header row),
JSON Lines or Parquet (typed columns, one row group per chunk). ``api/exports.py``
streams them as HTTP responses; ``weekly_export.py`` writes them to files. KPI groups
(``GET /api/v1/kpis``) are flattened to one row each, ``status_counts`` as
``status_<name>`` columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from local_telemetry.storage.base import BOOL_COLUMNS, JSON_COLUMNS, REAL_COLUMNS, RUN_COLUMNS

ExportFormat = Literal["csv", "jsonl", "parquet"]

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
    """The encoder of a run export in ``export_format``."""
    if export_format == "csv":
        return CsvEncoder(EXPORT_RUN_COLUMNS)
    if export_format == "jsonl":
        return JsonLinesEncoder()
    return ParquetEncoder(RUN_SCHEMA, _run_parquet_value)


# ----- KPI groups -----


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
    """The Parquet column type of a KPI export column: string keys, int64 counts,
    float64 rates and averages."""
    if column in group_by:
        return pa.string()
    if column in KPI_INTEGERS or column.startswith("status_"):
        return pa.int64()
    return pa.float64()


def kpi_encoder(export_format: str, columns: Sequence[str], group_by: Sequence[str]) -> Encoder:
    """The encoder of a KPI export with ``columns`` (from :func:`flatten_kpi_groups`)."""
    if export_format == "csv":
        return CsvEncoder(columns)
    if export_format == "jsonl":
        return JsonLinesEncoder()
    schema = pa.schema([pa.field(c, kpi_arrow_type(c, group_by)) for c in columns])
    return ParquetEncoder(schema, lambda _c, v: v)
