"""``local-telemetry export runs|kpis`` and ``local-telemetry import``: moving runs out of
a server and back in.

Exports stream ``GET /api/v1/export/runs`` or ``/kpis`` into a file written atomically
(a temporary file in the same directory, fsync'd, then renamed), so an export that fails
or is interrupted leaves nothing at the output path. Imports read an export (JSON Lines,
CSV or Parquet) without holding it in memory and post it in batches to
``POST /api/v1/import/runs``, which stores every run with its own ``created_at`` and
``updated_at``. Rows are sent oldest first (the export lists newest first): the target
then gives runs of equal ``created_at`` the same relative order as the source, so a second
export from the target has the same bytes as the first.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import httpx
import orjson
import typer

from local_telemetry.cli.filters import (
    AgentNameOption,
    CreatedAfterOption,
    CreatedBeforeOption,
    FromOption,
    GroupByOption,
    JobTypeOption,
    ParentRunIdOption,
    RunIdOption,
    StartTimeFromOption,
    StartTimeToOption,
    StatusOption,
    ToOption,
    TzOption,
    kpi_params,
    run_params,
)
from local_telemetry.cli.remote import (
    EXIT_BAD_ARGUMENTS,
    JsonOption,
    Remote,
    TokenOption,
    UrlOption,
    fail,
    print_json,
)
from local_telemetry.cli.root import app
from local_telemetry.schemas import MAX_IMPORT_ROWS
from local_telemetry.storage.base import JSON_COLUMNS

if TYPE_CHECKING:
    from rich.progress import Progress

FORMATS = ("csv", "jsonl", "parquet")
EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
IMPORT_PATH = "/api/v1/import/runs"
# A batch is also sent once its JSON reaches this size, well below the server's default
# 32 MiB body limit, so runs with large payloads never make a request too big.
MAX_BATCH_BYTES = 8 * 1024 * 1024
READ_CHUNK = 1024 * 1024

export_app = typer.Typer(
    help="Export runs or KPI groups to a CSV, JSON Lines or Parquet file.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="csv, jsonl or parquet (default: from the file's extension, else csv).",
        show_default=False,
    ),
]
OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="File to write; '-' for stdout (default: runs-<UTC time>.<format> or kpis-..., here).",
        show_default=False,
    ),
]
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show a progress display on stderr (default: when stderr is a terminal).",
        show_default=False,
    ),
]


def _format_of(path: str | None, given: str | None, default: str | None) -> str | None:
    """``--format`` (checked), else the format of the file's extension, else ``default``."""
    if given is not None:
        if given.lower() not in FORMATS:
            fail(f"--format must be one of {', '.join(FORMATS)}, not {given!r}", 2)
        return given.lower()
    if path is not None and path != "-":
        found = EXTENSIONS.get(Path(path).suffix.lower())
        if found is not None:
            return found
    return default


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def _size(n: int) -> str:
    from rich.filesize import decimal

    return decimal(n)


# ----- export -----


class _CsvRecords:
    """Counts CSV records in a byte stream split anywhere: line ends outside quotes
    (a quoted field may hold line breaks; ``""`` toggles twice and so changes nothing)."""

    def __init__(self) -> None:
        self.quoted = False
        self.records = 0

    def feed(self, chunk: bytes) -> None:
        parts = chunk.split(b'"')
        for index, part in enumerate(parts):
            if index:
                self.quoted = not self.quoted
            if not self.quoted:
                self.records += part.count(b"\n")


@dataclass
class _Counter:
    """Rows seen so far in the streamed bytes of one format (``None``: not countable)."""

    export_format: str
    csv_records: _CsvRecords | None = None
    lines: int = 0

    def feed(self, chunk: bytes) -> None:
        if self.export_format == "jsonl":
            self.lines += chunk.count(b"\n")
        elif self.export_format == "csv":
            if self.csv_records is None:
                self.csv_records = _CsvRecords()
            self.csv_records.feed(chunk)

    @property
    def rows(self) -> int | None:
        if self.export_format == "jsonl":
            return self.lines
        if self.export_format == "csv":
            found = self.csv_records.records if self.csv_records else 0
            return max(found - 1, 0)  # the header
        return None


