"""Alert rules and their evaluation: which (rule, agent) pairs fire right now.

A rule (``GET/PUT /api/v1/alerts/rules``) names a *kind*, a ``threshold``, a ``window``
and optionally one agent. Every kind measures one KPI of ``kpis.py`` over the window:

======================== ============================== ===============================
kind                     measure (window)               fires when
======================== ============================== ===============================
sla_hit_rate_below       SLA hit rate                   value < threshold
failure_rate_above       failure rate                   value > threshold
escalation_rate_above    escalation rate                value > threshold
failure_rate_spike       failure rate vs baseline       value > threshold x baseline
duration_above_baseline  average duration vs baseline   value > threshold x baseline
cost_above_baseline      total cost vs baseline         value > threshold x baseline
======================== ============================== ===============================

A ``window`` is a span of time ending now (``30m``, ``24h``, ``7d``, ``1w``: runs whose
``start_time`` lies in it) or, for the first three kinds, a run count (``100runs``: the
agent's most recently recorded runs). The *baseline* of the last three kinds is the span
``baseline`` (default ``7d``) right before the window; the cost baseline is scaled to
the window's length, so ``window=7d, baseline=7d, threshold=1.2`` means "cost up more
than 20% week over week". A rule fires only when the window holds at least
``min_runs`` runs the measure counts (its denominator) and, for baseline kinds, the
baseline holds at least one.

Rules apply per agent: a rule without ``agent_name`` is evaluated for every agent
separately, except agents that have a rule of their own of the same kind (enabled or
not), which replaces it for them; that is how thresholds are set per agent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, model_validator

from local_telemetry import kpis
from local_telemetry.durations import describe_duration, parse_duration
from local_telemetry.storage.base import KpiFilter, KpiInputs, RecordAlerts, Store
from local_telemetry.timestamps import to_stored

AlertKind = Literal[
    "sla_hit_rate_below",
    "failure_rate_above",
    "escalation_rate_above",
    "failure_rate_spike",
    "duration_above_baseline",
    "cost_above_baseline",
]
RATE_KINDS = frozenset({"sla_hit_rate_below", "failure_rate_above", "escalation_rate_above"})
BASELINE_KINDS = frozenset({"failure_rate_spike", "duration_above_baseline", "cost_above_baseline"})
DEFAULT_BASELINE = "7d"
MAX_RULES = 500
MAX_WINDOW_RUNS = 100_000
MAX_WINDOW = timedelta(days=366)

_RUN_WINDOW = re.compile(r"^\s*(\d{1,9})\s*runs?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Window:
    """A parsed window: a span of time, or the last ``runs`` runs."""

    span: timedelta | None = None
    runs: int | None = None

    def describe(self) -> str:
        """Readable form for alert messages ("last 24h", "last 100 runs")."""
        if self.runs is not None:
            return f"last {self.runs} runs"
        assert self.span is not None
        return f"last {describe_duration(self.span)}"


def parse_window(text: str) -> Window:
    """``30m``/``24h``/``7d``/``1w`` (a span up to 366 days) or ``100runs`` (1..100,000).

    ``ValueError`` for anything else.
    """
    runs = _RUN_WINDOW.match(text)
    if runs is not None:
        amount = int(runs.group(1))
        if amount <= 0:
            raise ValueError("a window must be longer than 0")
        if amount > MAX_WINDOW_RUNS:
            raise ValueError(f"a run-count window holds at most {MAX_WINDOW_RUNS} runs")
        return Window(runs=amount)
    try:
        span = parse_duration(text)
    except ValueError:
        raise ValueError(f"window {text!r} must look like 30m, 24h, 7d, 1w or 100runs") from None
    if span > MAX_WINDOW:
        raise ValueError("a window spans at most 366 days")
    return Window(span=span)


def _window_text(value: str) -> str:
    parse_window(value)
    return value.strip()


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


RuleName = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
WindowText = Annotated[str, StringConstraints(max_length=32)]


class AlertRule(BaseModel):
    """One alert rule. Unknown fields are refused (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RuleName
    kind: AlertKind
    threshold: Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=1e9)]
    window: WindowText
    agent_name: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    enabled: Annotated[bool, Strict()] = True
    min_runs: Annotated[int, Strict(), Field(ge=1, le=MAX_WINDOW_RUNS)] = 10
    baseline: WindowText | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AlertRule:
        for text in (self.name, self.agent_name or ""):
            _no_nul(text)
        window = parse_window(self.window)
        if self.kind in RATE_KINDS:
            if self.threshold > 1:
                raise ValueError(f"{self.kind}: threshold is a rate between 0 and 1")
            if self.baseline is not None:
                raise ValueError(f"{self.kind} has no baseline")
        else:
            if window.runs is not None:
                raise ValueError(f"{self.kind} needs a time window (30m, 24h, 7d ...)")
            if self.threshold <= 0:
                raise ValueError(f"{self.kind}: threshold is a ratio to the baseline (> 0)")
            if self.baseline is None:
                object.__setattr__(self, "baseline", DEFAULT_BASELINE)
            elif parse_window(self.baseline).span is None:
                raise ValueError("baseline must be a span of time (24h, 7d ...)")
        return self

    def window_spec(self) -> Window:
        """The parsed ``window``."""
        return parse_window(self.window)

    def baseline_span(self) -> timedelta:
        """The parsed ``baseline`` span (baseline kinds only)."""
        span = parse_window(self.baseline or DEFAULT_BASELINE).span
        assert span is not None
        return span


