"""Analytics SQL of the PostgreSQL backend: KPI inputs, alerts and retention.

The PostgreSQL counterpart of ``sqlite.py``'s KPI queries, ``sqlite_series.py``,
``sqlite_alerts.py`` and ``sqlite_retention.py``; ``PostgresStore`` delegates to these
functions. Each takes a ``psycopg.Connection``: a reader's for the queries, the
writer's (inside ``PostgresStore.apply``'s transaction and savepoint) for the writes,
which never commit or roll back themselves and raise on error.

Tables and columns are those of the SQLite schema (``migrations/postgres.py``);
timestamps are stored as text in the fixed UTC form of ``timestamps.py``
(``2026-01-12T10:30:00.000000Z``), so text comparison (``COLLATE "C"``) orders them as
instants and a prefix of the text is a UTC hour or minute.

KPI queries need no pieces or offset tables as SQLite's do: one ``GROUP BY`` per query
aggregates per UTC slot of start_time (the hour, or the quarter hour in a zone whose
offset is not a whole number of hours: every offset in use is a multiple of 15 minutes,
so a slot lies within one local day), a prefix of the stored text that costs nothing to
compute; Python maps each distinct slot to its local day and ISO week (``kpis``) and
merges the slots of one group (SQLite's own fallback, which its tests cover). Measured on
200,000 runs, grouping by the local date computed in SQL
(``(start_time::timestamptz AT TIME ZONE tz)::date``) took 2.4 times as long (0.83 s
against 0.35 s), the difference being the per-row parse of the text.

A run's KPI duration (``duration_ms`` when the client supplied it, else end_time -
start_time in whole milliseconds, else none) is the stored generated column
``kpi_duration_ms``, as SQLite's virtual one. Flags
(``self_corrected``) are SMALLINT 0/1 as in SQLite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import pq

from local_telemetry import kpis
from local_telemetry.storage import sqlite_retention, sqlite_stale
from local_telemetry.storage.base import (
    ALERT_COLUMNS,
    AlertFilter,
    BlankPayloads,
    CloseStaleRuns,
    DeleteRuns,
    KpiFilter,
    KpiInputs,
    ReclaimSpace,
    RecordAlerts,
    RetentionCounts,
    RetentionPage,
    SaveAlertRules,
    StaleRuns,
)
from local_telemetry.timestamps import now_stored

RULES_KEY = "alert_rules"
"""``server_state`` key of the alert rules document (a JSON array as text)."""

PAYLOAD_COLUMNS = sqlite_retention.PAYLOAD_COLUMNS
"""Run columns a payload sweep sets to NULL (none of them is a KPI input)."""

KPI_DURATION_SQL = "r.kpi_duration_ms"
"""A run's KPI duration in ms (or NULL), over ``agent_runs r``: the schema's stored
generated column, with the semantics of SQLite's (end - start truncated to whole
milliseconds unless ``duration_ms`` was supplied; NULL without an end or for text that is
no timestamp)."""

# The UTC slot of start_time a run's local day is taken from: its hour, or (for a zone
# whose offset is not a whole number of hours) its quarter hour, as "YYYY-MM-DDTHH:MM",
# which kpis.local_date reads. Plain text functions: any text yields a slot (one that is
# no timestamp forms a day and week of its own, as in SQLite).
_SLOT_HOUR = "left(r.start_time, 13) || ':00'"
_SLOT_QUARTER = (
    "left(r.start_time, 14) || CASE WHEN substr(r.start_time, 15, 2) < '15' THEN '00'"
    " WHEN substr(r.start_time, 15, 2) < '30' THEN '15'"
    " WHEN substr(r.start_time, 15, 2) < '45' THEN '30' ELSE '45' END"
)
# "YYYY-MM-DDTHH" of the stored UTC form.
_HOUR_SQL = "left(r.start_time, 13)"

# The aggregate columns of a KPI query, per status (``_add_kpi_row`` reads one row).
_KPI_AGGREGATES = (
    "r.status, COUNT(*),"
    " COUNT(*) FILTER (WHERE r.resolution = 'resolved'),"
    " COUNT(*) FILTER (WHERE r.resolution = 'escalated'),"
    " COUNT(r.resolution),"
    " COUNT(*) FILTER (WHERE r.self_corrected = 1), COUNT(r.self_corrected),"
    f" COUNT(*) FILTER (WHERE {KPI_DURATION_SQL} <= r.sla_target_seconds * 1000"
    " AND r.end_time IS NOT NULL),"
    " COUNT(*) FILTER (WHERE r.end_time IS NOT NULL AND r.sla_target_seconds IS NOT NULL),"
    " COALESCE(SUM(r.tokens_input), 0), COALESCE(SUM(r.tokens_output), 0),"
    " COALESCE(SUM(r.cost_usd), 0),"
    f" array_agg({KPI_DURATION_SQL}) FILTER (WHERE {KPI_DURATION_SQL} IS NOT NULL)"
)

_RECENT_COLUMNS = (
    "status",
    "resolution",
    "self_corrected",
    "end_time",
    "sla_target_seconds",
    "kpi_duration_ms",
    "tokens_input",
    "tokens_output",
    "cost_usd",
)
_RECENT_SQL = (
    f"SELECT {', '.join(f'r.{c}' for c in _RECENT_COLUMNS)}"
    " FROM agent_runs r WHERE r.agent_name = %s ORDER BY r.created_at DESC, r.id DESC LIMIT %s"
)

_ALERT_LIST = ", ".join(ALERT_COLUMNS)
_ALERT_SELECT = f"SELECT {_ALERT_LIST} FROM alerts"
_FLOAT_ALERT_COLUMNS = frozenset({"value", "baseline", "threshold"})
_INT_ALERT_COLUMNS = frozenset({"id", "sample_runs"})


# --- KPI inputs -------------------------------------------------------------------


def _kpi_where(kpi_filter: KpiFilter) -> tuple[str, list[Any]]:
    """WHERE clause (over ``agent_runs r``) of the runs ``kpi_filter`` selects."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value, operator in (
        ("start_time", kpi_filter.start_time_from, ">="),
        ("start_time", kpi_filter.start_time_to, "<"),
        ("agent_name", kpi_filter.agent_name, "="),
        ("job_type", kpi_filter.job_type, "="),
    ):
        if value is not None:
            clauses.append(f"r.{column} {operator} %s")
            params.append(value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _add_kpi_row(inputs: KpiInputs, values: Sequence[Any]) -> None:
    """Add one row of the KPI aggregate query (after its key columns) to ``inputs``."""
    (status, count, resolved, escalated, with_resolution, corrected, corrected_set,
     hits, measured, tokens_in, tokens_out, cost, durations) = values  # fmt: skip
    inputs.total_runs += int(count)
    inputs.status_counts[status] = inputs.status_counts.get(status, 0) + int(count)
    inputs.resolved += int(resolved)
    inputs.escalated += int(escalated)
    inputs.with_resolution += int(with_resolution)
    inputs.self_corrected += int(corrected)
    inputs.self_corrected_set += int(corrected_set)
    inputs.sla_hits += int(hits)
    inputs.sla_measured += int(measured)
    inputs.tokens_input += int(tokens_in)
    inputs.tokens_output += int(tokens_out)
    inputs.cost_usd += float(cost)
    if durations:
        inputs.durations_ms.extend(int(d) for d in durations)


@contextlib.contextmanager
def _one_snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Run the block's queries on one snapshot: in a read-only REPEATABLE READ
    transaction of its own when ``conn`` is idle; inside the caller's transaction as it
    is (its isolation level decides) otherwise."""
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def kpi_inputs(
    conn: psycopg.Connection[Any], kpi_filter: KpiFilter, group_by: Sequence[str], tz: str
) -> dict[tuple[str, ...], KpiInputs]:
    """KPI inputs per group of the runs ``kpi_filter`` selects (see ``Store.kpi_inputs``).

    One query aggregates per (agent_name, job_type, UTC slot of start_time, status) as
    far as ``group_by`` needs them, durations as one ``array_agg`` per row; Python maps
    each slot to its local day and ISO week in ``tz`` and merges the rows of one group
    (see the module docstring). QC reviews of the selected runs are summed by a second
    query in the same snapshot (a read-only REPEATABLE READ transaction when ``conn`` is
    idle). ``ValueError`` for an unknown zone or grouping. Text in ``start_time`` that
    is no timestamp forms a day and week of its own (its slot), as in SQLite.
    """
    zone = kpis.zone(tz)  # ValueError for an unknown zone
    for name in group_by:
        if name not in ("agent_name", "job_type", "day", "week"):
            raise ValueError(f"cannot group KPIs by {name!r}")
    columns = [c for c in ("agent_name", "job_type") if c in group_by]
    bucketed = "day" in group_by or "week" in group_by
    slot_sql = _SLOT_HOUR if kpis.whole_hour_zone(tz) else _SLOT_QUARTER
    keys = [f"r.{c}" for c in columns] + ([slot_sql] if bucketed else [])
    width = len(keys)
    where, params = _kpi_where(kpi_filter)
    select_keys = "".join(f"{k}, " for k in keys)
    runs_sql = (
        f"SELECT {select_keys}{_KPI_AGGREGATES} FROM agent_runs r {where}"
        f" GROUP BY {', '.join(str(i + 1) for i in range(width + 1))}"
    )
    qc_group = f" GROUP BY {', '.join(str(i + 1) for i in range(width))}" if width else ""
    qc_sql = (
        f"SELECT {select_keys}SUM(q.score), COUNT(*) FROM agent_qc q"
        f" JOIN agent_runs r ON r.event_id = q.event_id {where}{qc_group}"
    )
    slots: dict[str, tuple[str, str]] = {}

    def key_of(values: Sequence[Any]) -> tuple[str, ...]:
        named: dict[str, str] = {c: str(v) for c, v in zip(columns, values, strict=False)}
        if bucketed:
            slot = str(values[width - 1])
            found = slots.get(slot)
            if found is None:
                try:
                    day = kpis.local_date(slot, zone)
                    found = (kpis.day_key(day), kpis.week_key(day))
                except (ValueError, OverflowError):  # no timestamp: kept apart
                    found = (slot, slot)
                slots[slot] = found
            named["day"], named["week"] = found
        return tuple(named[name] for name in group_by)

    groups: dict[tuple[str, ...], KpiInputs] = {}
    with _one_snapshot(conn):
        for row in conn.execute(runs_sql, params):
            key = key_of(row[:width])
            inputs = groups.get(key)
            if inputs is None:
                inputs = groups[key] = KpiInputs()
            _add_kpi_row(inputs, row[width:])
        if groups:
            for row in conn.execute(qc_sql, params):
                qc_inputs = groups.get(key_of(row[:width]))
                if qc_inputs is not None:
                    qc_inputs.qc_score_sum += int(row[width] or 0)
                    qc_inputs.qc_count += int(row[width + 1])
    return groups


def hourly_kpi_inputs(conn: psycopg.Connection[Any], kpi_filter: KpiFilter) -> dict[str, KpiInputs]:
    """KPI inputs (QC reviews not counted) per UTC hour of start_time ("YYYY-MM-DDTHH",
    the first 13 characters of the stored form) of the runs ``kpi_filter`` selects; each
    hour's inputs equal those :func:`kpi_inputs` gives over that hour."""
    where, params = _kpi_where(kpi_filter)
    sql = f"SELECT {_HOUR_SQL}, {_KPI_AGGREGATES} FROM agent_runs r {where} GROUP BY 1, 2"
    hours: dict[str, KpiInputs] = {}
    for row in conn.execute(sql, params):
        hour = str(row[0])
        inputs = hours.get(hour)
        if inputs is None:
            inputs = hours[hour] = KpiInputs()
        _add_kpi_row(inputs, row[1:])
    return hours


def recent_kpi_inputs(conn: psycopg.Connection[Any], agent_name: str, limit: int) -> KpiInputs:
    """KPI inputs (without QC) of the agent's ``limit`` most recently recorded runs
    (``created_at`` DESC, then ``id`` DESC), counted by :meth:`KpiInputs.add_run`."""
    inputs = KpiInputs()
    for row in conn.execute(_RECENT_SQL, (agent_name, limit)):
        run = dict(zip(_RECENT_COLUMNS, row, strict=True))
        if run["cost_usd"] is not None:
            run["cost_usd"] = float(run["cost_usd"])
        inputs.add_run(run)
    return inputs


# --- alerts ------------------------------------------------------------------------


def _alert(row: Sequence[Any]) -> dict[str, Any]:
    """A row of ``ALERT_COLUMNS`` as the dict SQLite returns (numbers as float/int)."""
    alert = dict(zip(ALERT_COLUMNS, row, strict=True))
    for column in _FLOAT_ALERT_COLUMNS:
        if alert[column] is not None:
            alert[column] = float(alert[column])
    for column in _INT_ALERT_COLUMNS:
        if alert[column] is not None:
            alert[column] = int(alert[column])
    return alert


def save_rules(conn: psycopg.Connection[Any], op: SaveAlertRules) -> None:
    """Store the alert rules document (JSON text under ``'alert_rules'`` in
    ``server_state``), replacing the previous one."""
    conn.execute(
        "INSERT INTO server_state(key, value, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
        " updated_at = excluded.updated_at",
        (RULES_KEY, orjson.dumps(list(op.rules)).decode(), now_stored()),
    )


def get_rules(conn: psycopg.Connection[Any]) -> list[dict[str, Any]] | None:
    """The stored alert rules document, or ``None`` when none was saved."""
    row = conn.execute("SELECT value FROM server_state WHERE key = %s", (RULES_KEY,)).fetchone()
    if row is None:
        return None
    value = row[0]
    rules: list[dict[str, Any]] = orjson.loads(value) if isinstance(value, str | bytes) else value
    return rules


def _numbers(alert: dict[str, Any]) -> tuple[Any, ...]:
    return alert["value"], alert["baseline"], alert["sample_runs"], alert["message"]


def record_alerts(conn: psycopg.Connection[Any], op: RecordAlerts) -> list[dict[str, Any]]:
    """Apply one evaluation's alert changes; the alerts that fired or resolved, as stored,
    fired ones first.

    A fired alert is inserted unless its (rule_name, agent_name) pair already has an
    open one (``ON CONFLICT DO NOTHING`` against the partial unique index of firing
    alerts, so two evaluators racing insert it once); resolving or refreshing touches
    only alerts still firing.
    """
    now = now_stored()
    changed: list[dict[str, Any]] = []
    for alert in op.fire:
        row = conn.execute(
            "INSERT INTO alerts(rule_name, kind, agent_name, state, value, baseline,"
            " threshold, sample_runs, message, fired_at, updated_at)"
            " VALUES (%s, %s, %s, 'firing', %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (rule_name, agent_name) WHERE state = 'firing' DO NOTHING"
            f" RETURNING {_ALERT_LIST}",
            (
                alert["rule_name"],
                alert["kind"],
                alert["agent_name"],
                alert["value"],
                alert["baseline"],
                alert["threshold"],
                alert["sample_runs"],
                alert["message"],
                now,
                now,
            ),
        ).fetchone()
        if row is not None:  # None: that pair already had an open alert
            changed.append(_alert(row))
    for alert in op.resolve:
        row = conn.execute(
            "UPDATE alerts SET state = 'resolved', resolved_at = %s, updated_at = %s,"
            " value = %s, baseline = %s, sample_runs = %s, message = %s"
            f" WHERE id = %s AND state = 'firing' RETURNING {_ALERT_LIST}",
            (now, now, *_numbers(alert), alert["id"]),
        ).fetchone()
        if row is not None:
            changed.append(_alert(row))
    if op.refresh:
        with conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE alerts SET updated_at = %s, value = %s, baseline = %s,"
                " sample_runs = %s, message = %s WHERE id = %s AND state = 'firing'",
                [(now, *_numbers(alert), alert["id"]) for alert in op.refresh],
            )
    return changed


