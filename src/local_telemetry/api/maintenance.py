"""``POST /api/v1/maintenance/close-stale-runs`` and the periodic stale-run job.

Closing works through the server's single writer (``stale.py``); the endpoint and the
job (``TELEMETRY_STALE_RUN_TIMEOUT``) share one :class:`StaleRunCloser`, kept on
``app.state.stale_runs`` by :func:`install`. A write endpoint under ``/api/``: bearer
auth covers it when enabled. Also the optional JSON body parsing the maintenance
endpoints share (``POST /api/v1/retention/sweep`` takes one too).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictBool, field_validator

from local_telemetry.api.background import PeriodicJob, leader_only
from local_telemetry.api.deps import AppState
from local_telemetry.api.http import ApiError, JSONBody, parse_json, read_body, validate
from local_telemetry.config import STALE_TIMEOUT_UNITS
from local_telemetry.durations import FORMS, parse_duration
from local_telemetry.stale import StaleRunCloser, interval_seconds
from local_telemetry.storage.base import STALE_CLOSE_STATUSES

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 16 * 1024
"""Largest body a maintenance endpoint reads (its bodies are a few short fields)."""
FIRST_RUN_MAX_SECONDS = 60.0
"""The periodic job's first run comes at most this long after start-up."""


def _duration(units: str) -> BeforeValidator:
    """A validator turning a duration string (``parse_duration`` with ``units``) into a
    ``timedelta``; anything but a string is refused (a bare number has no unit)."""

    def parse(value: Any) -> timedelta:
        if not isinstance(value, str):
            raise ValueError(f"must be a duration string like {FORMS}")
        return parse_duration(value, units=units)

    return BeforeValidator(parse)


Age = Annotated[timedelta, _duration("mhdw")]
"""A retention age: ``30m``, ``24h``, ``90d``, ``2w``."""
StaleAge = Annotated[timedelta, _duration(STALE_TIMEOUT_UNITS)]
"""A stale-run age; seconds allowed too (``90s``)."""


async def optional_body(request: Request, model: type[M]) -> M | None:
    """The request's JSON body validated as ``model``; ``None`` when there is no body.

    413 past :data:`MAX_BODY_BYTES`, 415 for a non-JSON content type, 422 for invalid
    JSON or a body ``model`` refuses (unknown fields included).
    """
    headers = request.headers
    raw = await read_body(
        headers.get("content-type"), headers.get("content-length"), request.receive, MAX_BODY_BYTES
    )
    if not raw.strip():
        return None
    return validate(model, parse_json(raw))


class CloseStaleRequest(BaseModel):
    """Body of ``POST /api/v1/maintenance/close-stale-runs`` (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    older_than: StaleAge | None = None
    """Close runs with no update for longer than this (default: the configured
    ``TELEMETRY_STALE_RUN_TIMEOUT``)."""
    status: str | None = None
    """The terminal status the runs get: timeout, failure or cancelled (default: the
    configured ``TELEMETRY_STALE_RUN_STATUS``, itself ``timeout`` by default)."""
    dry_run: StrictBool = False
    """Only count and list the runs that would be closed."""

    @field_validator("status", mode="before")
    @classmethod
    def _terminal(cls, value: Any) -> Any:
        if value not in STALE_CLOSE_STATUSES:
            allowed = ", ".join(STALE_CLOSE_STATUSES)
            raise ValueError(f"status must be a terminal status ({allowed}), not {value!r}")
        return value


class CloseStaleResult(BaseModel):
    """What a close did (or would do); ``cutoff`` in stored UTC form."""

    cutoff: str
    status: str
    dry_run: bool
    closed: int
    event_ids: list[str]
    runs: list[dict[str, Any]]


def closer(request: Request) -> StaleRunCloser:
    """The application's :class:`StaleRunCloser`."""
    found: StaleRunCloser = request.app.state.stale_runs
    return found


router = APIRouter(prefix="/api/v1/maintenance", tags=["maintenance"])


@router.post(
    "/close-stale-runs",
    summary="Close runs left running with no update for a while",
    response_model=None,
    responses={200: {"model": CloseStaleResult}, 422: {"description": "Invalid body"}},
)
async def close_stale_runs(request: Request) -> JSONBody:
    """Close every run whose status is ``running`` and that has not been updated (or
    created, if never updated) for longer than ``older_than``: the given terminal
    status, ``end_time`` at its last update, ``duration_ms``, an explanatory
    ``error_summary``. ``dry_run`` changes nothing and answers what would be closed.
    ``event_ids`` and ``runs`` list at most 1000 runs; ``closed`` counts all."""
    body = await optional_body(request, CloseStaleRequest) or CloseStaleRequest()
    stale = closer(request)
    older_than = body.older_than if body.older_than is not None else stale.timeout
    if older_than is None:
        raise ApiError(
            422,
            "older_than is required (TELEMETRY_STALE_RUN_TIMEOUT is not set on the server)",
        )
    status = body.status or stale.status
    result = await stale.close(older_than, status, dry_run=body.dry_run)
    return JSONBody(result.as_dict())


def install(app: FastAPI, app_state: AppState) -> StaleRunCloser:
    """Create the app's :class:`StaleRunCloser`, register the endpoint and, when
    ``TELEMETRY_STALE_RUN_TIMEOUT`` is set, the periodic job (one process leads it)."""
    settings = app_state.settings
    timeout = settings.stale_run_timeout_span
    stale = StaleRunCloser(
        app_state.store,
        app_state.read,
        app_state.writer.submit,
        timeout=timeout,
        status=settings.stale_run_status,
    )
    app.state.stale_runs = stale
    if timeout is not None:
        interval = interval_seconds(timeout)
        lead = partial(app_state.read, app_state.store.lead, "stale-runs")
        job = PeriodicJob(
            "stale-runs",
            interval,
            leader_only(lead, stale.step),
            first_delay=min(interval, FIRST_RUN_MAX_SECONDS),
        )
        app_state.jobs.add(job)
    app.include_router(router)
    return stale
