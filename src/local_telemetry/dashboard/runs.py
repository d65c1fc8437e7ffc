"""The Runs page (``/runs``), its live-refresh fragment and the Run detail page.

``/runs`` takes every filter of ``GET /api/v1/runs``, validated by the same
:class:`RunQuery` (a bad value shows the problem with 400), and pages by offset: it
fetches one row more than it shows to know whether a next page exists, so no query
ever counts all runs. On the first page a hidden poller row asks
``/runs/-/rows?<filters>&created_after=<newest shown>`` every few seconds; the answer
(204 when nothing is new) replaces the poller with a fresh one followed by the new
rows, so they appear at the top without a reload and the scroll position stays.
(``-`` is no event_id: ``/runs/{event_id}`` is one path segment, so they never clash.)

``/runs/{event_id}`` shows every stored field, the events, the QC reviews and a form
to add one (CSRF-checked, validated with :class:`QcCreate`, stored through the writer,
then Post/Redirect/Get).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import validation_detail
from local_telemetry.api.runs import public_run, submit_write
from local_telemetry.dashboard import page_router
from local_telemetry.dashboard.auth import check_csrf
from local_telemetry.dashboard.web import PAGE_HEADERS, read_form, render, with_query
from local_telemetry.schemas import CANONICAL_STATUSES, QcCreate, RunQuery
from local_telemetry.storage.base import RUN_COLUMNS, AddQc, RunFilter

PAGE_SIZE = 50
PAGE_SIZES = (25, 50, 100, 200)
POLL_SECONDS = 3
EVENTS_SHOWN = 1000
FILTER_FIELDS: tuple[str, ...] = (
    "agent_name",
    "job_type",
    "status",
    "run_id",
    "parent_run_id",
    "created_after",
    "created_before",
    "start_time_from",
    "start_time_to",
)
QUERY_FIELDS: tuple[str, ...] = (*FILTER_FIELDS, "limit", "offset")
# Fields the detail page shows in sections of their own rather than in the field list.
SECTION_FIELDS = frozenset({"error_summary", "error_details", "metrics_json", "context_json"})
TIME_FIELDS = frozenset(
    {
        "created_at",
        "updated_at",
        "start_time",
        "end_time",
        "git_commit_timestamp",
        "api_posted_at",
    }
)

router = page_router()


def agent_href(name: str) -> str:
    """The agent page of ``name`` (every character but unreserved ones escaped)."""
    return "/agents/" + quote(name, safe="")


def run_href(event_id: str) -> str:
    """The detail page of the run ``event_id``."""
    return "/runs/" + quote(event_id, safe="")


def web_link(url: str | None) -> str | None:
    """``url`` when it is an http(s) link a page may render as ``<a href>``."""
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return url
    return None


def pretty_json(value: Any) -> str:
    """A decoded JSON value as indented text (text adopted as not-JSON stays as it is)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def duration_ms(run: Mapping[str, Any]) -> float | None:
    """The run's duration: ``duration_ms`` when set (not the stored default 0), else
    end_time - start_time; ``None`` for a run without either (still running)."""
    value = run.get("duration_ms")
    if isinstance(value, int | float) and value > 0:
        return float(value)
    start, end = run.get("start_time"), run.get("end_time")
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    try:
        delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    except (TypeError, ValueError):
        return None
    return max(delta.total_seconds() * 1000, 0.0)


def _sent(request: Request) -> dict[str, str]:
    """The known query parameters that carry a value, in their canonical order."""
    params = request.query_params
    return {key: params[key] for key in QUERY_FIELDS if params.get(key, "").strip()}


def _problems(exc: ValidationError) -> list[str]:
    messages = []
    for error in validation_detail(exc, "query"):
        field = ".".join(str(part) for part in error["loc"][1:])
        messages.append(f"{field}: {error['msg']}")
    return messages


def _validated(sent: Mapping[str, str]) -> RunQuery:
    values: dict[str, Any] = {key: value.strip() for key, value in sent.items()}
    values.setdefault("limit", str(PAGE_SIZE))
    return RunQuery.model_validate(values)


def _row(run: dict[str, Any]) -> dict[str, Any]:
    run["href"] = run_href(run["event_id"])
    run["agent_href"] = agent_href(run["agent_name"])
    run["duration"] = duration_ms(run)
    return run


async def _fetch(app_state: AppState, query: RunQuery, **changes: Any) -> list[dict[str, Any]]:
    """Up to ``limit + 1`` runs of ``query`` (the extra one says a next page exists)."""
    fields = {**query.model_dump(), **changes}
    fields["limit"] = fields["limit"] + 1
    runs = await app_state.read(app_state.store.list_runs, RunFilter(**fields))
    return [_row(run) for run in runs]


def _poll_url(sent: Mapping[str, str], newest: str | None) -> str:
    query = with_query(sent, created_after=newest, offset=None)
    return "/runs/-/rows" + (f"?{query}" if query else "")


