"""Housekeeping through the server's API: ``purge`` (old data) and ``stale`` (runs left
``running`` by crashed agents).

Both go through the running server (its single writer owns the database and its
caches), on SQLite and PostgreSQL alike: ``purge`` runs one retention sweep with the
given ages (``POST /api/v1/retention/sweep``), ``stale`` closes stale runs
(``POST /api/v1/maintenance/close-stale-runs``).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from local_telemetry.cli.remote import (
    EXIT_BAD_ARGUMENTS,
    EXIT_FAILED,
    JsonOption,
    Remote,
    TokenOption,
    UrlOption,
    fail,
    print_json,
)
from local_telemetry.cli.root import app
from local_telemetry.cli.tables import console, print_table, table, text
from local_telemetry.config import STALE_TIMEOUT_UNITS
from local_telemetry.durations import parse_duration
from local_telemetry.storage.base import STALE_CLOSE_STATUSES

SWEEP_PATH = "/api/v1/retention/sweep"
CLOSE_STALE_PATH = "/api/v1/maintenance/close-stale-runs"
# (field of the sweep's answer, how the table names it), in the order they are shown.
PURGE_COUNTS: tuple[tuple[str, str], ...] = (
    ("runs_deleted", "runs deleted"),
    ("payload_blanked_runs", "runs with payloads blanked"),
    ("events_deleted", "events deleted"),
    ("qc_reviews_deleted", "QC reviews deleted"),
    ("qc_notes_blanked", "QC notes blanked"),
    ("pages_freed", "pages freed"),
)
STALE_COLUMNS = ("event_id", "agent", "job type", "started", "last heard")


def _age(option: str, value: str, units: str = "mhdw") -> str:
    """``value`` when ``parse_duration`` accepts it; exit 2 naming ``option`` otherwise."""
    try:
        parse_duration(value, units=units)
    except ValueError as exc:
        fail(f"{option}: {exc}", EXIT_BAD_ARGUMENTS)
    return value.strip()


def _print_purge(result: dict[str, Any], title: str, *, stderr: bool = False) -> None:
    """The sweep's cutoffs, one line each, then its counts as a table."""
    out = console(stderr=stderr)
    out.print(title)
    if result.get("run_cutoff") is not None:
        out.print(f"  deleting runs that started before {result['run_cutoff']}")
    if result.get("payload_cutoff") is not None:
        out.print(f"  blanking payloads of runs that started before {result['payload_cutoff']}")
    rows = [(label, str(result.get(name, 0))) for name, label in PURGE_COUNTS]
    out.print(table(("", "count"), rows))


def _would_change(result: dict[str, Any]) -> bool:
    return any(result.get(name) for name, _ in PURGE_COUNTS)


@app.command()
def purge(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Delete runs that started longer ago (e.g. 90d)."),
    ] = None,
    payloads_older_than: Annotated[
        str | None,
        typer.Option(
            "--payloads-older-than",
            help="Blank raw payloads (error details, metrics, context, events, QC notes) "
            "of runs that started longer ago (e.g. 30d); KPI inputs stay.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be removed.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Purge without asking.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Delete old runs and/or blank old payloads now, through the server's retention
    sweep (these ages replace the configured retention limits for this sweep only).

    Ages: a whole number and a unit, m h d w (30m, 24h, 90d, 2w), measured on each
    run's start_time. Without --yes a dry run is shown first and confirmation asked
    (stdin must be a terminal then). Prints the counts, or the sweep's answer with
    --json.
    """
    if older_than is None and payloads_older_than is None:
        fail("give --older-than and/or --payloads-older-than", EXIT_BAD_ARGUMENTS)
    body: dict[str, Any] = {}
    if older_than is not None:
        body["run_older_than"] = _age("--older-than", older_than)
    if payloads_older_than is not None:
        body["payload_older_than"] = _age("--payloads-older-than", payloads_older_than)
    if not dry_run and not yes and not sys.stdin.isatty():
        fail("pass --yes to purge without a prompt", EXIT_BAD_ARGUMENTS)
    with Remote(url, token) as remote:
        if not dry_run and not yes:
            preview: dict[str, Any] = remote.post(SWEEP_PATH, {**body, "dry_run": True})
            if not _would_change(preview):
                _show_purge(preview, json_out, "Nothing to purge:")
                return
            _print_purge(preview, "Would purge:", stderr=True)
            if not typer.confirm("Purge this data? It cannot be undone", err=True):
                fail("aborted; nothing was changed", EXIT_FAILED)
        result: dict[str, Any] = remote.post(SWEEP_PATH, {**body, "dry_run": dry_run})
    _show_purge(result, json_out, "Would purge (dry run):" if dry_run else "Purged:")


def _show_purge(result: dict[str, Any], json_out: bool, title: str) -> None:
    if json_out:
        print_json(result)
    else:
        _print_purge(result, title)


@app.command()
def stale(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Close runs still running with no update for longer than this "
            "(e.g. 24h; units s m h d w).",
            show_default=False,
        ),
    ],
    mark: Annotated[
        str,
        typer.Option("--mark", help=f"Status they get: {', '.join(STALE_CLOSE_STATUSES)}."),
    ] = "timeout",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the runs that would be closed.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Close stale runs: runs whose status is still `running` and from which nothing
    has been heard (last update, else creation) for longer than --older-than, as left
    behind by crashed agents (agent runs too).

    Each gets the --mark status, an end time at its last update, its duration and an
    error summary saying why. Prints how many and which (at most 1000 listed), or the
    server's answer with --json.
    """
    age = _age("--older-than", older_than, STALE_TIMEOUT_UNITS)
    if mark not in STALE_CLOSE_STATUSES:
        allowed = ", ".join(STALE_CLOSE_STATUSES)
        fail(f"--mark must be one of {allowed}, not {mark!r}", EXIT_BAD_ARGUMENTS)
    with Remote(url, token) as remote:
        result: dict[str, Any] = remote.post(
            CLOSE_STALE_PATH, {"older_than": age, "status": mark, "dry_run": dry_run}
        )
    if json_out:
        print_json(result)
        return
    count = int(result["closed"])
    verb = "would close" if dry_run else "closed"
    typer.echo(
        f"{verb} {count} stale run{'' if count == 1 else 's'} as {result['status']} "
        f"(no update since {result['cutoff']})"
    )
    runs: list[dict[str, Any]] = result.get("runs", [])
    if runs:
        rows = [
            (
                text(run.get("event_id")),
                text(run.get("agent_name")),
                text(run.get("job_type")),
                text(run.get("start_time")),
                text(run.get("last_heard")),
            )
            for run in runs
        ]
        print_table(STALE_COLUMNS, rows, no_wrap=("event_id", "started", "last heard"))
    if count > len(runs):
        typer.echo(f"... and {count - len(runs)} more")
