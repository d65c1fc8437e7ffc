"""``GET /metrics/prometheus``: the server's metrics in the Prometheus text format.

Three sources feed one registry per app (``AppState.metrics.registry``):

- counters and histograms the request path updates (``observability.py``): ingest
  outcomes, batch and commit-group sizes, request latency (measured by
  :class:`RequestLatency`, the outermost ASGI layer, so fast paths and refusals count);
- :class:`WriterCollector`: the write queue depth, read when scraped;
- :class:`StoreCollector`: database size, per-agent runs by status and SLA hit rate over
  the last 24 h, firing alerts, computed from the store when scraped (on a reader
  thread) and reused for ``prometheus_cache_seconds`` so frequent scrapes stay cheap.

Agent labels are capped (``prometheus_max_agents``): the agents with the most runs in
24 h keep their name, the rest are summed under ``agent="other"``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local_telemetry import kpis
from local_telemetry.api.deps import AppState, state
from local_telemetry.config import Settings
from local_telemetry.ingest import GroupCommitWriter
from local_telemetry.observability import IngestMetrics
from local_telemetry.storage.base import KpiFilter, KpiInputs, Store
from local_telemetry.timestamps import to_stored

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
"""The label value of agents beyond the cap and of paths that match no route."""

RUNS_PREFIX = "/api/v1/runs"
# The run routes answered by api/fastpath.py (no FastAPI route in the scope): their
# templates, spelled as the FastAPI routes spell them.
_RUN_SUFFIXES = {"", "associate-commit", "commit-url", "repo-url", "events", "qc"}

# ----- request latency -----


def route_template(scope: Scope) -> str:
    """The route template of a finished request (bounded: never the raw path)."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    path: str = scope.get("path", "")
    if path == RUNS_PREFIX or path == RUNS_PREFIX + "/batch":
        return path
    if path.startswith(RUNS_PREFIX + "/"):
        event_id, slash, suffix = path[len(RUNS_PREFIX) + 1 :].partition("/")
        if event_id and suffix in _RUN_SUFFIXES and (suffix or not slash):
            return RUNS_PREFIX + "/{event_id}" + (f"/{suffix}" if suffix else "")
    return OTHER


_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestLatency:
    """ASGI layer observing each HTTP request's duration per route, method and status
    class (``2xx``...). Outermost, so refused (401/429/503) answers are measured too."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, timing it until the app returns."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers if the app raises before responding
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else OTHER
            self.metrics.observe_request(
                route_template(scope),
                method,
                f"{status // 100}xx",
                time.perf_counter() - started,
            )


# ----- values read at scrape time -----


class WriterCollector(Collector):
    """The writer's queue depth, read when scraped."""

    def __init__(self, writer: GroupCommitWriter) -> None:
        self.writer = writer

    def describe(self) -> Iterable[Metric]:
        """Nothing: keeps registration from collecting (the writer may not run yet)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The current queue depth."""
        yield GaugeMetricFamily(
            "local_telemetry_writer_queue_depth",
            "Writes waiting for the group-commit writer.",
            value=self.writer.queue_depth,
        )


@dataclass
class StoreSnapshot:
    """What :class:`StoreCollector` reports, computed at most once per cache period."""

    database_bytes: int
    runs_by_status: dict[tuple[str, str], int] = field(default_factory=dict)
    sla_hit_rate: dict[str, float] = field(default_factory=dict)
    firing: dict[tuple[str, str], int] = field(default_factory=dict)


def capped_agents(inputs: dict[str, KpiInputs], max_agents: int) -> set[str]:
    """The agents keeping their own label: the ``max_agents`` with the most runs (ties
    by name, so the set is stable between scrapes)."""
    ranked = sorted(inputs, key=lambda agent: (-inputs[agent].total_runs, agent))
    return set(ranked[:max_agents])


def database_size(settings: Settings) -> int:
    """Bytes the database takes: the SQLite file plus its WAL, or PostgreSQL's
    ``pg_database_size`` of the current database."""
    if settings.uses_postgres:
        import psycopg

        assert settings.database_url is not None
        with psycopg.connect(settings.database_url, connect_timeout=10) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0
    path = settings.sqlite_path
    return sum(_file_size(p) for p in (path, Path(f"{path}-wal")))


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # no WAL yet (or checkpointed away)
        return 0


