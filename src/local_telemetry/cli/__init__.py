"""The ``local-telemetry`` command line: one module per group of commands.

Each module registers its commands on :data:`local_telemetry.cli.root.app` when imported;
importing this package imports them all. Exit status everywhere: 0 ok, 1 the operation
failed (server error, unreachable server, verification mismatch), 2 bad arguments or
configuration.
"""

from __future__ import annotations

from local_telemetry.cli import (  # noqa: F401  (registers commands)
    backup,
    doctor,
    keys,
    maintenance,
    reports,
    runs,
    server,
    transfer,
)
from local_telemetry.cli.root import app

__all__ = ["app", "main", "server"]


def main() -> None:
    """Entry point of the ``local-telemetry`` script."""
    app()
