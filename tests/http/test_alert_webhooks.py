"""The periodic alert evaluator and webhook delivery, with real local HTTP receivers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from alert_support import agent_name, post_runs, put_rules, run
from support import StartServer, free_port
from webhook_receiver import Receiver

FAILURE_RULE = {
    "name": "failures",
    "kind": "failure_rate_above",
    "threshold": 0.5,
    "window": "1h",
    "min_runs": 4,
}


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answers: list[int] | None = None) -> Receiver:
        receiver = Receiver(answers)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def failing_runs(agent: str, failures: int, successes: int) -> list[dict[str, Any]]:
    return [run(agent, timedelta(minutes=5), status="failure") for _ in range(failures)] + [
        run(agent, timedelta(minutes=5), status="success") for _ in range(successes)
    ]


def wait_for_alerts(
    client: httpx.Client, agent: str, predicate: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = client.get(
            "/api/v1/alerts", params={"agent_name": agent}
        ).json()
        if predicate(found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"alerts of {agent} never matched: {found!r}")


def test_the_evaluator_runs_by_itself_and_each_transition_reaches_the_webhook(
    start_server: StartServer, receivers: Callable[..., Receiver]
) -> None:
    hook = receivers()
    server = start_server(TELEMETRY_ALERT_INTERVAL_SECONDS="0.2", TELEMETRY_ALERT_WEBHOOKS=hook.url)
    agent = agent_name()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        put_rules(client, [FAILURE_RULE])
        post_runs(client, failing_runs(agent, failures=3, successes=1))  # 75% failures

        [alert] = wait_for_alerts(client, agent, lambda found: len(found) == 1)
        assert alert["state"] == "firing"
        assert alert["value"] == 0.75
        [firing] = hook.wait_for(lambda got: len(got) == 1)
        assert firing["event"] == "alert.firing"
        assert firing["alert"] == alert
        assert firing["sent_at"].endswith("Z")

        post_runs(client, failing_runs(agent, failures=0, successes=8))  # 3 of 12
        wait_for_alerts(client, agent, lambda found: found[0]["state"] == "resolved")
        delivered = hook.wait_for(lambda got: len(got) == 2)
        assert [body["event"] for body in delivered] == ["alert.firing", "alert.resolved"]
        resolved = delivered[1]["alert"]
        assert resolved["id"] == alert["id"]
        assert resolved["value"] == 0.25
        assert resolved["resolved_at"] is not None
    headers = hook.headers[0]
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("local-telemetry/")


def test_webhooks_are_retried_and_a_dead_receiver_does_not_hold_up_the_others(
    start_server: StartServer, receivers: Callable[..., Receiver]
) -> None:
    flaky = receivers([500, 503])  # two failures, then 200
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    refusing = receivers([400])  # not retried
    server = start_server(
        TELEMETRY_ALERT_INTERVAL_SECONDS="0",
        TELEMETRY_ALERT_WEBHOOKS=f"{dead},{flaky.url},{refusing.url}",
    )
    agent = agent_name()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        put_rules(client, [FAILURE_RULE])
        post_runs(client, failing_runs(agent, failures=4, successes=0))
        changed = client.post("/api/v1/alerts/evaluate").json()["changed"]
        assert [a["state"] for a in changed] == ["firing"]

        [body] = flaky.wait_for(lambda got: len(got) == 1)
        assert body["alert"]["agent_name"] == agent
        assert [r["answer"] for r in flaky.received] == [500, 503, 200]

        # Ingestion carries on while the dead receiver is being retried.
        post_runs(client, failing_runs(agent, failures=0, successes=12))
        changed = client.post("/api/v1/alerts/evaluate").json()["changed"]
        assert [a["state"] for a in changed] == ["resolved"]
        flaky.wait_for(lambda got: len(got) == 2)
        # The refusing receiver got the firing notice once (400: not retried), then the
        # resolved one: its queue moved on.
        refusing_got = refusing.wait_for(lambda got: len(got) == 1)
        assert refusing_got[0]["event"] == "alert.resolved"
        assert [r["answer"] for r in refusing.received] == [400, 200]