def store_snapshot(store: Store, settings: Settings, now: datetime) -> StoreSnapshot:
    """Database size, 24 h per-agent figures and firing alerts, agents capped."""
    since = KpiFilter(start_time_from=to_stored(now - timedelta(hours=24)))
    per_agent = {
        key[0]: value for key, value in store.kpi_inputs(since, ["agent_name"], "UTC").items()
    }
    named = capped_agents(per_agent, settings.prometheus_max_agents)
    grouped: dict[str, KpiInputs] = {}
    for agent, inputs in per_agent.items():
        label = agent if agent in named else OTHER
        total = grouped.setdefault(label, KpiInputs())
        for status, count in inputs.status_counts.items():
            total.status_counts[status] = total.status_counts.get(status, 0) + count
        total.sla_hits += inputs.sla_hits
        total.sla_measured += inputs.sla_measured
    snapshot = StoreSnapshot(database_bytes=database_size(settings))
    for label, inputs in grouped.items():
        for status, count in inputs.status_counts.items():
            snapshot.runs_by_status[(label, status)] = count
        hit_rate = kpis.sla_hit_rate(inputs.sla_hits, inputs.sla_measured)
        if hit_rate is not None:
            snapshot.sla_hit_rate[label] = hit_rate
    for alert in store.open_alerts():
        agent = alert.get("agent_name") or ""
        label = agent if not agent or agent in named else OTHER
        key = (str(alert["rule_name"]), label)
        snapshot.firing[key] = snapshot.firing.get(key, 0) + 1
    return snapshot


class StoreCollector(Collector):
    """Figures computed from the store when scraped, reused for a few seconds."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()  # concurrent scrapes compute the snapshot once
        self._snapshot: StoreSnapshot | None = None
        self._taken = 0.0

    def describe(self) -> Iterable[Metric]:
        """Nothing: keeps registration from querying the store."""
        return []

    def snapshot(self) -> StoreSnapshot:
        """The cached snapshot, recomputed once older than the cache period."""
        with self._lock:
            age = time.monotonic() - self._taken
            if self._snapshot is None or age >= self.settings.prometheus_cache_seconds:
                self._snapshot = store_snapshot(self.store, self.settings, datetime.now(UTC))
                self._taken = time.monotonic()
            return self._snapshot

    def collect(self) -> Iterator[Metric]:
        """The snapshot as gauges."""
        snapshot = self.snapshot()
        yield GaugeMetricFamily(
            "local_telemetry_database_size_bytes",
            "Size of the database (SQLite file + WAL, or pg_database_size).",
            value=snapshot.database_bytes,
        )
        runs = GaugeMetricFamily(
            "local_telemetry_agent_runs_24h",
            "Runs started in the last 24 h, per agent and status.",
            labels=["agent", "status"],
        )
        for (agent, status), count in sorted(snapshot.runs_by_status.items()):
            runs.add_metric([agent, status], count)
        yield runs
        sla = GaugeMetricFamily(
            "local_telemetry_agent_sla_hit_rate_24h",
            "SLA hits / runs with an end and a target, of runs started in the last 24 h.",
            labels=["agent"],
        )
        for agent, hit_rate in sorted(snapshot.sla_hit_rate.items()):
            sla.add_metric([agent], hit_rate)
        yield sla
        firing = GaugeMetricFamily(
            "local_telemetry_alerts_firing",
            "Alerts currently firing, per rule and agent (agent empty for global rules).",
            labels=["rule", "agent"],
        )
        for (rule, agent), count in sorted(snapshot.firing.items()):
            firing.add_metric([rule, agent], count)
        yield firing


# ----- endpoint -----

router = APIRouter(tags=["system"])


@router.get(
    "/metrics/prometheus",
    summary="Server metrics in the Prometheus text format",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
async def prometheus_metrics(request: Request) -> Response:
    """Ingest counters, request latencies, writer and database figures, per-agent 24 h
    gauges and firing alerts (text format 0.0.4). Needs the read scope when auth is on."""
    app_state = state(request)
    body = await app_state.read(generate_latest, app_state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE)


def install(app: FastAPI, app_state: AppState) -> None:
    """Register the scrape-time collectors and the commit observer; add the route."""
    registry = app_state.metrics.registry
    registry.register(WriterCollector(app_state.writer))
    registry.register(StoreCollector(app_state.store, app_state.settings))
    app_state.writer.add_listener(app_state.metrics.observe_commit)
    app.include_router(router)
