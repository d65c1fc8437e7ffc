"""The ``local-telemetry`` command line."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Any

import typer

from local_telemetry import __version__
from local_telemetry.config import ConfigurationError, describe_settings, load_settings

GIL_SWITCH_INTERVAL_S = 0.001


def _settings_help() -> str:
    # Typer/click rewraps the epilog; paragraphs (blank-line separated) stay apart.
    entries = [
        f"{env} (default: {default or 'unset'}): {description}"
        for env, default, description in describe_settings()
    ]
    return "\n\n".join(["Every setting (environment variable, default):", *entries])


app = typer.Typer(
    help="Local Telemetry: run telemetry for AI agents and automated jobs.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


@app.command(epilog=_settings_help())
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [TELEMETRY_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [TELEMETRY_API_PORT].")] = None,
    db_path: Annotated[str | None, typer.Option(help="SQLite file [TELEMETRY_DB_PATH].")] = None,
) -> None:
    """Start the HTTP API server (settings from TELEMETRY_* variables; options win)."""
    overrides = {
        k: v
        for k, v in {"api_host": host, "api_port": port, "db_path": db_path}.items()
        if v is not None
    }
    try:
        settings = load_settings(**overrides)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    import uvicorn

    from local_telemetry.api import create_app

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


def main() -> None:
    """Entry point of the ``local-telemetry`` script."""
    app()
