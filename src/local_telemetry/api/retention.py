"""``POST /api/v1/retention/sweep``: run one retention sweep now.

The sweep uses the configured limits (``TELEMETRY_RETENTION_PAYLOAD_DAYS``,
``TELEMETRY_RETENTION_RUN_DAYS``) and the sweeper ``create_app`` keeps on the ``AppState``,
so it never overlaps the periodic retention job. A write endpoint under ``/api/``:
bearer auth covers it when enabled.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from local_telemetry.api.deps import state
from local_telemetry.api.http import ApiError, JSONBody
from local_telemetry.retention import RetentionSweeper

RETENTION_OFF = (
    "retention is off: set TELEMETRY_RETENTION_PAYLOAD_DAYS or TELEMETRY_RETENTION_RUN_DAYS"
)


class RetentionSweepResult(BaseModel):
    """What a sweep did; cutoffs in the stored UTC form (null: that limit is off)."""

    payload_cutoff: str | None
    run_cutoff: str | None
    payload_blanked_runs: int
    events_deleted: int
    qc_notes_blanked: int
    runs_deleted: int
    qc_reviews_deleted: int
    pages_freed: int


def sweeper(request: Request) -> RetentionSweeper:
    """The application's :class:`RetentionSweeper`."""
    found = state(request).retention
    assert found is not None  # create_app always makes one
    return found


router = APIRouter(prefix="/api/v1/retention", tags=["retention"])


@router.post(
    "/sweep",
    summary="Run one retention sweep now",
    response_model=None,
    responses={
        200: {"model": RetentionSweepResult},
        409: {"description": "Retention is off (neither limit is set)"},
    },
)
async def sweep_route(request: Request) -> JSONBody:
    """Blank the payloads of runs older than the payload limit and delete runs older
    than the run limit, then give freed space back; answers the counts and cutoffs.
    Waits for a sweep already running. 409 when neither limit is set."""
    retention = sweeper(request)
    if not retention.enabled:
        raise ApiError(409, RETENTION_OFF)
    result = await retention.sweep()
    return JSONBody(result.as_dict())
