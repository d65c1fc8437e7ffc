"""The storage backends every store test runs against: SQLite and PostgreSQL.

``store`` is parametrized over both backends (the contract suite); ``sqlite_store`` is
the SQLite store alone, for tests of SQLite specifics (files, pages, migrations).
PostgreSQL is a real server started once per session (``tests/pg_support.py``), with a
fresh database per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local_telemetry.storage.base import Store
from local_telemetry.storage.sqlite import SQLiteStore


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "store.sqlite")
    backend.migrate()
    yield backend
    backend.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend: Store
    if request.param == "sqlite":
        backend = SQLiteStore(tmp_path / "store.sqlite")
    else:
        from local_telemetry.storage.postgres import PostgresStore

        backend = PostgresStore(request.getfixturevalue("postgres_url"), pool_size=4)
    backend.migrate()
    yield backend
    backend.close()
