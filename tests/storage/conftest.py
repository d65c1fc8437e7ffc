"""The storage backends every store test runs against (add PostgreSQL here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local_telemetry.storage.base import Store
from local_telemetry.storage.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend: Store = SQLiteStore(tmp_path / "store.sqlite")
    backend.migrate()
    yield backend
    backend.close()
