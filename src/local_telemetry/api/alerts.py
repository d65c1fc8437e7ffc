"""Alert endpoints and the in-server evaluator.

``GET/PUT /api/v1/alerts/rules`` read and replace the rules (``alerts.py``; built-ins
until rules are saved), ``GET /api/v1/alerts`` lists firing and past alerts, and
``POST /api/v1/alerts/evaluate`` evaluates now. The :class:`AlertEngine` also runs every
``TELEMETRY_ALERT_INTERVAL_SECONDS`` as a background job (in one process at a time when
several share a database: ``Store.lead``): it reads on a reader thread,
writes the state changes through the writer (so they are as durable as runs), then hands
each change to the webhooks without waiting for them. One evaluation at a time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from local_telemetry import alerts
from local_telemetry.alert_webhooks import WebhookSender
from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import ApiError, Incoming, JSONBody, validate, validation_detail
from local_telemetry.api.runs import Reply, incoming, json_reply, query_parameters
from local_telemetry.ingest import WriterBusy
from local_telemetry.schemas import AlertPublic, AlertQuery
from local_telemetry.storage.base import AlertFilter, SaveAlertRules, Store, WriteOp
from local_telemetry.timestamps import to_stored

log = logging.getLogger(__name__)

RULES_BODY_BYTES = 1024 * 1024


def load_rules(store: Store) -> list[alerts.AlertRule]:
    """The stored rules (invalid ones skipped with a warning), else the built-ins."""
    stored = store.get_alert_rules()
    if stored is None:
        return list(alerts.BUILT_IN_RULES)
    rules: list[alerts.AlertRule] = []
    for item in stored:
        try:
            rules.append(alerts.AlertRule.model_validate(item))
        except ValidationError as exc:
            log.warning("stored alert rule %r skipped: %s", item.get("name"), exc)
    return rules


class AlertEngine:
    """Evaluates the rules and records and announces what changed."""

    def __init__(self, app_state: AppState, webhooks: WebhookSender) -> None:
        self.app_state = app_state
        self.webhooks = webhooks
        self.evaluations = 0
        self.last_evaluated_at: str | None = None
        self._lock: asyncio.Lock | None = None

    def _evaluate(self, now: datetime) -> tuple[int, list[alerts.Finding], Any]:
        store = self.app_state.store
        rules = load_rules(store)
        findings = alerts.evaluate(store, rules, now)
        return (
            sum(rule.enabled for rule in rules),
            findings,
            alerts.plan(findings, store.open_alerts()),
        )

    async def evaluate_now(self) -> dict[str, Any]:
        """Evaluate every rule now; the summary ``POST /api/v1/alerts/evaluate`` answers."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self.webhooks.start()
            now = datetime.now(UTC)
            enabled, findings, changes = await self.app_state.read(self._evaluate, now)
            changed: list[dict[str, Any]] = []
            if changes:
                changed = await _write(self.app_state, changes)
            for alert in changed:
                self.webhooks.send(f"alert.{alert['state']}", alert)
                log.warning("alert %s: %s", alert["state"], alert["message"])
            self.evaluations += 1
            self.last_evaluated_at = to_stored(now)
        return {
            "evaluated_at": self.last_evaluated_at,
            "enabled_rules": enabled,
            "evaluated": len(findings),
            "firing": sum(finding.firing for finding in findings),
            "changed": changed,
        }


async def _write(app_state: AppState, op: WriteOp) -> Any:
    try:
        result = await app_state.writer.submit(op)
    except WriterBusy:
        raise ApiError(503, "Server busy: write queue full", {"Retry-After": "1"}) from None
    if isinstance(result, Exception):
        raise result
    return result


def engine_of(app_state: AppState) -> AlertEngine:
    """The application's alert engine (created by ``install``)."""
    engine = app_state.alert_engine
    assert isinstance(engine, AlertEngine)
    return engine


