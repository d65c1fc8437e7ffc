"""Running ``local-telemetry`` as a real subprocess in tests."""

from __future__ import annotations

import os
import subprocess
import sys

from support import ServerProcess


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any TELEMETRY_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.setdefault("COLUMNS", "200")  # rich tables are not cut to a narrow default
    env.update(extra)
    return env


def cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """``local-telemetry ARGS`` with only the TELEMETRY_* variables in ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "local_telemetry", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_against(
    server: ServerProcess, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """``local-telemetry ARGS`` pointed at ``server`` through ``TELEMETRY_API_URL`` and
    the server's own settings (``TELEMETRY_DB_PATH`` and, on PostgreSQL, the database
    URL), so commands that work on the database directly find it too."""
    found = {"TELEMETRY_API_URL": server.url, "TELEMETRY_DB_PATH": str(server.db_path)}
    if server.database_url:
        found["TELEMETRY_DATABASE_URL"] = server.database_url
    found.update({k: v for k, v in server.env.items() if k.startswith("TELEMETRY_")})
    found.update(env)
    return cli(*args, timeout=timeout, **found)
