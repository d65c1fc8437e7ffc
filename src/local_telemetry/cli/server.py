"""Commands about the server itself: ``serve``, ``version``, ``migrate-data``."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Any

import typer

from local_telemetry import __version__
from local_telemetry.cli.root import app
from local_telemetry.config import (
    ConfigurationError,
    check_bind,
    describe_settings,
    load_settings,
)

GIL_SWITCH_INTERVAL_S = 0.001


def _settings_help() -> str:
    # Typer/click rewraps the epilog; paragraphs (blank-line separated) stay apart.
    entries = [
        f"{env} (default: {default or 'unset'}): {description}"
        for env, default, description in describe_settings()
    ]
    return "\n\n".join(["Every setting (environment variable, default):", *entries])


@app.command(epilog=_settings_help())
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [TELEMETRY_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [TELEMETRY_API_PORT].")] = None,
    db_path: Annotated[str | None, typer.Option(help="SQLite file [TELEMETRY_DB_PATH].")] = None,
    allow_unauthenticated_network: Annotated[
        bool,
        typer.Option(
            "--allow-unauthenticated-network",
            help=(
                "Serve on a non-loopback address with auth disabled "
                "[TELEMETRY_ALLOW_UNAUTHENTICATED_NETWORK]."
            ),
        ),
    ] = False,
) -> None:
    """Start the HTTP API server (settings from TELEMETRY_* variables; options win).

    With auth disabled it only binds a loopback address (127.0.0.1, ::1, localhost)
    unless --allow-unauthenticated-network is given; exit status 2 otherwise.
    """
    given = {
        "api_host": host,
        "api_port": port,
        "db_path": db_path,
        "allow_unauthenticated_network": allow_unauthenticated_network or None,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        settings = load_settings(**overrides)
        check_bind(settings)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    import uvicorn

    from local_telemetry.api import create_app
    from local_telemetry.api.slow_clients import deadline_protocol

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # The writer thread needs the GIL briefly between fsyncs; with the default 5 ms switch
    # interval it waits behind the event loop and every commit group gets later.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_level": settings.log_level,
        "access_log": False,
        "server_header": False,
        # uvicorn believes X-Forwarded-For/-Proto from 127.0.0.1 by default, which would let
        # any local client pick its rate-limit address: trust only the listed proxies.
        "forwarded_allow_ips": settings.trusted_proxy_list,
        # Slow clients get a 408 and are closed (api/slow_clients.py); on SIGTERM,
        # requests in flight get this long to finish before the writer drains and stops.
        "http": deadline_protocol(settings.header_timeout_seconds, settings.body_timeout_seconds),
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }
    if settings.api_workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # Several worker processes (PostgreSQL only, checked by the settings): each builds
    # its app from the environment, so the command-line options are handed on there.
    for name, value in overrides.items():
        os.environ[f"TELEMETRY_{name.upper()}"] = str(value)
    uvicorn.run(
        "local_telemetry.api.app:create_app", factory=True, workers=settings.api_workers, **options
    )


class _RichProgress:
    """Progress bars of ``migrate-data`` (one per table) on stderr."""

    def __init__(self, bars: Any) -> None:
        self.bars = bars
        self.tasks: dict[str, Any] = {}

    def table_started(self, table: str, total_rows: int) -> None:
        self.tasks[table] = self.bars.add_task(table, total=total_rows)

    def advanced(self, table: str, rows: int) -> None:
        self.bars.advance(self.tasks[table], rows)

    def phase(self, message: str) -> None:
        self.bars.console.print(message)


@app.command()
def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print the versions of this package, the v3 API it serves, Python and SQLite."""
    import json
    import platform
    import sqlite3

    from local_telemetry import API_VERSION

    found = {
        "version": __version__,
        "api_version": API_VERSION,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    if as_json:
        typer.echo(json.dumps(found))
    else:
        typer.echo(
            f"local-telemetry {found['version']} (API {found['api_version']}, "
            f"Python {found['python']}, SQLite {found['sqlite']})"
        )


@app.command("migrate-data")
def migrate_data_command(
    source: Annotated[
        str, typer.Option("--from", help="Source SQLite store: sqlite:///path/to/file.")
    ],
    target: Annotated[
        str,
        typer.Option("--to", help="Target PostgreSQL database: postgresql://user:pass@host/db."),
    ],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per batch (one transaction each).")
    ] = 5000,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")
    ] = False,
) -> None:
    """Copy a SQLite store into PostgreSQL: runs, events, QC reviews, alert rules and alerts.

    The target's schema is created first. Rows are copied in batches (one transaction
    each, rows already there are left alone), so an interrupted copy resumes when run
    again; at the end every table's row count and content checksum are compared. The
    target should be empty or a partial copy of the same source; stop the servers of
    both first. Exit status: 0 verified, 1 copy failed or verification mismatch, 2 bad
    arguments.
    """
    import json

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    from local_telemetry import migrate_data as md

    console = Console(stderr=True)
    bars = Bars(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    try:
        with bars:
            report = md.migrate_data(
                source, target, batch_size=batch_size, progress=_RichProgress(bars)
            )
    except md.BadArguments as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except md.MigrateDataError as exc:
        typer.echo(f"error: {exc}; run the same command again to resume", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for table in report.tables:
            mark = "ok" if table.ok else "MISMATCH"
            typer.echo(
                f"{table.name:<18} {table.source_rows:>10} source {table.target_rows:>10} target"
                f" {table.inserted:>10} inserted  {mark}"
            )
    if not report.ok:
        for problem in report.problems():
            typer.echo(f"verification failed: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"copied and verified {source} -> {report.target}", err=True)
