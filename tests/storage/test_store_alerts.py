"""Store contract for alert rules, alert state and the evaluator's run-count reads."""

from __future__ import annotations

from typing import Any

from local_telemetry.storage.base import (
    ALERT_COLUMNS,
    AlertFilter,
    InsertRuns,
    RecordAlerts,
    SaveAlertRules,
    Store,
)
from local_telemetry.timestamps import normalize
from support import store_row as row


def fire(rule: str, agent: str, value: float = 0.5) -> dict[str, Any]:
    return {
        "rule_name": rule,
        "kind": "failure_rate_above",
        "agent_name": agent,
        "threshold": 0.4,
        "value": value,
        "baseline": None,
        "sample_runs": 12,
        "message": f"{rule} fired",
    }


def numbers(alert_id: int, value: float, message: str) -> dict[str, Any]:
    return {"id": alert_id, "value": value, "baseline": None, "sample_runs": 20, "message": message}


def test_rules_are_none_until_saved_then_replaced_whole(store: Store) -> None:
    assert store.get_alert_rules() is None
    first = [{"name": "a", "threshold": 0.5}, {"name": "b", "threshold": 2.0}]
    assert store.apply([SaveAlertRules(first)]) == [None]
    assert store.get_alert_rules() == first
    store.apply([SaveAlertRules([])])
    assert store.get_alert_rules() == []


def test_alerts_fire_once_per_pair_refresh_and_resolve(store: Store) -> None:
    [fired] = store.apply([RecordAlerts(fire=[fire("r", "a"), fire("r", "b")])])
    assert [(a["agent_name"], a["state"]) for a in fired] == [("a", "firing"), ("b", "firing")]
    assert set(fired[0]) == set(ALERT_COLUMNS)
    assert fired[0]["resolved_at"] is None
    # The same pair again while open: not stored twice, not reported as changed.
    assert store.apply([RecordAlerts(fire=[fire("r", "a", 0.9)])]) == [[]]
    a_id, b_id = fired[0]["id"], fired[1]["id"]

    refreshed = store.apply([RecordAlerts(refresh=[numbers(a_id, 0.7, "now 0.7")])])
    assert refreshed == [[]]
    [open_a] = [alert for alert in store.open_alerts() if alert["id"] == a_id]
    assert (open_a["value"], open_a["message"], open_a["state"]) == (0.7, "now 0.7", "firing")

    [[resolved]] = store.apply([RecordAlerts(resolve=[numbers(b_id, 0.1, "ok again")])])
    assert (resolved["id"], resolved["state"], resolved["value"]) == (b_id, "resolved", 0.1)
    assert resolved["resolved_at"] is not None
    assert store.apply([RecordAlerts(resolve=[numbers(b_id, 0.1, "again")])]) == [[]]
    assert [alert["id"] for alert in store.open_alerts()] == [a_id]

    # After resolving, the pair may fire again: a new episode.
    [[again]] = store.apply([RecordAlerts(fire=[fire("r", "b")])])
    assert again["id"] not in (a_id, b_id)
    listed = store.list_alerts(AlertFilter(agent_name="b"))
    assert [alert["id"] for alert in listed] == [again["id"], b_id]
    assert [a["id"] for a in store.list_alerts(AlertFilter(state="resolved"))] == [b_id]
    assert store.list_alerts(AlertFilter(rule_name="other")) == []
    assert len(store.list_alerts(AlertFilter(limit=1, offset=1))) == 1


def test_recent_kpi_inputs_take_the_latest_recorded_runs(store: Store) -> None:
    start = normalize("2026-01-12T10:00:00Z")
    older = [row(f"old-{i}", agent_name="a", start_time=start, status="failure") for i in range(5)]
    newer = [
        row(
            f"new-{i}",
            agent_name="a",
            start_time=start,
            status="success",
            end_time=normalize("2026-01-12T10:00:30Z"),
            sla_target_seconds=20 if i == 0 else 60,
            resolution="escalated" if i == 0 else "resolved",
            cost_usd=0.5,
        )
        for i in range(3)
    ]
    store.apply([InsertRuns(older)])
    store.apply([InsertRuns(newer), InsertRuns([row("other", agent_name="b", start_time=start)])])
    inputs = store.recent_kpi_inputs("a", 4)
    assert inputs.total_runs == 4
    assert inputs.status_counts == {"success": 3, "failure": 1}
    assert (inputs.escalated, inputs.resolved, inputs.with_resolution) == (1, 2, 3)
    assert (inputs.sla_hits, inputs.sla_measured) == (2, 3)
    assert inputs.cost_usd == 1.5
    assert sorted(inputs.durations_ms) == [30_000, 30_000, 30_000]
    assert store.recent_kpi_inputs("nobody", 10).total_runs == 0