def _export_bars() -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[rows]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _stream_to(
    remote: Remote,
    path: str,
    params: dict[str, Any],
    sink: IO[bytes],
    counter: _Counter,
    what: str,
    progress: bool,
) -> int:
    """Copy the streamed export into ``sink``; return the bytes written."""
    written = 0
    bars = _export_bars() if progress else None
    with contextlib.ExitStack() as stack:
        task = None
        if bars is not None:
            stack.enter_context(bars)
            task = bars.add_task(f"exporting {what}", total=None, rows="")
        with remote.stream(path, params) as response:
            for chunk in response.iter_bytes(READ_CHUNK):
                sink.write(chunk)
                written += len(chunk)
                counter.feed(chunk)
                if bars is not None and task is not None:
                    rows = counter.rows
                    bars.update(
                        task,
                        completed=written,
                        rows="" if rows is None else f"{rows:,} rows",
                    )
    return written


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk (POSIX); a file
    # system that cannot fsync a directory still gets the written file.
    from local_telemetry.backup import fsync_directory

    with contextlib.suppress(OSError):
        fsync_directory(directory)


def _export(
    what: str,
    params: dict[str, Any],
    *,
    output: str | None,
    export_format: str | None,
    url: str | None,
    token: str | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Stream ``GET /api/v1/export/<what>`` to ``output`` (atomically) or stdout."""
    chosen = _format_of(output, export_format, "csv")
    assert chosen is not None
    to_stdout = output == "-"
    if to_stdout and as_json:
        fail("--json prints a summary on stdout; it cannot be used with --output -", 2)
    if output is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        output = f"{what}-{stamp}.{chosen}"
    params = {**params, "format": chosen}
    counter = _Counter(chosen)
    show = _show_progress(progress)
    endpoint = f"/api/v1/export/{what}"
    try:
        with Remote(url, token) as remote:
            if to_stdout:
                written = _stream_to(
                    remote, endpoint, params, sys.stdout.buffer, counter, what, show
                )
                sys.stdout.buffer.flush()
                target = "stdout"
            else:
                written = _write_atomically(
                    Path(output),
                    lambda sink: _stream_to(remote, endpoint, params, sink, counter, what, show),
                )
                target = output
    except KeyboardInterrupt:
        fail("interrupted" + ("" if to_stdout else f"; nothing was written to {output}"))
    except BrokenPipeError:
        fail("stdout was closed before the export ended")
    rows = counter.rows
    if rows is None and not to_stdout:
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(output).metadata.num_rows
    counted = "" if rows is None else f"{rows:,} "
    typer.echo(f"wrote {counted}{what} ({_size(written)}) to {target}", err=True)
    if as_json:
        print_json({"path": target, "format": chosen, "rows": rows, "bytes": written})


def _write_atomically(path: Path, write: Callable[[IO[bytes]], int]) -> int:
    """``write(file)`` into a temporary file next to ``path``, fsync'd and renamed onto
    ``path``; on any failure (or Ctrl-C) the temporary file is removed, ``path`` left
    as it was."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        fail(f"no such directory: {directory}", EXIT_BAD_ARGUMENTS)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        fail(f"cannot write in {directory}: {exc}")
    try:
        with os.fdopen(handle, "wb") as sink:
            written = write(sink)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)
    return written


