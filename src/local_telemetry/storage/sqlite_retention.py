"""Retention SQL of the SQLite backend: the statements behind ``retention.py``.

Each function takes a connection. :func:`candidates` runs on a reader connection (a
short keyset read); :func:`blank_payloads`, :func:`delete_runs` and :func:`reclaim_space`
run on the write connection inside the writer's transaction (``SQLiteStore.apply``), so
each batch is one short write of the single writer. The batch functions check the age of
every run again in that transaction: a run whose ``start_time`` was moved after the
candidate read is left alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from local_telemetry.storage.base import (
    BlankPayloads,
    DeleteRuns,
    ReclaimSpace,
    RetentionCounts,
    RetentionPage,
)
from local_telemetry.storage.sqlite_tx import isolated

PAYLOAD_COLUMNS: tuple[str, ...] = ("error_details", "metrics_json", "context_json")
"""Run columns a payload sweep sets to NULL (none of them is a KPI input)."""

# At most this many ids per IN (...) list (SQLite's parameter limit is far above it).
_CHUNK = 900
_INCREMENTAL = 2  # PRAGMA auto_vacuum: 0 NONE, 1 FULL, 2 INCREMENTAL

# The predicates below are the one definition of what each operation acts on, on every
# backend (``postgres_analytics.py`` uses them with its placeholders): the write
# functions and the dry-run counts of :func:`preview` both use them.


def aged_where(mark: str) -> str:
    """A run's age as a sweep judges it, with one ``mark`` placeholder: the cutoff."""
    return f"start_time < {mark}"


_AGED = aged_where("?")
NOTES_SET = "notes IS NOT NULL"
"""A QC review whose notes a payload sweep blanks."""
HAS_PAYLOAD = " OR ".join(f"{c} IS NOT NULL" for c in PAYLOAD_COLUMNS)
"""A run with a payload column a payload sweep sets to NULL."""
NEEDS_BLANKING = (
    f"({HAS_PAYLOAD}"
    " OR EXISTS (SELECT 1 FROM run_events e WHERE e.event_id = agent_runs.event_id)"
    " OR EXISTS (SELECT 1 FROM agent_qc q"
    "  WHERE q.event_id = agent_runs.event_id AND q.notes IS NOT NULL))"
)
"""Whether a run still holds anything a payload sweep removes."""


def candidates(
    conn: sqlite3.Connection,
    started_before: str,
    after: tuple[str, int] | None,
    limit: int,
    payloads: bool,
) -> RetentionPage:
    """One keyset page of the runs with ``start_time < started_before``.

    Examines at most ``limit`` runs in (start_time, id) order after ``after``; returns
    those a payload sweep would change (``payloads``) or all of them (deletion), and the
    key of the last run examined (``None`` once the range is exhausted).
    """
    clauses = [_AGED]
    params: list[object] = [started_before]
    if after is not None:
        clauses.append("start_time >= ? AND NOT (start_time = ? AND id <= ?)")
        params.extend((after[0], after[0], after[1]))
    needed = NEEDS_BLANKING if payloads else "1"
    sql = (
        f"SELECT start_time, id, event_id, {needed} FROM agent_runs"
        f" WHERE {' AND '.join(clauses)} ORDER BY start_time, id LIMIT ?"
    )
    rows = conn.execute(sql, [*params, limit]).fetchall()
    event_ids = [str(row[2]) for row in rows if row[3]]
    last = (str(rows[-1][0]), int(rows[-1][1])) if len(rows) >= limit else None
    return RetentionPage(event_ids=event_ids, after=last)


