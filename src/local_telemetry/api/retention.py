"""``POST /api/v1/retention/sweep``: run one retention sweep now.

The sweep uses the configured limits (``TELEMETRY_RETENTION_PAYLOAD_DAYS``,
``TELEMETRY_RETENTION_RUN_DAYS``) and the sweeper ``create_app`` keeps on the ``AppState``,
so it never overlaps the periodic retention job. An optional JSON body gives this sweep
its own ages instead (``run_older_than``, ``payload_older_than``: both limits are
replaced, an age left out is off for this sweep) and/or asks for a ``dry_run``. A write
endpoint under ``/api/``: bearer auth covers it when enabled.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictBool

from local_telemetry.api.deps import state
from local_telemetry.api.http import ApiError, JSONBody
from local_telemetry.api.maintenance import Age, optional_body
from local_telemetry.retention import RetentionAges, RetentionSweeper

RETENTION_OFF = (
    "retention is off: set TELEMETRY_RETENTION_PAYLOAD_DAYS or TELEMETRY_RETENTION_RUN_DAYS"
)


class RetentionSweepRequest(BaseModel):
    """Optional body of a sweep: ages replacing the configured limits, a dry run."""

    model_config = ConfigDict(extra="forbid")

    run_older_than: Age | None = None
    """Delete runs that started longer ago than this (``90d``)."""
    payload_older_than: Age | None = None
    """Blank the payloads of runs that started longer ago than this (``30d``)."""
    dry_run: StrictBool = False
    """Change nothing; answer the counts the sweep would report."""


class RetentionSweepResult(BaseModel):
    """What a sweep did; cutoffs in the stored UTC form (null: that limit is off)."""

    payload_cutoff: str | None
    run_cutoff: str | None
    dry_run: bool
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
        422: {"description": "Invalid body"},
    },
)
async def sweep_route(request: Request) -> JSONBody:
    """Blank the payloads of runs older than the payload limit and delete runs older
    than the run limit, then give freed space back; answers the counts and cutoffs.
    Waits for a sweep already running. A body's ``run_older_than`` /
    ``payload_older_than`` replace both configured limits for this sweep; ``dry_run``
    changes nothing and answers the same counts (``pages_freed`` 0). 409 when no age
    is given and neither limit is set."""
    retention = sweeper(request)
    body = await optional_body(request, RetentionSweepRequest) or RetentionSweepRequest()
    ages = RetentionAges(payload_age=body.payload_older_than, run_age=body.run_older_than)
    if not ages.enabled and not retention.enabled:
        raise ApiError(409, RETENTION_OFF)
    result = await retention.sweep(ages=ages if ages.enabled else None, dry_run=body.dry_run)
    return JSONBody(result.as_dict())
