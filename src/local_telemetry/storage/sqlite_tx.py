"""One write operation isolated inside the writer's group transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

ISOLATED_ERRORS = (sqlite3.IntegrityError, ValueError, TypeError, KeyError)
"""Errors of one operation that undo only that operation (anything else fails the group)."""


def isolated(conn: sqlite3.Connection, name: str, action: Callable[[], T]) -> T | Exception:
    """``action()`` inside ``SAVEPOINT name``: its result, or, when it raises one of
    ``ISOLATED_ERRORS``, that exception with everything the action did undone (the rest
    of the group transaction is kept)."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        result = action()
    except ISOLATED_ERRORS as exc:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        return exc
    conn.execute(f"RELEASE {name}")
    return result