def _aged(conn: sqlite3.Connection, event_ids: Sequence[str], started_before: str) -> list[str]:
    """The runs of ``event_ids`` that exist and started before ``started_before``."""
    found: list[str] = []
    for start in range(0, len(event_ids), _CHUNK):
        chunk = list(event_ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        found.extend(
            str(row[0])
            for row in conn.execute(
                f"SELECT event_id FROM agent_runs WHERE event_id IN ({marks}) AND {_AGED}",
                [*chunk, started_before],
            )
        )
    return found


def blank_payloads(conn: sqlite3.Connection, op: BlankPayloads) -> RetentionCounts:
    """Apply :class:`BlankPayloads`: payload columns to NULL, events deleted, QC notes to
    NULL, for the runs that are still old enough. ``updated_at`` is not stamped: it
    records changes clients made, and a sweep is the server's housekeeping."""
    runs: set[str] = set()
    events = notes = 0
    aged = _aged(conn, op.event_ids, op.started_before)
    blank = ", ".join(f"{c} = NULL" for c in PAYLOAD_COLUMNS)
    for start in range(0, len(aged), _CHUNK):
        chunk = aged[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        blanked = conn.execute(
            f"UPDATE agent_runs SET {blank} WHERE event_id IN ({marks}) AND ({HAS_PAYLOAD})"
            " RETURNING event_id",
            chunk,
        ).fetchall()
        runs.update(str(row[0]) for row in blanked)
        with_events = conn.execute(
            f"SELECT DISTINCT event_id FROM run_events WHERE event_id IN ({marks})", chunk
        ).fetchall()
        runs.update(str(row[0]) for row in with_events)
        events += conn.execute(
            f"DELETE FROM run_events WHERE event_id IN ({marks})", chunk
        ).rowcount
        reviews = conn.execute(
            f"UPDATE agent_qc SET notes = NULL WHERE event_id IN ({marks}) AND {NOTES_SET}"
            " RETURNING event_id",
            chunk,
        ).fetchall()
        runs.update(str(row[0]) for row in reviews)
        notes += len(reviews)
    return RetentionCounts(runs=len(runs), events=events, qc=notes)


def delete_runs(conn: sqlite3.Connection, op: DeleteRuns) -> RetentionCounts:
    """Apply :class:`DeleteRuns`: the runs still old enough, their events and QC reviews.

    The ``run_counts_delete`` trigger (migration 1) decrements ``run_counts`` and
    ``run_counts_hourly`` for every deleted run and removes rows that reach 0.
    """
    runs = events = reviews = 0
    aged = _aged(conn, op.event_ids, op.started_before)
    for start in range(0, len(aged), _CHUNK):
        chunk = aged[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        events += conn.execute(
            f"DELETE FROM run_events WHERE event_id IN ({marks})", chunk
        ).rowcount
        reviews += conn.execute(f"DELETE FROM agent_qc WHERE event_id IN ({marks})", chunk).rowcount
        runs += conn.execute(f"DELETE FROM agent_runs WHERE event_id IN ({marks})", chunk).rowcount
    return RetentionCounts(runs=runs, events=events, qc=reviews)


def reclaim_space(conn: sqlite3.Connection, max_pages: int) -> int:
    """Return up to ``max_pages`` free pages to the file system; the number returned.

    ``PRAGMA incremental_vacuum`` may run inside a transaction (the file is truncated
    when it commits; only ``VACUUM`` may not), so it runs in the writer's transaction
    like any write. SQLite frees one page per step of the statement, and Python's
    ``execute`` steps a statement without result rows once, so ``incremental_vacuum(N)``
    would free one page, not N: it is executed once per page, with N = 1, which also
    bounds the work to ``max_pages`` whatever the driver does. A database without
    ``auto_vacuum = INCREMENTAL`` (created before it was set) frees nothing here; its
    free pages are reused by new rows, and a one-off ``VACUUM`` converts it.
    """
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != _INCREMENTAL:
        return 0
    before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    cursor = conn.cursor()
    try:
        for _ in range(min(max_pages, before)):
            cursor.execute("PRAGMA incremental_vacuum(1)")
    finally:
        cursor.close()  # resets the statement: COMMIT refuses one still in progress
    return before - int(conn.execute("PRAGMA freelist_count").fetchone()[0])


CountStatement = tuple[str, list[str]] | None
"""A preview's read (SQL and parameters) of one operation; ``None``: that limit is off."""


def preview_statements(
    mark: str, payload_cutoff: str | None, run_cutoff: str | None
) -> tuple[CountStatement, CountStatement]:
    """The reads behind a preview, with ``mark`` placeholders: the counts
    :func:`delete_runs` and then :func:`blank_payloads` would return, read with their
    predicates. A sweep deletes first, so the blanked runs exclude the runs old enough
    to be deleted. Each read answers one row: runs, their events, their QC reviews."""
    aged = aged_where(mark)
    deleting: CountStatement = None
    if run_cutoff is not None:
        deleting = (_counts_sql(aged, qc_where=None), [run_cutoff])
    blanking: CountStatement = None
    if payload_cutoff is not None:
        where, params = f"{aged} AND {NEEDS_BLANKING}", [payload_cutoff]
        if run_cutoff is not None:
            where, params = f"{where} AND NOT {aged}", [payload_cutoff, run_cutoff]
        blanking = (_counts_sql(where, qc_where=NOTES_SET), params)
    return deleting, blanking


def _counts_sql(runs_where: str, *, qc_where: str | None) -> str:
    """Runs matching ``runs_where``, their events, and their QC reviews (those matching
    ``qc_where``, if given): one statement, so the three numbers describe the same runs."""
    qc_also = "" if qc_where is None else f" AND {qc_where}"
    return (
        f"WITH chosen AS (SELECT event_id FROM agent_runs WHERE {runs_where})"
        " SELECT (SELECT COUNT(*) FROM chosen),"
        " (SELECT COUNT(*) FROM run_events WHERE event_id IN (SELECT event_id FROM chosen)),"
        " (SELECT COUNT(*) FROM agent_qc"
        f"  WHERE event_id IN (SELECT event_id FROM chosen){qc_also})"
    )


def preview(
    conn: sqlite3.Connection, payload_cutoff: str | None, run_cutoff: str | None
) -> tuple[RetentionCounts, RetentionCounts]:
    """What a sweep with these cutoffs would change now (``Store.retention_preview``):
    see :func:`preview_statements`."""
    deleting, blanking = preview_statements("?", payload_cutoff, run_cutoff)
    return _counts(conn, deleting), _counts(conn, blanking)


def _counts(conn: sqlite3.Connection, statement: CountStatement) -> RetentionCounts:
    if statement is None:
        return RetentionCounts()
    row = conn.execute(*statement).fetchone()
    return RetentionCounts(runs=int(row[0]), events=int(row[1]), qc=int(row[2]))


RetentionOp = BlankPayloads | DeleteRuns | ReclaimSpace


def apply_op(conn: sqlite3.Connection, op: RetentionOp) -> RetentionCounts | int | Exception:
    """Apply one retention operation in a savepoint of the writer's transaction: all of
    it or none; a constraint or value error is returned (as ``Store.apply`` does)."""
    if isinstance(op, ReclaimSpace):
        return isolated(conn, "retention", lambda: reclaim_space(conn, op.max_pages))
    if isinstance(op, BlankPayloads):
        return isolated(conn, "retention", lambda: blank_payloads(conn, op))
    return isolated(conn, "retention", lambda: delete_runs(conn, op))
