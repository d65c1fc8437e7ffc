"""SQLite statements of alert rules, alert state and the alert evaluator's reads.

Functions take a connection: the writer's (inside ``SQLiteStore.apply``'s transaction)
for the writes, a reader's for the rest. Tables are those of migration 5.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from local_telemetry.storage.base import (
    ALERT_COLUMNS,
    AlertFilter,
    KpiInputs,
    RecordAlerts,
    SaveAlertRules,
)
from local_telemetry.timestamps import now_stored

RULES_KEY = "alert_rules"
_ALERT_SELECT = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"
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


def _alert(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(ALERT_COLUMNS, row, strict=True))


def save_rules(conn: sqlite3.Connection, op: SaveAlertRules) -> None:
    """Store the rules document (replacing the previous one)."""
    conn.execute(
        "INSERT INTO server_state(key, value, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (RULES_KEY, orjson.dumps(list(op.rules)).decode(), now_stored()),
    )


def record_alerts(conn: sqlite3.Connection, op: RecordAlerts) -> list[dict[str, Any]]:
    """Apply one evaluation's changes; the alerts that fired or resolved, as stored."""
    now = now_stored()
    changed: list[dict[str, Any]] = []
    for alert in op.fire:
        row = conn.execute(
            "INSERT OR IGNORE INTO alerts(rule_name, kind, agent_name, state, value, baseline,"
            " threshold, sample_runs, message, fired_at, updated_at)"
            " VALUES (?, ?, ?, 'firing', ?, ?, ?, ?, ?, ?, ?)"
            f" RETURNING {', '.join(ALERT_COLUMNS)}",
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
            "UPDATE alerts SET state = 'resolved', resolved_at = ?, updated_at = ?, value = ?,"
            " baseline = ?, sample_runs = ?, message = ? WHERE id = ? AND state = 'firing'"
            f" RETURNING {', '.join(ALERT_COLUMNS)}",
            (now, now, *_numbers(alert), alert["id"]),
        ).fetchone()
        if row is not None:
            changed.append(_alert(row))
    conn.executemany(
        "UPDATE alerts SET updated_at = ?, value = ?, baseline = ?, sample_runs = ?, message = ?"
        " WHERE id = ? AND state = 'firing'",
        [(now, *_numbers(alert), alert["id"]) for alert in op.refresh],
    )
    return changed


def _numbers(alert: dict[str, Any]) -> tuple[Any, ...]:
    return alert["value"], alert["baseline"], alert["sample_runs"], alert["message"]


def get_rules(conn: sqlite3.Connection) -> list[dict[str, Any]] | None:
    """The stored rules document, or ``None`` when none was saved."""
    row = conn.execute("SELECT value FROM server_state WHERE key = ?", (RULES_KEY,)).fetchone()
    if row is None:
        return None
    rules: list[dict[str, Any]] = orjson.loads(row[0])
    return rules


def list_alerts(conn: sqlite3.Connection, alert_filter: AlertFilter) -> list[dict[str, Any]]:
    """Alerts matching the filter, newest ``fired_at`` (then ``id``) first."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("state", "rule_name", "agent_name"):
        value = getattr(alert_filter, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"{_ALERT_SELECT} {where} ORDER BY fired_at DESC, id DESC LIMIT ? OFFSET ?",
        [*params, alert_filter.limit, alert_filter.offset],
    )
    return [_alert(row) for row in rows]


def open_alerts(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every firing alert, oldest first."""
    rows = conn.execute(f"{_ALERT_SELECT} WHERE state = 'firing' ORDER BY id")
    return [_alert(row) for row in rows]


def recent_kpi_inputs(conn: sqlite3.Connection, agent_name: str, limit: int) -> KpiInputs:
    """KPI inputs of the agent's ``limit`` most recently recorded runs (one index range
    on ``(agent_name, created_at)``)."""
    rows = conn.execute(
        f"SELECT {', '.join(_RECENT_COLUMNS)} FROM agent_runs INDEXED BY idx_runs_agent_created"
        " WHERE agent_name = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        (agent_name, limit),
    )
    inputs = KpiInputs()
    for row in rows:
        inputs.add_run(dict(zip(_RECENT_COLUMNS, row, strict=True)))
    return inputs