def list_alerts(conn: psycopg.Connection[Any], alert_filter: AlertFilter) -> list[dict[str, Any]]:
    """Alerts matching the filter, newest ``fired_at`` (then ``id``) first, as dicts of
    ``ALERT_COLUMNS``."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("state", "rule_name", "agent_name"):
        value = getattr(alert_filter, column)
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"{_ALERT_SELECT} {where} ORDER BY fired_at DESC, id DESC LIMIT %s OFFSET %s",
        [*params, alert_filter.limit, alert_filter.offset],
    )
    return [_alert(row) for row in rows]


def open_alerts(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every firing alert, oldest (lowest ``id``) first."""
    rows = conn.execute(f"{_ALERT_SELECT} WHERE state = 'firing' ORDER BY id")
    return [_alert(row) for row in rows]


# --- retention ---------------------------------------------------------------------

# The predicates are sqlite_retention's, so a dry run counts what either backend's sweep
# would act on; here with PostgreSQL placeholders.
_AGED = sqlite_retention.aged_where("%s")
_NOTES_SET = sqlite_retention.NOTES_SET
_HAS_PAYLOAD = sqlite_retention.HAS_PAYLOAD
_NEEDS_BLANKING = sqlite_retention.NEEDS_BLANKING


def retention_candidates(
    conn: psycopg.Connection[Any],
    started_before: str,
    after: tuple[str, int] | None,
    limit: int,
    payloads: bool,
) -> RetentionPage:
    """One keyset page of the runs with ``start_time < started_before`` (see
    ``Store.retention_candidates``): at most ``limit`` runs examined in (start_time, id)
    order after ``after``; those a payload sweep would change (``payloads``) or all of
    them, and the key of the last run examined (``None`` once the range is exhausted)."""
    clauses = [_AGED]
    params: list[Any] = [started_before]
    if after is not None:
        # The first clause bounds the index range of idx_runs_start; the row comparison
        # alone would be a filter over every run before the key.
        clauses.append("start_time >= %s AND (start_time, id) > (%s, %s)")
        params.extend((after[0], after[0], after[1]))
    needed = _NEEDS_BLANKING if payloads else "TRUE"
    sql = (
        f"SELECT start_time, id, event_id, {needed} FROM agent_runs"
        f" WHERE {' AND '.join(clauses)} ORDER BY start_time, id LIMIT %s"
    )
    rows = conn.execute(sql, [*params, limit]).fetchall()
    event_ids = [str(row[2]) for row in rows if row[3]]
    last = (str(rows[-1][0]), int(rows[-1][1])) if rows and len(rows) >= limit else None
    return RetentionPage(event_ids=event_ids, after=last)


