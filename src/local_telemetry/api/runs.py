"""The runs endpoints of the v3 API (``/api/v1/runs``...).

Each endpoint is one handler ``async (AppState, Incoming, path params) -> Reply``. The
FastAPI routes below wrap them (and document them in OpenAPI); ``api/fastpath.py``
calls the very same handlers for the hot routes without FastAPI's routing layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from local_telemetry import gitlinks
from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import (
    ApiError,
    Incoming,
    JSONBody,
    check_path_id,
    validate,
    validate_array,
    validation_detail,
    with_ignored,
)
from local_telemetry.ingest import WriterBusy
from local_telemetry.schemas import (
    MAX_EVENTS_PER_REQUEST,
    NOT_NULLABLE_ON_UPDATE,
    BatchResult,
    CommitAssociation,
    CommitResult,
    CommitUrl,
    CreateResult,
    EventsResult,
    QcCreate,
    QcPublic,
    RepoUrl,
    RunCreate,
    RunEventCreate,
    RunEventPublic,
    RunEventQuery,
    RunPublic,
    RunQuery,
    RunUpdate,
    UpdateResult,
)
from local_telemetry.storage.base import (
    AddQc,
    AppendEvents,
    InsertRuns,
    RunFilter,
    RunJSON,
    UpdateRun,
    WriteOp,
)

Reply = tuple[int, Any]
"""HTTP status and JSON-able body."""

# ----- handlers -----


async def submit_write(app_state: AppState, op: WriteOp) -> Any:
    """Queue ``op`` for the writer (PII scrubbed first when enabled); its result."""
    if app_state.scrubber is not None:  # the one place ingest is scrubbed
        op = app_state.scrubber.scrub_op(op)
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


def public_run_json(run: RunJSON, app_state: AppState) -> orjson.Fragment:
    """A run serialized by the store, with its links spliced in: the same JSON bytes
    as ``orjson.dumps(public_run(...))`` without building a dict per run."""
    text, git_repo, commit_hash = run
    hosts = app_state.git_hosts
    links = orjson.dumps(
        {
            "commit_url": gitlinks.commit_url(git_repo, commit_hash, hosts),
            "repo_url": gitlinks.repo_url(git_repo, hosts),
        }
    )
    return orjson.Fragment(text[:-1].encode() + b"," + links[1:])


async def _existing_run(app_state: AppState, event_id: str) -> dict[str, Any]:
    run = await app_state.read(app_state.store.get_run, event_id)
    if run is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return run


async def create_run(app_state: AppState, incoming: Incoming) -> Reply:
    """Store a new run; a repeated ``event_id`` answers 201 ``duplicate``, changes nothing."""
    try:
        return await _create_run(app_state, incoming)
    except Exception as exc:  # a try costs nothing on the hot path when nothing raises
        app_state.metrics.rejected(exc)
        raise


async def _create_run(app_state: AppState, incoming: Incoming) -> Reply:
    data = await incoming.json(app_state.settings.max_run_body_bytes)
    run = validate(RunCreate, data)
    created = await submit_write(app_state, InsertRuns([run.to_row()]))
    app_state.metadata.observe(run.agent_name, run.job_type)
    if created == 1:
        app_state.metrics.runs_created.inc()
        answer = {"status": "created", "event_id": run.event_id, "run_id": run.run_id}
    else:
        app_state.metrics.runs_duplicate.inc()
        answer = {
            "status": "duplicate",
            "event_id": run.event_id,
            "message": "Event already exists (idempotent)",
        }
    return 201, with_ignored(answer, RunCreate, data)


def _batch_item_error(index: int, item: Any, exc: ValidationError) -> dict[str, Any]:
    event_id = item.get("event_id") if isinstance(item, dict) else None
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'item'}: {e['msg']}"
        for e in validation_detail(exc, "body")
    )
    return {
        "index": index,
        "event_id": event_id if isinstance(event_id, str) else None,
        "detail": problems,
    }


async def create_runs_batch(app_state: AppState, incoming: Incoming) -> Reply:
    """Store every valid run of a JSON array; report duplicates and per-item errors."""
    try:
        return await _create_runs_batch(app_state, incoming)
    except Exception as exc:
        app_state.metrics.rejected(exc)
        raise


async def _create_runs_batch(app_state: AppState, incoming: Incoming) -> Reply:
    settings = app_state.settings
    data = await incoming.json(settings.max_batch_body_bytes)
    if not isinstance(data, list):
        raise ApiError(
            422, [{"type": "list_type", "loc": ["body"], "msg": "Body must be a JSON array"}]
        )
    if len(data) > settings.max_batch_items:
        message = f"Batch has {len(data)} runs; at most {settings.max_batch_items}"
        raise ApiError(422, [{"type": "too_long", "loc": ["body"], "msg": message}])
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(data):
        try:
            rows.append(RunCreate.model_validate(item).to_row())
        except ValidationError as exc:
            errors.append(_batch_item_error(index, item, exc))
    inserted: int = await submit_write(app_state, InsertRuns(rows)) if rows else 0
    app_state.metrics.batch_size.observe(len(data))
    app_state.metrics.stored(inserted, len(rows) - inserted)
    for row in rows:
        app_state.metadata.observe(row["agent_name"], row["job_type"])
    answer = {
        "inserted": inserted,
        "duplicates": len(rows) - inserted,
        "errors": errors,
        "total": len(data),
    }
    return 200, with_ignored(answer, RunCreate, data)


async def list_runs(app_state: AppState, incoming: Incoming) -> Reply:
    """Runs matching every given filter, ordered by ``created_at`` descending."""
    query = validate(RunQuery, incoming.query, location="query")
    run_filter = RunFilter(**query.model_dump())
    runs = await app_state.read(app_state.store.list_runs_json, run_filter)
    return 200, [public_run_json(run, app_state) for run in runs]


async def get_run(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """The run with this ``event_id``."""
    check_path_id(event_id)
    run = await app_state.read(app_state.store.get_run_json, event_id)
    if run is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return 200, public_run_json(run, app_state)


async def update_run(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """Change the fields sent (canonical statuses only); answer which fields changed."""
    check_path_id(event_id)
    data = await incoming.json(app_state.settings.max_run_body_bytes)
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
    if await submit_write(app_state, UpdateRun(event_id, changes)) is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return 200, {"event_id": event_id, "updated": True, "fields_updated": list(changes)}


async def associate_commit(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """Set the run's commit hash, source, author and timestamp."""
    check_path_id(event_id)
    data = await incoming.json(app_state.settings.max_run_body_bytes)
    commit = validate(CommitAssociation, data)
    run_id = await submit_write(app_state, UpdateRun(event_id, commit.changes()))
    if run_id is None:
        raise ApiError(404, f"Run not found: {event_id}")
    answer = {
        "status": "success",
        "event_id": event_id,
        "run_id": run_id,
        "commit_hash": commit.commit_hash,
    }
    return 200, with_ignored(answer, CommitAssociation, data)


