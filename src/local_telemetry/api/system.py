"""Health, metrics and metadata endpoints."""

from __future__ import annotations

import platform
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request

from local_telemetry import API_VERSION, __version__
from local_telemetry.api.deps import state
from local_telemetry.api.http import JSONBody
from local_telemetry.timestamps import to_stored

router = APIRouter(tags=["system"])


@router.get("/health", summary="Service health")
async def health(request: Request) -> JSONBody:
    """Liveness plus the storage settings in force."""
    app_state = state(request)
    info = await app_state.info()
    return JSONBody(
        {
            "status": "ok",
            "version": API_VERSION,
            "server_version": __version__,
            "backend": info.backend,
            "db_path": info.location,
            "journal_mode": info.journal_mode,
            "synchronous": info.synchronous,
            # False while the storage refuses writes (disk full, read-only): the server
            # stays up, reads work, writes get 507/503 until a commit succeeds again.
            "writable": app_state.writer.storage_error is None,
            "storage_error": app_state.writer.storage_error,
        }
    )


@router.get("/version", summary="Versions of the API, the server and its runtime")
async def version(request: Request) -> JSONBody:
    """The v3 API version, this server's version, Python's and the storage backend."""
    info = await state(request).info()
    return JSONBody(
        {
            "version": API_VERSION,
            "server_version": __version__,
            "python": platform.python_version(),
            "backend": info.backend,
        }
    )


@router.get("/metrics", summary="System-wide run counts")
async def metrics(request: Request) -> JSONBody:
    """Total runs, runs per agent, runs created in the last 24 hours."""
    app_state = state(request)
    now = datetime.now(UTC)
    since, until = to_stored(now - timedelta(hours=24)), to_stored(now)
    total, agents, recent = await app_state.read(app_state.store.run_counts, since, until)
    info = await app_state.info()
    return JSONBody(
        {
            "total_runs": total,
            "agents": agents,
            "recent_24h": recent,
            "performance": {
                "db_path": info.location,
                "journal_mode": info.journal_mode,
                "synchronous": info.synchronous,
                "group_commits": app_state.writer.commits,
                "writes_committed": app_state.writer.ops_committed,
            },
        }
    )


@router.get("/api/v1/metadata", summary="Distinct agent names and job types")
async def metadata(request: Request) -> JSONBody:
    """Sorted distinct values, cached; a write bringing a new value refreshes the cache."""
    app_state = state(request)
    agents, job_types, cache_hit = await app_state.read(app_state.metadata.get)
    return JSONBody(
        {
            "agent_names": agents,
            "job_types": job_types,
            "counts": {"agent_names": len(agents), "job_types": len(job_types)},
            "cache_hit": cache_hit,
        }
    )
