"""Fixtures shared by every test: real server processes on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pg_support import postgres_server, postgres_url
from support import ServerProcess, StartServer

__all__ = ["postgres_server", "postgres_url"]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start servers with extra env vars; every one is stopped after the test.

    ``start_server(db_path=None, **env)``: env keys are full variable names.
    """
    started: list[ServerProcess] = []

    def start(db_path: Path | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(db_path or tmp_path / "telemetry.sqlite", env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for tests that need no special settings (use unique ids per test)."""
    server = ServerProcess(tmp_path_factory.mktemp("shared") / "telemetry.sqlite", {})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api(shared_server: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client bound to the shared server."""
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        yield client
