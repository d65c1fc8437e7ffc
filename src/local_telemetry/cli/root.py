"""The typer application every ``local-telemetry`` command registers on."""

from __future__ import annotations

from typing import Annotated

import typer

from local_telemetry import __version__

app = typer.Typer(
    help=(
        "Local Telemetry: run telemetry for AI agents and automated jobs. Exit status: 0 ok,"
        " 1 the operation failed, 2 bad arguments or configuration."
    ),
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