async def get_commit_url(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """``{"commit_url": ...}``; null when repo, hash or platform is unknown."""
    check_path_id(event_id)
    run = public_run(await _existing_run(app_state, event_id), app_state)
    return 200, {"commit_url": run["commit_url"]}


async def get_repo_url(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """``{"repo_url": ...}``; null when the repository or its host is unknown."""
    check_path_id(event_id)
    run = public_run(await _existing_run(app_state, event_id), app_state)
    return 200, {"repo_url": run["repo_url"]}


def _valid_events(data: Any) -> list[dict[str, Any]]:
    """The events of a body holding one event object or an array of them; all valid or a
    422 naming every problem (an array item's index comes right after ``body``)."""
    if isinstance(data, dict):
        return [validate(RunEventCreate, data).to_row()]
    if not isinstance(data, list):
        message = "Body must be an event object or a JSON array of them"
        raise ApiError(422, [{"type": "model_type", "loc": ["body"], "msg": message}])
    return validate_array(RunEventCreate, data, MAX_EVENTS_PER_REQUEST, "events")


async def append_events(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """Store one event or an array of events on the run: all of them, or none."""
    check_path_id(event_id)
    data = await incoming.json(app_state.settings.max_batch_body_bytes)
    events = _valid_events(data)
    inserted = await submit_write(app_state, AppendEvents(event_id, events))
    if inserted is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return 201, with_ignored({"event_id": event_id, "inserted": inserted}, RunEventCreate, data)


async def list_events(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """The run's events in the order received (oldest first), paged by ``after_id``."""
    check_path_id(event_id)
    query = validate(RunEventQuery, incoming.query, location="query")
    events = await app_state.read(
        lambda: app_state.store.list_events(event_id, after_id=query.after_id, limit=query.limit)
    )
    if events is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return 200, events


async def add_qc(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """Store one QC review of the run; answer 201 with the stored review."""
    check_path_id(event_id)
    data = await incoming.json(app_state.settings.max_run_body_bytes)
    review = validate(QcCreate, data).to_row()
    stored = await submit_write(app_state, AddQc(event_id, review))
    if stored is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return 201, with_ignored(stored, QcCreate, data)


async def list_qc(app_state: AppState, incoming: Incoming, event_id: str) -> Reply:
    """The run's QC reviews, oldest first."""
    check_path_id(event_id)
    reviews = await app_state.read(app_state.store.list_qc, event_id)
    if reviews is None:
        raise ApiError(404, f"Run not found: {event_id}")
    return 200, reviews


# ----- FastAPI routes: OpenAPI documentation and the path when fast paths are off -----

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

NOT_FOUND = {"description": "No run with this event_id", "content": {"application/json": {}}}


def body_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def schema_ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI query parameters declared by ``model`` (validation stays in schemas.py)."""
    schema = model.model_json_schema(by_alias=True)
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": field}
            for name, field in schema["properties"].items()
        ]
    }


def incoming(request: Request) -> Incoming:
    """The :class:`Incoming` of a FastAPI request."""
    headers = request.headers
    return Incoming(
        headers.get("content-type"),
        headers.get("content-length"),
        request.receive,
        request.query_params,
    )


def json_reply(reply: Reply) -> JSONBody:
    status, body = reply
    return JSONBody(body, status_code=status)


Handler = Callable[[AppState, Incoming], Awaitable[Reply]]
RunHandler = Callable[[AppState, Incoming, str], Awaitable[Reply]]


@router.post(
    "",
    status_code=201,
    summary="Create a run (idempotent on event_id)",
    response_model=None,
    responses={201: {"model": CreateResult}},
    openapi_extra=body_schema(schema_ref(RunCreate)),
)
async def create_run_route(request: Request) -> JSONBody:
    """Store a new run; a repeated ``event_id`` answers 201 ``duplicate``, changes nothing."""
    return json_reply(await create_run(state(request), incoming(request)))


@router.post(
    "/batch",
    summary="Create many runs",
    response_model=None,
    responses={200: {"model": BatchResult}},
    openapi_extra=body_schema({"type": "array", "items": schema_ref(RunCreate)}),
)
async def create_runs_batch_route(request: Request) -> JSONBody:
    """Store every valid run of a JSON array; report duplicates and per-item errors."""
    return json_reply(await create_runs_batch(state(request), incoming(request)))


@router.get(
    "",
    summary="Query runs, newest first",
    response_model=None,
    responses={200: {"model": list[RunPublic]}},
    openapi_extra=query_parameters(RunQuery),
)
async def list_runs_route(request: Request) -> JSONBody:
    """Runs matching every given filter, ordered by ``created_at`` descending.

    ``status`` accepts canonical values and aliases; ``created_before``/``created_after``
    are exclusive, ``start_time_from``/``start_time_to`` inclusive; all compare instants.
    """
    return json_reply(await list_runs(state(request), incoming(request)))


@router.get(
    "/{event_id}",
    summary="Get one run",
    response_model=None,
    responses={200: {"model": RunPublic}, 404: NOT_FOUND},
)
async def get_run_route(request: Request, event_id: str) -> JSONBody:
    """The run with this ``event_id``."""
    return json_reply(await get_run(state(request), incoming(request), event_id))


@router.patch(
    "/{event_id}",
    summary="Update a run",
    response_model=None,
    responses={200: {"model": UpdateResult}, 404: NOT_FOUND},
    openapi_extra=body_schema(schema_ref(RunUpdate)),
)
async def update_run_route(request: Request, event_id: str) -> JSONBody:
    """Change the fields sent (canonical statuses only); answer which fields changed."""
    return json_reply(await update_run(state(request), incoming(request), event_id))


@router.post(
    "/{event_id}/associate-commit",
    summary="Link a git commit to a run",
    response_model=None,
    responses={200: {"model": CommitResult}, 404: NOT_FOUND},
    openapi_extra=body_schema(schema_ref(CommitAssociation)),
)
async def associate_commit_route(request: Request, event_id: str) -> JSONBody:
    """Set the run's commit hash, source, author and timestamp."""
    return json_reply(await associate_commit(state(request), incoming(request), event_id))


@router.get(
    "/{event_id}/commit-url",
    summary="Browser URL of the run's commit",
    response_model=None,
    responses={200: {"model": CommitUrl}, 404: NOT_FOUND},
)
async def get_commit_url_route(request: Request, event_id: str) -> JSONBody:
    """``{"commit_url": ...}``; null when repo, hash or platform is unknown."""
    return json_reply(await get_commit_url(state(request), incoming(request), event_id))


@router.get(
    "/{event_id}/repo-url",
    summary="Browser URL of the run's repository",
    response_model=None,
    responses={200: {"model": RepoUrl}, 404: NOT_FOUND},
)
async def get_repo_url_route(request: Request, event_id: str) -> JSONBody:
    """``{"repo_url": ...}``; null when the repository or its host is unknown."""
    return json_reply(await get_repo_url(state(request), incoming(request), event_id))


@router.post(
    "/{event_id}/events",
    status_code=201,
    summary="Append events (log lines) to a run",
    response_model=None,
    responses={201: {"model": EventsResult}, 404: NOT_FOUND},
    openapi_extra=body_schema(
        {
            "oneOf": [
                schema_ref(RunEventCreate),
                {"type": "array", "items": schema_ref(RunEventCreate), "maxItems": 1000},
            ]
        }
    ),
)
async def append_events_route(request: Request, event_id: str) -> JSONBody:
    """Store one event or an array of at most 1,000: all of them, or none (422 naming the
    index of each bad item). ``level`` defaults to ``info``, ``timestamp`` to now."""
    return json_reply(await append_events(state(request), incoming(request), event_id))


@router.get(
    "/{event_id}/events",
    summary="List a run's events, oldest first",
    response_model=None,
    responses={200: {"model": list[RunEventPublic]}, 404: NOT_FOUND},
    openapi_extra=query_parameters(RunEventQuery),
)
async def list_events_route(request: Request, event_id: str) -> JSONBody:
    """The run's events in the order received; page with ``after_id`` = the last ``id``."""
    return json_reply(await list_events(state(request), incoming(request), event_id))


@router.post(
    "/{event_id}/qc",
    status_code=201,
    summary="Add a QC review (score 1-5) to a run",
    response_model=None,
    responses={201: {"model": QcPublic}, 404: NOT_FOUND},
    openapi_extra=body_schema(schema_ref(QcCreate)),
)
async def add_qc_route(request: Request, event_id: str) -> JSONBody:
    """Store one review: ``score`` a JSON integer 1..5, optional ``notes`` and ``reviewer``.
    A run may have any number of reviews."""
    return json_reply(await add_qc(state(request), incoming(request), event_id))


@router.get(
    "/{event_id}/qc",
    summary="List a run's QC reviews, oldest first",
    response_model=None,
    responses={200: {"model": list[QcPublic]}, 404: NOT_FOUND},
)
async def list_qc_route(request: Request, event_id: str) -> JSONBody:
    """The run's QC reviews in the order received."""
    return json_reply(await list_qc(state(request), incoming(request), event_id))


# The fast path's dispatch tables: (method) -> handler, for the collection and one run.
COLLECTION_HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", ""): create_run,
    ("GET", ""): list_runs,
    ("POST", "batch"): create_runs_batch,
}
RUN_HANDLERS: dict[tuple[str, str], RunHandler] = {
    ("GET", ""): get_run,
    ("PATCH", ""): update_run,
    ("POST", "associate-commit"): associate_commit,
    ("GET", "commit-url"): get_commit_url,
    ("GET", "repo-url"): get_repo_url,
    ("POST", "events"): append_events,
    ("GET", "events"): list_events,
    ("POST", "qc"): add_qc,
    ("GET", "qc"): list_qc,
}
