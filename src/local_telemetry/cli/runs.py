"""``local-telemetry runs list|show|tail``: querying runs through the HTTP API.

Filters are the query parameters of ``GET /api/v1/runs`` under the same names and are
validated by the server (a bad value is its 422, exit 2). ``runs tail`` polls that
endpoint with ``created_after``; see :class:`Follower` for how it neither skips nor
repeats a run.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import httpx
import orjson
import typer

from local_telemetry.cli import tables
from local_telemetry.cli.filters import (
    AgentNameOption,
    CreatedAfterOption,
    CreatedBeforeOption,
    JobTypeOption,
    ParentRunIdOption,
    RunIdOption,
    StartTimeFromOption,
    StartTimeToOption,
    StatusOption,
    run_params,
)
from local_telemetry.cli.remote import (
    EXIT_BAD_ARGUMENTS,
    JsonOption,
    Remote,
    TokenOption,
    UrlOption,
    fail,
    print_json,
)
from local_telemetry.cli.root import app
from local_telemetry.timestamps import parse_instant, to_stored

if TYPE_CHECKING:
    from rich.console import Console

runs_app = typer.Typer(
    help="Query runs: list them with filters, show one, follow new ones (tail).",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs", help="Query runs: list, show one, follow new ones.")

RUNS_PATH = "/api/v1/runs"
PAGE_SIZE = 1000
"""The server's largest ``limit``."""
EVENTS_PAGE_SIZE = 1000
OVERLAP = timedelta(seconds=2)
"""How far before the newest run seen ``runs tail`` asks again: a run whose transaction
commits after a later-stamped one (PostgreSQL, concurrent writers) still shows up."""
MAX_BACKOFF_SECONDS = 30.0


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that are set."""
    return {name: value for name, value in params.items() if value is not None}


def _run_row(run: Mapping[str, Any], with_items: bool) -> list[str]:
    row = [
        tables.timestamp(run.get("start_time")),
        tables.text(run.get("agent_name")),
        tables.text(run.get("job_type")),
        tables.text(run.get("status")),
        tables.duration_ms(run.get("duration_ms")),
    ]
    if with_items:
        succeeded = tables.number(run.get("items_succeeded"))
        row.append(f"{succeeded} / {tables.number(run.get('items_failed'))}")
    row.append(tables.text(run.get("event_id")))
    return row


def _has_items(runs: list[dict[str, Any]]) -> bool:
    return any(
        run.get("items_succeeded") is not None or run.get("items_failed") is not None
        for run in runs
    )


def print_runs(runs: list[dict[str, Any]]) -> None:
    """The runs as a table: start time, agent, job type, status, duration, items, id."""
    with_items = _has_items(runs)
    columns = ["Start time", "Agent", "Job type", "Status", "Duration"]
    if with_items:
        columns.append("Items ok / failed")
    columns.append("Event ID")
    tables.print_table(
        columns,
        (_run_row(run, with_items) for run in runs),
        no_wrap=("Start time", "Event ID"),
    )


@runs_app.command("list")
def list_runs(
    agent_name: AgentNameOption = None,
    job_type: JobTypeOption = None,
    run_id: RunIdOption = None,
    parent_run_id: ParentRunIdOption = None,
    status: StatusOption = None,
    created_after: CreatedAfterOption = None,
    created_before: CreatedBeforeOption = None,
    start_time_from: StartTimeFromOption = None,
    start_time_to: StartTimeToOption = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs (1-1000).")] = 100,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many runs first.")] = 0,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first, filtered like GET /api/v1/runs.

    Timestamps are ISO 8601 with a timezone (2026-01-12T10:30:00Z). With --json the
    server's JSON array is printed unchanged. No match: a note on stderr, exit 0.
    """
    filters = run_params(
        agent_name=agent_name,
        job_type=job_type,
        run_id=run_id,
        parent_run_id=parent_run_id,
        status=status,
        created_after=created_after,
        created_before=created_before,
        start_time_from=start_time_from,
        start_time_to=start_time_to,
    )
    params = {**filters, "limit": limit, "offset": offset}
    with Remote(url, token) as remote:
        runs: list[dict[str, Any]] = remote.get(RUNS_PATH, params)
    tables.print_found(runs, as_json=as_json, render=print_runs, nothing="no runs match")


def _run_path(event_id: str, suffix: str = "") -> str:
    return f"{RUNS_PATH}/{quote(event_id, safe='')}{suffix}"


