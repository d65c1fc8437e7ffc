"""Rendering values for humans: rich tables and the formatting of numbers and times.

Only the human output of the query commands uses this; ``--json`` prints the server's
values untouched (:func:`print_found` chooses between the two). A missing value (JSON
null) is always shown as :data:`MISSING`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from local_telemetry.cli.remote import print_json

MISSING = "\u2013"
"""An en dash: what a missing value (JSON null) looks like."""
PIPE_WIDTH = 160
"""Width of tables written to a pipe or file: rich's 80 columns would fold most cells."""


def console(*, stderr: bool = False) -> Console:
    """A console for tables: no colour guessing on values, wide enough when piped."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty() and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH
    return Console(file=stream, highlight=False, width=width, soft_wrap=False)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    title: str | None = None,
    no_wrap: Collection[str] = (),
) -> Table:
    """A plain table of already formatted cells; the ``no_wrap`` columns (ids, times)
    are never broken over lines, so they can be copied from the output."""
    built = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for name in columns:
        built.add_column(name, no_wrap=name in no_wrap, overflow="fold")
    for row in rows:
        built.add_row(*row)
    return built


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    title: str | None = None,
    no_wrap: Collection[str] = (),
) -> None:
    """Print :func:`table` on stdout."""
    console().print(table(columns, rows, title=title, no_wrap=no_wrap))


def print_found(
    found: list[dict[str, Any]],
    *,
    as_json: bool,
    render: Callable[[list[dict[str, Any]]], None],
    nothing: str,
) -> None:
    """A listing answered by the server: its JSON unchanged (``--json``) or ``render``-ed;
    when it is empty, ``nothing`` on stderr (exit 0: no match is not a failure)."""
    if as_json:
        print_json(found)
    elif found:
        render(found)
    if not found:
        typer.echo(nothing, err=True)


def text(value: Any) -> str:
    """Any JSON value as one cell: :data:`MISSING` for null, ``yes``/``no``, compact JSON."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def pretty(value: Any) -> str:
    """Like :func:`text`, but JSON objects and arrays indented over several lines."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    return text(value)


def rate(value: float | None) -> str:
    """A rate in [0, 1] as a percentage with one decimal (``0.9234`` -> ``92.3%``)."""
    return MISSING if value is None else f"{value * 100:.1f}%"


def money(value: float | None) -> str:
    """US dollars: 2 decimals, 4 below one dollar so small per-run costs stay visible."""
    if value is None:
        return MISSING
    decimals = 2 if abs(value) >= 1 or value == 0 else 4
    return f"${value:,.{decimals}f}"


def number(value: float | None, decimals: int = 2) -> str:
    """An integer with thousands separators, or a float with ``decimals`` decimals."""
    if value is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{decimals}f}"


def duration_ms(value: float | None) -> str:
    """Milliseconds as ``850ms``, ``12.3s``, ``4m05s`` or ``2h03m``."""
    if value is None:
        return MISSING
    if value < 1000:
        return f"{value:.0f}ms"
    seconds = value / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def timestamp(value: str | None) -> str:
    """A stored UTC timestamp to the second: ``2026-01-12 10:30:00Z``."""
    if not value:
        return MISSING
    date, _, time = value.partition("T")
    if not time:
        return value
    return f"{date} {time[:8]}Z" if value.endswith("Z") else f"{date} {time}"
