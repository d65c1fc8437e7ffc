"""``POST /api/v1/import/runs``: load exported runs back, timestamps and all.

The body is a JSON array of at most ``MAX_IMPORT_ROWS`` runs in the shape of the JSON
Lines export (``GET /api/v1/runs/{event_id}``). Every item is validated with the create
endpoint's field rules (``RunImport`` in schemas.py) before anything is written: one bad
item answers 422 naming its index and field, and nothing of the request is stored. The
valid request is one ``InsertRuns(keep_times=True)`` write through the group-commit
writer, so ``created_at`` and ``updated_at`` are stored as given (not re-stamped) and the
per-agent and hourly run counts follow the given ``created_at``. Runs whose ``event_id``
already exists are skipped, never overwritten. Events and QC reviews are not part of an
export and so are not imported.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import Incoming, JSONBody, validate_array, with_ignored
from local_telemetry.api.runs import body_schema, incoming, json_reply, schema_ref, submit_write
from local_telemetry.schemas import MAX_IMPORT_ROWS, RunImport, RunPublic
from local_telemetry.storage.base import InsertRuns

Reply = tuple[int, Any]


class ImportResult(BaseModel):
    """Answer to ``POST /api/v1/import/runs``."""

    imported: int
    skipped_existing: int
    ignored_fields: list[str] | None = None


async def import_runs(app_state: AppState, incoming: Incoming) -> Reply:
    """Store every run of the array with its own timestamps; skip existing event_ids."""
    data = await incoming.json(app_state.settings.max_batch_body_bytes)
    rows = validate_array(RunImport, data, MAX_IMPORT_ROWS, "runs")
    imported: int = await submit_write(app_state, InsertRuns(rows, keep_times=True)) if rows else 0
    for row in rows:
        app_state.metadata.observe(row["agent_name"], row["job_type"])
    answer = {"imported": imported, "skipped_existing": len(rows) - imported}
    # An export's derived fields are expected in an import, not unknown.
    return 200, with_ignored(answer, RunImport, data, RunPublic.model_fields)


router = APIRouter(prefix="/api/v1/import", tags=["import"])


@router.post(
    "/runs",
    summary="Import exported runs (created_at/updated_at kept)",
    response_model=None,
    responses={200: {"model": ImportResult}},
    openapi_extra=body_schema(
        {"type": "array", "items": schema_ref(RunImport), "maxItems": MAX_IMPORT_ROWS}
    ),
)
async def import_runs_route(request: Request) -> JSONBody:
    """Store a JSON array of at most 1,000 runs in the JSON Lines export's shape, all
    or none: any invalid item answers 422 naming its index and field. ``created_at``
    (required) and ``updated_at`` are stored as given; an ``event_id`` that already
    exists is skipped (not overwritten). Answers ``{"imported", "skipped_existing"}``.
    Events and QC reviews are not imported (exports do not carry them)."""
    return json_reply(await import_runs(state(request), incoming(request)))
