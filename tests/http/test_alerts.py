"""Alert rules API and evaluation through a real server (evaluated on demand here; the
periodic evaluator and webhooks are in test_alert_webhooks.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_support import agent_name, alerts_of, evaluate, post_runs, put_rules, run
from support import ServerProcess, StartServer

BUILT_IN_KINDS = {
    "sla-hit-rate-daily": ("sla_hit_rate_below", 0.9, "24h"),
    "failure-rate-spike": ("failure_rate_spike", 2.0, "1h"),
    "escalation-rate-high": ("escalation_rate_above", 0.2, "100runs"),
    "duration-above-baseline": ("duration_above_baseline", 1.5, "30m"),
    "cost-week-over-week": ("cost_above_baseline", 1.2, "7d"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose evaluator never runs by itself (tests evaluate on demand)."""
    path = tmp_path_factory.mktemp("alerts") / "telemetry.sqlite"
    server = ServerProcess(path, {"TELEMETRY_ALERT_INTERVAL_SECONDS": "0"})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


# ----- rules API -----


def test_built_in_rules_are_the_runbooks_until_rules_are_saved(start_server: StartServer) -> None:
    server = start_server()
    rules = httpx.get(f"{server.url}/api/v1/alerts/rules").json()
    assert {r["name"]: (r["kind"], r["threshold"], r["window"]) for r in rules} == BUILT_IN_KINDS
    assert all(r["enabled"] and r["agent_name"] is None for r in rules)
    baselines = {r["name"]: r["baseline"] for r in rules}
    assert baselines["cost-week-over-week"] == "7d"
    assert baselines["sla-hit-rate-daily"] is None


def test_saved_rules_are_returned_with_defaults_and_survive_a_restart(
    start_server: StartServer, tmp_path: Path
) -> None:
    db = tmp_path / "rules.sqlite"
    server = start_server(db)
    sent = [
        {"name": "sla", "kind": "sla_hit_rate_below", "threshold": 0.95, "window": "12h"},
        {
            "name": "cost-a",
            "kind": "cost_above_baseline",
            "threshold": 1.5,
            "window": "7d",
            "agent_name": "agent-a",
            "enabled": False,
            "min_runs": 3,
        },
    ]
    stored = put_rules(httpx.Client(base_url=server.url), sent)
    assert stored == [
        {**sent[0], "agent_name": None, "enabled": True, "min_runs": 10, "baseline": None},
        {**sent[1], "baseline": "7d"},
    ]
    server.stop()
    again = start_server(db)
    assert httpx.get(f"{again.url}/api/v1/alerts/rules").json() == stored


def test_an_empty_rule_list_turns_every_alert_off(client: httpx.Client) -> None:
    agent = agent_name()
    post_runs(client, [run(agent, timedelta(minutes=5), seconds=120, sla_target_seconds=1)] * 1)
    assert put_rules(client, []) == []
    assert client.get("/api/v1/alerts/rules").json() == []
    result = evaluate(client)
    assert result["enabled_rules"] == 0
    assert result["evaluated"] == 0


