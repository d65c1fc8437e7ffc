"""Fixtures of the SDK tests: a client of the session's shared server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_telemetry.client import TelemetryClient
from support import ServerProcess


@pytest.fixture
def client(shared_server: ServerProcess) -> Iterator[TelemetryClient]:
    """A :class:`TelemetryClient` of the shared server (no spool, no git detection)."""
    with TelemetryClient(shared_server.url, spool=False, detect_git=False) as sdk:
        yield sdk