BUILT_IN_RULES: tuple[AlertRule, ...] = (
    AlertRule(name="sla-hit-rate-daily", kind="sla_hit_rate_below", threshold=0.9, window="24h"),
    AlertRule(
        name="failure-rate-spike",
        kind="failure_rate_spike",
        threshold=2.0,
        window="1h",
        baseline="7d",
    ),
    AlertRule(
        name="escalation-rate-high", kind="escalation_rate_above", threshold=0.2, window="100runs"
    ),
    AlertRule(
        name="duration-above-baseline",
        kind="duration_above_baseline",
        threshold=1.5,
        window="30m",
        baseline="7d",
        min_runs=5,
    ),
    AlertRule(
        name="cost-week-over-week",
        kind="cost_above_baseline",
        threshold=1.2,
        window="7d",
        baseline="7d",
    ),
)
"""The runbook's alerts: daily SLA hit rate < 90%, failure-rate spike, escalation rate
> 20% over the last 100 runs, average duration > 1.5x its baseline over 30 minutes, cost
up > 20% week over week."""


def rules_from_json(data: Any) -> list[AlertRule]:
    """Validate a JSON array of rules (unique names); ``ValueError``/pydantic errors."""
    if not isinstance(data, list):
        raise ValueError("alert rules must be a JSON array")
    if len(data) > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES} alert rules")
    rules = [AlertRule.model_validate(item) for item in data]
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"rule name {rule.name!r} is used twice")
        seen.add(rule.name)
    return rules


def rule_dicts(rules: Iterable[AlertRule]) -> list[dict[str, Any]]:
    """Rules as the JSON the API answers (every field, defaults filled in)."""
    return [rule.model_dump() for rule in rules]


# ----- measures -----

Measure = Callable[[KpiInputs], tuple[float | None, int]]
"""A KPI of the window's inputs and its sample size (the KPI's denominator)."""


def _sla(inputs: KpiInputs) -> tuple[float | None, int]:
    return kpis.sla_hit_rate(inputs.sla_hits, inputs.sla_measured), inputs.sla_measured


def _failure(inputs: KpiInputs) -> tuple[float | None, int]:
    return kpis.failure_rate(inputs.status_counts), kpis.completed_runs(inputs.status_counts)