def _aged(
    conn: psycopg.Connection[Any], event_ids: Sequence[str], started_before: str
) -> list[str]:
    """The runs of ``event_ids`` that exist and started before ``started_before``."""
    rows = conn.execute(
        f"SELECT event_id FROM agent_runs WHERE event_id = ANY(%s::text[]) AND {_AGED}",
        (list(event_ids), started_before),
    )
    return [str(row[0]) for row in rows]


def blank_payloads(conn: psycopg.Connection[Any], op: BlankPayloads) -> RetentionCounts:
    """Apply :class:`BlankPayloads`: payload columns to NULL, events deleted, QC notes to
    NULL, for the runs that are still old enough. ``updated_at`` is not stamped (a sweep
    is the server's housekeeping, not a client's change)."""
    aged = _aged(conn, op.event_ids, op.started_before)
    if not aged:
        return RetentionCounts()
    blank = ", ".join(f"{c} = NULL" for c in PAYLOAD_COLUMNS)
    runs: set[str] = set()
    blanked = conn.execute(
        f"UPDATE agent_runs SET {blank} WHERE event_id = ANY(%s::text[]) AND ({_HAS_PAYLOAD})"
        " RETURNING event_id",
        (aged,),
    ).fetchall()
    runs.update(str(row[0]) for row in blanked)
    deleted = conn.execute(
        "DELETE FROM run_events WHERE event_id = ANY(%s::text[]) RETURNING event_id", (aged,)
    ).fetchall()
    runs.update(str(row[0]) for row in deleted)
    reviews = conn.execute(
        "UPDATE agent_qc SET notes = NULL WHERE event_id = ANY(%s::text[])"
        f" AND {_NOTES_SET} RETURNING event_id",
        (aged,),
    ).fetchall()
    runs.update(str(row[0]) for row in reviews)
    return RetentionCounts(runs=len(runs), events=len(deleted), qc=len(reviews))