def fetch_run(remote: Remote, event_id: str) -> dict[str, Any]:
    """The run ``event_id``; exit 2 when the server has none."""
    try:
        response = remote.http.get(_run_path(event_id))
    except httpx.TransportError as exc:
        remote.unreachable(exc)
    if response.status_code == 404:
        fail(f"no run with event_id {event_id!r} on {remote.url}", EXIT_BAD_ARGUMENTS)
    run: dict[str, Any] = remote.check(response).json()
    return run


def fetch_events(remote: Remote, event_id: str) -> list[dict[str, Any]]:
    """Every event of the run, oldest first (paged by ``after_id``)."""
    events: list[dict[str, Any]] = []
    while True:
        after_id = events[-1]["id"] if events else 0
        page = remote.get(
            _run_path(event_id, "/events"), {"after_id": after_id, "limit": EVENTS_PAGE_SIZE}
        )
        events.extend(page)
        if len(page) < EVENTS_PAGE_SIZE:
            return events


def _print_section(out: Console, title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A titled table of ``rows`` (its first column, a time, unwrapped), or one line
    saying there are none."""
    if rows:
        out.print(
            tables.table(columns, rows, title=f"{title} ({len(rows)})", no_wrap=(columns[0],))
        )
    else:
        out.print(f"{title}: none")


def _print_run(run: dict[str, Any], events: list[dict[str, Any]], qc: list[dict[str, Any]]) -> None:
    out = tables.console()
    fields = tables.table(
        ["Field", "Value"],
        ([name, tables.pretty(value)] for name, value in run.items() if value is not None),
        title=f"Run {run.get('event_id')}",
        no_wrap=("Field",),
    )
    out.print(fields)
    _print_section(
        out,
        "Events",
        ["Time", "Level", "Message", "Data"],
        [
            [
                tables.timestamp(event.get("timestamp")),
                tables.text(event.get("level")),
                tables.text(event.get("message")),
                tables.text(event.get("data")),
            ]
            for event in events
        ],
    )
    _print_section(
        out,
        "QC reviews",
        ["Time", "Score", "Reviewer", "Notes"],
        [
            [
                tables.timestamp(review.get("created_at")),
                tables.text(review.get("score")),
                tables.text(review.get("reviewer")),
                tables.text(review.get("notes")),
            ]
            for review in qc
        ],
    )


@runs_app.command("show")
def show_run(
    event_id: Annotated[str, typer.Argument(help="The run's event_id.", show_default=False)],
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one run: every field (JSON fields indented), its events and QC reviews.

    With --json: one object {"run": ..., "events": [...], "qc": [...]}. An unknown
    event_id exits 2.
    """
    with Remote(url, token) as remote:
        run = fetch_run(remote, event_id)
        events = fetch_events(remote, event_id)
        qc: list[dict[str, Any]] = remote.get(_run_path(event_id, "/qc"))
    if as_json:
        print_json({"run": run, "events": events, "qc": qc})
    else:
        _print_run(run, events, qc)


class ServerTrouble(Exception):
    """The server could not answer right now (unreachable, 429 or 5xx): retry later."""


Fetch = Callable[[dict[str, Any]], list[dict[str, Any]]]


class Follower:
    """Finds the runs recorded since the last poll, each exactly once.

    Each poll asks for ``created_after`` = (newest ``created_at`` seen) - :data:`OVERLAP`
    and drops the event_ids already seen. Asking a little earlier than the newest run
    makes it immaterial whether ``created_after`` is strict or inclusive and whether
    several runs share a ``created_at``; the seen set only has to remember the runs of
    the overlap. A poll pages with the largest ``limit`` until a short page: the newest
    come first, so runs arriving meanwhile only push older ones to a later page (seen
    twice, printed once), never out of reach.
    """

    def __init__(self, fetch: Fetch, filters: Mapping[str, Any]) -> None:
        self.fetch = fetch
        self.filters = _clean(filters)
        self.seen: dict[str, datetime] = {}
        self.newest: datetime | None = None

    def _since(self, after: datetime | None) -> list[dict[str, Any]]:
        """Every matching run created after ``after``, oldest first."""
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            params = {**self.filters, "limit": PAGE_SIZE, "offset": offset}
            if after is not None:
                params["created_after"] = to_stored(after)
            page = self.fetch(params)
            found.extend(page)
            if len(page) < PAGE_SIZE:
                found.reverse()  # newest first -> oldest first, ties in insertion order
                return found
            offset += PAGE_SIZE

    def _remember(self, run: Mapping[str, Any]) -> bool:
        """Note ``run`` as seen; False when it already was."""
        event_id = str(run["event_id"])
        if event_id in self.seen:
            return False
        created = parse_instant(str(run["created_at"]))
        self.seen[event_id] = created
        if self.newest is None or created > self.newest:
            self.newest = created
        return True

    def _cutoff(self) -> datetime | None:
        return None if self.newest is None else self.newest - OVERLAP

    def _forget_old(self) -> None:
        cutoff = self._cutoff()
        if cutoff is not None:
            self.seen = {key: at for key, at in self.seen.items() if at >= cutoff}

    def start(self, lines: int) -> list[dict[str, Any]]:
        """The newest ``lines`` runs, oldest first; what is older counts as seen."""
        latest = self.fetch({**self.filters, "limit": max(lines, 1)})
        latest.reverse()
        for run in latest:
            self._remember(run)
        newest = self.newest
        if newest is not None:
            # The runs of the overlap outside the window are old news too, but not those
            # recorded since the first request: the next poll prints them.
            for run in self._since(newest - OVERLAP):
                if parse_instant(str(run["created_at"])) <= newest:
                    self._remember(run)
        self._forget_old()
        return latest[-lines:] if lines > 0 else []

    def poll(self) -> list[dict[str, Any]]:
        """The runs not seen before, oldest first."""
        fresh = [run for run in self._since(self._cutoff()) if self._remember(run)]
        self._forget_old()
        return fresh


def _transient_fetch(remote: Remote) -> Fetch:
    """A fetch of ``GET /api/v1/runs`` that raises :class:`ServerTrouble` instead of
    exiting when the server is away or overloaded (a 4xx still exits)."""

    def fetch(params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            response = remote.http.get(RUNS_PATH, params=params)
        except httpx.TransportError as exc:
            raise ServerTrouble(f"{exc.__class__.__name__}: {exc}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ServerTrouble(f"{response.status_code} {response.reason_phrase}")
        runs: list[dict[str, Any]] = remote.check(response).json()
        return runs

    return fetch


def _emit(run: Mapping[str, Any], as_json: bool) -> None:
    line = orjson.dumps(run).decode() if as_json else "  ".join(_run_row(run, with_items=False))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _follow(
    remote: Remote,
    follower: Follower,
    *,
    interval: float,
    max_runs: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    printed = 0
    delay = interval
    trouble: str | None = None
    while max_runs is None or printed < max_runs:
        pause = delay
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            pause = min(pause, remaining)
        time.sleep(pause)
        try:
            fresh = follower.poll()
        except ServerTrouble as exc:
            if trouble is None:
                typer.echo(
                    f"warning: lost the server at {remote.url} ({exc}); retrying, "
                    f"at most every {MAX_BACKOFF_SECONDS:.0f}s",
                    err=True,
                )
            trouble = str(exc)
            delay = min(max(delay * 2, interval), MAX_BACKOFF_SECONDS)
            continue
        if trouble is not None:
            typer.echo(f"reconnected to {remote.url}", err=True)
            trouble = None
            delay = interval
        for run in fresh:
            _emit(run, as_json)
            printed += 1
            if max_runs is not None and printed >= max_runs:
                return


@runs_app.command("tail")
def tail_runs(
    agent_name: AgentNameOption = None,
    job_type: JobTypeOption = None,
    status: StatusOption = None,
    lines: Annotated[
        int,
        typer.Option("--lines", "-n", min=0, max=PAGE_SIZE, help="Runs to print first."),
    ] = 10,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between polls.")
    ] = 1.0,
    max_runs: Annotated[
        int | None,
        typer.Option(
            "--max-runs",
            min=0,
            help="Stop after this many new runs (the first -n are not counted).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0, help="Stop after following this many seconds.", show_default=False
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (JSON Lines).")
    ] = False,
) -> None:
    """Follow new runs live, like tail -f: the last -n runs, then each new one once.

    Polls every --interval seconds until Ctrl-C, --max-runs or --timeout (exit 0). If
    the server goes away meanwhile, warns on stderr and keeps retrying (backing off up
    to 30 s); unreachable at the start is exit 1.
    """
    filters = run_params(agent_name=agent_name, job_type=job_type, status=status)
    try:
        with Remote(url, token) as remote:
            follower = Follower(lambda params: remote.get(RUNS_PATH, params), filters)
            for run in follower.start(lines):
                _emit(run, as_json)
            follower.fetch = _transient_fetch(remote)
            _follow(
                remote,
                follower,
                interval=interval,
                max_runs=max_runs,
                timeout=timeout,
                as_json=as_json,
            )
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BrokenPipeError:
        # The reader went away (``runs tail | head``): stop like tail does, and point
        # stdout at /dev/null so the interpreter's final flush cannot complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
