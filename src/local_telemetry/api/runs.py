"""The runs endpoints of the v3 API (``/api/v1/runs``...)."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from pydantic import ValidationError

from local_telemetry import gitlinks
from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import ApiError, JSONBody, read_json, validate, validation_detail
from local_telemetry.ingest import WriterBusy
from local_telemetry.schemas import (
    NOT_NULLABLE_ON_UPDATE,
    BatchResult,
    CommitAssociation,
    CommitResult,
    CommitUrl,
    CreateResult,
    RepoUrl,
    RunCreate,
    RunPublic,
    RunQuery,
    RunUpdate,
    UpdateResult,
)
from local_telemetry.storage.base import InsertRuns, RunFilter, UpdateRun, WriteOp

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

NOT_FOUND = {"description": "No run with this event_id", "content": {"application/json": {}}}


def _body_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


async def _write(app_state: AppState, op: WriteOp) -> Any:
    try:
        return await app_state.writer.submit(op)
    except WriterBusy:
        raise ApiError(503, "Server busy: write queue full", {"Retry-After": "1"}) from None


def public_run(run: dict[str, Any], app_state: AppState) -> dict[str, Any]:
    """A stored run with its browser links added."""
    hosts = app_state.git_hosts
    run["commit_url"] = gitlinks.commit_url(run.get("git_repo"), run.get("git_commit_hash"), hosts)
    run["repo_url"] = gitlinks.repo_url(run.get("git_repo"), hosts)
    return run


async def _existing_run(app_state: AppState, event_id: str) -> dict[str, Any]:
    run = await to_thread.run_sync(app_state.store.get_run, event_id)
    if run is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return run


@router.post(
    "",
    status_code=201,
    summary="Create a run (idempotent on event_id)",
    response_model=None,
    responses={201: {"model": CreateResult}},
    openapi_extra=_body_schema(_ref(RunCreate)),
)
async def create_run(request: Request) -> JSONBody:
    """Store a new run; a repeated ``event_id`` answers 201 ``duplicate`` and changes nothing."""
    app_state = state(request)
    data = await read_json(request, app_state.settings.max_run_body_bytes)
    run = validate(RunCreate, data)
    [created] = await _write(app_state, InsertRuns([run.to_row()]))
    app_state.metadata.observe(run.agent_name, run.job_type)
    if created:
        body: dict[str, Any] = {"status": "created", "event_id": run.event_id, "run_id": run.run_id}
    else:
        body = {
            "status": "duplicate",
            "event_id": run.event_id,
            "message": "Event already exists (idempotent)",
        }
    return JSONBody(body, status_code=201)


@router.post(
    "/batch",
    summary="Create many runs",
    response_model=None,
    responses={200: {"model": BatchResult}},
    openapi_extra=_body_schema({"type": "array", "items": _ref(RunCreate)}),
)
async def create_runs_batch(request: Request) -> JSONBody:
    """Store every valid run of a JSON array; report duplicates and per-item errors."""
    app_state = state(request)
    settings = app_state.settings
    data = await read_json(request, settings.max_batch_body_bytes)
    if not isinstance(data, list):
        raise ApiError(
            422, [{"type": "list_type", "loc": ["body"], "msg": "Body must be a JSON array"}]
        )
    if len(data) > settings.max_batch_items:
        raise ApiError(
            422,
            [
                {
                    "type": "too_long",
                    "loc": ["body"],
                    "msg": f"Batch has {len(data)} runs; at most {settings.max_batch_items}",
                }
            ],
        )
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(data):
        try:
            run = RunCreate.model_validate(item)
        except ValidationError as exc:
            event_id = item.get("event_id") if isinstance(item, dict) else None
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'][1:]) or 'item'}: {e['msg']}"
                for e in validation_detail(exc, "body")
            )
            errors.append(
                {
                    "index": index,
                    "event_id": event_id if isinstance(event_id, str) else None,
                    "detail": problems,
                }
            )
            continue
        rows.append(run.to_row())
    created = await _write(app_state, InsertRuns(rows)) if rows else []
    for row in rows:
        app_state.metadata.observe(row["agent_name"], row["job_type"])
    inserted = sum(created)
    return JSONBody(
        {
            "inserted": inserted,
            "duplicates": len(created) - inserted,
            "errors": errors,
            "total": len(data),
        }
    )


@router.get(
    "",
    summary="Query runs, newest first",
    response_model=None,
    responses={200: {"model": list[RunPublic]}},
)
async def list_runs(
    request: Request,
    agent_name: str | None = None,
    job_type: str | None = None,
    status: str | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    created_before: str | None = None,
    created_after: str | None = None,
    start_time_from: str | None = None,
    start_time_to: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> JSONBody:
    """Runs matching every given filter, ordered by ``created_at`` descending.

    ``status`` accepts canonical values and aliases; ``created_before``/``created_after``
    are exclusive, ``start_time_from``/``start_time_to`` inclusive; all compare instants.
    """
    app_state = state(request)
    query = validate(RunQuery, dict(request.query_params), location="query")
    run_filter = RunFilter(**query.model_dump())
    runs = await to_thread.run_sync(app_state.store.list_runs, run_filter)
    return JSONBody([public_run(run, app_state) for run in runs])


@router.get(
    "/{event_id}",
    summary="Get one run",
    response_model=None,
    responses={200: {"model": RunPublic}, 404: NOT_FOUND},
)
async def get_run(request: Request, event_id: str) -> JSONBody:
    """The run with this ``event_id``."""
    app_state = state(request)
    return JSONBody(public_run(await _existing_run(app_state, event_id), app_state))


@router.patch(
    "/{event_id}",
    summary="Update a run",
    response_model=None,
    responses={200: {"model": UpdateResult}, 404: NOT_FOUND},
    openapi_extra=_body_schema(_ref(RunUpdate)),
)
async def update_run(request: Request, event_id: str) -> JSONBody:
    """Change the fields sent (canonical statuses only); answer which fields changed."""
    app_state = state(request)
    data = await read_json(request, app_state.settings.max_run_body_bytes)
    sent = validate(RunUpdate, data).changes()
    changes = {key: sent[key] for key in data if key in sent}  # in the client's order
    if not changes:
        raise ApiError(422, [{"type": "missing", "loc": ["body"], "msg": "No fields to update"}])
    cleared = sorted(k for k, v in changes.items() if v is None and k in NOT_NULLABLE_ON_UPDATE)
    if cleared:
        raise ApiError(
            422,
            [
                {"type": "null_not_allowed", "loc": ["body", k], "msg": "Field cannot be null"}
                for k in cleared
            ],
        )
    if await _write(app_state, UpdateRun(event_id, changes)) is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return JSONBody({"event_id": event_id, "updated": True, "fields_updated": list(changes)})


@router.post(
    "/{event_id}/associate-commit",
    summary="Link a git commit to a run",
    response_model=None,
    responses={200: {"model": CommitResult}, 404: NOT_FOUND},
    openapi_extra=_body_schema(_ref(CommitAssociation)),
)
async def associate_commit(request: Request, event_id: str) -> JSONBody:
    """Set the run's commit hash, source, author and timestamp."""
    app_state = state(request)
    data = await read_json(request, app_state.settings.max_run_body_bytes)
    commit = validate(CommitAssociation, data)
    run_id = await _write(app_state, UpdateRun(event_id, commit.changes()))
    if run_id is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return JSONBody(
        {
            "status": "success",
            "event_id": event_id,
            "run_id": run_id,
            "commit_hash": commit.commit_hash,
        }
    )


@router.get(
    "/{event_id}/commit-url",
    summary="Browser URL of the run's commit",
    response_model=None,
    responses={200: {"model": CommitUrl}, 404: NOT_FOUND},
)
async def get_commit_url(request: Request, event_id: str) -> JSONBody:
    """``{"commit_url": ...}``; null when repo, hash or platform is unknown."""
    app_state = state(request)
    run = public_run(await _existing_run(app_state, event_id), app_state)
    return JSONBody({"commit_url": run["commit_url"]})


@router.get(
    "/{event_id}/repo-url",
    summary="Browser URL of the run's repository",
    response_model=None,
    responses={200: {"model": RepoUrl}, 404: NOT_FOUND},
)
async def get_repo_url(request: Request, event_id: str) -> JSONBody:
    """``{"repo_url": ...}``; null when the repository or its host is unknown."""
    app_state = state(request)
    run = public_run(await _existing_run(app_state, event_id), app_state)
    return JSONBody({"repo_url": run["repo_url"]})