def delete_runs(conn: psycopg.Connection[Any], op: DeleteRuns) -> RetentionCounts:
    """Apply :class:`DeleteRuns`: the runs still old enough, their events and QC reviews.

    The schema's delete trigger on ``agent_runs`` (as SQLite's ``run_counts_delete``)
    decrements ``run_counts`` and ``run_counts_hourly`` for every deleted run and
    removes rows that reach 0.
    """
    aged = _aged(conn, op.event_ids, op.started_before)
    if not aged:
        return RetentionCounts()
    events = conn.execute("DELETE FROM run_events WHERE event_id = ANY(%s::text[])", (aged,))
    reviews = conn.execute("DELETE FROM agent_qc WHERE event_id = ANY(%s::text[])", (aged,))
    runs = conn.execute("DELETE FROM agent_runs WHERE event_id = ANY(%s::text[])", (aged,))
    return RetentionCounts(runs=runs.rowcount, events=events.rowcount, qc=reviews.rowcount)


def reclaim_space(conn: psycopg.Connection[Any], max_pages: int) -> int:
    """Apply :class:`ReclaimSpace`: always 0 on PostgreSQL.

    Dead rows of deleted or blanked runs are reclaimed by autovacuum, which makes their
    space reusable by new rows; ``VACUUM`` cannot run inside a transaction block (and
    this runs inside the writer's), and giving pages back to the file system would take
    ``VACUUM FULL``, which locks the table exclusively. So nothing is done here.
    """
    del conn, max_pages
    return 0


