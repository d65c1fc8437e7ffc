"""Alert rules without a server: windows, per-agent precedence, verdicts, state plans."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from local_telemetry.alerts import (
    AlertRule,
    Finding,
    Window,
    applicable,
    judge,
    parse_window,
    plan,
)
from local_telemetry.storage.base import KpiInputs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", Window(span=timedelta(minutes=30))),
        ("24h", Window(span=timedelta(hours=24))),
        (" 7D ", Window(span=timedelta(days=7))),
        ("2w", Window(span=timedelta(weeks=2))),
        ("100runs", Window(runs=100)),
        ("1 run", Window(runs=1)),
        ("366d", Window(span=timedelta(days=366))),
    ],
)
def test_windows(text: str, expected: Window) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "m", "0h", "1.5h", "-1d", "367d", "100001runs", "1y"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)


def rule(**fields: Any) -> AlertRule:
    base: dict[str, Any] = {"name": "r", "kind": "failure_rate_above", "threshold": 0.5}
    return AlertRule.model_validate({"window": "1h", **base, **fields})


def test_agent_rules_replace_general_rules_of_their_kind_only() -> None:
    general_fail = rule(name="fail")
    general_sla = rule(name="sla", kind="sla_hit_rate_below", threshold=0.9)
    own_fail = rule(name="fail-b", agent_name="b", threshold=0.9)
    muted = rule(name="sla-c", kind="sla_hit_rate_below", agent_name="c", enabled=False)
    pairs = applicable([general_fail, general_sla, own_fail, muted], ["a", "b", "c"])
    assert {(r.name, agent) for r, agent in pairs} == {
        ("fail", "a"),
        ("fail", "c"),
        ("sla", "a"),
        ("sla", "b"),
        ("fail-b", "b"),
    }


def inputs(**counts: int) -> KpiInputs:
    return KpiInputs(total_runs=sum(counts.values()), status_counts=dict(counts))


def test_rate_rules_compare_strictly_and_need_min_runs() -> None:
    at_threshold = judge(rule(min_runs=4), "a", inputs(failure=2, success=2))
    assert (at_threshold.firing, at_threshold.value, at_threshold.sample_runs) == (False, 0.5, 4)
    above = judge(rule(min_runs=4), "a", inputs(failure=3, success=1))
    assert above.firing
    assert above.value == 0.75
    too_few = judge(rule(min_runs=5), "a", inputs(failure=4))
    assert not too_few.firing
    assert "needs 5" in too_few.message
    running_only = judge(rule(min_runs=1), "a", inputs(running=3))
    assert not running_only.firing
    assert running_only.value is None


def test_baseline_rules_need_baseline_runs_and_scale_cost() -> None:
    cost = rule(kind="cost_above_baseline", threshold=1.2, window="7d", baseline="14d", min_runs=1)
    now = KpiInputs(total_runs=2, cost_usd=13.0)
    before = KpiInputs(total_runs=4, cost_usd=20.0)
    verdict = judge(cost, "a", now, before, baseline_scale=0.5)
    assert verdict.firing
    assert verdict.baseline == 10.0
    assert not judge(cost, "a", now, KpiInputs(), baseline_scale=0.5).firing


def finding(name: str, agent: str, firing: bool, value: float = 0.7) -> Finding:
    return Finding(rule(name=name), agent, firing, value, None, 10, f"{name} {value}")


def open_alert(alert_id: int, name: str, agent: str, value: float = 0.7) -> dict[str, Any]:
    return {
        "id": alert_id,
        "rule_name": name,
        "agent_name": agent,
        "value": value,
        "baseline": None,
        "sample_runs": 10,
        "message": f"{name} {value}",
    }


def test_plan_opens_resolves_refreshes_and_closes_orphans() -> None:
    findings = [
        finding("new", "a", True),
        finding("still", "a", True, value=0.8),
        finding("same", "a", True),
        finding("over", "a", False),
        finding("quiet", "a", False),
    ]
    opened = [
        open_alert(1, "still", "a"),
        open_alert(2, "same", "a"),
        open_alert(3, "over", "a"),
        open_alert(4, "gone", "a"),
    ]
    changes = plan(findings, opened)
    assert [a["rule_name"] for a in changes.fire] == ["new"]
    assert sorted(a["id"] for a in changes.resolve) == [3, 4]
    assert [(a["id"], a["value"]) for a in changes.refresh] == [(1, 0.8)]
    assert not plan([finding("same", "a", True)], [open_alert(2, "same", "a")])