def _base_context(sent: Mapping[str, str]) -> dict[str, Any]:
    return {
        "sent": sent,
        "filter_fields": FILTER_FIELDS,
        "statuses": CANONICAL_STATUSES,
        "page_sizes": PAGE_SIZES,
        "page_size": PAGE_SIZE,
        "poll_seconds": POLL_SECONDS,
    }


@router.get("/runs")
async def runs_page(request: Request) -> Response:
    """The run list: filters, status badges, counters, pages, live refresh."""
    sent = _sent(request)
    if any(key in request.query_params for key in QUERY_FIELDS if key not in sent):
        # A plain GET form sends its empty fields too: go to the clean, shareable URL.
        clean = with_query(sent)
        return RedirectResponse("/runs" + (f"?{clean}" if clean else ""), status_code=303)
    context = _base_context(sent)
    try:
        query = _validated(sent)
    except ValidationError as exc:
        context.update(problems=_problems(exc), runs=[], has_next=False, query=None)
        return render(request, "runs.html", context, status_code=400)
    runs = await _fetch(state(request), query)
    has_next = len(runs) > query.limit
    runs = runs[: query.limit]
    newest = runs[0]["created_at"] if runs else sent.get("created_after")
    context.update(
        problems=[],
        runs=runs,
        query=query,
        has_next=has_next,
        poll_url=_poll_url(sent, newest) if query.offset == 0 else None,
    )
    return render(request, "runs.html", context)


@router.get("/runs/-/rows")
async def runs_rows(request: Request) -> Response:
    """The runs newer than ``created_after`` (filters as on the page) and a new poller;
    204 when there are none."""
    sent = _sent(request)
    try:
        query = _validated(sent)
    except ValidationError as exc:
        return Response(
            "; ".join(_problems(exc)),
            status_code=400,
            media_type="text/plain",
            headers=PAGE_HEADERS,
        )
    runs = (await _fetch(state(request), query, offset=0))[: query.limit]
    if not runs:
        return Response(status_code=204, headers=PAGE_HEADERS)
    context = {
        "runs": runs,
        "poll_url": _poll_url(sent, runs[0]["created_at"]),
        "poll_seconds": POLL_SECONDS,
    }
    return render(request, "_run_rows.html", context)


async def _detail(
    request: Request,
    event_id: str,
    *,
    qc_errors: list[str] | None = None,
    qc_form: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    app_state = state(request)
    run = await app_state.read(app_state.store.get_run, event_id)
    if run is None:
        missing = {"run": None, "event_id": event_id}
        return render(request, "run.html", missing, status_code=404)
    run = _row(public_run(run, app_state))
    events = await app_state.read(
        lambda: app_state.store.list_events(event_id, limit=EVENTS_SHOWN + 1)
    )
    reviews = await app_state.read(app_state.store.list_qc, event_id)
    events = events or []
    for event in events:
        event["pretty"] = None if event.get("data") is None else pretty_json(event["data"])
    fields = [column for column in RUN_COLUMNS if column not in SECTION_FIELDS]
    context: dict[str, Any] = {
        "run": run,
        "event_id": event_id,
        "fields": fields,
        "time_fields": TIME_FIELDS,
        "commit_link": web_link(run.get("commit_url")),
        "repo_link": web_link(run.get("repo_url")),
        "metrics": None if run["metrics_json"] is None else pretty_json(run["metrics_json"]),
        "context_data": None if run["context_json"] is None else pretty_json(run["context_json"]),
        "events": events[:EVENTS_SHOWN],
        "more_events": len(events) > EVENTS_SHOWN,
        "reviews": reviews or [],
        "qc_errors": qc_errors or [],
        "qc_form": qc_form or {},
        "href": run_href,
    }
    return render(request, "run.html", context, status_code=status_code)


@router.get("/runs/{event_id}")
async def run_page(request: Request, event_id: str) -> Response:
    """Everything about one run; 404 page for an unknown ``event_id``."""
    return await _detail(request, event_id)


def _review(form: Mapping[str, str]) -> dict[str, Any]:
    """The QC form as a ``QcCreate`` body (the score a JSON integer when it is digits)."""
    score_text = form.get("score", "").strip()
    score: Any = int(score_text) if score_text.isdigit() and len(score_text) < 4 else score_text
    body: dict[str, Any] = {"score": score}
    for key in ("notes", "reviewer"):
        value = form.get(key, "").strip()
        body[key] = value or None
    return body


@router.post("/runs/{event_id}/qc")
async def add_review(request: Request, event_id: str) -> Response:
    """Store a QC review from the detail page's form, then back to the page (303)."""
    form = await read_form(request)
    check_csrf(request, form)
    try:
        review = QcCreate.model_validate(_review(form))
    except ValidationError as exc:
        messages = [
            f"{'.'.join(str(p) for p in error['loc'][1:])}: {error['msg']}"
            for error in validation_detail(exc, "body")
        ]
        return await _detail(request, event_id, qc_errors=messages, qc_form=form, status_code=422)
    stored = await submit_write(state(request), AddQc(event_id, review.to_row()))
    if stored is None:
        return await _detail(request, event_id)  # the run is gone: its 404 page
    return RedirectResponse(run_href(event_id) + "#qc", status_code=303)
