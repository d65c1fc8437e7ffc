"""Copy a SQLite store into a PostgreSQL one (``local-telemetry migrate-data``).

Every table is copied as stored: runs (every column, timestamps and JSON text
unchanged, ``duration_ms_supplied`` and the outcome fields), run events, QC reviews,
``server_state`` (the alert rules) and alerts, each with its id, so event, QC and alert
ids stay the same; the identity sequences are moved past the copied ids afterwards.
``run_counts``/``run_counts_hourly`` are recomputed from the copied runs at the end (the
PostgreSQL store adds to them on insert; copying rows directly does not).

The source is read with keyset pagination on each table's key inside one SQLite read
transaction (a consistent snapshot); each batch is written in one PostgreSQL
transaction with ``INSERT … ON CONFLICT DO NOTHING``. A row whose key is already in the
target is left alone, which makes an interrupted copy resumable: run it again and it
re-scans, skips what is there and copies the rest. The target should therefore be empty
or a previous partial copy of the same source; anything else shows up in the
verification, which compares per table the row counts and a checksum of every column
of every row (in key order) between source and target.

No server should write to either database while the copy runs.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

from local_telemetry.config import POSTGRES_SCHEMES
from local_telemetry.storage.postgres import PostgresStore
from local_telemetry.storage.sqlite import SQLiteStore

SQLITE_SCHEME = "sqlite:///"
DEFAULT_BATCH_SIZE = 5000


@dataclass(frozen=True)
class CopiedTable:
    """A table copied row by row: its name and the key its rows are read in order of."""

    name: str
    key: str
    # Whether ``key`` is an identity column whose sequence must pass the copied ids.
    identity: bool = True


# Parents before children (events and QC reviews reference runs).
TABLES: tuple[CopiedTable, ...] = (
    CopiedTable("agent_runs", "id"),
    CopiedTable("run_events", "id"),
    CopiedTable("agent_qc", "id"),
    CopiedTable("server_state", "key", identity=False),
    CopiedTable("alerts", "id"),
)

# Derived tables, recomputed in the target from the copied runs: (table, key, source
# query of the expected content, in key order).
COUNT_TABLES: tuple[tuple[str, str, str], ...] = (
    (
        "run_counts",
        "agent_name",
        "SELECT agent_name, COUNT(*) FROM agent_runs GROUP BY agent_name ORDER BY agent_name",
    ),
    (
        "run_counts_hourly",
        "hour",
        "SELECT substr(created_at, 1, 13) AS hour, COUNT(*) FROM agent_runs"
        " GROUP BY hour ORDER BY hour",
    ),
)

_RECOUNT_SQL = (
    "LOCK TABLE agent_runs IN SHARE MODE",
    "DELETE FROM run_counts",
    "INSERT INTO run_counts(agent_name, runs)"
    " SELECT agent_name, COUNT(*) FROM agent_runs GROUP BY agent_name",
    "DELETE FROM run_counts_hourly",
    "INSERT INTO run_counts_hourly(hour, runs)"
    " SELECT substr(created_at, 1, 13), COUNT(*) FROM agent_runs GROUP BY 1",
)


class MigrateDataError(Exception):
    """The copy could not run or broke off (the command exits 1)."""


class BadArguments(MigrateDataError):
    """The source or target is not usable as given (the command exits 2)."""


class Interrupted(MigrateDataError):
    """The copy stopped after ``stop_after_batches`` batches (tests of resuming)."""


@dataclass
class TableReport:
    """What the copy did to one table and what the verification found."""

    name: str
    source_rows: int = 0
    target_rows: int = 0
    inserted: int = 0
    source_checksum: str = ""
    target_checksum: str = ""

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum

    def problem(self) -> str | None:
        """A sentence describing the mismatch, or ``None``."""
        if self.source_rows != self.target_rows:
            return (
                f"{self.name}: {self.source_rows} rows in the source,"
                f" {self.target_rows} in the target"
            )
        if self.source_checksum != self.target_checksum:
            return f"{self.name}: same row count ({self.source_rows}) but different content"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.name,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "inserted": self.inserted,
            "checksum_match": self.source_checksum == self.target_checksum,
            "ok": self.ok,
        }


@dataclass
class MigrationReport:
    """The outcome of :func:`migrate_data`: one report per table, in copy order."""

    source: str
    target: str
    tables: list[TableReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    def problems(self) -> list[str]:
        return [p for t in self.tables if (p := t.problem()) is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "target": self.target,
            "tables": [t.to_dict() for t in self.tables],
            "problems": self.problems(),
        }


class Progress(Protocol):
    """Receives progress of the copy (the CLI draws bars)."""

    def table_started(self, table: str, total_rows: int) -> None:
        """The copy of ``table`` (``total_rows`` rows in the source) begins."""

    def advanced(self, table: str, rows: int) -> None:
        """A batch of ``rows`` source rows of ``table`` was written."""

    def phase(self, message: str) -> None:
        """A step without rows (recounting, verifying) begins."""


class NoProgress:
    """A :class:`Progress` that ignores everything."""

    def table_started(self, table: str, total_rows: int) -> None:
        pass

    def advanced(self, table: str, rows: int) -> None:
        pass

    def phase(self, message: str) -> None:
        pass


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///path`` URL (:class:`BadArguments` otherwise)."""
    if not url.startswith(SQLITE_SCHEME) or url == SQLITE_SCHEME:
        raise BadArguments(f"--from must be sqlite:///path/to/telemetry.sqlite, not {url!r}")
    path = Path(url.removeprefix(SQLITE_SCHEME))
    if not path.is_file():
        raise BadArguments(f"--from: no SQLite file at {str(path)!r}")
    return path


