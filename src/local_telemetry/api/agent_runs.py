"""The agent-metrics runbook's endpoints (``/api/agent-runs``...).

``POST /api/agent-runs`` takes the runbook's ``agent_run`` record and stores it as a run
(``event_id`` = ``run_id`` = the UUID): a start record creates a ``running`` run, an end
record (``ended_at`` + ``resolution``) completes it. The whole post, QC reviews included,
is one write operation in the writer's transaction, so concurrent posts of one
``run_id`` cannot both create it. The QC routes here share the handlers of
``/api/v1/runs/{event_id}/qc``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import ApiError, Incoming, JSONBody, validate, with_ignored
from local_telemetry.api.runs import (
    NOT_FOUND,
    Reply,
    add_qc,
    body_schema,
    incoming,
    json_reply,
    list_qc,
    schema_ref,
    submit_write,
)
from local_telemetry.schemas import (
    AGENT_RUN_JOB_TYPE,
    AgentRunPost,
    AgentRunResult,
    QcCreate,
    QcPublic,
)
from local_telemetry.storage.base import EndsBeforeStart, RunConflict, UpsertAgentRun
from local_telemetry.timestamps import now_stored


async def post_agent_run(app_state: AppState, incoming: Incoming) -> Reply:
    """Create, complete or confirm the agent run ``run_id``; 409 if it contradicts an
    ended run, 422 if it would end before it started."""
    data = await incoming.json(app_state.settings.max_run_body_bytes)
    post = validate(AgentRunPost, data)
    fields = post.to_fields()
    start = now_stored()
    if post.ended_at is not None and post.ended_at < start:
        start = post.ended_at  # a run cannot start after it ended
    on_create = {"job_type": AGENT_RUN_JOB_TYPE, "start_time": start}
    reviews = [review.to_row() for review in post.qc or ()]
    try:
        result = await submit_write(
            app_state, UpsertAgentRun(post.run_id, fields, on_create, reviews)
        )
    except RunConflict as exc:
        raise ApiError(409, str(exc)) from None
    except EndsBeforeStart as exc:
        problem = {"type": "value_error", "loc": ["body", "ended_at"], "msg": str(exc)}
        raise ApiError(422, [problem]) from None
    if result == "created":  # an existing run keeps its stored job_type
        app_state.metadata.observe(post.agent_name, post.job_type or AGENT_RUN_JOB_TYPE)
    return 200, with_ignored({"status": result, "run_id": post.run_id}, AgentRunPost, data)


# ----- FastAPI routes -----

router = APIRouter(prefix="/api/agent-runs", tags=["agent runs"])
CONFLICT = {"description": "Contradicts the ended run", "content": {"application/json": {}}}


@router.post(
    "",
    summary="Log an agent run (runbook): start, end, or both",
    response_model=None,
    responses={200: {"model": AgentRunResult}, 409: CONFLICT},
    openapi_extra=body_schema(schema_ref(AgentRunPost)),
)
async def post_agent_run_route(request: Request) -> JSONBody:
    """Keyed by ``run_id``: ``created``, ``updated`` (a later post completed the run) or
    ``duplicate`` (nothing changed). Without ``ended_at`` the run is ``running``; with it
    (and the required ``resolution``) status becomes success (resolved), partial
    (escalated) or failure (failed) and ``duration_ms`` = ended_at - started_at."""
    return json_reply(await post_agent_run(state(request), incoming(request)))


@router.post(
    "/{run_id}/qc",
    status_code=201,
    summary="Add a QC review (score 1-5) to an agent run",
    response_model=None,
    responses={201: {"model": QcPublic}, 404: NOT_FOUND},
    openapi_extra=body_schema(schema_ref(QcCreate)),
)
async def add_qc_route(request: Request, run_id: str) -> JSONBody:
    """Same as ``POST /api/v1/runs/{event_id}/qc``."""
    return json_reply(await add_qc(state(request), incoming(request), run_id))


@router.get(
    "/{run_id}/qc",
    summary="List an agent run's QC reviews, oldest first",
    response_model=None,
    responses={200: {"model": list[QcPublic]}, 404: NOT_FOUND},
)
async def list_qc_route(request: Request, run_id: str) -> JSONBody:
    """Same as ``GET /api/v1/runs/{event_id}/qc``."""
    return json_reply(await list_qc(state(request), incoming(request), run_id))
