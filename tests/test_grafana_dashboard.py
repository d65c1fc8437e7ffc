"""The Grafana dashboard (``deploy/grafana/local-telemetry.json``) is valid and charts
only series a real server exports."""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from alert_support import evaluate, post_runs, put_rules, run
from support import StartServer

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "local-telemetry.json"
METRIC_NAME = re.compile(r"\blocal_telemetry_[a-zA-Z0-9_]*")


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def unknown_metrics(dashboard: dict[str, Any], exported: set[str]) -> set[str]:
    """Metric names the dashboard's expressions use that the server does not export."""
    used = {name for expr in expressions(dashboard) for name in METRIC_NAME.findall(expr)}
    return used - exported


def exported_names(text: str) -> set[str]:
    """Series names of a scrape: histogram ``_bucket/_sum/_count`` and counter ``_total``
    samples by the names queries use."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def test_dashboard_is_a_grafana_dashboard_with_targets_on_every_panel() -> None:
    dashboard = load()
    assert dashboard["title"] == "Local Telemetry"
    assert dashboard["uid"] == "local-telemetry"
    assert dashboard["schemaVersion"] >= 30
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert METRIC_NAME.search(target["expr"]), (panel["title"], target["expr"])
            assert target["refId"]


def test_every_expression_uses_a_metric_the_server_exports(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_PROMETHEUS_CACHE_SECONDS="0", TELEMETRY_ALERT_INTERVAL_SECONDS="0"
    )
    agent = f"grafana-agent-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        slow = run(agent, timedelta(minutes=2), seconds=30, sla_target_seconds=1)
        post_runs(client, [slow, run(agent, timedelta(minutes=1), status="failure")])
        assert client.post("/api/v1/runs", json={}).status_code == 422
        rule = {"name": "slow", "kind": "sla_hit_rate_below", "threshold": 0.9, "window": "24h"}
        put_rules(client, [{**rule, "agent_name": agent, "min_runs": 1}])
        evaluate(client)
        response = client.get("/metrics/prometheus")
    assert response.status_code == 200
    exported = exported_names(response.text)
    dashboard = load()
    assert unknown_metrics(dashboard, exported) == set()

    made_up = copy.deepcopy(dashboard)
    made_up["panels"][0]["targets"].append(
        {"refId": "Z", "expr": "rate(local_telemetry_made_up_total[5m])"}
    )
    assert unknown_metrics(made_up, exported) == {"local_telemetry_made_up_total"}
