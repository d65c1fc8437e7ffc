"""Fixtures shared by every test: real server processes on free ports.

``LT_TEST_BACKEND=postgres`` runs every server process started by tests on a PostgreSQL
database of its own (on the session's server, one database per db_path) instead of the
SQLite file; tests marked ``sqlite_only`` are deselected then.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import support
from pg_support import PostgresServer, postgres_server, postgres_url
from support import ServerProcess, StartServer, backend_under_test

__all__ = ["postgres_server", "postgres_url"]


def pytest_report_header(config: pytest.Config) -> str:
    return f"server backend: {backend_under_test()} (LT_TEST_BACKEND)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the postgres backend, deselect (not skip) the tests of SQLite itself."""
    if backend_under_test() != "postgres":
        return
    deselected = [item for item in items if item.get_closest_marker("sqlite_only")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("sqlite_only")]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"LT_TEST_BACKEND=postgres: deselected {len(deselected)} sqlite_only tests"
            )


@pytest.fixture(scope="session", autouse=True)
def server_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend of server processes; on postgres, ServerProcess gets its database
    from the session's PostgreSQL (started only then)."""
    backend = backend_under_test()
    if backend != "postgres":
        yield backend
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    support.database_for = server.database_for
    try:
        yield backend
    finally:
        support.database_for = None


@pytest.fixture
def start_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StartServer]:
    """Start servers with extra env vars; every one is stopped after the test.

    ``start_server(db_path=None, **env)``: env keys are full variable names.
    """
    started: list[ServerProcess] = []
    pg: PostgresServer | None = None
    if support.database_for is not None:  # LT_TEST_BACKEND=postgres
        pg = request.getfixturevalue("postgres_server")

    def start(db_path: Path | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(db_path or tmp_path / "telemetry.sqlite", env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
    if pg is not None:  # the databases made for this test's db_paths
        for url in {server.database_url for server in started if server.database_url}:
            if url.startswith(pg.url):
                pg.drop_database(url)


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
