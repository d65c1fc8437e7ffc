"""``local-telemetry kpis`` and ``local-telemetry alerts``: the reports of the HTTP API.

Both print the server's numbers: ``--json`` unchanged, otherwise as a table with rates
as percentages, money in dollars and missing values as an en dash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from local_telemetry.cli import tables
from local_telemetry.cli.filters import (
    GROUP_BY_HELP,
    AgentNameOption,
    FromOption,
    JobTypeOption,
    ToOption,
    TzOption,
    kpi_params,
)
from local_telemetry.cli.remote import JsonOption, Remote, TokenOption, UrlOption, print_json
from local_telemetry.cli.root import app

KPIS_PATH = "/api/v1/kpis"
ALERTS_PATH = "/api/v1/alerts"
DEFAULT_GROUP_BY = ("agent_name", "day")
NO_GROUPING = "none"

KPI_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("total_runs", "Runs", tables.number),
    ("resolution_rate", "Resolved", tables.rate),
    ("failure_rate", "Failed", tables.rate),
    ("sla_hit_rate", "SLA hit", tables.rate),
    ("escalation_rate", "Escalated", tables.rate),
    ("self_correction_rate", "Self-corrected", tables.rate),
    ("avg_qc_score", "Avg QC", tables.number),
    ("cost_usd", "Cost", tables.money),
    ("cost_per_resolved_run", "Cost/resolved", tables.money),
    ("p50_duration_ms", "p50", tables.duration_ms),
    ("p95_duration_ms", "p95", tables.duration_ms),
)
"""(API field, column title, formatter) of the KPI table, in column order."""

GROUP_TITLES = {"agent_name": "Agent", "job_type": "Job type", "day": "Day", "week": "Week"}


def print_kpis(result: dict[str, Any]) -> None:
    """The groups of a ``GET /api/v1/kpis`` answer as one table row each."""
    keys: list[str] = list(result.get("group_by") or [])
    groups: list[dict[str, Any]] = result.get("groups") or []
    present = [column for column in KPI_COLUMNS if any(column[0] in g for g in groups)]
    columns = [GROUP_TITLES.get(key, key) for key in keys] + [title for _, title, _ in present]
    rows = (
        [tables.text(group.get(key)) for key in keys]
        + [render(group.get(field)) for field, _, render in present]
        for group in groups
    )
    span = f"{result.get('from') or 'the beginning'} to {result.get('to') or 'now'}"
    tables.print_table(
        columns, rows, title=f"KPIs, {span}", no_wrap=[GROUP_TITLES.get(k, k) for k in keys]
    )


@app.command("kpis")
def kpis(
    agent_name: AgentNameOption = None,
    job_type: JobTypeOption = None,
    start: FromOption = None,
    end: ToOption = None,
    # Not filters.GroupByOption: the default grouping and 'none' are this command's own
    # (export kpis sends only what is given, and the server's default is one group).
    group_by: Annotated[
        list[str] | None,
        typer.Option(
            "--group-by",
            help=(
                f"{GROUP_BY_HELP} 'none' for one group of everything. Default: agent_name and day."
            ),
            show_default=False,
        ),
    ] = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show KPIs of runs per group (default: per agent and day).

    The numbers of GET /api/v1/kpis: runs, resolution, failure, SLA hit and escalation
    rates, QC score, cost and duration percentiles. --json prints the server's answer
    unchanged.
    """
    chosen = list(group_by) if group_by else list(DEFAULT_GROUP_BY)
    if chosen == [NO_GROUPING]:
        chosen = []
    params = kpi_params(
        agent_name=agent_name, job_type=job_type, start=start, end=end, group_by=chosen, tz=tz
    )
    with Remote(url, token) as remote:
        result: dict[str, Any] = remote.get(KPIS_PATH, params)
    if as_json:
        print_json(result)
    elif result.get("groups"):
        print_kpis(result)
    else:
        typer.echo("no runs match", err=True)