def retention_preview(
    conn: psycopg.Connection[Any], payload_cutoff: str | None, run_cutoff: str | None
) -> tuple[RetentionCounts, RetentionCounts]:
    """What a sweep with these cutoffs would change now (``Store.retention_preview``):
    the reads of ``sqlite_retention.preview_statements``."""
    deleting, blanking = sqlite_retention.preview_statements("%s", payload_cutoff, run_cutoff)
    return _retention_counts(conn, deleting), _retention_counts(conn, blanking)


def _retention_counts(
    conn: psycopg.Connection[Any], statement: sqlite_retention.CountStatement
) -> RetentionCounts:
    if statement is None:
        return RetentionCounts()
    row = conn.execute(*statement).fetchone()
    assert row is not None  # an aggregate always answers one row
    return RetentionCounts(runs=int(row[0]), events=int(row[1]), qc=int(row[2]))


# --- stale runs (the predicate and closing rules are sqlite_stale's) ------------------


def stale_runs(conn: psycopg.Connection[Any], cutoff: str, limit: int) -> StaleRuns:
    """What :func:`close_stale_runs` with ``cutoff`` would close now (``Store.stale_runs``)."""
    found = conn.execute(sqlite_stale.count_sql("%s"), (cutoff, cutoff)).fetchone()
    rows = conn.execute(sqlite_stale.candidates_sql("%s"), (cutoff, cutoff, limit)).fetchall()
    columns = sqlite_stale.CANDIDATE_COLUMNS
    runs = [sqlite_stale.reported(dict(zip(columns, row, strict=True))) for row in rows]
    return StaleRuns(total=int(found[0]) if found else 0, runs=runs)


