"""Every command of ``local-telemetry`` explains itself: ``--help`` works everywhere.

Parsing only, so typer's CliRunner is enough here; the commands themselves are tested
as subprocesses against real servers and files in the other tests of this directory.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from local_telemetry.cli import app

ROOT = typer.main.get_command(app)
EXPECTED = {
    "serve", "version", "migrate-data",
    "runs list", "runs show", "runs tail", "kpis", "alerts",
    "export", "import", "backup", "restore", "purge", "stale", "doctor",
}  # fmt: skip


def _is_group(command: Any) -> bool:
    # typer 0.29 carries its own copy of click: duck-type instead of isinstance.
    return hasattr(command, "commands")


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if _is_group(group):
        for name, command in group.commands.items():
            path = (*prefix, name)
            found[" ".join(path)] = command
            found.update(_commands(command, path))
    return found


COMMANDS = _commands(ROOT)


def test_every_operator_command_of_issue_9_exists() -> None:
    assert set(COMMANDS) >= EXPECTED, sorted(EXPECTED - set(COMMANDS))


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_help_exits_0_and_says_what_the_command_does(path: str) -> None:
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    help_text = COMMANDS[path].help or ""
    assert len(help_text.strip()) > 20, f"{path}: no real help text"


@pytest.mark.parametrize("path", sorted(p for p, c in COMMANDS.items() if not _is_group(c)))
def test_an_unknown_option_is_a_usage_error_with_status_2(path: str) -> None:
    result = CliRunner().invoke(app, [*path.split(), "--no-such-option"])
    assert result.exit_code == 2