def install(app_state: AppState) -> AlertEngine:
    """Create the engine, its webhooks and its periodic job for ``app_state``."""
    from local_telemetry.api.background import PeriodicJob, leader_only

    settings = app_state.settings
    engine = AlertEngine(app_state, WebhookSender(settings.alert_webhook_urls))
    app_state.alert_engine = engine
    interval = settings.alert_interval_seconds
    step = leader_only(partial(app_state.read, app_state.store.lead, "alerts"), engine.evaluate_now)
    app_state.jobs.add(PeriodicJob("alerts", interval, step, first_delay=interval))
    app_state.jobs.on_stop(engine.webhooks.stop)
    return engine


# ----- handlers -----


async def get_rules(app_state: AppState) -> Reply:
    """The rules in force."""
    rules = await app_state.read(load_rules, app_state.store)
    return 200, alerts.rule_dicts(rules)


async def put_rules(app_state: AppState, incoming: Incoming) -> Reply:
    """Replace every rule with the body's JSON array; the stored rules."""
    data = await incoming.json(RULES_BODY_BYTES)
    try:
        rules = alerts.rules_from_json(data)
    except ValidationError as exc:
        raise ApiError(422, validation_detail(exc, "body")) from None
    except ValueError as exc:
        raise ApiError(422, [{"type": "value_error", "loc": ["body"], "msg": str(exc)}]) from None
    stored = alerts.rule_dicts(rules)
    await _write(app_state, SaveAlertRules(stored))
    return 200, stored


async def list_alerts(app_state: AppState, incoming: Incoming) -> Reply:
    """Alerts matching the query, newest first."""
    params = validate(AlertQuery, dict(incoming.query.items()), location="query")
    alert_filter = AlertFilter(
        state=params.state,
        rule_name=params.rule_name,
        agent_name=params.agent_name,
        limit=params.limit,
        offset=params.offset,
    )
    return 200, await app_state.read(app_state.store.list_alerts, alert_filter)


router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_RULE_LIST = {"type": "array", "items": {"$ref": "#/components/schemas/AlertRule"}}


@router.get(
    "/rules",
    summary="The alert rules in force",
    response_model=None,
    responses={200: {"content": {"application/json": {"schema": _RULE_LIST}}}},
)
async def get_rules_route(request: Request) -> JSONBody:
    """Every rule (the built-in ones until rules were saved), defaults filled in."""
    return json_reply(await get_rules(state(request)))


@router.put(
    "/rules",
    summary="Replace the alert rules",
    response_model=None,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _RULE_LIST}}}
    },
    responses={200: {"content": {"application/json": {"schema": _RULE_LIST}}}},
)
async def put_rules_route(request: Request) -> JSONBody:
    """A JSON array of ``{name, kind, threshold, window, agent_name?, enabled?,
    min_runs?, baseline?}`` replaces every rule (``[]``: no alerts at all). 422 for an
    unknown kind or field, a bad window, a threshold out of range or a repeated name."""
    return json_reply(await put_rules(state(request), incoming(request)))


@router.get(
    "",
    summary="Firing and past alerts",
    response_model=None,
    responses={200: {"model": list[AlertPublic]}},
    openapi_extra=query_parameters(AlertQuery),
)
async def list_alerts_route(request: Request) -> JSONBody:
    """Newest first; filters ``state`` (firing|resolved), ``rule_name``, ``agent_name``;
    ``limit`` (1-1000, default 100) and ``offset``."""
    return json_reply(await list_alerts(state(request), incoming(request)))


@router.post("/evaluate", summary="Evaluate the alert rules now", response_model=None)
async def evaluate_route(request: Request) -> JSONBody:
    """Runs one evaluation (as the periodic job does) and answers what it found:
    ``evaluated`` (rule/agent pairs), ``firing`` and the alerts that ``changed``."""
    return JSONBody(await engine_of(state(request)).evaluate_now())
