"""Statements of the ``api_keys`` table (SQLite migration 6, PostgreSQL migration 2).

The SQL is plain enough for both backends: SQLite passes its ``?`` placeholder, the
PostgreSQL store (``storage/postgres.py``) its ``%s``; both connections answer
``execute(sql, params).fetchone()/fetchall()``. Writes run on the writer's connection
inside ``Store.apply``'s transaction, reads on a reader's.
"""

from __future__ import annotations

from typing import Any

from local_telemetry.storage.base import API_KEY_COLUMNS, CreateApiKey, RevokeApiKey
from local_telemetry.timestamps import now_stored

_COLUMNS = ", ".join(API_KEY_COLUMNS)


def _key(row: Any) -> dict[str, Any]:
    return dict(zip(API_KEY_COLUMNS, row, strict=True))


def create(conn: Any, op: CreateApiKey, mark: str = "?") -> dict[str, Any]:
    """Insert the key; a taken prefix raises the backend's integrity error."""
    marks = ", ".join([mark] * 6)
    row = conn.execute(
        f"INSERT INTO api_keys(name, scope, prefix, key_hash, created_at, expires_at)"
        f" VALUES ({marks}) RETURNING {_COLUMNS}",
        (op.name, op.scope, op.prefix, op.key_hash, now_stored(), op.expires_at),
    ).fetchone()
    return _key(row)


def revoke(conn: Any, op: RevokeApiKey, mark: str = "?") -> dict[str, Any] | None:
    """Set ``revoked_at`` (once); the key, or ``None`` when there is no such key."""
    row = conn.execute(
        f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, {mark}) WHERE id = {mark}"
        f" RETURNING {_COLUMNS}",
        (now_stored(), op.key_id),
    ).fetchone()
    return None if row is None else _key(row)


def find(conn: Any, prefix: str, mark: str = "?") -> dict[str, Any] | None:
    """The key with ``prefix`` and its hash, or ``None``."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE prefix = {mark}", (prefix,)
    ).fetchone()
    if row is None:
        return None
    found = _key(row[:-1])
    found["key_hash"] = row[-1]
    return found


def list_all(conn: Any) -> list[dict[str, Any]]:
    """Every key, oldest first, without hashes."""
    return [_key(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id")]