alerts_app = typer.Typer(
    help=(
        "Alerts: without a subcommand, list firing and past alerts (newest first);"
        " 'rules' shows the rules in force, 'evaluate' evaluates them now."
    ),
)
app.add_typer(alerts_app, name="alerts")


def _alert_rows(alerts: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            tables.text(alert.get("id")),
            tables.text(alert.get("state")),
            tables.text(alert.get("rule_name")),
            tables.text(alert.get("agent_name")),
            tables.number(alert.get("value"), 4),
            tables.text(alert.get("threshold")),
            tables.number(alert.get("sample_runs")),
            tables.timestamp(alert.get("fired_at")),
            tables.timestamp(alert.get("resolved_at")),
            tables.text(alert.get("message")),
        ]
        for alert in alerts
    ]


ALERT_COLUMNS = (
    "ID",
    "State",
    "Rule",
    "Agent",
    "Value",
    "Threshold",
    "Runs",
    "Fired at",
    "Resolved at",
    "Message",
)


def print_alerts(alerts: Sequence[dict[str, Any]], title: str | None = None) -> None:
    """Alerts as a table, one row each."""
    tables.print_table(
        ALERT_COLUMNS, _alert_rows(alerts), title=title, no_wrap=("Fired at", "Resolved at")
    )


@alerts_app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option("--state", help="firing or resolved.", show_default=False),
    ] = None,
    rule_name: Annotated[
        str | None, typer.Option("--rule-name", help="Only this rule.", show_default=False)
    ] = None,
    agent_name: Annotated[
        str | None, typer.Option("--agent-name", help="Only this agent.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-1000).")] = 100,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List alerts, newest first (GET /api/v1/alerts).

    The options here apply to the listing only; see also 'alerts rules' and
    'alerts evaluate'.
    """
    if ctx.invoked_subcommand is not None:
        return
    params = {"state": state, "rule_name": rule_name, "agent_name": agent_name, "limit": limit}
    with Remote(url, token) as remote:
        found: list[dict[str, Any]] = remote.get(ALERTS_PATH, params)
    tables.print_found(found, as_json=as_json, render=print_alerts, nothing="no alerts match")


@alerts_app.command("rules")
def alert_rules(
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the alert rules in force (GET /api/v1/alerts/rules).

    These are the built-in rules until rules were saved with PUT /api/v1/alerts/rules.
    """
    with Remote(url, token) as remote:
        rules: list[dict[str, Any]] = remote.get(f"{ALERTS_PATH}/rules")
    if as_json:
        print_json(rules)
        return
    if not rules:
        typer.echo("no alert rules: alerting is off", err=True)
        return
    tables.print_table(
        ["Name", "Kind", "Threshold", "Window", "Baseline", "Agent", "Min runs", "Enabled"],
        (
            [
                tables.text(rule.get("name")),
                tables.text(rule.get("kind")),
                tables.text(rule.get("threshold")),
                tables.text(rule.get("window")),
                tables.text(rule.get("baseline")),
                tables.text(rule.get("agent_name") or "every agent"),
                tables.number(rule.get("min_runs")),
                tables.text(rule.get("enabled")),
            ]
            for rule in rules
        ),
        no_wrap=("Name",),
    )


@alerts_app.command("evaluate")
def evaluate_alerts(
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate the alert rules now and print the alerts that fired or resolved.

    POST /api/v1/alerts/evaluate is a write: it needs the token when the server has
    auth on.
    """
    with Remote(url, token) as remote:
        result: dict[str, Any] = remote.post(f"{ALERTS_PATH}/evaluate")
    if as_json:
        print_json(result)
        return
    changed: list[dict[str, Any]] = result.get("changed") or []
    typer.echo(
        f"evaluated {result.get('evaluated')} rule/agent pairs of "
        f"{result.get('enabled_rules')} enabled rules at "
        f"{tables.timestamp(result.get('evaluated_at'))}: {result.get('firing')} firing, "
        f"{len(changed)} changed"
    )
    if changed:
        print_alerts(changed, title="Changed")