@export_app.command("runs")
def export_runs(
    output: OutputOption = None,
    export_format: FormatOption = None,
    agent_name: AgentNameOption = None,
    job_type: JobTypeOption = None,
    run_id: RunIdOption = None,
    parent_run_id: ParentRunIdOption = None,
    status: StatusOption = None,
    created_after: CreatedAfterOption = None,
    created_before: CreatedBeforeOption = None,
    start_time_from: StartTimeFromOption = None,
    start_time_to: StartTimeToOption = None,
    progress: ProgressOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export the runs matching the filters (newest first) to a file.

    Streams GET /api/v1/export/runs: JSON Lines and Parquet keep every value as stored;
    CSV writes null as an empty cell (an empty string reads back as null). The file is
    written atomically: a failed or interrupted export leaves nothing at --output. One
    summary line goes to stderr; --json prints {"path", "format", "rows", "bytes"} on
    stdout. Load an export into another server with `local-telemetry import`.
    """
    params = run_params(
        agent_name=agent_name,
        job_type=job_type,
        run_id=run_id,
        parent_run_id=parent_run_id,
        status=status,
        created_after=created_after,
        created_before=created_before,
        start_time_from=start_time_from,
        start_time_to=start_time_to,
    )
    _export(
        "runs",
        params,
        output=output,
        export_format=export_format,
        url=url,
        token=token,
        as_json=as_json,
        progress=progress,
    )


@export_app.command("kpis")
def export_kpis(
    output: OutputOption = None,
    export_format: FormatOption = None,
    agent_name: AgentNameOption = None,
    job_type: JobTypeOption = None,
    start: FromOption = None,
    end: ToOption = None,
    group_by: GroupByOption = None,
    tz: TzOption = None,
    progress: ProgressOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export KPI groups (GET /api/v1/export/kpis) to a file: one row per group.

    Same parameters as GET /api/v1/kpis; written atomically like `export runs`.
    """
    params = kpi_params(
        agent_name=agent_name, job_type=job_type, start=start, end=end, group_by=group_by, tz=tz
    )
    _export(
        "kpis",
        params,
        output=output,
        export_format=export_format,
        url=url,
        token=token,
        as_json=as_json,
        progress=progress,
    )


# ----- import -----


class BadLine(ValueError):
    """A record of the file that is not a run (its 1-based line number and why)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line


def _boolean(cell: str) -> bool:
    if cell not in ("true", "false"):
        raise ValueError(f"expected true or false, not {cell!r}")
    return cell == "true"


def _number(cell: str) -> float:
    value = orjson.loads(cell)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"expected a number, not {cell!r}")
    return float(value)


def _text(cell: str) -> str:
    return cell


def _csv_converters() -> dict[str, Callable[[str], Any]]:
    """How to read each exported run column back from its CSV cell: the types are those
    of the Parquet export (``exports.run_arrow_type``, the one place run column types
    are defined); JSON fields are JSON text. Columns not listed are kept as text."""
    import pyarrow as pa

    from local_telemetry.exports import EXPORT_RUN_COLUMNS, run_arrow_type

    by_type: dict[pa.DataType, Callable[[str], Any]] = {
        pa.int64(): int,
        pa.float64(): _number,
        pa.bool_(): _boolean,
    }
    return {
        column: orjson.loads
        if column in JSON_COLUMNS
        else by_type.get(run_arrow_type(column), _text)
        for column in EXPORT_RUN_COLUMNS
    }


def _parquet_value(column: str, value: Any) -> Any:
    if value is not None and column in JSON_COLUMNS:
        return orjson.loads(value)
    return value


@dataclass
class _Index:
    """Where each record of a text file starts (and its line number), record ``i``
    ending where ``i + 1`` starts (the last one at ``end``): 16 bytes per record."""

    starts: array[int]
    lines: array[int]
    end: int


def _index_lines(source: IO[bytes], csv_records: bool) -> _Index:
    """Index the records of a JSON Lines file (one per non-blank line) or of a CSV file
    (line ends outside quotes; the header is record 0)."""
    starts: array[int] = array("q")
    lines: array[int] = array("q")
    offset = 0
    quoted = False
    record_start = 0
    record_line = 1
    for number, line in enumerate(source, start=1):
        if not quoted:
            record_start, record_line = offset, number
        offset += len(line)
        if csv_records:
            quoted ^= line.count(b'"') % 2 == 1
            if quoted:
                continue
        if line.strip():
            starts.append(record_start)
            lines.append(record_line)
    return _Index(starts, lines, offset)


def _records_backwards(source: IO[bytes], index: _Index, first: int) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of records ``first``.. in reverse order (last record first)."""
    for i in range(len(index.starts) - 1, first - 1, -1):
        start = index.starts[i]
        stop = index.starts[i + 1] if i + 1 < len(index.starts) else index.end
        source.seek(start)
        yield index.lines[i], source.read(stop - start)


Rows = Iterator[tuple[int, int, dict[str, Any]]]
"""(line number, bytes read for it, run) of every record, oldest first."""


def _jsonl_rows(source: IO[bytes], index: _Index) -> Rows:
    for line, data in _records_backwards(source, index, 0):
        try:
            run = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BadLine(line, f"not JSON ({exc})") from None
        if not isinstance(run, dict):
            raise BadLine(line, "not a JSON object")
        yield line, len(data), run


def _csv_rows(source: IO[bytes], index: _Index) -> Rows:
    if not index.starts:
        return
    source.seek(0)
    stop = index.starts[1] if len(index.starts) > 1 else index.end
    header = _csv_record(source.read(stop), 1)
    converters = _csv_converters()
    convert = [converters.get(column, _text) for column in header]
    for line, data in _records_backwards(source, index, 1):
        cells = _csv_record(data, line)
        if len(cells) != len(header):
            raise BadLine(line, f"{len(cells)} cells, the header has {len(header)}")
        run: dict[str, Any] = {}
        for column, read, cell in zip(header, convert, cells, strict=True):
            try:
                run[column] = None if cell == "" else read(cell)
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                raise BadLine(line, f"{column}: {exc}") from None
        yield line, len(data), run


def _csv_record(data: bytes, line: int) -> list[str]:
    try:
        text = data.decode("utf-8-sig" if line == 1 else "utf-8")
        records = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadLine(line, f"not a CSV record ({exc})") from None
    if len(records) != 1:
        raise BadLine(line, "not a CSV record")
    return records[0]


def _parquet_rows(path: Path) -> tuple[int, Rows]:
    """(row count, rows): row groups last first, each read whole (an export writes one
    per 5,000 runs) and its rows reversed; a row's "line" is its 1-based row number."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        fail(f"{path}: not a Parquet file ({exc})", EXIT_BAD_ARGUMENTS)
    metadata = parquet.metadata
    firsts = [0]
    for group in range(metadata.num_row_groups):
        firsts.append(firsts[-1] + metadata.row_group(group).num_rows)

    def rows() -> Rows:
        for group in range(metadata.num_row_groups - 1, -1, -1):
            table = parquet.read_row_group(group)
            columns = table.column_names
            records = table.to_pylist()
            for offset in range(len(records) - 1, -1, -1):
                line = firsts[group] + offset + 1
                try:
                    run = {c: _parquet_value(c, records[offset][c]) for c in columns}
                except orjson.JSONDecodeError as exc:
                    raise BadLine(line, f"JSON field is not JSON ({exc})") from None
                yield line, 1, run

    return metadata.num_rows, rows()


@dataclass
class _Totals:
    imported: int = 0
    skipped: int = 0


def _post_batch(
    remote: Remote, batch: list[tuple[int, dict[str, Any]]], body: bytes, totals: _Totals
) -> None:
    """Send one batch; a 422 names the file line of the first bad run."""
    try:
        response = remote.http.post(
            IMPORT_PATH, content=body, headers={"Content-Type": "application/json"}
        )
    except httpx.TransportError as exc:
        remote.unreachable(exc)
    if response.status_code == 422:
        raise _rejected(response, batch)
    answer = remote.check(response).json()
    totals.imported += answer["imported"]
    totals.skipped += answer["skipped_existing"]


def _rejected(response: httpx.Response, batch: list[tuple[int, dict[str, Any]]]) -> BadLine:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = detail[0].get("loc", [])
        if len(loc) >= 2 and isinstance(loc[1], int) and 0 <= loc[1] < len(batch):
            field = ".".join(str(p) for p in loc[2:]) or "run"
            return BadLine(batch[loc[1]][0], f"{field}: {detail[0].get('msg')}")
    return BadLine(batch[0][0], f"batch refused: {response.text[:500]}")


def _no_progress(_amount: int) -> None:
    return None


def _import_bars(unit_bytes: bool) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    amount = DownloadColumn() if unit_bytes else MofNCompleteColumn()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        amount,
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _send_all(
    remote: Remote, rows: Rows, batch_size: int, totals: _Totals, advance: Callable[[int], None]
) -> None:
    batch: list[tuple[int, dict[str, Any]]] = []
    parts: list[bytes] = []
    size = 0
    read = 0
    for line, length, run in rows:
        encoded = orjson.dumps(run)
        batch.append((line, run))
        parts.append(encoded)
        size += len(encoded) + 1
        read += length
        if len(batch) >= batch_size or size >= MAX_BATCH_BYTES:
            _post_batch(remote, batch, b"[" + b",".join(parts) + b"]", totals)
            advance(read)
            batch, parts, size, read = [], [], 0, 0
    if batch:
        _post_batch(remote, batch, b"[" + b",".join(parts) + b"]", totals)
        advance(read)


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A file written by `export runs`.")],
    import_format: FormatOption = None,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, max=MAX_IMPORT_ROWS, help="Runs per request (1-1000)."),
    ] = 500,
    progress: ProgressOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load runs exported by `export runs` into the server (POST /api/v1/import/runs).

    Reads JSON Lines, CSV or Parquet (--format, else the file's extension) without
    loading the file into memory. Every run keeps its created_at and updated_at; runs
    whose event_id the server already has are skipped, not overwritten. JSON Lines and
    Parquet are lossless; CSV cannot tell an empty string from null, so empty cells are
    imported as null. Only runs are restored: exports carry no run events and no QC
    reviews.

    Runs are sent in batches, oldest first (from the end of the file), so that runs with
    the same created_at keep their order. A bad line stops the import with exit status
    2 naming the line: the batches sent before it (the runs of later lines) stay stored,
    and running the same import again after fixing the file skips them.
    """
    if not path.is_file():
        fail(f"no such file: {path}", EXIT_BAD_ARGUMENTS)
    chosen = _format_of(str(path), import_format, None)
    if chosen is None:
        fail(f"cannot tell the format of {path}: pass --format csv|jsonl|parquet", 2)
    totals = _Totals()
    show = _show_progress(progress)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        remote = stack.enter_context(Remote(url, token))
        if chosen == "parquet":
            total, rows = _parquet_rows(path)
            unit_bytes = False
        else:
            source = stack.enter_context(path.open("rb"))
            index = _index_lines(source, csv_records=chosen == "csv")
            total, unit_bytes = index.end, True
            rows = _jsonl_rows(source, index) if chosen == "jsonl" else _csv_rows(source, index)
        advance: Callable[[int], None] = _no_progress
        if show:
            bars = stack.enter_context(_import_bars(unit_bytes))
            advance = partial(bars.advance, bars.add_task(f"importing {path.name}", total=total))
        try:
            _send_all(remote, rows, batch_size, totals, advance)
        except BadLine as exc:
            stack.close()  # the progress display ends before the error is printed
            typer.echo(
                f"imported {totals.imported:,} runs, skipped {totals.skipped:,} existing"
                " before the bad line (from later lines: runs are sent oldest first);"
                " they stay stored",
                err=True,
            )
            fail(f"{path}: {exc}", EXIT_BAD_ARGUMENTS)
        except typer.Exit:
            stack.close()
            if totals.imported or totals.skipped:
                typer.echo(
                    f"imported {totals.imported:,} runs before the failure; they stay stored",
                    err=True,
                )
            raise
        except KeyboardInterrupt:
            stack.close()
            fail(f"interrupted: {totals.imported:,} runs imported before it stay stored")
    if as_json:
        print_json(
            {
                "path": str(path),
                "format": chosen,
                "imported": totals.imported,
                "skipped_existing": totals.skipped,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    else:
        typer.echo(f"imported {totals.imported:,}, skipped {totals.skipped:,} existing")