def check_target(url: str) -> str:
    """``url`` when it names a PostgreSQL database (:class:`BadArguments` otherwise)."""
    if not url.startswith(POSTGRES_SCHEMES):
        raise BadArguments(f"--to must be postgresql://user:pass@host:port/db, not {url!r}")
    return url


def public_url(url: str) -> str:
    """``url`` without a password (for messages and the summary)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def _source_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    # table_info leaves out generated columns (kpi_duration_ms), which are not copied.
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _target_columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s"
        " AND is_generated = 'NEVER'",
        (table,),
    ).fetchall()
    return {str(r[0]) for r in rows}


def _columns(src: sqlite3.Connection, dst: psycopg.Connection[Any], table: str) -> list[str]:
    columns = _source_columns(src, table)
    missing = [c for c in columns if c not in _target_columns(dst, table)]
    if not columns or missing:
        raise MigrateDataError(
            f"{table}: the target schema lacks column(s) {', '.join(missing) or '(all)'}"
        )
    return columns


def _source_batches(
    conn: sqlite3.Connection, table: CopiedTable, columns: Sequence[str], batch_size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Every row of ``table`` in key order, ``batch_size`` at a time (keyset pages)."""
    key_at = columns.index(table.key)
    select = f"SELECT {', '.join(columns)} FROM {table.name}"
    after: Any = None
    while True:
        params: tuple[Any, ...]
        if after is None:
            sql, params = f"{select} ORDER BY {table.key} LIMIT ?", (batch_size,)
        else:
            sql = f"{select} WHERE {table.key} > ? ORDER BY {table.key} LIMIT ?"
            params = (after, batch_size)
        rows = conn.execute(sql, params).fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        after = rows[-1][key_at]


def _target_batches(
    conn: psycopg.Connection[Any], table: str, key: str, columns: Sequence[str], batch_size: int
) -> Iterator[list[tuple[Any, ...]]]:
    key_at = columns.index(key)
    select = f"SELECT {', '.join(columns)} FROM {table}"
    after: Any = None
    while True:
        if after is None:
            rows = conn.execute(f"{select} ORDER BY {key} LIMIT %s", (batch_size,)).fetchall()
        else:
            rows = conn.execute(
                f"{select} WHERE {key} > %s ORDER BY {key} LIMIT %s", (after, batch_size)
            ).fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        after = rows[-1][key_at]


def _value_text(value: Any) -> str:
    """A typed text form of a value, equal for equal values read from either database."""
    if value is None:
        return "n"
    if isinstance(value, bool):
        return f"i{int(value)}"
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float):
        return f"f{value!r}"
    if isinstance(value, bytes):
        return "b" + value.hex()
    return f"s{len(str(value))}:{value}"