def _escalation(inputs: KpiInputs) -> tuple[float | None, int]:
    rate = kpis.escalation_rate(inputs.escalated, inputs.with_resolution)
    return rate, inputs.with_resolution


def _duration(inputs: KpiInputs) -> tuple[float | None, int]:
    durations = inputs.durations_ms
    return kpis.average(float(sum(durations)), len(durations)), len(durations)


def _cost(inputs: KpiInputs) -> tuple[float | None, int]:
    return (inputs.cost_usd if inputs.total_runs else None), inputs.total_runs


MEASURES: dict[str, tuple[str, Measure]] = {
    "sla_hit_rate_below": ("SLA hit rate", _sla),
    "failure_rate_above": ("failure rate", _failure),
    "escalation_rate_above": ("escalation rate", _escalation),
    "failure_rate_spike": ("failure rate", _failure),
    "duration_above_baseline": ("average duration (ms)", _duration),
    "cost_above_baseline": ("cost (USD)", _cost),
}


@dataclass(frozen=True)
class Finding:
    """The verdict of one rule for one agent at one evaluation."""

    rule: AlertRule
    agent_name: str
    firing: bool
    value: float | None
    baseline: float | None
    sample_runs: int
    message: str


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def judge(
    rule: AlertRule,
    agent: str,
    current: KpiInputs,
    previous: KpiInputs | None = None,
    baseline_scale: float = 1.0,
) -> Finding:
    """Whether ``rule`` fires for ``agent`` given the window's (and baseline's) inputs."""
    label, measure = MEASURES[rule.kind]
    value, samples = measure(current)
    where = f"{rule.window_spec().describe()}, agent {agent!r}"
    if value is None or samples < rule.min_runs:
        return Finding(
            rule, agent, False, value, None, samples,
            f"{label}: {samples} runs measured over the {where} (needs {rule.min_runs})",
        )  # fmt: skip
    if rule.kind in RATE_KINDS:
        firing = (
            value < rule.threshold
            if rule.kind == "sla_hit_rate_below"
            else (value > rule.threshold)
        )
        sign = "<" if rule.kind == "sla_hit_rate_below" else ">"
        verdict = sign if firing else ("not " + sign)
        message = (
            f"{label} {_fmt(value)} {verdict} {_fmt(rule.threshold)} over the {where}"
            f" ({samples} runs)"
        )
        return Finding(rule, agent, firing, value, None, samples, message)
    base_value, base_samples = measure(previous) if previous is not None else (None, 0)
    if base_value is None or base_samples == 0:
        return Finding(
            rule, agent, False, value, None, samples,
            f"{label} {_fmt(value)} over the {where}: no baseline runs to compare with",
        )  # fmt: skip
    base_value *= baseline_scale
    limit = rule.threshold * base_value
    firing = value > limit
    message = (
        f"{label} {_fmt(value)} {'>' if firing else '<='} {_fmt(rule.threshold)} x baseline"
        f" {_fmt(base_value)} (previous {rule.baseline}) over the {where} ({samples} runs)"
    )
    return Finding(rule, agent, firing, value, base_value, samples, message)


def applicable(rules: Sequence[AlertRule], agents: Iterable[str]) -> list[tuple[AlertRule, str]]:
    """The enabled (rule, agent) pairs to evaluate (agent rules replace general ones)."""
    own_kinds = {(rule.agent_name, rule.kind) for rule in rules if rule.agent_name is not None}
    pairs: list[tuple[AlertRule, str]] = []
    agent_list = sorted(set(agents))
    for rule in rules:
        if not rule.enabled:
            continue
        if rule.agent_name is not None:
            pairs.append((rule, rule.agent_name))
            continue
        pairs.extend((rule, agent) for agent in agent_list if (agent, rule.kind) not in own_kinds)
    return pairs