def close_stale_runs(conn: psycopg.Connection[Any], op: CloseStaleRuns) -> list[dict[str, Any]]:
    """Apply :class:`CloseStaleRuns` in the caller's transaction (and savepoint).

    The candidates are locked (``FOR UPDATE``): with several server processes, a PATCH
    through another one waits for this batch, and the predicate checked again by each
    ``UPDATE`` leaves a run that was heard from meanwhile open.
    """
    sql = sqlite_stale.candidates_sql("%s") + " FOR UPDATE"
    rows = conn.execute(sql, (op.cutoff, op.cutoff, op.limit)).fetchall()
    closed: list[dict[str, Any]] = []
    for row in rows:
        run = dict(zip(sqlite_stale.CANDIDATE_COLUMNS, row, strict=True))
        changes = sqlite_stale.closing_changes(run, op)
        update = sqlite_stale.update_sql(list(changes), "%s")
        params = [*changes.values(), run["event_id"], op.cutoff, op.cutoff]
        if conn.execute(update, params).rowcount:
            closed.append(sqlite_stale.reported(run))
    return closed


def apply_retention(
    conn: psycopg.Connection[Any], op: BlankPayloads | DeleteRuns | ReclaimSpace
) -> RetentionCounts | int:
    """Apply one retention operation in the caller's transaction (and savepoint): a
    :class:`RetentionCounts` for :class:`BlankPayloads`/:class:`DeleteRuns`, the pages
    freed (always 0, see :func:`reclaim_space`) for :class:`ReclaimSpace`."""
    if isinstance(op, ReclaimSpace):
        return reclaim_space(conn, op.max_pages)
    if isinstance(op, BlankPayloads):
        return blank_payloads(conn, op)
    return delete_runs(conn, op)
