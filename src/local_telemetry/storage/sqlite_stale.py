"""Stale-run SQL of the SQLite backend, and the closing rules every backend shares.

A run is *stale* when its status is ``running`` and nothing has been heard from it for
longer than an age: its ``updated_at`` (else its ``created_at``, for a run never
updated) lies before the cutoff ``now - age``. Crashed agents leave such runs behind.

:func:`stale_runs` is the read behind dry runs; :func:`close_stale` applies
:class:`~local_telemetry.storage.base.CloseStaleRuns` on the write connection inside the
writer's transaction. Both use :func:`stale_where`, so a dry run lists exactly what a
close would act on. ``postgres_analytics.py`` uses the same predicate and
:func:`closing_changes` with PostgreSQL placeholders.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from local_telemetry.durations import describe_duration
from local_telemetry.storage.base import STALE_RUN_FIELDS, CloseStaleRuns, StaleRuns
from local_telemetry.storage.sqlite_tx import isolated
from local_telemetry.timestamps import TimestampError, parse_instant

# Columns a close reads of each candidate: the reported fields, then what it decides on.
CANDIDATE_COLUMNS: tuple[str, ...] = (*STALE_RUN_FIELDS, "end_time", "error_summary")
_LAST_HEARD = "COALESCE(updated_at, created_at)"


def stale_where(mark: str) -> str:
    """The stale-run predicate with two ``mark`` placeholders, both bound to the cutoff.

    ``updated_at`` is never before ``created_at``, so ``created_at < cutoff`` adds no
    condition; it lets the (status, created_at) index bound the scan to old runs.
    """
    return f"status = 'running' AND created_at < {mark} AND {_LAST_HEARD} < {mark}"


def candidates_sql(mark: str) -> str:
    """The first stale runs (``CANDIDATE_COLUMNS``, oldest first), with three ``mark``
    placeholders: the cutoff twice, then the limit."""
    return (
        "SELECT event_id, agent_name, job_type, start_time,"
        f" {_LAST_HEARD}, end_time, error_summary FROM agent_runs"
        f" WHERE {stale_where(mark)} ORDER BY created_at, id LIMIT {mark}"
    )


def count_sql(mark: str) -> str:
    """How many runs are stale, with two ``mark`` placeholders (the cutoff twice)."""
    return f"SELECT COUNT(*) FROM agent_runs WHERE {stale_where(mark)}"


def update_sql(columns: list[str], mark: str) -> str:
    """The closing ``UPDATE`` of one run: ``columns`` set, then ``event_id`` and the
    cutoff twice; the predicate is checked again, so a run heard from in between is
    left open."""
    assignments = ", ".join(f"{column} = {mark}" for column in columns)
    return f"UPDATE agent_runs SET {assignments} WHERE event_id = {mark} AND {stale_where(mark)}"


def _duration_ms(start: str, end: str) -> int | None:
    """The agent-run upsert's duration (end minus start, ``None`` for unparsable text),
    so a closed run's duration is computed as the server computes it for agent runs."""
    # Imported here: sqlite.py imports this module while it is itself being loaded.
    from local_telemetry.storage.sqlite import _duration_ms as duration_between

    return duration_between(start, end)


def closing_changes(run: dict[str, Any], op: CloseStaleRuns) -> dict[str, Any]:
    """The columns closing ``run`` (a dict of ``CANDIDATE_COLUMNS``) sets, by the rules
    of :class:`CloseStaleRuns`; shared by every backend so they cannot drift apart."""
    heard, start = run["last_heard"], run["start_time"]
    changes: dict[str, Any] = {"status": op.status}
    if run["end_time"] is None:
        # The last sign of life is the best estimate of when the agent died; a start
        # time the client put after it would make the duration negative.
        end = max(heard, start)  # stored form: text order is time order
        changes["end_time"] = end
        duration = _duration_ms(start, end)
        if duration is not None:
            changes["duration_ms"] = duration
            changes["duration_ms_supplied"] = 0  # computed, like an agent run's
    if not run["error_summary"]:
        changes["error_summary"] = (
            f"closed as {op.status} by stale-run cleanup: no update for "
            f"{_age(op.cutoff, op.now)} since {heard}"
        )
    changes["updated_at"] = op.now
    return changes


def _age(cutoff: str, now: str) -> str:
    """``now - cutoff`` written like ``24h``."""
    try:
        return describe_duration(parse_instant(now) - parse_instant(cutoff))
    except (TimestampError, ValueError):
        return f"longer than since {cutoff}"


def reported(run: dict[str, Any]) -> dict[str, Any]:
    """A candidate as a dict of ``STALE_RUN_FIELDS``."""
    return {name: run[name] for name in STALE_RUN_FIELDS}


def stale_runs(conn: sqlite3.Connection, cutoff: str, limit: int) -> StaleRuns:
    """What :func:`close_stale` with ``cutoff`` would close now (``Store.stale_runs``)."""
    total = int(conn.execute(count_sql("?"), (cutoff, cutoff)).fetchone()[0])
    rows = conn.execute(candidates_sql("?"), (cutoff, cutoff, limit)).fetchall()
    runs = [reported(dict(zip(CANDIDATE_COLUMNS, row, strict=True))) for row in rows]
    return StaleRuns(total=total, runs=runs)


def close_stale(conn: sqlite3.Connection, op: CloseStaleRuns) -> list[dict[str, Any]]:
    """Apply :class:`CloseStaleRuns`: close up to ``op.limit`` stale runs; the closed.

    Status changes touch no counter: ``run_counts`` and ``run_counts_hourly`` count runs
    per agent and per creation hour, which closing does not change, and KPIs read
    ``status`` from the rows themselves.
    """
    rows = conn.execute(candidates_sql("?"), (op.cutoff, op.cutoff, op.limit)).fetchall()
    closed: list[dict[str, Any]] = []
    for row in rows:
        run = dict(zip(CANDIDATE_COLUMNS, row, strict=True))
        changes = closing_changes(run, op)
        sql = update_sql(list(changes), "?")
        params = [*changes.values(), run["event_id"], op.cutoff, op.cutoff]
        if conn.execute(sql, params).rowcount:
            closed.append(reported(run))
    return closed


def apply_op(conn: sqlite3.Connection, op: CloseStaleRuns) -> list[dict[str, Any]] | Exception:
    """Apply :class:`CloseStaleRuns` in a savepoint of the writer's transaction: all of
    the batch or none of it; a constraint or value error is returned."""
    return isolated(conn, "stale", lambda: close_stale(conn, op))