class _Checksum:
    """Row count and SHA-256 of every row in key order."""

    def __init__(self) -> None:
        self.rows = 0
        self._hash = hashlib.sha256()

    def update(self, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self.rows += 1
            self._hash.update("\x1f".join(_value_text(v) for v in row).encode())
            self._hash.update(b"\x1e")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _copy_batch(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Sequence[Any]
) -> int:
    insert = (
        f"INSERT INTO {table} ({', '.join(columns)})"
        f" VALUES ({', '.join('%s' for _ in columns)}) ON CONFLICT DO NOTHING"
    )
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(insert, rows)
        return max(cur.rowcount, 0)


def _sqlite_sequence(conn: sqlite3.Connection, table: str) -> int:
    """The highest id SQLite ever handed out in ``table`` (AUTOINCREMENT never reuses)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def _advance_sequence(conn: psycopg.Connection[Any], table: str, key: str, floor: int) -> None:
    """Move the identity sequence of ``table`` past every copied id (and past ``floor``,
    the source's own high-water mark), so new rows never reuse an id."""
    conn.execute(
        f"SELECT setval(pg_get_serial_sequence(%s, %s), GREATEST(MAX({key}), %s, 1),"
        f" GREATEST(MAX({key}), %s) > 0) FROM {table}",
        (table, key, floor, floor),
    )


def _recount(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        for sql in _RECOUNT_SQL:
            conn.execute(sql)


def _verify_table(
    src: sqlite3.Connection,
    dst: psycopg.Connection[Any],
    table: CopiedTable,
    columns: Sequence[str],
    batch_size: int,
    report: TableReport,
) -> None:
    source, target = _Checksum(), _Checksum()
    for rows in _source_batches(src, table, columns, batch_size):
        source.update(rows)
    for rows in _target_batches(dst, table.name, table.key, columns, batch_size):
        target.update(rows)
    report.source_rows, report.source_checksum = source.rows, source.hexdigest()
    report.target_rows, report.target_checksum = target.rows, target.hexdigest()


def _verify_counts(
    src: sqlite3.Connection, dst: psycopg.Connection[Any], name: str, key: str, query: str
) -> TableReport:
    source, target = _Checksum(), _Checksum()
    source.update(src.execute(query).fetchall())
    target.update(dst.execute(f"SELECT {key}, runs FROM {name} ORDER BY {key}").fetchall())
    return TableReport(
        name,
        source_rows=source.rows,
        target_rows=target.rows,
        source_checksum=source.hexdigest(),
        target_checksum=target.hexdigest(),
    )


def migrate_data(
    source_url: str,
    target_url: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    stop_after_batches: int | None = None,
) -> MigrationReport:
    """Copy the SQLite store ``source_url`` (``sqlite:///path``) into the PostgreSQL
    database ``target_url`` (migrated first), then verify every table.

    Raises :class:`BadArguments` for unusable URLs, :class:`MigrateDataError` when the
    copy cannot run or breaks off (database errors included), :class:`Interrupted` after
    ``stop_after_batches`` written batches. A finished copy returns a report whose
    ``ok`` says whether the verification passed.
    """
    if batch_size < 1:
        raise BadArguments("--batch-size must be at least 1")
    path = sqlite_path(source_url)
    check_target(target_url)
    progress = progress or NoProgress()
    report = MigrationReport(source=source_url, target=public_url(target_url))
    try:
        _upgrade_schemas(path, target_url, progress)
        uri = f"{path.resolve().as_uri()}?mode=ro"
        src = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            with psycopg.connect(target_url, autocommit=True) as dst:
                # One read transaction: every batch and the verification see one snapshot.
                src.execute("BEGIN")
                _copy_all(src, dst, batch_size, progress, stop_after_batches, report)
                src.execute("COMMIT")
        finally:
            src.close()
    except (sqlite3.Error, psycopg.Error) as exc:
        raise MigrateDataError(f"the copy broke off: {exc}".strip()) from exc
    return report


def _upgrade_schemas(path: Path, target_url: str, progress: Progress) -> None:
    """Bring both schemas to the current version (as a server start would)."""
    progress.phase("migrating schemas")
    source = SQLiteStore(path)
    try:
        source.migrate()
    finally:
        source.close()
    target = PostgresStore(target_url, pool_size=1)
    try:
        target.migrate()
    finally:
        target.close()


def _copy_all(
    src: sqlite3.Connection,
    dst: psycopg.Connection[Any],
    batch_size: int,
    progress: Progress,
    stop_after_batches: int | None,
    report: MigrationReport,
) -> None:
    batches = 0
    columns: dict[str, list[str]] = {}
    for table in TABLES:
        columns[table.name] = _columns(src, dst, table.name)
        entry = TableReport(table.name)
        report.tables.append(entry)
        total = int(src.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0])
        progress.table_started(table.name, total)
        for rows in _source_batches(src, table, columns[table.name], batch_size):
            if stop_after_batches is not None and batches >= stop_after_batches:
                raise Interrupted(f"stopped after {batches} batches")
            entry.inserted += _copy_batch(dst, table.name, columns[table.name], rows)
            batches += 1
            progress.advanced(table.name, len(rows))
        if table.identity:
            _advance_sequence(dst, table.name, table.key, _sqlite_sequence(src, table.name))
    progress.phase("recounting runs per agent and hour")
    _recount(dst)
    progress.phase("verifying")
    for table, entry in zip(TABLES, report.tables, strict=True):
        _verify_table(src, dst, table, columns[table.name], batch_size, entry)
    for name, key, query in COUNT_TABLES:
        report.tables.append(_verify_counts(src, dst, name, key, query))