@dataclass
class _Inputs:
    """KPI inputs read once per evaluation and shared by the rules that need them."""

    store: Store
    spans: dict[tuple[str, str], dict[tuple[str, ...], KpiInputs]] = field(default_factory=dict)
    counted: dict[tuple[str, int], KpiInputs] = field(default_factory=dict)

    def span(self, agent: str, start: datetime, end: datetime) -> KpiInputs:
        key = (to_stored(start), to_stored(end))
        groups = self.spans.get(key)
        if groups is None:
            kpi_filter = KpiFilter(start_time_from=key[0], start_time_to=key[1])
            groups = self.spans[key] = self.store.kpi_inputs(kpi_filter, ("agent_name",), "UTC")
        return groups.get((agent,)) or KpiInputs()

    def last_runs(self, agent: str, count: int) -> KpiInputs:
        found = self.counted.get((agent, count))
        if found is None:
            found = self.counted[(agent, count)] = self.store.recent_kpi_inputs(agent, count)
        return found


def evaluate(store: Store, rules: Sequence[AlertRule], now: datetime) -> list[Finding]:
    """Judge every applicable (rule, agent) pair at ``now`` (blocking: store reads).

    Agents are those that have runs; each distinct window is read once, as one KPI
    query grouped by agent.
    """
    agents, _ = store.distinct_values()
    inputs = _Inputs(store)
    findings: list[Finding] = []
    for rule, agent in applicable(rules, agents):
        window = rule.window_spec()
        if window.runs is not None:
            findings.append(judge(rule, agent, inputs.last_runs(agent, window.runs)))
            continue
        assert window.span is not None
        start = now - window.span
        current = inputs.span(agent, start, now)
        if rule.kind not in BASELINE_KINDS:
            findings.append(judge(rule, agent, current))
            continue
        base_span = rule.baseline_span()
        previous = inputs.span(agent, start - base_span, start)
        scale = window.span / base_span if rule.kind == "cost_above_baseline" else 1.0
        findings.append(judge(rule, agent, current, previous, scale))
    return findings


def plan(findings: Sequence[Finding], open_alerts: Sequence[dict[str, Any]]) -> RecordAlerts:
    """The writes that bring stored alert state in line with ``findings``.

    A firing finding without an open alert opens one; an open alert whose finding does
    not fire (or whose rule/agent pair is no longer evaluated: rule removed, disabled,
    replaced) is resolved; an open alert that still fires gets its current numbers.
    """
    by_pair = {(f.rule.name, f.agent_name): f for f in findings}
    opened = {(a["rule_name"], a["agent_name"]): a for a in open_alerts}
    fire: list[dict[str, Any]] = []
    resolve: list[dict[str, Any]] = []
    refresh: list[dict[str, Any]] = []
    for pair, finding in by_pair.items():
        numbers = {
            "value": _finite(finding.value),
            "baseline": _finite(finding.baseline),
            "sample_runs": finding.sample_runs,
            "message": finding.message,
        }
        alert = opened.get(pair)
        if finding.firing and alert is None:
            fire.append(
                {
                    "rule_name": finding.rule.name,
                    "kind": finding.rule.kind,
                    "agent_name": finding.agent_name,
                    "threshold": finding.rule.threshold,
                    **numbers,
                }
            )
        elif alert is not None and not finding.firing:
            resolve.append({"id": alert["id"], **numbers})
        elif alert is not None and any(alert[key] != value for key, value in numbers.items()):
            refresh.append({"id": alert["id"], **numbers})
    for pair, alert in opened.items():
        if pair not in by_pair:
            resolve.append(
                {
                    "id": alert["id"],
                    "value": alert["value"],
                    "baseline": alert["baseline"],
                    "sample_runs": alert["sample_runs"],
                    "message": "no longer evaluated (rule removed, disabled or replaced; no runs)",
                }
            )
    return RecordAlerts(fire=fire, resolve=resolve, refresh=refresh)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None
