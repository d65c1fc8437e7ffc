"""``create_app(settings)``: the FastAPI application, its store and its writer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp

from local_telemetry import API_VERSION, __version__, dashboard
from local_telemetry.alerts import AlertRule
from local_telemetry.api import agent_runs, alerts, exports, kpis, runs, system
from local_telemetry.api import imports as imports_api
from local_telemetry.api import keys as keys_api
from local_telemetry.api import maintenance as maintenance_api
from local_telemetry.api import otlp as otlp_api
from local_telemetry.api import prometheus as prometheus_api
from local_telemetry.api import retention as retention_api
from local_telemetry.api.auth import ApiAuth, KeyRing
from local_telemetry.api.background import PeriodicJob, leader_only
from local_telemetry.api.cors import CrossOrigin
from local_telemetry.api.deps import AppState
from local_telemetry.api.errors import document_errors, install_error_handlers
from local_telemetry.api.fastpath import FastPaths
from local_telemetry.api.headers import SecurityHeaders
from local_telemetry.api.metadata_cache import MetadataCache
from local_telemetry.api.overload import ConcurrencyCap
from local_telemetry.api.security import RateLimiter
from local_telemetry.config import Settings
from local_telemetry.ingest import GroupCommitWriter
from local_telemetry.pii import build_scrubber
from local_telemetry.retention import RetentionSweeper
from local_telemetry.schemas import (
    AgentRunPost,
    CommitAssociation,
    QcCreate,
    RunCreate,
    RunEventCreate,
    RunImport,
    RunUpdate,
)
from local_telemetry.storage.base import Store
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.storage.sqlite_lock import ServerLock, hold_server_lock_if_possible
from local_telemetry.weekly_export import CHECK_INTERVAL_SECONDS, WeeklyExporter

log = logging.getLogger("local_telemetry")

# Models documented as request bodies (handlers parse bodies themselves; see api/http.py).
BODY_MODELS = (
    RunCreate,
    RunUpdate,
    CommitAssociation,
    RunEventCreate,
    RunImport,
    QcCreate,
    AgentRunPost,
    AlertRule,
)


def open_store(settings: Settings) -> Store:
    """The store the settings point at."""
    if settings.uses_postgres:
        from local_telemetry.storage.postgres import PostgresStore

        assert settings.database_url is not None
        return PostgresStore(settings.database_url)
    return SQLiteStore(
        settings.sqlite_path,
        journal_mode=settings.db_journal_mode,
        synchronous=settings.db_synchronous,
        busy_timeout_ms=settings.db_busy_timeout_ms,
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in BODY_MODELS:
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        app.openapi_schema = document_errors(schema)
    return app.openapi_schema


class TelemetryAPI(FastAPI):
    """FastAPI with our ASGI layers in front of Starlette's middleware stack.

    Outermost first: security headers (``api/headers.py``), CORS (``api/cors.py``, when
    origins are listed), the concurrency cap (``api/overload.py``), rate limit
    (``api/security.py``), API-key auth (``api/auth.py``), then the run endpoints' fast
    paths (``api/fastpath.py``), so a hot request passes no Starlette/FastAPI layer at all;
    everything else continues into FastAPI's own stack.
    """

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack, wrapped in the layers the settings ask for."""
        stack: ASGIApp = super().build_middleware_stack()
        app_state: AppState = self.state.local_telemetry
        settings = app_state.settings
        if settings.fast_paths:
            stack = FastPaths(stack, app_state)
        keys: KeyRing = self.state.key_ring
        if settings.api_auth_enabled:
            stack = ApiAuth(stack, keys, app_state.read, settings.api_auth_public_reads)
        if settings.rate_limit_enabled:
            # Outside auth, so key guessing is counted too (see RateLimiter).
            stack = RateLimiter(
                stack,
                settings.rate_limit_rpm,
                max_buckets=settings.rate_limit_max_buckets,
                recognizes=partial(keys.recognizes, read=app_state.read)
                if settings.api_auth_enabled
                else None,
            )
        # A flood is shed before any other layer spends time on it.
        stack = ConcurrencyCap(stack, settings.max_concurrent_requests)
        # Header-only layers around everything, so shed (503), limited (429) and refused
        # (401) answers carry CORS and security headers too.
        if settings.cors_origin_list:
            stack = CrossOrigin(stack, settings.cors_origin_list)
        # Outermost: every request is timed, refused ones and fast paths included.
        return prometheus_api.RequestLatency(SecurityHeaders(stack), app_state.metrics)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for ``settings`` (read from the environment when omitted)."""
    settings = settings or Settings()
    store = open_store(settings)
    writer = GroupCommitWriter(
        store,
        max_queue=settings.ingest_queue_size,
        max_group=settings.max_commit_group if settings.group_commit else 1,
    )
    app_state = AppState(
        settings=settings,
        store=store,
        writer=writer,
        metadata=MetadataCache(store.distinct_values, settings.metadata_cache_seconds),
        git_hosts=settings.git_host_map,
        scrubber=build_scrubber(settings.pii_scrub, settings.pii_extra_patterns),
    )

    alerts.install(app_state)
    retention = RetentionSweeper(
        store,
        app_state.read,
        writer.submit,
        payload_days=settings.retention_payload_days,
        run_days=settings.retention_run_days,
        on_runs_deleted=app_state.metadata.invalidate,
    )
    app_state.retention = retention  # one sweeper (one lock) for the job and the endpoint
    if retention.enabled:
        interval = settings.retention_interval_seconds
        # First sweep a little after start-up (at most a minute), then every interval.
        step = leader_only(partial(app_state.read, store.lead, "retention"), retention.step)
        job = PeriodicJob("retention", interval, step, first_delay=min(interval, 60.0))
        app_state.jobs.add(job)

    weekly_exporter = WeeklyExporter.from_settings(settings, store)
    if weekly_exporter is not None:
        exporter = weekly_exporter

        async def weekly_export() -> None:
            await app_state.read(exporter.check)  # query + file write on a reader thread

        step = leader_only(partial(app_state.read, store.lead, "weekly-export"), weekly_export)
        app_state.jobs.add(PeriodicJob("weekly-export", CHECK_INTERVAL_SECONDS, step))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Held while serving, so `local-telemetry restore` knows the file is in use.
        server_lock: ServerLock | None = None
        if not settings.uses_postgres:
            server_lock = hold_server_lock_if_possible(settings.sqlite_path)
        store.migrate()
        writer.start()
        info = app_state.store_info = store.info()
        log.info(
            "storing runs in %s (%s, journal=%s, synchronous=%s)",
            info.location,
            info.backend,
            info.journal_mode,
            info.synchronous,
        )
        app_state.jobs.start()
        try:
            yield
        finally:
            await app_state.jobs.stop()
            writer.stop()
            store.close()
            if server_lock is not None:
                server_lock.release()

    app = TelemetryAPI(
        title="Local Telemetry",
        version=API_VERSION,
        description=(
            f"Run telemetry for AI agents and automated jobs (server {__version__}). "
            "Implements the v3.0.0 HTTP API."
        ),
        lifespan=lifespan,
    )
    app.state.local_telemetry = app_state
    # Verifies API keys for the auth layer, the dashboard's sign-in and key management.
    env_token = settings.api_auth_token if settings.api_auth_enabled else None
    app.state.key_ring = KeyRing(store, env_token)
    install_error_handlers(app)
    for module in (system, runs, agent_runs, kpis, exports, imports_api, alerts, retention_api):
        app.include_router(module.router)
    app.include_router(keys_api.router)
    app.include_router(otlp_api.router)  # POST /v1/traces (OTLP/HTTP)
    maintenance_api.install(app, app_state)  # stale-run endpoint and periodic job
    prometheus_api.install(app, app_state)  # GET /metrics/prometheus and its collectors
    dashboard.install(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