GOOD_RULE = {"name": "r", "kind": "failure_rate_above", "threshold": 0.5, "window": "1h"}
BAD_RULES: list[tuple[str, Any]] = [
    ("not an array", {"rules": []}),
    ("a rule that is not an object", ["sla"]),
    ("unknown kind", [{**GOOD_RULE, "kind": "latency_above"}]),
    ("rate threshold above 1", [{**GOOD_RULE, "threshold": 1.5}]),
    ("negative threshold", [{**GOOD_RULE, "threshold": -0.1}]),
    ("threshold as a string", [{**GOOD_RULE, "threshold": "0.5"}]),
    ("ratio threshold of 0", [{**GOOD_RULE, "kind": "failure_rate_spike", "threshold": 0}]),
    ("unknown window unit", [{**GOOD_RULE, "window": "5x"}]),
    ("empty window", [{**GOOD_RULE, "window": "0m"}]),
    ("window longer than a year", [{**GOOD_RULE, "window": "400d"}]),
    ("run window on a baseline kind", [{**GOOD_RULE, "kind": "cost_above_baseline",
                                        "threshold": 1.2, "window": "100runs"}]),
    ("baseline on a rate kind", [{**GOOD_RULE, "baseline": "7d"}]),
    ("baseline counted in runs", [{**GOOD_RULE, "kind": "failure_rate_spike", "threshold": 2,
                                   "baseline": "50runs"}]),
    ("repeated name", [GOOD_RULE, {**GOOD_RULE, "threshold": 0.7}]),
    ("unknown field", [{**GOOD_RULE, "treshold": 0.3}]),
    ("enabled as a string", [{**GOOD_RULE, "enabled": "yes"}]),
    ("min_runs of 0", [{**GOOD_RULE, "min_runs": 0}]),
    ("min_runs as a float", [{**GOOD_RULE, "min_runs": 2.5}]),
    ("empty name", [{**GOOD_RULE, "name": "  "}]),
    ("NUL in the name", [{**GOOD_RULE, "name": "a\u0000b"}]),
    ("NUL in the agent", [{**GOOD_RULE, "agent_name": "a\u0000b"}]),
    ("missing threshold", [{"name": "r", "kind": "failure_rate_above", "window": "1h"}]),
    ("too many rules", [{**GOOD_RULE, "name": f"r{i}"} for i in range(501)]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body"), BAD_RULES, ids=[case for case, _ in BAD_RULES])
def test_bad_rules_are_422_and_change_nothing(client: httpx.Client, case: str, body: Any) -> None:
    before = put_rules(client, [{**GOOD_RULE, "name": f"kept-{uuid.uuid4().hex[:6]}"}])
    response = client.put("/api/v1/alerts/rules", json=body)
    assert response.status_code == 422, (case, response.text)
    assert response.json()["detail"]
    assert client.get("/api/v1/alerts/rules").json() == before


def test_malformed_json_rules_are_422(client: httpx.Client) -> None:
    response = client.put(
        "/api/v1/alerts/rules", content=b"[{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "params",
    [{"state": "open"}, {"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}, {"limit": "x"}],
)
def test_bad_alert_queries_are_422(client: httpx.Client, params: dict[str, str]) -> None:
    assert client.get("/api/v1/alerts", params=params).status_code == 422


def test_rules_need_the_token_when_auth_is_on(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN="secret-token"
    )
    with httpx.Client(base_url=server.url) as client:
        assert client.put("/api/v1/alerts/rules", json=[GOOD_RULE]).status_code == 401
        assert client.post("/api/v1/alerts/evaluate").status_code == 401
        assert client.get("/api/v1/alerts/rules").status_code == 401  # reads too (issue 10)
        good = {"authorization": "Bearer secret-token"}
        names = [r["name"] for r in client.get("/api/v1/alerts/rules", headers=good).json()]
        assert names == list(BUILT_IN_KINDS)  # nothing was saved
        assert client.put("/api/v1/alerts/rules", json=[GOOD_RULE], headers=good).status_code == 200


# ----- evaluation -----


def sla_runs(agent: str, hits: int, misses: int, ago: timedelta) -> list[dict[str, Any]]:
    """Ended runs with a 60 s target: ``hits`` took 30 s, ``misses`` 90 s."""
    return [
        run(agent, ago, seconds=30 if i < hits else 90, sla_target_seconds=60)
        for i in range(hits + misses)
    ]


def test_sla_rule_fires_once_then_resolves(client: httpx.Client) -> None:
    good, bad = agent_name(), agent_name()
    put_rules(
        client,
        [{"name": "sla", "kind": "sla_hit_rate_below", "threshold": 0.9, "window": "24h"}],
    )
    post_runs(client, sla_runs(bad, hits=8, misses=2, ago=timedelta(hours=2)))
    post_runs(client, sla_runs(good, hits=10, misses=0, ago=timedelta(hours=2)))
    # A miss older than the window does not count.
    post_runs(client, sla_runs(good, hits=0, misses=5, ago=timedelta(hours=30)))

    first = evaluate(client)
    fired = [a for a in first["changed"] if a["agent_name"] == bad]
    assert [(a["state"], a["rule_name"], a["value"], a["sample_runs"]) for a in fired] == [
        ("firing", "sla", 0.8, 10)
    ]
    assert fired[0]["threshold"] == 0.9
    assert fired[0]["resolved_at"] is None
    assert "0.8" in fired[0]["message"]
    assert bad in fired[0]["message"]
    assert alerts_of(client, good) == []

    second = evaluate(client)  # still firing: no second alert, no transition
    assert [a for a in second["changed"] if a["agent_name"] == bad] == []
    assert [a["state"] for a in alerts_of(client, bad)] == ["firing"]

    post_runs(client, sla_runs(bad, hits=30, misses=0, ago=timedelta(hours=1)))  # 38/40
    third = evaluate(client)
    resolved = [a for a in third["changed"] if a["agent_name"] == bad]
    assert [(a["state"], a["value"], a["sample_runs"]) for a in resolved] == [
        ("resolved", 0.95, 40)
    ]
    assert resolved[0]["resolved_at"] >= resolved[0]["fired_at"]
    stored = alerts_of(client, bad)
    assert len(stored) == 1
    assert stored[0] == resolved[0]
    assert alerts_of(client, bad, state="firing") == []
    assert alerts_of(client, bad, state="resolved") == stored


def test_too_few_runs_never_fire(client: httpx.Client) -> None:
    agent = agent_name()
    put_rules(
        client,
        [{"name": "sla5", "kind": "sla_hit_rate_below", "threshold": 0.9, "window": "24h",
          "min_runs": 6}],
    )  # fmt: skip
    post_runs(client, sla_runs(agent, hits=0, misses=5, ago=timedelta(hours=1)))
    evaluate(client)
    assert alerts_of(client, agent) == []
    post_runs(client, sla_runs(agent, hits=0, misses=1, ago=timedelta(hours=1)))
    evaluate(client)
    assert [(a["value"], a["sample_runs"]) for a in alerts_of(client, agent)] == [(0.0, 6)]


def test_an_agent_rule_replaces_the_general_rule_of_its_kind(client: httpx.Client) -> None:
    lenient, other = agent_name(), agent_name()
    put_rules(
        client,
        [
            {"name": "sla-all", "kind": "sla_hit_rate_below", "threshold": 0.9, "window": "24h"},
            {"name": "sla-lenient", "kind": "sla_hit_rate_below", "threshold": 0.7,
             "window": "24h", "agent_name": lenient},
        ],
    )  # fmt: skip
    post_runs(client, sla_runs(lenient, hits=8, misses=2, ago=timedelta(hours=1)))  # 0.8
    post_runs(client, sla_runs(other, hits=8, misses=2, ago=timedelta(hours=1)))  # 0.8
    evaluate(client)
    assert alerts_of(client, lenient) == []
    assert [a["rule_name"] for a in alerts_of(client, other)] == ["sla-all"]

    # A disabled agent rule still replaces the general one: the agent is muted.
    put_rules(
        client,
        [
            {"name": "sla-all", "kind": "sla_hit_rate_below", "threshold": 0.9, "window": "24h"},
            {"name": "sla-mute", "kind": "sla_hit_rate_below", "threshold": 0.99,
             "window": "24h", "agent_name": other, "enabled": False},
        ],
    )  # fmt: skip
    result = evaluate(client)
    closed = [a for a in result["changed"] if a["agent_name"] == other]
    assert [a["state"] for a in closed] == ["resolved"]
    assert "no longer evaluated" in closed[0]["message"]


def test_run_count_window_uses_the_agents_latest_runs(client: httpx.Client) -> None:
    agent = agent_name()
    put_rules(
        client,
        [{"name": "esc", "kind": "escalation_rate_above", "threshold": 0.2,
          "window": "20runs"}],
    )  # fmt: skip
    # Recorded first: 20 escalations. Then 20 runs with 2 escalations (10%). Over all 40
    # runs the rate would be 55% (and fire); over the latest 20 it is 10%.
    post_runs(client, [run(agent, timedelta(days=3), resolution="escalated") for _ in range(20)])
    post_runs(
        client,
        [
            run(agent, timedelta(days=3), resolution="escalated" if i < 2 else "resolved")
            for i in range(20)
        ],
    )
    evaluate(client)
    assert alerts_of(client, agent) == []
    # 5 more escalations: the newest 20 are these 5 and the last 15 of the second batch
    # (whose 2 escalations came first): 5 / 20.
    post_runs(client, [run(agent, timedelta(days=3), resolution="escalated") for _ in range(5)])
    evaluate(client)
    [alert] = alerts_of(client, agent)
    assert (alert["state"], alert["value"], alert["sample_runs"]) == ("firing", 0.25, 20)


def test_failure_rate_spike_compares_with_the_baseline(client: httpx.Client) -> None:
    spiking, steady = agent_name(), agent_name()
    put_rules(
        client,
        [{"name": "spike", "kind": "failure_rate_spike", "threshold": 2.0, "window": "1h",
          "baseline": "7d", "min_runs": 10}],
    )  # fmt: skip
    for agent, recent_failures in ((spiking, 5), (steady, 1)):
        baseline = [
            run(agent, timedelta(days=2), status="failure" if i < 2 else "success")
            for i in range(20)
        ]  # 10% failures
        recent = [
            run(
                agent, timedelta(minutes=10), status="failure" if i < recent_failures else "success"
            )
            for i in range(10)
        ]
        post_runs(client, baseline + recent)
    evaluate(client)
    [alert] = alerts_of(client, spiking)
    assert (alert["kind"], alert["value"], alert["baseline"], alert["sample_runs"]) == (
        "failure_rate_spike",
        0.5,
        0.1,
        10,
    )
    assert alerts_of(client, steady) == []  # 0.1 is not above 2 x 0.1


def test_duration_above_baseline(client: httpx.Client) -> None:
    slow, usual = agent_name(), agent_name()
    put_rules(
        client,
        [{"name": "slow", "kind": "duration_above_baseline", "threshold": 1.5, "window": "30m",
          "min_runs": 5}],
    )  # fmt: skip
    for agent, recent_ms in ((slow, 2000), (usual, 1400)):
        post_runs(client, [run(agent, timedelta(days=1), duration_ms=1000) for _ in range(10)])
        post_runs(
            client, [run(agent, timedelta(minutes=5), duration_ms=recent_ms) for _ in range(5)]
        )
    evaluate(client)
    [alert] = alerts_of(client, slow)
    assert (alert["value"], alert["baseline"], alert["sample_runs"]) == (2000.0, 1000.0, 5)
    assert alert["threshold"] == 1.5
    assert alerts_of(client, usual) == []


def test_cost_week_over_week(client: httpx.Client) -> None:
    dearer, flat, new = agent_name(), agent_name(), agent_name()
    put_rules(
        client,
        [{"name": "cost", "kind": "cost_above_baseline", "threshold": 1.2, "window": "7d",
          "baseline": "14d", "min_runs": 3}],
    )  # fmt: skip
    # Baseline: two weeks at 1.0 a run, 10 runs a week (20 runs, 20.0 over 14 days =
    # 10.0 per 7 days). This week: 10 runs at 1.3 (13.0 > 1.2 x 10.0) or 1.1 (11.0).
    for agent, price in ((dearer, 1.3), (flat, 1.1)):
        post_runs(client, [run(agent, timedelta(days=10), cost_usd=1.0) for _ in range(20)])
        post_runs(client, [run(agent, timedelta(days=2), cost_usd=price) for _ in range(10)])
    post_runs(client, [run(new, timedelta(days=1), cost_usd=50.0) for _ in range(5)])
    evaluate(client)
    [alert] = alerts_of(client, dearer)
    assert alert["value"] == pytest.approx(13.0)
    assert alert["baseline"] == pytest.approx(10.0)
    assert alerts_of(client, flat) == []
    assert alerts_of(client, new) == []  # nothing to compare with: no baseline runs


def test_rules_of_other_agents_and_disabled_rules_do_not_fire(client: httpx.Client) -> None:
    agent, elsewhere = agent_name(), agent_name()
    put_rules(
        client,
        [
            {"name": "fail-off", "kind": "failure_rate_above", "threshold": 0.1, "window": "1h",
             "enabled": False},
            {"name": "fail-elsewhere", "kind": "failure_rate_above", "threshold": 0.1,
             "window": "1h", "agent_name": elsewhere, "min_runs": 1},
        ],
    )  # fmt: skip
    post_runs(client, [run(agent, timedelta(minutes=5), status="failure") for _ in range(12)])
    result = evaluate(client)
    assert alerts_of(client, agent) == []
    assert result["enabled_rules"] == 1
